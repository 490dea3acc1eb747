"""The embedded durable queue: one SQLite file (``<data_dir>/queue.db``).

Why its own file: queue writes (a claim, a heartbeat, a completion per task)
are frequent and tiny; keeping them out of the memory store's file means they
never wait behind a long memory write, and the store's backups stay quiet.

Every state change is one ``BEGIN IMMEDIATE`` transaction, so several
processes on the same file (the server and ``memos worker``) never claim the
same task, and a committed submit survives ``kill -9`` (WAL; ``synchronous=
NORMAL`` is safe against process crashes, ``FULL`` also against power loss).

Layout:

* ``tasks``: one row per task; ``seq`` is the submit order.
* ``heads``: one row per ordering key with unfinished tasks, naming the key's
  oldest unfinished task and when it becomes claimable (``ready_at``: its
  ``available_at`` while waiting, its lease end while running). Only heads are
  ever claimed, which is what makes per-key order strict.
* ``turns``: users with unfinished work, ordered by when each was last served;
  a claim takes the oldest ready head of the least recently served user with
  one, which rotates fairly over users.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from memos.queue.base import (
    DEFAULT_BACKOFF_BASE_S,
    DEFAULT_BACKOFF_MAX_S,
    DEFAULT_LEASE_S,
    LeaseLost,
    Task,
    TaskLabel,
    TaskStatus,
    backoff_s,
    empty_counts,
    lease_for,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL,
    user_id TEXT NOT NULL,
    cube_id TEXT NOT NULL,
    ordering_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    error TEXT,
    created_at REAL NOT NULL,
    available_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    worker_id TEXT,
    claim_token TEXT,
    lease_s REAL NOT NULL DEFAULT 0,
    lease_until REAL
);
CREATE INDEX IF NOT EXISTS tasks_open_by_key ON tasks(ordering_key, seq)
    WHERE status IN ('queued', 'running', 'failed');
CREATE INDEX IF NOT EXISTS tasks_by_user ON tasks(user_id, status);
CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks(status);
CREATE TABLE IF NOT EXISTS heads (
    ordering_key TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    task_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    label TEXT NOT NULL,
    ready_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS heads_user_ready ON heads(user_id, ready_at);
CREATE INDEX IF NOT EXISTS heads_user_seq ON heads(user_id, seq);
CREATE TABLE IF NOT EXISTS turns (
    user_id TEXT PRIMARY KEY,
    turn INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS turns_order ON turns(turn);
"""

TASK_COLUMNS = (
    "task_id, label, user_id, cube_id, ordering_key, payload, status, attempts, max_attempts,"
    " error, created_at, available_at, updated_at, worker_id, claim_token, lease_s, lease_until"
)


def _row_to_task(row: sqlite3.Row) -> Task:
    return Task(
        task_id=row["task_id"],
        label=TaskLabel(row["label"]),
        user_id=row["user_id"],
        cube_id=row["cube_id"],
        ordering_key=row["ordering_key"],
        payload=json.loads(row["payload"]),
        status=TaskStatus(row["status"]),
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        error=row["error"],
        created_at=row["created_at"],
        available_at=row["available_at"],
        updated_at=row["updated_at"],
        worker_id=row["worker_id"],
        claim_token=row["claim_token"],
        lease_s=row["lease_s"],
        lease_until=row["lease_until"],
    )


class SQLiteQueue:
    """``TaskQueue`` on a SQLite file; safe to share between threads and processes."""

    def __init__(
        self,
        path: str | Path,
        *,
        leases: Mapping[TaskLabel, float] | None = None,
        default_lease_s: float = DEFAULT_LEASE_S,
        backoff_base_s: float = DEFAULT_BACKOFF_BASE_S,
        backoff_max_s: float = DEFAULT_BACKOFF_MAX_S,
        synchronous: str = "NORMAL",
    ) -> None:
        if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"unsupported synchronous mode {synchronous!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.leases = dict(leases or {})
        self.default_lease_s = default_lease_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        # One connection behind a lock: SQLite serialises writers anyway, and a
        # lock is cheaper than busy-waiting between this process's own threads.
        self._lock = threading.Lock()
        # Wakes this process's idle workers; ``_version`` counts notifications so
        # a submit landing between a thread's empty claim and its wait is not missed.
        self._work = threading.Condition()
        self._version = 0
        self._seen = threading.local()
        self._conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        with self._tx() as conn:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _notify(self) -> None:
        with self._work:
            self._version += 1
            self._work.notify_all()

    def _lease_s(self, label: TaskLabel) -> float:
        return lease_for(label, self.leases, self.default_lease_s)

    @staticmethod
    def _load(conn: sqlite3.Connection, task_id: str) -> Task | None:
        row = conn.execute(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE task_id = ?", (task_id,)
        ).fetchone()
        return _row_to_task(row) if row is not None else None

    @staticmethod
    def _held(conn: sqlite3.Connection, task: Task) -> Task:
        """The current record, provided ``task``'s claim still holds it."""
        current = SQLiteQueue._load(conn, task.task_id)
        if (
            current is None
            or current.status != TaskStatus.RUNNING
            or task.claim_token is None
            or current.claim_token != task.claim_token
        ):
            raise LeaseLost(f"task {task.task_id} is no longer leased to {task.worker_id}")
        return current

    @staticmethod
    def _advance(conn: sqlite3.Connection, ordering_key: str) -> None:
        """Point the key's head at its oldest unfinished task (or drop the head)."""
        row = conn.execute(
            "SELECT seq, task_id, user_id, label, status, available_at, lease_until FROM tasks"
            " WHERE ordering_key = ? AND status IN ('queued', 'running', 'failed')"
            " ORDER BY seq LIMIT 1",
            (ordering_key,),
        ).fetchone()
        if row is None:
            user = conn.execute(
                "DELETE FROM heads WHERE ordering_key = ? RETURNING user_id", (ordering_key,)
            ).fetchone()
            if (
                user is not None
                and not conn.execute(
                    "SELECT 1 FROM heads WHERE user_id = ? LIMIT 1", (user[0],)
                ).fetchone()
            ):
                # Only users with work keep a turn, so claims never wade through
                # idle users; one who comes back starts at the front again.
                conn.execute("DELETE FROM turns WHERE user_id = ?", (user[0],))
            return
        ready_at = row["lease_until"] if row["status"] == "running" else row["available_at"]
        conn.execute(
            "INSERT INTO heads (ordering_key, seq, task_id, user_id, label, ready_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (ordering_key) DO UPDATE SET"
            " seq = excluded.seq, task_id = excluded.task_id, user_id = excluded.user_id,"
            " label = excluded.label, ready_at = excluded.ready_at",
            (ordering_key, row["seq"], row["task_id"], row["user_id"], row["label"], ready_at),
        )

    # ---------------------------------------------------------------- the port
    def submit(self, task: Task) -> bool:
        now = time.time()
        with self._tx() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO tasks (task_id, label, user_id, cube_id, ordering_key,"
                " payload, status, attempts, max_attempts, error, created_at, available_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, 'queued', 0, ?, NULL, ?, ?, ?)",
                (
                    task.task_id,
                    str(task.label),
                    task.user_id,
                    task.cube_id,
                    task.ordering_key,
                    json.dumps(dict(task.payload)),
                    task.max_attempts,
                    now,
                    now,
                    now,
                ),
            )
            if cursor.rowcount != 1:
                return False
            # A new task is the newest of its key: it becomes the head only when
            # the key has no unfinished task.
            conn.execute(
                "INSERT INTO heads (ordering_key, seq, task_id, user_id, label, ready_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (ordering_key) DO NOTHING",
                (
                    task.ordering_key,
                    cursor.lastrowid,
                    task.task_id,
                    task.user_id,
                    str(task.label),
                    now,
                ),
            )
            conn.execute(
                "INSERT INTO turns (user_id, turn) VALUES (?, 0) ON CONFLICT (user_id) DO NOTHING",
                (task.user_id,),
            )
        self._notify()
        return True

    def claim(self, worker_id: str, labels: Iterable[TaskLabel] | None = None) -> Task | None:
        self._seen.version = self._version
        wanted = sorted({str(TaskLabel(label)) for label in labels}) if labels is not None else []
        if labels is not None and not wanted:
            return None
        label_sql = f" AND h.label IN ({', '.join('?' * len(wanted))})" if wanted else ""
        while True:
            now = time.time()
            with self._tx() as conn:
                # The least recently served user with a ready head, then that
                # user's oldest ready head: both walk an index and stop early.
                user = conn.execute(
                    "SELECT u.user_id FROM turns u WHERE EXISTS (SELECT 1 FROM heads h"
                    f" WHERE h.user_id = u.user_id AND h.ready_at <= ?{label_sql})"
                    " ORDER BY u.turn LIMIT 1",
                    (now, *wanted),
                ).fetchone()
                if user is None:
                    return None
                row = conn.execute(
                    "SELECT h.task_id FROM heads h INDEXED BY heads_user_seq WHERE h.user_id = ?"
                    f" AND h.ready_at <= ?{label_sql} ORDER BY h.seq LIMIT 1",
                    (user[0], now, *wanted),
                ).fetchone()
                if row is None:
                    return None
                task = self._load(conn, row["task_id"])
                assert task is not None, "a head always names an existing task"
                if task.status == TaskStatus.RUNNING and task.attempts >= task.max_attempts:
                    # Its worker died on every attempt: stop re-running a task that
                    # keeps killing workers, and let the key move on.
                    conn.execute(
                        "UPDATE tasks SET status = 'dead', error = ?, claim_token = NULL,"
                        " lease_until = NULL, updated_at = ? WHERE task_id = ?",
                        (
                            f"lease expired on attempt {task.attempts} of {task.max_attempts}"
                            f" (worker {task.worker_id} stopped heartbeating)",
                            now,
                            task.task_id,
                        ),
                    )
                    self._advance(conn, task.ordering_key)
                    continue
                lease_s = self._lease_s(task.label)
                token = f"{worker_id}:{uuid.uuid4().hex}"
                conn.execute(
                    "UPDATE tasks SET status = 'running', attempts = attempts + 1,"
                    " worker_id = ?, claim_token = ?, lease_s = ?, lease_until = ?,"
                    " updated_at = ? WHERE task_id = ?",
                    (worker_id, token, lease_s, now + lease_s, now, task.task_id),
                )
                conn.execute(
                    "UPDATE heads SET ready_at = ? WHERE ordering_key = ?",
                    (now + lease_s, task.ordering_key),
                )
                conn.execute(
                    "UPDATE turns SET turn = (SELECT MAX(turn) FROM turns) + 1 WHERE user_id = ?",
                    (task.user_id,),
                )
                return task.with_state(
                    status=TaskStatus.RUNNING,
                    attempts=task.attempts + 1,
                    worker_id=worker_id,
                    claim_token=token,
                    lease_s=lease_s,
                    lease_until=now + lease_s,
                    updated_at=now,
                )

    def extend(self, task: Task) -> None:
        now = time.time()
        with self._tx() as conn:
            current = self._held(conn, task)
            until = now + current.lease_s
            conn.execute(
                "UPDATE tasks SET lease_until = ?, updated_at = ? WHERE task_id = ?",
                (until, now, task.task_id),
            )
            conn.execute(
                "UPDATE heads SET ready_at = ? WHERE ordering_key = ?",
                (until, current.ordering_key),
            )

    def complete(self, task: Task) -> None:
        now = time.time()
        with self._tx() as conn:
            current = self._held(conn, task)
            conn.execute(
                "UPDATE tasks SET status = 'completed', error = NULL, claim_token = NULL,"
                " lease_until = NULL, updated_at = ? WHERE task_id = ?",
                (now, task.task_id),
            )
            self._advance(conn, current.ordering_key)
        self._notify()

    def fail(self, task: Task, error: str, *, retry: bool = True) -> TaskStatus:
        now = time.time()
        with self._tx() as conn:
            current = self._held(conn, task)
            if retry and current.attempts < current.max_attempts:
                status = TaskStatus.FAILED
                available_at = now + backoff_s(
                    current.attempts, self.backoff_base_s, self.backoff_max_s
                )
            else:
                status = TaskStatus.DEAD
                available_at = current.available_at
            conn.execute(
                "UPDATE tasks SET status = ?, error = ?, available_at = ?, claim_token = NULL,"
                " lease_until = NULL, updated_at = ? WHERE task_id = ?",
                (str(status), error, available_at, now, task.task_id),
            )
            self._advance(conn, current.ordering_key)
        self._notify()
        return status

    def status(self, task_id: str) -> Task | None:
        with self._lock:
            return self._load(self._conn, task_id)

    def counts(self, user_id: str | None = None) -> dict[TaskStatus, int]:
        sql = "SELECT status, COUNT(*) AS n FROM tasks"
        params: tuple[Any, ...] = ()
        if user_id is not None:
            sql += " WHERE user_id = ?"
            params = (user_id,)
        with self._lock:
            rows = self._conn.execute(sql + " GROUP BY status", params).fetchall()
        counts = empty_counts()
        for row in rows:
            counts[TaskStatus(row["status"])] = row["n"]
        return counts

    def pending_for(self, user_id: str) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT COUNT(*) FROM tasks WHERE user_id = ?"
                " AND status IN ('queued', 'running', 'failed')",
                (user_id,),
            ).fetchone()
        return int(row[0])

    def wait_for_work(self, timeout_s: float) -> None:
        # Wakes at once for this process's submits; other processes' submits
        # are seen at the next poll, ``timeout_s`` later at most.
        with self._work:
            if getattr(self._seen, "version", None) == self._version:
                self._work.wait(timeout_s)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
        self._notify()

    def __repr__(self) -> str:
        return f"SQLiteQueue({str(self.path)!r})"
