"""The TaskQueue contract, run against every adapter (see conftest.py)."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable

import pytest

from memos.queue import LeaseLost, Task, TaskLabel, TaskQueue, TaskStatus

QueueFactory = Callable[..., TaskQueue]


def add(
    user: str = "u1",
    conversation: str = "c1",
    n: int | None = None,
    *,
    max_attempts: int = 5,
    task_id: str | None = None,
) -> Task:
    payload = {"n": n} if n is not None else {}
    return Task.new(
        TaskLabel.ADD,
        user,
        f"cube-{user}",
        payload,
        conversation_id=conversation,
        max_attempts=max_attempts,
        task_id=task_id,
    )


def claim_until(queue: TaskQueue, worker: str, timeout: float = 3.0) -> Task:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = queue.claim(worker)
        if task is not None:
            return task
        time.sleep(0.02)
    raise AssertionError("nothing became claimable")


def test_submit_claim_complete(queue: TaskQueue) -> None:
    task = add(n=1)
    assert queue.submit(task)
    queued = queue.status(task.task_id)
    assert queued is not None
    assert queued.status == TaskStatus.QUEUED and queued.attempts == 0
    assert queued.payload == {"n": 1} and queued.ordering_key == "cube-u1/c1"
    assert queued.created_at > 0 and queued.available_at >= queued.created_at

    claimed = queue.claim("w1")
    assert claimed is not None and claimed.task_id == task.task_id
    assert claimed.status == TaskStatus.RUNNING and claimed.attempts == 1
    assert claimed.worker_id == "w1" and claimed.claim_token
    assert claimed.payload == {"n": 1} and claimed.label == TaskLabel.ADD
    assert queue.claim("w2") is None

    queue.complete(claimed)
    done = queue.status(task.task_id)
    assert done is not None and done.status == TaskStatus.COMPLETED and done.done
    assert queue.claim("w1") is None
    with pytest.raises(LeaseLost):
        queue.complete(claimed)
    assert queue.status("no-such-task") is None


def test_submit_is_idempotent_on_task_id(queue: TaskQueue) -> None:
    task = add()
    assert queue.submit(task) is True
    assert queue.submit(task) is False
    assert queue.submit(add(task_id=task.task_id)) is False
    claimed = queue.claim("w")
    assert claimed is not None
    assert queue.claim("w") is None
    queue.complete(claimed)
    assert queue.submit(task) is False  # a finished task is not run again
    assert queue.claim("w") is None
    assert queue.counts()[TaskStatus.COMPLETED] == 1


def test_labels_limit_what_a_worker_claims(queue: TaskQueue) -> None:
    queue.submit(add())
    read = Task.new(TaskLabel.MEM_READ, "u2", "cube-u2", conversation_id="c9")
    queue.submit(read)
    claimed = queue.claim("reader", labels=[TaskLabel.MEM_READ])
    assert claimed is not None and claimed.task_id == read.task_id
    assert queue.claim("reader", labels=[TaskLabel.MEM_READ, TaskLabel.PREF_ADD]) is None
    other = queue.claim("adder", labels=[TaskLabel.ADD])
    assert other is not None and other.label == TaskLabel.ADD


def test_per_key_order_with_concurrent_workers(make_queue: QueueFactory) -> None:
    """Two queue instances (two connections, like two processes) x two threads."""
    queues = [make_queue(), make_queue()]
    keys = ["k0", "k1", "k2"]
    submitted: dict[str, list[str]] = defaultdict(list)
    for n in range(36):
        task = add(user=f"u{n % 2}", conversation=keys[n % 3], n=n)
        queues[0].submit(task)
        submitted[task.ordering_key].append(task.task_id)

    lock = threading.Lock()
    running: set[str] = set()
    overlaps: list[str] = []
    finished: dict[str, list[str]] = defaultdict(list)
    runs: list[str] = []

    def work(queue: TaskQueue, name: str) -> None:
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < 0.5:
            task = queue.claim(name)
            if task is None:
                time.sleep(0.005)
                continue
            idle_since = time.monotonic()
            with lock:
                if task.ordering_key in running:
                    overlaps.append(task.ordering_key)
                running.add(task.ordering_key)
                runs.append(task.task_id)
            time.sleep(0.003)
            with lock:
                running.discard(task.ordering_key)
                finished[task.ordering_key].append(task.task_id)
            queue.complete(task)

    threads = [threading.Thread(target=work, args=(queues[i % 2], f"w{i}")) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not overlaps, f"two tasks of one key ran at once: {overlaps}"
    assert sorted(runs) == sorted(t for ids in submitted.values() for t in ids)  # once each
    assert dict(finished) == dict(submitted)  # and in submit order per key
    assert queues[1].counts()[TaskStatus.COMPLETED] == 36


def test_fair_across_users(queue: TaskQueue) -> None:
    for n in range(20):
        queue.submit(add(user="heavy", conversation=f"c{n}", n=n))
    light = add(user="light", conversation="only")
    queue.submit(light)
    other = add(user="other", conversation="only")
    queue.submit(other)
    order = []
    for _ in range(6):
        task = queue.claim("w")
        assert task is not None
        order.append(task.user_id)
        queue.complete(task)
    # Users take turns: the two single tasks do not wait behind the heavy user's 20.
    assert set(order[:3]) == {"heavy", "light", "other"}, order
    assert order[3:] == ["heavy"] * 3


def test_retry_with_backoff_then_dead(queue: TaskQueue) -> None:
    task = add(max_attempts=3)
    later = add()  # same key: waits behind the failing task
    queue.submit(task)
    queue.submit(later)
    errors = []
    for attempt in (1, 2, 3):
        claimed = claim_until(queue, "w")
        assert claimed.task_id == task.task_id and claimed.attempts == attempt
        errors.append(f"boom {attempt}")
        status = queue.fail(claimed, errors[-1], retry=True)
        record = queue.status(task.task_id)
        assert record is not None and record.error == errors[-1]
        if attempt < 3:
            assert status == TaskStatus.FAILED and record.status == TaskStatus.FAILED
            assert record.available_at > record.updated_at - 0.001
            assert queue.claim("w") is None  # backoff: not yet, and the key is held
            assert queue.pending_for("u1") == 2
        else:
            assert status == TaskStatus.DEAD and record.status == TaskStatus.DEAD
    dead = queue.status(task.task_id)
    assert dead is not None and dead.error == "boom 3" and dead.attempts == 3
    # The dead task releases its key.
    nxt = claim_until(queue, "w")
    assert nxt.task_id == later.task_id
    queue.complete(nxt)
    counts = queue.counts()
    assert counts[TaskStatus.DEAD] == 1 and counts[TaskStatus.COMPLETED] == 1


def test_backoff_grows(queue: TaskQueue) -> None:
    queue.submit(add(max_attempts=5))
    gaps = []
    for _ in range(3):
        claimed = claim_until(queue, "w")
        queue.fail(claimed, "boom")
        record = queue.status(claimed.task_id)
        assert record is not None
        gaps.append(record.available_at - record.updated_at)
    assert gaps[0] == pytest.approx(0.05, abs=0.02)
    assert gaps[1] == pytest.approx(0.1, abs=0.02)
    assert gaps[2] == pytest.approx(0.2, abs=0.02)  # capped at backoff_max_s


def test_fail_without_retry_is_dead_at_once(queue: TaskQueue) -> None:
    queue.submit(add(max_attempts=5))
    claimed = claim_until(queue, "w")
    assert queue.fail(claimed, "bad payload", retry=False) == TaskStatus.DEAD
    record = queue.status(claimed.task_id)
    assert record is not None and record.status == TaskStatus.DEAD
    assert record.error == "bad payload" and record.attempts == 1
    assert queue.pending_for("u1") == 0


def test_expired_lease_is_reclaimed_and_stale_complete_rejected(
    make_queue: QueueFactory,
) -> None:
    first = make_queue(leases={TaskLabel.ADD: 0.3})
    second = make_queue(leases={TaskLabel.ADD: 0.3})
    task = add()
    first.submit(task)
    stale = first.claim("crashed")
    assert stale is not None
    assert second.claim("rescuer") is None  # the lease still holds
    time.sleep(0.45)
    fresh = second.claim("rescuer")
    assert fresh is not None and fresh.task_id == task.task_id
    assert fresh.attempts == 2 and fresh.worker_id == "rescuer"
    with pytest.raises(LeaseLost):
        first.complete(stale)
    with pytest.raises(LeaseLost):
        first.extend(stale)
    with pytest.raises(LeaseLost):
        first.fail(stale, "late")
    second.complete(fresh)
    record = first.status(task.task_id)
    assert record is not None and record.status == TaskStatus.COMPLETED
    assert first.counts()[TaskStatus.COMPLETED] == 1


def test_heartbeat_keeps_the_lease(make_queue: QueueFactory) -> None:
    queue = make_queue(leases={TaskLabel.ADD: 0.3})
    queue.submit(add())
    claimed = queue.claim("slow")
    assert claimed is not None
    for _ in range(6):
        time.sleep(0.1)
        queue.extend(claimed)
        assert queue.claim("other") is None
    queue.complete(claimed)


def test_worker_that_keeps_dying_ends_dead(make_queue: QueueFactory) -> None:
    queue = make_queue(leases={TaskLabel.ADD: 0.15})
    task = add(max_attempts=2)
    behind = add()
    queue.submit(task)
    queue.submit(behind)
    assert queue.claim("a") is not None
    time.sleep(0.25)
    again = queue.claim("b")
    assert again is not None and again.attempts == 2
    time.sleep(0.25)
    nxt = queue.claim("c")  # the poison task is dead now; its key moves on
    assert nxt is not None and nxt.task_id == behind.task_id
    record = queue.status(task.task_id)
    assert record is not None and record.status == TaskStatus.DEAD
    assert record.error and "lease expired" in record.error


def test_counts_and_pending_for(queue: TaskQueue) -> None:
    for n in range(3):
        queue.submit(add(user="a", conversation=f"c{n}"))
    queue.submit(add(user="b"))
    assert queue.counts()[TaskStatus.QUEUED] == 4
    assert queue.counts("a")[TaskStatus.QUEUED] == 3
    assert queue.pending_for("a") == 3 and queue.pending_for("b") == 1
    assert queue.pending_for("nobody") == 0
    assert queue.counts("nobody") == {status: 0 for status in TaskStatus}

    running = [claim_until(queue, "w") for _ in range(3)]
    counts = queue.counts()
    assert counts[TaskStatus.RUNNING] == 3 and counts[TaskStatus.QUEUED] == 1
    queue.complete(running[0])
    queue.fail(running[1], "x", retry=True)
    queue.fail(running[2], "y", retry=False)
    counts = queue.counts()
    assert counts[TaskStatus.COMPLETED] == 1
    assert counts[TaskStatus.FAILED] == 1
    assert counts[TaskStatus.DEAD] == 1
    assert counts[TaskStatus.QUEUED] == 1
    assert sum(counts.values()) == 4
    assert queue.pending_for("a") + queue.pending_for("b") == 2  # queued + awaiting retry


def test_status_is_shared_between_instances(make_queue: QueueFactory) -> None:
    server, worker = make_queue(), make_queue()
    task = add(n=7)
    server.submit(task)
    seen = worker.status(task.task_id)
    assert seen is not None and seen.status == TaskStatus.QUEUED and seen.payload == {"n": 7}
    claimed = worker.claim("remote")
    assert claimed is not None
    running = server.status(task.task_id)
    assert running is not None and running.status == TaskStatus.RUNNING
    assert running.worker_id == "remote" and running.lease_until is not None
    assert server.pending_for("u1") == 1
    worker.complete(claimed)
    done = server.status(task.task_id)
    assert done is not None and done.status == TaskStatus.COMPLETED
    assert server.counts("u1")[TaskStatus.COMPLETED] == 1


def test_wait_for_work_wakes_on_submit(queue: TaskQueue) -> None:
    assert queue.claim("w") is None
    timer = threading.Timer(0.2, lambda: queue.submit(add()))
    timer.start()
    started = time.monotonic()
    queue.wait_for_work(3.0)
    assert time.monotonic() - started < 2.0
    timer.join()
    assert queue.claim("w") is not None
