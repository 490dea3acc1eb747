"""LoCoMo in fine mode: LLM extraction, evidence recall of fine memories, optional LLM judge.

Ingest (in-process :class:`MemoryService` on a temp data dir): each LoCoMo
conversation is one user; each session is cut into windows of ``window_turns``
consecutive turns and every window is one ``add(..., mode="fine")`` with
``conversation_id = session_N``, ``message_id = dia_id`` and ``chat_time`` = the
session date (turn content and roles exactly as in the fast bench). A window
whose extraction fails keeps its fast memories (that is what the service does);
it is counted and the run goes on.

Recall: every question with evidence is searched (``memory_limit_number=25,
relativity=0``); a fine memory's ``sources`` name the messages it came from,
i.e. dia ids, so the metric is the fast bench's (:mod:`memos.bench.locomo`):
share of a question's evidence ids among the sources of the results that fit
200/500/1000 words. Overall = categories 1-4, category 5 apart.

Judge (``judge=True``): for each question of categories 1-4 the results within
500 words become the context; the answering LLM gives a short answer; the judge
LLM labels it CORRECT or WRONG against the gold answer following the mem0
LoCoMo evaluation's protocol (its ``ACCURACY_PROMPT``: question, gold answer,
generated answer; generous on wording and date formats; a one-sentence reason,
then the label as JSON). J = share labelled CORRECT; a reply that names neither
label (or both) counts as not correct and is reported as unparsable.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from memos.bench import Progress, latency_stats, log_progress, machine_info
from memos.bench import locomo as lb
from memos.bench.local_llm import Usage, usage_of
from memos.domain.models import MemoryItem, MemoryMode, MessageInput, Scope, ScoredMemory
from memos.errors import MemosError
from memos.llm.base import LLM, ChatMessage, JsonSchema
from memos.llm.jsonreply import BadOutput, read_object
from memos.service import MemoryService
from memos.settings import Settings, load_settings

DEFAULT_OUT = Path("bench/results/locomo_fine.json")
DEFAULT_WINDOW_TURNS = 10
ANSWER_BUDGET = 500
ANSWER_MAX_TOKENS = 48
JUDGE_MAX_TOKENS = 160
ERRORS_KEPT = 10

Label = Literal["CORRECT", "WRONG"]

# ------------------------------------------------------------------ prompts
ANSWER_SYSTEM = (
    "You answer questions about two people using memories of their past conversations. "
    "Each memory starts with the date of the conversation it comes from, in brackets. "
    "Use only the memories. Turn relative time words (yesterday, last year, next month) "
    "into absolute dates using that date; if memories disagree, trust the most recent one. "
    "Answer in at most six words, without explanation."
)
ANSWER_USER = "Memories:\n{context}\n\nQuestion: {question}\nAnswer:"

# The mem0 LoCoMo evaluation's judge protocol (evaluation/metrics/llm_judge.py,
# ACCURACY_PROMPT), in our words: same three inputs, same generous grading of
# topic and dates, reason first and the label last, as JSON under "label".
# --judge-prompt FILE sends any other text (placeholders {question},
# {gold_answer}, {generated_answer}), e.g. mem0's own, for byte-identical runs.
JUDGE_PROMPT = """\
Label an answer to a question as CORRECT or WRONG. You get:
(1) a question that one person asks another about what they should know from their \
past conversations,
(2) the gold (ground-truth) answer,
(3) a generated answer.

Gold answers are short and name the topic, for example:
Question: What did I buy the last time I was in Lisbon?
Gold answer: A blue ceramic tile
The generated answer may be much longer. Grade generously: if it is about the same thing \
as the gold answer, it is CORRECT.

For questions about time the gold answer is a date, month, year or period. The generated \
answer may be longer, formatted differently ("June 3rd" vs "3 June") or relative ("last \
Monday", "the month before"); it is CORRECT whenever it points to the same date or period.

The real question:
Question: {question}
Gold answer: {gold_answer}
Generated answer: {generated_answer}

First give a one-sentence reason, then the label. Never write both CORRECT and WRONG. \
Reply with a JSON object: {{"reasoning": "<one sentence>", "label": "CORRECT" or "WRONG"}}.
"""

JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reasoning": {"type": "string"},
        "label": {"type": "string", "enum": ["CORRECT", "WRONG"]},
    },
    "required": ["reasoning", "label"],
    "additionalProperties": False,
}

_SESSION = re.compile(r"session_\d+")
_LABEL_WORD = re.compile(r"\b(CORRECT|INCORRECT|WRONG)\b")
_LABELS: dict[str, Label] = {"CORRECT": "CORRECT", "INCORRECT": "WRONG", "WRONG": "WRONG"}


def parse_verdict(reply: str) -> Label | None:
    """CORRECT or WRONG from a judge reply; None when it names neither or both.

    The JSON ``label`` wins (any case, INCORRECT = WRONG); without one, the
    upper-case label words in the text decide, as long as only one kind occurs.
    """
    try:
        obj = read_object(reply)
    except BadOutput:
        obj = {}
    label = obj.get("label")
    if isinstance(label, str):
        found = _LABELS.get(label.strip().strip("'\"’. ").upper())
        if found is not None:
            return found
    kinds = {_LABELS[w] for w in _LABEL_WORD.findall(reply)}
    return kinds.pop() if len(kinds) == 1 else None


# --------------------------------------------------------------------- data
@dataclass(frozen=True)
class FineQuestion:
    text: str
    category: int
    evidence: tuple[str, ...]
    answer: str


@dataclass(frozen=True)
class FineSample:
    sample: lb.Sample
    questions: tuple[FineQuestion, ...]

    @property
    def sample_id(self) -> str:
        return self.sample.sample_id


def _questions(raw: dict[str, Any], sample: lb.Sample) -> list[FineQuestion]:
    """Questions with gold answers, kept by the fast bench's rule: evidence that exists in
    the conversation, all of it inside the kept sessions."""
    conv = raw["conversation"]
    present = {
        t["dia_id"]
        for key, value in conv.items()
        if _SESSION.fullmatch(key) and isinstance(value, list)
        for t in value
    }
    kept = {t.dia_id for t in sample.turns}
    out: list[FineQuestion] = []
    for qa in raw["qa"]:
        known = [e for e in lb.normalise_evidence(qa.get("evidence") or []) if e in present]
        if not known or not set(known) <= kept:
            continue
        answer = qa.get("answer", qa.get("adversarial_answer", ""))
        out.append(
            FineQuestion(str(qa["question"]), int(qa["category"]), tuple(known), str(answer))
        )
    return out


def pick_questions(
    questions: Sequence[FineQuestion], limit: int | None
) -> tuple[FineQuestion, ...]:
    """All questions, or ``limit`` of categories 1-4 taken round-robin by category (file order)."""
    if limit is None:
        return tuple(questions)
    queues: dict[int, list[FineQuestion]] = defaultdict(list)
    for q in questions:
        if q.category in lb.SCORED_CATEGORIES:
            queues[q.category].append(q)
    picked: list[FineQuestion] = []
    while len(picked) < limit and any(queues.values()):
        for cat in lb.SCORED_CATEGORIES:
            if queues[cat] and len(picked) < limit:
                picked.append(queues[cat].pop(0))
    order = {id(q): i for i, q in enumerate(questions)}
    return tuple(sorted(picked, key=lambda q: order[id(q)]))


def load_fine_samples(
    path: Path,
    *,
    limit_samples: int | None = None,
    limit_sessions: int | None = None,
    limit_questions: int | None = None,
) -> list[FineSample]:
    """LoCoMo conversations cut to their first sessions and a slice of their questions.

    ``limit_questions`` applies per conversation and keeps categories 1-4 only;
    without it every question with evidence is kept (category 5 too, scored apart).
    """
    raw = json.loads(path.read_text(encoding="utf-8"))
    if limit_samples is not None:
        raw = raw[:limit_samples]
    out: list[FineSample] = []
    for r in raw:
        sample = lb.parse_sample(r, max_sessions=limit_sessions)
        out.append(FineSample(sample, pick_questions(_questions(r, sample), limit_questions)))
    return out


@dataclass(frozen=True)
class Window:
    session: lb.Session
    turns: tuple[lb.Turn, ...]

    def inputs(self) -> list[MessageInput]:
        return [
            MessageInput(
                role=t.role,
                content=t.content,
                chat_time=self.session.chat_time or None,
                message_id=t.dia_id,
            )
            for t in self.turns
        ]


def session_windows(sessions: Sequence[lb.Session], window_turns: int) -> list[Window]:
    """Each session's turns in consecutive windows of at most ``window_turns``."""
    if window_turns < 1:
        raise ValueError("window_turns must be at least 1")
    return [
        Window(s, s.turns[i : i + window_turns])
        for s in sessions
        for i in range(0, len(s.turns), window_turns)
    ]


# ------------------------------------------------------------------ progress
class Eta:
    """``done/total`` lines with the elapsed time and an ETA from the mean pace so far."""

    def __init__(self, label: str, total: int, progress: Progress, every_s: float = 10.0) -> None:
        self.label = label
        self.total = total
        self.progress = progress
        self.every_s = every_s
        self.started = time.perf_counter()
        self._last = 0.0

    def step(self, done: int, extra: str = "") -> None:
        now = time.perf_counter()
        if done < self.total and now - self._last < self.every_s:
            return
        self._last = now
        elapsed = now - self.started
        eta = elapsed / done * (self.total - done) if done else float("nan")
        tail = f"; {extra}" if extra else ""
        self.progress(
            f"{self.label} {done}/{self.total} ({elapsed:.0f} s elapsed, ETA {eta:.0f} s){tail}"
        )


# ------------------------------------------------------------------- ingest
@dataclass
class IngestTally:
    windows: int = 0
    messages: int = 0
    completed: int = 0
    failed: int = 0  # add() answered status "failed" (fast memories kept)
    raised: int = 0  # add() raised (nothing or only fast memories stored)
    fine_memories: int = 0
    fast_kept: int = 0
    empty_windows: int = 0  # completed without fine memories: fast memories kept
    sources_in_window: int = 0
    whole_window_sources: int = 0
    source_ids: int = 0
    seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)

    def error(self, text: str) -> None:
        if len(self.errors) < ERRORS_KEPT:
            self.errors.append(text[:300])

    def summary(self, usage: Usage) -> dict[str, Any]:
        spent = sum(self.seconds)
        fine = self.fine_memories
        return {
            "windows": self.windows,
            "messages": self.messages,
            "completed": self.completed,
            "failed": self.failed,
            "raised": self.raised,
            "failure_rate": round((self.failed + self.raised) / self.windows, 4)
            if self.windows
            else None,
            "completed_without_fine_memories": self.empty_windows,
            "fine_memories": fine,
            "fine_memory_types": dict(sorted(self.kinds.items())),
            "fast_memories_kept": self.fast_kept,
            "memories_per_message": round((fine + self.fast_kept) / self.messages, 3)
            if self.messages
            else None,
            "fine_memories_per_message": round(fine / self.messages, 3) if self.messages else None,
            "sources": {
                "fine_memories_citing_only_window_messages": self.sources_in_window,
                "fine_memories_citing_the_whole_window": self.whole_window_sources,
                "mean_sources_per_fine_memory": round(self.source_ids / fine, 2) if fine else None,
            },
            "seconds": round(spent, 3),
            "windows_per_s": round(self.windows / spent, 4) if spent else None,
            "window": latency_stats(self.seconds),
            "llm_usage": usage.as_dict(),
            "errors_first": self.errors,
        }


def _ingest_window(svc: MemoryService, user: str, window: Window, tally: IngestTally) -> None:
    tally.windows += 1
    tally.messages += len(window.turns)
    ids = {t.dia_id for t in window.turns}
    started = time.perf_counter()
    try:
        result = svc.add(
            user_id=user,
            conversation_id=window.session.conversation_id,
            messages=window.inputs(),
            mode="fine",
        )
    except MemosError as exc:  # the service records what it can; count it and go on
        tally.seconds.append(time.perf_counter() - started)
        tally.raised += 1
        tally.error(f"{window.session.conversation_id}: raised {type(exc).__name__}: {exc}")
        return
    tally.seconds.append(time.perf_counter() - started)
    memories = svc.store.get_memories(Scope.for_user(user), result.memory_ids)
    fine = [m for m in memories if m.mode == MemoryMode.FINE]
    tally.fast_kept += len(memories) - len(fine)
    if result.status != "completed":
        tally.failed += 1
        tally.error(f"{window.session.conversation_id}: {result.error}")
        return
    tally.completed += 1
    if not fine:
        tally.empty_windows += 1
    for m in fine:
        cited = {s.message_id for s in m.sources if s.message_id}
        tally.fine_memories += 1
        tally.kinds[m.memory_type.value] += 1
        tally.source_ids += len(cited)
        tally.sources_in_window += cited <= ids
        tally.whole_window_sources += cited == ids and len(ids) > 1


# ------------------------------------------------------------------ search
def retrieved(hits: Sequence[ScoredMemory]) -> list[lb.Retrieved]:
    return [
        lb.Retrieved(
            len(h.memory.value.split()),
            frozenset(s.message_id for s in h.memory.sources if s.message_id),
        )
        for h in hits
    ]


def in_budget(hits: Sequence[ScoredMemory], budget: int) -> list[MemoryItem]:
    """The hits that fit ``budget`` words, walked as :func:`budget_recall` walks them."""
    out: list[MemoryItem] = []
    used = 0
    for i, h in enumerate(hits):
        used += len(h.memory.value.split())
        if i > 0 and used > budget:
            break
        out.append(h.memory)
    return out


def _when(m: MemoryItem) -> str:
    for s in m.sources:
        if s.chat_time:
            return s.chat_time
    return m.event_time.date().isoformat() if m.event_time else "date unknown"


def answer_context(memories: Sequence[MemoryItem]) -> str:
    return "\n".join(f"- [{_when(m)}] {m.value}" for m in memories) or "(no memories)"


# ------------------------------------------------------------------- judge
@dataclass
class JudgeTally:
    by_category: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    unparsable: int = 0
    errors: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        def score(values: Sequence[int]) -> dict[str, Any]:
            return {
                "n": len(values),
                "correct": sum(values),
                "j": round(sum(values) / len(values), 4) if values else None,
            }

        scored = [v for c in lb.SCORED_CATEGORIES for v in self.by_category.get(c, [])]
        return {
            "overall": score(scored),
            "by_category": {
                str(c): {"name": lb.CATEGORY_NAMES.get(c, str(c)), **score(v)}
                for c, v in sorted(self.by_category.items())
            },
            "unparsable_verdicts": self.unparsable,
            "llm_errors": self.errors,
        }


class Judge:
    """Answers a question from memories, then has the judge LLM label the answer."""

    def __init__(
        self,
        answer_llm: LLM,
        judge_llm: LLM,
        *,
        prompt: str = JUDGE_PROMPT,
        schema: JsonSchema | None = JUDGE_SCHEMA,
    ) -> None:
        self.answer_llm = answer_llm
        self.judge_llm = judge_llm
        self.prompt = prompt
        self.schema = schema

    def answer(self, question: str, memories: Sequence[MemoryItem]) -> str:
        chat: list[ChatMessage] = [
            {"role": "system", "content": ANSWER_SYSTEM},
            {
                "role": "user",
                "content": ANSWER_USER.format(context=answer_context(memories), question=question),
            },
        ]
        return self.answer_llm.chat(chat, max_tokens=ANSWER_MAX_TOKENS).strip()

    def verdict(self, question: str, gold: str, generated: str) -> tuple[Label | None, str]:
        content = self.prompt.format(
            question=question, gold_answer=gold, generated_answer=generated
        )
        reply = self.judge_llm.chat(
            [{"role": "user", "content": content}],
            json_schema=self.schema,
            max_tokens=JUDGE_MAX_TOKENS,
        )
        return parse_verdict(reply), reply

    def grade(self, q: FineQuestion, memories: Sequence[MemoryItem], tally: JudgeTally) -> None:
        row: dict[str, Any] = {
            "question": q.text,
            "category": q.category,
            "gold": q.answer,
            "context_memories": len(memories),
        }
        try:
            row["generated"] = self.answer(q.text, memories)
            label, raw = self.verdict(q.text, q.answer, row["generated"])
            row["judge_reply"] = raw[:500]
        except MemosError as exc:
            tally.errors += 1
            label = None
            row["error"] = f"{type(exc).__name__}: {exc}"[:300]
        if label is None and "error" not in row:
            tally.unparsable += 1
        row["label"] = label
        tally.by_category[q.category].append(int(label == "CORRECT"))
        tally.rows.append(row)


def warm_up(llm: LLM) -> None:
    """One small schema call, so model load and the schema-dialect probe are not timed."""
    llm.chat(
        [{"role": "user", "content": 'Reply {"ok": true}'}],
        json_schema={
            "type": "object",
            "properties": {"ok": {"type": "boolean"}},
            "required": ["ok"],
            "additionalProperties": False,
        },
        max_tokens=16,
    )


# --------------------------------------------------------------------- run
def run_locomo_fine(
    samples: Sequence[FineSample],
    *,
    llm: LLM,
    answer_llm: LLM | None = None,
    judge_llm: LLM | None = None,
    judge: bool = False,
    judge_prompt: str | None = None,
    window_turns: int = DEFAULT_WINDOW_TURNS,
    settings: Settings | None = None,
    progress: Progress = log_progress,
    data_path: Path | None = None,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fine-mode ingest of every sample, then evidence recall (and, with ``judge``, J).

    ``llm`` extracts (and answers unless ``answer_llm``); ``judge_llm`` defaults to
    the answering LLM. ``settings`` are the service's (default: the environment's,
    on a temp data dir). The LLMs stay open; the caller closes them.
    """
    answerer = answer_llm or llm
    grader = Judge(
        answerer,
        judge_llm or answerer,
        prompt=judge_prompt or JUDGE_PROMPT,
        schema=JUDGE_SCHEMA if judge_prompt is None else None,
    )
    with tempfile.TemporaryDirectory(prefix="memos-locomo-fine-") as tmp:
        base = settings or load_settings()
        svc_settings = base.model_copy(update={"data_dir": Path(tmp) / "data"})
        svc = MemoryService.open(svc_settings, llm=_Borrowed(llm))
        try:
            return _run(
                svc,
                samples,
                llm=llm,
                grader=grader if judge else None,
                window_turns=window_turns,
                progress=progress,
                data_path=data_path,
                config=config or {},
            )
        finally:
            svc.close()


class _Borrowed:
    """``llm`` lent to the service: its close() must not close the caller's client."""

    def __init__(self, inner: LLM) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        json_schema: JsonSchema | None = None,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> str:
        return self.inner.chat(
            messages, json_schema=json_schema, max_tokens=max_tokens, temperature=temperature
        )

    def close(self) -> None:
        return None


def fast_user(sample_id: str) -> str:
    return f"{sample_id}--fast"


def _run(
    svc: MemoryService,
    samples: Sequence[FineSample],
    *,
    llm: LLM,
    grader: Judge | None,
    window_turns: int,
    progress: Progress,
    data_path: Path | None,
    config: dict[str, Any],
) -> dict[str, Any]:
    wall = time.perf_counter()
    load_start = os.getloadavg()
    warm_up(llm)
    if grader is not None:
        if grader.answer_llm is not llm:
            warm_up(grader.answer_llm)
        if grader.judge_llm not in (llm, grader.answer_llm):
            warm_up(grader.judge_llm)
    svc.search(user_id="warmup", query="warm up the embedder", relativity=0)
    ingest = IngestTally()
    extraction_before = usage_of(llm)
    plan = [(s, w) for s in samples for w in session_windows(s.sample.sessions, window_turns)]
    eta = Eta("windows", len(plan), progress)
    for done, (sample, window) in enumerate(plan, 1):
        _ingest_window(svc, sample.sample_id, window, ingest)
        eta.step(
            done,
            f"{ingest.fine_memories} fine memories, {ingest.failed + ingest.raised} failed",
        )
    extraction_usage = usage_of(llm).minus(extraction_before)
    # Baseline in the same run: the same windows in fast mode (one memory per turn)
    # under a second user, searched with the same questions.
    for sample, window in plan:
        svc.add(
            user_id=fast_user(sample.sample_id),
            conversation_id=window.session.conversation_id,
            messages=window.inputs(),
        )
    fast_recall = lb.RecallTally()
    recall = lb.RecallTally()
    judged = JudgeTally()
    answer_before = usage_of(grader.answer_llm) if grader else Usage()
    judge_before = usage_of(grader.judge_llm) if grader else Usage()
    fine_share: list[float] = []
    search_seconds: list[float] = []
    results_seen = 0
    foreign_sources = 0  # results citing an id that is no dia id of the conversation
    dia_ids = {s.sample_id: {t.dia_id for t in s.sample.turns} for s in samples}
    questions = [(s, q) for s in samples for q in s.questions]
    qeta = Eta("questions", len(questions), progress)
    for done, (sample, q) in enumerate(questions, 1):
        t0 = time.perf_counter()
        hits = svc.search(
            user_id=sample.sample_id, query=q.text, limit=lb.SEARCH_LIMIT, relativity=0
        )
        search_seconds.append(time.perf_counter() - t0)
        found = retrieved(hits)
        recall.add(q.category, found, q.evidence)
        fast_hits = svc.search(
            user_id=fast_user(sample.sample_id), query=q.text, limit=lb.SEARCH_LIMIT, relativity=0
        )
        fast_recall.add(q.category, retrieved(fast_hits), q.evidence)
        results_seen += len(found)
        foreign_sources += sum(
            1 for r in found if not r.sources or r.sources - dia_ids[sample.sample_id]
        )
        context = in_budget(hits, ANSWER_BUDGET)
        if context:
            fine_share.append(sum(m.mode == MemoryMode.FINE for m in context) / len(context))
        if grader is not None and q.category in lb.SCORED_CATEGORIES:
            grader.grade(q, context, judged)
            judged.rows[-1]["evidence_recall_500"] = round(
                lb.budget_recall(found, q.evidence, ANSWER_BUDGET), 4
            )
        qeta.step(done)

    results: dict[str, Any] = {
        "benchmark": "locomo-fine",
        "machine": machine_info(),
        "config": {
            "data": str(data_path) if data_path else None,
            "samples": [s.sample_id for s in samples],
            "window_turns": window_turns,
            "memory_limit_number": lb.SEARCH_LIMIT,
            "relativity": 0,
            "budgets_words": list(lb.BUDGETS),
            "embedder": svc.embedder.name,
            "reranker": svc.settings.reranker.kind,
            "extraction_llm": llm.name,
            "loadavg_1_5_15_at_start": [round(x, 2) for x in load_start],
            **config,
        },
        "counts": {
            "sessions": sum(len(s.sample.sessions) for s in samples),
            "messages": ingest.messages,
            "windows": ingest.windows,
            "questions": dict(
                sorted(Counter(str(q.category) for s in samples for q in s.questions).items())
            ),
        },
        "extraction": ingest.summary(extraction_usage),
        "recall": recall.summary(),
        "recall_fast_same_slice": fast_recall.summary(),
        "fine_share_of_results_in_500_words": round(sum(fine_share) / len(fine_share), 4)
        if fine_share
        else None,
        "search": latency_stats(search_seconds),
        "results_checked": results_seen,
        "results_citing_no_or_unknown_dia_ids": foreign_sources,
    }
    if grader is not None:
        results["judge"] = {
            "answer_llm": grader.answer_llm.name,
            "judge_llm": grader.judge_llm.name,
            "prompt": "mem0 ACCURACY_PROMPT protocol (reworded)"
            if grader.prompt == JUDGE_PROMPT
            else "custom (--judge-prompt)",
            "context_budget_words": ANSWER_BUDGET,
            **judged.summary(),
            "answer_usage": usage_of(grader.answer_llm).minus(answer_before).as_dict(),
            "judge_usage": usage_of(grader.judge_llm).minus(judge_before).as_dict(),
            "per_question": judged.rows,
        }
        if grader.judge_llm is grader.answer_llm:
            results["judge"]["judge_usage"] = "included in answer_usage (same client)"
    results["wall_s"] = round(time.perf_counter() - wall, 1)
    results["loadavg_1_5_15_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["notes"] = [
        f"fine mode: one add(mode='fine') per window of up to {window_turns} turns of a session",
        "a window whose extraction fails keeps its fast memories (one per turn), so those "
        "still count for recall; extraction.failed/raised say how many windows that was",
        "a fine memory whose model-given source numbers are missing or invalid cites the "
        "whole window (reader fallback); extraction.sources says how often, and recall then "
        "credits the window rather than the turn",
        "overall = categories 1-4, averaged per question; category 5 (adversarial) apart "
        "and never judged",
        "recall_fast_same_slice: the same windows added in fast mode (one memory per "
        "turn) under another user and searched with the same questions, in the same run",
        "LLM token counts come from the server's usage block; calls without one are "
        "estimated with memos.text.tokens.count_tokens (calls_without_server_usage)",
    ]
    return results


def _pct(value: float | None) -> str:
    return "-" if value is None or value != value else f"{100 * value:.1f}"


def format_table(results: dict[str, Any]) -> str:
    """A plain-text report of a :func:`run_locomo_fine` result."""
    budgets = [*(str(b) for b in lb.BUDGETS), "all"]
    judge = results.get("judge")
    head = f"{'category':<22}{'n':>5}  " + "".join(
        f"{'fine@' + b:>10}{'fast@' + b:>10}" for b in budgets
    )
    if judge:
        head += f"{'J n':>6}{'J %':>7}"
    lines = [
        "LoCoMo fine mode: evidence recall (%), fine vs fast on the same slice"
        + (", and LLM-judge accuracy" if judge else ""),
        head,
        "-" * len(head),
    ]
    recall, fast = results["recall"], results["recall_fast_same_slice"]

    def row(label: str, cat: str | None, r: dict[str, float], f: dict[str, float]) -> str:
        line = f"{label:<22}{int(r['n']):>5}  " + "".join(
            f"{_pct(r[b]):>10}{_pct(f[b]):>10}" for b in budgets
        )
        if judge:
            j = judge["overall"] if cat is None else judge["by_category"].get(cat)
            line += f"{j['n']:>6}{_pct(j['j']):>7}" if j else f"{'-':>6}{'-':>7}"
        return line

    for cat, r in recall["by_category"].items():
        lines.append(row(f"{cat} {r['name']}", cat, r, fast["by_category"][cat]))
    lines.append(row("overall (1-4)", None, recall["overall"], fast["overall"]))
    ex = results["extraction"]
    usage = ex["llm_usage"]
    lines.append(
        f"extraction: {ex['windows']} windows / {ex['messages']} messages in {ex['seconds']} s "
        f"({ex['windows_per_s']} windows/s); failed {ex['failed']}, raised {ex['raised']} "
        f"(rate {_pct(ex['failure_rate'])}%); {ex['fine_memories']} fine memories "
        f"({ex['fine_memories_per_message']}/message), {ex['fast_memories_kept']} fast kept"
    )
    lines.append(
        f"extraction tokens: {usage['prompt_tokens']} prompt, {usage['completion_tokens']} "
        f"completion over {usage['calls']} calls"
    )
    src = ex["sources"]
    lines.append(
        f"sources: {src['fine_memories_citing_only_window_messages']}/{ex['fine_memories']} "
        f"cite only their window's dia ids; {src['fine_memories_citing_the_whole_window']} "
        "cite the whole window"
    )
    if judge:
        lines.append(
            f"judge: {judge['judge_llm']} answering with {judge['answer_llm']}; "
            f"unparsable verdicts {judge['unparsable_verdicts']}, LLM errors {judge['llm_errors']}"
        )
    lines.append(f"wall time {results['wall_s']} s")
    return "\n".join(lines)


def write_results(results: dict[str, Any], out: Path) -> None:
    lb.write_results(results, out)
