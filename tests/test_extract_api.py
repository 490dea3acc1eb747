"""``/extract/memory`` and ``mode: fine`` over real ``memos serve`` subprocesses.

With an LLM: the server talks to the llama.cpp fixture (SmolLM2-135M), so the
tests assert shapes, provenance and side effects, never extraction quality
(nor whether the reply parses: that differs between CPUs, see docs/llm_output.md).
Without one: LLM-only features answer a clear 50002 that says how to configure
an LLM, and fast mode keeps working.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.timeout(300)

MESSAGES = [
    {"role": "user", "content": "I'm Alex, a backend dev in Hangzhou, I play badminton."},
    {"role": "assistant", "content": "Hi Alex!"},
    {"role": "user", "content": "Keep replies short, not too wordy."},
]


def llm_env(llama_server: Any, **extra: str) -> dict[str, str]:
    return {
        "MEMOS_LLM_BACKEND": "openai",
        "MEMOS_LLM_BASE_URL": llama_server.base_url,
        "MEMOS_LLM_MODEL": llama_server.model,
        "MEMOS_LLM_TIMEOUT_S": "120",
        **extra,
    }


def data_of(resp: httpx.Response) -> Any:
    body = resp.json()
    assert resp.status_code == 200 and body["code"] == 0, body
    return body["data"]


def extracted(resp: httpx.Response) -> Any:
    """An extraction's data, or {} for a reply that stayed unusable after its repair.

    Whether SmolLM2's reply parses differs between CPUs; a failure must be the
    documented 50143 with the model's raw output, never a 500 or a silent empty list.
    """
    body = resp.json()
    if body["code"] == 50143:
        assert resp.status_code == 502 and "after one repair retry" in body["message"], body
        assert isinstance(body["data"]["raw_output"], str), body
        return {}
    data = data_of(resp)
    assert data["success"] is True, data
    return data


def test_extract_returns_memories_and_writes_nothing(
    llama_server: Any, restartable_server: Any
) -> None:
    srv = restartable_server(env=llm_env(llama_server))
    with srv.client(timeout=180) as c:
        data = extracted(c.post("/extract/memory", json={"messages": MESSAGES, "user_id": "alex"}))
        facts = data.get("memory_detail_list", [])
        prefs = data.get("preference_detail_list", [])
        for fact in facts:
            assert fact["memory_type"] in ("UserMemory", "LongTermMemory")
            assert fact["memory_key"] and fact["memory_value"]
            assert "mode:fine" in fact["tags"] and 0 <= fact["confidence"] <= 1
            assert fact["sources"] and all(s["content"] for s in fact["sources"])
        for pref in prefs:
            assert pref["preference_type"] in ("explicit_preference", "implicit_preference")
            assert pref["preference"] and isinstance(pref["reasoning"], str)
            assert pref["sources"]
        only_facts = extracted(
            c.post("/extract/memory", json={"messages": MESSAGES, "extraction_types": ["memory"]})
        )
        assert "preference_detail_list" not in only_facts
        # nothing was stored for anyone
        listed = c.post("/get/memory", json={"user_id": "alex"}).json()
        assert listed["code"] == 0 and listed["data"]["memory_detail_list"] == []
        found = c.post(
            "/search/memory", json={"user_id": "alex", "query": "Hangzhou", "relativity": 0}
        ).json()
        assert found["code"] == 0 and found["data"]["memory_detail_list"] == []


def test_fine_add_with_broken_llm_output_keeps_fast_memories(
    llama_server: Any, restartable_server: Any
) -> None:
    """A tiny max_tokens truncates every reply: the task fails visibly, nothing is lost."""
    srv = restartable_server(env=llm_env(llama_server, MEMOS_LLM_MAX_TOKENS="8"))
    with srv.client(timeout=180) as c:
        added = data_of(
            c.post(
                "/add/message",
                json={
                    "user_id": "bo",
                    "conversation_id": "c1",
                    "async_mode": False,
                    "mode": "fine",
                    "messages": MESSAGES,
                },
            )
        )
        assert added["status"] == "failed" and "repair" in added["error"]
        status = data_of(
            c.post("/get/status", json={"task_id": added["task_id"], "user_id": "bo"})
        )
        assert status == {"status": "failed", "error": added["error"]}
        # without user_id: the status, never the reason (it may quote the messages)
        status = data_of(c.post("/get/status", json={"task_id": added["task_id"]}))
        assert status == {"status": "failed"}
        memories = data_of(c.post("/get/memory", json={"user_id": "bo"}))["memory_detail_list"]
        assert len(memories) == len(MESSAGES)
        assert all("mode:fast" in m["tags"] and m["status"] == "activated" for m in memories)
        assert "fine extraction failed" in srv.log_tail()


def test_without_an_llm_fine_features_say_how_to_configure_one(http: httpx.Client) -> None:
    for path, body in [
        ("/extract/memory", {"messages": MESSAGES}),
        (
            "/add/message",
            {"user_id": "nolm", "conversation_id": "c", "mode": "fine", "messages": MESSAGES},
        ),
    ]:
        resp = http.post(path, json=body)
        payload = resp.json()
        assert resp.status_code == 501 and payload["code"] == 50002, payload
        for name in ("MEMOS_LLM_BACKEND", "MEMOS_LLM_BASE_URL", "MEMOS_LLM_MODEL"):
            assert name in payload["message"]
    product = http.post(
        "/product/add", json={"user_id": "nolm", "mode": "fine", "messages": MESSAGES}
    ).json()
    assert product["code"] == 501 and product["data"]["error_code"] == 50002
    # nothing was written by the refused calls; fast mode keeps working
    assert data_of(http.post("/get/memory", json={"user_id": "nolm"}))["memory_detail_list"] == []
    added = data_of(
        http.post(
            "/add/message",
            json={"user_id": "nolm", "conversation_id": "c", "messages": MESSAGES},
        )
    )
    assert added["status"] == "completed"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, 40002),
        ({"messages": []}, 40003),
        ({"messages": [{"role": "tool", "content": "x"}]}, 40000),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}, 40000),
        ({"messages": MESSAGES, "extraction_types": ["skill"]}, 40000),
        ({"messages": MESSAGES, "extraction_types": []}, 40003),
        ({"messages": [{"role": "user", "content": "word " * 9000}]}, 40305),
    ],
)
def test_extract_validates_input_before_needing_an_llm(
    http: httpx.Client, body: dict[str, Any], code: int
) -> None:
    payload = http.post("/extract/memory", json=body).json()
    assert payload["code"] == code, payload
