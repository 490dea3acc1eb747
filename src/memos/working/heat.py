"""Heat arithmetic: exponential decay and the eviction score, as pure functions.

Kept apart from the container so the scoring can be tested on numbers alone
and so the container's lock covers bookkeeping, not formulas.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from memos.embedders.base import Vectors

Floats = npt.NDArray[np.float64]


def decay_factor(elapsed: float, half_life: float) -> float:
    """Share of heat left after ``elapsed`` units (halves every ``half_life``).

    A negative elapsed time (a wall clock stepped back) decays nothing rather
    than heating memories up.
    """
    return float(0.5 ** (max(elapsed, 0.0) / half_life))


def decayed(heats: Floats, stamps: Floats, now: float, half_life: float) -> Floats:
    """Each heat decayed from its own stamp to ``now``."""
    elapsed = np.maximum(now - stamps, 0.0)
    out: Floats = heats * np.power(0.5, elapsed / half_life)
    return out


def scores(
    heats: Floats,
    topic_cos: Floats,
    uses: Floats,
    *,
    topic_weight: float,
    usage_weight: float,
) -> Floats:
    """The eviction score: decayed heat + closeness to the recent topic + log uses.

    Only a positive closeness counts: an unrelated memory is not pushed out
    faster than a memory that is merely old.
    """
    out: Floats = heats + topic_weight * np.maximum(topic_cos, 0.0) + usage_weight * np.log1p(uses)
    return out


def unit(vector: Vectors | npt.NDArray[np.floating], what: str = "vector") -> Vectors:
    """A float32 unit copy of ``vector``; refuses zero and non-finite vectors.

    Cosine over the set is a plain dot product, so every stored row and query
    must be unit length whatever the caller hands in.
    """
    row = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = math.sqrt(float(row @ row))
    if not math.isfinite(norm) or norm == 0.0:
        raise ValueError(f"{what} must be a finite non-zero vector")
    out: Vectors = (row / norm).astype(np.float32, copy=False)
    return out
