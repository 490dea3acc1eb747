"""Task status, queue details and waiting: what ``/get/status`` and the scheduler routes ask."""

from __future__ import annotations

import time
from dataclasses import dataclass

from memos.errors import InvalidParameter, TaskNotFound
from memos.service import validation as v
from memos.service.background import BackgroundRunner
from memos.service.scheduler import Scheduler, TaskView
from memos.settings import LimitSettings
from memos.store.base import MemoryStore


@dataclass
class TaskInfo:
    status: str
    error: str | None = None


class Tasks:
    def __init__(
        self,
        store: MemoryStore,
        scheduler: Scheduler,
        background: BackgroundRunner,
        limits: LimitSettings,
    ) -> None:
        self.store = store
        self.scheduler = scheduler
        self.background = background
        self.limits = limits

    def info(self, task_id: str | None, user_id: str | None = None) -> TaskInfo:
        """A task's status and, when it failed, why; another user's task is not found."""
        if not task_id:
            raise InvalidParameter("task_id is required")
        if not isinstance(task_id, str) or len(task_id) > self.limits.max_id_chars:
            raise InvalidParameter(f"task_id must be 1 to {self.limits.max_id_chars} characters")
        v.check_text(task_id, "task_id")
        if user_id is not None:
            user_id = v.require_id(user_id, "user_id", self.limits)
        found = self.store.get_task(task_id)
        if found is None:
            raise TaskNotFound(f"task {task_id!r} not found")
        cube, status, error = found
        if user_id is not None and self.store.cube_owner(cube) not in (None, user_id):
            raise TaskNotFound(f"task {task_id!r} not found")
        if status in ("completed", "failed"):  # the outcome is final; no need to ask the queue
            return TaskInfo(status, error)
        view = self.scheduler.view(task_id)
        if view is not None:  # the queue knows retries and dead tasks
            return TaskInfo(view.status, view.error)
        return TaskInfo(status, error)

    def view(self, task_id: str | None, user_id: str | None = None) -> TaskView:
        """The task with its queue details (attempts, label, queue status)."""
        self.info(task_id, user_id)  # existence and ownership
        assert task_id is not None
        view = self.scheduler.view(task_id)
        assert view is not None
        return view

    def wait(self, timeout: float | None = None, user_id: str | None = None) -> bool:
        """Block until queued fine passes (of ``user_id``, or everyone's) are done."""
        deadline = time.monotonic() + (timeout if timeout is not None else 1e9)
        while True:
            counts = self.scheduler.counts(user_id)
            open_tasks = sum(counts.get(k, 0) for k in ("queued", "running", "failed"))
            if open_tasks == 0:
                return self.background.wait(max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
