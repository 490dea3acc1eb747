"""Fine-extraction throughput: :class:`FineReader` over LoCoMo windows against one endpoint.

No store and no embedder: each window (``window_turns`` consecutive turns of a
LoCoMo session, roles, content, ``message_id`` and ``chat_time`` as the LoCoMo
benches send them) is one ``FineReader.read`` call, run one after another. The
report gives windows/s, messages/s, prompt and completion tokens/s (from the
``usage`` block the server returns; replies without one are estimated with
:func:`memos.text.tokens.count_tokens` and counted), the failure rate, and the
cost of 1,000 messages: seconds of this endpoint's time and tokens, which price
any hosted API (``usd_per_m_input``/``usd_per_m_output`` do the sum).

Token rates are end to end over sequential requests (prompt processing and
generation share the wall clock), not the server's decode speed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memos.bench import Progress, latency_stats, log_progress, machine_info
from memos.bench import locomo as lb
from memos.bench.local_llm import usage_of
from memos.bench.locomo_fine import DEFAULT_WINDOW_TURNS, Eta, Window, session_windows, warm_up
from memos.domain.models import Message, Role, Scope
from memos.errors import MemosError
from memos.llm.base import LLM
from memos.reader.fine import ExtractionError, FineReader
from memos.text.timeparse import parse_chat_time

DEFAULT_OUT = Path("bench/results/extract_throughput.json")
DEFAULT_WINDOWS = 20
SCOPE = Scope.for_user("extract-bench")


def pick_windows(
    samples: Sequence[lb.Sample], n_windows: int, window_turns: int = DEFAULT_WINDOW_TURNS
) -> list[Window]:
    """The first ``n_windows`` windows, conversation by conversation, session by session."""
    out: list[Window] = []
    for sample in samples:
        out.extend(session_windows(sample.sessions, window_turns))
        if len(out) >= n_windows:
            break
    return out[:n_windows]


def window_messages(window: Window) -> list[Message]:
    when = window.session.chat_time or None
    return [
        Message(
            message_id=t.dia_id,
            user_id=SCOPE.user_id,
            cube_id=SCOPE.cube_id,
            conversation_id=window.session.conversation_id,
            role=Role(t.role),
            content=t.content,
            chat_time=when,
            event_time=parse_chat_time(when),
        )
        for t in window.turns
    ]


def _per_1k(value: float, messages: int, digits: int = 1) -> float | None:
    return round(value * 1000.0 / messages, digits) if messages else None


def run_extract_throughput(
    windows: Sequence[Window],
    llm: LLM,
    *,
    usd_per_m_input: float | None = None,
    usd_per_m_output: float | None = None,
    progress: Progress = log_progress,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Extract every window in turn and report rates, failures and cost per 1k messages."""
    reader = FineReader(llm)
    load_start = os.getloadavg()
    warm_up(llm)
    before = usage_of(llm)
    rows: list[dict[str, Any]] = []
    seconds: list[float] = []
    eta = Eta("windows", len(windows), progress)
    wall = time.perf_counter()
    for done, window in enumerate(windows, 1):
        start_usage = usage_of(llm)
        t0 = time.perf_counter()
        row: dict[str, Any] = {
            "conversation": window.session.conversation_id,
            "first_dia_id": window.turns[0].dia_id,
            "messages": len(window.turns),
        }
        try:
            extraction = reader.read(SCOPE, window_messages(window))
            row.update(
                status="ok" if not extraction.failed_windows else "partial",
                attempts=extraction.attempts,
                reader_windows=extraction.windows,
                memories=len(extraction.items),
            )
        except ExtractionError as exc:
            row.update(status="failed", error=exc.reason[:200])
        except MemosError as exc:  # LLMError: unreachable, HTTP error, context overflow
            row.update(status="llm_error", error=f"{type(exc).__name__}: {exc}"[:200])
        took = time.perf_counter() - t0
        seconds.append(took)
        used = usage_of(llm).minus(start_usage)
        row.update(
            seconds=round(took, 3),
            prompt_tokens=used.prompt_tokens,
            completion_tokens=used.completion_tokens,
        )
        rows.append(row)
        eta.step(done, f"{sum(r['status'] in ('failed', 'llm_error') for r in rows)} failed")
    elapsed = time.perf_counter() - wall
    usage = usage_of(llm).minus(before)
    n = len(rows)
    messages = sum(r["messages"] for r in rows)
    failed = sum(r["status"] == "failed" for r in rows)
    errors = sum(r["status"] == "llm_error" for r in rows)
    per_1k: dict[str, Any] = {
        "seconds": _per_1k(elapsed, messages),
        "windows": _per_1k(n, messages),
        "llm_calls": _per_1k(usage.calls, messages),
        "prompt_tokens": _per_1k(usage.prompt_tokens, messages, 0),
        "completion_tokens": _per_1k(usage.completion_tokens, messages, 0),
    }
    if usd_per_m_input is not None or usd_per_m_output is not None:
        usd = (
            usage.prompt_tokens * (usd_per_m_input or 0.0)
            + usage.completion_tokens * (usd_per_m_output or 0.0)
        ) / 1e6
        per_1k["usd"] = _per_1k(usd, messages, 4)
    return {
        "benchmark": "extract-throughput",
        "machine": machine_info(),
        "config": {
            "llm": llm.name,
            "window_turns": max((len(w.turns) for w in windows), default=0),
            "sequential": True,
            "loadavg_1_5_15_at_start": [round(x, 2) for x in load_start],
            "usd_per_m_input": usd_per_m_input,
            "usd_per_m_output": usd_per_m_output,
            **(config or {}),
        },
        "windows": n,
        "messages": messages,
        "ok": n - failed - errors,
        "failed": failed,
        "llm_errors": errors,
        "failure_rate": round((failed + errors) / n, 4) if n else None,
        "partial": sum(r["status"] == "partial" for r in rows),
        "llm_calls_per_window": round(usage.calls / n, 3) if n else None,
        "memories": sum(r.get("memories", 0) for r in rows),
        "seconds": round(elapsed, 3),
        "windows_per_s": round(n / elapsed, 4) if elapsed else None,
        "messages_per_s": round(messages / elapsed, 3) if elapsed else None,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "prompt_tokens_per_s": round(usage.prompt_tokens / elapsed, 1) if elapsed else None,
        "completion_tokens_per_s": round(usage.completion_tokens / elapsed, 1) if elapsed else None,
        "token_counts": "server usage"
        if usage.estimated_calls == 0
        else f"estimated with count_tokens for {usage.estimated_calls} of {usage.calls} calls",
        "llm_calls": usage.calls,
        "window": latency_stats(seconds),
        "per_1k_messages": per_1k,
        "loadavg_1_5_15_at_end": [round(x, 2) for x in os.getloadavg()],
        "per_window": rows,
        "notes": [
            "one FineReader.read per window, sequential; a repair retry is a second call and "
            "its tokens and seconds are included",
            "tokens/s are end-to-end (prompt processing and generation share the clock)",
            "per_1k_messages.seconds = wall seconds of this endpoint per 1,000 messages; "
            "tokens per 1k messages times a provider's prices gives the API cost",
        ],
    }


def format_report(r: dict[str, Any]) -> str:
    k = r["per_1k_messages"]
    lines = [
        f"fine extraction with {r['config']['llm']}: {r['windows']} windows, "
        f"{r['messages']} messages in {r['seconds']} s",
        f"  {r['windows_per_s']} windows/s, {r['messages_per_s']} messages/s; "
        f"window p50 {r['window']['p50_ms'] / 1000:.2f} s, "
        f"p95 {r['window']['p95_ms'] / 1000:.2f} s",
        f"  {r['prompt_tokens_per_s']} prompt tokens/s, {r['completion_tokens_per_s']} "
        f"completion tokens/s ({r['token_counts']})",
        f"  failures {r['failed']} extraction + {r['llm_errors']} LLM errors of {r['windows']} "
        f"({100 * (r['failure_rate'] or 0):.1f}%), {r['llm_calls_per_window']} LLM calls/window "
        "(repair retries included), "
        f"{r['memories']} memories",
        f"  per 1k messages: {k['seconds']} s, {k['prompt_tokens']:.0f} prompt + "
        f"{k['completion_tokens']:.0f} completion tokens, {k['llm_calls']} calls"
        + (f", ${k['usd']}" if "usd" in k else ""),
    ]
    return "\n".join(lines)
