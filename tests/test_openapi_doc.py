"""The OpenAPI document describes what the server really sends.

No 422 (a request that fails to parse is a 400 in the envelope), each route's
error statuses in its dialect's error envelope, typed success bodies, the SSE
route as ``text/event-stream``; and real answers, with every kind of list entry
(facts, preferences, tool memories) and every error status a test can provoke,
conform to the document (schemathesis' conformance checks).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from memos.api import create_app
from memos.domain.models import (
    DETAIL_KEY,
    MemoryItem,
    MemoryMode,
    MemoryType,
    MessageInput,
    Scope,
    Source,
)
from memos.service import MemoryService
from memos.settings import load_settings

CONFORMANCE = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
GUARDED = {400, 408, 413}  # api/limits.py, for every request with a body
# Every operation and the error statuses it documents (500 everywhere).
ERRORS: dict[tuple[str, str], set[int]] = {
    ("post", "/add/message"): GUARDED | {403, 500, 501, 503},
    ("post", "/search/memory"): GUARDED | {403, 500, 503},
    ("post", "/get/memory"): GUARDED | {403, 500, 503},
    ("post", "/delete/memory"): GUARDED | {403, 404, 500, 503},
    ("post", "/get/message"): GUARDED | {403, 500, 503},
    ("post", "/extract/memory"): GUARDED | {500, 501, 502, 503},
    ("post", "/get/status"): GUARDED | {404, 500, 503},
    ("post", "/rerank"): GUARDED | {500, 503},
    ("get", "/health"): {500},
    ("post", "/product/add"): GUARDED | {403, 500, 501, 503},
    ("post", "/product/search"): GUARDED | {403, 500, 503},
    ("post", "/product/get_all"): GUARDED | {403, 500, 503},
    ("post", "/product/get_memory"): GUARDED | {403, 500, 503},
    ("get", "/product/get_memory/{memory_id}"): {400, 403, 404, 500, 503},
    ("post", "/product/delete_memory"): GUARDED | {403, 404, 500, 503},
    ("get", "/product/scheduler/status"): {400, 404, 500, 503},
    ("get", "/product/scheduler/allstatus"): {500, 503},
    ("get", "/product/scheduler/task_queue_status"): {400, 500, 503},
    ("post", "/product/scheduler/wait"): GUARDED | {500, 503},
    ("get", "/product/scheduler/wait/stream"): {400, 500},
}
SSE = ("get", "/product/scheduler/wait/stream")


@pytest.fixture(scope="module")
def service() -> Iterator[MemoryService]:
    data_dir = Path(tempfile.mkdtemp(prefix="memos-doc-"))
    settings = load_settings({"data_dir": data_dir, "embedder": {"kind": "hash"}}, environ={})
    svc = MemoryService.open(settings)
    svc.add(
        user_id="pat",
        conversation_id="c1",
        messages=[
            MessageInput(role="user", content="I like tea and hiking.", message_id="m1"),
            MessageInput(role="assistant", content="Tea and hiking, noted."),
        ],
        tags=["t"],
        info={"k": "v"},
    )
    _seed_fine_memories(svc, Scope.for_user("pat"))
    yield svc
    svc.close()
    shutil.rmtree(data_dir, ignore_errors=True)


def _seed_fine_memories(svc: MemoryService, scope: Scope) -> None:
    """A preference and a tool memory as fine mode stores them (no LLM here)."""
    source = Source(message_id="m1", role="user", chat_time=None, content="I like tea")
    items = [
        MemoryItem(
            user_id=scope.user_id,
            cube_id=scope.cube_id,
            memory_type=MemoryType.EXPLICIT_PREFERENCE,
            key="tea",
            value="The user likes tea and hiking.",
            mode=MemoryMode.FINE,
            sources=[source],
            info={DETAIL_KEY: {"reasoning": "said so"}},
        ),
        MemoryItem(
            user_id=scope.user_id,
            cube_id=scope.cube_id,
            memory_type=MemoryType.TOOL_TRAJECTORY,
            key="search",
            value="Searched tea and hiking shops with the web tool.",
            mode=MemoryMode.FINE,
            sources=[source],
            info={
                DETAIL_KEY: {
                    "tool_used_status": [
                        {
                            "used_tool": "web",
                            "error_type": "",
                            "success_rate": 0.9,
                            "tool_experience": "works",
                        }
                    ],
                    "experience": "search first",
                }
            },
        ),
    ]
    svc.store.ingest(scope, [], items, svc.embedder.embed([m.value for m in items]))


@pytest.fixture(scope="module")
def api(service: MemoryService) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(service.settings, service))


@pytest.fixture(scope="module")
def doc(api: Any) -> dict[str, Any]:
    raw: dict[str, Any] = api.raw_schema
    return raw


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            yield method, path, operation


def test_no_422_anywhere(doc: dict[str, Any]) -> None:
    for method, path, operation in _operations(doc):
        assert "422" not in operation["responses"], (method, path)
    assert not {"HTTPValidationError", "ValidationError"} & set(doc["components"]["schemas"])


def test_every_route_lists_its_error_statuses(doc: dict[str, Any]) -> None:
    seen = {(method, path) for method, path, _ in _operations(doc)}
    assert seen == set(ERRORS)
    for method, path, operation in _operations(doc):
        statuses = {int(s) for s in operation["responses"]}
        assert statuses - {200} == ERRORS[(method, path)], (method, path)
        if method == "post":
            assert statuses >= GUARDED, path
        error = "ProductError" if path.startswith("/product") or path == "/health" else "CloudError"
        for status, response in operation["responses"].items():
            if status != "200":
                assert response["content"] == {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{error}"}}
                }, (method, path, status)
                assert response["description"], (method, path, status)


def test_success_bodies_are_typed(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    for method, path, operation in _operations(doc):
        if (method, path) == SSE:
            continue
        content = operation["responses"]["200"]["content"]
        assert list(content) == ["application/json"], (method, path)
        ref = content["application/json"]["schema"]["$ref"]
        envelope = schemas[ref.rsplit("/", 1)[1]]
        assert envelope["required"] == ["code", "message", "data"], (method, path)
        assert envelope["properties"]["code"]["const"] in (0, 200), (method, path)
        assert "$ref" in envelope["properties"]["data"], (method, path)


def test_sse_route_is_an_event_stream(doc: dict[str, Any]) -> None:
    method, path = SSE
    responses = doc["paths"][path][method]["responses"]
    assert list(responses["200"]["content"]) == ["text/event-stream"]
    events = responses["200"]["content"]["text/event-stream"]["schema"]["oneOf"]
    names = {e["properties"]["event"]["const"] for e in events}
    assert names == {"progress", "idle", "timeout"}
    assert {"Cache-Control", "X-Accel-Buffering"} <= set(responses["200"]["headers"])


def _call(api: Any, method: str, path: str, want: int, **parts: Any) -> Any:
    case = api[path][method.upper()].Case(**parts)
    response = case.call()
    assert response.status_code == want, (method, path, response.text)
    case.validate_response(response, checks=CONFORMANCE)
    return response.json() if want != 200 or (method, path) != SSE else response.text


def test_cloud_answers_conform(api: Any) -> None:
    added = _call(
        api,
        "post",
        "/add/message",
        200,
        body={
            "user_id": "pat",
            "conversation_id": "c2",
            "messages": [{"role": "user", "content": "I moved to Lyon."}],
        },
    )
    task_id = added["data"]["task_id"]
    found = _call(
        api,
        "post",
        "/search/memory",
        200,
        body={
            "user_id": "pat",
            "query": "tea hiking",
            "relativity": 0,
            "include_tool_memory": True,
            "include_skill": True,
        },
    )["data"]
    assert found["memory_detail_list"] and found["preference_detail_list"]
    assert found["tool_memory_detail_list"]
    page = _call(
        api, "post", "/get/memory", 200, body={"user_id": "pat", "include_tool_memory": True}
    )["data"]
    assert page["memory_detail_list"] and page["preference_detail_list"]
    assert page["tool_memory_detail_list"]
    body = {"user_id": "pat", "conversation_id": "c1"}
    assert _call(api, "post", "/get/message", 200, body=body)["data"]["message_detail_list"]
    _call(api, "post", "/get/status", 200, body={"task_id": task_id})
    _call(api, "post", "/rerank", 200, body={"query": "tea", "documents": ["tea", "Lyon"]})
    _call(
        api, "post", "/extract/memory", 501, body={"messages": [{"role": "user", "content": "hi"}]}
    )
    _call(api, "post", "/get/status", 404, body={"task_id": "no-such-task"})
    _call(api, "post", "/search/memory", 400, body={"user_id": "pat"})
    _call(api, "post", "/search/memory", 400, body=[1])
    _call(api, "post", "/delete/memory", 404, body={"memory_ids": ["nope"], "user_ids": ["pat"]})
    _call(
        api,
        "post",
        "/add/message",
        200,
        body={**body, "messages": [{"role": "user", "content": "x"}]},
    )


def test_product_answers_conform(api: Any) -> None:
    _call(api, "get", "/health", 200)
    added = _call(
        api,
        "post",
        "/product/add",
        200,
        body={"user_id": "sam", "messages": "I play chess on Sundays."},
    )["data"]
    task_id = added[0]["task_id"]
    found = _call(
        api,
        "post",
        "/product/search",
        200,
        body={"user_id": "pat", "query": "tea hiking", "relativity": 0},
    )["data"]
    assert found["text_mem"][0]["memories"] and found["pref_mem"][0]["memories"]
    assert found["tool_mem"][0]["memories"]
    for bucket in ("text_mem", "pref_mem", "tool_mem", "act_mem"):
        body = {"user_id": "pat", "memory_type": bucket}
        groups = _call(api, "post", "/product/get_all", 200, body=body)["data"]
        assert groups[0]["memories"] or bucket == "act_mem", bucket
        body["search_query"] = "tea hiking"
        _call(api, "post", "/product/get_all", 200, body=body)
    page = _call(api, "post", "/product/get_memory", 200, body={"user_id": "pat"})["data"]
    for kind in ("memory", "preference", "tool_memory"):
        memory_id = page[f"{kind}_detail_list"][0]["id"]
        one = _call(
            api,
            "get",
            "/product/get_memory/{memory_id}",
            200,
            path_parameters={"memory_id": memory_id},
            query={"user_id": "pat"},
        )["data"]
        assert one[f"{kind}_detail_list"], kind
    _call(
        api,
        "get",
        "/product/get_memory/{memory_id}",
        404,
        path_parameters={"memory_id": "nope"},
        query={"user_id": "pat"},
    )
    query = {"user_id": "sam", "task_id": task_id}
    _call(api, "get", "/product/scheduler/status", 200, query=query)
    _call(api, "get", "/product/scheduler/status", 404, query={**query, "task_id": "nope"})
    _call(api, "get", "/product/scheduler/status", 400, query={"user_id": "sam"})
    _call(api, "get", "/product/scheduler/allstatus", 200)
    _call(api, "get", "/product/scheduler/task_queue_status", 200, query={"user_id": "sam"})
    wait = {"user_name": "sam", "timeout_seconds": 1}
    assert _call(api, "post", "/product/scheduler/wait", 200, query=wait)["message"] == "idle"
    stream = _call(api, "get", "/product/scheduler/wait/stream", 200, query=wait)
    assert "event: progress" in stream and "event: idle" in stream
    _call(api, "get", "/product/scheduler/wait/stream", 400, query={"user_name": ""})
    _call(api, "post", "/product/delete_memory", 200, body={"user_id": "sam"})
    _call(api, "post", "/product/delete_memory", 404, body={"user_id": "sam-never"})


def test_forbidden_and_oversized_answers_conform(api: Any, service: MemoryService) -> None:
    # data from before cubes were namespaced: bob owns the cube keyed "alice"
    service.store.claim_cube("bob", "alice")
    message = [{"role": "user", "content": "hi"}]
    alice = {"user_id": "alice", "conversation_id": "c", "messages": message}
    _call(api, "post", "/add/message", 403, body=alice)
    _call(api, "post", "/product/search", 403, body={"user_id": "alice", "query": "bob"})
    too_big = {"user_id": "pat", "query": "x" * (9 * 1024 * 1024)}
    _call(api, "post", "/search/memory", 413, body=too_big)
    _call(api, "post", "/product/search", 413, body=too_big)
