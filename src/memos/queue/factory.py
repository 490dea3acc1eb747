"""Open the task queue that settings name, with errors that say what to do.

``build_queue`` (in ``memos.queue``) maps one URL to an adapter; this module
adds what a service needs on top: lease and backoff from ``queue.*`` settings,
the Redis key prefix, and a ``ConfigError`` (not a driver exception) when the
URL is malformed, redis-py is missing or the server cannot be reached.
"""

from __future__ import annotations

from typing import Any

from memos.errors import ConfigError
from memos.queue import REDIS_SCHEMES, TaskQueue, build_queue
from memos.settings import Settings


def open_queue(settings: Settings) -> TaskQueue:
    """The task queue ``queue.url`` names (default: SQLite in the data dir)."""
    qs = settings.queue
    target = qs.url or settings.data_dir
    options: dict[str, Any] = {"default_lease_s": qs.lease_s, "backoff_base_s": qs.backoff_base_s}
    unreachable: tuple[type[Exception], ...] = ()
    if str(target).startswith(REDIS_SCHEMES):
        options["prefix"] = qs.prefix
        try:
            import redis
        except ImportError:
            raise ConfigError(
                "MEMOS_QUEUE_URL names Redis but redis-py is not installed: "
                "pip install 'memos[redis]'"
            ) from None
        unreachable = (redis.RedisError,)
    try:
        return build_queue(target, **options)
    except ValueError as exc:
        raise ConfigError(f"MEMOS_QUEUE_URL: {exc}") from exc
    except unreachable as exc:
        raise ConfigError(f"MEMOS_QUEUE_URL: cannot use the Redis queue: {exc}") from exc
