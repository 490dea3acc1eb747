"""The HTTP guard: every request body is bounded, timed and checked before routing.

A pure ASGI middleware, in front of FastAPI, so that no route can forget it:

- a body over ``http.max_body_bytes`` answers 413 without being buffered
  (a ``Content-Length`` over the cap is refused before reading anything);
- a body not received within ``http.body_timeout_s`` answers 408 (slow clients);
- a JSON body is parsed once here with duplicate keys and NaN/Infinity refused
  (a proxy reading the first ``user_id`` and this server the last would disagree
  on the tenant), then ``service.validation.check_payload`` refuses values no
  field may hold, so the routes see only sane JSON. The bytes are then replayed
  to FastAPI unchanged.

Errors use the dialect's envelope (``api/errors.py``). Header read timeouts are
the server's job (``api/server.py``): an ASGI app is called only after headers.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from memos.api.errors import envelope
from memos.errors import InvalidParameter, MemosError, PayloadTooLarge, RequestTimeout
from memos.service.validation import check_payload, safe_field
from memos.settings import HttpSettings, LimitSettings

logger = logging.getLogger(__name__)

_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidParameter(f"the request body repeats the key {safe_field(key)!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise InvalidParameter(f"{name} is not a JSON number; send a finite number")


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)


def parse_json_body(body: bytes, limits: LimitSettings) -> Any:
    """Parse a request body strictly and check it (InvalidParameter on any problem)."""
    try:
        # decoded as json.loads decodes bytes (UTF-8/16/32, BOM), then one shared decoder
        value = _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except (UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, MemosError):
            raise
        raise InvalidParameter("request body is not valid JSON") from None
    except RecursionError:
        raise InvalidParameter(f"body nests deeper than {limits.max_json_depth} levels") from None
    check_payload(value, limits)
    return value


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            media = bytes(value).split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return True  # FastAPI reads a body without a content type as JSON too


class RequestGuard:
    """ASGI middleware applying the body cap, the body timeout and the JSON checks."""

    def __init__(self, app: ASGIApp, http: HttpSettings, limits: LimitSettings) -> None:
        self.app = app
        self.http = http
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _BODYLESS:
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read_body(scope, receive)
            if body is None:  # the client went away
                return
            if body and _is_json(scope):
                parse_json_body(body, self.limits)
        except MemosError as exc:
            await self._refuse(scope, receive, send, exc)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        cap = self.http.max_body_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise InvalidParameter("Content-Length is not a number") from None
                if declared > cap:
                    raise PayloadTooLarge(self._too_large(declared))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.http.body_timeout_s
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise RequestTimeout(
                    f"the request body did not arrive within {self.http.body_timeout_s:g} s"
                ) from None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > cap:
                raise PayloadTooLarge(self._too_large(size))
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self, size: int) -> str:
        return (
            f"the request body is over {self.http.max_body_bytes} bytes ({size} sent); "
            "split the request (MEMOS_HTTP__MAX_BODY_BYTES raises the cap)"
        )

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, exc: MemosError) -> None:
        logger.info("refused %s %s: %s", scope["method"], scope["path"], exc.message)
        response = envelope(Request(scope), exc.http_status, exc.code, exc.message, exc.data)
        if isinstance(exc, PayloadTooLarge | RequestTimeout):
            response.headers["connection"] = "close"  # the unread rest is not worth reading
        await response(scope, receive, send)
