"""Build the ASGI app around one MemoryService."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from memos import __version__
from memos.api import cloud, errors, openapi, product, server
from memos.api.limits import RequestGuard
from memos.service import MemoryService
from memos.settings import Settings, inherited_settings, load_settings

logger = logging.getLogger("memos.api")


def create_app(settings: Settings | None = None, service: MemoryService | None = None) -> FastAPI:
    """An app serving both dialects; it owns (and closes) the service it creates."""
    settings = settings or load_settings()
    owned = service is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.service is None:
            app.state.service = MemoryService.open(settings)
        yield
        if owned and app.state.service is not None:
            app.state.service.close()

    app = FastAPI(
        title="MemOS",
        version=__version__,
        description="Memory operating system for LLM apps: cloud and /product dialects.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.settings = settings
    errors.install(app)
    openapi.install(app)
    # outermost: the body cap, body timeout and JSON checks run before any route
    app.add_middleware(RequestGuard, http=settings.http, limits=settings.limits)
    app.include_router(cloud.router)
    app.include_router(product.router)

    @app.middleware("http")
    async def log_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        logger.info(
            "%s %s %d %.1fms",
            request.method,
            request.url.path,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return response

    return app


def create_app_from_environment() -> FastAPI:
    """uvicorn's app factory in each ``memos serve --workers N`` process.

    The parent resolved the settings (config file, environment, flags) and
    handed them down as JSON (``memos.settings.hand_down``); each process opens
    its own service on them. Log lines carry the process id.
    """
    settings = inherited_settings()
    server.configure(settings.http.header_timeout_s)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s",
    )
    return create_app(settings)
