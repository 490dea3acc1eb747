"""A read that fails half-way never leaves its connection on an old snapshot (issue 14).

SQLite keeps a WAL read snapshot while a statement is un-finished. Before the
fix, a read that raised while iterating its cursor left the thread's reader
inside that snapshot, so the next ownership check on the thread did not see a
cube another connection had just created (the 40306 storm of the issue).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from memos.domain.models import MemoryItem, Scope
from memos.store import rows
from memos.store.sqlite import SQLiteStore


def test_failed_iteration_then_reads_see_the_latest_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(tmp_path / "m.db")
    other = SQLiteStore(tmp_path / "m.db")  # another server process on the same file
    try:
        scope = Scope.for_user("victim")
        items = [MemoryItem(user_id="victim", cube_id="victim", value=f"v{i}") for i in range(50)]
        store.ingest(scope, [], items, np.eye(50, 8, dtype=np.float32))
        store.claim_cube("victim", "victim")

        real = rows.memory_from_row
        calls = {"n": 0}

        def breaks_on_second_row(row: tuple[object, ...]) -> MemoryItem:
            calls["n"] += 1
            if calls["n"] == 2:
                raise ValueError("year 10000 is out of range")
            return real(row)  # type: ignore[arg-type]

        monkeypatch.setattr(rows, "memory_from_row", breaks_on_second_row)
        with pytest.raises(ValueError) as failed:
            store.list_memories(scope, None, offset=0, limit=50)
        monkeypatch.setattr(rows, "memory_from_row", real)
        # the traceback (and with it the cursor) is still alive, as in a server's error log
        assert failed.value.__traceback__ is not None

        for i in range(5):
            other.claim_cube(f"new{i}", f"new{i}")
            assert store.cube_owner(f"new{i}") == f"new{i}"
            fresh = Scope.for_user(f"new{i}")
            item = MemoryItem(user_id=f"new{i}", cube_id=f"new{i}", value="mine")
            other.ingest(fresh, [], [item], np.ones((1, 8), np.float32))
            assert [m.value for m in store.list_memories(fresh, None, offset=0, limit=5).items] \
                == ["mine"]
        with sqlite3.connect(tmp_path / "m.db") as db:  # and the file is not locked
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        other.close()
        store.close()
