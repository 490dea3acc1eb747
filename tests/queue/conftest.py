"""One queue fixture for every adapter, so each test runs against both.

``make_queue(**options)`` opens a queue on the test's own backing store: a
fresh SQLite file, or a unique key prefix on the real Redis at
``MEMOS_TEST_REDIS_URL`` (default 127.0.0.1:6379). Calling it twice gives two
independent instances (two connections) on the same store, like two processes.
The Redis keys are deleted afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from queue_support import REDIS_URL, delete_prefix, open_queue, redis_available

from memos.queue import TaskQueue

QueueFactory = Callable[..., TaskQueue]


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "redis" and (reason := redis_available()):
        pytest.skip(reason)
    return str(request.param)


@pytest.fixture
def store_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """Where the queue lives: ``sqlite:///<file>`` or ``redis://...#<prefix>``."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'queue.db'}"
        return
    prefix = f"memos-test:{uuid.uuid4().hex[:10]}"
    yield f"{REDIS_URL}#{prefix}"
    delete_prefix(prefix)


@pytest.fixture
def make_queue(store_url: str) -> Iterator[QueueFactory]:
    opened: list[TaskQueue] = []

    def make(**options: Any) -> TaskQueue:
        queue = open_queue(store_url, **options)
        opened.append(queue)
        return queue

    yield make
    for queue in opened:
        queue.close()


@pytest.fixture
def queue(make_queue: QueueFactory) -> TaskQueue:
    return make_queue(backoff_base_s=0.05, backoff_max_s=0.2)
