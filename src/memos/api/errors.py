"""Render every error, in one place, in the envelope of the dialect served.

Cloud paths answer ``{code: <MemOS error code>, message, data}``; ``/product``
paths answer ``{code: <HTTP status>, message, data: {error_code}}``. Request
bodies that fail to parse are 40000 (40002 when a required field is missing);
anything unexpected is logged with its traceback and answered 50000 without
internals.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from memos.errors import MemosError
from memos.wire.errors import validation_error

logger = logging.getLogger(__name__)


def is_product(request: Request) -> bool:
    return request.url.path.startswith("/product") or request.url.path == "/health"


def envelope(
    request: Request, status: int, code: int, message: str, data: Any = None
) -> JSONResponse:
    if is_product(request):
        body = {"code": status, "message": message, "data": {"error_code": code, "detail": data}}
    else:
        body = {"code": code, "message": message, "data": data}
    return JSONResponse(body, status_code=status)


def install(app: FastAPI) -> None:
    @app.exception_handler(MemosError)
    async def _memos(request: Request, exc: MemosError) -> JSONResponse:
        return envelope(request, exc.http_status, exc.code, exc.message, exc.data)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = validation_error(list(exc.errors()))
        return envelope(request, 400, err.code, err.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = 40001 if exc.status_code == 404 else 40000
        response = envelope(request, exc.status_code, code, str(exc.detail))
        response.headers.update(exc.headers or {})  # e.g. the Allow header a 405 must carry
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return envelope(request, 500, 50000, "internal server error; see the server log")
