"""``/product/scheduler/*``: task status, queue backlog and waiting for idle.

The routes stay thin: parameter checks (every bad value is a 40000
``InvalidParameter`` in the ``/product`` envelope, never a 500), the answers'
shapes, and the wait loops. Waiting never blocks the event loop: each poll of
the queue runs on a worker thread and the pause between polls is an
``asyncio.sleep``, so one server can hold many waiting clients.

``/product/scheduler/status`` needs a ``task_id``: the queue keeps no per-user
index of tasks, so listing a user's recent tasks would mean a scan.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from memos.errors import InvalidParameter
from memos.service import MemoryService

MAX_NAME = 100
MAX_TIMEOUT_S = 3600.0
MIN_POLL_S, MAX_POLL_S = 0.05, 60.0


@dataclass(frozen=True)
class WaitParams:
    user_name: str
    timeout_s: float
    poll_s: float


def user_param(value: str | None, name: str) -> str:
    if value is None or not value.strip():
        raise InvalidParameter(f"{name} is required")
    if len(value) > MAX_NAME:
        raise InvalidParameter(f"{name} must be at most {MAX_NAME} characters")
    return value


def wait_params(user_name: str | None, timeout_seconds: float, poll_interval: float) -> WaitParams:
    user = user_param(user_name, "user_name")
    if not (math.isfinite(timeout_seconds) and 0 < timeout_seconds <= MAX_TIMEOUT_S):
        raise InvalidParameter(f"timeout_seconds must be > 0 and <= {MAX_TIMEOUT_S:g}")
    if not (math.isfinite(poll_interval) and MIN_POLL_S <= poll_interval <= MAX_POLL_S):
        raise InvalidParameter(
            f"poll_interval must be between {MIN_POLL_S:g} and {MAX_POLL_S:g} seconds"
        )
    return WaitParams(user, float(timeout_seconds), float(poll_interval))


# ------------------------------------------------------------------ status
def task_status(
    svc: MemoryService, user_id: str | None, task_id: str | None
) -> list[dict[str, Any]]:
    """One task of the user's, as a one-item list (the upstream shape)."""
    user = user_param(user_id, "user_id")
    if task_id is None or not task_id.strip():
        raise InvalidParameter("task_id is required (listing a user's tasks is not supported)")
    view = svc.task_view(task_id, user)  # TaskNotFound for unknown or another user's task
    out: dict[str, Any] = {
        "task_id": view.task_id,
        "status": view.status,
        "queue_status": view.queue_status,
        "attempts": view.attempts,
        "label": view.label,
    }
    if view.error is not None:
        out["error"] = view.error
    return [out]


def all_status(svc: MemoryService) -> dict[str, Any]:
    """Everyone's queue counts and this process's workers."""
    scheduler = svc.scheduler
    worker = scheduler.worker
    url = svc.settings.queue.url or ""
    return {
        "counts": scheduler.counts(),
        "queue": "redis" if url.startswith(("redis://", "rediss://")) else "sqlite",
        "workers": {
            "in_process": worker is not None,
            "worker_id": None if worker is None else worker.worker_id,
            "concurrency": 0 if worker is None else worker.concurrency,
            "busy": 0 if worker is None else worker.busy,
        },
        "llm_configured": svc.refiner is not None,
    }


def queue_status(svc: MemoryService, user_id: str | None) -> dict[str, Any]:
    """One user's backlog: counts per queue status and the open (unfinished) total."""
    user = user_param(user_id, "user_id")
    scheduler = svc.scheduler
    return {
        "user_id": user,
        "counts": scheduler.counts(user),
        "pending": scheduler.pending(user),
    }


# -------------------------------------------------------------------- wait
async def _polls(svc: MemoryService, params: WaitParams) -> AsyncIterator[tuple[int, float, bool]]:
    """(open tasks, seconds waited, final) per poll; the last one is idle or past the timeout."""
    started = time.monotonic()
    while True:
        open_tasks = await run_in_threadpool(svc.scheduler.pending, params.user_name)
        waited = time.monotonic() - started
        final = open_tasks == 0 or waited >= params.timeout_s
        yield open_tasks, waited, final
        if final:
            return
        await asyncio.sleep(min(params.poll_s, max(0.0, params.timeout_s - waited)))


def _outcome(params: WaitParams, open_tasks: int, waited: float) -> dict[str, Any]:
    return {
        "running_tasks": open_tasks,
        "waited_seconds": round(waited, 3),
        "timed_out": open_tasks > 0,
        "user_name": params.user_name,
    }


async def wait(svc: MemoryService, params: WaitParams) -> tuple[str, dict[str, Any]]:
    """Block (asynchronously) until the user's queue is idle: (message, data)."""
    last = (0, 0.0)
    async for open_tasks, waited, _final in _polls(svc, params):
        last = (open_tasks, waited)
    data = _outcome(params, *last)
    return ("timeout" if data["timed_out"] else "idle"), data


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


async def wait_stream(svc: MemoryService, params: WaitParams) -> AsyncIterator[str]:
    """SSE: a ``progress`` event per poll, then one ``idle`` or ``timeout`` event."""
    async for open_tasks, waited, final in _polls(svc, params):
        yield _event(
            "progress",
            {
                "running_tasks": open_tasks,
                "waited_seconds": round(waited, 3),
                "user_name": params.user_name,
            },
        )
        if final:
            data = _outcome(params, open_tasks, waited)
            yield _event("timeout" if data["timed_out"] else "idle", data)
