"""Multi-cube writes are all or nothing, on every adapter (issue 14).

``ingest_batch`` claims each cube inside the write transaction and
``set_status_batch`` / ``delete_scopes`` change several cubes at once: a batch
that fails on its last cube must leave the first untouched, with not even an
empty cube row behind.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_store_conformance import mem, msg, new_scope, unit

from memos.domain.models import MemoryStatus, Scope, cube_key
from memos.errors import PermissionDenied
from memos.store.base import Ingest, MemoryStore


def _part(scope: Scope, text: str, rng: np.random.Generator, **kw: object) -> Ingest:
    item = mem(scope, text)
    return Ingest(scope, [msg(scope, text)], [item], unit(rng, 1), **kw)  # type: ignore[arg-type]


def test_ingest_batch_claims_cubes_and_records_tasks_in_one_transaction(
    store: MemoryStore,
) -> None:
    rng = np.random.default_rng(1)
    own = new_scope()
    named = Scope(user_id=own.user_id, cube_id=cube_key(own.user_id, "work"))
    store.ingest_batch(
        [
            _part(own, "first cube", rng, task=("t-" + own.user_id, "completed", None)),
            _part(named, "second cube", rng),
        ]
    )
    assert store.cube_owner(own.cube_id) == own.user_id
    assert store.cube_owner(named.cube_id) == own.user_id
    assert store.count_memories(own) == 1 and store.count_memories(named) == 1
    assert store.get_task("t-" + own.user_id) == (own.cube_id, "completed", None)


def test_ingest_batch_refused_on_one_cube_writes_nothing(store: MemoryStore) -> None:
    rng = np.random.default_rng(2)
    mine, theirs = new_scope(), new_scope()
    store.claim_cube(theirs.user_id, theirs.cube_id)
    fresh = Scope(user_id=mine.user_id, cube_id=mine.cube_id + "-new")
    squat = Scope(user_id=mine.user_id, cube_id=theirs.cube_id)  # owned by someone else
    with pytest.raises(PermissionDenied):
        store.ingest_batch(
            [
                _part(fresh, "must not land", rng, task=("t-" + fresh.cube_id, "completed", None)),
                _part(squat, "must not land either", rng),
            ]
        )
    assert store.cube_owner(fresh.cube_id) is None  # not even an empty cube
    assert store.count_memories(fresh) == 0 and store.count_memories(theirs) == 0
    assert store.list_messages(fresh, None, limit=10) == []
    assert store.get_task("t-" + fresh.cube_id) is None


def test_set_status_batch_and_delete_scopes_span_cubes(store: MemoryStore) -> None:
    rng = np.random.default_rng(3)
    a = new_scope()
    b = Scope(user_id=a.user_id, cube_id=cube_key(a.user_id, "b"))
    c = Scope(user_id=a.user_id, cube_id=cube_key(a.user_id, "c"))
    parts = [_part(s, f"memory of {s.cube_id}", rng) for s in (a, b, c)]
    store.ingest_batch(parts)
    ids = {p.scope.cube_id: p.memories[0].id for p in parts}
    changed = store.set_status_batch(
        [(a, [ids[a.cube_id]]), (b, [ids[b.cube_id], ids[c.cube_id]])],  # c's id is not b's
        MemoryStatus.ARCHIVED,
    )
    assert changed == 2
    assert store.count_memories(a) == 0 and store.count_memories(b) == 0
    assert store.count_memories(c) == 1
    assert store.delete_scopes([a, b, c]) == 1
    assert store.count_memories(c) == 0
