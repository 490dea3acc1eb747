"""The fast reader (messages -> memories) and chat_time parsing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from memos.domain.models import MemoryMode, MemoryType, Message, Role, Scope
from memos.errors import InvalidParameter
from memos.reader.fast import FastReader
from memos.text.timeparse import parse_chat_time
from memos.text.tokens import count_tokens

SCOPE = Scope(user_id="reader-user", cube_id="reader-cube", agent_id="ag", app_id="ap")


def message(role: str, content: str, **kw: Any) -> Message:
    return Message(user_id=SCOPE.user_id, cube_id=SCOPE.cube_id, conversation_id="conv",
                   role=Role(role), content=content, **kw)


def test_one_memory_per_turn_with_provenance() -> None:
    msgs = [
        message("user", "I adopted a cat named Miso.", message_id="m-1",
                chat_time="2025-09-12 08:00:00",
                event_time=datetime(2025, 9, 12, 8, tzinfo=UTC)),
        message("assistant", "Miso is a lovely name!", message_id="m-2"),
        message("user", "She is two years old.", chat_time="1:56 pm on 8 May, 2023"),
    ]
    items = FastReader(1024).read(SCOPE, msgs, tags=["pets"], info={"scene": "chat"})
    assert [m.value for m in items] == [
        "I adopted a cat named Miso.", "Miso is a lovely name!", "She is two years old."]
    first, second, third = items
    assert [s.model_dump() for s in first.sources] == [{
        "type": "chat", "message_id": "m-1", "role": "user",
        "chat_time": "2025-09-12 08:00:00", "content": "I adopted a cat named Miso."}]
    assert second.sources[0].message_id == "m-2" and second.sources[0].role == "assistant"
    # a message without a client id is still traceable, by its stored id
    assert third.sources[0].message_id == msgs[2].id
    assert third.sources[0].chat_time == "1:56 pm on 8 May, 2023"
    assert first.memory_type == MemoryType.USER and second.memory_type == MemoryType.LONG_TERM
    for item in items:
        assert (item.user_id, item.cube_id, item.agent_id, item.app_id) == (
            "reader-user", "reader-cube", "ag", "ap")
        assert item.conversation_id == "conv"
        assert item.mode == MemoryMode.FAST
        assert "pets" in item.tags and item.info == {"scene": "chat"}
        assert item.key and item.value.startswith(item.key.rstrip("…"))
    assert first.event_time == datetime(2025, 9, 12, 8, tzinfo=UTC)
    assert third.event_time == msgs[2].create_time  # unparsed -> ingestion time
    assert len({m.id for m in items}) == 3


def test_info_is_not_shared_between_memories() -> None:
    info: dict[str, Any] = {"scene": "chat"}
    items = FastReader().read(SCOPE, [message("user", "a"), message("user", "b")], info=info)
    items[0].info["scene"] = "changed"
    assert items[1].info == {"scene": "chat"} and info == {"scene": "chat"}


@pytest.mark.parametrize("window", [16, 50, 200])
def test_long_message_is_split_under_the_window(window: int) -> None:
    sentences = [f"Sentence number {i} talks about topic {i} in some detail." for i in range(60)]
    text = " ".join(sentences)
    assert count_tokens(text) > 3 * window
    items = FastReader(window).read(SCOPE, [message("user", text, message_id="long")])
    assert len(items) > 1
    for item in items:
        assert count_tokens(item.value) <= window, (count_tokens(item.value), item.value)
        assert item.sources[0].message_id == "long"
    # nothing is lost: every sentence lands in some chunk, in order
    joined = " ".join(m.value for m in items)
    positions = [joined.find(s) for s in sentences]
    assert all(p >= 0 for p in positions) and positions == sorted(positions)


@pytest.mark.parametrize(
    "text",
    [
        "word " * 500,                                              # no sentence ends at all
        "supercalifragilisticexpialidocious" * 40 + ". short.",    # one giant token run
        "。".join(["我今天在杭州的西湖边散步看到了很多美丽的风景"] * 40),  # Chinese
        "，".join(["我今天在杭州的西湖边散步看到了很多美丽的风景"] * 40),  # no sentence end
        "https://example.com/" + "a1b2c3d4" * 200,                 # a long URL
        "a,b;c:d!" * 300,                                          # punctuation heavy
    ],
)
def test_split_never_exceeds_the_window_on_awkward_text(text: str) -> None:
    window = 32
    items = FastReader(window).read(SCOPE, [message("user", text)])
    assert items
    assert all(count_tokens(m.value) <= window for m in items), [
        count_tokens(m.value) for m in items]


def test_short_message_is_not_split() -> None:
    text = "Short and sweet. Two sentences."
    items = FastReader(16).read(SCOPE, [message("user", text)])
    assert [m.value for m in items] == [text]


def test_system_messages_produce_no_memory() -> None:
    items = FastReader().read(SCOPE, [
        message("system", "You are a helpful assistant. Always answer in French."),
        message("user", "Hello"),
    ])
    assert [m.value for m in items] == ["Hello"]


def test_tool_calls_only_assistant_message_produces_a_memory() -> None:
    calls = [{"id": "call_1", "type": "function",
              "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]
    items = FastReader().read(SCOPE, [message("assistant", "", tool_calls=calls,
                                              message_id="tc")])
    assert len(items) == 1
    assert "get_weather" in items[0].value and "Paris" in items[0].value
    assert items[0].sources[0].message_id == "tc"


def test_tool_result_message_produces_a_memory() -> None:
    items = FastReader().read(SCOPE, [message("tool", "22 degrees and sunny",
                                              tool_call_id="call_1")])
    assert [m.value for m in items] == ["22 degrees and sunny"]


def test_blank_messages_produce_no_memory() -> None:
    assert FastReader().read(SCOPE, [message("user", "   \n ")]) == []


def test_long_source_content_is_capped_but_memory_keeps_the_text() -> None:
    text = "x" * 2500
    items = FastReader(100_000).read(SCOPE, [message("user", text)])
    assert items[0].value == text
    assert len(items[0].sources[0].content) <= 2000


# -------------------------------------------------------------- chat_time
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-09-12T08:00:00Z", datetime(2025, 9, 12, 8, tzinfo=UTC)),
        ("2025-09-12T08:00:00+08:00", datetime(2025, 9, 12, 0, tzinfo=UTC)),
        ("2025-09-12 08:00:00", datetime(2025, 9, 12, 8, tzinfo=UTC)),
        ("2025-09-12 08:00", datetime(2025, 9, 12, 8, tzinfo=UTC)),
        ("2025-09-12", datetime(2025, 9, 12, tzinfo=UTC)),
        ("2025/09/12 08:00:00", datetime(2025, 9, 12, 8, tzinfo=UTC)),
        ("2025/09/12", datetime(2025, 9, 12, tzinfo=UTC)),
        ("1:56 pm on 8 May, 2023", datetime(2023, 5, 8, 13, 56, tzinfo=UTC)),
        ("10:04 am on 19 Jan, 2023", datetime(2023, 1, 19, 10, 4, tzinfo=UTC)),
        ("8 May 2023", datetime(2023, 5, 8, tzinfo=UTC)),
        ("May 8, 2023", datetime(2023, 5, 8, tzinfo=UTC)),
        ("2025年9月12日 08:00", datetime(2025, 9, 12, 8, tzinfo=UTC)),
        ("2025年9月12日", datetime(2025, 9, 12, tzinfo=UTC)),
        ("2025年09月12号 8点30分", datetime(2025, 9, 12, 8, 30, tzinfo=UTC)),
        (1757664000, datetime(2025, 9, 12, 8, tzinfo=UTC)),           # epoch seconds
        (1757664000000, datetime(2025, 9, 12, 8, tzinfo=UTC)),        # epoch milliseconds
        (1757664000.5, datetime(2025, 9, 12, 8, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_chat_time_formats(value: Any, expected: datetime) -> None:
    assert parse_chat_time(value) == expected


@pytest.mark.parametrize(
    "value", [None, "", "   ", "yesterday evening", "2025-13-45", "2025年13月45日", True, 1e300,
              -1e20, "0000-00-00"],
)
def test_unreadable_chat_times_are_none(value: Any) -> None:
    assert parse_chat_time(value) is None


def test_parsed_chat_time_becomes_the_memory_event_time(tmp_path: Any) -> None:
    from memos.domain.models import MessageInput
    from memos.service import MemoryService
    from memos.settings import load_settings

    svc = MemoryService.open(load_settings({"data_dir": tmp_path, "embedder": {"kind": "hash"}},
                                           environ={}))
    try:
        # a time that names no instant is refused before anything is written (issue 14)
        with pytest.raises(InvalidParameter, match=r"messages\[1\]\.chat_time"):
            svc.add(user_id="u", conversation_id="c", messages=[
                MessageInput(role="user", content="We met in Lisbon.",
                             chat_time="1:56 pm on 8 May, 2023", message_id="m1"),
                MessageInput(role="user", content="Unparsed time.", chat_time="sometime"),
            ])
        assert svc.list_memories(user_id="u").total == 0
        svc.add(user_id="u", conversation_id="c", messages=[
            MessageInput(role="user", content="We met in Lisbon.",
                         chat_time="1:56 pm on 8 May, 2023", message_id="m1"),
            MessageInput(role="user", content="No time given."),
        ])
        by_value = {m.value: m for m in svc.list_memories(user_id="u").items}
        assert by_value["We met in Lisbon."].event_time == datetime(2023, 5, 8, 13, 56,
                                                                     tzinfo=UTC)
        assert by_value["We met in Lisbon."].sources[0].chat_time == "1:56 pm on 8 May, 2023"
        assert by_value["No time given."].event_time is not None
        stored = svc.messages(user_id="u", conversation_id="c")
        assert [m.chat_time for m in stored] == ["1:56 pm on 8 May, 2023", None]
    finally:
        svc.close()
