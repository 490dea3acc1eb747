"""Open-source-dialect routes under ``/product`` plus ``/health``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from memos import __version__
from memos.api import schemas as s
from memos.api.deps import product_ok, service
from memos.api.openapi import GUARDED, product_doc, stream_doc
from memos.service import MemoryService
from memos.wire import product, scheduler

router = APIRouter(tags=["product"])
Svc = Depends(service)


@router.get("/health", responses=product_doc(s.HealthData))
def health(svc: MemoryService = Svc) -> dict[str, Any]:
    return product_ok({"status": "ok", "version": __version__, "embedder": svc.embedder.name})


@router.post("/product/add", responses=product_doc(s.ProductAddData, *GUARDED, 403, 501, 503))
def add(req: product.ProductAddRequest, svc: MemoryService = Svc) -> dict[str, Any]:
    return product_ok(product.add(svc, req), "Memory created successfully")


@router.post("/product/search", responses=product_doc(s.ProductSearchData, *GUARDED, 403, 503))
def search(req: product.ProductSearchRequest, svc: MemoryService = Svc) -> dict[str, Any]:
    return product_ok(product.search(svc, req), "Search completed successfully")


@router.post("/product/get_all", responses=product_doc(s.GetAllData, *GUARDED, 403, 503))
def get_all(req: product.ProductGetAllRequest, svc: MemoryService = Svc) -> dict[str, Any]:
    return product_ok(product.get_all(svc, req), "Memories retrieved successfully")


@router.post("/product/get_memory", responses=product_doc(s.MemoryPageData, *GUARDED, 403, 503))
def get_memory(req: product.ProductGetMemoryRequest, svc: MemoryService = Svc) -> dict[str, Any]:
    return product_ok(product.get_memory(svc, req), "Memories retrieved successfully")


@router.get(
    "/product/get_memory/{memory_id}", responses=product_doc(s.MemoryLists, 400, 403, 404, 503)
)
def get_memory_by_id(
    memory_id: str,
    user_id: str = Query(..., max_length=100, description="owner of the memory"),
    svc: MemoryService = Svc,
) -> dict[str, Any]:
    return product_ok(product.get_memory_by_id(svc, user_id, memory_id), "Memory retrieved")


@router.post("/product/delete_memory", responses=product_doc(s.DeleteData, *GUARDED, 403, 404, 503))
def delete_memory(req: product.ProductDeleteRequest, svc: MemoryService = Svc) -> dict[str, Any]:
    return product_ok(product.delete(svc, req), "Memories deleted successfully")


# ---------------------------------------------------------------- scheduler
# Parameters are checked by memos.wire.scheduler so every bad value is a 40000.
UserName = Query(None, description="whose queue to wait on (1-100 characters)")
Timeout = Query(120.0, description="give up after this many seconds (0 < t <= 3600)")
Poll = Query(0.5, description="seconds between polls of the queue (0.05..60)")


@router.get("/product/scheduler/status", responses=product_doc(s.TaskStatusData, 400, 404, 503))
def scheduler_status(
    user_id: str | None = Query(None, description="owner of the task"),
    task_id: str | None = Query(None, description="the task_id an async add returned"),
    svc: MemoryService = Svc,
) -> dict[str, Any]:
    return product_ok(scheduler.task_status(svc, user_id, task_id), "Task status retrieved")


@router.get("/product/scheduler/allstatus", responses=product_doc(s.AllStatusData, 503))
def scheduler_allstatus(svc: MemoryService = Svc) -> dict[str, Any]:
    return product_ok(scheduler.all_status(svc), "Scheduler status retrieved")


@router.get(
    "/product/scheduler/task_queue_status", responses=product_doc(s.QueueStatusData, 400, 503)
)
def scheduler_task_queue_status(
    user_id: str | None = Query(None, description="whose backlog"),
    svc: MemoryService = Svc,
) -> dict[str, Any]:
    return product_ok(scheduler.queue_status(svc, user_id), "Task queue status retrieved")


@router.post("/product/scheduler/wait", responses=product_doc(s.WaitData, *GUARDED, 503))
async def scheduler_wait(
    user_name: str | None = UserName,
    timeout_seconds: float = Timeout,
    poll_interval: float = Poll,
    svc: MemoryService = Svc,
) -> dict[str, Any]:
    """Block until the user's queue is idle (message ``idle``) or the timeout (``timeout``)."""
    params = scheduler.wait_params(user_name, timeout_seconds, poll_interval)
    message, data = await scheduler.wait(svc, params)
    return product_ok(data, message)


@router.get(
    "/product/scheduler/wait/stream",
    response_class=StreamingResponse,
    responses=stream_doc(
        {"progress": s.WaitProgress, "idle": s.WaitData, "timeout": s.WaitData}, 400
    ),
)
async def scheduler_wait_stream(
    user_name: str | None = UserName,
    timeout_seconds: float = Timeout,
    poll_interval: float = Poll,
    svc: MemoryService = Svc,
) -> StreamingResponse:
    """Server-Sent Events: ``progress`` per poll, then ``idle`` or ``timeout``."""
    params = scheduler.wait_params(user_name, timeout_seconds, poll_interval)
    return StreamingResponse(
        scheduler.wait_stream(svc, params),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
