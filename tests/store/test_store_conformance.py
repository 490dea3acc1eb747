"""Conformance suite of the storage port, run against every adapter.

Only the port (``memos.store.base.MemoryStore``) is used: no SQL, no adapter
internals. Each test works in freshly generated cube ids.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from memos.domain.filters import parse_filter
from memos.domain.models import (
    ArchiveReason,
    Edge,
    EdgeKind,
    MemoryItem,
    MemoryStatus,
    Message,
    Role,
    Scope,
)
from memos.errors import MemoryNotFound, PermissionDenied
from memos.store.base import ChangeSet, MemoryStore, Retirement, Revision

DIM = 48
BASE_TIME = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


# --------------------------------------------------------------------- helpers
def new_scope(agent_id: str | None = None, app_id: str | None = None) -> Scope:
    user = "u-" + uuid.uuid4().hex[:12]
    return Scope(user_id=user, cube_id="cube-" + user, agent_id=agent_id, app_id=app_id)


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def mem(scope: Scope, value: str, **kw: object) -> MemoryItem:
    fields: dict[str, object] = {
        "user_id": scope.user_id,
        "cube_id": scope.cube_id,
        "agent_id": scope.agent_id,
        "app_id": scope.app_id,
        "value": value,
        "key": value[:40],
    }
    fields.update(kw)
    return MemoryItem.model_validate(fields)


def msg(scope: Scope, content: str, conversation_id: str | None = "conv-1",
        role: Role = Role.USER, **kw: object) -> Message:
    return Message.model_validate({
        "user_id": scope.user_id,
        "cube_id": scope.cube_id,
        "agent_id": scope.agent_id,
        "app_id": scope.app_id,
        "conversation_id": conversation_id,
        "role": role,
        "content": content,
        **kw,
    })


def put(store: MemoryStore, scope: Scope, items: list[MemoryItem],
        vectors: np.ndarray | None = None, messages: list[Message] | None = None,
        seed: int = 0) -> np.ndarray:
    """Claim the cube and ingest ``items`` (random vectors unless given)."""
    store.claim_cube(scope.user_id, scope.cube_id)
    if vectors is None:
        vectors = unit(np.random.default_rng(seed), len(items))
    store.ingest(scope, messages or [], items, vectors)
    return vectors


def ids(found: list[MemoryItem]) -> list[str]:
    return [m.id for m in found]


def hit_ids(hits: list[object]) -> list[str]:
    return [h.memory_id for h in hits]  # type: ignore[attr-defined]


def personal(raw: dict[str, object]):  # type: ignore[no-untyped-def]
    parsed = parse_filter(raw)
    assert parsed is not None
    return parsed.personal


# ------------------------------------------------------------- change sets
def test_apply_adds_revises_retires_and_links_in_one_go(store: MemoryStore) -> None:
    scope = new_scope()
    old, kept = mem(scope, "lives in Beijing"), mem(scope, "works at Acme")
    vecs = put(store, scope, [old, kept])
    new = mem(scope, "lives in Shanghai", event_time=BASE_TIME)
    dup = mem(scope, "employed by Acme", status=MemoryStatus.ARCHIVED,
              archive_reason=ArchiveReason.DUPLICATE, superseded_by=kept.id)
    new_vecs = unit(np.random.default_rng(7), 2)
    store.apply(scope, ChangeSet(
        add=[new, dup], vectors=new_vecs,
        revise=[Revision(kept.id, {"value": "works at Acme as a nurse"}, new_vecs[1])],
        retire=[Retirement(old.id, ArchiveReason.SUPERSEDED, new.id, BASE_TIME)],
        edges=[Edge(src_id=new.id, dst_id=old.id, kind=EdgeKind.VERSION_OF)],
    ))
    live = store.get_memories(scope, [old.id, kept.id, new.id, dup.id])
    assert ids(live) == [kept.id, new.id]
    assert live[0].value == "works at Acme as a nurse" and live[0].version == 2
    assert [v.value for v in store.history(scope, kept.id)] == ["works at Acme"]
    gone = store.get_memories(scope, [old.id, dup.id], include_inactive=True)
    assert [(m.status, m.archive_reason, m.superseded_by) for m in gone] == [
        (MemoryStatus.ARCHIVED, ArchiveReason.SUPERSEDED, new.id),
        (MemoryStatus.ARCHIVED, ArchiveReason.DUPLICATE, kept.id)]
    assert gone[0].valid_to == BASE_TIME
    assert [(e.src_id, e.kind) for e in store.edges(scope, old.id)] == [
        (new.id, EdgeKind.VERSION_OF)]
    # search sees the new state of every index: retired and archived rows are gone,
    # the revised vector and text are live
    found = hit_ids(store.vector_search(scope, vecs[0], 10, None))
    assert old.id not in found and dup.id not in found
    assert hit_ids(store.vector_search(scope, new_vecs[1], 1, None)) == [kept.id]
    assert hit_ids(store.text_search(scope, "nurse", 5, None)) == [kept.id]
    assert hit_ids(store.text_search(scope, "Beijing", 5, None)) == []
    assert hit_ids(store.text_search(scope, "employed", 5, None)) == []


def test_apply_records_its_task_in_the_same_transaction(store: MemoryStore) -> None:
    scope = new_scope()
    target = mem(scope, "raw")
    put(store, scope, [target])
    failing = ChangeSet(retire=[Retirement("missing", ArchiveReason.REFINED)],
                        task=("t-1", "completed", None))
    with pytest.raises(MemoryNotFound):
        store.apply(scope, failing)
    assert store.get_task("t-1") is None  # no writes, no "completed"
    store.apply(scope, ChangeSet(retire=[Retirement(target.id, ArchiveReason.REFINED)],
                                 task=("t-1", "completed", "a note")))
    assert store.get_task("t-1") == (scope.cube_id, "completed", "a note")


def test_get_messages_by_id_within_scope(store: MemoryStore) -> None:
    scope, other = new_scope(), new_scope()
    a, b = msg(scope, "first"), msg(scope, "second")
    c = msg(other, "someone else's")
    put(store, scope, [], messages=[a, b])
    put(store, other, [], messages=[c])
    assert [m.content for m in store.get_messages(scope, [b.id, "nope", a.id, c.id])] == [
        "second", "first"]
    assert store.get_messages(scope, []) == []


def test_apply_is_all_or_nothing(store: MemoryStore) -> None:
    scope, foreign = new_scope(), new_scope()
    target = mem(scope, "a memory to retire")
    put(store, scope, [target])
    outsider = mem(foreign, "someone else's memory")
    put(store, foreign, [outsider], seed=1)
    added = mem(scope, "would be added")
    for bad in (
        ChangeSet(add=[added], vectors=unit(np.random.default_rng(2), 1),
                  retire=[Retirement(target.id, ArchiveReason.MERGED),
                          Retirement(outsider.id, ArchiveReason.MERGED)]),
        ChangeSet(add=[added], vectors=unit(np.random.default_rng(2), 1),
                  revise=[Revision("no-such-id", {"value": "x"})]),
        ChangeSet(add=[added], vectors=unit(np.random.default_rng(2), 1),
                  edges=[Edge(src_id=added.id, dst_id=outsider.id, kind=EdgeKind.RELATED_TO)]),
    ):
        with pytest.raises(MemoryNotFound):
            store.apply(scope, bad)
    assert store.get_memories(scope, [added.id], include_inactive=True) == []
    assert ids(store.get_memories(scope, [target.id])) == [target.id]
    assert ids(store.get_memories(foreign, [outsider.id])) == [outsider.id]
    # a retirement marked missing_ok skips a memory that is gone instead of failing
    store.apply(scope, ChangeSet(retire=[Retirement("gone", ArchiveReason.REFINED, missing_ok=True),
                                         Retirement(target.id, ArchiveReason.REFINED)]))
    assert store.get_memories(scope, [target.id]) == []


def test_superseded_versions_by_time_window_scope_and_filter(store: MemoryStore) -> None:
    scope, other = new_scope(), new_scope()
    day = timedelta(days=1)
    beijing = mem(scope, "lives in Beijing", event_time=BASE_TIME - 300 * day,
                  memory_type="UserMemory")
    hangzhou = mem(scope, "lives in Hangzhou", event_time=BASE_TIME - 100 * day,
                   memory_type="LongTermMemory")
    shanghai = mem(scope, "lives in Shanghai", event_time=BASE_TIME)
    vecs = put(store, scope, [beijing, hangzhou, shanghai])
    put(store, other, [mem(other, "lives in Beijing", event_time=BASE_TIME - 300 * day)], seed=3)
    store.apply(scope, ChangeSet(retire=[
        Retirement(beijing.id, ArchiveReason.SUPERSEDED, hangzhou.id, BASE_TIME - 100 * day),
        Retirement(hangzhou.id, ArchiveReason.SUPERSEDED, shanghai.id, BASE_TIME),
    ]))

    def found(start: datetime | None, end: datetime | None, **kw: object) -> list[str]:
        return [m.id for m, _ in store.superseded(scope, start, end, 10, **kw)]  # type: ignore[arg-type]

    assert found(None, None) == [hangzhou.id, beijing.id]  # newest first
    assert found(BASE_TIME - 200 * day, BASE_TIME - 199 * day) == [beijing.id]
    assert found(BASE_TIME - 50 * day, None) == [hangzhou.id]
    assert found(None, BASE_TIME - 250 * day) == [beijing.id]
    assert found(BASE_TIME + day, None) == []
    assert found(None, None, flt=personal({"and": [{"memory_type": "UserMemory"}]})) == [beijing.id]
    got = store.superseded(scope, None, None, 1)
    assert len(got) == 1 and np.allclose(got[0][1], vecs[1], atol=1e-6)
    assert store.superseded(other, None, None, 10) == []


# ------------------------------------------------------------------- cubes
def test_claim_cube_records_owner_and_refuses_other_users(store: MemoryStore) -> None:
    scope = new_scope()
    assert store.cube_owner(scope.cube_id) is None
    store.claim_cube(scope.user_id, scope.cube_id)
    store.claim_cube(scope.user_id, scope.cube_id)  # idempotent for the owner
    assert store.cube_owner(scope.cube_id) == scope.user_id
    with pytest.raises(PermissionDenied):
        store.claim_cube("someone-else", scope.cube_id)
    assert store.cube_owner(scope.cube_id) == scope.user_id


# ------------------------------------------------------- ingest / get / list
def test_ingest_then_get_round_trips_every_field(store: MemoryStore) -> None:
    scope = new_scope(agent_id="agent-1", app_id="app-1")
    item = mem(scope, "I live in Hangzhou", tags=["city", "home"], info={"scene": "chat", "n": 3},
               conversation_id="conv-9", event_time=BASE_TIME, confidence=0.5)
    put(store, scope, [item], messages=[msg(scope, "I live in Hangzhou", message_id="m-1")])
    got = store.get_memories(scope, [item.id])
    assert len(got) == 1
    g = got[0]
    assert (g.id, g.value, g.key, g.user_id, g.cube_id) == (
        item.id, item.value, item.key, item.user_id, item.cube_id)
    assert (g.agent_id, g.app_id, g.conversation_id) == ("agent-1", "app-1", "conv-9")
    assert g.tags == ["city", "home"]
    assert g.info == {"scene": "chat", "n": 3}
    assert g.event_time == BASE_TIME
    assert g.confidence == pytest.approx(0.5)
    assert g.status == MemoryStatus.ACTIVATED
    assert g.version == 1
    assert store.count_memories(scope) == 1
    # unknown ids are simply absent; order of the request is kept
    other = mem(scope, "second")
    put(store, scope, [other], seed=1)
    assert ids(store.get_memories(scope, [other.id, "missing", item.id])) == [other.id, item.id]


def test_ingest_is_all_or_nothing(store: MemoryStore) -> None:
    scope, foreign = new_scope(), new_scope()
    store.claim_cube(scope.user_id, scope.cube_id)
    good = mem(scope, "a good memory")
    bad = mem(foreign, "a memory of another cube")
    message = msg(scope, "a good memory", conversation_id="atomic")
    with pytest.raises(PermissionDenied):
        store.ingest(scope, [message], [good, bad], unit(np.random.default_rng(0), 2))
    assert store.get_memories(scope, [good.id], include_inactive=True) == []
    assert store.list_messages(scope, "atomic", limit=10) == []
    assert store.count_memories(scope) == 0
    assert store.get_memories(foreign, [bad.id], include_inactive=True) == []


def test_list_paginates_newest_first(store: MemoryStore) -> None:
    scope = new_scope()
    items = [mem(scope, f"fact number {i}", create_time=BASE_TIME + timedelta(minutes=i))
             for i in range(25)]
    put(store, scope, items)
    pages = [store.list_memories(scope, None, offset=o, limit=10) for o in (0, 10, 20, 30)]
    assert [p.total for p in pages] == [25, 25, 25, 25]
    assert [len(p.items) for p in pages] == [10, 10, 5, 0]
    listed = [m.id for p in pages for m in p.items]
    assert listed == [m.id for m in reversed(items)]


def test_list_with_filters(store: MemoryStore) -> None:
    scope = new_scope()
    items = [
        mem(scope, f"memory {i}", tags=["even" if i % 2 == 0 else "odd"],
            info={"i": i, "scene": "work" if i < 5 else "home"},
            conversation_id=f"conv-{i % 3}",
            create_time=BASE_TIME + timedelta(days=i))
        for i in range(10)
    ]
    put(store, scope, items)

    def listed(raw: dict[str, object]) -> set[int]:
        page = store.list_memories(scope, personal(raw), offset=0, limit=50)
        assert page.total == len(page.items)
        return {int(m.info["i"]) for m in page.items}

    assert listed({"tags": {"contains": "even"}}) == {0, 2, 4, 6, 8}
    assert listed({"scene": "home"}) == {5, 6, 7, 8, 9}
    assert listed({"info.i": {"gte": 7}}) == {7, 8, 9}
    assert listed({"conversation_id": "conv-1"}) == {1, 4, 7}
    assert listed({"and": [{"tags": {"contains": "odd"}}, {"scene": "work"}]}) == {1, 3}
    assert listed({"or": [{"info.i": 0}, {"info.i": 9}]}) == {0, 9}
    day3 = (BASE_TIME + timedelta(days=3)).date().isoformat()
    assert listed({"create_time": {"lte": day3}}) == {0, 1, 2, 3}
    assert listed({"create_time": {"gt": day3}}) == {4, 5, 6, 7, 8, 9}


# -------------------------------------------------------------- isolation
def test_scope_isolation_between_cubes(store: MemoryStore) -> None:
    a, b = new_scope(), new_scope()
    rng = np.random.default_rng(7)
    va = unit(rng, 3)
    items_a = [mem(a, f"alpha secret {i}") for i in range(3)]
    items_b = [mem(b, f"beta public {i}") for i in range(3)]
    put(store, a, items_a, va, messages=[msg(a, "alpha secret message")])
    put(store, b, items_b, unit(rng, 3), messages=[msg(b, "beta message")])

    a_ids = ids(items_a)
    assert store.get_memories(b, a_ids, include_inactive=True) == []
    assert set(ids(store.list_memories(b, None, offset=0, limit=50).items)) == set(ids(items_b))
    assert store.count_memories(b) == 3
    # even a query that IS one of A's vectors finds only B's memories from B
    assert set(hit_ids(store.vector_search(b, va[0], 10, None))) <= set(ids(items_b))
    assert store.text_search(b, "alpha secret", 10, None) == []
    assert [m.content for m in store.list_messages(b, None, limit=50)] == ["beta message"]
    with pytest.raises(MemoryNotFound):
        store.update_memory(b, a_ids[0], {"value": "hijacked"})
    assert store.set_status(b, a_ids, MemoryStatus.DELETED) == 0
    with pytest.raises(MemoryNotFound):
        store.history(b, a_ids[0])
    with pytest.raises(MemoryNotFound):
        store.vectors(b, a_ids[:1])
    assert store.delete_scope(b) == 3
    # A is untouched by all of the above
    got = store.get_memories(a, a_ids)
    assert [m.value for m in got] == [f"alpha secret {i}" for i in range(3)]
    assert store.count_memories(a) == 3


def test_agent_and_app_narrow_within_a_cube(store: MemoryStore) -> None:
    base = new_scope()
    x = base.model_copy(update={"agent_id": "agent-x"})
    y = base.model_copy(update={"agent_id": "agent-y"})
    xa = base.model_copy(update={"agent_id": "agent-x", "app_id": "app-1"})
    rng = np.random.default_rng(3)
    items_x = [mem(x, "shared keyword from x")]
    items_xa = [mem(xa, "shared keyword from x in app")]
    items_y = [mem(y, "shared keyword from y")]
    vx = put(store, x, items_x, unit(rng, 1))
    put(store, xa, items_xa, unit(rng, 1))
    put(store, y, items_y, unit(rng, 1))
    everything = set(ids(items_x + items_xa + items_y))

    assert set(ids(store.list_memories(base, None, offset=0, limit=10).items)) == everything
    assert set(ids(store.list_memories(x, None, offset=0, limit=10).items)) == set(
        ids(items_x + items_xa))
    assert ids(store.list_memories(xa, None, offset=0, limit=10).items) == ids(items_xa)
    assert store.count_memories(y) == 1
    assert set(hit_ids(store.vector_search(y, vx[0], 10, None))) == set(ids(items_y))
    assert set(hit_ids(store.text_search(y, "keyword", 10, None))) == set(ids(items_y))
    assert set(hit_ids(store.text_search(base, "keyword", 10, None))) == everything
    assert store.get_memories(y, ids(items_x)) == []
    assert store.delete_scope(y) == 1
    assert store.count_memories(base) == 2


# ---------------------------------------------------------- versions/status
def test_update_memory_keeps_every_earlier_version(store: MemoryStore) -> None:
    scope = new_scope()
    rng = np.random.default_rng(11)
    item = mem(scope, "I work as a nurse", tags=["job"], info={"v": 1})
    put(store, scope, [item], unit(rng, 1))
    new_vec = unit(rng, 1)[0]
    updated = store.update_memory(scope, item.id, {"value": "I work as a doctor",
                                                   "key": "job", "info": {"v": 2}}, new_vec)
    assert updated.version == 2 and updated.value == "I work as a doctor"
    store.update_memory(scope, item.id, {"value": "I work as a surgeon", "tags": ["job", "new"]})

    current = store.get_memories(scope, [item.id])[0]
    assert current.value == "I work as a surgeon"
    assert current.tags == ["job", "new"]
    assert current.version == 3
    history = store.history(scope, item.id)
    assert [(h.version, h.value) for h in history] == [
        (1, "I work as a nurse"), (2, "I work as a doctor")]
    assert history[0].info == {"v": 1} and history[0].tags == ["job"]
    assert history[1].info == {"v": 2}
    # the index follows the new text and vector
    assert hit_ids(store.text_search(scope, "surgeon", 5, None)) == [item.id]
    assert store.text_search(scope, "nurse", 5, None) == []
    top = store.vector_search(scope, new_vec, 1, None)
    assert hit_ids(top) == [item.id] and top[0].score == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(MemoryNotFound):
        store.update_memory(scope, "no-such-id", {"value": "x"})


def test_set_status_hides_from_reads_and_search_but_keeps_history(store: MemoryStore) -> None:
    scope = new_scope()
    rng = np.random.default_rng(5)
    items = [mem(scope, "archived pineapple fact"), mem(scope, "live pineapple fact")]
    vecs = put(store, scope, items, unit(rng, 2))
    gone = items[0].id
    assert store.set_status(scope, [gone], MemoryStatus.ARCHIVED) == 1
    assert store.set_status(scope, [gone], MemoryStatus.ARCHIVED) == 0  # already there

    assert store.get_memories(scope, [gone]) == []
    inactive = store.get_memories(scope, [gone], include_inactive=True)
    assert inactive[0].status == MemoryStatus.ARCHIVED
    assert ids(store.list_memories(scope, None, offset=0, limit=10).items) == [items[1].id]
    assert store.count_memories(scope) == 1
    assert gone not in hit_ids(store.vector_search(scope, vecs[0], 10, None))
    assert hit_ids(store.text_search(scope, "pineapple", 10, None)) == [items[1].id]
    history = store.history(scope, gone)
    assert [(h.version, h.status, h.value) for h in history] == [
        (1, MemoryStatus.ACTIVATED, "archived pineapple fact")]

    # deleting is a status too; reactivating brings it back everywhere
    assert store.set_status(scope, [gone], MemoryStatus.ACTIVATED) == 1
    assert hit_ids(store.vector_search(scope, vecs[0], 1, None)) == [gone]
    assert set(hit_ids(store.text_search(scope, "pineapple", 10, None))) == set(ids(items))
    assert store.delete_scope(scope) == 2
    assert store.count_memories(scope) == 0
    assert store.vector_search(scope, vecs[1], 10, None) == []
    assert len(store.history(scope, items[1].id)) == 1


# -------------------------------------------------------------------- edges
def test_edges_round_trip_and_refuse_ids_outside_the_scope(store: MemoryStore) -> None:
    scope, other = new_scope(), new_scope()
    a, b, c = (mem(scope, t) for t in ("old fact", "new fact", "related fact"))
    put(store, scope, [a, b, c])
    foreign = mem(other, "someone else's fact")
    put(store, other, [foreign], seed=1)
    store.add_edges(scope, [Edge(src_id=b.id, dst_id=a.id, kind=EdgeKind.VERSION_OF),
                            Edge(src_id=b.id, dst_id=c.id, kind=EdgeKind.RELATED_TO)])
    got = {(e.src_id, e.dst_id, e.kind) for e in store.edges(scope, b.id)}
    assert got == {(b.id, a.id, EdgeKind.VERSION_OF), (b.id, c.id, EdgeKind.RELATED_TO)}
    assert {(e.src_id, e.dst_id) for e in store.edges(scope, a.id)} == {(b.id, a.id)}

    with pytest.raises(MemoryNotFound):
        store.add_edges(scope, [Edge(src_id=a.id, dst_id=foreign.id, kind=EdgeKind.RELATED_TO)])
    with pytest.raises(MemoryNotFound):
        store.add_edges(other, [Edge(src_id=foreign.id, dst_id=a.id, kind=EdgeKind.MERGED_INTO)])
    assert {(e.src_id, e.dst_id) for e in store.edges(scope, a.id)} == {(b.id, a.id)}
    assert store.edges(other, foreign.id) == []
    assert store.edges(other, b.id) == []  # another cube cannot read this cube's graph


# ------------------------------------------------------------ vector search
def _brute(mat: np.ndarray, mask: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    scores = mat @ q
    scores = np.where(mask, scores, -np.inf)
    order = np.argsort(-scores, kind="stable")
    return [int(i) for i in order[:k] if mask[i]]


def test_vector_search_is_exact_against_numpy_brute_force(store: MemoryStore) -> None:
    scope = new_scope()
    rng = np.random.default_rng(2025)
    n, k = 2000, 10
    items = [mem(scope, f"row {i}", tags=["even" if i % 2 == 0 else "odd"], info={"i": i})
             for i in range(n)]
    mat = put(store, scope, items, unit(rng, n))
    names = np.array(ids(items))
    queries = unit(rng, 8)
    alive = np.ones(n, bool)
    for q in queries:
        hits = store.vector_search(scope, q, k, None)
        want = _brute(mat, alive, q, k)
        assert hit_ids(hits) == list(names[want])
        np.testing.assert_allclose([h.score for h in hits], mat[want] @ q, atol=1e-5)

    # exactness holds after deletions too
    dead = rng.choice(n, 300, replace=False)
    assert store.set_status(scope, list(names[dead]), MemoryStatus.DELETED) == 300
    alive[dead] = False
    for q in queries[:4]:
        assert hit_ids(store.vector_search(scope, q, k, None)) == list(
            names[_brute(mat, alive, q, k)])
    # k larger than the cube returns every live row once
    assert len(set(hit_ids(store.vector_search(scope, queries[0], 5000, None)))) == alive.sum()


def test_vector_search_with_filter_returns_only_matching_rows(store: MemoryStore) -> None:
    scope = new_scope()
    rng = np.random.default_rng(99)
    n = 600
    items = [mem(scope, f"row {i}", tags=["even" if i % 2 == 0 else "odd"],
                 info={"bucket": i % 7}) for i in range(n)]
    mat = put(store, scope, items, unit(rng, n))
    names = np.array(ids(items))
    even = np.arange(n) % 2 == 0
    bucket3 = np.arange(n) % 7 == 3
    for raw, mask in [
        ({"tags": {"contains": "even"}}, even),
        ({"bucket": 3}, bucket3),
        ({"and": [{"tags": {"contains": "odd"}}, {"info.bucket": {"in": [3, 4]}}]},
         ~even & np.isin(np.arange(n) % 7, [3, 4])),
    ]:
        for q in unit(rng, 3):
            hits = store.vector_search(scope, q, 10, personal(raw))
            assert hit_ids(hits) == list(names[_brute(mat, mask, q, 10)]), raw
    nothing = store.vector_search(scope, mat[0], 10, personal({"bucket": 99}))
    assert nothing == []


# -------------------------------------------------------------- text search
def test_text_search_finds_keyword_hits(store: MemoryStore) -> None:
    scope = new_scope()
    items = [
        mem(scope, "My dog Biscuit loves the beach"),
        mem(scope, "I am allergic to peanuts"),
        mem(scope, "Biscuit is a golden retriever"),
        mem(scope, "We went hiking in the Alps last summer"),
    ]
    put(store, scope, items)
    found = hit_ids(store.text_search(scope, "Biscuit", 10, None))
    assert set(found) == {items[0].id, items[2].id}
    assert hit_ids(store.text_search(scope, "peanuts allergy", 10, None))[0] == items[1].id
    assert store.text_search(scope, "submarine", 10, None) == []
    assert store.text_search(scope, "the of and", 10, None) == []  # stopwords only
    hits = store.text_search(scope, "hiking Alps", 10, None)
    assert hit_ids(hits)[0] == items[3].id and hits[0].score > 0
    filtered = store.text_search(scope, "Biscuit", 10, personal({"key": {"contains": "golden"}}))
    assert hit_ids(filtered) == [items[2].id]
    # FTS syntax in user input is treated as text, never as an error
    for nasty in ['"', 'Biscuit" OR tenant : "x', "NEAR(a b)", "a*", "-dog", "(((", "tenant:x"]:
        store.text_search(scope, nasty, 10, None)


def test_text_search_never_returns_other_cubes_even_with_better_matches(
    store: MemoryStore,
) -> None:
    mine, theirs = new_scope(), new_scope()
    my_item = mem(mine, "a long note that mentions zephyr once among many other words here")
    put(store, mine, [my_item])
    rivals = [mem(theirs, "zephyr zephyr zephyr") for _ in range(30)]
    rivals.append(mem(theirs, "quasar quasar"))
    put(store, theirs, rivals, seed=1)
    for k in (1, 5, 50):
        assert hit_ids(store.text_search(mine, "zephyr", k, None)) == [my_item.id]
    assert store.text_search(mine, "quasar", 10, None) == []
    assert store.text_search(mine, "zephyr quasar", 10, None)[0].memory_id == my_item.id
    assert my_item.id not in hit_ids(store.text_search(theirs, "zephyr", 100, None))


def test_chinese_text_search_with_jieba(store: MemoryStore) -> None:
    scope = new_scope()
    items = [
        mem(scope, "我住在杭州，每天骑自行车上班。"),
        mem(scope, "我最喜欢的食物是北京烤鸭。"),
        mem(scope, "I moved to Shanghai last year."),
    ]
    put(store, scope, items)
    assert hit_ids(store.text_search(scope, "杭州", 10, None)) == [items[0].id]
    assert hit_ids(store.text_search(scope, "我住在哪里？杭州吗", 10, None))[0] == items[0].id
    assert hit_ids(store.text_search(scope, "烤鸭", 10, None)) == [items[1].id]
    assert hit_ids(store.text_search(scope, "Shanghai", 10, None)) == [items[2].id]


# ----------------------------------------------------------------- messages
def test_list_messages_order_limit_and_conversation(store: MemoryStore) -> None:
    scope, other = new_scope(), new_scope()
    store.claim_cube(scope.user_id, scope.cube_id)
    first = [msg(scope, f"turn {i}", role=Role.USER if i % 2 == 0 else Role.ASSISTANT,
                 message_id=f"m{i}") for i in range(6)]
    second = [msg(scope, f"turn {i}", message_id=f"m{i}") for i in range(6, 10)]
    elsewhere = [msg(scope, "other conversation", conversation_id="conv-2")]
    store.ingest(scope, first, [], np.zeros((0, DIM), np.float32))
    store.ingest(scope, elsewhere, [], np.zeros((0, DIM), np.float32))
    store.ingest(scope, second, [], np.zeros((0, DIM), np.float32))
    store.claim_cube(other.user_id, other.cube_id)
    store.ingest(other, [msg(other, "not yours")], [], np.zeros((0, DIM), np.float32))

    got = store.list_messages(scope, "conv-1", limit=4)
    assert [m.content for m in got] == ["turn 6", "turn 7", "turn 8", "turn 9"]
    everything = store.list_messages(scope, "conv-1", limit=50)
    assert [m.message_id for m in everything] == [f"m{i}" for i in range(10)]
    assert everything[1].role == Role.ASSISTANT
    assert [m.content for m in store.list_messages(scope, "conv-2", limit=50)] == [
        "other conversation"]
    assert len(store.list_messages(scope, None, limit=50)) == 11
    assert store.list_messages(scope, "conv-1", limit=1)[0].content == "turn 9"
    assert [m.content for m in store.list_messages(other, "conv-1", limit=50)] == ["not yours"]


def test_message_fields_round_trip(store: MemoryStore) -> None:
    scope = new_scope()
    store.claim_cube(scope.user_id, scope.cube_id)
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    original = msg(scope, "", role=Role.ASSISTANT, message_id="mid", tool_calls=calls,
                   chat_time="2025-09-12 08:00", event_time=BASE_TIME,
                   parts=[{"type": "text", "text": "x"}])
    store.ingest(scope, [original], [], np.zeros((0, DIM), np.float32))
    got = store.list_messages(scope, "conv-1", limit=5)[0]
    assert got.id == original.id and got.message_id == "mid"
    assert got.tool_calls == calls and got.parts == [{"type": "text", "text": "x"}]
    assert got.chat_time == "2025-09-12 08:00" and got.event_time == BASE_TIME


def test_existing_message_ids_finds_retries_within_scope_and_conversation(
    store: MemoryStore,
) -> None:
    scope, other = new_scope(), new_scope()
    store.claim_cube(scope.user_id, scope.cube_id)
    store.claim_cube(other.user_id, other.cube_id)
    empty = np.zeros((0, DIM), np.float32)
    store.ingest(scope, [msg(scope, "a", message_id="m-a"), msg(scope, "b", message_id="m-b"),
                         msg(scope, "c")], [], empty)
    store.ingest(scope, [msg(scope, "d", conversation_id=None, message_id="m-d")], [], empty)
    store.ingest(other, [msg(other, "x", message_id="m-x")], [], empty)
    assert store.existing_message_ids(scope, "conv-1", ["m-a", "m-b", "m-c", "m-x"]) == {
        "m-a", "m-b"}
    assert store.existing_message_ids(scope, "conv-2", ["m-a"]) == set()
    assert store.existing_message_ids(scope, None, ["m-a", "m-d"]) == {"m-d"}
    assert store.existing_message_ids(scope, "conv-1", []) == set()
    assert store.existing_message_ids(other, "conv-1", ["m-a", "m-x"]) == {"m-x"}


# -------------------------------------------------------------------- tasks
def test_tasks_round_trip(store: MemoryStore) -> None:
    scope = new_scope()
    task = "task-" + uuid.uuid4().hex
    assert store.get_task(task) is None
    store.put_task(scope, task, "running")
    assert store.get_task(task) == (scope.cube_id, "running", None)
    store.put_task(scope, task, "failed", "embedder timed out")
    assert store.get_task(task) == (scope.cube_id, "failed", "embedder timed out")


# ------------------------------------------------ cross-instance coherence
def test_two_instances_on_the_same_data_stay_coherent(backend) -> None:  # type: ignore[no-untyped-def]
    one, two = backend.open(), backend.open()
    scope = new_scope()
    rng = np.random.default_rng(8)
    first = mem(scope, "first walrus memory")
    v1 = put(one, scope, [first], unit(rng, 1))
    # two has never seen the cube: loads it fresh
    assert hit_ids(two.vector_search(scope, v1[0], 5, None)) == [first.id]
    assert hit_ids(two.text_search(scope, "walrus", 5, None)) == [first.id]

    # two's cache is warm now; a write through one must still show up in two
    second = mem(scope, "second walrus memory")
    v2 = unit(rng, 1)
    one.ingest(scope, [], [second], v2)
    top = two.vector_search(scope, v2[0], 1, None)
    assert hit_ids(top) == [second.id] and top[0].score == pytest.approx(1.0, abs=1e-4)
    assert set(hit_ids(two.vector_search(scope, v2[0], 5, None))) == {first.id, second.id}

    # interleaved writes from both instances; both warm caches end up complete
    third = mem(scope, "third walrus memory")
    fourth = mem(scope, "fourth walrus memory")
    v3, v4 = unit(rng, 1), unit(rng, 1)
    one.vector_search(scope, v1[0], 5, None)
    two.ingest(scope, [], [third], v3)
    one.ingest(scope, [], [fourth], v4)
    everyone = {first.id, second.id, third.id, fourth.id}
    for inst in (one, two):
        assert set(hit_ids(inst.vector_search(scope, v1[0], 10, None))) == everyone
        assert hit_ids(inst.vector_search(scope, v3[0], 1, None)) == [third.id]
        assert hit_ids(inst.vector_search(scope, v4[0], 1, None)) == [fourth.id]

    # delete through one: two no longer returns it anywhere
    assert one.set_status(scope, [second.id], MemoryStatus.DELETED) == 1
    assert second.id not in hit_ids(two.vector_search(scope, v2[0], 10, None))
    assert second.id not in hit_ids(two.text_search(scope, "walrus", 10, None))
    assert two.get_memories(scope, [second.id]) == []

    # a vector replaced through one is what two ranks by
    v_new = unit(rng, 1)[0]
    one.update_memory(scope, first.id, {"value": "first walrus, revised"}, v_new)
    top = two.vector_search(scope, v_new, 1, None)
    assert hit_ids(top) == [first.id] and top[0].score == pytest.approx(1.0, abs=1e-4)
    assert two.get_memories(scope, [first.id])[0].value == "first walrus, revised"
    assert one.delete_scope(scope) == 3
    assert two.vector_search(scope, v_new, 10, None) == []


def test_concurrent_writers_and_searchers_stay_exact(backend) -> None:  # type: ignore[no-untyped-def]
    """Threads adding, deleting and searching one cube through two instances at once;
    afterwards every instance's vector search still equals brute force."""
    import threading

    one, two = backend.open(), backend.open()
    scope = new_scope()
    one.claim_cube(scope.user_id, scope.cube_id)
    rng = np.random.default_rng(21)
    written: dict[str, np.ndarray] = {}
    deleted: set[str] = set()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def writer(inst: MemoryStore, seed: int) -> None:
        local = np.random.default_rng(seed)
        try:
            for batch in range(15):
                items = [mem(scope, f"w{seed} b{batch} i{i}") for i in range(8)]
                vecs = unit(local, 8)
                inst.ingest(scope, [], items, vecs)
                with lock:
                    written.update({m.id: v for m, v in zip(items, vecs, strict=True)})
                if batch % 3 == 2:
                    inst.set_status(scope, [items[0].id], MemoryStatus.DELETED)
                    with lock:
                        deleted.add(items[0].id)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    def searcher(inst: MemoryStore, seed: int) -> None:
        local = np.random.default_rng(seed)
        try:
            for _ in range(40):
                for hit in inst.vector_search(scope, unit(local, 1)[0], 10, None):
                    assert -1.0001 <= hit.score <= 1.0001
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(one, 1)),
               threading.Thread(target=writer, args=(two, 2)),
               threading.Thread(target=writer, args=(one, 3)),
               threading.Thread(target=searcher, args=(one, 4)),
               threading.Thread(target=searcher, args=(two, 5))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    live = [i for i in written if i not in deleted]
    names = np.array(live)
    mat = np.stack([written[i] for i in live])
    assert one.count_memories(scope) == len(live) == two.count_memories(scope)
    for q in unit(rng, 5):
        want = list(names[np.argsort(-(mat @ q), kind="stable")[:10]])
        assert hit_ids(one.vector_search(scope, q, 10, None)) == want
        assert hit_ids(two.vector_search(scope, q, 10, None)) == want
