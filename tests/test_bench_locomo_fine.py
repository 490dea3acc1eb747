"""Fine-mode LoCoMo bench and the extraction-throughput bench.

Parsing, slicing and the CLI's missing-LLM error need no model. The end-to-end
runs use the real llama.cpp server with SmolLM2-135M (``llama_server``) on a
tiny slice: they assert structure, provenance and accounting, never quality
(the 135M model's memories, answers and verdicts are noise).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from memos.bench import locomo as lb
from memos.bench.extract_throughput import format_report, pick_windows, run_extract_throughput
from memos.bench.local_llm import UsageLLM
from memos.bench.locomo_fine import (
    FineSample,
    format_table,
    load_fine_samples,
    parse_verdict,
    pick_questions,
    run_locomo_fine,
    session_windows,
)
from memos.cli.main import cli
from memos.llm.base import ChatMessage, JsonSchema
from memos.settings import load_settings

pytestmark = pytest.mark.skipif(not lb.DEFAULT_DATA.exists(), reason="LoCoMo data not available")


# ------------------------------------------------------------------ parser
@pytest.mark.parametrize(
    ("reply", "label"),
    [
        ('{"reasoning": "Same topic.", "label": "CORRECT"}', "CORRECT"),
        ('{"reasoning": "Different year.", "label": "WRONG"}', "WRONG"),
        ('```json\n{"label": "correct"}\n```', "CORRECT"),
        ('{"label": "Incorrect."}', "WRONG"),
        ("The dates match, so the answer is CORRECT", "CORRECT"),
        ("It names another city. WRONG", "WRONG"),
        ('{"label": "maybe"} because it is WRONG', "WRONG"),
        ("It is CORRECT or maybe WRONG", None),  # both labels: unusable
        ("I cannot tell.", None),
        ("the answer is correct", None),  # labels are upper case outside JSON
        ('{"reasoning": "cut off', None),
        ("", None),
    ],
)
def test_parse_verdict(reply: str, label: str | None) -> None:
    assert parse_verdict(reply) == label


# ----------------------------------------------------------------- slicing
def test_fine_samples_keep_the_fast_benchs_questions_with_gold_answers() -> None:
    [full] = load_fine_samples(lb.DEFAULT_DATA, limit_samples=1)
    [fast] = lb.load_samples(lb.DEFAULT_DATA, limit_samples=1)
    assert [(q.text, q.evidence) for q in full.questions] == [
        (q.text, q.evidence) for q in fast.questions
    ]
    assert all(q.answer for q in full.questions)

    [cut] = load_fine_samples(lb.DEFAULT_DATA, limit_samples=1, limit_sessions=2, limit_questions=5)
    kept = {t.dia_id for t in cut.sample.turns}
    assert len(cut.sample.sessions) == 2 and len(cut.questions) == 5
    assert all(set(q.evidence) <= kept for q in cut.questions)
    assert {q.category for q in cut.questions} >= {1, 2, 3}  # taken in turn by category
    assert 5 not in {q.category for q in cut.questions}


def test_pick_questions_round_robin_keeps_file_order() -> None:
    [sample] = load_fine_samples(lb.DEFAULT_DATA, limit_samples=1)
    picked = pick_questions(sample.questions, 8)
    order = [sample.questions.index(q) for q in picked]
    assert order == sorted(order) and len(picked) == 8
    assert pick_questions(sample.questions, None) == sample.questions


def test_windows_cover_each_session_in_order() -> None:
    [sample] = lb.load_samples(lb.DEFAULT_DATA, limit_samples=1, max_sessions=3)
    windows = session_windows(sample.sessions, 7)
    assert [t for w in windows for t in w.turns] == sample.turns
    assert all(1 <= len(w.turns) <= 7 for w in windows)
    assert all(len({w.session.conversation_id}) == 1 for w in windows)
    [message] = windows[0].inputs()[:1]
    assert message.message_id == "D1:1" and message.chat_time == sample.sessions[0].chat_time
    assert len(pick_windows([sample], 3, 7)) == 3


# -------------------------------------------------------------------- CLI
def test_cli_fine_mode_without_an_llm_says_how_to_pass_one() -> None:
    env = {"MEMOS_LLM_BACKEND": "none", "MEMOS_LLM_BASE_URL": None, "MEMOS_LLM_MODEL": None}
    result = CliRunner().invoke(
        cli, ["bench", "locomo", "--mode", "fine", "--limit-samples", "1"], env=env
    )
    assert result.exit_code == 1, result.output
    assert "fine mode needs an LLM" in result.output
    assert "--llm-base-url" in result.output and "MEMOS_LLM_BASE_URL" in result.output
    extract = CliRunner().invoke(cli, ["bench", "extract", "--windows", "1"], env=env)
    assert extract.exit_code == 1 and "--llm-base-url" in extract.output


def test_cli_fast_mode_refuses_fine_only_options() -> None:
    result = CliRunner().invoke(cli, ["bench", "locomo", "--judge", "--limit-sessions", "1"])
    assert result.exit_code == 2
    assert "--judge, --limit-sessions only apply to --mode fine" in result.output


# ------------------------------------------------------- real llama.cpp server
class FailFirstWindow:
    """Answers the first extraction call (and its repair) with junk, then defers to ``inner``."""

    def __init__(self, inner: UsageLLM) -> None:
        self.inner = inner
        self.junk_left = 2
        self.usage = inner.usage

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
        extraction = json_schema is not None and "memories" in json_schema.get("properties", {})
        if extraction and self.junk_left:
            self.junk_left -= 1
            return "no JSON here"
        return self.inner.chat(
            messages, json_schema=json_schema, max_tokens=max_tokens, temperature=temperature
        )

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def smol(llama_server: Any) -> Iterator[UsageLLM]:
    llm = UsageLLM(llama_server.base_url, llama_server.model, timeout_s=240, max_tokens=256)
    yield llm
    llm.close()


def tiny_slice(turns: int = 4, questions: int = 2) -> FineSample:
    """conv-26 cut to the first ``turns`` turns of session 1 and questions about them."""
    [sample] = load_fine_samples(lb.DEFAULT_DATA, limit_samples=1, limit_sessions=1)
    session = sample.sample.sessions[0]
    cut = replace(session, turns=session.turns[:turns])
    kept = {t.dia_id for t in cut.turns}
    qs = tuple(q for q in sample.questions if set(q.evidence) <= kept and q.category != 5)
    return FineSample(replace(sample.sample, sessions=(cut,)), qs[:questions])


@pytest.mark.timeout(420)
def test_fine_run_with_judge_against_the_real_model(smol: UsageLLM, tmp_path: Path) -> None:
    sample = tiny_slice()
    assert sample.questions, "conv-26 has questions about its first turns"
    lines: list[str] = []
    settings = load_settings({"embedder": {"kind": "hash"}}, environ={})
    results = run_locomo_fine(
        [sample],
        llm=FailFirstWindow(smol),
        judge=True,
        window_turns=2,
        settings=settings,
        progress=lines.append,
    )

    ex = results["extraction"]
    assert ex["windows"] == 2 and ex["messages"] == 4
    # the first window's junk is a counted failure (its fast memories stay), not a crash
    assert ex["failed"] >= 1 and ex["completed"] + ex["failed"] + ex["raised"] == 2
    assert ex["fast_memories_kept"] >= 2
    assert 0 < ex["failure_rate"] <= 1
    assert ex["errors_first"] and "repair" in ex["errors_first"][0]
    assert ex["llm_usage"]["calls"] >= 1 and ex["llm_usage"]["prompt_tokens"] > 0
    assert ex["llm_usage"]["calls_without_server_usage"] == 0  # llama.cpp reports usage
    assert ex["sources"]["fine_memories_citing_only_window_messages"] == ex["fine_memories"]
    assert any(line.startswith("windows 2/2") for line in lines)

    recall = results["recall"]
    assert recall["overall"]["n"] == len(sample.questions)
    # the fast-mode baseline on the same slice: one memory per turn finds every turn
    fast = results["recall_fast_same_slice"]["overall"]
    assert fast["n"] == recall["overall"]["n"] and fast["all"] == 1.0
    for key in ("200", "500", "1000", "all"):
        assert 0.0 <= recall["overall"][key] <= 1.0
    # every returned memory's sources are dia ids of the slice: the failed window's fast
    # memories cite their own turn, fine ones the turns the model (or the window) gave
    assert results["results_checked"] > 0
    assert results["results_citing_no_or_unknown_dia_ids"] == 0

    judge = results["judge"]
    rows = judge["per_question"]
    assert len(rows) == len(sample.questions) == judge["overall"]["n"]
    assert judge["overall"]["correct"] == sum(r["label"] == "CORRECT" for r in rows)
    for row in rows:
        assert row["label"] in ("CORRECT", "WRONG", None)
        assert "error" in row or isinstance(row["generated"], str)
    assert judge["unparsable_verdicts"] == sum(
        r["label"] is None and "error" not in r for r in rows
    )
    assert judge["answer_usage"]["calls"] >= 2 * len(rows)  # same client answers and judges
    table = format_table(results)
    assert "overall (1-4)" in table and "J %" in table
    out = tmp_path / "fine.json"
    out.write_text(json.dumps(results))
    assert json.loads(out.read_text())["benchmark"] == "locomo-fine"


@pytest.mark.timeout(300)
def test_extract_throughput_against_the_real_model(smol: UsageLLM) -> None:
    [sample] = lb.load_samples(lb.DEFAULT_DATA, limit_samples=1, max_sessions=1)
    windows = pick_windows([sample], 1, 3)
    results = run_extract_throughput(windows, smol, usd_per_m_input=0.1, usd_per_m_output=0.4)
    assert results["windows"] == 1 and results["messages"] == 3
    assert results["ok"] + results["failed"] + results["llm_errors"] == 1
    assert results["windows_per_s"] > 0 and results["prompt_tokens"] > 0
    assert results["token_counts"] == "server usage"
    per_1k = results["per_1k_messages"]
    assert per_1k["seconds"] > 0 and per_1k["prompt_tokens"] > 0 and per_1k["usd"] > 0
    [row] = results["per_window"]
    assert row["first_dia_id"] == "D1:1" and row["prompt_tokens"] > 0
    assert "windows/s" in format_report(results)
