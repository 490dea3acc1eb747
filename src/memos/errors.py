"""One error hierarchy for the whole product.

Each class carries the cloud error code from the MemOS API reference and the
HTTP status the open-source dialect answers with. Domain code raises these;
the API layer renders them in one place (``memos.api.errors``), so no face
invents its own error shapes.
"""

from __future__ import annotations

from typing import Any


class MemosError(Exception):
    """Base of every error this package raises on purpose."""

    code: int = 50000
    http_status: int = 500

    def __init__(self, message: str, *, code: int | None = None, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.data = data


class InvalidParameter(MemosError):
    """The request is malformed: wrong type, structure or value (40000)."""

    code = 40000
    http_status = 400


class PayloadTooLarge(InvalidParameter):
    """The request body exceeds the server's cap (40000, HTTP 413)."""

    http_status = 413


class RequestTimeout(InvalidParameter):
    """The request body did not arrive in time (40000, HTTP 408)."""

    http_status = 408


class MissingField(InvalidParameter):
    """A required field is absent or blank (40002)."""

    code = 40002


class EmptyField(InvalidParameter):
    """A provided list or object is empty (40003)."""

    code = 40003


class UnsupportedType(InvalidParameter):
    """A ``type`` value the API does not know (40006)."""

    code = 40006


class UserIdTooLong(InvalidParameter):
    code = 40010


class ConversationIdTooLong(InvalidParameter):
    code = 40011


class InvalidRelativity(InvalidParameter):
    """``relativity`` outside 0..1 (40012)."""

    code = 40012


class InputTooLong(InvalidParameter):
    """Input exceeds its token budget (40305)."""

    code = 40305


class NotFound(MemosError):
    """Requested data does not exist in the caller's scope (40001)."""

    code = 40001
    http_status = 404


class MemoryNotFound(NotFound):
    """A memory to delete does not exist in the caller's scope (40307)."""

    code = 40307


class UserNotFound(NotFound):
    """A user to delete has no data (40308)."""

    code = 40308


class TaskNotFound(NotFound):
    code = 50131


class PermissionDenied(MemosError):
    """The caller may not touch that cube or memory (40306)."""

    code = 40306
    http_status = 403


class Unavailable(MemosError):
    """A backing service is down; the caller may retry (50004)."""

    code = 50004
    http_status = 503


class StoreError(Unavailable):
    """The storage backend failed; raised by store adapters."""


class ProviderError(Unavailable):
    """An embedder, LLM or reranker provider failed."""


class LLMNotConfigured(MemosError):
    """A feature needs an LLM and none is configured (50002: operation failed).

    HTTP 501 on the ``/product`` dialect: the server lacks the capability; the
    caller cannot fix it by retrying or changing the request (except by using
    fast mode).
    """

    code = 50002
    http_status = 501

    def __init__(self, feature: str) -> None:
        super().__init__(
            f"{feature} needs an LLM and none is configured: start the server with "
            "MEMOS_LLM_BACKEND=openai, MEMOS_LLM_BASE_URL (an OpenAI-compatible endpoint, "
            "e.g. http://localhost:11434/v1) and MEMOS_LLM_MODEL set"
        )


class ConfigError(MemosError):
    """Settings are invalid; raised at startup, never mid-request."""

    code = 50000
    http_status = 500
