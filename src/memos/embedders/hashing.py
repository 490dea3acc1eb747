"""Feature-hashing embedder: deterministic, dependency-free, and semantically weak.

It exists only so unit tests of plumbing (stores, search, API) run fast and
offline without loading a neural model. Do not use it for real retrieval: it
matches shared words, not meaning.
"""

from __future__ import annotations

import hashlib
import logging
import re

import numpy as np

from memos.embedders.base import Vectors
from memos.errors import ConfigError

logger = logging.getLogger(__name__)

_WORD = re.compile(r"\w+", re.UNICODE)


class HashEmbedder:
    """Signed feature hashing of lowercase word unigrams and bigrams, L2-normalised.

    For tests of plumbing only. Uses blake2b rather than ``hash()`` so vectors
    are identical across processes and ``PYTHONHASHSEED`` values.
    Empty (or word-less) text maps to the zero vector.
    """

    def __init__(self, dim: int = 256) -> None:
        if dim < 1:
            raise ConfigError(f"hash embedder dim must be >= 1, got {dim}")
        self._dim = dim

    @property
    def name(self) -> str:
        return f"hash-{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: list[str]) -> Vectors:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            self._fill(out[row], text)
        return out

    def embed_query(self, text: str) -> Vectors:
        row: Vectors = self.embed([text])[0]
        return row

    def _fill(self, row: Vectors, text: str) -> None:
        words = _WORD.findall(text.lower())
        features = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
        for feature in features:
            digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
            value = int.from_bytes(digest, "little")
            sign = 1.0 if value >> 63 else -1.0
            row[value % self._dim] += sign
        norm = float(np.linalg.norm(row))
        if norm > 0.0:
            row /= norm
