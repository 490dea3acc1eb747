"""The embedder port: turn texts into L2-normalised float32 vectors.

Batch-first so adapters can amortise model overhead; queries get their own
method because some models (e5) embed queries and passages differently.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Anything that maps text to unit vectors of a fixed dimension."""

    @property
    def name(self) -> str:
        """Stable model identifier, stored beside vectors to catch model switches."""
        ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: list[str]) -> Vectors:
        """Embed passages; returns an (n, dim) float32 array of unit rows."""
        ...

    def embed_query(self, text: str) -> Vectors:
        """Embed one search query; returns a (dim,) float32 unit vector."""
        ...
