"""The scheduler: async fine passes on the durable task queue, their status, and waiting.

Async adds store their fast memories at once and submit a ``mem_read`` task
(ordered per cube and conversation); workers (threads in the server, or
``memos worker`` processes sharing the queue) run the fine pass. The handler is
idempotent: the pass commits its task record in the same transaction as its
writes, so a task re-run after a crash sees it landed and does nothing.

Status answers come from two places: the store's task record (the outcome,
with its note or error) and the queue (queued / running / retrying / dead).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from memos.domain.models import Scope
from memos.errors import MemosError
from memos.llm.base import LLMError
from memos.queue import Task, TaskLabel, TaskQueue, TaskStatus, Worker
from memos.queue.base import NonRetryable
from memos.service.refine import Refiner
from memos.store.base import MemoryStore

logger = logging.getLogger(__name__)

# The cloud API's three task states.
RUNNING, COMPLETED, FAILED = "running", "completed", "failed"


@dataclass
class TaskView:
    task_id: str
    status: str  # running | completed | failed
    error: str | None = None
    queue_status: str | None = None  # queued | running | failed (retrying) | completed | dead
    attempts: int = 0
    label: str | None = None


def cloud_status(status: TaskStatus) -> str:
    if status == TaskStatus.COMPLETED:
        return COMPLETED
    if status == TaskStatus.DEAD:
        return FAILED
    return RUNNING


class Scheduler:
    def __init__(
        self,
        queue: TaskQueue,
        store: MemoryStore,
        refiner: Callable[[], Refiner | None],
        *,
        workers: int,
    ) -> None:
        self.queue = queue
        self.store = store
        self._refiner = refiner
        self.workers = workers
        self.worker: Worker | None = None

    # ------------------------------------------------------------- workers
    def handlers(self) -> dict[TaskLabel, Callable[[Task], None]]:
        return {TaskLabel.MEM_READ: self.handle_mem_read}

    def start_workers(self) -> None:
        """Run workers as threads of this process (the embedded default)."""
        if self.worker is None and self.workers > 0:
            self.worker = Worker(self.queue, self.handlers(), concurrency=self.workers)
            self.worker.start()

    def close(self, timeout: float = 30.0) -> None:
        if self.worker is not None:
            if not self.worker.stop(timeout):
                logger.warning("workers busy after %.0f s; their tasks will re-run", timeout)
            self.worker = None
        self.queue.close()

    # -------------------------------------------------------------- submit
    def submit_fine_pass(
        self,
        scope: Scope,
        task_id: str,
        conversation_id: str | None,
        message_ids: list[str],
        fast_ids: list[str],
        *,
        tags: list[str],
        info: dict[str, Any] | None,
    ) -> None:
        """Record the task as running and queue its fine pass (durably, before returning)."""
        self.store.put_task(scope, task_id, RUNNING)
        task = Task.new(
            TaskLabel.MEM_READ,
            scope.user_id,
            scope.cube_id,
            {
                "agent_id": scope.agent_id,
                "app_id": scope.app_id,
                "message_ids": message_ids,
                "fast_ids": fast_ids,
                "tags": tags,
                "info": info,
            },
            conversation_id=conversation_id or "",
            task_id=task_id,
            max_attempts=3,
        )
        self.queue.submit(task)

    # ------------------------------------------------------------- handler
    def handle_mem_read(self, task: Task) -> None:
        """The fine pass of one async add; safe to run again for the same task."""
        payload = task.payload
        scope = Scope(
            user_id=task.user_id,
            cube_id=task.cube_id,
            agent_id=payload.get("agent_id"),
            app_id=payload.get("app_id"),
        )
        recorded = self.store.get_task(task.task_id)
        if recorded is not None and recorded[1] in (COMPLETED, FAILED):
            logger.info("task %s already %s; nothing to redo", task.task_id, recorded[1])
            return
        refiner = self._refiner()
        if refiner is None:
            self.store.put_task(scope, task.task_id, FAILED, "no LLM is configured on this worker")
            raise NonRetryable("no LLM is configured on this worker")
        messages = self.store.get_messages(scope, payload.get("message_ids", []))
        fast = self.store.get_memories(scope, payload.get("fast_ids", []))
        last_try = task.attempts >= task.max_attempts
        try:
            outcome = refiner.refine(
                scope,
                task.task_id,
                messages,
                fast,
                tags=payload.get("tags") or [],
                info=payload.get("info"),
                raise_provider_errors=not last_try,
            )
        except LLMError:
            raise  # an unreachable LLM: the queue retries with backoff
        except MemosError as exc:
            self.store.put_task(scope, task.task_id, FAILED, exc.message)
            raise NonRetryable(exc.message) from exc
        if outcome.status != COMPLETED:
            self.store.put_task(scope, task.task_id, outcome.status, outcome.error)

    # -------------------------------------------------------------- status
    def view(self, task_id: str) -> TaskView | None:
        recorded = self.store.get_task(task_id)
        queued = self.queue.status(task_id)
        if recorded is not None and recorded[1] in (COMPLETED, FAILED):
            return TaskView(
                task_id,
                recorded[1],
                recorded[2],
                None if queued is None else queued.status.value,
                0 if queued is None else queued.attempts,
                None if queued is None else queued.label.value,
            )
        if queued is not None:
            status = cloud_status(queued.status)
            return TaskView(
                task_id,
                status,
                queued.error if status == FAILED else None,
                queued.status.value,
                queued.attempts,
                queued.label.value,
            )
        if recorded is not None:
            return TaskView(task_id, recorded[1], recorded[2])
        return None

    def pending(self, user_id: str) -> int:
        return self.queue.pending_for(user_id)

    def counts(self, user_id: str | None = None) -> dict[str, int]:
        return {str(k): v for k, v in self.queue.counts(user_id).items()}

    def wait(self, user_id: str, timeout_s: float, poll_s: float) -> tuple[bool, int, float]:
        """Block until ``user_id`` has no open task: (idle, still open, seconds waited)."""
        started = time.monotonic()
        while True:
            open_tasks = self.pending(user_id)
            waited = time.monotonic() - started
            if open_tasks == 0:
                return True, 0, waited
            if waited >= timeout_s:
                return False, open_tasks, waited
            time.sleep(min(poll_s, max(0.0, timeout_s - waited)))
