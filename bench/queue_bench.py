"""Task queue throughput and latency, SQLite vs Redis Streams, with a no-op handler.

Two measurements per adapter, each on a fresh store (a temporary SQLite file;
a unique key prefix on Redis, deleted afterwards):

* ``throughput``: one client submits ``--tasks`` tasks (200 ordering keys over
  50 users), then a ``Worker`` with ``--threads`` threads and a no-op handler
  for every label drains them. Reports submit/s and drain tasks/s.
* ``latency``: ``--clients`` threads submit concurrently at a fixed total rate
  (``--load`` x the measured drain rate, so the queue is busy but not
  saturated) while the worker drains. Queue latency is the time from the start
  of ``submit`` to the handler starting (submit + wait + claim); p50/p95.
  Each client has its own queue instance (connection), like a separate
  process; for SQLite also ``latency_in_process``, the embedded default, where
  the clients share the worker's instance and a submit wakes an idle worker.

* ``fast_add_handler``: the same drain with a real handler: each task is a
  fast-mode add (one chat turn embedded with the packaged MiniLM and stored in
  SQLite) through an in-process MemoryService; the baseline is the same adds
  called directly, without a queue, in the same run.

Usage: python bench/queue_bench.py --out bench/results/queue.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from memos.queue import SQLiteQueue, Task, TaskLabel, TaskQueue, TaskStatus, Worker

USERS = 50
KEYS = 200


@contextmanager
def open_store(adapter: str, redis_url: str) -> Iterator[Callable[[], TaskQueue]]:
    """A factory of queue instances on one fresh store; cleaned up on exit."""
    if adapter == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield lambda: SQLiteQueue(Path(tmp) / "queue.db")
        return
    import redis

    from memos.queue.redis_streams import RedisStreamsQueue

    prefix = f"memos-bench:{uuid.uuid4().hex[:8]}"
    try:
        yield lambda: RedisStreamsQueue(redis_url, prefix=prefix)
    finally:
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        client.close()


def make_task(n: int, submitted_at: float | None = None) -> Task:
    payload = {"t": submitted_at} if submitted_at is not None else {}
    return Task.new(
        TaskLabel.ADD,
        f"user{n % USERS}",
        "cube",
        payload,
        conversation_id=f"c{n % KEYS}",
    )


def wait_drained(queue: TaskQueue, total: int, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while sum(queue.pending_for(f"user{u}") for u in range(USERS)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{total} tasks not drained: {queue.counts()}")
        time.sleep(0.01)


def no_op_handlers(on_task: Callable[[Task], None]) -> dict[TaskLabel, Callable[[Task], None]]:
    return {label: on_task for label in TaskLabel}


def throughput(factory: Callable[[], TaskQueue], tasks: int, threads: int) -> dict[str, Any]:
    queue = factory()
    started = time.perf_counter()
    for n in range(tasks):
        queue.submit(make_task(n))
    submit_s = time.perf_counter() - started
    worker = Worker(queue, no_op_handlers(lambda _: None), concurrency=threads, idle_wait_s=0.05)
    started = time.perf_counter()
    worker.start()
    wait_drained(queue, tasks)
    drain_s = time.perf_counter() - started
    worker.stop()
    completed = queue.counts()[TaskStatus.COMPLETED]
    queue.close()
    assert completed == tasks, f"{completed} of {tasks} completed"
    return {
        "tasks": tasks,
        "worker_threads": threads,
        "submit_per_s": round(tasks / submit_s, 1),
        "drain_tasks_per_s": round(tasks / drain_s, 1),
    }


TURNS = [
    "I moved to Hangzhou last spring and I love the food there.",
    "My daughter started violin lessons on Saturdays.",
    "We are planning a trip to Lisbon in May with two friends.",
    "I switched from coffee to green tea because of my sleep.",
]


def fast_add_throughput(
    factory: Callable[[], TaskQueue], tasks: int, threads: int
) -> dict[str, Any]:
    """Drain ``tasks`` fast-mode adds through the queue; baseline: the same adds called directly."""
    from memos.domain.models import MessageInput
    from memos.service import MemoryService
    from memos.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp:
        svc = MemoryService.open(load_settings({"data_dir": tmp}, environ={}))
        try:

            def add(user: str, conv: str, n: int) -> None:
                svc.add(
                    user_id=user,
                    conversation_id=conv,
                    messages=[MessageInput(role="user", content=f"{TURNS[n % len(TURNS)]} ({n})")],
                )

            svc.embedder.embed(["warm up"])
            started = time.perf_counter()
            for n in range(tasks):
                add(f"direct{n % USERS}", f"c{n % KEYS}", n)
            direct_s = time.perf_counter() - started

            queue = factory()
            for n in range(tasks):
                queue.submit(make_task(n, submitted_at=float(n)))

            def handle(task: Task) -> None:
                add(task.user_id, task.ordering_key, int(task.payload["t"]))

            worker = Worker(queue, {TaskLabel.ADD: handle}, concurrency=threads, idle_wait_s=0.05)
            started = time.perf_counter()
            worker.start()
            wait_drained(queue, tasks)
            queued_s = time.perf_counter() - started
            worker.stop()
            completed = queue.counts()[TaskStatus.COMPLETED]
            queue.close()
        finally:
            svc.close()
    assert completed == tasks, f"{completed} of {tasks} completed"
    return {
        "tasks": tasks,
        "worker_threads": threads,
        "queued_adds_per_s": round(tasks / queued_s, 1),
        "direct_adds_per_s": round(tasks / direct_s, 1),
        "ratio_queued_to_direct": round(direct_s / queued_s, 3),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency(
    factory: Callable[[], TaskQueue],
    clients: int,
    per_client: int,
    rate: float,
    threads: int,
    shared: bool,
) -> dict[str, Any]:
    worker_queue = factory()
    latencies: list[float] = []
    lock = threading.Lock()

    def handle(task: Task) -> None:
        waited = time.time() - float(task.payload["t"])
        with lock:
            latencies.append(waited)

    worker = Worker(worker_queue, no_op_handlers(handle), concurrency=threads, idle_wait_s=0.05)
    worker.start()
    interval = clients / rate  # each client's gap between submits
    submit_times: list[float] = []

    def client(index: int) -> None:
        # shared: the clients are requests inside the worker's process (the embedded
        # default); otherwise each has its own connection, like a separate server.
        queue = worker_queue if shared else factory()
        next_at = time.monotonic()
        for i in range(per_client):
            next_at += interval
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            began = time.time()
            queue.submit(make_task(index * per_client + i, began))
            with lock:
                submit_times.append(time.time() - began)
        if not shared:
            queue.close()

    started = time.perf_counter()
    client_threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in client_threads:
        thread.start()
    for thread in client_threads:
        thread.join()
    wait_drained(worker_queue, clients * per_client)
    elapsed = time.perf_counter() - started
    worker.stop()
    worker_queue.close()
    ms = [v * 1000 for v in latencies]
    submit_ms = [v * 1000 for v in submit_times]
    return {
        "clients": clients,
        "clients_share_worker_queue": shared,
        "tasks": clients * per_client,
        "offered_per_s": round(rate, 1),
        "achieved_per_s": round(clients * per_client / elapsed, 1),
        "worker_threads": threads,
        "queue_latency_ms": {
            "p50": round(statistics.median(ms), 2),
            "p95": round(percentile(ms, 0.95), 2),
            "max": round(max(ms), 2),
        },
        "submit_call_ms": {
            "p50": round(statistics.median(submit_ms), 2),
            "p95": round(percentile(submit_ms, 0.95), 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/queue.json"))
    parser.add_argument("--adapters", default="sqlite,redis")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=4, help="worker threads")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--per-client", type=int, default=150)
    parser.add_argument("--load", type=float, default=0.5, help="offered / drain rate")
    parser.add_argument("--fast-tasks", type=int, default=400, help="adds for the real handler")
    args = parser.parse_args()

    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "handler": "no-op, registered for every label (fast_add_handler: a fast-mode add)",
        "adapters": {},
    }
    for adapter in args.adapters.split(","):
        with open_store(adapter, args.redis_url) as factory:
            through = throughput(factory, args.tasks, args.threads)
        rate = args.load * through["drain_tasks_per_s"]
        entry: dict[str, Any] = {"throughput": through}
        # SQLite serves one process (clients share its queue) or several on one
        # file (other processes' submits are seen at the worker's next poll).
        for shared in (True, False) if adapter == "sqlite" else (False,):
            with open_store(adapter, args.redis_url) as factory:
                lat = latency(factory, args.clients, args.per_client, rate, args.threads, shared)
            entry["latency_in_process" if shared else "latency"] = lat
        with open_store(adapter, args.redis_url) as factory:
            entry["fast_add_handler"] = fast_add_throughput(factory, args.fast_tasks, args.threads)
        results["adapters"][adapter] = entry
        print(adapter, json.dumps(results["adapters"][adapter]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
