"""Durable background tasks: the queue port, its two adapters and the worker.

``build_queue`` picks the adapter from one string, so settings need a single
``MEMOS_QUEUE_URL``: a data directory or ``sqlite:///file.db`` gives the
embedded SQLite queue, ``redis://...`` the Redis Streams queue that several
``memos worker`` processes can share.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memos.queue.base import (
    LeaseLost,
    NonRetryable,
    Task,
    TaskLabel,
    TaskQueue,
    TaskStatus,
)
from memos.queue.sqlite import SQLiteQueue
from memos.queue.worker import Handler, Worker

__all__ = [
    "Handler",
    "LeaseLost",
    "NonRetryable",
    "SQLiteQueue",
    "Task",
    "TaskLabel",
    "TaskQueue",
    "TaskStatus",
    "Worker",
    "build_queue",
]

QUEUE_FILE = "queue.db"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def build_queue(target: str | Path, **options: Any) -> TaskQueue:
    """A queue for ``target``; ``options`` go to the adapter (leases, backoff...).

    * ``redis://host:6379/0`` (or ``rediss://``, ``unix://``): ``RedisStreamsQueue``.
    * ``sqlite:///relative.db`` or ``sqlite:////absolute.db`` (SQLAlchemy's
      convention): ``SQLiteQueue`` on that file.
    * anything else is a data directory: ``SQLiteQueue`` on ``<dir>/queue.db``.
    """
    text = str(target)
    if text.startswith(REDIS_SCHEMES):
        from memos.queue.redis_streams import RedisStreamsQueue

        return RedisStreamsQueue(text, **options)
    if text.startswith("sqlite:"):
        if not text.startswith("sqlite:///") or len(text) == len("sqlite:///"):
            raise ValueError(f"expected sqlite:///path/to/queue.db, got {text!r}")
        return SQLiteQueue(Path(text[len("sqlite:///") :]), **options)
    if "://" in text:
        raise ValueError(f"unsupported queue URL {text!r}: use a data directory, sqlite or redis")
    return SQLiteQueue(Path(text).expanduser() / QUEUE_FILE, **options)
