"""Request-scoped access to the one service object the app was built with."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from memos.service import MemoryService


def service(request: Request) -> MemoryService:
    svc: MemoryService = request.app.state.service
    return svc


def cloud_ok(data: Any) -> dict[str, Any]:
    return {"code": 0, "message": "ok", "data": data}


def product_ok(data: Any, message: str = "ok") -> dict[str, Any]:
    return {"code": 200, "message": message, "data": data}
