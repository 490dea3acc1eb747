"""Whole cubes in and out of the SQLite adapter (``memos export`` / ``memos import``).

An export reads one snapshot (a read transaction on its own connection) a
slice of rows at a time, so a cube of any size streams in constant memory. An
import writes one ``BEGIN IMMEDIATE`` transaction per batch of records and
bumps the cube's generation, so every process drops its cached vectors and
keyword index of that cube and rebuilds them on the next search.

Ids are kept. A record whose id is already stored in the same cube is skipped
(importing a file twice, or again after an interruption, adds nothing twice);
one whose id belongs to another cube is refused.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from memos.errors import NotFound, PermissionDenied
from memos.store import records
from memos.store.records import Batch, Embed, Record, Records, Tally
from memos.store.sqlite.sql import blob, marks, translate
from memos.store.sqlite.store import SQLiteStore

FETCH = 500
_MEMORY_INSERT = (
    f"INSERT INTO memories ({', '.join(records.MEMORY_FIELDS)}) "
    f"VALUES ({marks(len(records.MEMORY_FIELDS))})"
)


def cubes(store: SQLiteStore) -> list[tuple[str, str]]:
    with translate("listing cubes"):
        found = (
            store._reader()
            .execute("SELECT cube_id, owner_id FROM cubes ORDER BY cube_id")
            .fetchall()
        )
    return [(str(r[0]), str(r[1])) for r in found]


def _stream(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> Iterator[Any]:
    cursor = conn.execute(sql, params)
    while batch := cursor.fetchmany(FETCH):
        yield from batch


def export_cube(store: SQLiteStore, cube_id: str, *, vectors: bool = True) -> Iterator[Record]:
    conn = store._connect()
    try:
        with translate("exporting a cube"):
            conn.execute("BEGIN")  # one snapshot for the whole cube
            cube = conn.execute(
                "SELECT cube_id, owner_id, create_time FROM cubes WHERE cube_id = ?", (cube_id,)
            ).fetchone()
            if cube is None:
                raise NotFound(f"no cube {cube_id!r} in this store")
            yield records.record("cube", cube)
            cols = ", ".join(f"m.{c}" for c in records.MEMORY_FIELDS)
            if vectors:
                for r in _stream(
                    conn,
                    f"SELECT {cols}, v.model, v.vec FROM memories m "
                    "LEFT JOIN memory_vectors v ON v.rowid = m.rowid "
                    "WHERE m.cube_id = ? ORDER BY m.rowid",
                    (cube_id,),
                ):
                    vec = None if r[-1] is None else np.frombuffer(r[-1], np.float32)
                    yield records.memory_record(r[:-2], r[-2], vec)
            else:
                for r in _stream(
                    conn,
                    f"SELECT {cols} FROM memories m WHERE m.cube_id = ? ORDER BY m.rowid",
                    (cube_id,),
                ):
                    yield records.memory_record(r, None, None)
            for kind, sql in (
                (
                    "version",
                    f"SELECT {', '.join(records.VERSION_FIELDS)} FROM memory_versions "
                    "WHERE cube_id = ? ORDER BY memory_id, version",
                ),
                (
                    "edge",
                    f"SELECT {', '.join(records.EDGE_FIELDS)} FROM edges "
                    "WHERE cube_id = ? ORDER BY create_time, src_id, dst_id, kind",
                ),
                (
                    "message",
                    f"SELECT {', '.join(records.MESSAGE_FIELDS)} FROM messages "
                    "WHERE cube_id = ? ORDER BY rowid",
                ),
                (
                    "task",
                    f"SELECT {', '.join(records.TASK_FIELDS)} FROM tasks "
                    "WHERE cube_id = ? ORDER BY create_time, task_id",
                ),
            ):
                for r in _stream(conn, sql, (cube_id,)):
                    yield records.record(kind, r)
    finally:
        conn.close()


def import_records(store: SQLiteStore, stream: Records, *, embed: Embed | None) -> dict[str, int]:
    tally = Tally()
    for batch in records.batches(stream, embed=embed, default_model=store.embed_model):
        with store._tx("importing records") as conn:
            _write(conn, batch, tally)
    return tally.as_dict()


def _existing(conn: sqlite3.Connection, table: str, key: str, ids: list[str]) -> dict[str, str]:
    """Which of ``ids`` are stored already, and in which cube."""
    if not ids:
        return {}
    found = conn.execute(
        f"SELECT {key}, cube_id FROM {table} WHERE {key} IN ({marks(len(ids))})", ids
    ).fetchall()
    return {str(r[0]): str(r[1]) for r in found}


def _write(conn: sqlite3.Connection, batch: Batch, tally: Tally) -> None:
    for cube_id, owner_id, create_time in batch.cubes:
        row = conn.execute("SELECT owner_id FROM cubes WHERE cube_id = ?", (cube_id,)).fetchone()
        if row is not None and row[0] != owner_id:
            raise PermissionDenied(
                f"cube {cube_id!r} belongs to another user in the target store; "
                "nothing of it was imported"
            )
        if row is None:
            conn.execute(
                "INSERT INTO cubes (cube_id, owner_id, create_time) VALUES (?, ?, ?)",
                (cube_id, owner_id, create_time),
            )
        tally.add("cube", 1, int(row is None))

    mems = batch.memories
    existing = _existing(conn, "memories", "id", [m.item.id for m in mems])
    fresh = records.fresh("memory", existing, [(m.item.id, m.item.cube_id) for m in mems])
    touched: set[str] = set()
    for m, write in zip(mems, fresh, strict=True):
        if not write:
            continue
        cur = conn.execute(_MEMORY_INSERT, (*m.params, m.usage_count, m.last_used))
        conn.execute(
            "INSERT INTO memory_vectors (rowid, cube_id, model, vec) VALUES (?, ?, ?, ?)",
            (cur.lastrowid, m.item.cube_id, m.model, blob(m.vector)),
        )
        touched.add(m.item.cube_id)
    tally.add("memory", len(mems), sum(fresh))

    for kind, table, found in (
        ("version", "memory_versions", batch.versions),
        ("edge", "edges", batch.edges),
    ):
        fields = records.FIELDS[kind]
        sql = f"INSERT OR IGNORE INTO {table} ({', '.join(fields)}) VALUES ({marks(len(fields))})"
        tally.add(kind, len(found), conn.executemany(sql, found).rowcount if found else 0)

    for kind, table, key, at, found in (
        ("message", "messages", "id", 2, batch.messages),
        ("task", "tasks", "task_id", 1, batch.tasks),
    ):
        existing = _existing(conn, table, key, [str(r[0]) for r in found])
        keep = records.fresh(kind, existing, [(str(r[0]), str(r[at])) for r in found])
        new = [r for r, k in zip(found, keep, strict=True) if k]
        fields = records.FIELDS[kind]
        conn.executemany(
            f"INSERT INTO {table} ({', '.join(fields)}) VALUES ({marks(len(fields))})", new
        )
        tally.add(kind, len(found), len(new))

    for cube_id in sorted(touched):  # every process reloads this cube's caches
        conn.execute(
            "INSERT INTO cube_state (cube_id, generation) VALUES (?, 1) "
            "ON CONFLICT (cube_id) DO UPDATE SET generation = generation + 1",
            (cube_id,),
        )
