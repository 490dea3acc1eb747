"""The LLM port: one chat call that returns the assistant's text.

Kept to what callers need today (a reranker, later a fine-mode reader): plain
messages in, text out, with an optional JSON schema so servers that support
constrained decoding return parseable JSON. Callers still parse defensively.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, TypedDict, runtime_checkable

from memos.errors import ProviderError

JsonSchema = Mapping[str, Any]


class ChatMessage(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


class LLMError(ProviderError):
    """The LLM could not be reached, refused the request or answered nonsense (50004)."""


@runtime_checkable
class LLM(Protocol):
    @property
    def name(self) -> str:
        """Backend and model, for logs and for the ``model`` a response reports."""
        ...

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        json_schema: JsonSchema | None = None,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> str:
        """The assistant's reply; raises :class:`LLMError` on any provider failure."""
        ...

    def close(self) -> None: ...
