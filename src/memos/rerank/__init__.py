"""Reranker adapters behind the :class:`Reranker` port, picked by settings.

Adapters are imported inside :func:`build_reranker` so a server without a
reranker loads none of them.
"""

from __future__ import annotations

from memos.errors import ConfigError
from memos.llm.base import LLM
from memos.rerank.base import Reranker, RerankResult, finish
from memos.settings import RerankerSettings

__all__ = ["Reranker", "RerankResult", "build_reranker", "finish"]


def build_reranker(settings: RerankerSettings, llm: LLM | None = None) -> Reranker | None:
    """The configured reranker, or None for ``kind: none``; bad settings raise ConfigError."""
    if settings.kind == "none":
        return None
    if settings.kind == "http":
        if not settings.base_url:
            raise ConfigError(
                "the http reranker needs base_url, e.g. "
                "MEMOS_RERANKER__BASE_URL=http://localhost:8080/rerank"
            )
        from memos.rerank.http import HttpReranker

        return HttpReranker(
            base_url=settings.base_url,
            model=settings.model,
            api_key=settings.api_key,
            timeout_s=settings.timeout_s,
        )
    if settings.kind == "llm":
        if llm is None:
            raise ConfigError(
                "the llm reranker needs an LLM: set MEMOS_LLM_BACKEND=openai, "
                "MEMOS_LLM_BASE_URL and MEMOS_LLM_MODEL"
            )
        from memos.rerank.llm import LLMReranker

        return LLMReranker(llm)
    raise ConfigError(f"unknown reranker kind {settings.kind!r}; use none, http or llm")
