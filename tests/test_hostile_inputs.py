"""Property test: generated hostile input to every route never gets a 5xx, never hurts data.

Every operation of the server's own OpenAPI document is driven over the real
HTTP server with bodies (or query parameters) whose fields are replaced by
generated values: lone surrogates, control characters, RTL marks, NUL, SQL and
JSON-path metacharacters, integers far beyond 64 bits, NaN and infinities,
deep nesting and long arrays. The data stored before the test (a victim's
messages and memories in two cubes) is compared afterwards, by count and by a
content hash. The figures go to docs/reliability.md ("Hostile inputs").
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server_support import ServerProcess

pytestmark = pytest.mark.timeout(600)

VICTIM = "victim-" + uuid.uuid4().hex
SPECIAL = ["\ud800", "\udfff", "a\ud83dz", "\x00", "\x1f", "\u202e\u2066rtl", "\u200f", "\ufeff",
           "%", "_", "' OR 1=1 --", '"', "\\", "$.a", "用户🙂", "", " ", "\n", "x" * 5000]
HUGE = [10**19, -(10**19), 10**400, 2**63, -(2**63) - 1, float("nan"), float("inf"), 1e308, -0.0]

texts = st.one_of(
    st.sampled_from(SPECIAL),
    st.text(alphabet=st.characters(blacklist_categories=()), max_size=30),  # surrogates too
)
numbers = st.one_of(st.sampled_from(HUGE), st.integers(), st.floats())
scalars = st.one_of(st.none(), st.booleans(), texts, numbers)


def deep(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


values = st.one_of(
    scalars,
    st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(texts, c, max_size=3),
                 max_leaves=12),
    st.sampled_from([deep(40), deep(600), [1] * 20_000, {"in": [0] * 5000}]),
    st.builds(lambda k, v: {k: {"gt": v}}, texts, numbers),  # filter-shaped
)

BASE: dict[str, dict[str, Any]] = {
    "/add/message": {"conversation_id": "c", "async_mode": False,
                     "messages": [{"role": "user", "content": "hello there"}]},
    "/search/memory": {"query": "hello"},
    "/get/memory": {},
    "/delete/memory": {},
    "/get/message": {"conversation_id": "c"},
    "/extract/memory": {"messages": [{"role": "user", "content": "hi"}]},
    "/get/status": {"task_id": str(uuid.uuid4())},
    "/rerank": {"query": "q", "documents": ["a", "b"]},
    "/product/add": {"messages": "hello"},
    "/product/search": {"query": "hello"},
    "/product/get_all": {"memory_type": "text_mem"},
    "/product/get_memory": {},
    "/product/delete_memory": {},
}
QUERY_BASE = {"timeout_seconds": "0.2", "poll_interval": "0.05"}


def operations(srv: ServerProcess) -> list[tuple[str, str, list[str]]]:
    spec = httpx.get(srv.base_url + "/openapi.json").json()
    ops = []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            ref = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            ref = ref.get("schema", {}).get("$ref", "")
            if ref:
                fields = list(spec["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"])
            else:
                fields = [p["name"] for p in op.get("parameters", [])]
            ops.append((method.upper(), path, fields))
    return ops


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("hostile")
    server = ServerProcess(root / "data", root / "server.log", embedder="hash",
                           env={"MEMOS_HTTP__MAX_BODY_BYTES": str(2 * 1024 * 1024)})
    server.start()
    with server.client() as c:
        for i in range(3):
            r = c.post("/add/message", json={"user_id": VICTIM, "conversation_id": "c",
                                             "async_mode": False, "info": {"n": i},
                                             "messages": [{"role": "user", "content": f"v{i}"}]})
            assert r.status_code == 200, r.text
        r = c.post("/product/add", json={"user_id": VICTIM, "mem_cube_id": "vault",
                                         "messages": "the vault note"})
        assert r.status_code == 200, r.text
    yield server
    server.stop()


def victim_state(c: httpx.Client) -> tuple[int, str]:
    parts = [
        c.post("/get/memory", json={"user_id": VICTIM, "size": 50}).json(),
        c.post("/product/get_memory", json={"user_id": VICTIM, "mem_cube_id": "vault"}).json(),
        c.post("/get/message", json={"user_id": VICTIM, "conversation_id": "c",
                                     "message_limit_number": 50}).json(),
    ]
    n = parts[0]["data"]["total"] + parts[1]["data"]["total"]
    n += len(parts[2]["data"]["message_detail_list"])
    return n, hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def encode(body: Any) -> bytes:
    # ensure_ascii writes lone surrogates as \\udXXX escapes; NaN/Infinity raw, as attackers do
    return json.dumps(body, ensure_ascii=True, allow_nan=True).encode()


def quote(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, allow_nan=True)[:2000]
    return urllib.parse.quote(text.encode("utf-8", "surrogatepass"), safe="")


STATS: Counter[str] = Counter()


@pytest.mark.slow
def test_generated_hostile_input_never_5xx_and_never_touches_stored_data(
    srv: ServerProcess,
) -> None:
    ops = operations(srv)
    assert len(ops) >= 18  # every route of the document, both dialects
    with srv.client(timeout=30) as c:
        before = victim_state(c)

        @settings(max_examples=400, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(op=st.sampled_from(ops), data=st.data())
        def attack(op: tuple[str, str, list[str]], data: st.DataObject) -> None:
            method, path, fields = op
            user = "att-" + uuid.uuid4().hex[:8]
            chosen = data.draw(st.lists(st.sampled_from(fields or ["x"]), min_size=1, max_size=3))
            hostile = {f: data.draw(values) for f in chosen}
            if method == "GET" or path.startswith("/product/scheduler/wait"):
                params = {"user_id": user, "user_name": user, **QUERY_BASE, **hostile}
                url = path.replace("{memory_id}", quote(hostile.get("memory_id", "m")))
                query = "&".join(f"{k}={quote(v)}" for k, v in params.items()
                                 if "{" + k + "}" not in path)
                resp = c.request(method, f"{url}?{query}")
            else:
                body = {"user_id": user, **BASE.get(path, {}), **hostile}
                if data.draw(st.booleans()) and "messages" in body:  # inside a message too
                    body["messages"] = [{"role": "user", "content": data.draw(values),
                                         "chat_time": data.draw(values),
                                         "message_id": data.draw(values)}]
                resp = c.post(path, content=encode(body),
                              headers={"Content-Type": "application/json"})
            STATS["requests"] += 1
            STATS[f"{resp.status_code}"] += 1
            assert resp.status_code < 500 or resp.status_code == 501, (
                f"{method} {path} {hostile!r:.300} -> {resp.status_code} {resp.text[:300]}"
            )
            if resp.headers.get("content-type", "").startswith("application/json"):
                envelope = resp.json()
                assert {"code", "message", "data"} <= set(envelope), envelope

        attack()
        after = victim_state(c)
    print(f"\nhostile inputs: {dict(STATS)}; victim rows {before[0]} -> {after[0]}")
    assert after == before, "stored data changed"
    assert before[0] == 3 + 1 + 3
