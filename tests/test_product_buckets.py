"""``/product/search`` and ``/product/get_all`` answer preferences and tool memories apart.

The service gets a scripted LLM (its reply depends on whose chat it reads), so
``mode: fine`` stores facts, preferences and tool memories for two users; the
calls then go through the real ASGI app, as a client's would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from memos.api import create_app
from memos.llm.base import ChatMessage, JsonSchema
from memos.service import MemoryService
from memos.settings import load_settings
from memos.wire.buckets import of_types
from memos.wire.product import PREF_TOP_K

CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Beijing"}'},
}
ALICE_CHAT = [
    {"role": "user", "content": "I live in Beijing and I cycle to work."},
    {"role": "user", "content": "Keep answers short, please. What's the weather?"},
    {"role": "assistant", "content": "", "tool_calls": [CALL]},
    {"role": "tool", "content": '{"temperature": "7C"}', "tool_call_id": "call_1"},
]
BOB_CHAT = [{"role": "user", "content": "I am Bob and I prefer very long, detailed answers."}]


def reply_for(transcript: str) -> dict[str, Any]:
    if "Bob" in transcript:
        return {
            "memories": [{"value": "Bob is a user.", "memory_type": "UserMemory", "sources": [1]}],
            "preferences": [
                {
                    "preference": "Bob prefers long, detailed answers.",
                    "preference_type": "explicit_preference",
                    "reasoning": "Bob said so.",
                    "sources": [1],
                }
            ],
        }
    return {
        "memories": [
            {"value": "The user lives in Beijing.", "memory_type": "UserMemory", "sources": [1]},
            {"value": "The user cycles to work.", "memory_type": "UserMemory", "sources": [1]},
        ],
        "preferences": [
            {
                "preference": "The user wants short answers.",
                "preference_type": "explicit_preference",
                "reasoning": "The user asked for short answers.",
                "sources": [2],
            },
            {
                "preference": "The user likes cycling weather reports.",
                "preference_type": "implicit_preference",
                "reasoning": "The user cycles and asks about weather.",
                "sources": [1, 2],
            },
        ],
        "tool_memories": [
            {
                "tool_type": "ToolTrajectoryMemory",
                "tool_value": "Called get_weather for Beijing: 7C.",
                "tool_used_status": [
                    {
                        "used_tool": "get_weather",
                        "error_type": "",
                        "success_rate": 1.0,
                        "tool_experience": "works with a city name",
                    }
                ],
                "experience": "When asked about weather, then call get_weather with the city.",
                "sources": [3, 4],
            }
        ],
    }


class ByUserLLM:
    """Answers with the scripted extraction of whichever user's chat it is shown."""

    name = "scripted"

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        json_schema: JsonSchema | None = None,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> str:
        return json.dumps(reply_for(messages[1]["content"]))

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data_dir: Path = tmp_path_factory.mktemp("buckets")
    cfg = load_settings({"data_dir": data_dir, "embedder": {"kind": "hash"}}, environ={})
    svc = MemoryService.open(cfg, llm=ByUserLLM())
    with TestClient(create_app(cfg, service=svc)) as c:
        for user, chat in (("alice", ALICE_CHAT), ("bob", BOB_CHAT)):
            added = ok(
                c.post(
                    "/product/add",
                    json={
                        "user_id": user,
                        "mode": "fine",
                        "session_id": f"s-{user}",
                        "messages": chat,
                    },
                )
            )
            assert {a["status"] for a in added} == {"completed"}, added
        # plain fast memories too, so facts outnumber everything else
        for i in range(12):
            ok(
                c.post(
                    "/product/add",
                    json={
                        "user_id": "alice",
                        "session_id": "s-fast",
                        "messages": f"Fast fact {i}: I like short trips.",
                    },
                )
            )
        yield c
    svc.close()


def ok(resp: Any) -> Any:
    body = resp.json()
    assert resp.status_code == 200 and body["code"] == 200, body
    return body["data"]


def search(client: TestClient, **body: Any) -> dict[str, Any]:
    data: dict[str, Any] = ok(
        client.post("/product/search", json={"user_id": "alice", "query": "short answers", **body})
    )
    return data


def memories(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for g in groups for m in g["memories"]]


# ------------------------------------------------------------------ search
def test_search_answers_each_kind_in_its_own_bucket(client: TestClient) -> None:
    data = search(client, top_k=3)
    facts, prefs, tools = (memories(data[k]) for k in ("text_mem", "pref_mem", "tool_mem"))
    assert [g["cube_id"] for g in data["pref_mem"]] == ["alice"]
    assert len(facts) == 3  # top_k bounds the facts only
    assert all(
        f["metadata"]["memory_type"] in ("UserMemory", "LongTermMemory", "WorkingMemory")
        for f in facts
    )
    assert {p["memory"] for p in prefs} == {
        "The user wants short answers.",
        "The user likes cycling weather reports.",
    }
    short = next(p for p in prefs if p["memory"] == "The user wants short answers.")
    meta = short["metadata"]
    assert meta["memory_type"] == "PreferenceMemory"
    assert meta["preference_type"] == "explicit_preference"
    assert meta["preference"] == "The user wants short answers."
    assert meta["reasoning"] == "The user asked for short answers."
    assert 0.0 <= meta["relativity"] <= 1.0 and meta["sources"]
    assert "_memos_detail" not in meta["info"]
    [tool] = tools
    assert tool["metadata"]["memory_type"] == "ToolTrajectoryMemory"
    assert tool["metadata"]["tool_used_status"][0]["used_tool"] == "get_weather"
    assert tool["metadata"]["experience"].startswith("When asked about weather")
    assert "Explicit Preference:\n1. The user wants short answers." in data["pref_string"]
    assert data["pref_note"] and data["pref_string"].endswith(data["pref_note"])


def test_fact_lists_never_hold_preferences_or_tool_memories(client: TestClient) -> None:
    data = search(client, top_k=50, query="Beijing weather cycling short answers")
    kinds = {m["metadata"]["memory_type"] for m in memories(data["text_mem"])}
    assert kinds <= {"UserMemory", "LongTermMemory", "WorkingMemory"}
    everything = ok(
        client.post("/product/get_all", json={"user_id": "alice", "memory_type": "text_mem"})
    )
    kinds = {m["metadata"]["memory_type"] for m in memories(everything)}
    assert kinds <= {"UserMemory", "LongTermMemory", "WorkingMemory"}
    assert everything[0]["total"] == len(everything[0]["memories"]) == 14


def test_include_preference_and_bucket_limits(client: TestClient) -> None:
    hidden = search(client, include_preference=False)
    assert hidden["pref_mem"] == [] and hidden["pref_note"] == hidden["pref_string"] == ""
    assert memories(hidden["tool_mem"])  # tools are still searched (upstream default)
    one = search(client, pref_top_k=1)
    assert len(memories(one["pref_mem"])) == 1
    off = search(client, pref_top_k=0, search_tool_memory=False)
    assert memories(off["pref_mem"]) == [] and off["tool_mem"] == []
    assert memories(off["text_mem"])
    few = search(client, tool_mem_top_k=0)
    assert memories(few["tool_mem"]) == []
    assert len(memories(search(client)["pref_mem"])) <= PREF_TOP_K


@pytest.mark.parametrize("body", [{"pref_top_k": -1}, {"pref_top_k": 51}, {"tool_mem_top_k": 99}])
def test_bad_bucket_limits_are_rejected(client: TestClient, body: dict[str, Any]) -> None:
    resp = client.post("/product/search", json={"user_id": "alice", "query": "x", **body})
    payload = resp.json()
    assert payload["code"] != 200 and re.search(r"(pref_top_k|tool_mem_top_k)", payload["message"])


def test_the_request_filter_still_applies_inside_each_bucket(client: TestClient) -> None:
    fine = search(client, filter={"tags": "mode:fine"})
    assert memories(fine["text_mem"]) and all(
        "mode:fine" in m["metadata"]["tags"] for m in memories(fine["text_mem"])
    )
    assert memories(fine["pref_mem"])
    fast = search(client, filter={"tags": "mode:fast"})
    assert memories(fast["pref_mem"]) == [] and memories(fast["tool_mem"]) == []


def test_of_types_keeps_per_source_blocks() -> None:
    narrowed = of_types({"user": {"tags": "x"}, "scene": "chat"}, frozenset())
    assert narrowed["user"] == {"tags": "x"}
    assert narrowed["and"][0] == {"scene": "chat"}
    assert of_types("not an object", frozenset()) == "not an object"


# ------------------------------------------------------------------ tenancy
def test_another_users_preferences_never_appear(client: TestClient) -> None:
    for body in ({}, {"query": "Bob prefers long detailed answers", "pref_top_k": 50}):
        data = search(client, **body)
        for bucket in ("text_mem", "pref_mem", "tool_mem"):
            for item in memories(data[bucket]):
                assert item["metadata"]["user_id"] == "alice", item
                assert "Bob" not in item["memory"]
    bob = ok(client.post("/product/search", json={"user_id": "bob", "query": "answers"}))
    assert [p["memory"] for p in memories(bob["pref_mem"])] == [
        "Bob prefers long, detailed answers."
    ]
    assert memories(bob["tool_mem"]) == []
    # bob cannot read alice's cube, preferences included: "alice" names a cube of
    # bob's own, which is empty (foreign and missing cubes answer alike)
    other = client.post(
        "/product/search",
        json={"user_id": "bob", "query": "answers", "readable_cube_ids": ["alice"]},
    ).json()
    assert other["code"] == 200 and "short answers" not in json.dumps(other)
    assert all(not memories(other["data"][b]) for b in ("text_mem", "pref_mem", "tool_mem"))


# ------------------------------------------------------------------ get_all
def test_get_all_lists_preferences_and_tool_memories(client: TestClient) -> None:
    prefs = ok(
        client.post("/product/get_all", json={"user_id": "alice", "memory_type": "pref_mem"})
    )
    assert prefs[0]["cube_id"] == "alice" and prefs[0]["total"] == 2
    assert {m["metadata"]["preference_type"] for m in prefs[0]["memories"]} == {
        "explicit_preference",
        "implicit_preference",
    }
    tools = ok(
        client.post("/product/get_all", json={"user_id": "alice", "memory_type": "tool_mem"})
    )
    assert [m["metadata"]["memory_type"] for m in tools[0]["memories"]] == ["ToolTrajectoryMemory"]
    found = ok(
        client.post(
            "/product/get_all",
            json={"user_id": "alice", "memory_type": "pref_mem", "search_query": "short answers"},
        )
    )
    assert {m["metadata"]["memory_type"] for m in memories(found)} == {"PreferenceMemory"}
    assert ok(
        client.post("/product/get_all", json={"user_id": "alice", "memory_type": "act_mem"})
    ) == [{"cube_id": "alice", "memories": []}]


def test_get_memory_honours_include_flags(client: TestClient) -> None:
    page = ok(
        client.post(
            "/product/get_memory",
            json={"user_id": "alice", "size": 50},
        )
    )
    # upstream's defaults: every kind
    assert len(page["preference_detail_list"]) == 2 and len(page["tool_memory_detail_list"]) == 1
    assert all(m["memory_type"] != "explicit_preference" for m in page["memory_detail_list"])
    bare = ok(
        client.post(
            "/product/get_memory",
            json={
                "user_id": "alice",
                "size": 50,
                "include_preference": False,
                "include_tool_memory": False,
            },
        )
    )
    assert bare["preference_detail_list"] == [] and bare["tool_memory_detail_list"] == []
    assert len(bare["memory_detail_list"]) == len(page["memory_detail_list"])
    pref_id = page["preference_detail_list"][0]["id"]
    one = ok(client.get(f"/product/get_memory/{pref_id}", params={"user_id": "alice"}))
    assert one["memory_detail_list"] == [] and one["preference_detail_list"][0]["id"] == pref_id
