"""Open-source-dialect routes under ``/product`` plus ``/health``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from memos import __version__
from memos.api.deps import product_ok, service
from memos.service import MemoryService
from memos.wire import product

router = APIRouter(tags=["product"])
Svc = Depends(service)


@router.get("/health")
def health(svc: MemoryService = Svc) -> dict[str, Any]:
    return product_ok({"status": "ok", "version": __version__, "embedder": svc.embedder.name})


@router.post("/product/add")
def add(req: product.ProductAddRequest, svc: MemoryService = Svc) -> dict[str, Any]:
    return product_ok(product.add(svc, req), "Memory created successfully")


@router.post("/product/search")
def search(req: product.ProductSearchRequest, svc: MemoryService = Svc) -> dict[str, Any]:
    return product_ok(product.search(svc, req), "Search completed successfully")


@router.post("/product/get_all")
def get_all(req: product.ProductGetAllRequest, svc: MemoryService = Svc) -> dict[str, Any]:
    return product_ok(product.get_all(svc, req), "Memories retrieved successfully")


@router.post("/product/get_memory")
def get_memory(req: product.ProductGetMemoryRequest, svc: MemoryService = Svc) -> dict[str, Any]:
    return product_ok(product.get_memory(svc, req), "Memories retrieved successfully")


@router.get("/product/get_memory/{memory_id}")
def get_memory_by_id(
    memory_id: str,
    user_id: str = Query(..., max_length=100, description="owner of the memory"),
    svc: MemoryService = Svc,
) -> dict[str, Any]:
    return product_ok(product.get_memory_by_id(svc, user_id, memory_id), "Memory retrieved")


@router.post("/product/delete_memory")
def delete_memory(req: product.ProductDeleteRequest, svc: MemoryService = Svc) -> dict[str, Any]:
    return product_ok(product.delete(svc, req), "Memories deleted successfully")
