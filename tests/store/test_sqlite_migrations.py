"""SQLite migrations: applied once even when several processes open a new file together."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from memos.store.sqlite.schema import MIGRATIONS, apply_migrations


def test_concurrent_openers_apply_each_migration_once(tmp_path: Path) -> None:
    path = tmp_path / "memos.db"
    errors: list[BaseException] = []
    applied: list[list[str]] = []
    start = threading.Barrier(6)

    def open_db() -> None:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        try:
            start.wait()
            applied.append(apply_migrations(conn))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=open_db) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(name for names in applied for name in names) == sorted(n for n, _ in MIGRATIONS)
    conn = sqlite3.connect(path)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY name")]
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    finally:
        conn.close()
    assert names == sorted(n for n, _ in MIGRATIONS)
    assert {"memory_versions_cube", "edges_cube", "tasks_cube"} <= indexes
