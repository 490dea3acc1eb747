"""Helpers shared by the queue tests and their child processes.

A store URL names a test's backing store: ``sqlite:///<file>`` or
``redis://host:port/db#<key prefix>``.
"""

from __future__ import annotations

import os
from typing import Any

from memos.queue import SQLiteQueue, TaskQueue

REDIS_URL = os.environ.get("MEMOS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def open_queue(store_url: str, **options: Any) -> TaskQueue:
    if store_url.startswith("sqlite:///"):
        return SQLiteQueue(store_url[len("sqlite:///") :], **options)
    from memos.queue.redis_streams import RedisStreamsQueue

    url, prefix = store_url.split("#", 1)
    return RedisStreamsQueue(url, prefix=prefix, **options)


def redis_available() -> str | None:
    """None when the Redis server answers, else why not."""
    try:
        import redis
    except ImportError:
        return "redis-py is not installed (pip install -e '.[test]')"
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception as exc:
        return f"no Redis server answers at {REDIS_URL} ({exc}); run scripts/services.sh"
    return None


def delete_prefix(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
    client.close()
