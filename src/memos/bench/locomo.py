"""LoCoMo evidence recall over the real REST API, against an in-process BM25 baseline.

Each LoCoMo sample becomes one user (``user_id = sample_id``); each session is
one ``POST /add/message`` (``conversation_id = session_N``) with one message per
turn (speaker_a -> ``user``, speaker_b -> ``assistant``, content
``"{speaker}: {text}"`` plus ``[shares a photo: caption]`` for image turns,
``message_id = dia_id``, ``chat_time`` = the session date). Every question with
evidence is searched with ``memory_limit_number=25, relativity=0``.

Metric: recall of evidence turns within a word budget (200/500/1000). Results
are walked in rank order accumulating the words of ``memory_value``; a result
is in budget while the running total is <= budget (the first result always
counts). A question's recall is the share of its evidence ids found among the
``sources[].message_id`` of in-budget results; averages are per question,
per category and overall (categories 1-4; 5, adversarial, is reported apart).

Baseline: pure-Python BM25 over the same turn texts (top 25), scored the same way.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from memos.bench import (
    BenchError,
    Progress,
    ServerProcess,
    latency_stats,
    log_progress,
    machine_info,
)
from memos.embedders import build_embedder
from memos.settings import load_settings
from memos.text.tokens import STOPWORDS

_LOCOMO = Path("shared/bench/locomo/locomo_public.json")


def _default_data() -> Path:
    """The public LoCoMo half in the ``shared/`` folder beside the checkout."""
    repo = Path(__file__).resolve().parents[3]
    for base in (repo.parent, Path.cwd().parent, Path("/work")):
        if (base / _LOCOMO).exists():
            return base / _LOCOMO
    return repo.parent / _LOCOMO


DEFAULT_DATA = _default_data()
DEFAULT_OUT = Path("bench/results/locomo.json")
BUDGETS = (200, 500, 1000)
SEARCH_LIMIT = 25
CATEGORY_NAMES = {
    1: "multi-hop",
    2: "temporal",
    3: "open-domain",
    4: "single-hop",
    5: "adversarial",
}
SCORED_CATEGORIES = (1, 2, 3, 4)

_SESSION_KEY = re.compile(r"session_(\d+)")
_DIA_ID = re.compile(r"D:?(\d+):(\d+)")
_WORD = re.compile(r"\w+", re.UNICODE)


# ------------------------------------------------------------------ data
@dataclass(frozen=True)
class Turn:
    dia_id: str
    role: str
    content: str

    @property
    def words(self) -> int:
        return len(self.content.split())


@dataclass(frozen=True)
class Session:
    conversation_id: str
    chat_time: str
    turns: tuple[Turn, ...]


@dataclass(frozen=True)
class Question:
    text: str
    category: int
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class Sample:
    sample_id: str
    sessions: tuple[Session, ...]
    questions: tuple[Question, ...]
    dropped_evidence: int = 0

    @property
    def turns(self) -> list[Turn]:
        return [t for s in self.sessions for t in s.turns]


def turn_content(turn: dict[str, Any]) -> str:
    content = f"{turn['speaker']}: {turn.get('text', '')}".rstrip()
    caption = turn.get("blip_caption")
    if caption:
        content += f" [shares a photo: {caption}]"
    return content


def normalise_evidence(raw: Sequence[str]) -> list[str]:
    """Dia ids from LoCoMo's evidence list, which has a few malformed entries.

    ``"D8:6; D9:17"`` holds two ids and ``"D:11:26"`` means ``D11:26``; anything
    without a ``D<session>:<turn>`` shape is dropped.
    """
    out: list[str] = []
    for entry in raw:
        for m in _DIA_ID.finditer(str(entry)):
            dia = f"D{m.group(1)}:{m.group(2)}"
            if dia not in out:
                out.append(dia)
    return out


def parse_sample(raw: dict[str, Any], *, max_sessions: int | None = None) -> Sample:
    conv = raw["conversation"]
    speaker_a = conv["speaker_a"]
    numbers = sorted(
        int(m.group(1))
        for key, value in conv.items()
        if (m := _SESSION_KEY.fullmatch(key)) and isinstance(value, list) and value
    )
    all_ids = {t["dia_id"] for n in numbers for t in conv[f"session_{n}"]}
    kept_numbers = numbers[:max_sessions] if max_sessions is not None else numbers
    sessions: list[Session] = []
    for n in kept_numbers:
        turns = tuple(
            Turn(
                dia_id=t["dia_id"],
                role="user" if t["speaker"] == speaker_a else "assistant",
                content=turn_content(t),
            )
            for t in conv[f"session_{n}"]
        )
        sessions.append(Session(f"session_{n}", str(conv.get(f"session_{n}_date_time", "")), turns))
    kept_ids = {t.dia_id for s in sessions for t in s.turns}
    questions: list[Question] = []
    dropped = 0
    for qa in raw["qa"]:
        raw_evidence = qa.get("evidence") or []
        evidence = normalise_evidence(raw_evidence)
        known = [e for e in evidence if e in all_ids]
        malformed = sum(1 for e in raw_evidence if not _DIA_ID.search(str(e)))
        dropped += len(evidence) - len(known) + malformed
        if not known or not set(known) <= kept_ids:
            continue
        questions.append(Question(str(qa["question"]), int(qa["category"]), tuple(known)))
    return Sample(str(raw["sample_id"]), tuple(sessions), tuple(questions), dropped)


def load_samples(
    path: Path,
    *,
    limit_samples: int | None = None,
    max_sessions: int | None = None,
) -> list[Sample]:
    """Samples from a LoCoMo JSON file; ``max_sessions`` keeps the first sessions and
    only the questions whose evidence lies inside them."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    if limit_samples is not None:
        raw = raw[:limit_samples]
    return [parse_sample(r, max_sessions=max_sessions) for r in raw]


# ---------------------------------------------------------------- metric
@dataclass(frozen=True)
class Retrieved:
    """One search result as the metric sees it: its size in words and its source ids."""

    words: int
    sources: frozenset[str]


def budget_recall(results: Sequence[Retrieved], evidence: Collection[str], budget: int) -> float:
    """Share of ``evidence`` found in the results that fit ``budget`` words (first always)."""
    wanted = set(evidence)
    if not wanted:
        raise ValueError("a question needs at least one evidence id")
    found: set[str] = set()
    used = 0
    for i, r in enumerate(results):
        used += r.words
        if i > 0 and used > budget:
            break
        found |= r.sources
    return len(found & wanted) / len(wanted)


def full_recall(results: Sequence[Retrieved], evidence: Collection[str]) -> float:
    """Recall over every returned result, whatever its length."""
    wanted = set(evidence)
    found = set().union(*(r.sources for r in results)) if results else set()
    return len(found & wanted) / len(wanted)


# ------------------------------------------------------------------ BM25
def bm25_tokens(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


class BM25:
    """Okapi BM25 (Lucene idf ``log(1 + (N - df + 0.5) / (df + 0.5))``) over a fixed corpus."""

    def __init__(self, docs: Sequence[str], *, k1: float = 1.5, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self.n = len(docs)
        self.lengths = [0] * self.n
        self.postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for i, doc in enumerate(docs):
            tokens = bm25_tokens(doc)
            self.lengths[i] = len(tokens)
            for term, tf in Counter(tokens).items():
                self.postings[term].append((i, tf))
        self.avgdl = (sum(self.lengths) / self.n) if self.n else 0.0

    def idf(self, term: str) -> float:
        df = len(self.postings.get(term, ()))
        return math.log(1.0 + (self.n - df + 0.5) / (df + 0.5))

    def scores(self, query: str) -> dict[int, float]:
        """Score of every document sharing a term with ``query`` (distinct terms)."""
        out: dict[int, float] = defaultdict(float)
        avgdl = self.avgdl or 1.0
        for term in dict.fromkeys(bm25_tokens(query)):
            postings = self.postings.get(term)
            if not postings:
                continue
            idf = self.idf(term)
            for doc, tf in postings:
                norm = self.k1 * (1.0 - self.b + self.b * self.lengths[doc] / avgdl)
                out[doc] += idf * tf * (self.k1 + 1.0) / (tf + norm)
        return dict(out)

    def top(self, query: str, k: int) -> list[tuple[int, float]]:
        ranked = sorted(self.scores(query).items(), key=lambda kv: (-kv[1], kv[0]))
        return ranked[:k]


def bm25_search(index: BM25, turns: Sequence[Turn], query: str, k: int) -> list[Retrieved]:
    return [
        Retrieved(turns[i].words, frozenset([turns[i].dia_id])) for i, _ in index.top(query, k)
    ]


# ---------------------------------------------------------------- client
class CloudClient:
    """The two cloud-dialect calls the benchmark makes."""

    def __init__(self, base_url: str, *, timeout_s: float = 300.0) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        try:
            resp = self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise BenchError(f"POST {path} failed: {exc}") from exc
        try:
            payload = resp.json()
        except ValueError:
            payload = None
        if resp.status_code != 200 or not isinstance(payload, dict) or payload.get("code") != 0:
            raise BenchError(f"POST {path} -> {resp.status_code}: {resp.text[:500]}")
        return payload.get("data")

    def add_session(self, user_id: str, session: Session) -> None:
        self._post(
            "/add/message",
            {
                "user_id": user_id,
                "conversation_id": session.conversation_id,
                "messages": [
                    {
                        "role": t.role,
                        "content": t.content,
                        "chat_time": session.chat_time,
                        "message_id": t.dia_id,
                    }
                    for t in session.turns
                ],
            },
        )

    def search(self, user_id: str, query: str, limit: int = SEARCH_LIMIT) -> list[Retrieved]:
        data = self._post(
            "/search/memory",
            {"user_id": user_id, "query": query, "memory_limit_number": limit, "relativity": 0},
        )
        out: list[Retrieved] = []
        for hit in data.get("memory_detail_list") or []:
            ids = frozenset(
                str(s["message_id"]) for s in hit.get("sources") or [] if s.get("message_id")
            )
            out.append(Retrieved(len(str(hit.get("memory_value", "")).split()), ids))
        return out


# ------------------------------------------------------------ aggregation
@dataclass
class RecallTally:
    """Per-question recalls of one system, grouped by category."""

    by_category: dict[int, list[dict[str, float]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    total_words: list[int] = field(default_factory=list)

    def add(self, category: int, results: Sequence[Retrieved], evidence: Sequence[str]) -> None:
        row = {str(b): budget_recall(results, evidence, b) for b in BUDGETS}
        row["all"] = full_recall(results, evidence)
        self.by_category[category].append(row)
        self.total_words.append(sum(r.words for r in results))

    @staticmethod
    def _mean(rows: Sequence[dict[str, float]]) -> dict[str, float]:
        keys = [*(str(b) for b in BUDGETS), "all"]
        out: dict[str, float] = {"n": float(len(rows))}
        for key in keys:
            out[key] = round(sum(r[key] for r in rows) / len(rows), 4) if rows else float("nan")
        return out

    def summary(self) -> dict[str, Any]:
        scored = [r for c in SCORED_CATEGORIES for r in self.by_category.get(c, [])]
        words = sorted(self.total_words)
        return {
            "overall": self._mean(scored),
            "by_category": {
                str(c): {"name": CATEGORY_NAMES.get(c, str(c)), **self._mean(rows)}
                for c, rows in sorted(self.by_category.items())
            },
            "words_in_all_results": {
                "mean": round(sum(words) / len(words), 1) if words else 0.0,
                "median": words[len(words) // 2] if words else 0,
                **{
                    f"share_below_{b}": round(sum(1 for w in words if w < b) / len(words), 4)
                    for b in BUDGETS
                    if words
                },
            },
        }


# ------------------------------------------------------------------- run
def run_locomo(
    samples: Sequence[Sample],
    *,
    url: str | None = None,
    progress: Progress = log_progress,
    data_path: Path | None = None,
) -> dict[str, Any]:
    """Ingest and search every sample over REST (a spawned server unless ``url``)."""
    if url is not None:
        return _run_against(url, samples, progress, data_path, spawned=None)
    with tempfile.TemporaryDirectory(prefix="memos-locomo-") as tmp, ServerProcess(
        Path(tmp) / "data", log_path=Path(tmp) / "server.log"
    ) as server:
        progress(f"server pid {server.pid} on {server.url} (data {tmp})")
        return _run_against(server.url, samples, progress, data_path, spawned=server)


def _run_against(
    url: str,
    samples: Sequence[Sample],
    progress: Progress,
    data_path: Path | None,
    spawned: ServerProcess | None,
) -> dict[str, Any]:
    # A shared server may already hold these sample ids; keep reruns apart.
    suffix = "" if spawned is not None else f"-{uuid.uuid4().hex[:8]}"
    client = CloudClient(url)
    hybrid, bm25 = RecallTally(), RecallTally()
    add_seconds: list[float] = []
    search_seconds: list[float] = []
    raw_seconds = 0.0
    n_messages = 0
    # Baseline for ingest: the default embedder in this process on the very same
    # per-session batches, interleaved with the REST calls so both see the same load.
    raw = build_embedder(load_settings().embedder)
    raw.embed(["warm up the model"])
    try:
        client.search(f"warmup{suffix or '-bench'}", "warm up the embedder")  # loads the model
        for sample in samples:
            user = sample.sample_id + suffix
            started = time.perf_counter()
            for session in sample.sessions:
                t0 = time.perf_counter()
                client.add_session(user, session)
                add_seconds.append(time.perf_counter() - t0)
                n_messages += len(session.turns)
                t0 = time.perf_counter()
                raw.embed([t.content for t in session.turns])
                raw_seconds += time.perf_counter() - t0
            took = time.perf_counter() - started
            n_turns = len(sample.turns)
            progress(
                f"ingested {sample.sample_id}: {len(sample.sessions)} sessions, "
                f"{n_turns} messages in {took:.1f} s incl. the raw-embed baseline; "
                f"REST {n_messages / sum(add_seconds):.0f} msgs/s vs raw embed "
                f"{n_messages / raw_seconds:.0f} texts/s so far"
            )
            turns = sample.turns
            index = BM25([t.content for t in turns])
            started = time.perf_counter()
            for q in sample.questions:
                t0 = time.perf_counter()
                results = client.search(user, q.text, SEARCH_LIMIT)
                search_seconds.append(time.perf_counter() - t0)
                hybrid.add(q.category, results, q.evidence)
                bm25.add(q.category, bm25_search(index, turns, q.text, SEARCH_LIMIT), q.evidence)
            progress(
                f"searched {sample.sample_id}: {len(sample.questions)} questions in "
                f"{time.perf_counter() - started:.1f} s"
            )
    finally:
        client.close()
    server_rss = spawned.rss_mb() if spawned is not None else None
    embed_rate = round(n_messages / raw_seconds, 1) if raw_seconds else None
    hyb, base = hybrid.summary(), bm25.summary()
    ratios = {
        key: (round(hyb["overall"][key] / base["overall"][key], 3)
              if base["overall"].get(key) else None)
        for key in [*(str(b) for b in BUDGETS), "all"]
    }
    ingest_s = sum(add_seconds)
    notes = [
        "fast mode: one memory per message, so a memory is one turn (~20-30 words)",
        f"at most {SEARCH_LIMIT} results per search: when the 25 results hold fewer words "
        "than a budget, that budget is not filled (see words_in_all_results.share_below_*); "
        "recall@1000 is then capped by recall over all 25 results",
        "overall = categories 1-4, averaged per question; category 5 (adversarial) apart",
        "evidence ids normalised ('D8:6; D9:17' -> two ids, 'D:11:26' -> 'D11:26'); "
        "ids absent from the conversation dropped",
    ]
    return {
        "benchmark": "locomo-evidence-recall",
        "machine": machine_info(),
        "config": {
            "data": str(data_path) if data_path else None,
            "server": "spawned" if spawned is not None else url,
            "samples": [s.sample_id for s in samples],
            "memory_limit_number": SEARCH_LIMIT,
            "relativity": 0,
            "budgets_words": list(BUDGETS),
        },
        "counts": {
            "sessions": sum(len(s.sessions) for s in samples),
            "messages": n_messages,
            "questions": dict(
                sorted(Counter(str(q.category) for s in samples for q in s.questions).items())
            ),
            "dropped_evidence_ids": sum(s.dropped_evidence for s in samples),
        },
        "ingest": {
            "messages": n_messages,
            "requests": len(add_seconds),
            "seconds": round(ingest_s, 3),
            "msgs_per_s": round(n_messages / ingest_s, 1) if ingest_s else None,
            "request": latency_stats(add_seconds),
            "raw_embed_same_batches_texts_per_s": embed_rate,
            "ratio_ingest_vs_raw_embed": (
                round(n_messages / ingest_s / embed_rate, 3) if ingest_s and embed_rate else None
            ),
        },
        "search": latency_stats(search_seconds),
        "server_rss_mb": round(server_rss, 1) if server_rss is not None else None,
        "recall": {"hybrid": hyb, "bm25": base},
        "ratio_hybrid_vs_bm25": ratios,
        "notes": notes,
    }


def format_table(results: dict[str, Any]) -> str:
    """A plain-text report of a :func:`run_locomo` result."""
    budgets = [str(b) for b in BUDGETS]
    head = f"{'category':<22}{'n':>5}  " + "  ".join(
        f"{'hyb@' + b:>9}{'bm25@' + b:>10}" for b in [*budgets, "all"]
    )
    lines = [
        "LoCoMo evidence recall (%), memory_limit_number=25, relativity=0",
        head,
        "-" * len(head),
    ]
    hyb, base = results["recall"]["hybrid"], results["recall"]["bm25"]

    def row(label: str, h: dict[str, float], b: dict[str, float]) -> str:
        cells = "  ".join(f"{100 * h[k]:>9.1f}{100 * b[k]:>10.1f}" for k in [*budgets, "all"])
        return f"{label:<22}{int(h['n']):>5}  {cells}"

    for cat, h in hyb["by_category"].items():
        lines.append(row(f"{cat} {h['name']}", h, base["by_category"][cat]))
    lines.append(row("overall (1-4)", hyb["overall"], base["overall"]))
    ratios = results["ratio_hybrid_vs_bm25"]
    lines.append(
        "hybrid / bm25 ratio:  "
        + "  ".join(f"@{k}={ratios[k]}" for k in [*budgets, "all"])
    )
    w = hyb["words_in_all_results"]
    lines.append(
        f"words in all 25 hybrid results: mean {w['mean']}, median {w['median']}; "
        f"share of questions whose 25 results hold < 1000 words: "
        f"{100 * w.get('share_below_1000', 0):.0f}% (budget not filled)"
    )
    ing, srch = results["ingest"], results["search"]
    lines.append(
        f"ingest: {ing['messages']} messages in {ing['seconds']} s = {ing['msgs_per_s']} msgs/s "
        f"(request p50 {ing['request']['p50_ms']} ms); raw embedder on the same batches "
        f"{ing['raw_embed_same_batches_texts_per_s']} texts/s "
        f"(ratio {ing['ratio_ingest_vs_raw_embed']})"
    )
    lines.append(
        f"search: n={srch['n']} p50 {srch['p50_ms']} ms, p95 {srch['p95_ms']} ms, "
        f"mean {srch['mean_ms']} ms (client-side, HTTP included)"
    )
    if results.get("server_rss_mb") is not None:
        lines.append(f"server RSS after the run: {results['server_rss_mb']} MiB")
    return "\n".join(lines)


def write_results(results: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
