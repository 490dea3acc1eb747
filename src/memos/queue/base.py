"""The task queue port: durable background work for the scheduler.

Why a port: the embedded default must need no server (SQLite in the data dir)
while scale-out deployments share one Redis between many worker processes.
Both adapters give the same guarantees, checked by one conformance suite:

* **Durable**: ``submit`` returns only once the task survives a ``kill -9``.
* **At-least-once execution, exactly-once completion**: a claim is a lease. A
  worker that stops heartbeating (crash, kill, hang) loses the task after the
  label's lease and another worker re-runs it; the first worker's late
  ``complete`` is then rejected with ``LeaseLost``. Handlers must therefore be
  idempotent (keyed by ``task_id``) so a re-run has no second effect.
* **Per-key order**: tasks sharing an ``ordering_key`` run one at a time, in
  submit order. Only the key's oldest unfinished task is claimable, so a task
  waiting for its retry also holds back the later ones; a ``dead`` task
  releases the key (its error is kept) so one poison task cannot block a
  conversation forever.
* **Fairness**: claims rotate over users, so one user's thousand tasks do not
  starve another user's one.
* **Retries**: a failed attempt waits ``backoff_base_s * 2**(attempts-1)``
  (capped), then runs again until ``max_attempts``; after that it is ``dead``.

Statuses: ``queued`` (waiting its turn), ``running`` (leased to a worker),
``failed`` (an attempt failed; waiting for its retry), ``completed`` and
``dead`` (terminal; dead keeps the last error). Times are epoch seconds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from memos.errors import MemosError

DEFAULT_LEASE_S = 60.0
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_BACKOFF_BASE_S = 1.0
DEFAULT_BACKOFF_MAX_S = 300.0


class TaskLabel(StrEnum):
    """What a task does; the names are the seed MemScheduler's task labels."""

    ADD = "add"
    MEM_READ = "mem_read"  # fine extraction of an async add
    MEM_ORGANIZE = "mem_organize"  # merge / update after extraction
    PREF_ADD = "pref_add"
    MEM_FEEDBACK = "mem_feedback"
    MEM_UPDATE = "mem_update"  # working-memory replacement
    QUERY = "query"
    ANSWER = "answer"


class TaskStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FAILED = "failed"  # an attempt failed; the task waits for its retry
    COMPLETED = "completed"
    DEAD = "dead"


OPEN_STATUSES = (TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.FAILED)
TERMINAL_STATUSES = (TaskStatus.COMPLETED, TaskStatus.DEAD)


class LeaseLost(MemosError):
    """The caller no longer holds the task's lease (it expired and was reclaimed,
    or the task already finished), so its complete/fail/extend is refused."""

    code = 50000
    http_status = 409


class NonRetryable(Exception):  # noqa: N818 - reads as "raise NonRetryable(...)"
    """Raise from a handler when running the task again cannot help (bad payload):
    the worker marks it ``dead`` at once instead of retrying."""


def new_task_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Task:
    """One unit of background work and its queue state.

    Build new tasks with ``Task.new``; the queue fills the state fields.
    ``claim_token`` identifies one claim: the queue checks it on
    complete/fail/extend, which is how a stale worker's call is rejected.
    """

    task_id: str
    label: TaskLabel
    user_id: str
    cube_id: str
    ordering_key: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    status: TaskStatus = TaskStatus.QUEUED
    attempts: int = 0
    error: str | None = None
    created_at: float = 0.0
    available_at: float = 0.0
    updated_at: float = 0.0
    worker_id: str | None = None
    claim_token: str | None = None
    lease_s: float = 0.0
    lease_until: float | None = None

    @classmethod
    def new(
        cls,
        label: TaskLabel | str,
        user_id: str,
        cube_id: str,
        payload: Mapping[str, Any] | None = None,
        *,
        conversation_id: str = "",
        ordering_key: str | None = None,
        task_id: str | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> Task:
        """A queued task; by default its ordering key is ``cube_id/conversation_id``
        (two adds of one conversation apply in order, other conversations in parallel)."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        return cls(
            task_id=task_id or new_task_id(),
            label=TaskLabel(label),
            user_id=user_id,
            cube_id=cube_id,
            ordering_key=ordering_key
            if ordering_key is not None
            else f"{cube_id}/{conversation_id}",
            payload=dict(payload or {}),
            max_attempts=max_attempts,
        )

    def with_state(self, **changes: Any) -> Task:
        return replace(self, **changes)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_STATUSES


def backoff_s(attempts: int, base_s: float, max_s: float) -> float:
    """Delay before retry number ``attempts`` (1-based): exponential, capped."""
    return float(min(max_s, base_s * (2 ** max(0, attempts - 1))))


def lease_for(label: TaskLabel, leases: Mapping[TaskLabel, float], default_s: float) -> float:
    return float(leases.get(label, default_s))


def empty_counts() -> dict[TaskStatus, int]:
    return {status: 0 for status in TaskStatus}


@runtime_checkable
class TaskQueue(Protocol):
    """What the scheduler and workers need from a durable queue."""

    def submit(self, task: Task) -> bool:
        """Store a new task durably; False (and no change) when ``task_id`` exists."""
        ...

    def claim(self, worker_id: str, labels: Iterable[TaskLabel] | None = None) -> Task | None:
        """Lease the next runnable task to ``worker_id``, or None when there is none.

        Runnable: the oldest unfinished task of its ordering key, queued (or its
        retry is due, or its previous lease expired), with a label in ``labels``.
        Users take turns. The lease lasts the label's configured lease.
        """
        ...

    def extend(self, task: Task) -> None:
        """Renew the lease of a claimed task (heartbeat); raises ``LeaseLost``."""
        ...

    def complete(self, task: Task) -> None:
        """Mark a claimed task completed; raises ``LeaseLost`` for a stale claim."""
        ...

    def fail(self, task: Task, error: str, *, retry: bool = True) -> TaskStatus:
        """Record a failed attempt: ``failed`` (retry after backoff) or, when
        ``retry`` is False or attempts are used up, ``dead``. Raises ``LeaseLost``."""
        ...

    def status(self, task_id: str) -> Task | None:
        """The task's current record, from any process sharing the store."""
        ...

    def counts(self, user_id: str | None = None) -> dict[TaskStatus, int]:
        """Number of tasks in each status, for one user or all."""
        ...

    def pending_for(self, user_id: str) -> int:
        """Unfinished tasks (queued, running, failed-awaiting-retry) of a user."""
        ...

    def wait_for_work(self, timeout_s: float) -> None:
        """Block up to ``timeout_s`` or until new work may be claimable (idle workers)."""
        ...

    def close(self) -> None: ...
