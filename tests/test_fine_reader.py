"""Fine-mode reader: prompt, schema, tolerant parsing, repair retry, dates, sources.

The parsing and retry logic is tested with a scripted LLM (its replies are
fixed strings); the pipeline is then tested against the real llama.cpp server
with SmolLM2-135M, asserting structure and provenance, never content quality
(nor whether its output parses: that differs between CPUs, see docs/llm_output.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from memos.domain.models import (
    DETAIL_KEY,
    MemoryMode,
    MemoryStatus,
    MemoryType,
    Message,
    MessageInput,
    Role,
    Scope,
)
from memos.errors import LLMNotConfigured
from memos.llm.base import ChatMessage, JsonSchema
from memos.llm.openai_compat import OpenAIChatLLM
from memos.reader.fine import (
    BadOutput,
    ExtractionError,
    FineReader,
    extraction_schema,
    parse_extraction,
)
from memos.reader.prompts import detect_language
from memos.service import MemoryService
from memos.settings import Settings, load_settings
from memos.text.reldate import resolve_relative_dates
from memos.text.timeparse import parse_chat_time

SCOPE = Scope.for_user("alice")


def make_settings(data_dir: Path) -> Settings:
    return load_settings({"data_dir": data_dir, "embedder": {"kind": "hash"}}, environ={})


CHAT_TIME = "2025-09-12 08:00:00"  # a Friday


def msg(role: str, content: str, mid: str, chat_time: str | None = CHAT_TIME, **kw: Any) -> Message:
    return Message(
        message_id=mid,
        user_id="alice",
        cube_id="alice",
        conversation_id="c1",
        role=Role(role),
        content=content,
        chat_time=chat_time,
        event_time=parse_chat_time(chat_time),
        **kw,
    )


WINDOW = [
    msg("user", "I moved to Hangzhou last spring and I fly to Beijing tomorrow.", "m1"),
    msg("assistant", "Noted: Hangzhou, and a trip to Beijing.", "m2"),
    msg("user", "Keep replies short, please.", "m3"),
]

GOOD = {
    "memories": [
        {
            "key": "Home city",
            "value": "The user lives in Hangzhou and flies to Beijing tomorrow.",
            "memory_type": "UserMemory",
            "tags": ["travel", "city"],
            "confidence": 0.9,
            "sources": [1],
        }
    ],
    "preferences": [
        {
            "preference": "The user wants short replies.",
            "preference_type": "explicit_preference",
            "reasoning": "The user said so.",
            "sources": [3],
        }
    ],
}


class ScriptedLLM:
    """Answers each chat call with the next scripted reply and records the calls."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[list[ChatMessage], JsonSchema | None, int | None]] = []

    @property
    def name(self) -> str:
        return "scripted"

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        json_schema: JsonSchema | None = None,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> str:
        self.calls.append((list(messages), json_schema, max_tokens))
        return self.replies.pop(0)

    def close(self) -> None:
        pass


# ------------------------------------------------------------------ parsing
def test_parse_reads_what_models_write_around_and_inside_the_json() -> None:
    """Fences, chatter and a raw newline inside a string (memos.llm.jsonreply reads them)."""
    raw = 'Sure!\n```json\n{"memories": [{"value": "Lives in\nHangzhou.", "sources": [1]}]}\n```'
    [fact], dropped = parse_extraction(raw, 1)
    assert fact.value == "Lives in\nHangzhou." and dropped == 0


@pytest.mark.parametrize(
    "raw",
    ['{"memories": [', "no json here", "[1, 2]", '{"memories": [}'],
)
def test_parse_rejects_broken_replies(raw: str) -> None:
    with pytest.raises(BadOutput):
        parse_extraction(raw, 2)


def test_parse_drops_entries_missing_required_fields() -> None:
    raw = json.dumps(
        {
            "memories": [
                {"key": "k", "value": "", "sources": [1]},  # no value: dropped
                "not an object",  # dropped
                {"value": "The user lives in Hangzhou.", "sources": ["2", 9, True]},
            ],
            "preferences": [{"reasoning": "no preference text"}],  # dropped
        }
    )
    parsed, dropped = parse_extraction(raw, 3)
    assert dropped == 3
    [fact] = parsed
    assert fact.value == "The user lives in Hangzhou."
    assert fact.key == "The user lives in Hangzhou."  # defaulted from the value
    assert fact.sources == [2]  # "2" read as 2; 9 out of range and True dropped
    assert fact.memory_type == MemoryType.LONG_TERM
    assert 0.0 <= fact.confidence <= 1.0


def test_parse_rejects_an_object_with_none_of_the_lists() -> None:
    with pytest.raises(BadOutput, match="none of the keys"):
        parse_extraction('{"answer": "hello"}', 2)


def test_schema_lists_only_requested_kinds() -> None:
    assert set(extraction_schema({"memory"})["properties"]) == {"memories"}
    full = extraction_schema()
    assert set(full["properties"]) == {"memories", "preferences", "tool_memories"}
    fact = full["properties"]["memories"]["items"]
    assert set(fact["required"]) >= {"key", "value", "tags", "confidence", "sources"}


# ------------------------------------------------------------ reader flow
def test_read_builds_fine_items_with_sources_and_absolute_dates() -> None:
    llm = ScriptedLLM(json.dumps(GOOD))
    extraction = FineReader(llm).read(SCOPE, WINDOW, tags=["trip"], info={"scene": "chat"})
    assert extraction.attempts == 1
    [fact] = extraction.facts
    [pref] = extraction.preferences
    assert fact.memory_type == MemoryType.USER and fact.mode == MemoryMode.FINE
    assert fact.tags == ["mode:fine", "travel", "city", "trip"]
    assert [s.message_id for s in fact.sources] == ["m1"]
    assert "2025-09-13" in fact.value and "tomorrow" not in fact.value
    assert fact.confidence == 0.9 and fact.info == {"scene": "chat"}
    assert pref.memory_type == MemoryType.EXPLICIT_PREFERENCE
    assert pref.info[DETAIL_KEY] == {"reasoning": "The user said so."}
    assert [s.message_id for s in pref.sources] == ["m3"]
    # the prompt numbers the messages and shows their time; the schema went along
    messages, schema, _ = llm.calls[0]
    assert "[1] (user, 2025-09-12 08:00:00)" in messages[1]["content"]
    assert schema is not None and "tool_memories" not in schema["properties"]


def test_entries_without_valid_sources_cite_the_whole_window() -> None:
    reply = {"memories": [{"value": "A fact.", "sources": [42]}], "preferences": []}
    [item] = FineReader(ScriptedLLM(json.dumps(reply))).read(SCOPE, WINDOW).items
    assert [s.message_id for s in item.sources] == ["m1", "m2", "m3"]


def test_one_repair_retry_sends_back_the_bad_reply_and_the_reason() -> None:
    llm = ScriptedLLM('{"memories": [{"value": "cut', json.dumps(GOOD))
    extraction = FineReader(llm, max_tokens=300).read(SCOPE, WINDOW)
    assert extraction.attempts == 2 and len(extraction.items) == 2
    repair_chat, _, max_tokens = llm.calls[1]
    assert repair_chat[-2] == {"role": "assistant", "content": '{"memories": [{"value": "cut'}
    assert "no complete JSON object" in repair_chat[-1]["content"]
    assert max_tokens == 300


def test_a_second_bad_reply_raises_extraction_error_with_the_raw_output() -> None:
    llm = ScriptedLLM("I cannot help with that.", '{"memories": [')
    with pytest.raises(ExtractionError) as info:
        FineReader(llm).read(SCOPE, WINDOW)
    assert len(llm.calls) == 2  # exactly one repair retry
    assert info.value.raw == '{"memories": ['
    assert "after one repair retry" in info.value.reason
    assert info.value.code == 50143
    assert info.value.data["raw_output"] == '{"memories": ['


def test_chinese_input_gets_the_chinese_prompt() -> None:
    window = [msg("user", "我昨天去了杭州，明天去北京出差。", "z1")]
    reply = {
        "memories": [{"value": "用户昨天去了杭州。", "memory_type": "UserMemory", "sources": [1]}],
        "preferences": [],
    }
    llm = ScriptedLLM(json.dumps(reply, ensure_ascii=False))
    extraction = FineReader(llm).read(SCOPE, window)
    assert extraction.language == "zh"
    assert "提取" in llm.calls[0][0][0]["content"]
    assert extraction.items[0].value == "用户2025年9月11日去了杭州。"


def test_tool_calls_add_tool_memories_to_the_schema() -> None:
    window = [
        msg("user", "What's the weather in Paris?", "t1"),
        msg(
            "assistant",
            "",
            "t2",
            tool_calls=[
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        ),
        msg("tool", "timeout", "t3", tool_call_id="call_1"),
    ]
    reply = {
        "memories": [],
        "preferences": [],
        "tool_memories": [
            {
                "tool_type": "ToolTrajectoryMemory",
                "tool_value": "Called get_weather for Paris; it timed out.",
                "tool_used_status": [
                    {
                        "used_tool": "get_weather",
                        "error_type": "timeout",
                        "success_rate": 0.0,
                        "tool_experience": "retry once",
                    },
                    {"error_type": "no tool name"},  # dropped
                ],
                "experience": "When get_weather times out, then retry once.",
                "sources": [2, 3],
            }
        ],
    }
    llm = ScriptedLLM(json.dumps(reply))
    extraction = FineReader(llm).read(SCOPE, window)
    assert "tool_memories" in (llm.calls[0][1] or {})["properties"]
    assert "[3] (tool call_1, 2025-09-12 08:00:00) timeout" in llm.calls[0][0][1]["content"]
    [tool] = extraction.tools
    assert tool.memory_type == MemoryType.TOOL_TRAJECTORY
    detail = tool.info[DETAIL_KEY]
    assert detail["tool_used_status"] == [
        {
            "used_tool": "get_weather",
            "error_type": "timeout",
            "success_rate": 0.0,
            "tool_experience": "retry once",
        }
    ]
    assert detail["experience"].startswith("When get_weather")
    assert [s.message_id for s in tool.sources] == ["t2", "t3"]


def test_system_only_window_needs_no_llm_call() -> None:
    llm = ScriptedLLM()
    extraction = FineReader(llm).read(SCOPE, [msg("system", "Be brief.", "s1")])
    assert extraction.items == [] and llm.calls == []


# ------------------------------------------------------------ relative dates
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I went there yesterday.", "I went there on 2025-09-11."),
        ("Yesterday it rained.", "On 2025-09-11 it rained."),
        ("Busy since yesterday.", "Busy since 2025-09-11."),
        ("Dinner tonight and lunch tomorrow.", "Dinner on 2025-09-12 and lunch on 2025-09-13."),
        ("Flying next Friday.", "Flying on 2025-09-19."),  # anchor is a Friday
        ("Flying next Wednesday.", "Flying on 2025-09-17."),
        ("Met her last Monday.", "Met her on 2025-09-08."),
        ("Met her last Friday.", "Met her on 2025-09-05."),
        (
            "我昨天到了，前天出发，明天回去。",
            "我2025年9月11日到了，2025年9月10日出发，2025年9月13日回去。",
        ),
        ("Nothing relative here; todays news.", "Nothing relative here; todays news."),
    ],
)
def test_resolve_relative_dates(text: str, expected: str) -> None:
    assert resolve_relative_dates(text, date(2025, 9, 12)) == expected


def test_detect_language() -> None:
    assert detect_language("I like tea") == "en"
    assert detect_language("我喜欢喝茶 with milk") == "zh"
    assert detect_language("123 !!") == "en"


# ------------------------------------------------------------ service (no LLM)
def test_fine_mode_without_an_llm_is_a_clear_error(service: MemoryService) -> None:
    with pytest.raises(LLMNotConfigured) as info:
        service.add(
            user_id="u",
            conversation_id="c",
            messages=[MessageInput(role="user", content="I like tea.")],
            mode="fine",
        )
    assert info.value.code == 50002 and "MEMOS_LLM_BASE_URL" in info.value.message
    # nothing was written, and fast mode still works
    assert service.list_memories(user_id="u").total == 0
    service.add(
        user_id="u",
        conversation_id="c",
        messages=[MessageInput(role="user", content="I like tea.")],
    )
    assert service.list_memories(user_id="u").total == 1


def spy_fast_reader(svc: MemoryService) -> list[Any]:
    """The fast memories each add produces, as the service made them."""
    produced: list[Any] = []
    real_read = svc.reader.read

    def read(*args: Any, **kwargs: Any) -> Any:
        items = real_read(*args, **kwargs)
        produced.extend(items)
        return items

    svc.reader.read = read  # type: ignore[method-assign]
    return produced


def test_fine_add_archives_the_windows_fast_memories(tmp_data_dir: Path) -> None:
    svc = MemoryService.open(make_settings(tmp_data_dir), llm=ScriptedLLM(json.dumps(GOOD)))
    try:
        earlier = svc.add(
            user_id="alice",
            conversation_id="c0",
            messages=[MessageInput(role="user", content="An earlier fast memory.")],
        )
        fast = spy_fast_reader(svc)
        result = svc.add(
            user_id="alice",
            conversation_id="c1",
            messages=[
                MessageInput(role="user", content=m.content, message_id=m.message_id)
                for m in WINDOW
            ],
            mode="fine",
        )
        assert result.status == "completed" and result.error is None
        assert svc.task(result.task_id).status == "completed"
        live = svc.list_memories(user_id="alice", size=50).items
        assert {m.id for m in live} == set(result.memory_ids) | set(earlier.memory_ids)
        fine = svc.store.get_memories(SCOPE, result.memory_ids)
        assert {m.mode for m in fine} == {MemoryMode.FINE} and len(fine) == 2
        # the window's fast memories are archived, not deleted
        assert len(fast) == 3
        kept = svc.store.get_memories(SCOPE, [m.id for m in fast], include_inactive=True)
        assert {m.status for m in kept} == {MemoryStatus.ARCHIVED} and len(kept) == 3
        hits = svc.search(user_id="alice", query="Hangzhou", relativity=0, limit=10)
        assert all(
            h.memory.mode == MemoryMode.FINE or h.memory.id in earlier.memory_ids for h in hits
        )
    finally:
        svc.close()


def test_failed_fine_add_keeps_fast_memories_and_records_why(tmp_data_dir: Path) -> None:
    svc = MemoryService.open(make_settings(tmp_data_dir), llm=ScriptedLLM("oops", "still oops"))
    try:
        failed = svc.add(
            user_id="alice",
            conversation_id="c2",
            messages=[MessageInput(role="user", content="I have a cat.", message_id="x1")],
            mode="fine",
        )
        assert failed.status == "failed" and failed.error and "repair" in failed.error
        task = svc.task(failed.task_id)
        assert task.status == "failed" and task.error == failed.error
        kept = svc.store.get_memories(SCOPE, failed.memory_ids)
        assert [m.value for m in kept] == ["I have a cat."]
        assert all(m.status == MemoryStatus.ACTIVATED for m in kept)
    finally:
        svc.close()


# ------------------------------------------------------- real llama.cpp server
@pytest.fixture
def real_llm(llama_server: Any) -> Iterator[OpenAIChatLLM]:
    client = OpenAIChatLLM(llama_server.base_url, llama_server.model, timeout_s=120)
    yield client
    client.close()


@pytest.mark.timeout(300)
def test_real_model_extraction_is_structured_with_sources(real_llm: OpenAIChatLLM) -> None:
    """Whatever the model writes (it differs between CPUs): memories with structure and
    provenance, or a failure that carries the raw reply after exactly one repair."""
    try:
        extraction = FineReader(real_llm).read(SCOPE, WINDOW)
    except ExtractionError as exc:
        assert "after one repair retry" in exc.reason
        assert exc.data["raw_output"] == exc.raw[:2000]
        return
    assert extraction.attempts in (1, 2) and not extraction.failed_windows
    ids = {m.message_id for m in WINDOW}
    allowed = {
        MemoryType.USER,
        MemoryType.LONG_TERM,
        MemoryType.EXPLICIT_PREFERENCE,
        MemoryType.IMPLICIT_PREFERENCE,
    }
    for item in extraction.items:
        assert item.mode == MemoryMode.FINE and item.tags[0] == "mode:fine"
        assert item.memory_type in allowed
        assert item.key.strip() and item.value.strip()
        assert 0.0 <= item.confidence <= 1.0
        assert item.sources and {s.message_id for s in item.sources} <= ids
        assert all(s.content for s in item.sources)


@pytest.mark.timeout(300)
def test_real_model_with_tiny_max_tokens_fails_after_one_repair(real_llm: OpenAIChatLLM) -> None:
    calls: list[str] = []
    inner_chat = real_llm.chat

    def counting_chat(messages: Sequence[ChatMessage], **kw: Any) -> str:
        reply = inner_chat(messages, **kw)
        calls.append(reply)
        return reply

    real_llm.chat = counting_chat  # type: ignore[method-assign]
    with pytest.raises(ExtractionError) as info:
        FineReader(real_llm, max_tokens=8).read(SCOPE, WINDOW)
    assert len(calls) == 2
    assert info.value.raw == calls[-1] and info.value.reason


def test_cloud_lists_put_preferences_apart_from_facts(tmp_data_dir: Path) -> None:
    from memos.wire import cloud

    svc = MemoryService.open(make_settings(tmp_data_dir), llm=ScriptedLLM(json.dumps(GOOD)))
    try:
        svc.add(
            user_id="alice",
            conversation_id="c1",
            messages=[MessageInput(role="user", content=m.content) for m in WINDOW],
            info={"scene": "chat"},
            mode="fine",
        )
        page = cloud.get_memory(svc, cloud.GetMemoryRequest(user_id="alice"))
        no_prefs = cloud.get_memory(
            svc, cloud.GetMemoryRequest(user_id="alice", include_preference=False)
        )
        assert no_prefs["preference_detail_list"] == [] and no_prefs["memory_detail_list"]
        [fact] = page["memory_detail_list"]
        [pref] = page["preference_detail_list"]
        assert fact["memory_type"] == "UserMemory" and fact["info"] == {"scene": "chat"}
        assert pref["preference_type"] == "explicit_preference"
        assert pref["reasoning"] == "The user said so." and pref["info"] == {"scene": "chat"}
        found = cloud.search_memory(
            svc, cloud.SearchMemoryRequest(user_id="alice", query="short replies", relativity=0)
        )
        assert [p["preference"] for p in found["preference_detail_list"]] == [pref["preference"]]
        assert all(m["memory_type"] != "explicit_preference" for m in found["memory_detail_list"])
        hidden = cloud.search_memory(
            svc,
            cloud.SearchMemoryRequest(
                user_id="alice", query="short replies", relativity=0, include_preference=False
            ),
        )
        assert hidden["preference_detail_list"] == []
    finally:
        svc.close()
