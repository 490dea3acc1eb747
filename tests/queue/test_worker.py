"""The Worker against every adapter: retries, dead letters, heartbeats, limits."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from queue_support import REDIS_URL, delete_prefix, redis_available

from memos.queue import (
    NonRetryable,
    SQLiteQueue,
    Task,
    TaskLabel,
    TaskQueue,
    TaskStatus,
    Worker,
    build_queue,
)

QueueFactory = Callable[..., TaskQueue]


def wait_idle(queue: TaskQueue, users: list[str], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while any(queue.pending_for(user) for user in users):
        assert time.monotonic() < deadline, f"still pending: {queue.counts()}"
        time.sleep(0.02)


def task(conversation: str, kind: str, max_attempts: int = 3) -> Task:
    return Task.new(
        TaskLabel.MEM_READ,
        "u1",
        "cube",
        {"kind": kind},
        conversation_id=conversation,
        max_attempts=max_attempts,
    )


def test_worker_completes_retries_and_dead_letters(
    queue: TaskQueue, caplog: pytest.LogCaptureFixture
) -> None:
    calls: Counter[str] = Counter()

    def handle(t: Task) -> None:
        calls[t.task_id] += 1
        kind = t.payload["kind"]
        if kind == "flaky" and t.attempts == 1:
            raise RuntimeError("flaky once")
        if kind == "broken":
            raise RuntimeError("always broken")
        if kind == "bad":
            raise NonRetryable("payload makes no sense")

    tasks = {kind: task(kind, kind) for kind in ("ok", "flaky", "broken", "bad")}
    for t in tasks.values():
        queue.submit(t)
    worker = Worker(queue, {TaskLabel.MEM_READ: handle}, concurrency=2, idle_wait_s=0.05)
    with caplog.at_level(logging.WARNING, logger="memos.queue.worker"), worker:
        wait_idle(queue, ["u1"])

    def record(kind: str) -> Task:
        found = queue.status(tasks[kind].task_id)
        assert found is not None
        return found

    assert record("ok").status == TaskStatus.COMPLETED and record("ok").attempts == 1
    assert record("flaky").status == TaskStatus.COMPLETED and record("flaky").attempts == 2
    broken = record("broken")
    assert broken.status == TaskStatus.DEAD and broken.attempts == 3
    assert broken.error == "RuntimeError: always broken"
    bad = record("bad")
    assert bad.status == TaskStatus.DEAD and bad.attempts == 1
    assert bad.error == "NonRetryable: payload makes no sense"
    assert calls[tasks["broken"].task_id] == 3
    logged = [r for r in caplog.records if r.exc_info and "failed" in r.getMessage()]
    assert len(logged) == 5  # every failed attempt is logged with its traceback


def test_heartbeat_keeps_a_slow_task_with_one_worker(make_queue: QueueFactory) -> None:
    leases = {TaskLabel.MEM_READ: 0.3}
    runs: Counter[str] = Counter()
    lock = threading.Lock()

    def slow(t: Task) -> None:
        with lock:
            runs[t.task_id] += 1
        time.sleep(1.0)

    first, second = make_queue(leases=leases), make_queue(leases=leases)
    submitted = [task(f"c{n}", "slow") for n in range(2)]
    for t in submitted:
        first.submit(t)
    workers = [
        Worker(q, {TaskLabel.MEM_READ: slow}, concurrency=2, idle_wait_s=0.05)
        for q in (first, second)
    ]
    for worker in workers:
        worker.start()
    try:
        wait_idle(first, ["u1"])
    finally:
        for worker in workers:
            worker.stop()
    assert runs == {t.task_id: 1 for t in submitted}  # never reclaimed while alive
    assert first.counts()[TaskStatus.COMPLETED] == 2


def test_concurrency_is_bounded(queue: TaskQueue) -> None:
    lock = threading.Lock()
    active, peak = 0, 0

    def handle(_: Task) -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.05)
        with lock:
            active -= 1

    for n in range(12):
        queue.submit(task(f"c{n}", "ok"))
    with Worker(queue, {TaskLabel.MEM_READ: handle}, concurrency=3, idle_wait_s=0.05):
        wait_idle(queue, ["u1"])
    assert peak == 3


def test_stop_lets_running_handlers_finish(queue: TaskQueue) -> None:
    started = threading.Event()

    def handle(_: Task) -> None:
        started.set()
        time.sleep(0.3)

    submitted = task("c", "ok")
    queue.submit(submitted)
    worker = Worker(queue, {TaskLabel.MEM_READ: handle}, concurrency=1, idle_wait_s=0.05)
    worker.start()
    assert started.wait(5)
    assert worker.stop(timeout=5) is True
    record = queue.status(submitted.task_id)
    assert record is not None and record.status == TaskStatus.COMPLETED


def test_worker_rejects_bad_configuration(tmp_path: Path) -> None:
    queue = SQLiteQueue(tmp_path / "q.db")
    with pytest.raises(ValueError):
        Worker(queue, {})
    with pytest.raises(ValueError):
        Worker(queue, {TaskLabel.ADD: lambda _: None}, concurrency=0)
    queue.close()


def test_build_queue_picks_the_adapter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    in_dir = build_queue(tmp_path / "data")
    assert isinstance(in_dir, SQLiteQueue) and in_dir.path == tmp_path / "data" / "queue.db"
    absolute = build_queue(f"sqlite:///{tmp_path / 'abs.db'}")
    assert isinstance(absolute, SQLiteQueue) and absolute.path == tmp_path / "abs.db"
    monkeypatch.chdir(tmp_path)
    relative = build_queue("sqlite:///rel.db")
    assert isinstance(relative, SQLiteQueue) and relative.path == Path("rel.db")
    for queue in (in_dir, absolute, relative):
        queue.close()
    for bad in ("sqlite:/x.db", "sqlite:///", "postgresql://host/db"):
        with pytest.raises(ValueError):
            build_queue(bad)


def test_build_queue_redis() -> None:
    if reason := redis_available():
        pytest.skip(reason)
    from memos.queue.redis_streams import RedisStreamsQueue

    prefix = f"memos-test:{uuid.uuid4().hex[:10]}"
    queue = build_queue(REDIS_URL, prefix=prefix)
    try:
        assert isinstance(queue, RedisStreamsQueue)
        assert queue.counts() == {status: 0 for status in TaskStatus}
    finally:
        queue.close()
        delete_prefix(prefix)
