"""PostgreSQL + pgvector adapter of the storage port (the scale-out store).

Stateless by design: no per-process caches, so any number of API servers and
workers share one database and see each other's writes at once. Vectors are
searched with pgvector (exactly for small cubes, through a per-dimension HNSW
index for large ones); keywords with BM25 computed in SQL over a ``tsvector``
of the same stems the SQLite adapter indexes (``memos.text.lexical``), so both
adapters rank the same text the same way (see ``lexical``).

Every query carries the scope predicate (``sql.scope_sql``); every value is a bound
parameter. The only formatted SQL fragments are column names from fixed lists
and the vector dimension, an ``int``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
from psycopg_pool import ConnectionPool

from memos.domain.filters import Node
from memos.domain.models import (
    ArchiveReason,
    Edge,
    EdgeKind,
    MemoryItem,
    MemoryStatus,
    MemoryVersion,
    Message,
    Page,
    Scope,
    cube_name,
)
from memos.embedders.base import Vectors
from memos.errors import MemoryNotFound, PermissionDenied
from memos.store import rows
from memos.store.base import ChangeSet, Ingest, VectorHit
from memos.store.postgres import lexical, versions
from memos.store.postgres.filters import compile_filter
from memos.store.postgres.schema import ensure_vector_index, migrate
from memos.store.postgres.sql import (
    LIVE,
    MEM_INSERT,
    MEM_SELECT,
    MSG_INSERT,
    MSG_SELECT,
    Delta,
    as_array,
    configure,
    scope_sql,
    translate,
)
from memos.store.records import Embed, Record, Records

logger = logging.getLogger(__name__)

EXACT_LIMIT = 5_000
"""Cubes up to this many live memories are searched exactly (a scan is fast and
exact); larger ones through the HNSW index."""
EF_SEARCH = 200
"""HNSW candidate list size: recall@10 0.87 at 100 over 1M LoCoMo-like memories; the
vector query runs beside the slower keyword one, so a larger list costs no latency."""


class PostgresStore:
    """The scale-out store: PostgreSQL 15+ with pgvector 0.5+ (any host, managed or not)."""

    # Search may run its vector and keyword queries at once (each on its own
    # pooled connection): the server does the work, in parallel.
    concurrent_reads = True

    def __init__(
        self,
        url: str,
        *,
        embed_model: str = "unknown",
        pool_min: int = 1,
        pool_max: int = 10,
        pool_timeout_s: float = 30.0,
        vector_index: bool = True,
    ) -> None:
        """``vector_index=False`` leaves the HNSW index to ``build_vector_index``
        (bulk loads: building it once afterwards is much faster than growing it)."""
        self.url = url
        self.embed_model = embed_model
        self._vector_index = vector_index
        self._indexed_dims: set[int] = set()
        self._lexeme_stats: tuple[float, dict[str, float]] = (-1e9, {})
        with translate("connecting to the database"):
            with psycopg.connect(url, autocommit=True) as conn:
                migrate(conn)
            self._pool = ConnectionPool(
                url,
                min_size=pool_min,
                max_size=pool_max,
                timeout=pool_timeout_s,
                kwargs={"autocommit": True, "prepare_threshold": None},
                configure=configure,
                open=True,
                name="memos",
            )

    @contextmanager
    def _read(self, action: str) -> Iterator[psycopg.Connection]:
        with translate(action), self._pool.connection() as conn:
            yield conn

    @contextmanager
    def _tx(self, action: str) -> Iterator[psycopg.Connection]:
        with translate(action), self._pool.connection() as conn, conn.transaction():
            yield conn

    def close(self) -> None:
        self._pool.close()

    # ------------------------------------------------------------ meta / cubes
    def get_meta(self, key: str) -> str | None:
        with self._read("reading metadata") as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._tx("writing metadata") as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def cube_owner(self, cube_id: str) -> str | None:
        with self._read("reading a cube") as conn:
            row = conn.execute(
                "SELECT owner_id FROM cubes WHERE cube_id = %s", (cube_id,)
            ).fetchone()
        return None if row is None else str(row[0])

    def claim_cube(self, user_id: str, cube_id: str) -> None:
        if self.cube_owner(cube_id) == user_id:
            return
        with self._tx("creating a cube") as conn:
            self._claim(conn, user_id, cube_id)

    @staticmethod
    def _claim(conn: psycopg.Connection, user_id: str, cube_id: str) -> None:
        """Create the cube for ``user_id`` or check it is theirs, inside the transaction."""
        conn.execute(
            "INSERT INTO cubes (cube_id, owner_id, create_time) VALUES (%s, %s, %s) "
            "ON CONFLICT (cube_id) DO NOTHING",
            (cube_id, user_id, time.time()),
        )
        row = conn.execute("SELECT owner_id FROM cubes WHERE cube_id = %s", (cube_id,)).fetchone()
        if row is None or row[0] != user_id:
            raise PermissionDenied(f"cube {cube_name(cube_id)!r} belongs to another user")

    def cubes(self) -> list[tuple[str, str]]:
        """Every (cube_id, owner_id), for export of everything."""
        with self._read("listing cubes") as conn:
            found = conn.execute("SELECT cube_id, owner_id FROM cubes ORDER BY cube_id").fetchall()
        return [(str(r[0]), str(r[1])) for r in found]

    # ------------------------------------------------------------------ writes
    def build_vector_index(self, dims: int, *, maintenance_work_mem: str = "1GB") -> None:
        """Create the HNSW index for ``dims``-dimensional vectors now (idempotent)."""
        with self._read("building the vector index") as conn:
            conn.execute(
                "SELECT set_config('maintenance_work_mem', %s, false)", (maintenance_work_mem,)
            )
            ensure_vector_index(conn, dims)
            conn.execute("RESET maintenance_work_mem")
        self._indexed_dims.add(int(dims))

    def _ensure_index(self, vectors: Vectors) -> None:
        if not len(vectors) or not self._vector_index:
            return
        dims = int(np.asarray(vectors).shape[-1])
        if dims not in self._indexed_dims:
            with self._read("creating the vector index") as conn:
                ensure_vector_index(conn, dims)
            self._indexed_dims.add(dims)

    def _memory_params(self, item: MemoryItem, vec: Any) -> tuple[Any, ...]:
        v = np.asarray(vec, np.float32).reshape(-1)
        lex, length = lexical.document(item.key, item.value, item.context)
        return (*rows.memory_params(item), self.embed_model, len(v), v, lex, length)

    def _insert_memories(
        self, conn: psycopg.Connection, scope: Scope, items: Sequence[MemoryItem], vectors: Vectors
    ) -> Delta:
        delta = Delta()
        params = []
        for item, vec in zip(items, vectors, strict=True):
            self._check_owned(scope, item)
            p = self._memory_params(item, vec)
            params.append(p)
            if item.status == MemoryStatus.ACTIVATED:
                delta.live(p[-1])
        if params:
            with conn.cursor() as cur:
                cur.executemany(MEM_INSERT, params)
        return delta

    @staticmethod
    def _bump(conn: psycopg.Connection, cube_id: str, delta: Delta) -> None:
        """Keep the cube's live count and total length (BM25's N and avgdl) current.

        Last in every write transaction, so two writers of one cube never wait
        on each other's memory rows while holding this one.
        """
        if not (delta.count or delta.length):
            return
        conn.execute(
            "INSERT INTO cube_stats (cube_id, live_count, lex_total) VALUES (%s, %s, %s) "
            "ON CONFLICT (cube_id) DO UPDATE SET "
            "live_count = cube_stats.live_count + excluded.live_count, "
            "lex_total = cube_stats.lex_total + excluded.lex_total",
            (cube_id, delta.count, delta.length),
        )

    def ingest(
        self,
        scope: Scope,
        messages: Sequence[Message],
        memories: Sequence[MemoryItem],
        vectors: Vectors,
    ) -> None:
        self.ingest_batch([Ingest(scope, messages, memories, vectors, claim=False)])

    def ingest_batch(self, batch: Sequence[Ingest]) -> None:
        for part in batch:
            if len(part.memories) != len(part.vectors):
                raise ValueError("one vector per memory is required")
            self._ensure_index(part.vectors)
        now = time.time()
        with self._tx("adding messages and memories") as conn:
            for part in batch:
                if part.claim:
                    self._claim(conn, part.scope.user_id, part.scope.cube_id)
                if part.messages:
                    with conn.cursor() as cur:
                        cur.executemany(
                            MSG_INSERT, [rows.message_params(m) for m in part.messages]
                        )
                delta = self._insert_memories(conn, part.scope, part.memories, part.vectors)
                if part.task is not None:
                    self._put_task(conn, part.scope, *part.task, now=now)
                self._bump(conn, part.scope.cube_id, delta)

    @staticmethod
    def _check_owned(scope: Scope, item: MemoryItem) -> None:
        if item.cube_id != scope.cube_id:
            raise PermissionDenied("a memory must be written into the scope's own cube")

    def update_memory(
        self,
        scope: Scope,
        memory_id: str,
        changes: dict[str, Any],
        vector: Vectors | None = None,
    ) -> MemoryItem:
        allowed = {"key", "value", "tags", "info", "confidence", "memory_type", "status"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"cannot update fields {sorted(unknown)}")
        if vector is not None:
            self._ensure_index(np.asarray(vector).reshape(1, -1))
        with self._tx("updating a memory") as conn:
            found = versions.locked(conn, scope, memory_id, live_only=False)
            if found is None:
                raise MemoryNotFound(f"memory {memory_id!r} not found")
            pk, old, old_len = found
            versions.archive_version(conn, old)
            new = old.model_copy(update=changes)
            new.version = old.version + 1
            new.update_time = rows.when(time.time())
            lex, new_len = lexical.document(new.key, new.value, new.context)
            conn.execute(
                "UPDATE memories SET key = %s, value = %s, tags = %s, info = %s, "
                "confidence = %s, memory_type = %s, status = %s, version = %s, "
                "update_time = %s, lex = %s::tsvector, lex_len = %s WHERE pk = %s",
                (
                    new.key,
                    new.value,
                    json.dumps(new.tags, ensure_ascii=False),
                    json.dumps(new.info, ensure_ascii=False),
                    new.confidence,
                    str(new.memory_type),
                    str(new.status),
                    new.version,
                    rows.ts(new.update_time),
                    lex,
                    new_len,
                    pk,
                ),
            )
            if vector is not None:
                versions.set_vector(conn, pk, vector, self.embed_model)
            delta = Delta()
            if old.status == MemoryStatus.ACTIVATED:
                delta.live(old_len, -1)
            if new.status == MemoryStatus.ACTIVATED:
                delta.live(new_len)
            self._bump(conn, scope.cube_id, delta)
        return new

    def set_status(self, scope: Scope, memory_ids: Sequence[str], status: MemoryStatus) -> int:
        return self.set_status_batch([(scope, memory_ids)], status)

    def set_status_batch(
        self, batch: Sequence[tuple[Scope, Sequence[str]]], status: MemoryStatus
    ) -> int:
        batch = [(scope, ids) for scope, ids in batch if ids]
        if not batch:
            return 0
        now = time.time()
        changed = 0
        with self._tx("changing memory status") as conn:
            for scope, memory_ids in batch:
                params: list[Any] = [list(memory_ids)]
                found = conn.execute(
                    f"SELECT m.pk, m.lex_len, {MEM_SELECT} FROM memories m "
                    f"WHERE m.id = ANY(%s) AND {scope_sql(scope, params)} AND m.status != %s "
                    "ORDER BY m.pk FOR UPDATE",
                    [*params, str(status)],
                ).fetchall()
                delta = Delta()
                for row in found:
                    old = rows.memory_from_row(row[2:])
                    versions.archive_version(conn, old)
                    if old.status == MemoryStatus.ACTIVATED:
                        delta.live(int(row[1]), -1)
                    elif status == MemoryStatus.ACTIVATED:
                        delta.live(int(row[1]))
                if found:
                    conn.execute(
                        "UPDATE memories SET status = %s, version = version + 1, "
                        "update_time = %s WHERE pk = ANY(%s)",
                        (str(status), now, [int(r[0]) for r in found]),
                    )
                self._bump(conn, scope.cube_id, delta)
                changed += len(found)
        return changed

    def delete_scope(self, scope: Scope) -> int:
        return self.delete_scopes([scope])

    def delete_scopes(self, scopes: Sequence[Scope]) -> int:
        batch: list[tuple[Scope, Sequence[str]]] = []
        for scope in scopes:
            params: list[Any] = []
            where = scope_sql(scope, params)
            with self._read("listing memories to delete") as conn:
                found = conn.execute(
                    f"SELECT m.id FROM memories m WHERE {where} AND m.status = '{LIVE}'", params
                ).fetchall()
            batch.append((scope, [str(r[0]) for r in found]))
        return self.set_status_batch(batch, MemoryStatus.DELETED)

    def add_edges(self, scope: Scope, edges: Sequence[Edge]) -> None:
        if not edges:
            return
        with self._tx("adding edges") as conn:
            versions.insert_edges(conn, scope, edges)

    # ------------------------------------------------------------------- reads
    def get_memories(
        self, scope: Scope, memory_ids: Sequence[str], *, include_inactive: bool = False
    ) -> list[MemoryItem]:
        if not memory_ids:
            return []
        params: list[Any] = [list(memory_ids)]
        sql = (
            f"SELECT {MEM_SELECT} FROM memories m "
            f"WHERE m.id = ANY(%s) AND {scope_sql(scope, params)}"
        )
        if not include_inactive:
            sql += f" AND m.status = '{LIVE}'"
        with self._read("reading memories") as conn:
            found = {
                item.id: item
                for item in map(rows.memory_from_row, conn.execute(sql, params).fetchall())
            }
        return [found[i] for i in memory_ids if i in found]

    def list_memories(self, scope: Scope, flt: Node | None, *, offset: int, limit: int) -> Page:
        params: list[Any] = []
        where = f"{scope_sql(scope, params)} AND m.status = '{LIVE}'"
        if flt is not None:
            where += " AND " + compile_filter(flt, "m", params)
        with self._read("listing memories") as conn:
            total_row = conn.execute(
                f"SELECT count(*) FROM memories m WHERE {where}", params
            ).fetchone()
            items = [
                rows.memory_from_row(r)
                for r in conn.execute(
                    f"SELECT {MEM_SELECT} FROM memories m WHERE {where} "
                    "ORDER BY m.create_time DESC, m.pk DESC LIMIT %s OFFSET %s",
                    [*params, limit, offset],
                ).fetchall()
            ]
        return Page(items=items, total=int(total_row[0]) if total_row else 0)

    def count_memories(self, scope: Scope) -> int:
        params: list[Any] = []
        where = scope_sql(scope, params)
        with self._read("counting memories") as conn:
            row = conn.execute(
                f"SELECT count(*) FROM memories m WHERE {where} AND m.status = '{LIVE}'", params
            ).fetchone()
        return int(row[0]) if row else 0

    def existing_message_ids(
        self, scope: Scope, conversation_id: str | None, message_ids: Sequence[str]
    ) -> set[str]:
        if not message_ids:
            return set()
        params: list[Any] = []
        where = scope_sql(scope, params)
        params.extend([conversation_id, list(message_ids)])
        with self._read("checking message ids") as conn:
            found = conn.execute(
                f"SELECT m.message_id FROM messages m WHERE {where} "
                "AND m.conversation_id IS NOT DISTINCT FROM %s AND m.message_id = ANY(%s)",
                params,
            ).fetchall()
        return {str(r[0]) for r in found}

    def history(self, scope: Scope, memory_id: str) -> list[MemoryVersion]:
        if not self.get_memories(scope, [memory_id], include_inactive=True):
            raise MemoryNotFound(f"memory {memory_id!r} not found")
        with self._read("reading history") as conn:
            found = conn.execute(
                "SELECT memory_id, version, key, value, tags, info, status, update_time "
                "FROM memory_versions WHERE memory_id = %s AND cube_id = %s ORDER BY version",
                (memory_id, scope.cube_id),
            ).fetchall()
        return [
            MemoryVersion(
                memory_id=r[0],
                version=r[1],
                key=r[2],
                value=r[3],
                tags=rows.read_json(r[4], [], r[0], "tags", list),
                info=rows.read_json(r[5], {}, r[0], "info", dict),
                status=MemoryStatus(r[6]),
                update_time=rows.when(r[7]),
            )
            for r in found
        ]

    def edges(self, scope: Scope, memory_id: str) -> list[Edge]:
        with self._read("reading edges") as conn:
            found = conn.execute(
                "SELECT src_id, dst_id, kind, create_time FROM edges "
                "WHERE cube_id = %s AND (src_id = %s OR dst_id = %s) ORDER BY create_time",
                (scope.cube_id, memory_id, memory_id),
            ).fetchall()
        return [
            Edge(src_id=r[0], dst_id=r[1], kind=EdgeKind(r[2]), create_time=rows.when(r[3]))
            for r in found
        ]

    def list_messages(
        self, scope: Scope, conversation_id: str | None, *, limit: int
    ) -> list[Message]:
        params: list[Any] = []
        where = scope_sql(scope, params)
        if conversation_id is not None:
            where += " AND m.conversation_id = %s"
            params.append(conversation_id)
        with self._read("reading messages") as conn:
            found = conn.execute(
                f"SELECT {MSG_SELECT} FROM messages m WHERE {where} "
                "ORDER BY m.pk DESC LIMIT %s",
                [*params, limit],
            ).fetchall()
        return [rows.message_from_row(r) for r in reversed(found)]

    def get_messages(self, scope: Scope, ids: Sequence[str]) -> list[Message]:
        if not ids:
            return []
        params: list[Any] = [list(ids)]
        where = scope_sql(scope, params)
        with self._read("reading messages") as conn:
            found = conn.execute(
                f"SELECT {MSG_SELECT} FROM messages m WHERE m.id = ANY(%s) AND {where}", params
            ).fetchall()
        by_id = {m.id: m for m in map(rows.message_from_row, found)}
        return [by_id[i] for i in ids if i in by_id]

    # --------------------------------------------------------------- retrieval
    def _live_stats(self, conn: psycopg.Connection, cube_id: str) -> tuple[int, int]:
        row = conn.execute(
            "SELECT live_count, lex_total FROM cube_stats WHERE cube_id = %s", (cube_id,)
        ).fetchone()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    def _common_lexemes(self, conn: psycopg.Connection) -> dict[str, float]:
        now = time.monotonic()
        if now - self._lexeme_stats[0] > lexical.STATS_TTL_S:
            self._lexeme_stats = (now, lexical.common_lexemes(conn))
        return self._lexeme_stats[1]

    def vector_search(
        self, scope: Scope, query: Vectors, k: int, flt: Node | None
    ) -> list[VectorHit]:
        q = np.asarray(query, np.float32).reshape(-1)
        dims = len(q)
        if k <= 0 or dims == 0:
            return []
        params: list[Any] = []
        where = f"{scope_sql(scope, params)} AND m.status = '{LIVE}' AND m.dims = {dims}"
        if flt is not None:
            where += " AND " + compile_filter(flt, "m", params)
        distance = f"(m.vec::vector({dims}) <=> %s::vector({dims}))"
        with self._read("searching vectors") as conn, conn.transaction():
            live, _ = self._live_stats(conn, scope.cube_id)
            if live <= EXACT_LIMIT:
                # "+ 0": an expression the HNSW index cannot serve, so the planner scans
                # the cube's rows exactly instead of approximating a small set
                order = f"{distance} + 0, m.pk"
            else:
                order = distance
                conn.execute(
                    "SELECT set_config('hnsw.ef_search', %s, true), "
                    "set_config('hnsw.iterative_scan', 'relaxed_order', true)",
                    (str(max(EF_SEARCH, min(k, 1000))),),
                )
            found = conn.execute(
                f"SELECT m.id, {distance} FROM memories m WHERE {where} "
                f"ORDER BY {order} LIMIT %s",
                [q, *params, q, k],
            ).fetchall()
        hits = [VectorHit(str(r[0]), 1.0 - float(r[1])) for r in found]
        hits.sort(key=lambda h: -h.score)  # relaxed order: exact order restored here
        return hits

    def text_search(self, scope: Scope, query: str, k: int, flt: Node | None) -> list[VectorHit]:
        terms = lexical.query_terms(query[:1000])
        if k <= 0 or not terms:
            return []
        with self._read("searching text") as conn:
            live, total = self._live_stats(conn, scope.cube_id)
            if not live:
                return []
            dfs = lexical.estimate_frequencies(
                conn, scope.cube_id, terms, self._common_lexemes(conn), live
            )
            plan = lexical.plan(terms, dfs, live, total)
            if plan is None:
                return []
            params: list[Any] = [plan.terms, plan.idfs]
            where = f"{scope_sql(scope, params)} AND m.status = '{LIVE}'"
            where += " AND m.lex @@ %s::tsquery"
            params.append(plan.match)
            if flt is not None:
                where += " AND " + compile_filter(flt, "m", params)
            found = conn.execute(lexical.SCORE_SQL.format(where=where), [
                *params, plan.candidates, plan.c1, plan.c2, k
            ]).fetchall()
        return [VectorHit(str(r[0]), float(r[1])) for r in found]

    def vectors(self, scope: Scope, memory_ids: Sequence[str]) -> Vectors:
        if not memory_ids:
            return np.zeros((0, 0), np.float32)
        params: list[Any] = [list(memory_ids)]
        with self._read("reading vectors") as conn:
            # binary: a vector arrives as 1.5 kB of float32, not 4 kB of text to parse
            found = conn.execute(
                f"SELECT m.id, m.vec FROM memories m WHERE m.id = ANY(%s) "
                f"AND {scope_sql(scope, params)}",
                params,
                binary=True,
            ).fetchall()
        by_id = {str(r[0]): as_array(r[1]) for r in found}
        missing = [i for i in memory_ids if i not in by_id]
        if missing:
            raise MemoryNotFound(f"no vectors for memories {missing[:5]}")
        return np.stack([by_id[i] for i in memory_ids])

    def record_usage(self, scope: Scope, usage: Sequence[tuple[str, int, float]]) -> int:
        if not usage:
            return 0
        changed = 0
        with self._tx("recording memory usage") as conn:
            for memory_id, uses, last_used in sorted(usage):
                params: list[Any] = [int(uses), float(last_used), memory_id]
                in_scope = scope_sql(scope, params)
                cur = conn.execute(
                    "UPDATE memories AS m SET usage_count = m.usage_count + %s, "
                    "last_used = greatest(coalesce(m.last_used, 0), %s) "
                    f"WHERE m.id = %s AND {in_scope}",
                    params,
                )
                changed += cur.rowcount
        return changed

    # ------------------------------------------------------------------- tasks
    def put_task(self, scope: Scope, task_id: str, status: str, error: str | None = None) -> None:
        with self._tx("recording a task") as conn:
            self._put_task(conn, scope, task_id, status, error, now=time.time())

    @staticmethod
    def _put_task(
        conn: psycopg.Connection,
        scope: Scope,
        task_id: str,
        status: str,
        error: str | None,
        *,
        now: float,
    ) -> None:
        conn.execute(
            "INSERT INTO tasks (task_id, cube_id, status, error, create_time, update_time) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (task_id) DO UPDATE SET "
            "status = excluded.status, error = excluded.error, "
            "update_time = excluded.update_time",
            (task_id, scope.cube_id, status, error, now, now),
        )

    def get_task(self, task_id: str) -> tuple[str, str, str | None] | None:
        with self._read("reading a task") as conn:
            row = conn.execute(
                "SELECT cube_id, status, error FROM tasks WHERE task_id = %s", (task_id,)
            ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]), row[2])

    # ------------------------------------------- change sets (fine mode, evolution)
    def apply(self, scope: Scope, changes: ChangeSet) -> None:
        if len(changes.add) != len(changes.vectors):
            raise ValueError("one vector per added memory is required")
        if not changes:
            return
        self._ensure_index(changes.vectors)
        for rev in changes.revise:
            if rev.vector is not None:
                self._ensure_index(np.asarray(rev.vector).reshape(1, -1))
        now = time.time()
        with self._tx("committing memory changes") as conn:
            delta = self._insert_memories(conn, scope, changes.add, changes.vectors)
            for rev in changes.revise:
                versions.revise(conn, scope, rev, now, delta, self.embed_model)
            for ret in changes.retire:
                versions.retire(conn, scope, ret, now, delta)
            versions.insert_edges(conn, scope, changes.edges)
            if changes.task is not None:
                self._put_task(conn, scope, *changes.task, now=now)
            self._bump(conn, scope.cube_id, delta)

    def superseded(
        self,
        scope: Scope,
        start: datetime | None,
        end: datetime | None,
        limit: int,
        flt: Node | None = None,
    ) -> list[tuple[MemoryItem, np.ndarray]]:
        params: list[Any] = []
        where = f"{scope_sql(scope, params)} AND m.archive_reason = %s"
        params.append(ArchiveReason.SUPERSEDED.value)
        if flt is not None:
            where += " AND " + compile_filter(flt, "m", params)
        if start is not None:  # still true when the window opens
            where += " AND m.valid_to > %s"
            params.append(start.timestamp())
        if end is not None:  # already true before it closes
            where += " AND coalesce(m.event_time, m.create_time) < %s"
            params.append(end.timestamp())
        with self._read("reading superseded memories") as conn:
            found = conn.execute(
                f"SELECT {MEM_SELECT}, m.vec FROM memories m WHERE {where} "
                "ORDER BY m.valid_to DESC LIMIT %s",
                [*params, limit],
            ).fetchall()
        return [
            (rows.memory_from_row(r[:-1]), as_array(r[-1])) for r in found
        ]

    # ------------------------------------- transfer (memos export / memos import)
    def export_cube(self, cube_id: str, *, vectors: bool = True) -> Iterator[Record]:
        from memos.store.postgres import transfer

        return transfer.export_cube(self, cube_id, vectors=vectors)

    def import_records(self, records: Records, *, embed: Embed | None) -> dict[str, int]:
        from memos.store.postgres import transfer

        return transfer.import_records(self, records, embed=embed)
