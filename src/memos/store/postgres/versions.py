"""Version-keeping row writes inside one open transaction: lock, archive, revise, retire, link.

Each function takes the connection of a transaction the store already opened,
so a change set commits or rolls back as a whole. The old version is always
copied to ``memory_versions`` before its row changes, so nothing a revision or
a retirement replaces is lost. Rows are locked (``FOR UPDATE``) before they are
read for a change, so two servers revising one memory queue instead of racing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg

from memos.domain.models import Edge, MemoryItem, MemoryStatus, Scope
from memos.embedders.base import Vectors
from memos.errors import MemoryNotFound
from memos.store import rows
from memos.store.base import Retirement, Revision
from memos.store.postgres import lexical
from memos.store.postgres.sql import LIVE, MEM_SELECT, Delta, scope_sql

REVISABLE = frozenset({"key", "value", "tags", "info", "confidence", "sources"})


def locked(
    conn: psycopg.Connection, scope: Scope, memory_id: str, *, live_only: bool
) -> tuple[int, MemoryItem, int] | None:
    """(pk, item, indexed length) of the memory, its row locked; None if not in scope."""
    params: list[Any] = [memory_id]
    sql = (
        f"SELECT m.pk, m.lex_len, {MEM_SELECT} FROM memories m "
        f"WHERE m.id = %s AND {scope_sql(scope, params)}"
    )
    if live_only:
        sql += " AND m.status = %s"
        params.append(LIVE)
    row = conn.execute(sql + " FOR UPDATE", params).fetchone()
    if row is None:
        return None
    return int(row[0]), rows.memory_from_row(row[2:]), int(row[1])


def set_vector(conn: psycopg.Connection, pk: int, vector: Vectors, embed_model: str) -> None:
    v = np.asarray(vector, np.float32).reshape(-1)
    conn.execute(
        "UPDATE memories SET vec = %s, dims = %s, model = %s WHERE pk = %s",
        (v, len(v), embed_model, pk),
    )


def archive_version(conn: psycopg.Connection, old: MemoryItem) -> None:
    """Keep ``old`` in the history table before its row is overwritten."""
    conn.execute(
        "INSERT INTO memory_versions (memory_id, cube_id, version, key, value, tags, info, "
        "status, update_time) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (memory_id, version) DO UPDATE SET key = excluded.key, "
        "value = excluded.value, tags = excluded.tags, info = excluded.info, "
        "status = excluded.status, update_time = excluded.update_time",
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


def revise(
    conn: psycopg.Connection,
    scope: Scope,
    rev: Revision,
    now: float,
    delta: Delta,
    embed_model: str,
) -> None:
    """Rewrite a live memory in place (version + 1), its keyword document with it."""
    unknown = set(rev.changes) - REVISABLE
    if unknown:
        raise ValueError(f"cannot revise fields {sorted(unknown)}")
    found = locked(conn, scope, rev.memory_id, live_only=True)
    if found is None:
        raise MemoryNotFound(f"no active memory {rev.memory_id!r} in this scope")
    pk, old, old_len = found
    archive_version(conn, old)
    new = old.model_copy(update=rev.changes)
    lex, new_len = lexical.document(new.key, new.value, new.context)
    conn.execute(
        "UPDATE memories SET key = %s, value = %s, tags = %s, info = %s, confidence = %s, "
        "sources = %s, version = version + 1, update_time = %s, lex = %s::tsvector, "
        "lex_len = %s WHERE pk = %s",
        (
            new.key,
            new.value,
            json.dumps(new.tags, ensure_ascii=False),
            json.dumps(new.info, ensure_ascii=False),
            new.confidence,
            json.dumps([s.model_dump() for s in new.sources], ensure_ascii=False),
            now,
            lex,
            new_len,
            pk,
        ),
    )
    delta.length += new_len - old_len
    if rev.vector is not None:
        set_vector(conn, pk, rev.vector, embed_model)


def retire(
    conn: psycopg.Connection, scope: Scope, ret: Retirement, now: float, delta: Delta
) -> None:
    """Archive a live memory with its reason (nothing to do if gone and ``missing_ok``)."""
    found = locked(conn, scope, ret.memory_id, live_only=True)
    if found is None:
        if ret.missing_ok:
            return
        raise MemoryNotFound(f"no active memory {ret.memory_id!r} in this scope")
    pk, old, old_len = found
    archive_version(conn, old)
    conn.execute(
        "UPDATE memories SET status = %s, archive_reason = %s, superseded_by = %s, "
        "valid_to = %s, version = version + 1, update_time = %s WHERE pk = %s",
        (
            MemoryStatus.ARCHIVED.value,
            ret.reason.value,
            ret.superseded_by,
            rows.ts(ret.valid_to),
            now,
            pk,
        ),
    )
    delta.live(old_len, -1)


def insert_edges(conn: psycopg.Connection, scope: Scope, edges: Sequence[Edge]) -> None:
    """Link memories of this scope; an end outside it fails the whole transaction."""
    if not edges:
        return
    ids = sorted({e.src_id for e in edges} | {e.dst_id for e in edges})
    params: list[Any] = [ids]
    found = {
        str(r[0])
        for r in conn.execute(
            f"SELECT m.id FROM memories m WHERE m.id = ANY(%s) AND {scope_sql(scope, params)}",
            params,
        ).fetchall()
    }
    missing = [i for i in ids if i not in found]
    if missing:
        raise MemoryNotFound(f"memories not found in this scope: {missing[:5]}")
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO edges (cube_id, src_id, dst_id, kind, create_time) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
                (scope.cube_id, e.src_id, e.dst_id, e.kind.value, e.create_time.timestamp())
                for e in edges
            ],
        )
