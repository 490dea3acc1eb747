"""Windowing of long chats in the fine reader: split points, overlap, tool units, merge.

A fake LLM answers from the transcript it is shown, so each test can see what
every window contained and reply per window; the last test reads a long chat
with the real llama.cpp server (SmolLM2-135M), asserting structure only.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from memos.domain.models import MemoryType, Message, Role, Scope
from memos.llm.base import ChatMessage, JsonSchema, LLMError
from memos.llm.openai_compat import OpenAIChatLLM
from memos.reader.fine import ExtractionError, FineReader
from memos.reader.windows import (
    TRUNCATED,
    Window,
    merge_items,
    split_windows,
    tool_units,
    unit_caps,
)
from memos.text.timeparse import parse_chat_time

SCOPE = Scope.for_user("alice")
CHAT_TIME = "2025-09-12 08:00:00"
LINE = re.compile(r"^\[(\d+)\] \((\w+)[^)]*\) (.*)$", re.MULTILINE)

Reply = Callable[[int, list[str]], str]


class TranscriptLLM:
    """Calls ``reply(call_number, window_lines)``; records every window's message texts."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.windows: list[list[str]] = []
        self.calls = 0

    @property
    def name(self) -> str:
        return "transcript"

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        json_schema: JsonSchema | None = None,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> str:
        self.calls += 1
        lines = [m.group(3) for m in LINE.finditer(messages[1]["content"])]
        if len(messages) == 2:  # not a repair round
            self.windows.append(lines)
        return self.reply(len(self.windows) - 1, lines)

    def close(self) -> None:
        pass


def msg(mid: str, content: str, role: str = "user", **kw: Any) -> Message:
    return Message(
        message_id=mid,
        user_id="alice",
        cube_id="alice",
        conversation_id="c1",
        role=Role(role),
        content=content,
        chat_time=CHAT_TIME,
        event_time=parse_chat_time(CHAT_TIME),
        **kw,
    )


def facts(*entries: tuple[str, list[int]]) -> str:
    return json.dumps(
        {
            "memories": [
                {"value": value, "memory_type": "UserMemory", "sources": sources}
                for value, sources in entries
            ],
            "preferences": [],
        }
    )


def chat_of(n: int, words: int = 30) -> list[Message]:
    """``n`` user messages m1..mn of about ``words`` tokens each, told apart by their number."""
    return [msg(f"m{i}", f"message {i} " + "word " * (words - 2)) for i in range(1, n + 1)]


def numbers(lines: list[str]) -> list[int]:
    return [int(line.split()[1]) for line in lines]


def sources_of(item: Any) -> list[str | None]:
    return [s.message_id for s in item.sources]


# ------------------------------------------------------------- split points
def test_split_windows_packs_units_greedily_with_overlap() -> None:
    units = [[i] for i in range(6)]
    windows = split_windows([40] * 6, units, budget=100, overlap_messages=1)
    assert windows == [
        Window(positions=(0, 1)),
        Window(positions=(1, 2), overlap=1),
        Window(positions=(2, 3), overlap=1),
        Window(positions=(3, 4), overlap=1),
        Window(positions=(4, 5), overlap=1),
    ]
    # no overlap asked: plain consecutive windows, nothing lost or repeated
    plain = split_windows([40] * 6, units, budget=100, overlap_messages=0)
    assert [w.positions for w in plain] == [(0, 1), (2, 3), (4, 5)]
    # everything fits: one window, as before windowing existed
    assert split_windows([10] * 6, units, budget=100) == [Window(positions=tuple(range(6)))]


def test_overlap_is_dropped_when_the_next_unit_needs_the_room() -> None:
    windows = split_windows([30, 30, 90], [[0], [1], [2]], budget=100, overlap_messages=2)
    assert windows == [Window(positions=(0, 1)), Window(positions=(2,))]


def test_reader_makes_one_call_per_window_and_covers_every_message() -> None:
    llm = TranscriptLLM(lambda n, lines: facts())
    chat = chat_of(7)  # ~48 tokens a line with its header: two a window
    extraction = FineReader(llm, window_tokens=100, overlap_messages=1).read(SCOPE, chat)
    assert extraction.windows == len(llm.windows) == llm.calls == extraction.attempts
    seen = [numbers(lines) for lines in llm.windows]
    assert seen[0][0] == 1 and seen[-1][-1] == 7
    for before, after in zip(seen, seen[1:], strict=False):
        assert after[0] == before[-1]  # one message of overlap
    assert sorted({n for window in seen for n in window}) == list(range(1, 8))
    assert extraction.failed_windows == [] and extraction.errors == []


def test_short_chat_is_still_one_call() -> None:
    llm = TranscriptLLM(lambda n, lines: facts(("The user is Alice.", [1])))
    extraction = FineReader(llm).read(SCOPE, chat_of(5))
    assert llm.calls == 1 and extraction.windows == 1 and len(extraction.items) == 1


# ------------------------------------------------------------- overlap dedup
def test_duplicates_from_the_overlap_are_merged_with_their_sources() -> None:
    def reply(n: int, lines: list[str]) -> str:
        nums = numbers(lines)
        # every window reports the fact of its first and last message
        return facts(
            (f"Fact from message {nums[0]}.", [1]),
            (f"Fact from message {nums[-1]}.", [len(nums)]),
        )

    llm = TranscriptLLM(reply)
    extraction = FineReader(llm, window_tokens=100, overlap_messages=1).read(SCOPE, chat_of(7))
    values = [m.value for m in extraction.items]
    assert len(values) == len(set(values))  # the overlap's repeats were folded
    boundary = numbers(llm.windows[1])[0]  # the message both windows 1 and 2 saw
    [shared] = [m for m in extraction.items if m.value == f"Fact from message {boundary}."]
    assert sources_of(shared) == [f"m{boundary}"]


def test_merge_keeps_the_union_of_sources_in_chat_order() -> None:
    chat = chat_of(3)
    llm = TranscriptLLM(lambda n, lines: facts(("The user likes tea.", [len(lines)])))
    a = FineReader(llm).read(SCOPE, chat[2:]).items[0]
    b = FineReader(llm).read(SCOPE, chat[:1]).items[0]
    b = b.model_copy(update={"value": "the user  LIKES tea.", "confidence": 0.95})
    order = {m.message_id or "": i for i, m in enumerate(chat)}
    [merged] = merge_items([a, b], order)
    assert merged.id == a.id and sources_of(merged) == ["m1", "m3"]
    assert merged.confidence == 0.95
    other_type = b.model_copy(update={"memory_type": MemoryType.LONG_TERM})
    assert len(merge_items([a, other_type], order)) == 2


# ------------------------------------------------------------- tool units
def tool_chat() -> list[Message]:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    return [
        msg("t1", "message 1 " + "word " * 28),
        msg("t2", "message 2 " + "word " * 28),
        msg("t3", "", "assistant", tool_calls=[call]),
        msg("t4", "message 4 " + "sunny " * 28, "tool", tool_call_id="call_1"),
        msg("t5", "message 5 " + "word " * 28),
    ]


def test_tool_units_join_a_call_with_its_results() -> None:
    assert tool_units(tool_chat()) == [[0], [1], [2, 3], [4]]
    chat = tool_chat()
    # a result that arrives after an unrelated message still joins its call
    chat.insert(3, msg("x", "message x in between"))
    assert tool_units(chat) == [[0], [1], [2, 3, 4], [5]]


def test_a_tool_call_and_its_result_land_in_the_same_window() -> None:
    def reply(n: int, lines: list[str]) -> str:
        return json.dumps({"memories": [], "preferences": [], "tool_memories": []})

    llm = TranscriptLLM(reply)
    # m1, m2 and the call would fit in 150 tokens, the result no longer: the cut
    # moves before the call instead of between the call and its result
    extraction = FineReader(llm, window_tokens=150, overlap_messages=1).read(SCOPE, tool_chat())
    assert extraction.windows == 3
    assert [numbers(w)[0] for w in (llm.windows[0], llm.windows[2])] == [1, 5]
    [call, result] = llm.windows[1]
    assert call.startswith("called get_weather") and result.startswith("message 4")


def test_tool_schema_is_asked_only_of_windows_with_tool_use() -> None:
    schemas: list[set[str]] = []

    class SchemaSpy(TranscriptLLM):
        def chat(self, messages: Sequence[ChatMessage], **kw: Any) -> str:
            schemas.append(set((kw.get("json_schema") or {}).get("properties", {})))
            return super().chat(messages, **kw)

    llm = SchemaSpy(lambda n, lines: json.dumps({"memories": [], "preferences": []}))
    FineReader(llm, window_tokens=150, overlap_messages=0).read(SCOPE, tool_chat())
    assert {"tool_memories" in s for s in schemas} == {True, False}


# ------------------------------------------------------------- partial failure
def test_a_failed_window_is_reported_and_the_others_still_count() -> None:
    def reply(n: int, lines: list[str]) -> str:
        if n == 1:
            return "not json at all"  # the first reply and its repair both fail
        return facts((f"Fact of window {n}.", [1]))

    llm = TranscriptLLM(reply)
    extraction = FineReader(llm, window_tokens=100, overlap_messages=1).read(SCOPE, chat_of(7))
    assert extraction.windows >= 3
    [failure] = extraction.failed_windows
    assert failure.window == 1 and failure.raw == "not json at all"
    assert failure.message_ids == [f"m{n}" for n in numbers(llm.windows[1])]
    assert "after one repair retry" in failure.reason
    assert extraction.errors == [f"window 2: {failure.reason}"]
    assert [m.value for m in extraction.items] == [
        f"Fact of window {n}." for n in range(extraction.windows) if n != 1
    ]
    assert extraction.attempts == extraction.windows + 1  # one repair round


def test_every_window_failing_raises_with_each_failure() -> None:
    llm = TranscriptLLM(lambda n, lines: "nope")
    with pytest.raises(ExtractionError) as info:
        FineReader(llm, window_tokens=100).read(SCOPE, chat_of(7))
    windows = len(llm.windows)
    assert windows >= 2 and llm.calls == 2 * windows
    assert info.value.reason.startswith(f"all {windows} windows failed")
    assert [f["window"] for f in info.value.data["failed_windows"]] == list(range(windows))


def test_a_provider_error_after_a_good_window_stops_and_keeps_what_worked() -> None:
    def reply(n: int, lines: list[str]) -> str:
        if n >= 1:
            raise LLMError("connection refused")
        return facts(("The user is Alice.", [1]))

    llm = TranscriptLLM(reply)
    extraction = FineReader(llm, window_tokens=100).read(SCOPE, chat_of(7))
    assert llm.calls == 2  # no call after the provider failed
    assert [m.value for m in extraction.items] == ["The user is Alice."]
    assert [f.window for f in extraction.failed_windows] == list(range(1, extraction.windows))

    def down(n: int, lines: list[str]) -> str:
        raise LLMError("connection refused")

    with pytest.raises(LLMError):
        FineReader(TranscriptLLM(down), window_tokens=100).read(SCOPE, chat_of(7))


# ------------------------------------------------------------- sources mapping
def test_sources_map_window_numbers_to_the_full_chat() -> None:
    def reply(n: int, lines: list[str]) -> str:
        return facts((f"Window {n} fact.", [2, len(lines)]), (f"Window {n} guess.", [99]))

    llm = TranscriptLLM(reply)
    chat = chat_of(9)
    extraction = FineReader(llm, window_tokens=150, overlap_messages=1).read(SCOPE, chat)
    assert extraction.windows >= 3
    for n, lines in enumerate(llm.windows):
        ids = [f"m{k}" for k in numbers(lines)]
        [fact] = [m for m in extraction.items if m.value == f"Window {n} fact."]
        assert sources_of(fact) == [ids[1], ids[-1]]
        assert fact.sources[0].content == chat[int(ids[1][1:]) - 1].content
        # no valid source number: the entry cites its own window, not the whole chat
        [guess] = [m for m in extraction.items if m.value == f"Window {n} guess."]
        assert sources_of(guess) == ids


# ------------------------------------------------------------- truncation
def test_an_overlong_message_is_truncated_for_the_prompt_not_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    long_text = "message 2 " + "lorem ipsum dolor " * 200  # ~600 tokens
    chat = [msg("m1", "message 1 hello"), msg("m2", long_text), msg("m3", "message 3 bye")]
    llm = TranscriptLLM(lambda n, lines: facts((f"Story {numbers(lines)[0]}.", [1])))
    with caplog.at_level(logging.INFO, logger="memos.reader.fine"):
        extraction = FineReader(llm, window_tokens=100).read(SCOPE, chat)
    shown = [line for lines in llm.windows for line in lines if line.startswith("message 2")]
    assert shown and all(line.endswith(TRUNCATED.strip()) for line in shown)
    assert all(len(line) < len(long_text) // 3 for line in shown)
    assert "m2 has ~" in caplog.text and "its sources keep the text" in caplog.text
    [story] = [m for m in extraction.items if sources_of(m) == ["m2"]]
    assert story.sources[0].content == long_text[:2000]


def test_unit_caps_share_the_budget_fairly() -> None:
    assert unit_caps([10, 500], 100) == [10, 90]
    assert unit_caps([300, 500], 100) == [50, 50]
    assert sum(unit_caps([5, 7, 900, 20], 200)) <= 200


# ------------------------------------------------------- real llama.cpp server
@pytest.fixture
def real_llm(llama_server: Any) -> Iterator[OpenAIChatLLM]:
    client = OpenAIChatLLM(llama_server.base_url, llama_server.model, timeout_s=300)
    yield client
    client.close()


LONG_CHAT = [
    ("user", "Hi, I'm Alice. I moved to Hangzhou last spring for a new job."),
    ("assistant", "Welcome to Hangzhou, Alice! What is the new job?"),
    ("user", "I am a backend engineer at a logistics company, mostly Go and Postgres."),
    ("assistant", "Nice stack. How do you like the city so far?"),
    ("user", "I love West Lake. I cycle around it every Saturday morning."),
    ("assistant", "That sounds lovely. Any other hobbies?"),
    ("user", "I play badminton on Wednesdays and I am learning to cook Sichuan food."),
    ("assistant", "Great. Anything I should keep in mind when helping you?"),
    ("user", "Please keep replies short and skip the emojis."),
]


@pytest.mark.timeout(600)
def test_real_model_reads_a_long_chat_in_windows(real_llm: OpenAIChatLLM) -> None:
    chat = [msg(f"r{i}", text, role) for i, (role, text) in enumerate(LONG_CHAT, 1)]
    calls: list[str] = []
    inner = real_llm.chat

    def counting_chat(messages: Sequence[ChatMessage], **kw: Any) -> str:
        calls.append(messages[1]["content"])
        return inner(messages, **kw)

    real_llm.chat = counting_chat  # type: ignore[method-assign]
    # ~310 tokens of chat in windows of 200: two calls, two messages shared
    ids = {m.message_id for m in chat}
    try:
        extraction = FineReader(real_llm, window_tokens=200).read(SCOPE, chat)
    except ExtractionError as exc:  # both windows unusable: each failure recorded
        assert exc.reason.startswith("all 2 windows failed")
        assert [f.window for f in exc.failures] == [0, 1] and len(calls) == 4
        assert {i for f in exc.failures for i in f.message_ids} == ids
        extraction = None
    assert len(calls) >= 2
    assert "[1] (user, 2025-09-12 08:00:00) Hi, I'm Alice." in calls[0]
    assert "Please keep replies short" in calls[-1] and "Hi, I'm Alice" not in calls[-1]
    if extraction is None:
        return
    assert extraction.windows == 2 and len(extraction.failed_windows) < 2
    for failure in extraction.failed_windows:  # one window may fail, recorded as such
        assert failure.reason and set(failure.message_ids) <= ids
    for item in extraction.items:
        assert item.key.strip() and item.value.strip()
        assert item.sources and {s.message_id for s in item.sources} <= ids
    keys = [(m.memory_type, " ".join(m.value.casefold().split())) for m in extraction.items]
    assert len(keys) == len(set(keys))
