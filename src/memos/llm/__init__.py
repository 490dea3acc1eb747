"""LLM adapters behind the :class:`LLM` port, picked by settings."""

from __future__ import annotations

from memos.errors import ConfigError
from memos.llm.base import LLM, ChatMessage, JsonSchema, LLMError
from memos.settings import LLMSettings

__all__ = ["LLM", "ChatMessage", "JsonSchema", "LLMError", "build_llm"]


def build_llm(settings: LLMSettings) -> LLM | None:
    """The configured LLM, or None when ``backend`` is ``none``; bad settings raise ConfigError."""
    if settings.backend == "none":
        return None
    if settings.backend == "local":
        from memos.llm.local import LocalLLM

        return LocalLLM(
            settings.model,
            context_tokens=settings.context_tokens,
            threads=settings.threads,
            max_tokens=settings.max_tokens,
        )
    if not settings.base_url or not settings.model:
        raise ConfigError(
            "the openai LLM backend needs base_url and model, e.g. "
            "MEMOS_LLM_BASE_URL=http://localhost:11434/v1 MEMOS_LLM_MODEL=qwen2.5:3b"
        )
    from memos.llm.openai_compat import OpenAIChatLLM

    return OpenAIChatLLM(
        base_url=settings.base_url,
        model=settings.model,
        api_key=settings.api_key,
        timeout_s=settings.timeout_s,
        max_tokens=settings.max_tokens,
    )
