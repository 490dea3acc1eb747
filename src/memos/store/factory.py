"""Pick the store adapter from one URL (``store.url``, ``MEMOS_STORE_URL``).

* empty: the embedded SQLite file ``<data_dir>/memos.db``;
* ``sqlite:///relative.db`` or ``sqlite:////absolute.db`` (SQLAlchemy's
  convention): SQLite at that file;
* ``postgresql://...`` or ``postgres://...``: PostgreSQL with pgvector
  (``pip install 'memos[postgres]'``), shared by any number of API servers and
  ``memos worker`` processes.

``open_store`` also checks that the store was built with the configured
embedder, and ``check_processes`` that several processes on a shared store
also share their task queue.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from memos.errors import ConfigError
from memos.settings import Settings
from memos.store.base import MemoryStore

logger = logging.getLogger(__name__)

StoreKind = Literal["sqlite", "postgres"]

SQLITE_PREFIX = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql", "postgres")
POSTGRES_EXTRA = "pip install 'memos[postgres]'"


def store_kind(url: str | None) -> StoreKind:
    """Which adapter ``url`` names; ConfigError for anything else."""
    if not url:
        return "sqlite"
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in POSTGRES_SCHEMES:
        return "postgres"
    if scheme == "sqlite":
        if not url.startswith(SQLITE_PREFIX) or len(url) == len(SQLITE_PREFIX):
            raise ConfigError(
                f"MEMOS_STORE_URL: expected sqlite:///path/to/memos.db, got {redact(url)!r}"
            )
        return "sqlite"
    raise ConfigError(
        f"MEMOS_STORE_URL: unsupported store URL {redact(url)!r}; use postgresql://"
        "user:password@host:5432/dbname, sqlite:///path/to/memos.db, or leave it "
        "empty for SQLite in the data dir"
    )


def redact(url: str) -> str:
    """``url`` with its password replaced, for messages and logs."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # malformed (e.g. an unclosed IPv6 bracket): show no part of it
        return url.split("://", 1)[0] + "://..."
    if not password:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def describe(settings: Settings) -> str:
    """Where the store lives, password hidden: a file path or a database URL."""
    url = settings.store.url
    if store_kind(url) == "postgres":
        assert url is not None
        return redact(url)
    return str(sqlite_path(settings))


def sqlite_path(settings: Settings) -> Path:
    url = settings.store.url
    if not url:
        return settings.db_path
    return Path(url[len(SQLITE_PREFIX) :]).expanduser()


def build_store(settings: Settings, embed_model: str) -> MemoryStore:
    """The store ``settings.store`` names, opened (and migrated)."""
    st = settings.store
    if store_kind(st.url) == "sqlite":
        from memos.store.sqlite import SQLiteStore

        return SQLiteStore(sqlite_path(settings), embed_model=embed_model)
    assert st.url is not None
    try:
        from memos.store.postgres import PostgresStore
    except ImportError as exc:
        missing = exc.name or "psycopg"
        raise ConfigError(
            f"MEMOS_STORE_URL names a PostgreSQL store but {missing} is not installed: "
            f"{POSTGRES_EXTRA}"
        ) from None
    return PostgresStore(
        st.url,
        embed_model=embed_model,
        pool_min=st.pool_min,
        pool_max=st.pool_max,
        pool_timeout_s=st.pool_timeout_s,
    )


def open_store(settings: Settings, embed_model: str) -> MemoryStore:
    """``build_store``, then the embedder check: a store answers searches only with
    vectors of the embedder it was built with (recorded on first open)."""
    store = build_store(settings, embed_model)
    recorded = store.get_meta("embed_model")
    if recorded is None:
        store.set_meta("embed_model", embed_model)
    elif recorded != embed_model:
        store.close()
        fresh = (
            "a new database" if store_kind(settings.store.url) == "postgres" else "a new --data-dir"
        )
        raise ConfigError(
            f"{describe(settings)} was built with embedder {recorded!r} but "
            f"{embed_model!r} is configured; use the same embedder or {fresh}"
        )
    return store


def check_processes(settings: Settings, role: str) -> None:
    """Refuse several processes on a shared store with an unshared task queue.

    With PostgreSQL, API servers and workers may run anywhere, but the default
    queue is a SQLite file in each one's own data dir: a task queued by one
    server would be invisible to workers and to ``scheduler/wait`` elsewhere.
    So ``role`` (``memos serve --workers N``, ``memos worker``) needs a queue URL:
    Redis, or a SQLite queue file named explicitly (one host only).
    """
    if store_kind(settings.store.url) != "postgres" or settings.queue.url:
        return
    raise ConfigError(
        f"{role} with a PostgreSQL store needs a task queue every process shares: "
        "set MEMOS_QUEUE_URL=redis://host:6379/0 (servers and workers on several hosts), "
        "or MEMOS_QUEUE_URL=sqlite:////path/to/queue.db when every process runs on "
        "this host with that file"
    )
