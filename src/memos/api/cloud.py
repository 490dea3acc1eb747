"""Cloud-dialect routes: every endpoint is a POST with a JSON body."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from memos.api import schemas as s
from memos.api.deps import cloud_ok, service
from memos.api.openapi import GUARDED, cloud_doc
from memos.service import MemoryService
from memos.wire import cloud

router = APIRouter(tags=["cloud"])
Svc = Depends(service)


@router.post(
    "/add/message",
    operation_id="add_message",
    responses=cloud_doc(s.AddMessageData, *GUARDED, 403, 501, 503),
)
def add_message(req: cloud.AddMessageRequest, svc: MemoryService = Svc) -> dict[str, Any]:
    return cloud_ok(cloud.add_message(svc, req))


@router.post(
    "/search/memory",
    operation_id="search_memory",
    responses=cloud_doc(s.SearchMemoryData, *GUARDED, 403, 503),
)
def search_memory(req: cloud.SearchMemoryRequest, svc: MemoryService = Svc) -> dict[str, Any]:
    return cloud_ok(cloud.search_memory(svc, req))


@router.post(
    "/get/memory",
    operation_id="get_memory",
    responses=cloud_doc(s.MemoryPageData, *GUARDED, 403, 503),
)
def get_memory(req: cloud.GetMemoryRequest, svc: MemoryService = Svc) -> dict[str, Any]:
    return cloud_ok(cloud.get_memory(svc, req))


@router.post(
    "/delete/memory",
    operation_id="delete_memory",
    responses=cloud_doc(s.DeleteData, *GUARDED, 403, 404, 503),
)
def delete_memory(req: cloud.DeleteMemoryRequest, svc: MemoryService = Svc) -> dict[str, Any]:
    return cloud_ok(cloud.delete_memory(svc, req))


@router.post(
    "/get/message",
    operation_id="get_message",
    responses=cloud_doc(s.GetMessageData, *GUARDED, 403, 503),
)
def get_message(req: cloud.GetMessageRequest, svc: MemoryService = Svc) -> dict[str, Any]:
    return cloud_ok(cloud.get_message(svc, req))


@router.post(
    "/extract/memory",
    operation_id="extract_memory",
    responses=cloud_doc(s.ExtractMemoryData, *GUARDED, 501, 502, 503),
)
def extract_memory(req: cloud.ExtractMemoryRequest, svc: MemoryService = Svc) -> dict[str, Any]:
    return cloud_ok(cloud.extract_memory(svc, req))


@router.post(
    "/get/status",
    operation_id="get_status",
    responses=cloud_doc(s.GetStatusData, *GUARDED, 404, 503),
)
def get_status(req: cloud.GetStatusRequest, svc: MemoryService = Svc) -> dict[str, Any]:
    return cloud_ok(cloud.get_status(svc, req))


@router.post(
    "/rerank",
    operation_id="rerank",
    responses=cloud_doc(s.RerankData, *GUARDED, 503),
)
def rerank(req: cloud.RerankRequest, svc: MemoryService = Svc) -> dict[str, Any]:
    return cloud_ok(cloud.rerank(svc, req))
