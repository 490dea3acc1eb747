"""Run the app under uvicorn with a header read timeout.

uvicorn's h11 protocol waits for request headers forever: a client that opens
a connection and sends a header line every few seconds holds it (and its
memory) indefinitely. ``GuardedH11Protocol`` closes a connection whose request
line and headers have not all arrived within ``http.header_timeout_s`` of its
first byte (or of the connection, for the first request). Body timeouts are
the ASGI guard's (``api/limits.py``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger(__name__)

# Set from HttpSettings before the server starts, in each server process
# (``configure``): uvicorn builds protocol instances itself, from the class.
_HEADER_TIMEOUT_S = 10.0


def configure(header_timeout_s: float) -> None:
    global _HEADER_TIMEOUT_S
    _HEADER_TIMEOUT_S = float(header_timeout_s)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for each request's headers."""

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:  # noqa: D102
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:  # noqa: D102
        if self._header_timer is None and (self.cycle is None or self.cycle.response_complete):
            self._arm()  # the first bytes of a request on a kept-alive connection
        super().data_received(data)
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # headers complete: the request is being served

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(_HEADER_TIMEOUT_S, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            return
        if not self.transport.is_closing():
            logger.info("closing a connection whose headers took over %.0f s", _HEADER_TIMEOUT_S)
            self.transport.close()
