"""Versioned migrations of the PostgreSQL schema, each with its way back.

Every migration is a pair of SQL scripts run in one transaction together with
the row that records it, under an advisory lock, so several servers starting
at once apply each step exactly once. ``migrate(conn, target)`` moves the
schema to any version, up or down (``memos db migrate --to NAME|base``).

Column types mirror the SQLite adapter (times as epoch seconds, JSON kept as
written in ``json`` columns) so an export from either store is byte-identical
and the row conversions are shared. Vectors live in an untyped ``vector``
column with their dimension beside them: the HNSW index is a partial
expression index per dimension (``ensure_vector_index``), created when the
first vector of that size arrives.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg

LOCK_KEY = 0x6D656D6F73  # "memos": the advisory lock serialising migrations


@dataclass(frozen=True)
class Migration:
    name: str
    up: str
    down: str


MIGRATIONS: list[Migration] = [
    Migration(
        "0001_core",
        up="""
        CREATE EXTENSION IF NOT EXISTS vector;
        CREATE EXTENSION IF NOT EXISTS btree_gin;
        CREATE TABLE meta (
            key text PRIMARY KEY,
            value text NOT NULL
        );
        CREATE TABLE cubes (
            cube_id text PRIMARY KEY,
            owner_id text NOT NULL,
            create_time double precision NOT NULL
        );
        CREATE TABLE cube_stats (
            cube_id text PRIMARY KEY,
            live_count bigint NOT NULL DEFAULT 0,
            lex_total bigint NOT NULL DEFAULT 0
        );
        CREATE TABLE memories (
            pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id text NOT NULL UNIQUE,
            cube_id text NOT NULL,
            user_id text NOT NULL,
            agent_id text,
            app_id text,
            conversation_id text,
            memory_type text NOT NULL,
            key text NOT NULL,
            value text NOT NULL,
            tags json NOT NULL DEFAULT '[]',
            info json NOT NULL DEFAULT '{}',
            status text NOT NULL,
            confidence double precision NOT NULL,
            sources json NOT NULL DEFAULT '[]',
            mode text NOT NULL,
            version integer NOT NULL DEFAULT 1,
            event_time double precision,
            create_time double precision NOT NULL,
            update_time double precision NOT NULL,
            context text NOT NULL DEFAULT '',
            archive_reason text,
            superseded_by text,
            valid_to double precision,
            usage_count bigint NOT NULL DEFAULT 0,
            last_used double precision,
            model text NOT NULL,
            dims integer NOT NULL,
            vec vector NOT NULL,
            lex tsvector NOT NULL,
            lex_len integer NOT NULL
        );
        -- rows stay whole up to a page: a 384-dim vector alone is 1.5 kB, and with the
        -- text and its tsvector a row passes the default 2 kB TOAST target, which made
        -- every distance and every keyword match fetch TOAST chunks (6x slower scans)
        ALTER TABLE memories ALTER COLUMN vec SET STORAGE MAIN;
        ALTER TABLE memories SET (toast_tuple_target = 8160);
        CREATE INDEX memories_scope ON memories (cube_id, status, pk);
        CREATE INDEX memories_conv ON memories (cube_id, conversation_id);
        CREATE INDEX memories_lex ON memories USING gin (cube_id, lex) WHERE status = 'activated';
        CREATE INDEX memories_superseded ON memories (cube_id, valid_to)
            WHERE archive_reason = 'superseded';
        CREATE TABLE memory_versions (
            memory_id text NOT NULL,
            cube_id text NOT NULL,
            version integer NOT NULL,
            key text NOT NULL,
            value text NOT NULL,
            tags json NOT NULL,
            info json NOT NULL,
            status text NOT NULL,
            update_time double precision NOT NULL,
            PRIMARY KEY (memory_id, version)
        );
        CREATE TABLE edges (
            cube_id text NOT NULL,
            src_id text NOT NULL,
            dst_id text NOT NULL,
            kind text NOT NULL,
            create_time double precision NOT NULL,
            PRIMARY KEY (src_id, dst_id, kind)
        );
        CREATE INDEX edges_dst ON edges (dst_id);
        CREATE TABLE messages (
            pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id text NOT NULL UNIQUE,
            message_id text,
            cube_id text NOT NULL,
            user_id text NOT NULL,
            conversation_id text,
            agent_id text,
            app_id text,
            role text NOT NULL,
            content text NOT NULL,
            parts json,
            tool_calls json,
            tool_call_id text,
            chat_time text,
            event_time double precision,
            create_time double precision NOT NULL,
            update_time double precision NOT NULL
        );
        CREATE INDEX messages_conv ON messages (cube_id, conversation_id, pk);
        CREATE INDEX messages_client_id ON messages (cube_id, message_id)
            WHERE message_id IS NOT NULL;
        CREATE TABLE tasks (
            task_id text PRIMARY KEY,
            cube_id text NOT NULL,
            status text NOT NULL,
            error text,
            create_time double precision NOT NULL,
            update_time double precision NOT NULL
        );
        """,
        # The extension stays: other schemas of the database may use it.
        down="""
        DROP TABLE tasks;
        DROP TABLE messages;
        DROP TABLE edges;
        DROP TABLE memory_versions;
        DROP TABLE memories;
        DROP TABLE cube_stats;
        DROP TABLE cubes;
        DROP TABLE meta;
        """,
    ),
]

MIGRATIONS.append(
    Migration(
        "0002_filter_indexes",
        # The filters search applies itself (product search's preference and tool
        # buckets by memory_type, agent scopes): with these the planner reads the
        # few matching rows instead of walking a large cube's HNSW graph or its
        # keyword matches for them (1M memories: /product/search 3.5 s -> 110 ms).
        up="""
        CREATE INDEX memories_type ON memories (cube_id, memory_type) WHERE status = 'activated';
        CREATE INDEX memories_agent ON memories (cube_id, agent_id) WHERE status = 'activated'
        """,
        down="""
        DROP INDEX memories_agent;
        DROP INDEX memories_type
        """,
    )
)

MIGRATIONS.append(
    Migration(
        "0003_cube_indexes",
        # per-cube reads of versions, edges and tasks (memos export --all)
        up="""
        CREATE INDEX memory_versions_cube ON memory_versions (cube_id);
        CREATE INDEX edges_cube ON edges (cube_id);
        CREATE INDEX tasks_cube ON tasks (cube_id)
        """,
        down="""
        DROP INDEX tasks_cube;
        DROP INDEX edges_cube;
        DROP INDEX memory_versions_cube
        """,
    )
)

# Tables keyed by cube id (fixed names, formatted into the migration's SQL).
_CUBE_TABLES = ("memories", "memory_versions", "edges", "messages", "tasks", "cube_stats")
_TO_OWNED = (
    "UPDATE {t} SET cube_id = c.owner_id || chr(31) || c.cube_id FROM cubes c "
    "WHERE c.cube_id = {t}.cube_id AND c.cube_id != c.owner_id"
)
_FROM_OWNED = (
    "UPDATE {t} SET cube_id = substr(cube_id, strpos(cube_id, chr(31)) + 1) "
    "WHERE strpos(cube_id, chr(31)) > 0"
)

MIGRATIONS.append(
    Migration(
        "0004_owned_cube_keys",
        # Named cubes move into their owner's namespace (domain.models.cube_key): the
        # cube "carol" that bob created becomes "bob\x1fcarol", which gives the id
        # "carol" back to the user carol's default cube. The cubes table goes last.
        up=";\n".join(
            [*(_TO_OWNED.format(t=t) for t in _CUBE_TABLES),
             "UPDATE cubes SET cube_id = owner_id || chr(31) || cube_id "
             "WHERE cube_id != owner_id"]
        ),
        down=";\n".join(_FROM_OWNED.format(t=t) for t in (*_CUBE_TABLES, "cubes")),
    )
)

HEAD = MIGRATIONS[-1].name


def _ensure_table(conn: psycopg.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _migrations "
        "(name text PRIMARY KEY, applied_at double precision NOT NULL)"
    )


def applied(conn: psycopg.Connection) -> list[str]:
    """Names of the applied migrations, oldest first."""
    _ensure_table(conn)
    done = {str(r[0]) for r in conn.execute("SELECT name FROM _migrations").fetchall()}
    return [m.name for m in MIGRATIONS if m.name in done]


def migrate(conn: psycopg.Connection, target: str | None = HEAD) -> list[str]:
    """Move the schema to ``target`` (None: before the first migration).

    Returns the steps taken, e.g. ``["0001_core"]`` or ``["-0001_core"]``.
    ``conn`` must be in autocommit mode; each step is its own transaction.
    """
    names = [m.name for m in MIGRATIONS]
    if target is not None and target not in names:
        raise ValueError(f"unknown migration {target!r}; known: {names}")
    want = 0 if target is None else names.index(target) + 1
    steps: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        _ensure_table(conn)
    # one transaction per step; the advisory lock is re-taken inside each
    while True:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            have = len(applied(conn))
            if have == want:
                break
            if have < want:
                step = MIGRATIONS[have]
                _run(conn, step.up)
                conn.execute(
                    "INSERT INTO _migrations (name, applied_at) VALUES (%s, %s)",
                    (step.name, time.time()),
                )
                steps.append(step.name)
            else:
                step = MIGRATIONS[have - 1]
                _run(conn, step.down)
                conn.execute("DELETE FROM _migrations WHERE name = %s", (step.name,))
                steps.append("-" + step.name)
    return steps


def ensure_vector_index(conn: psycopg.Connection, dims: int) -> None:
    """The HNSW index for vectors of ``dims`` dimensions (idempotent, serialised)."""
    dims = int(dims)  # formatted into DDL (which takes no parameters): an int only
    if not 0 < dims <= 16000:
        raise ValueError(f"unsupported vector dimension {dims}")
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY + dims,))
        conn.execute(
            f"CREATE INDEX IF NOT EXISTS memories_vec_{dims} ON memories "
            f"USING hnsw ((vec::vector({dims})) vector_cosine_ops) "
            f"WHERE dims = {dims} AND status = 'activated'"
        )


def _run(conn: psycopg.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)
