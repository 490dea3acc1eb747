"""Ordered, named migrations; each runs in the transaction that records it."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(name: str) -> Callable[[Migration], Migration]:
    def register(fn: Migration) -> Migration:
        MIGRATIONS.append((name, fn))
        return fn

    return register


@migration("0001_core")
def _core(conn: sqlite3.Connection) -> None:
    _run_script(
        conn,
        """
        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE cubes (
            cube_id TEXT PRIMARY KEY,
            owner_id TEXT NOT NULL,
            create_time REAL NOT NULL
        );
        CREATE TABLE cube_state (
            cube_id TEXT PRIMARY KEY,
            generation INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE memories (
            rowid INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            cube_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            agent_id TEXT,
            app_id TEXT,
            conversation_id TEXT,
            memory_type TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            tags TEXT NOT NULL DEFAULT '[]',
            info TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL,
            confidence REAL NOT NULL,
            sources TEXT NOT NULL DEFAULT '[]',
            mode TEXT NOT NULL,
            version INTEGER NOT NULL DEFAULT 1,
            event_time REAL,
            create_time REAL NOT NULL,
            update_time REAL NOT NULL
        );
        CREATE INDEX memories_scope ON memories (cube_id, status, rowid);
        CREATE INDEX memories_conv ON memories (cube_id, conversation_id);
        CREATE TABLE memory_vectors (
            rowid INTEGER PRIMARY KEY,
            cube_id TEXT NOT NULL,
            model TEXT NOT NULL,
            vec BLOB NOT NULL
        );
        CREATE INDEX memory_vectors_cube ON memory_vectors (cube_id, rowid);
        CREATE TABLE memory_versions (
            memory_id TEXT NOT NULL,
            cube_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            tags TEXT NOT NULL,
            info TEXT NOT NULL,
            status TEXT NOT NULL,
            update_time REAL NOT NULL,
            PRIMARY KEY (memory_id, version)
        );
        CREATE TABLE edges (
            cube_id TEXT NOT NULL,
            src_id TEXT NOT NULL,
            dst_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            create_time REAL NOT NULL,
            PRIMARY KEY (src_id, dst_id, kind)
        );
        CREATE INDEX edges_dst ON edges (dst_id);
        CREATE TABLE messages (
            rowid INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            message_id TEXT,
            cube_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            conversation_id TEXT,
            agent_id TEXT,
            app_id TEXT,
            role TEXT NOT NULL,
            content TEXT NOT NULL,
            parts TEXT,
            tool_calls TEXT,
            tool_call_id TEXT,
            chat_time TEXT,
            event_time REAL,
            create_time REAL NOT NULL,
            update_time REAL NOT NULL
        );
        CREATE INDEX messages_conv ON messages (cube_id, conversation_id, rowid);
        CREATE INDEX messages_client_id ON messages (cube_id, message_id)
            WHERE message_id IS NOT NULL;
        CREATE TABLE tasks (
            task_id TEXT PRIMARY KEY,
            cube_id TEXT NOT NULL,
            status TEXT NOT NULL,
            error TEXT,
            create_time REAL NOT NULL,
            update_time REAL NOT NULL
        );
        """,
    )


@migration("0002_memory_context")
def _context(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE memories ADD COLUMN context TEXT NOT NULL DEFAULT ''")


@migration("0003_evolution")
def _evolution(conn: sqlite3.Connection) -> None:
    """Why and when evolution archived a memory; superseded states stay findable by time."""
    _run_script(
        conn,
        """
        ALTER TABLE memories ADD COLUMN archive_reason TEXT;
        ALTER TABLE memories ADD COLUMN superseded_by TEXT;
        ALTER TABLE memories ADD COLUMN valid_to REAL;
        CREATE INDEX memories_superseded ON memories (cube_id, valid_to)
            WHERE archive_reason = 'superseded'
        """,
    )


@migration("0004_usage")
def _usage(conn: sqlite3.Connection) -> None:
    """How often search returned a memory and when last (working memory's usage)."""
    _run_script(
        conn,
        """
        ALTER TABLE memories ADD COLUMN usage_count INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE memories ADD COLUMN last_used REAL
        """,
    )


@migration("0005_cube_indexes")
def _cube_indexes(conn: sqlite3.Connection) -> None:
    """Per-cube reads of versions, edges and tasks (export of a whole store)."""
    _run_script(
        conn,
        """
        CREATE INDEX memory_versions_cube ON memory_versions (cube_id);
        CREATE INDEX edges_cube ON edges (cube_id);
        CREATE INDEX tasks_cube ON tasks (cube_id)
        """,
    )


_CUBE_TABLES = (
    "memories", "memory_vectors", "memory_versions", "edges", "messages", "tasks", "cube_state"
)


@migration("0006_owned_cube_keys")
def _owned_cube_keys(conn: sqlite3.Connection) -> None:
    """Named cubes move into their owner's namespace (``domain.models.cube_key``).

    A cube named ``carol`` that bob created is stored as ``bob\x1fcarol`` from now
    on, which gives the id ``carol`` back to the user carol's default cube.
    """
    moved = "SELECT cube_id FROM cubes WHERE cube_id != owner_id"
    for table in _CUBE_TABLES:  # fixed names; every value is SQL, not input
        conn.execute(
            f"UPDATE {table} SET cube_id = (SELECT c.owner_id || char(31) || c.cube_id "
            f"FROM cubes c WHERE c.cube_id = {table}.cube_id) WHERE cube_id IN ({moved})"
        )
    conn.execute(
        "UPDATE cubes SET cube_id = owner_id || char(31) || cube_id WHERE cube_id != owner_id"
    )


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    # executescript() would COMMIT the surrounding migration transaction.
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def apply_migrations(conn: sqlite3.Connection) -> list[str]:
    """Apply pending migrations; returns the names applied."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    applied: list[str] = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        # another process may have applied it while this one waited for the lock
        if conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone():
            conn.execute("ROLLBACK")
            continue
        try:
            fn(conn)
            conn.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (name, time.time())
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied
