"""``MemOSClient``: the HTTP face, talking to ``memos serve`` (or MemOS cloud)."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from memos.errors import MemosError, Unavailable
from memos.sdk.base import Endpoint, MemoryAPI

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8000"


def _error_classes() -> dict[int, type[MemosError]]:
    """Cloud code -> the most general MemosError class carrying it (breadth first)."""
    found: dict[int, type[MemosError]] = {}
    queue: list[type[MemosError]] = [MemosError]
    while queue:
        cls = queue.pop(0)
        found.setdefault(cls.code, cls)
        queue.extend(cls.__subclasses__())
    return found


ERROR_CLASSES: dict[int, type[MemosError]] = _error_classes()


def error_for(code: int, message: str, data: Any = None) -> MemosError:
    """The exception a cloud envelope with a non-zero ``code`` stands for.

    Classes with their own constructor (``LLMNotConfigured(feature)``) are
    built without it, so the caller still gets the right type with the
    server's message.
    """
    cls = ERROR_CLASSES.get(code, MemosError)
    if cls.__init__ is MemosError.__init__:
        return cls(message, code=code, data=data)
    exc = cls.__new__(cls)
    MemosError.__init__(exc, message, code=code, data=data)
    return exc


class MemOSClient(MemoryAPI):
    """Memories on a MemOS server; methods return the envelope's ``data``.

    ``api_key`` is sent as ``Authorization: Token <api_key>``. Server errors
    raise the matching :class:`memos.errors.MemosError` subclass; a server
    that cannot be reached raises :class:`memos.errors.Unavailable`.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Token {api_key}"
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def _call(self, endpoint: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}{endpoint}"
        try:
            response = self._http.post(endpoint, json=body)
        except httpx.TimeoutException as exc:
            raise Unavailable(f"{url} did not answer in time ({exc.__class__.__name__})") from None
        except httpx.TransportError as exc:
            raise Unavailable(
                f"could not reach the MemOS server at {self.base_url} ({exc}); "
                "start it with `memos serve` or pass the right URL"
            ) from None
        return self._unwrap(url, response)

    @staticmethod
    def _unwrap(url: str, response: httpx.Response) -> dict[str, Any]:
        try:
            envelope = response.json()
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict) or "code" not in envelope:
            raise MemosError(
                f"{url} answered HTTP {response.status_code} without a MemOS envelope",
                code=50000 if response.status_code >= 500 else 40000,
            )
        code = envelope.get("code")
        message = str(envelope.get("message") or "")
        if code == 0:
            data = envelope.get("data")
            if not isinstance(data, dict):
                raise MemosError(f"{url} answered code 0 with non-object data: {data!r}")
            return data
        if not isinstance(code, int):
            raise MemosError(f"{url} answered with a non-integer code {code!r}: {message}")
        logger.debug("%s answered code %d: %s", url, code, message)
        raise error_for(code, message, envelope.get("data"))

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"MemOSClient(base_url={self.base_url!r})"
