"""Issue 14: no input breaks a later read, no failed call changes data, no 5xx for bad input.

Everything here goes through a real ``memos serve`` subprocess (hash embedder),
with small HTTP limits so the cap and timeout cases run in seconds. Each test
works on fresh user ids, so they share one server.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server_support import ServerProcess

pytestmark = pytest.mark.timeout(180)

BODY_CAP = 256 * 1024
ENV = {
    "MEMOS_HTTP__MAX_BODY_BYTES": str(BODY_CAP),
    "MEMOS_HTTP__HEADER_TIMEOUT_S": "1.5",
    "MEMOS_HTTP__BODY_TIMEOUT_S": "1.5",
    "MEMOS_QUEUE__WORKERS": "0",
}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("hardening")
    server = ServerProcess(root / "data", root / "server.log", embedder="hash", env=ENV)
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is not None:
        print(server.log_tail())
    server.stop()


@pytest.fixture
def client(srv: ServerProcess) -> Iterator[httpx.Client]:
    with srv.client() as c:
        yield c


def uid(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def add(client: httpx.Client, user: str, text: str, **extra: Any) -> httpx.Response:
    msg = {"role": "user", "content": text, **extra.pop("msg", {})}
    body = {"user_id": user, "conversation_id": "c1", "async_mode": False, "messages": [msg]}
    return client.post("/add/message", json={**body, **extra})


def raw(client: httpx.Client, path: str, text: str) -> httpx.Response:
    """POST a body exactly as written (escapes such as \\ud800 survive)."""
    return client.post(path, content=text.encode(), headers={"Content-Type": "application/json"})


def refused(resp: httpx.Response, *, status: int = 400, code: int = 40000) -> str:
    assert resp.status_code == status, resp.text[:500]
    body = resp.json()
    if body["code"] == status:  # /product dialect
        assert body["data"]["error_code"] == code, body
    else:
        assert body["code"] == code, body
    return str(body["message"])


def readable(client: httpx.Client, user: str) -> None:
    """Every read route answers 200 for ``user``."""
    for path, body in [
        ("/get/memory", {"user_id": user}),
        ("/get/message", {"user_id": user, "conversation_id": "c1"}),
        ("/search/memory", {"user_id": user, "query": "anything at all"}),
        ("/search/memory", {"user_id": user, "query": "x", "filter": {"info.score": {"gt": 1}}}),
        ("/get/memory", {"user_id": user, "filter": {"tags": {"contains": "t"}}}),
        ("/product/get_all", {"user_id": user, "memory_type": "text_mem"}),
        ("/product/search", {"user_id": user, "query": "anything"}),
    ]:
        resp = client.post(path, json=body)
        assert resp.status_code == 200, f"{path}: {resp.status_code} {resp.text[:300]}"


def count(client: httpx.Client, user: str, cube: str | None = None) -> int:
    if cube is None:
        resp = client.post("/get/memory", json={"user_id": user, "size": 50})
    else:
        resp = client.post(
            "/product/get_memory", json={"user_id": user, "mem_cube_id": cube, "size": 50}
        )
    assert resp.status_code == 200, resp.text
    return int(resp.json()["data"]["total"])


# ------------------------------------------------------- write-time validation
@pytest.mark.parametrize(
    "chat_time",
    ["9999-12-31T23:59:59-23:59", "not a time", "0001-01-01", "1899-12-31 23:59:59", 10**400,
     1e300, "2201-01-01 00:00:00"],
)
def test_unreadable_or_out_of_range_chat_time_is_refused(
    client: httpx.Client, chat_time: Any
) -> None:
    user = uid()
    body = json.dumps({"user_id": user, "conversation_id": "c1", "async_mode": False,
                       "messages": [{"role": "user", "content": "hi", "chat_time": chat_time}]})
    message = refused(raw(client, "/add/message", body))
    assert "chat_time" in message
    assert count(client, user) == 0
    readable(client, user)


@pytest.mark.parametrize(
    "chat_time", ["2025-09-12 08:00:00", "03:07 PM on 05 March, 2026 UTC", "2025年9月12日 08:00",
                  1757664000, 1757664000000, "2025-09-12T08:00:00+08:00", "2200-12-31 23:59:59"]
)
def test_readable_chat_times_are_kept(client: httpx.Client, chat_time: Any) -> None:
    user = uid()
    assert add(client, user, "I like tea", msg={"chat_time": chat_time}).status_code == 200
    readable(client, user)
    assert count(client, user) == 1


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def test_info_depth_size_and_non_finite_numbers_are_refused(client: httpx.Client) -> None:
    user = uid()
    assert "info" in refused(add(client, user, "deep", info=nested(500)))
    assert "info" in refused(add(client, user, "nine", info=nested(9)))
    assert "info" in refused(add(client, user, "big", info={"blob": "x" * 70_000}))
    for constant in ("NaN", "Infinity", "-Infinity"):
        body = ('{"user_id": "%s", "conversation_id": "c1", "async_mode": false, '
                '"info": {"score": %s}, "messages": [{"role": "user", "content": "n"}]}')
        refused(raw(client, "/add/message", body % (user, constant)))
    assert count(client, user) == 0
    assert add(client, user, "eight levels are fine", info=nested(8)).status_code == 200
    readable(client, user)
    assert count(client, user) == 1


# ------------------------------------------------ stored data that cannot render
def test_rows_written_before_validation_do_not_break_reads(
    client: httpx.Client, srv: ServerProcess
) -> None:
    user = uid()
    for text in ("good one", "poisoned time", "poisoned info", "deep info", "bad tags"):
        assert add(client, user, text, tags=["t"]).status_code == 200
    with sqlite3.connect(srv.db_path, timeout=30) as db:  # what an older version let in
        db.execute("UPDATE memories SET event_time = 2.6e11 WHERE cube_id = ? AND value LIKE ?",
                   (user, "%poisoned time%"))
        db.execute("UPDATE memories SET info = '{\"score\": NaN}' WHERE cube_id = ? "
                   "AND value LIKE ?", (user, "%poisoned info%"))
        db.execute("UPDATE memories SET info = ? WHERE cube_id = ? AND value LIKE ?",
                   (json.dumps(nested(500)), user, "%deep info%"))
        db.execute("UPDATE memories SET tags = 'not json' WHERE cube_id = ? AND value LIKE ?",
                   (user, "%bad tags%"))
        db.execute("UPDATE messages SET event_time = -1e300 WHERE cube_id = ?", (user,))
    readable(client, user)
    values = {m["memory_value"] for m in client.post(
        "/get/memory", json={"user_id": user, "size": 50}).json()["data"]["memory_detail_list"]}
    assert len(values) == 5 and any("good one" in v for v in values)  # every row still served


def test_a_failed_read_leaves_no_stale_snapshot_for_others(
    client: httpx.Client, srv: ServerProcess
) -> None:
    """Poison the next read's rows at the SQL level (a value SQLite itself refuses), then
    30 new users add and read their own data: none is refused or reads a stale view."""
    victim = uid("poison")
    assert add(client, victim, "poison me", tags=["t"]).status_code == 200
    with sqlite3.connect(srv.db_path, timeout=30) as db:
        db.execute("UPDATE memories SET info = 'not json' WHERE cube_id = ?", (victim,))
    for _ in range(4):  # every reader thread of the server tries the poisoned read
        resp = client.post("/get/memory", json={"user_id": victim, "filter": {"info.k": "v"}})
        assert resp.status_code < 500, resp.text
    for i in range(30):
        user = uid(f"after{i}")
        resp = add(client, user, f"note {i}", msg={"message_id": f"m{i}"})
        assert resp.status_code == 200, resp.text
        assert count(client, user) == 1
        got = client.post("/get/message", json={"user_id": user, "conversation_id": "c1"})
        assert [m["content"] for m in got.json()["data"]["message_detail_list"]] == [f"note {i}"]


# -------------------------------------------------------------- cube squatting
def test_another_users_cube_name_never_takes_a_users_default_cube(client: httpx.Client) -> None:
    bob, carol = uid("bob"), uid("carol")
    resp = client.post("/product/add", json={"user_id": bob, "mem_cube_id": carol,
                                             "messages": [{"role": "user", "content": "bob's"}]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"][0]["cube_id"] == carol
    assert add(client, carol, "carol's own").status_code == 200
    calls = [
        ("/search/memory", {"user_id": carol, "query": "own", "relativity": 0}),
        ("/get/memory", {"user_id": carol}),
        ("/get/message", {"user_id": carol, "conversation_id": "c1"}),
        ("/product/add", {"user_id": carol, "messages": "carol again"}),
        ("/product/search", {"user_id": carol, "query": "bob"}),
    ]
    for path, body in calls:
        resp = client.post(path, json=body)
        assert resp.status_code == 200, f"{path}: {resp.text}"
        assert "bob's" not in resp.text
    assert count(client, carol) == 2
    assert count(client, bob, cube=carol) == 1  # bob's cube named like carol is his, intact
    resp = client.post("/delete/memory", json={"user_id": carol})
    assert resp.status_code == 200 and resp.json()["data"]["deleted_count"] == 2
    assert count(client, bob, cube=carol) == 1


def test_foreign_and_missing_cubes_answer_alike(client: httpx.Client) -> None:
    alice, bob = uid("alice"), uid("bob")
    assert client.post("/product/add", json={"user_id": alice, "mem_cube_id": "shared",
                                             "messages": "alice's secret"}).status_code == 200
    assert add(client, alice, "alice default").status_code == 200
    answers = []
    for cube in (alice, "shared", uid("nobody")):
        resp = client.post("/product/search", json={"user_id": bob, "query": "secret",
                                                    "readable_cube_ids": [cube]})
        assert resp.status_code == 200, resp.text
        assert "alice" not in json.dumps(resp.json()["data"]["text_mem"][0]["memories"])
        answers.append(resp.json()["data"]["text_mem"][0]["memories"])
        resp = client.post("/product/get_memory", json={"user_id": bob, "mem_cube_id": cube})
        assert resp.status_code == 200 and resp.json()["data"]["total"] == 0
    assert answers == [[], [], []]


# ----------------------------------------------------- failed calls change nothing
def test_failed_multi_cube_delete_deletes_nothing(client: httpx.Client) -> None:
    bob = uid("bob")
    for i in range(3):
        assert add(client, bob, f"keep {i}").status_code == 200
    resp = client.post("/product/delete_memory",
                       json={"user_id": bob, "writable_cube_ids": [bob, "no-such-cube"]})
    refused(resp, status=404, code=40308)
    assert count(client, bob) == 3
    ids = [m["id"] for m in client.post("/get/memory", json={"user_id": bob}).json()["data"][
        "memory_detail_list"]]
    resp = client.post("/product/delete_memory", json={"user_id": bob, "memory_ids": [
        ids[0], str(uuid.uuid4())], "writable_cube_ids": [bob, "other"]})
    refused(resp, status=404, code=40307)
    assert count(client, bob) == 3


def test_failed_multi_cube_add_stores_nothing(client: httpx.Client) -> None:
    bob = uid("bob")
    for _ in range(3):
        resp = client.post("/product/add", json={"user_id": bob, "messages": "dup?",
                                                 "writable_cube_ids": [bob, "x" * 101]})
        refused(resp, status=400, code=40000)
    resp = client.post("/product/add", json={"user_id": bob, "messages": "dup?",
                                             "writable_cube_ids": [bob, "bad\u0001id"]})
    refused(resp)
    assert count(client, bob) == 0
    resp = client.post("/product/get_memory", json={"user_id": bob, "mem_cube_id": "x" * 100})
    assert resp.json()["data"]["total"] == 0
    resp = client.post("/product/add", json={"user_id": bob, "messages": "once",
                                             "writable_cube_ids": [bob, "work"]})
    assert resp.status_code == 200 and {a["cube_id"] for a in resp.json()["data"]} == {bob, "work"}
    assert count(client, bob) == 1 and count(client, bob, cube="work") == 1


# ------------------------------------------------------------------ no 5xx
SURROGATE = "\\ud800"
ROUTES_WITH_STRINGS = {
    "/add/message": '{"user_id": "%s", "conversation_id": "c1", "messages": '
                    '[{"role": "user", "content": "hi", "message_id": "m"}]}',
    "/search/memory": '{"user_id": "%s", "query": "hello"}',
    "/get/memory": '{"user_id": "%s"}',
    "/get/message": '{"user_id": "%s", "conversation_id": "c1"}',
    "/delete/memory": '{"user_id": "%s"}',
    "/get/status": '{"task_id": "%s"}',
    "/rerank": '{"query": "%s", "documents": ["a", "b"]}',
    "/product/add": '{"user_id": "%s", "messages": "hello"}',
    "/product/search": '{"user_id": "%s", "query": "hello"}',
    "/product/get_all": '{"user_id": "%s", "memory_type": "text_mem"}',
}


@pytest.mark.parametrize("path", sorted(ROUTES_WITH_STRINGS))
def test_lone_surrogates_in_any_string_field_are_refused(client: httpx.Client, path: str) -> None:
    template = ROUTES_WITH_STRINGS[path]
    body = template % SURROGATE
    assert "not valid Unicode" in refused(raw(client, path, body))
    # in every other string of the body too, keys included
    pristine = json.loads(template % "someone")
    for text in (json.dumps(pristine).replace('"hi"', f'"h{SURROGATE}"'),
                 json.dumps(pristine).replace('"c1"', f'"{SURROGATE}"'),
                 json.dumps({**pristine, "extra": {SURROGATE: 1}}).replace(
                     "\\\\ud800", SURROGATE)):
        resp = raw(client, path, text)
        assert resp.status_code < 500, resp.text


@pytest.mark.parametrize(
    "flt",
    ['{"info.n": {"gt": 10000000000000000000000000000000}}',
     '{"create_time": {"gte": ' + str(10**400) + "}}",
     '{"create_time": {"gte": 1e300}}',
     '{"info.n": {"gt": 1e400}}',
     '{"info.n": {"in": [' + ", ".join(["1"] * 1001) + "]}}"],
)
def test_filter_values_beyond_what_stores_hold_are_refused(client: httpx.Client, flt: str) -> None:
    user = uid()
    for path in ("/search/memory", "/get/memory"):
        body = f'{{"user_id": "{user}", "query": "q", "filter": {flt}}}'
        refused(raw(client, path, body))


def test_huge_in_list_is_refused_before_it_reaches_sql(client: httpx.Client) -> None:
    values = ", ".join(["1"] * 4_000_000)
    resp = raw(client, "/get/memory", '{"user_id": "u", "filter": {"info.n": {"in": ['
               + values + "]}}}")
    refused(resp, status=413)


def test_duplicate_keys_are_refused(client: httpx.Client) -> None:
    a, b = uid("a"), uid("b")
    body = (f'{{"user_id": "{a}", "user_id": "{b}", "conversation_id": "c1", '
            '"async_mode": false, "messages": [{"role": "user", "content": "whose?"}]}')
    assert "user_id" in refused(raw(client, "/add/message", body))
    assert count(client, a) == 0 and count(client, b) == 0
    refused(raw(client, "/product/search", f'{{"user_id": "{a}", "query": "x", "query": "y"}}'))


# ------------------------------------------------------------- resource limits
def test_body_over_the_cap_is_413_in_the_envelope(client: httpx.Client) -> None:
    user = uid()
    big = json.dumps({"user_id": user, "conversation_id": "c1",
                      "messages": [{"role": "user", "content": "x" * (BODY_CAP + 10)}]})
    assert "MEMOS_HTTP__MAX_BODY_BYTES" in refused(raw(client, "/add/message", big), status=413)
    refused(raw(client, "/product/add", big), status=413, code=40000)

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked, counted as it arrives
        yield big.encode()

    resp = client.post(
        "/add/message", content=chunks(), headers={"Content-Type": "application/json"}
    )
    refused(resp, status=413)
    assert count(client, user) == 0


def _connect(srv: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    return sock


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    sock.settimeout(seconds)
    got = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return True, got
            got += chunk
    except TimeoutError:
        return False, got


def test_slow_headers_and_slow_bodies_are_dropped(srv: ServerProcess) -> None:
    slow_header = _connect(srv)
    slow_header.sendall(b"POST /search/memory HTTP/1.1\r\nHost: x\r\n")
    idle = _connect(srv)  # connects and says nothing
    slow_body = _connect(srv)
    slow_body.sendall(b"POST /search/memory HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                      b"\r\nContent-Length: 100\r\n\r\n{\"user_id\":")
    started = time.monotonic()
    for sock in (slow_header, idle):
        closed, _ = _closed_within(sock, 8)
        assert closed, "a connection without complete headers stayed open"
    closed, answer = _closed_within(slow_body, 8)
    assert closed and b" 408 " in answer.split(b"\r\n", 1)[0], answer[:200]
    assert time.monotonic() - started < 8
    for sock in (slow_header, idle, slow_body):
        sock.close()
    with httpx.Client(base_url=srv.base_url) as c:  # the server still serves
        assert c.get("/health").status_code == 200


# ----------------------------------------------------------------- task status
def test_task_status_is_scoped_as_far_as_the_request_allows(client: httpx.Client) -> None:
    alice = uid("alice")
    task = add(client, alice, "hello").json()["data"]["task_id"]
    mine = client.post("/get/status", json={"task_id": task, "user_id": alice})
    assert mine.status_code == 200 and mine.json()["data"]["status"] == "completed"
    other = client.post("/get/status", json={"task_id": task, "user_id": uid("mallory")})
    refused(other, status=404, code=50131)
    anonymous = client.post("/get/status", json={"task_id": task})
    assert anonymous.status_code == 200
    assert set(anonymous.json()["data"]) == {"status"}  # never the failure text


# --------------------------------------------------------------- the migration
def test_legacy_squatted_cube_moves_into_its_owners_namespace(tmp_path: Path) -> None:
    from memos.domain.models import MemoryItem, Scope
    from memos.store.sqlite import SQLiteStore

    path = tmp_path / "legacy.db"
    store = SQLiteStore(path)
    legacy = Scope(user_id="bob", cube_id="carol")  # bob named a cube after carol, before
    store.claim_cube("bob", "carol")
    vec = [[1.0, 0.0, 0.0]]
    store.ingest(legacy, [], [MemoryItem(user_id="bob", cube_id="carol", value="bob's")], vec)
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM _migrations WHERE name = '0006_owned_cube_keys'")
    store = SQLiteStore(path)
    try:
        key = "bob\x1fcarol"
        assert store.cube_owner("carol") is None
        assert store.cube_owner(key) == "bob"
        assert [m.value for m in store.list_memories(Scope(user_id="bob", cube_id=key), None,
                                                     offset=0, limit=5).items] == ["bob's"]
        store.claim_cube("carol", "carol")  # carol's default cube is hers again
    finally:
        store.close()


def test_anonymous_status_of_a_failed_task_never_shows_its_reason(restartable_server: Any) -> None:
    from server_support import free_port

    dead_llm = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: every fine pass fails
    srv = restartable_server(env={"MEMOS_LLM_BACKEND": "openai", "MEMOS_LLM_BASE_URL": dead_llm,
                                  "MEMOS_LLM_MODEL": "none", "MEMOS_QUEUE__WORKERS": "0"})
    with srv.client() as c:
        alice = uid("alice")
        resp = add(c, alice, "my secret plan is to move to Oslo", mode="fine")
        assert resp.status_code == 200, resp.text
        task = resp.json()["data"]["task_id"]
        own = c.post("/get/status", json={"task_id": task, "user_id": alice}).json()["data"]
        assert own["status"] == "failed" and own["error"]
        anonymous = c.post("/get/status", json={"task_id": task})
        assert anonymous.json()["data"] == {"status": "failed"}
        refused(c.post("/get/status", json={"task_id": task, "user_id": uid("eve")}),
                status=404, code=50131)


def test_the_in_process_sdk_applies_the_same_bounds(tmp_path: Path) -> None:
    from memos.errors import InvalidParameter
    from memos.sdk import MemOS
    from memos.settings import load_settings

    settings = load_settings({"data_dir": tmp_path, "embedder": {"kind": "hash"}}, environ={})
    with MemOS(settings=settings) as mem:
        msgs = [{"role": "user", "content": "hi"}]
        for kwargs in ({"user_id": "a\ud800"}, {"user_id": "a", "info": {"n": float("nan")}},
                       {"user_id": "a", "info": nested(40)},
                       {"user_id": "a", "info": {"n": 2**70}}):
            with pytest.raises(InvalidParameter):
                mem.add_message(messages=msgs, conversation_id="c", **kwargs)
        with pytest.raises(InvalidParameter, match="chat_time"):
            mem.add_message(messages=[{**msgs[0], "chat_time": "9999-12-31T23:59:59-23:59"}],
                            user_id="a", conversation_id="c")
        assert mem.get_memory(user_id="a")["total"] == 0
