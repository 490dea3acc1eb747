"""Every documented bad input gets its error code in the right envelope, never a 500,
and leaves the stored data exactly as it was."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.timeout(120)


@dataclass(frozen=True)
class Seed:
    owner: str
    conversation: str
    memory_ids: list[str]
    message_count: int


@pytest.fixture(scope="module")
def seed(server: Any) -> Seed:
    """A user with a few memories that no bad request may change."""
    owner = f"err-owner-{uuid.uuid4().hex[:8]}"
    conv = "err-conv"
    with server.client() as http:
        resp = http.post("/add/message", json={
            "user_id": owner, "conversation_id": conv,
            "messages": [
                {"role": "user", "content": "I keep bees on my rooftop.", "message_id": "s1"},
                {"role": "assistant", "content": "Rooftop beekeeping sounds fun.",
                 "message_id": "s2"},
                {"role": "user", "content": "My hives produced 20 kg of honey.",
                 "message_id": "s3"},
            ],
        })
        assert resp.status_code == 200 and resp.json()["code"] == 0, resp.text
        page = http.post("/get/memory", json={"user_id": owner, "size": 50}).json()["data"]
    return Seed(owner, conv, [m["id"] for m in page["memory_detail_list"]], 3)


def snapshot(http: httpx.Client, seed: Seed) -> tuple[int, list[str], list[str]]:
    page = http.post("/get/memory", json={"user_id": seed.owner, "size": 50})
    assert page.status_code == 200, page.text
    data = page.json()["data"]
    msgs = http.post("/get/message", json={"user_id": seed.owner,
                                           "conversation_id": seed.conversation,
                                           "message_limit_number": 50})
    assert msgs.status_code == 200, msgs.text
    return (
        data["total"],
        sorted(m["id"] for m in data["memory_detail_list"]),
        [m["message_id"] for m in msgs.json()["data"]["message_detail_list"]],
    )


Body = Callable[[Seed], Any]


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    body: Body | None = None          # JSON body built from the seed
    code: int = 40000                 # the MemOS error code
    status: int | None = None         # expected HTTP status when it matters
    raw: bytes | None = None          # or a raw body sent as application/json
    method: str = "POST"
    params: dict[str, str] | None = None


def msgs(*items: dict[str, Any]) -> list[dict[str, Any]]:
    return list(items)


USER_MSG = {"role": "user", "content": "hello there"}
BIG_ADD = "word " * 40_001
BIG_QUERY = "word " * 4_001


def add_body(**kw: Any) -> Body:
    def build(s: Seed) -> dict[str, Any]:
        body: dict[str, Any] = {"user_id": s.owner, "conversation_id": s.conversation,
                                "messages": [USER_MSG]}
        body.update(kw)
        return {k: v for k, v in body.items() if v is not ...}
    return build


def search_body(**kw: Any) -> Body:
    def build(s: Seed) -> dict[str, Any]:
        body: dict[str, Any] = {"user_id": s.owner, "query": "bees"}
        body.update(kw)
        return {k: v for k, v in body.items() if v is not ...}
    return build


CLOUD_CASES = [
    # ---- /add/message
    Case("add: missing user_id", "/add/message", add_body(user_id=...), 40002),
    Case("add: blank user_id", "/add/message", add_body(user_id="   "), 40002),
    Case("add: user_id 101 chars", "/add/message", add_body(user_id="u" * 101), 40010),
    Case("add: user_id not a string", "/add/message", add_body(user_id=["a"]), 40000),
    Case("add: missing conversation_id", "/add/message", add_body(conversation_id=...), 40002),
    Case("add: conversation_id 101 chars", "/add/message",
         add_body(conversation_id="c" * 101), 40011),
    Case("add: missing messages", "/add/message", add_body(messages=...), 40002),
    Case("add: messages is a string", "/add/message", add_body(messages="hello"), 40000),
    Case("add: messages is an object", "/add/message", add_body(messages=USER_MSG), 40000),
    Case("add: messages empty", "/add/message", add_body(messages=[]), 40003),
    Case("add: unknown role", "/add/message",
         add_body(messages=msgs({"role": "robot", "content": "x"})), 40000),
    Case("add: missing role", "/add/message", add_body(messages=msgs({"content": "x"})), 40002),
    Case("add: unknown role after a valid message", "/add/message",
         add_body(messages=msgs(USER_MSG, {"role": "narrator", "content": "x"})), 40000),
    Case("add: part type video", "/add/message",
         add_body(messages=msgs({"role": "user", "content": [
             {"type": "video", "video_url": {"url": "http://x/v.mp4"}}]})), 40006),
    Case("add: part without type", "/add/message",
         add_body(messages=msgs({"role": "user", "content": [{"text": "x"}]})), 40006),
    Case("add: text part without text", "/add/message",
         add_body(messages=msgs({"role": "user", "content": [{"type": "text"}]})), 40000),
    Case("add: part is not an object", "/add/message",
         add_body(messages=msgs({"role": "user", "content": ["x"]})), 40000),
    Case("add: image_url is a string", "/add/message",
         add_body(messages=msgs({"role": "user", "content": [
             {"type": "image_url", "image_url": "http://x/cat.png"}]})), 40000),
    Case("add: file is a string", "/add/message",
         add_body(messages=msgs({"role": "user", "content": [
             {"type": "file", "file": "report.pdf"}]})), 40000),
    Case("add: tool call function is a string", "/add/message",
         add_body(messages=msgs({"role": "assistant", "content": None,
                                 "tool_calls": [{"type": "function", "function": "lookup"}]})),
         40000),
    Case("add: tool call of unknown type", "/add/message",
         add_body(messages=msgs({"role": "assistant", "content": None,
                                 "tool_calls": [{"type": "retrieval"}]})), 40006),
    Case("add: empty content", "/add/message",
         add_body(messages=msgs({"role": "user", "content": ""})), 40002),
    Case("add: message_id 101 chars", "/add/message",
         add_body(messages=msgs({"role": "user", "content": "x", "message_id": "m" * 101})),
         40000),
    Case("add: > 40k tokens", "/add/message",
         add_body(messages=msgs({"role": "user", "content": BIG_ADD})), 40305),
    Case("add: > 40k tokens across messages", "/add/message",
         add_body(messages=msgs(*[{"role": "user", "content": "word " * 10_001}] * 4)), 40305),
    Case("add: tags not strings", "/add/message", add_body(tags=[1, 2]), 40000),
    Case("add: info not an object", "/add/message", add_body(info="x"), 40000),
    Case("add: malformed JSON", "/add/message", raw=b"{bad", code=40000),
    Case("add: JSON array body", "/add/message", raw=b"[1, 2]", code=40000),
    Case("add: truncated JSON", "/add/message", raw=b'{"user_id": "x", "messages": [', code=40000),
    # ---- /search/memory
    Case("search: missing user_id", "/search/memory", search_body(user_id=...), 40002),
    Case("search: user_id 101 chars", "/search/memory", search_body(user_id="u" * 101), 40010),
    Case("search: missing query", "/search/memory", search_body(query=...), 40002),
    Case("search: blank query", "/search/memory", search_body(query="  "), 40002),
    Case("search: query > 4k tokens", "/search/memory", search_body(query=BIG_QUERY), 40305),
    Case("search: memory_limit_number 26", "/search/memory",
         search_body(memory_limit_number=26), 40000),
    Case("search: memory_limit_number 0", "/search/memory",
         search_body(memory_limit_number=0), 40000),
    Case("search: memory_limit_number not a number", "/search/memory",
         search_body(memory_limit_number="many"), 40000),
    Case("search: relativity 1.5", "/search/memory", search_body(relativity=1.5), 40012),
    Case("search: relativity -0.1", "/search/memory", search_body(relativity=-0.1), 40012),
    Case("search: conversation_id 101 chars", "/search/memory",
         search_body(conversation_id="c" * 101), 40011),
    Case("search: filter unknown operator", "/search/memory",
         search_body(filter={"agent_id": {"like": "a%"}}), 40000),
    Case("search: filter and not a list", "/search/memory",
         search_body(filter={"and": {"agent_id": "a"}}), 40000),
    Case("search: filter is a list", "/search/memory", search_body(filter=[1]), 40000),
    Case("search: filter bad date", "/search/memory",
         search_body(filter={"create_time": {"gt": "last week"}}), 40000),
    Case("search: preference_limit_number 26", "/search/memory",
         search_body(preference_limit_number=26), 40000),
    Case("search: malformed JSON", "/search/memory", raw=b"{bad", code=40000),
    # ---- /get/memory
    Case("get memory: missing user_id", "/get/memory", lambda s: {}, 40002),
    Case("get memory: page 0", "/get/memory", lambda s: {"user_id": s.owner, "page": 0}, 40000),
    Case("get memory: size 51", "/get/memory", lambda s: {"user_id": s.owner, "size": 51},
         40000),
    Case("get memory: huge page", "/get/memory",
         lambda s: {"user_id": s.owner, "page": 2**70}, 40000),
    Case("get memory: bad filter", "/get/memory",
         lambda s: {"user_id": s.owner, "filter": {"or": []}}, 40000),
    # ---- /delete/memory
    Case("delete: unknown memory id", "/delete/memory",
         lambda s: {"memory_ids": ["no-such-memory"], "user_ids": [s.owner]}, 40307, 404),
    Case("delete: one real and one unknown id (all or nothing)", "/delete/memory",
         lambda s: {"memory_ids": [s.memory_ids[0], "no-such-memory"], "user_ids": [s.owner]},
         40307, 404),
    Case("delete: both memory_ids and user_id", "/delete/memory",
         lambda s: {"memory_ids": s.memory_ids[:1], "user_id": s.owner,
                    "user_ids": [s.owner]}, 40000),
    Case("delete: memory_ids without owner", "/delete/memory",
         lambda s: {"memory_ids": s.memory_ids[:1]}, 40000),
    Case("delete: memory_ids with two owners", "/delete/memory",
         lambda s: {"memory_ids": s.memory_ids[:1], "user_ids": [s.owner, "other"]}, 40000),
    Case("delete: empty memory_ids", "/delete/memory",
         lambda s: {"memory_ids": [], "user_ids": [s.owner]}, 40003),
    Case("delete: user with no data", "/delete/memory",
         lambda s: {"user_id": f"nobody-{uuid.uuid4().hex}"}, 40308, 404),
    Case("delete: nothing given", "/delete/memory", lambda s: {}, 40000),
    # ---- /get/message, /get/status
    Case("get message: missing conversation_id", "/get/message",
         lambda s: {"user_id": s.owner}, 40002),
    Case("get message: missing user_id", "/get/message",
         lambda s: {"conversation_id": s.conversation}, 40002),
    Case("get message: limit 51", "/get/message",
         lambda s: {"user_id": s.owner, "conversation_id": s.conversation,
                    "message_limit_number": 51}, 40000),
    Case("status: unknown task", "/get/status", lambda s: {"task_id": "no-such-task"}, 50131),
    Case("status: missing task_id", "/get/status", lambda s: {}, 40000),
    # ---- unknown paths
    Case("unknown path", "/no/such/endpoint", lambda s: {}, 40001, 404),
]

PRODUCT_CASES = [
    Case("product add: messages empty", "/product/add",
         lambda s: {"user_id": s.owner, "messages": []}, 40003, 400),
    Case("product add: missing user_id", "/product/add",
         lambda s: {"messages": [USER_MSG]}, 40002, 400),
    Case("product add: unknown role", "/product/add",
         lambda s: {"user_id": s.owner, "messages": [{"role": "bot", "content": "x"}]},
         40000, 400),
    Case("product add: part type video", "/product/add",
         lambda s: {"user_id": s.owner, "messages": [{"role": "user", "content": [
             {"type": "video"}]}]}, 40006, 400),
    Case("product add: > 40k tokens", "/product/add",
         lambda s: {"user_id": s.owner, "messages": BIG_ADD}, 40305, 400),
    Case("product add: malformed JSON", "/product/add", raw=b"{bad", code=40000, status=400),
    Case("product search: missing user_id", "/product/search",
         lambda s: {"query": "bees"}, 40002, 400),
    Case("product search: top_k 51", "/product/search",
         lambda s: {"user_id": s.owner, "query": "bees", "top_k": 51}, 40000, 400),
    Case("product search: relativity 2", "/product/search",
         lambda s: {"user_id": s.owner, "query": "bees", "relativity": 2}, 40012, 400),
    Case("product search: query > 4k tokens", "/product/search",
         lambda s: {"user_id": s.owner, "query": BIG_QUERY}, 40305, 400),
    Case("product get_all: bad memory_type", "/product/get_all",
         lambda s: {"user_id": s.owner, "memory_type": "bogus"}, 40000, 400),
    Case("product get_memory: missing user_id", "/product/get_memory", lambda s: {}, 40002, 400),
    Case("product get_memory by id: unknown", f"/product/get_memory/{uuid.uuid4()}",
         method="GET", params={"user_id": "err-owner-x"}, code=40001, status=404),
    Case("product get_memory by id: missing user_id", "/product/get_memory/abc",
         method="GET", code=40002, status=400),
    Case("product delete: unknown id", "/product/delete_memory",
         lambda s: {"user_id": s.owner, "memory_ids": ["no-such-memory"]}, 40307, 404),
    Case("product delete: user with no data", "/product/delete_memory",
         lambda s: {"user_id": f"nobody-{uuid.uuid4().hex}"}, 40308, 404),
]


def send(http: httpx.Client, case: Case, seed: Seed) -> httpx.Response:
    if case.method == "GET":
        return http.get(case.path, params=case.params)
    if case.raw is not None:
        return http.post(case.path, content=case.raw,
                         headers={"Content-Type": "application/json"})
    assert case.body is not None
    return http.post(case.path, json=case.body(seed))


@pytest.mark.parametrize("case", CLOUD_CASES, ids=lambda c: c.name)
def test_cloud_bad_input(http: httpx.Client, seed: Seed, case: Case) -> None:
    before = snapshot(http, seed)
    resp = send(http, case, seed)
    assert resp.status_code < 500, f"server error {resp.status_code}: {resp.text[:500]}"
    assert 400 <= resp.status_code < 500, resp.text[:500]
    if case.status is not None:
        assert resp.status_code == case.status
    body = resp.json()
    assert set(body) == {"code", "message", "data"}, body
    assert body["code"] == case.code, body
    assert isinstance(body["message"], str) and body["message"]
    assert "Traceback" not in body["message"]
    assert snapshot(http, seed) == before


@pytest.mark.parametrize("case", PRODUCT_CASES, ids=lambda c: c.name)
def test_product_bad_input(http: httpx.Client, seed: Seed, case: Case) -> None:
    before = snapshot(http, seed)
    resp = send(http, case, seed)
    assert resp.status_code < 500, f"server error {resp.status_code}: {resp.text[:500]}"
    if case.status is not None:
        assert resp.status_code == case.status, resp.text[:500]
    body = resp.json()
    assert set(body) == {"code", "message", "data"}, body
    assert body["code"] == resp.status_code, body   # product envelope: code is the HTTP status
    assert body["data"]["error_code"] == case.code, body
    assert isinstance(body["message"], str) and body["message"]
    assert snapshot(http, seed) == before


def test_error_cases_cover_every_documented_code() -> None:
    codes = {c.code for c in CLOUD_CASES}
    assert {40000, 40001, 40002, 40003, 40006, 40010, 40011, 40012, 40305, 40307, 40308,
            50131} <= codes


def test_good_request_still_works_after_bad_ones(http: httpx.Client, seed: Seed) -> None:
    resp = http.post("/search/memory", json={"user_id": seed.owner, "query": "honey",
                                             "relativity": 0})
    assert resp.status_code == 200 and resp.json()["code"] == 0
    assert {m["id"] for m in resp.json()["data"]["memory_detail_list"]} == set(seed.memory_ids)
