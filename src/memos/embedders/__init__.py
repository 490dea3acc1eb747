"""Embedder adapters behind the :class:`Embedder` port, picked by settings.

Adapters are imported inside :func:`build_embedder` so importing ``memos``
never pulls in onnxruntime, httpx clients or optional packages it won't use.
"""

from __future__ import annotations

import logging

from memos.embedders.base import Embedder, Vectors
from memos.errors import ConfigError
from memos.settings import EmbedderSettings

logger = logging.getLogger(__name__)

__all__ = ["Embedder", "Vectors", "build_embedder"]

_FIXED_DIMS = {"minilm": 384, "e5": 384}


def build_embedder(settings: EmbedderSettings) -> Embedder:
    """Construct the embedder ``settings.kind`` names; bad settings raise ConfigError."""
    kind = settings.kind
    fixed = _FIXED_DIMS.get(kind)
    if fixed is not None and settings.dim is not None and settings.dim != fixed:
        raise ConfigError(
            f"embedder kind {kind!r} produces {fixed}-dim vectors but dim={settings.dim} "
            "was configured; unset MEMOS_EMBEDDER__DIM or pick another kind"
        )
    if kind == "minilm":
        from memos.embedders.minilm import MiniLMEmbedder

        return MiniLMEmbedder(threads=settings.threads, batch_size=settings.batch_size)
    if kind == "e5":
        from memos.embedders.e5 import E5Embedder

        return E5Embedder(threads=settings.threads, batch_size=settings.batch_size)
    if kind == "openai":
        if not settings.base_url or not settings.model:
            raise ConfigError(
                "the openai embedder needs base_url and model, e.g. "
                "MEMOS_EMBEDDER__BASE_URL=http://localhost:11434/v1 "
                "MEMOS_EMBEDDER__MODEL=nomic-embed-text"
            )
        from memos.embedders.openai_compat import OpenAIEmbedder

        return OpenAIEmbedder(
            base_url=settings.base_url,
            model=settings.model,
            api_key=settings.api_key,
            dim=settings.dim,
            batch_size=settings.batch_size,
            timeout_s=settings.timeout_s,
        )
    if kind == "hash":
        from memos.embedders.hashing import HashEmbedder

        return HashEmbedder(dim=settings.dim or 256)
    raise ConfigError(f"unknown embedder kind {kind!r}; use minilm, e5, openai or hash")
