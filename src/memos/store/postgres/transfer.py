"""Whole cubes in and out of the PostgreSQL adapter (``memos export`` / ``memos import``).

An export reads one ``REPEATABLE READ`` snapshot through server-side cursors,
so a cube of any size streams in constant memory. Text is ordered with
``COLLATE "C"`` (byte order, as SQLite orders it), so both adapters export the
same cube as the same records in the same order.

An import writes one transaction per batch of records and keeps the derived
state current: the keyword columns (``lex``, ``lex_len``) are computed from the
text, the cube's ``cube_stats`` (BM25's N and total length) grow with the
live memories written, and the HNSW index for the vectors' dimension exists
afterwards (built once over all the rows when the import creates it; grown row
by row when it was there already). Ids are kept: a record already stored in
the same cube is skipped, one whose id belongs to another cube is refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
from psycopg.types.string import TextBinaryLoader

from memos.domain.models import MemoryStatus
from memos.errors import NotFound, PermissionDenied, StoreError
from memos.store import records
from memos.store.postgres import lexical
from memos.store.postgres.sql import as_array
from memos.store.postgres.store import PostgresStore
from memos.store.records import Batch, Embed, Record, Records, Tally

FETCH = 500


def _cols(fields: tuple[str, ...]) -> str:
    return ", ".join(fields)


def _marks(n: int) -> str:
    return ", ".join("%s" for _ in range(n))


_MEMORY_INSERT = (
    f"INSERT INTO memories ({_cols(records.MEMORY_FIELDS)}, model, dims, vec, lex, lex_len) "
    f"VALUES ({_marks(len(records.MEMORY_FIELDS))}, %s, %s, %s, %s::tsvector, %s)"
)
_EXPORTS = (
    ("version", f"SELECT {_cols(records.VERSION_FIELDS)} FROM memory_versions "
     'WHERE cube_id = %s ORDER BY memory_id COLLATE "C", version'),
    ("edge", f"SELECT {_cols(records.EDGE_FIELDS)} FROM edges WHERE cube_id = %s "
     'ORDER BY create_time, src_id COLLATE "C", dst_id COLLATE "C", kind COLLATE "C"'),
    ("message", f"SELECT {_cols(records.MESSAGE_FIELDS)} FROM messages "
     "WHERE cube_id = %s ORDER BY pk"),
    ("task", f"SELECT {_cols(records.TASK_FIELDS)} FROM tasks WHERE cube_id = %s "
     'ORDER BY create_time, task_id COLLATE "C"'),
)
_INSERTS = {
    "version": f"INSERT INTO memory_versions ({_cols(records.VERSION_FIELDS)}) "
    f"VALUES ({_marks(len(records.VERSION_FIELDS))}) ON CONFLICT DO NOTHING",
    "edge": f"INSERT INTO edges ({_cols(records.EDGE_FIELDS)}) "
    f"VALUES ({_marks(len(records.EDGE_FIELDS))}) ON CONFLICT DO NOTHING",
    "message": f"INSERT INTO messages ({_cols(records.MESSAGE_FIELDS)}) "
    f"VALUES ({_marks(len(records.MESSAGE_FIELDS))})",
    "task": f"INSERT INTO tasks ({_cols(records.TASK_FIELDS)}) "
    f"VALUES ({_marks(len(records.TASK_FIELDS))})",
}


def _stream(conn: psycopg.Connection, name: str, sql: str, cube_id: str) -> Iterator[Any]:
    """Rows through a server-side cursor, ``FETCH`` at a time.

    In binary (vectors arrive as raw floats rather than text to parse); JSON
    columns still come back as the text that was stored.
    """
    with conn.cursor(name=name) as cur:
        cur.adapters.register_loader("json", TextBinaryLoader)
        cur.itersize = FETCH
        cur.execute(sql, (cube_id,), binary=True)
        yield from cur


def export_cube(store: PostgresStore, cube_id: str, *, vectors: bool = True) -> Iterator[Record]:
    with store._read("exporting a cube") as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cube = conn.execute(
            "SELECT cube_id, owner_id, create_time FROM cubes WHERE cube_id = %s", (cube_id,)
        ).fetchone()
        if cube is None:
            raise NotFound(f"no cube {cube_id!r} in this store")
        yield records.record("cube", cube)
        extra = ", model, vec" if vectors else ""
        sql = (
            f"SELECT {_cols(records.MEMORY_FIELDS)}{extra} FROM memories "
            "WHERE cube_id = %s ORDER BY pk"
        )
        for r in _stream(conn, "memos_export_memories", sql, cube_id):
            if vectors:
                yield records.memory_record(r[:-2], r[-2], as_array(r[-1]))
            else:
                yield records.memory_record(r, None, None)
        for kind, sql in _EXPORTS:
            for r in _stream(conn, f"memos_export_{kind}s", sql, cube_id):
                yield records.record(kind, r)


def import_records(
    store: PostgresStore, stream: Records, *, embed: Embed | None
) -> dict[str, int]:
    tally = Tally()
    seen: set[int] = set()
    build: set[int] = set()  # dimensions with no HNSW index yet: built once at the end
    try:
        for batch in records.batches(stream, embed=embed, default_model=store.embed_model):
            for d in {len(m.vector) for m in batch.memories if m.vector is not None} - seen:
                seen.add(d)
                with store._read("checking the vector index") as conn:
                    if not _has_index(conn, d):
                        build.add(d)
            with store._tx("importing records") as conn:
                _write(conn, batch, tally)
    except BaseException:
        with contextlib.suppress(StoreError):  # the error that stopped the import wins
            _build_indexes(store, build)
        raise
    _build_indexes(store, build)
    return tally.as_dict()


def _has_index(conn: psycopg.Connection, dims: int) -> bool:
    row = conn.execute("SELECT to_regclass(%s)", (f"memories_vec_{int(dims)}",)).fetchone()
    return row is not None and row[0] is not None


def _build_indexes(store: PostgresStore, dims: set[int]) -> None:
    """Build missing HNSW indexes over the imported rows: one bulk build is several times
    faster than growing the index row by row (measured 5k rows at 384 dims: 2.5 s + 4 s
    against 25 s). Searches meanwhile scan exactly, as for a small cube."""
    for d in sorted(dims):
        store.build_vector_index(d)


def _existing(conn: psycopg.Connection, table: str, key: str, ids: list[str]) -> dict[str, str]:
    """Which of ``ids`` are stored already, and in which cube."""
    if not ids:
        return {}
    found = conn.execute(
        f"SELECT {key}, cube_id FROM {table} WHERE {key} = ANY(%s)", (ids,)
    ).fetchall()
    return {str(r[0]): str(r[1]) for r in found}


def _insert(conn: psycopg.Connection, sql: str, params: list[tuple[Any, ...]]) -> int:
    if not params:
        return 0
    with conn.cursor() as cur:
        cur.executemany(sql, params)
        return max(cur.rowcount, 0)


def _write(conn: psycopg.Connection, batch: Batch, tally: Tally) -> None:
    for cube_id, owner_id, create_time in batch.cubes:
        row = conn.execute(
            "SELECT owner_id FROM cubes WHERE cube_id = %s", (cube_id,)
        ).fetchone()
        if row is not None and row[0] != owner_id:
            raise PermissionDenied(
                f"cube {cube_id!r} belongs to another user in the target store; "
                "nothing of it was imported"
            )
        if row is None:
            conn.execute(
                "INSERT INTO cubes (cube_id, owner_id, create_time) VALUES (%s, %s, %s)",
                (cube_id, owner_id, create_time),
            )
        tally.add("cube", 1, int(row is None))

    mems = batch.memories
    existing = _existing(conn, "memories", "id", [m.item.id for m in mems])
    keep = records.fresh("memory", existing, [(m.item.id, m.item.cube_id) for m in mems])
    params = []
    stats: dict[str, list[int]] = {}  # cube -> [live count, indexed length]
    for m, k in zip(mems, keep, strict=True):
        if not k:
            continue
        vec = np.asarray(m.vector, np.float32).reshape(-1)
        lex, length = lexical.document(m.item.key, m.item.value, m.item.context)
        params.append((*m.params, m.usage_count, m.last_used, m.model, len(vec), vec, lex, length))
        if m.item.status == MemoryStatus.ACTIVATED:
            cube = stats.setdefault(m.item.cube_id, [0, 0])
            cube[0] += 1
            cube[1] += length
    _insert(conn, _MEMORY_INSERT, params)
    tally.add("memory", len(mems), len(params))

    tally.add("version", len(batch.versions), _insert(conn, _INSERTS["version"], batch.versions))
    tally.add("edge", len(batch.edges), _insert(conn, _INSERTS["edge"], batch.edges))

    for kind, table, key, at, found in (
        ("message", "messages", "id", 2, batch.messages),
        ("task", "tasks", "task_id", 1, batch.tasks),
    ):
        existing = _existing(conn, table, key, [str(r[0]) for r in found])
        keep = records.fresh(kind, existing, [(str(r[0]), str(r[at])) for r in found])
        new = [r for r, k in zip(found, keep, strict=True) if k]
        tally.add(kind, len(found), _insert(conn, _INSERTS[kind], new))

    # last in the transaction, as in the store: writers of one cube queue here briefly
    for cube_id, (count, length) in sorted(stats.items()):
        conn.execute(
            "INSERT INTO cube_stats (cube_id, live_count, lex_total) VALUES (%s, %s, %s) "
            "ON CONFLICT (cube_id) DO UPDATE SET "
            "live_count = cube_stats.live_count + excluded.live_count, "
            "lex_total = cube_stats.lex_total + excluded.lex_total",
            (cube_id, count, length),
        )
