"""SQLite adapter of the storage port.

One writer connection behind a lock (every write is one ``BEGIN IMMEDIATE``
transaction), one reader connection per thread, WAL so readers never block the
writer. Vectors live in ``memory_vectors`` and are served from an in-memory
per-cube matrix (see ``vector_index``) and BM25 from an in-memory per-cube
index (see ``lexical_index``); both are caches of the tables, rebuilt when
another process bumped the cube's generation and patched in place otherwise
(``loaders`` fills them). History-keeping row writes are in ``versions``; the
tenant predicate every query carries is ``sql.scope_sql``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

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
from memos.store.records import Embed, Record, Records
from memos.store.sqlite import loaders, versions
from memos.store.sqlite.filters import compile_filter
from memos.store.sqlite.lexical_index import CubeLexicon
from memos.store.sqlite.schema import apply_migrations
from memos.store.sqlite.sql import LIVE, blob, marks, scope_sql, translate
from memos.store.sqlite.vector_index import CubeVectors
from memos.text.lexical import lexical_text

logger = logging.getLogger(__name__)


class SQLiteStore:
    """The embedded default store (one file, no server)."""

    def __init__(self, path: Path | str, *, embed_model: str = "unknown") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.embed_model = embed_model
        self._local = threading.local()
        self._wlock = threading.Lock()
        self._cubes: dict[str, CubeVectors] = {}
        self._lexicons: dict[str, CubeLexicon] = {}
        self._cubes_lock = threading.Lock()
        with translate("opening the database"):
            self._writer = self._connect()
            self._writer.execute("PRAGMA journal_mode=WAL")
            apply_migrations(self._writer)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    @contextmanager
    def _read(self, action: str) -> Iterator[None]:
        """A read on this thread's reader; any failure discards that connection.

        A read that fails while it iterates a cursor would leave its statement
        open, and with it a WAL read snapshot: later reads on the connection
        (ownership checks before writes included) would see old data. A fresh
        connection after any failure guarantees every read sees the latest commit.
        """
        try:
            with translate(action):
                yield
        except BaseException:
            conn = getattr(self._local, "conn", None)
            self._local.conn = None
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            raise

    @contextmanager
    def _tx(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._wlock, translate(action):  # writer
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._wlock:
            self._writer.close()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # ------------------------------------------------------------ meta / cubes
    def get_meta(self, key: str) -> str | None:
        with self._read("reading metadata"):
            row = self._reader().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._tx("writing metadata") as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def cube_owner(self, cube_id: str) -> str | None:
        with self._read("reading a cube"):
            row = (
                self._reader()
                .execute("SELECT owner_id FROM cubes WHERE cube_id = ?", (cube_id,))
                .fetchone()
            )
        return None if row is None else str(row[0])

    def claim_cube(self, user_id: str, cube_id: str) -> None:
        if self.cube_owner(cube_id) == user_id:
            return
        with self._tx("creating a cube") as conn:
            self._claim(conn, user_id, cube_id)

    @staticmethod
    def _claim(conn: sqlite3.Connection, user_id: str, cube_id: str) -> None:
        """Create the cube for ``user_id`` or check it is theirs, inside the write lock."""
        conn.execute(
            "INSERT OR IGNORE INTO cubes (cube_id, owner_id, create_time) VALUES (?, ?, ?)",
            (cube_id, user_id, time.time()),
        )
        row = conn.execute("SELECT owner_id FROM cubes WHERE cube_id = ?", (cube_id,)).fetchone()
        if row is None or row[0] != user_id:
            raise PermissionDenied(f"cube {cube_name(cube_id)!r} belongs to another user")

    # ------------------------------------------------------------------ writes
    def _bump(self, conn: sqlite3.Connection, cube_id: str) -> int:
        row = conn.execute(
            "INSERT INTO cube_state (cube_id, generation) VALUES (?, 1) "
            "ON CONFLICT (cube_id) DO UPDATE SET generation = generation + 1 "
            "RETURNING generation",
            (cube_id,),
        ).fetchone()
        return int(row[0])

    def _after_write(self, cube_id: str, generation: int) -> tuple[Any, Any]:
        """The (vectors, lexicon) caches to patch for a write that produced ``generation``.

        A cache that missed a write (another process wrote in between) is dropped
        and rebuilt by the next search instead.
        """
        out: list[Any] = []
        with self._cubes_lock:
            for caches in (self._cubes, self._lexicons):
                cache = caches.get(cube_id)
                if cache is not None and cache.generation != generation - 1:
                    del caches[cube_id]
                    cache = None
                if cache is not None:
                    cache.generation = generation
                out.append(cache)
        return out[0], out[1]

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
        written: list[tuple[Ingest, list[int], int]] = []
        now = time.time()
        with self._tx("adding messages and memories") as conn:
            for part in batch:
                scope = part.scope
                if part.claim:
                    self._claim(conn, scope.user_id, scope.cube_id)
                conn.executemany(
                    f"INSERT INTO messages ({rows.MESSAGE_COLUMNS}) VALUES ({marks(16)})",
                    [rows.message_params(m) for m in part.messages],
                )
                rowids = [
                    self._insert_memory(conn, scope, item, vec)
                    for item, vec in zip(part.memories, part.vectors, strict=True)
                ]
                if part.task is not None:
                    self._put_task(conn, scope, *part.task, now=now)
                generation = self._bump(conn, scope.cube_id) if part.memories else -1
                written.append((part, rowids, generation))
        for part, rowids, generation in written:
            if not rowids:
                continue
            vec_cache, lex_cache = self._after_write(part.scope.cube_id, generation)
            if vec_cache is not None:
                vec_cache.append(rowids, np.asarray(part.vectors, np.float32))
            if lex_cache is not None:
                lex_cache.add(
                    rowids, [lexical_text(m.key, m.value, m.context) for m in part.memories]
                )

    def _insert_memory(
        self, conn: sqlite3.Connection, scope: Scope, item: MemoryItem, vec: Any
    ) -> int:
        """One memory row and its vector, in the caller's transaction; returns the rowid."""
        self._check_owned(scope, item)
        cur = conn.execute(
            f"INSERT INTO memories ({rows.MEMORY_COLUMNS}) "
            f"VALUES ({marks(rows.N_MEMORY_COLUMNS)})",
            rows.memory_params(item),
        )
        rowid = int(cur.lastrowid or 0)
        conn.execute(
            "INSERT INTO memory_vectors (rowid, cube_id, model, vec) VALUES (?, ?, ?, ?)",
            (rowid, scope.cube_id, self.embed_model, blob(vec)),
        )
        return rowid

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
        with self._tx("updating a memory") as conn:
            params: list[Any] = [memory_id]
            row = conn.execute(
                f"SELECT rowid, {rows.MEMORY_COLUMNS} FROM memories m "
                f"WHERE m.id = ? AND {scope_sql(scope, params, by_id=True)}",
                params,
            ).fetchone()
            if row is None:
                raise MemoryNotFound(f"memory {memory_id!r} not found")
            rowid, old = int(row[0]), rows.memory_from_row(row[1:])
            versions.archive_version(conn, old)
            new = old.model_copy(update=changes)
            new.version = old.version + 1
            new.update_time = rows.when(time.time())
            conn.execute(
                "UPDATE memories SET key = ?, value = ?, tags = ?, info = ?, confidence = ?, "
                "memory_type = ?, status = ?, version = ?, update_time = ? WHERE rowid = ?",
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
                    rowid,
                ),
            )
            if vector is not None:
                conn.execute(
                    "UPDATE memory_vectors SET vec = ?, model = ? WHERE rowid = ?",
                    (blob(vector), self.embed_model, rowid),
                )
            generation = self._bump(conn, scope.cube_id)
        vec_cache, lex_cache = self._after_write(scope.cube_id, generation)
        if old.status != MemoryStatus.ACTIVATED and new.status == MemoryStatus.ACTIVATED:
            self._drop_cache(scope.cube_id)
        elif new.status != MemoryStatus.ACTIVATED:
            for cache in (vec_cache, lex_cache):
                if cache is not None:
                    cache.remove([rowid])
        else:
            if vec_cache is not None and vector is not None:
                vec_cache.replace(rowid, np.asarray(vector, np.float32))
            if lex_cache is not None and ("key" in changes or "value" in changes):
                lex_cache.replace(rowid, lexical_text(new.key, new.value, new.context))
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
        changed: list[tuple[Scope, list[int], int]] = []
        with self._tx("changing memory status") as conn:
            for scope, memory_ids in batch:
                params: list[Any] = list(memory_ids)
                in_scope = scope_sql(scope, params, by_id=True)
                found = conn.execute(
                    f"SELECT rowid, {rows.MEMORY_COLUMNS} FROM memories m "
                    f"WHERE m.id IN ({marks(len(memory_ids))}) AND {in_scope} "
                    "AND m.status != ?",
                    [*params, str(status)],
                ).fetchall()
                for row in found:
                    versions.archive_version(conn, rows.memory_from_row(row[1:]))
                rowids = [int(r[0]) for r in found]
                conn.executemany(
                    "UPDATE memories SET status = ?, version = version + 1, update_time = ? "
                    "WHERE rowid = ?",
                    [(str(status), now, r) for r in rowids],
                )
                if rowids:
                    changed.append((scope, rowids, self._bump(conn, scope.cube_id)))
        for scope, rowids, generation in changed:
            vec_cache, lex_cache = self._after_write(scope.cube_id, generation)
            if status == MemoryStatus.ACTIVATED:
                self._drop_cache(scope.cube_id)
            else:
                for cache in (vec_cache, lex_cache):
                    if cache is not None:
                        cache.remove(rowids)
        return sum(len(rowids) for _, rowids, _ in changed)

    def delete_scope(self, scope: Scope) -> int:
        return self.delete_scopes([scope])

    def delete_scopes(self, scopes: Sequence[Scope]) -> int:
        batch: list[tuple[Scope, Sequence[str]]] = []
        for scope in scopes:
            params: list[Any] = []
            where = scope_sql(scope, params)
            with self._read("listing memories to delete"):
                found = (
                    self._reader()
                    .execute(
                        f"SELECT m.id FROM memories m WHERE {where} AND m.status = ?",
                        [*params, LIVE],
                    )
                    .fetchall()
                )
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
        params: list[Any] = list(memory_ids)
        sql = (
            f"SELECT {rows.MEMORY_COLUMNS} FROM memories m "
            f"WHERE m.id IN ({marks(len(memory_ids))}) AND {scope_sql(scope, params, by_id=True)}"
        )
        if not include_inactive:
            sql += " AND +m.status = ?"
            params.append(LIVE)
        with self._read("reading memories"):
            found = {
                item.id: item
                for item in map(rows.memory_from_row, self._reader().execute(sql, params))
            }
        return [found[i] for i in memory_ids if i in found]

    def list_memories(self, scope: Scope, flt: Node | None, *, offset: int, limit: int) -> Page:
        params: list[Any] = []
        where = f"{scope_sql(scope, params)} AND m.status = ?"
        params.append(LIVE)
        if flt is not None:
            where += " AND " + compile_filter(flt, "m", params)
        with self._read("listing memories"):
            conn = self._reader()
            total = int(
                conn.execute(f"SELECT count(*) FROM memories m WHERE {where}", params).fetchone()[0]
            )
            items = [
                rows.memory_from_row(r)
                for r in conn.execute(
                    f"SELECT {rows.MEMORY_COLUMNS} FROM memories m WHERE {where} "
                    "ORDER BY m.create_time DESC, m.rowid DESC LIMIT ? OFFSET ?",
                    [*params, limit, offset],
                )
            ]
        return Page(items=items, total=total)

    def count_memories(self, scope: Scope) -> int:
        params: list[Any] = []
        where = scope_sql(scope, params)
        with self._read("counting memories"):
            row = (
                self._reader()
                .execute(
                    f"SELECT count(*) FROM memories m WHERE {where} AND m.status = ?",
                    [*params, LIVE],
                )
                .fetchone()
            )
        return int(row[0])

    def existing_message_ids(
        self, scope: Scope, conversation_id: str | None, message_ids: Sequence[str]
    ) -> set[str]:
        if not message_ids:
            return set()
        params: list[Any] = []
        where = scope_sql(scope, params)
        where += " AND m.conversation_id IS ?"
        params.append(conversation_id)
        params.extend(message_ids)
        with self._read("checking message ids"):
            found = (
                self._reader()
                .execute(
                    f"SELECT m.message_id FROM messages m WHERE {where} "
                    f"AND m.message_id IN ({marks(len(message_ids))})",
                    params,
                )
                .fetchall()
            )
        return {str(r[0]) for r in found}

    def history(self, scope: Scope, memory_id: str) -> list[MemoryVersion]:
        if not self.get_memories(scope, [memory_id], include_inactive=True):
            raise MemoryNotFound(f"memory {memory_id!r} not found")
        with self._read("reading history"):
            found = (
                self._reader()
                .execute(
                    "SELECT memory_id, version, key, value, tags, info, status, update_time "
                    "FROM memory_versions WHERE memory_id = ? AND cube_id = ? ORDER BY version",
                    (memory_id, scope.cube_id),
                )
                .fetchall()
            )
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
        with self._read("reading edges"):
            found = (
                self._reader()
                .execute(
                    "SELECT src_id, dst_id, kind, create_time FROM edges "
                    "WHERE cube_id = ? AND (src_id = ? OR dst_id = ?) ORDER BY create_time",
                    (scope.cube_id, memory_id, memory_id),
                )
                .fetchall()
            )
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
            where += " AND m.conversation_id = ?"
            params.append(conversation_id)
        with self._read("reading messages"):
            found = (
                self._reader()
                .execute(
                    f"SELECT {rows.MESSAGE_COLUMNS} FROM messages m WHERE {where} "
                    "ORDER BY m.rowid DESC LIMIT ?",
                    [*params, limit],
                )
                .fetchall()
            )
        return [rows.message_from_row(r) for r in reversed(found)]

    def get_messages(self, scope: Scope, ids: Sequence[str]) -> list[Message]:
        if not ids:
            return []
        params: list[Any] = list(ids)
        where = scope_sql(scope, params, by_id=True)
        with self._read("reading messages"):
            found = self._reader().execute(
                f"SELECT {rows.MESSAGE_COLUMNS} FROM messages m "
                f"WHERE m.id IN ({marks(len(ids))}) AND {where}",
                params,
            )
            by_id = {m.id: m for m in map(rows.message_from_row, found)}
        return [by_id[i] for i in ids if i in by_id]

    # --------------------------------------------------------------- retrieval
    def _drop_cache(self, cube_id: str) -> None:
        with self._cubes_lock:
            self._cubes.pop(cube_id, None)
            self._lexicons.pop(cube_id, None)

    def _generation(self, cube_id: str) -> int:
        row = (
            self._reader()
            .execute("SELECT generation FROM cube_state WHERE cube_id = ?", (cube_id,))
            .fetchone()
        )
        return 0 if row is None else int(row[0])

    def _cube_lexicon(self, cube_id: str) -> CubeLexicon:
        generation = self._generation(cube_id)
        with self._cubes_lock:
            cache = self._lexicons.get(cube_id)
            if cache is not None and cache.generation == generation:
                return cache
        fresh = loaders.load_lexicon(self._reader(), cube_id, generation)
        with self._cubes_lock:
            self._lexicons[cube_id] = fresh
        return fresh

    def _cube_vectors(self, cube_id: str, dim: int) -> CubeVectors:
        conn = self._reader()
        generation = self._generation(cube_id)
        with self._cubes_lock:
            cache = self._cubes.get(cube_id)
            if cache is not None and cache.generation == generation:
                return cache
        # (re)load outside the lock; a concurrent loader just does the same work
        fresh = loaders.load_vectors(conn, cube_id, dim, generation)
        with self._cubes_lock:
            self._cubes[cube_id] = fresh
        return fresh

    def _allowed_rowids(self, scope: Scope, flt: Node | None) -> np.ndarray | None:
        if flt is None and scope.agent_id is None and scope.app_id is None:
            return None
        params: list[Any] = []
        where = f"{scope_sql(scope, params)} AND m.status = ?"
        params.append(LIVE)
        if flt is not None:
            where += " AND " + compile_filter(flt, "m", params)
        found = (
            self._reader()
            .execute(f"SELECT m.rowid FROM memories m WHERE {where} ORDER BY m.rowid", params)
            .fetchall()
        )
        return np.fromiter((r[0] for r in found), np.int64, len(found))

    def _ids_for(self, rowids: Sequence[int]) -> dict[int, str]:
        if not rowids:
            return {}
        found = self._reader().execute(
            f"SELECT rowid, id FROM memories WHERE rowid IN ({marks(len(rowids))})",
            list(rowids),
        )
        return {int(r[0]): str(r[1]) for r in found}

    def vector_search(
        self, scope: Scope, query: Vectors, k: int, flt: Node | None
    ) -> list[VectorHit]:
        with self._read("searching vectors"):
            cache = self._cube_vectors(scope.cube_id, int(query.shape[-1]))
            allowed = self._allowed_rowids(scope, flt)
            hits = cache.search(np.asarray(query, np.float32), k, allowed)
            names = self._ids_for([h[0] for h in hits])
        return [VectorHit(names[r], s) for r, s in hits if r in names]

    def text_search(self, scope: Scope, query: str, k: int, flt: Node | None) -> list[VectorHit]:
        with self._read("searching text"):
            lexicon = self._cube_lexicon(scope.cube_id)
            allowed = self._allowed_rowids(scope, flt)
            # long queries: the first 1,000 characters carry the keywords that matter
            hits = lexicon.search(query[:1000], k, allowed)
            names = self._ids_for([h[0] for h in hits])
        return [VectorHit(names[r], s) for r, s in hits if r in names]

    def vectors(self, scope: Scope, memory_ids: Sequence[str]) -> Vectors:
        if not memory_ids:
            return np.zeros((0, 0), np.float32)
        params: list[Any] = list(memory_ids)
        in_scope = scope_sql(scope, params, by_id=True)
        with self._read("reading vectors"):
            found = (
                self._reader()
                .execute(
                    "SELECT m.id, v.vec FROM memories m "
                    "JOIN memory_vectors v ON v.rowid = m.rowid "
                    f"WHERE m.id IN ({marks(len(memory_ids))}) AND {in_scope}",
                    params,
                )
                .fetchall()
            )
        by_id = {str(r[0]): np.frombuffer(r[1], np.float32) for r in found}
        missing = [i for i in memory_ids if i not in by_id]
        if missing:
            raise MemoryNotFound(f"no vectors for memories {missing[:5]}")
        return np.stack([by_id[i] for i in memory_ids])

    def record_usage(self, scope: Scope, usage: Sequence[tuple[str, int, float]]) -> int:
        if not usage:
            return 0
        changed = 0
        with self._tx("recording memory usage") as conn:
            for memory_id, uses, last_used in usage:
                params: list[Any] = [int(uses), float(last_used), memory_id]
                in_scope = scope_sql(scope, params, by_id=True)
                changed += conn.execute(
                    "UPDATE memories AS m SET usage_count = usage_count + ?, "
                    "last_used = max(coalesce(last_used, 0), ?) "
                    f"WHERE m.id = ? AND {in_scope}",
                    params,
                ).rowcount
        return changed

    # ------------------------------------------------------------------- tasks
    def put_task(self, scope: Scope, task_id: str, status: str, error: str | None = None) -> None:
        with self._tx("recording a task") as conn:
            self._put_task(conn, scope, task_id, status, error, now=time.time())

    @staticmethod
    def _put_task(
        conn: sqlite3.Connection,
        scope: Scope,
        task_id: str,
        status: str,
        error: str | None,
        *,
        now: float,
    ) -> None:
        conn.execute(
            "INSERT INTO tasks (task_id, cube_id, status, error, create_time, update_time) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (task_id) DO UPDATE SET "
            "status = excluded.status, error = excluded.error, "
            "update_time = excluded.update_time",
            (task_id, scope.cube_id, status, error, now, now),
        )

    def get_task(self, task_id: str) -> tuple[str, str, str | None] | None:
        with self._read("reading a task"):
            row = (
                self._reader()
                .execute("SELECT cube_id, status, error FROM tasks WHERE task_id = ?", (task_id,))
                .fetchone()
            )
        return None if row is None else (str(row[0]), str(row[1]), row[2])

    # ------------------------------------------- change sets (fine mode, evolution)
    def apply(self, scope: Scope, changes: ChangeSet) -> None:
        if len(changes.add) != len(changes.vectors):
            raise ValueError("one vector per added memory is required")
        if not changes:
            return
        now = time.time()
        live_rows: list[int] = []
        live_items: list[MemoryItem] = []
        live_vecs: list[np.ndarray] = []
        revised: list[tuple[int, MemoryItem, Vectors | None]] = []
        retired: list[int] = []
        with self._tx("committing memory changes") as conn:
            for item, vec in zip(changes.add, changes.vectors, strict=True):
                rowid = self._insert_memory(conn, scope, item, vec)
                if item.status == MemoryStatus.ACTIVATED:
                    live_rows.append(rowid)
                    live_items.append(item)
                    live_vecs.append(np.asarray(vec, np.float32))
            for rev in changes.revise:
                rowid, new = versions.revise(conn, scope, rev, now, self.embed_model)
                revised.append((rowid, new, rev.vector))
            for ret in changes.retire:
                gone = versions.retire(conn, scope, ret, now)
                if gone is not None:
                    retired.append(gone)
            versions.insert_edges(conn, scope, changes.edges)
            if changes.task is not None:
                self._put_task(conn, scope, *changes.task, now=now)
            generation = self._bump(conn, scope.cube_id)
        vec_cache, lex_cache = self._after_write(scope.cube_id, generation)
        if vec_cache is not None:
            if live_rows:
                vec_cache.append(live_rows, np.stack(live_vecs))
            for rowid, _, vector in revised:
                if vector is not None:
                    vec_cache.replace(rowid, np.asarray(vector, np.float32))
            vec_cache.remove(retired)
        if lex_cache is not None:
            if live_rows:
                lex_cache.add(
                    live_rows, [lexical_text(m.key, m.value, m.context) for m in live_items]
                )
            for rowid, new, _ in revised:
                lex_cache.replace(rowid, lexical_text(new.key, new.value, new.context))
            lex_cache.remove(retired)

    def superseded(
        self,
        scope: Scope,
        start: datetime | None,
        end: datetime | None,
        limit: int,
        flt: Node | None = None,
    ) -> list[tuple[MemoryItem, np.ndarray]]:
        params: list[Any] = []
        where = f"{scope_sql(scope, params)} AND m.archive_reason = ?"
        params.append(ArchiveReason.SUPERSEDED.value)
        if flt is not None:
            where += " AND " + compile_filter(flt, "m", params)
        if start is not None:  # still true when the window opens
            where += " AND m.valid_to > ?"
            params.append(start.timestamp())
        if end is not None:  # already true before it closes
            where += " AND coalesce(m.event_time, m.create_time) < ?"
            params.append(end.timestamp())
        with self._read("reading superseded memories"):
            found = (
                self._reader()
                .execute(
                    f"SELECT {rows.qualified('m')}, v.vec FROM memories m "
                    f"JOIN memory_vectors v ON v.rowid = m.rowid WHERE {where} "
                    "ORDER BY m.valid_to DESC LIMIT ?",
                    [*params, limit],
                )
                .fetchall()
            )
        return [(rows.memory_from_row(r[:-1]), np.frombuffer(r[-1], np.float32)) for r in found]

    # ------------------------------------- transfer (memos export / memos import)
    def cubes(self) -> list[tuple[str, str]]:
        from memos.store.sqlite import transfer

        return transfer.cubes(self)

    def export_cube(self, cube_id: str, *, vectors: bool = True) -> Iterator[Record]:
        from memos.store.sqlite import transfer

        return transfer.export_cube(self, cube_id, vectors=vectors)

    def import_records(self, records: Records, *, embed: Embed | None) -> dict[str, int]:
        from memos.store.sqlite import transfer

        return transfer.import_records(self, records, embed=embed)
