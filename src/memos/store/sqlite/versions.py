"""Version-keeping row writes inside one open transaction: archive, revise, retire, link.

Each function takes the writer connection of a transaction the store already
opened, so a change set commits or rolls back as a whole. The old version is
always copied to ``memory_versions`` before its row changes, so nothing a
revision or a retirement replaces is lost. Cache upkeep stays in the store.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from memos.domain.models import Edge, MemoryItem, MemoryStatus, Scope
from memos.errors import MemoryNotFound
from memos.store import rows
from memos.store.base import Retirement, Revision
from memos.store.sqlite.sql import LIVE, blob, marks, scope_sql

REVISABLE = frozenset({"key", "value", "tags", "info", "confidence", "sources"})


def archive_version(conn: sqlite3.Connection, old: MemoryItem) -> None:
    """Keep ``old`` in the history table before its row is overwritten."""
    conn.execute(
        "INSERT OR REPLACE INTO memory_versions (memory_id, cube_id, version, key, value, "
        "tags, info, status, update_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            old.id,
            old.cube_id,
            old.version,
            old.key,
            old.value,
            json.dumps(old.tags, ensure_ascii=False),
            json.dumps(old.info, ensure_ascii=False),
            str(old.status),
            rows.ts(old.update_time),
        ),
    )


def locked_row(conn: sqlite3.Connection, scope: Scope, memory_id: str) -> tuple[int, MemoryItem]:
    """The live memory's rowid and item, read inside the write transaction."""
    params: list[Any] = [memory_id]
    row = conn.execute(
        f"SELECT rowid, {rows.MEMORY_COLUMNS} FROM memories m "
        f"WHERE m.id = ? AND {scope_sql(scope, params, by_id=True)} AND m.status = ?",
        [*params, LIVE],
    ).fetchone()
    if row is None:
        raise MemoryNotFound(f"no active memory {memory_id!r} in this scope")
    return int(row[0]), rows.memory_from_row(row[1:])


def revise(
    conn: sqlite3.Connection, scope: Scope, rev: Revision, now: float, embed_model: str
) -> tuple[int, MemoryItem]:
    """Rewrite a live memory in place (version + 1); its rowid and the new item."""
    unknown = set(rev.changes) - REVISABLE
    if unknown:
        raise ValueError(f"cannot revise fields {sorted(unknown)}")
    rowid, old = locked_row(conn, scope, rev.memory_id)
    archive_version(conn, old)
    new = old.model_copy(update=rev.changes)
    conn.execute(
        "UPDATE memories SET key = ?, value = ?, tags = ?, info = ?, confidence = ?, "
        "sources = ?, version = version + 1, update_time = ? WHERE rowid = ?",
        (
            new.key,
            new.value,
            json.dumps(new.tags, ensure_ascii=False),
            json.dumps(new.info, ensure_ascii=False),
            new.confidence,
            json.dumps([s.model_dump() for s in new.sources], ensure_ascii=False),
            now,
            rowid,
        ),
    )
    if rev.vector is not None:
        conn.execute(
            "UPDATE memory_vectors SET vec = ?, model = ? WHERE rowid = ?",
            (blob(rev.vector), embed_model, rowid),
        )
    return rowid, new


def retire(conn: sqlite3.Connection, scope: Scope, ret: Retirement, now: float) -> int | None:
    """Archive a live memory with its reason; its rowid, or None if gone and ``missing_ok``."""
    try:
        rowid, old = locked_row(conn, scope, ret.memory_id)
    except MemoryNotFound:
        if ret.missing_ok:
            return None
        raise
    archive_version(conn, old)
    conn.execute(
        "UPDATE memories SET status = ?, archive_reason = ?, superseded_by = ?, "
        "valid_to = ?, version = version + 1, update_time = ? WHERE rowid = ?",
        (
            MemoryStatus.ARCHIVED.value,
            ret.reason.value,
            ret.superseded_by,
            rows.ts(ret.valid_to),
            now,
            rowid,
        ),
    )
    return rowid


def insert_edges(conn: sqlite3.Connection, scope: Scope, edges: Sequence[Edge]) -> None:
    """Link memories of this scope; an end outside it fails the whole transaction."""
    if not edges:
        return
    ids = sorted({e.src_id for e in edges} | {e.dst_id for e in edges})
    params: list[Any] = list(ids)
    found = {
        str(r[0])
        for r in conn.execute(
            f"SELECT m.id FROM memories m WHERE m.id IN ({marks(len(ids))}) "
            f"AND {scope_sql(scope, params, by_id=True)}",
            params,
        )
    }
    missing = [i for i in ids if i not in found]
    if missing:
        raise MemoryNotFound(f"memories not found in this scope: {missing[:5]}")
    conn.executemany(
        "INSERT OR IGNORE INTO edges (cube_id, src_id, dst_id, kind, create_time) "
        "VALUES (?, ?, ?, ?, ?)",
        [
            (scope.cube_id, e.src_id, e.dst_id, e.kind.value, e.create_time.timestamp())
            for e in edges
        ],
    )
