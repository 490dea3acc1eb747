"""In-memory vector search over one cube's live memories.

Small cubes are scanned exactly (BLAS matrix-vector product + ``argpartition``).
From ``PROJECT_MIN`` rows on, a first pass scores a PCA projection of the
vectors (``PROJECTED_DIMS`` of 384 dims: a quarter of the memory traffic), and
the best ``RESCORE_POOL`` candidates are rescored exactly in full precision.
Measured at 100k x 384 on two cores: exact scan 10.4 ms, two-stage 3.0 ms with
recall@10 0.998 against the exact scan. Unlike HNSW it needs no build, applies
any SQL pre-filter exactly (a mask over the first pass), and deletes for free;
graph indexes measured here lost recall (0.63-0.88 at similar speed) and take
40-80 s to build at 100k.
The matrix is a cache of ``memory_vectors``: rebuilt when another process
bumped the cube's generation, patched in place for this process's writes.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]
RowIds = npt.NDArray[np.int64]

PROJECT_MIN = 20_000
PROJECTED_DIMS = 96
RESCORE_POOL = 500
PCA_SAMPLE = 8192


class CubeVectors:
    """Vectors of one cube, ordered by store rowid (appends keep that order)."""

    def __init__(self, dim: int, generation: int) -> None:
        self.dim = dim
        self.generation = generation
        self._lock = threading.Lock()
        self._mat: Vectors = np.zeros((0, dim), np.float32)
        self._rowids: RowIds = np.zeros(0, np.int64)
        self._alive: npt.NDArray[np.bool_] = np.zeros(0, bool)
        self._n = 0
        self._dead = 0
        self._basis: Vectors | None = None  # (dim, PROJECTED_DIMS)
        self._proj: Vectors | None = None  # projected rows, aligned with _mat

    def __len__(self) -> int:
        return self._n - self._dead

    def adopt(self, rowids: RowIds, vectors: Vectors) -> None:
        """Take over freshly loaded arrays without copying them (first load only)."""
        with self._lock:
            if self._n:
                raise ValueError("adopt() is only for an empty index")
            self._mat = vectors
            self._rowids = rowids
            self._alive = np.ones(len(rowids), bool)
            self._n = len(rowids)
            self._basis = self._proj = None

    def append(self, rowids: Sequence[int], vectors: Vectors) -> None:
        if not len(rowids):
            return
        with self._lock:
            need = self._n + len(rowids)
            if need > len(self._rowids):
                cap = max(need, 2 * len(self._rowids), 256)
                mat = np.zeros((cap, self.dim), np.float32)
                mat[: self._n] = self._mat[: self._n]
                ids = np.zeros(cap, np.int64)
                ids[: self._n] = self._rowids[: self._n]
                alive = np.zeros(cap, bool)
                alive[: self._n] = self._alive[: self._n]
                self._mat, self._rowids, self._alive = mat, ids, alive
                if self._proj is not None:
                    proj = np.zeros((cap, self._proj.shape[1]), np.float32)
                    proj[: self._n] = self._proj[: self._n]
                    self._proj = proj
            self._mat[self._n : need] = vectors
            if self._proj is not None and self._basis is not None:
                self._proj[self._n : need] = np.asarray(vectors, np.float32) @ self._basis
            self._rowids[self._n : need] = np.asarray(rowids, np.int64)
            self._alive[self._n : need] = True
            self._n = need

    def remove(self, rowids: Sequence[int]) -> None:
        with self._lock:
            pos = self._positions(np.asarray(rowids, np.int64))
            newly = pos[self._alive[pos]]
            self._alive[newly] = False
            self._dead += len(newly)
            if self._dead > 1024 and self._dead > self._n // 4:
                self._compact()

    def replace(self, rowid: int, vector: Vectors) -> None:
        with self._lock:
            pos = self._positions(np.asarray([rowid], np.int64))
            if len(pos):
                self._mat[pos[0]] = vector
                if self._proj is not None and self._basis is not None:
                    self._proj[pos[0]] = np.asarray(vector, np.float32) @ self._basis

    def _compact(self) -> None:
        keep = self._alive[: self._n]
        self._mat = np.ascontiguousarray(self._mat[: self._n][keep])
        if self._proj is not None:
            self._proj = np.ascontiguousarray(self._proj[: self._n][keep])
        self._rowids = self._rowids[: self._n][keep].copy()
        self._n = len(self._rowids)
        self._alive = np.ones(self._n, bool)
        self._dead = 0

    def _positions(self, rowids: RowIds) -> npt.NDArray[np.intp]:
        """Matrix positions of the given rowids (unknown ones are skipped)."""
        ids = self._rowids[: self._n]
        pos = np.searchsorted(ids, rowids)
        inside = pos < self._n
        pos, rowids = pos[inside], rowids[inside]
        found: npt.NDArray[np.intp] = pos[ids[pos] == rowids]
        return found

    def _ensure_projection(self) -> None:
        """Fit the PCA basis once the cube is big enough (caller holds the lock)."""
        if self._proj is not None or self._n - self._dead < PROJECT_MIN:
            return
        live = np.flatnonzero(self._alive[: self._n])
        rng = np.random.default_rng(0)
        sample = self._mat[rng.choice(live, min(PCA_SAMPLE, len(live)), replace=False)]
        # Uncentred: the projection should preserve inner products, not variances.
        _, vecs = np.linalg.eigh(sample.T.astype(np.float64) @ sample)
        basis = np.ascontiguousarray(vecs[:, ::-1][:, :PROJECTED_DIMS], np.float32)
        proj = np.zeros((len(self._rowids), PROJECTED_DIMS), np.float32)
        proj[: self._n] = self._mat[: self._n] @ basis
        self._basis, self._proj = basis, proj

    def search(
        self, query: Vectors, k: int, allowed: RowIds | None = None
    ) -> list[tuple[int, float]]:
        """Top-k (rowid, cosine) among live rows, optionally only ``allowed`` rowids."""
        with self._lock:
            self._ensure_projection()
            n = self._n
            mat, ids, alive = self._mat[:n], self._rowids[:n], self._alive[:n]
            proj, basis = self._proj, self._basis
            if allowed is not None:
                pos = self._positions(allowed)
                pos = pos[alive[pos]]
            elif self._dead:
                pos = np.flatnonzero(alive)
            else:
                pos = None
        count = n if pos is None else len(pos)
        if not count:
            return []
        pool = max(RESCORE_POOL, 4 * k)
        if proj is not None and basis is not None and count > 2 * pool:
            rough = proj[:n] @ (query @ basis)
            if pos is not None:
                keep = np.zeros(n, bool)
                keep[pos] = True
                rough[~keep] = -np.inf
            cand = np.argpartition(-rough, pool - 1)[:pool]
            scores = mat[cand] @ query
            cand_ids = ids[cand]
        elif pos is not None:
            scores = mat[pos] @ query
            cand_ids = ids[pos]
        else:
            scores = mat @ query
            cand_ids = ids
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(cand_ids[i]), float(scores[i])) for i in top]

    def get(self, rowids: Sequence[int]) -> dict[int, Vectors]:
        with self._lock:
            want = np.asarray(rowids, np.int64)
            pos = self._positions(want)
            return {int(self._rowids[p]): self._mat[p].copy() for p in pos if self._alive[p]}
