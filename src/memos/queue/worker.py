"""Worker threads that run task handlers against any ``TaskQueue``.

The same class serves the embedded default (threads inside the server) and
``memos worker`` (a process of its own): the queue, not the worker, decides
who may run what, so any number of workers on any number of machines can
share one queue. Concurrency is bounded by the number of threads; one
heartbeat thread renews the leases of every task still running, so a slow
handler keeps its task while a dead process loses it after the lease.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Mapping

from memos.errors import MemosError
from memos.queue.base import LeaseLost, NonRetryable, Task, TaskLabel, TaskQueue, TaskStatus

logger = logging.getLogger(__name__)


def _queue_errors() -> tuple[type[BaseException], ...]:
    """What a queue backend raises when it is unavailable (never a handler's bug)."""
    errors: list[type[BaseException]] = [sqlite3.Error, OSError, MemosError]
    try:
        import redis
    except ImportError:  # the redis extra is not installed: no Redis queue either
        return tuple(errors)
    return (*errors, redis.RedisError)


QUEUE_ERRORS = _queue_errors()

Handler = Callable[[Task], None]

HEARTBEAT_FRACTION = 3  # renew a lease when a third of it has passed
MAX_HEARTBEAT_TICK_S = 1.0


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class Worker:
    """Claims tasks for ``handlers``' labels and runs them on ``concurrency`` threads.

    A handler that returns completes its task; one that raises fails the
    attempt (retried with backoff; ``NonRetryable`` makes it dead at once).
    Handlers must be idempotent by ``task_id``: a task whose worker died is
    run again, and only its effects decide whether that is a duplicate.
    """

    def __init__(
        self,
        queue: TaskQueue,
        handlers: Mapping[TaskLabel, Handler],
        *,
        concurrency: int = 4,
        worker_id: str | None = None,
        idle_wait_s: float = 0.5,
    ) -> None:
        if not handlers:
            raise ValueError("a worker needs at least one handler")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.queue = queue
        self.handlers = {TaskLabel(label): handler for label, handler in handlers.items()}
        self.labels = sorted(self.handlers)
        self.concurrency = concurrency
        self.worker_id = worker_id or default_worker_id()
        self.idle_wait_s = idle_wait_s
        self._stopping = threading.Event()  # slots stop claiming
        self._halt = threading.Event()  # every slot ended: the heartbeat stops too
        self._wake = threading.Event()  # a task with a short lease started: re-plan ticks
        self._tick = MAX_HEARTBEAT_TICK_S
        self._threads: list[threading.Thread] = []
        self._heartbeat: threading.Thread | None = None
        self._running: dict[str, tuple[Task, float]] = {}  # claim token -> (task, last renewal)
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self._threads:
            raise RuntimeError("worker already started")
        self._stopping.clear()
        self._halt.clear()
        for slot in range(self.concurrency):
            thread = threading.Thread(
                target=self._loop,
                args=(f"{self.worker_id}/{slot}",),
                name=f"memos-worker-{slot}",
                daemon=True,
            )
            self._threads.append(thread)
        self._heartbeat = threading.Thread(
            target=self._beat, name="memos-worker-heartbeat", daemon=True
        )
        self._heartbeat.start()
        for thread in self._threads:
            thread.start()
        logger.info(
            "worker %s started: %d threads for %s",
            self.worker_id,
            self.concurrency,
            ", ".join(self.labels),
        )

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop claiming, let running handlers finish; False if some outlived ``timeout``."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._alive():
            # The heartbeat keeps renewing their leases until they end.
            logger.warning(
                "worker %s stopped with %d tasks still running", self.worker_id, self.busy
            )
            return False
        self._halt.set()
        self._wake.set()
        if self._heartbeat is not None:
            self._heartbeat.join(max(0.0, deadline - time.monotonic()))
        self._threads = []
        return True

    def __enter__(self) -> Worker:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def busy(self) -> int:
        with self._lock:
            return len(self._running)

    # ------------------------------------------------------------------- work
    def run_one(self, slot_id: str | None = None) -> bool:
        """Claim and run one task on the calling thread; False when none was ready."""
        task = self.queue.claim(slot_id or f"{self.worker_id}/main", self.labels)
        if task is None:
            return False
        self._run(task)
        return True

    def _loop(self, slot_id: str) -> None:
        while not self._stopping.is_set():
            try:
                if not self.run_one(slot_id):
                    self.queue.wait_for_work(self.idle_wait_s)
            except QUEUE_ERRORS:
                # The queue itself failed (its server went away): wait and retry;
                # leases of anything claimed will expire and be re-run.
                logger.exception("worker %s: queue error", slot_id)
                self._stopping.wait(self.idle_wait_s)

    def _run(self, task: Task) -> None:
        assert task.claim_token is not None, "claimed tasks carry their claim token"
        with self._lock:
            self._running[task.claim_token] = (task, time.monotonic())
        if task.lease_s / (2 * HEARTBEAT_FRACTION) < self._tick:
            self._wake.set()
        try:
            self._execute(task)
        finally:
            with self._lock:
                self._running.pop(task.claim_token, None)

    def _execute(self, task: Task) -> None:
        started = time.monotonic()
        try:
            self.handlers[task.label](task)
        except NonRetryable as exc:
            logger.exception(
                "task %s (%s) failed and will not be retried", task.task_id, task.label
            )
            self._settle(task, error_text(exc), retry=False)
        except Exception as exc:  # the handler boundary: any error fails the attempt, logged
            logger.exception(
                "task %s (%s) failed on attempt %d of %d",
                task.task_id,
                task.label,
                task.attempts,
                task.max_attempts,
            )
            self._settle(task, error_text(exc), retry=True)
        else:
            self._settle(task, None, retry=False)
            logger.debug(
                "task %s (%s) done in %.3fs", task.task_id, task.label, time.monotonic() - started
            )

    def _settle(self, task: Task, error: str | None, *, retry: bool) -> None:
        try:
            if error is None:
                self.queue.complete(task)
                return
            status = self.queue.fail(task, error, retry=retry)
            if status == TaskStatus.DEAD:
                logger.error("task %s (%s) is dead: %s", task.task_id, task.label, error)
        except LeaseLost:
            logger.warning(
                "task %s (%s): lease lost before it finished; another worker re-runs it",
                task.task_id,
                task.label,
            )

    def _beat(self) -> None:
        """Renew leases at a third of their length until every slot has stopped."""
        while not self._halt.is_set():
            self._wake.clear()
            with self._lock:
                running = list(self._running.items())
            shortest = min((task.lease_s for _, (task, _) in running), default=6.0)
            tick = max(0.01, min(MAX_HEARTBEAT_TICK_S, shortest / (2 * HEARTBEAT_FRACTION)))
            self._tick = tick
            if self._stopping.is_set() and not running and not self._alive():
                return
            now = time.monotonic()
            for token, (task, renewed) in running:
                if now - renewed < task.lease_s / HEARTBEAT_FRACTION:
                    continue
                try:
                    self.queue.extend(task)
                except LeaseLost:
                    logger.warning("task %s (%s): lease lost", task.task_id, task.label)
                    with self._lock:
                        self._running.pop(token, None)
                    continue
                except QUEUE_ERRORS:
                    logger.exception("task %s: lease renewal failed", task.task_id)
                    continue
                with self._lock:
                    if token in self._running:
                        self._running[token] = (task, now)
            self._wake.wait(tick)

    def _alive(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)
