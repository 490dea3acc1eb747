"""Tenant isolation: no endpoint returns, changes or deletes another user's memories.

A property-based part drives the in-process ASGI app (hash embedder, fast) with
random user ids, filters and queries; a smaller fixed part runs over the real
server subprocess.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from memos.api import create_app
from memos.domain.models import Scope
from memos.service import MemoryService
from memos.settings import load_settings

pytestmark = pytest.mark.timeout(300)

SECRET = "zqxwv"  # only ever in the victim's data; no strategy produces it
VICTIM_TEXTS = [
    f"{SECRET} the vault code is 8841",
    f"{SECRET} my bank PIN is stored in the red notebook",
    f"{SECRET} I secretly plan to move to Oslo",
]


# --------------------------------------------------------------------- setup
class World:
    def __init__(self, client: TestClient | httpx.Client, victim: str, victim_cube: str,
                 memory_ids: list[str], task_id: str, service: MemoryService | None) -> None:
        self.client = client
        self.victim = victim
        self.victim_cube = victim_cube
        self.memory_ids = memory_ids
        self.task_id = task_id
        self.service = service


def seed_victim(client: TestClient | httpx.Client, victim: str, victim_cube: str,
                conversation: str) -> tuple[list[str], str]:
    resp = client.post("/add/message", json={
        "user_id": victim, "conversation_id": conversation, "agent_id": "agent-1",
        "tags": ["secret"], "info": {"scene": "private"},
        "messages": [{"role": "user", "content": t, "message_id": f"v{i}"}
                     for i, t in enumerate(VICTIM_TEXTS)],
    })
    assert resp.status_code == 200 and resp.json()["code"] == 0, resp.text
    task_id = resp.json()["data"]["task_id"]
    resp = client.post("/product/add", json={
        "user_id": victim, "writable_cube_ids": [victim_cube],
        "messages": [{"role": "user", "content": f"{SECRET} cube note: launch is on Friday"}],
    })
    assert resp.status_code == 200 and resp.json()["code"] == 200, resp.text
    ids = [m["id"] for m in client.post("/get/memory", json={"user_id": victim, "size": 50}
                                        ).json()["data"]["memory_detail_list"]]
    ids += [a["memory_id"] for a in resp.json()["data"]]
    assert len(ids) == 4
    return ids, task_id


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir: Path = tmp_path_factory.mktemp("tenancy")
    cfg = load_settings({"data_dir": data_dir, "embedder": {"kind": "hash"}}, environ={})
    svc = MemoryService.open(cfg)
    app = create_app(cfg, service=svc)
    with TestClient(app, raise_server_exceptions=False) as client:
        ids, task = seed_victim(client, "victim", "victim-cube", "shared-conv")
        yield World(client, "victim", "victim-cube", ids, task, svc)
    svc.close()


# ---------------------------------------------------------------- assertions
def memory_ids_in(data: Any) -> set[str]:
    """Every memory id anywhere in a response's data."""
    found: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            if key in ("id", "memory_id") and isinstance(value, str):
                found.add(value)
            else:
                found |= memory_ids_in(value)
    elif isinstance(data, list):
        for value in data:
            found |= memory_ids_in(value)
    return found


def owners_in(data: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(data, dict):
        meta = data.get("metadata")
        if isinstance(meta, dict) and "user_id" in meta:
            found.add(meta["user_id"])
        for value in data.values():
            found |= owners_in(value)
    elif isinstance(data, list):
        for value in data:
            found |= owners_in(value)
    return found


def check(resp: httpx.Response, world: World, caller: str, what: str) -> Any:
    assert resp.status_code < 500, f"{what}: {resp.status_code} {resp.text[:500]}"
    assert SECRET not in resp.text, f"{what} leaked the victim's data: {resp.text[:500]}"
    body = resp.json()
    if resp.status_code == 200:
        data = body["data"]
        leaked = memory_ids_in(data) & set(world.memory_ids)
        assert not leaked, f"{what} returned the victim's memories {leaked}"
        assert owners_in(data) <= {caller}, f"{what} returned memories of {owners_in(data)}"
        return data
    return None


def victim_state(world: World) -> tuple[int, int, int]:
    assert world.service is not None
    store = world.service.store
    own = Scope(user_id=world.victim, cube_id=world.victim)
    cube = Scope(user_id=world.victim, cube_id=world.victim_cube)
    return (store.count_memories(own), store.count_memories(cube),
            len(store.list_messages(own, "shared-conv", limit=50)))


def attack(world: World, attacker: str, query: str, flt: Any) -> None:
    """Every read, write and delete an attacker can aim at the victim."""
    c = world.client
    vid = world.memory_ids
    # the attacker has data of their own, in the same conversation id, with the same words
    add = c.post("/add/message", json={
        "user_id": attacker, "conversation_id": "shared-conv", "agent_id": "agent-1",
        "tags": ["secret"], "info": {"scene": "private"},
        "messages": [{"role": "user", "content": "the vault code and bank PIN notebook"}],
    })
    check(add, world, attacker, "add")
    calls: list[tuple[str, httpx.Response]] = [
        ("search", c.post("/search/memory", json={"user_id": attacker, "query": query,
                                                  "filter": flt, "relativity": 0,
                                                  "memory_limit_number": 25})),
        ("search shared conversation", c.post("/search/memory", json={
            "user_id": attacker, "query": "vault code PIN Oslo", "relativity": 0,
            "conversation_id": "shared-conv", "filter": {"user_id": world.victim}})),
        ("get memory", c.post("/get/memory", json={"user_id": attacker, "filter": flt,
                                                   "size": 50})),
        ("get message", c.post("/get/message", json={"user_id": attacker,
                                                     "conversation_id": "shared-conv",
                                                     "message_limit_number": 50})),
        ("get status", c.post("/get/status", json={"task_id": world.task_id})),
        ("product search", c.post("/product/search", json={"user_id": attacker, "query": query,
                                                           "filter": flt, "top_k": 50})),
        ("product search victim cube", c.post("/product/search", json={
            "user_id": attacker, "query": "vault code launch Friday",
            "readable_cube_ids": [world.victim_cube]})),
        ("product search victim user cube", c.post("/product/search", json={
            "user_id": attacker, "query": "vault code", "readable_cube_ids": [world.victim]})),
        ("product search legacy cube", c.post("/product/search", json={
            "user_id": attacker, "query": "vault code", "mem_cube_id": world.victim})),
        ("product get_all", c.post("/product/get_all", json={"user_id": attacker,
                                                             "memory_type": "text_mem"})),
        ("product get_all victim", c.post("/product/get_all", json={
            "user_id": attacker, "memory_type": "text_mem",
            "mem_cube_ids": [world.victim, world.victim_cube]})),
        ("product get_all search", c.post("/product/get_all", json={
            "user_id": attacker, "memory_type": "text_mem", "search_query": "vault",
            "mem_cube_ids": [world.victim_cube]})),
        ("product get_memory", c.post("/product/get_memory", json={"user_id": attacker,
                                                                   "filter": flt})),
        ("product get_memory victim cube", c.post("/product/get_memory", json={
            "user_id": attacker, "mem_cube_id": world.victim_cube})),
    ]
    for memory_id in vid:
        calls.append(("product get by id", c.get(f"/product/get_memory/{memory_id}",
                                                 params={"user_id": attacker})))
    calls += [
        ("cloud delete by ids", c.post("/delete/memory", json={"memory_ids": vid,
                                                               "user_ids": [attacker]})),
        ("product delete by ids", c.post("/product/delete_memory", json={
            "user_id": attacker, "memory_ids": vid})),
        ("product delete in victim cube", c.post("/product/delete_memory", json={
            "user_id": attacker, "memory_ids": vid, "writable_cube_ids": [world.victim_cube]})),
        ("product delete all of victim cube", c.post("/product/delete_memory", json={
            "user_id": attacker, "writable_cube_ids": [world.victim_cube]})),
        ("product add into victim cube", c.post("/product/add", json={
            "user_id": attacker, "writable_cube_ids": [world.victim_cube],
            "messages": [{"role": "user", "content": "planted by the attacker"}]})),
    ]
    for what, resp in calls:
        data = check(resp, world, attacker, what)
        if what == "get status" and data is not None:
            assert set(data) == {"status"}
        if what == "get message" and data is not None:
            contents = [m["content"] for m in data["message_detail_list"]]
            assert contents and all("vault code and bank PIN" in t for t in contents), contents
        if what.startswith(("cloud delete", "product delete by", "product delete in")):
            assert resp.status_code != 200, f"{what} succeeded against the victim: {resp.text}"
        if what in ("product add into victim cube", "product delete all of victim cube"):
            # a cube name is per owner: these act on the attacker's own cube of that
            # name (callers check the victim's state is unchanged)
            assert resp.status_code in (200, 400, 404), f"{what}: {resp.text}"


# ------------------------------------------------------------ strategies
unsafe_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30
)
tricky = st.sampled_from([
    "'", '"', "%", "_", "%%", "_%_", "\\", "' OR '1'='1", '" OR 1=1 --', "victim%",
    "victim_", "VICTIM", "victim ", " victim", "victim\x00", "victim-cube", "Victim",
    "*", "?", "NULL", "null", "0", "-1", "用户", "ユーザー", "🙂", "a\nb", "a\tb",
    "); DROP TABLE memories; --", "tenant : x", "../victim", "victim/../x",
])
user_ids = st.one_of(tricky, unsafe_text, st.builds(lambda a, b: a + b, tricky, unsafe_text))

FIELDS = ["agent_id", "app_id", "conversation_id", "memory_type", "key", "user_id", "tags",
          "create_time", "update_time", "scene", "info.scene", "info.n", "mode"]
scalars = st.one_of(
    st.sampled_from(["victim", "victim-cube", "shared-conv", "agent-1", "secret", "private",
                     "UserMemory", "%", "_", "' OR 1=1 --", "2025-01-01"]),
    st.integers(-5, 5), st.booleans(), unsafe_text,
)
ops = st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte", "contains", "in", "like", "$or"])


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    field = draw(st.one_of(st.sampled_from(FIELDS), unsafe_text))
    if draw(st.booleans()):
        return {field: draw(scalars)}
    op = draw(ops)
    value = draw(st.lists(scalars, min_size=0, max_size=3)) if op == "in" else draw(scalars)
    return {field: {op: value}}


filter_nodes = st.recursive(
    conditions(),
    lambda children: st.one_of(
        st.builds(lambda xs: {"and": xs}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda xs: {"or": xs}, st.lists(children, min_size=1, max_size=3)),
    ),
    max_leaves=6,
)
filters = st.one_of(
    st.none(),
    filter_nodes,
    st.fixed_dictionaries({}, optional={"user": filter_nodes, "public": filter_nodes,
                                        "knowledgebase": filter_nodes}),
)
queries = st.one_of(
    st.sampled_from(["vault code", "bank PIN", "Oslo", "launch Friday", "what is my secret",
                     "红色笔记本", "%", "_", "' OR 1=1 --", 'tenant : "x"', "NEAR(vault code)"]),
    unsafe_text,
)


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(attacker=user_ids, query=queries, flt=filters)
def test_no_endpoint_crosses_tenants(world: World, attacker: str, query: str, flt: Any) -> None:
    assume(attacker.strip() and len(attacker) <= 100)
    assume(attacker not in (world.victim, world.victim_cube))
    before = victim_state(world)
    attack(world, attacker, query, flt)
    assert victim_state(world) == before


def test_filters_naming_the_victim_never_reach_the_victim(world: World) -> None:
    attacker = f"att-{uuid.uuid4().hex[:6]}"
    for flt in [{"user_id": world.victim}, {"or": [{"user_id": world.victim}, {"tags": "secret"}]},
                {"user": {"user_id": world.victim}}, {"conversation_id": "shared-conv"},
                {"agent_id": "agent-1"}, {"scene": "private"}]:
        attack(world, attacker, "vault code", flt)


def test_squatted_cube_id_does_not_expose_the_owner(world: World) -> None:
    # a user whose own id equals someone else's cube id must not read that cube
    resp = world.client.post("/search/memory", json={"user_id": world.victim_cube,
                                                     "query": "launch Friday", "relativity": 0})
    check(resp, world, world.victim_cube, "search as the cube's name")
    resp = world.client.post("/get/memory", json={"user_id": world.victim_cube})
    check(resp, world, world.victim_cube, "list as the cube's name")


def test_victim_still_sees_everything(world: World) -> None:
    resp = world.client.post("/get/memory", json={"user_id": world.victim, "size": 50})
    own = {m["id"] for m in resp.json()["data"]["memory_detail_list"]}
    cube = world.client.post("/product/get_memory", json={"user_id": world.victim,
                                                          "mem_cube_id": world.victim_cube})
    own |= {m["id"] for m in cube.json()["data"]["memory_detail_list"]}
    assert own == set(world.memory_ids)


# --------------------------------------------------------- real server
ATTACKERS = ["%", "_", "' OR '1'='1", "VICTIM", "victim ", "用户🙂", "a\"b", "x\\y", "victim%"]


def test_no_endpoint_crosses_tenants_on_the_real_server(http: httpx.Client) -> None:
    victim = f"victim-{uuid.uuid4().hex[:8]}"
    cube = f"{victim}-cube"
    ids, task = seed_victim(http, victim, cube, "shared-conv")
    w = World(http, victim, cube, ids, task, None)
    before = json.dumps(http.post("/get/memory", json={"user_id": victim, "size": 50}).json())
    for attacker in ATTACKERS:
        attack(w, attacker + uuid.uuid4().hex[:4], "vault code", {"user_id": victim})
    # every victim memory is still there, unchanged
    after = json.dumps(http.post("/get/memory", json={"user_id": victim, "size": 50}).json())
    assert after == before
    hits = http.post("/search/memory", json={"user_id": victim, "query": "vault code",
                                             "relativity": 0}).json()["data"]
    found = {h["id"] for h in hits["memory_detail_list"]}
    assert found and found <= set(ids)
