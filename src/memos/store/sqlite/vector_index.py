"""In-memory vector search over one cube's live memories.

Small cubes are scanned exactly (matrix-vector product + ``argpartition``).
From ``PROJECT_MIN`` rows on, a first pass scores a PCA projection of the
vectors (``PROJECTED_DIMS`` of 384 dims: a quarter of the memory traffic), and
the best ``RESCORE_POOL`` candidates are rescored exactly in full precision.
On the scale bench's vectors (MiniLM, LoCoMo questions as queries) rescoring
2,000 instead of 500 lifts recall@10 against the exact scan from 0.972 to 0.992
and recall@100 from 0.927 to 0.972 at 1M rows, for ~0.5 ms more.

From ``IVF_MIN`` rows on, even the projected scan is too much memory traffic
(1M x 96 float32 = 384 MB, ~40 ms per query on two cores), so the projected
rows are split into inverted lists by spherical k-means in the projected space
(``IVF_LIST_ROWS`` rows per list on average) and the first pass scans only the
lists whose centroids are nearest the query: ``IVF_PROBE_SHARE`` of them, or
enough for ``IVF_PROBE_ROWS`` rows, whichever is more. The rescoring is the
same. At 1M rows (1,000 lists, 250 probed) that is 0.17 x the exact scan's time
with recall@10 0.982 / recall@100 0.955 (``memos bench scale``); it needs that
many probes because a bench memory is two unrelated sentences, so its
neighbours scatter over many lists (a fifth of the lists gave 0.978-0.985 at
1M and only 0.965 at 300k rows, hence ``IVF_MIN``).
The lists are built on the first search (k-means on a sample, then every row
assigned: ~10 s at 1M rows), take new rows by nearest centroid, and are
rebuilt once the cube has doubled since. Searching never builds anything else.

Unlike HNSW none of this needs a long build, it applies any SQL pre-filter
exactly (a mask over the first pass, or an exact scan for small filters), and
deletes for free; graph indexes measured here lost recall (0.63-0.88 at
similar speed) and take 40-80 s to build at 100k.
The matrix is a cache of ``memory_vectors``: rebuilt when another process
bumped the cube's generation, patched in place for this process's writes.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]
RowIds = npt.NDArray[np.int64]
Positions = npt.NDArray[np.int64]
Labels = npt.NDArray[np.int32]

PROJECT_MIN = 20_000
PROJECTED_DIMS = 96
RESCORE_POOL = 2_000
PCA_SAMPLE = 8192

IVF_MIN = 500_000  # live rows from which the first pass probes inverted lists
IVF_LIST_ROWS = 1_000  # rows per list on average when the lists are built
IVF_PROBE_SHARE = 0.25  # share of the lists the first pass scans (more under a filter) ...
IVF_PROBE_ROWS = 200_000  # ... or enough lists for this many rows, whichever is more
IVF_PROBE_MIN = 32
IVF_TRAIN_PER_LIST = 48  # k-means sample: rows per list
IVF_ITERS = 8
IVF_FILTER_EXACT = 50_000  # a filter leaving at most this many rows is scanned exactly
_CHUNK = 8192
_BLAS_ONE_THREAD = 262_144  # elements; OpenBLAS keeps products this small on one thread


def matvec(mat: Vectors, q: Vectors) -> Vectors:
    """``mat @ q`` on this thread only.

    OpenBLAS splits a matrix-vector product over its threads above ~460k
    elements; on a busy two-core machine the second thread often waits for a
    core, and a 2,000 x 384 product took 8 ms instead of 0.1 ms (p50, measured).
    numpy's own loop (einsum) stays on this thread: as fast under load, slightly
    slower on an idle machine (1M x 96: 42 ms vs 48 ms for BLAS under load).
    """
    if mat.size <= _BLAS_ONE_THREAD:
        out: Vectors = mat @ q
        return out
    scores: Vectors = np.einsum("ij,j->i", mat, q)
    return scores


def _nearest(x: Vectors, centroids: Vectors) -> Labels:
    """Index of the centroid with the largest inner product, per row (in chunks)."""
    out = np.empty(len(x), np.int32)
    ct = np.ascontiguousarray(centroids.T)
    for i in range(0, len(x), _CHUNK):
        out[i : i + _CHUNK] = np.argmax(x[i : i + _CHUNK] @ ct, axis=1)
    return out


def _normalise(x: Vectors) -> Vectors:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out: Vectors = (x / np.maximum(norms, 1e-12)).astype(np.float32)
    return out


def spherical_kmeans(x: Vectors, k: int, iters: int, seed: int = 0) -> Vectors:
    """``k`` unit centroids of the rows of ``x`` (cosine k-means, empty lists reseeded)."""
    rng = np.random.default_rng(seed)
    x = _normalise(x)
    centroids = x[rng.choice(len(x), k, replace=False)].copy()
    for _ in range(iters):
        labels = _nearest(x, centroids)
        counts = np.bincount(labels, minlength=k)
        full = counts > 0
        order = np.argsort(labels, kind="stable")
        starts = (np.cumsum(counts) - counts)[full]
        centroids[full] = np.add.reduceat(x[order], starts, axis=0)
        empty = int(np.count_nonzero(~full))
        if empty:
            centroids[~full] = x[rng.choice(len(x), empty, replace=False)]
        centroids = _normalise(centroids)
    return centroids


class _Lists:
    """Inverted lists of projected rows: per list, the rows and their matrix positions.

    Mutations happen under the owning ``CubeVectors`` lock. A list only grows
    in place beyond its count; any other change puts new arrays in its slot,
    so a search holding (rows, positions, count) of a list reads a stable view.
    """

    def __init__(self, centroids: Vectors, capacity: int) -> None:
        self.centroids = centroids
        nlist = len(centroids)
        empty_rows = np.zeros((0, centroids.shape[1]), np.float32)
        empty_pos = np.zeros(0, np.int64)
        self.rows: list[Vectors] = [empty_rows] * nlist
        self.pos: list[Positions] = [empty_pos] * nlist
        self.count = np.zeros(nlist, np.int64)
        self.where = np.full(capacity, -1, np.int32)  # list of each matrix position
        self.built = 0

    def __len__(self) -> int:
        return len(self.centroids)

    def fill(self, positions: Positions, proj: Vectors) -> None:
        """Initial bulk load into empty lists."""
        labels = _nearest(proj, self.centroids)
        order = np.argsort(labels, kind="stable")
        counts = np.bincount(labels, minlength=len(self))
        ends = np.cumsum(counts)
        for lid in np.flatnonzero(counts):
            idx = order[ends[lid] - counts[lid] : ends[lid]]
            self.rows[lid] = proj[idx]
            self.pos[lid] = positions[idx]
        self.count = counts.astype(np.int64)
        self.where[positions] = labels
        self.built = len(positions)

    def add(self, positions: Positions, proj: Vectors) -> None:
        if not len(positions):
            return
        labels = _nearest(proj, self.centroids)
        self.grow_where(int(positions.max()) + 1)
        order = np.argsort(labels, kind="stable")
        counts = np.bincount(labels, minlength=len(self))
        ends = np.cumsum(counts)
        for lid in np.flatnonzero(counts):
            idx = order[ends[lid] - counts[lid] : ends[lid]]
            have, need = int(self.count[lid]), int(self.count[lid]) + len(idx)
            rows, pos = self.rows[lid], self.pos[lid]
            if need > len(pos):
                cap = max(need, have + have // 2 + 16)
                grown_rows = np.zeros((cap, rows.shape[1]), np.float32)
                grown_rows[:have] = rows[:have]
                grown_pos = np.zeros(cap, np.int64)
                grown_pos[:have] = pos[:have]
                rows, pos = grown_rows, grown_pos
                self.rows[lid], self.pos[lid] = rows, pos
            rows[have:need] = proj[idx]
            pos[have:need] = positions[idx]
            self.count[lid] = need
        self.where[positions] = labels

    def drop(self, position: int) -> None:
        """Take one matrix position out of its list (copy-on-write)."""
        if position >= len(self.where) or self.where[position] < 0:
            return
        lid = int(self.where[position])
        have = int(self.count[lid])
        keep = self.pos[lid][:have] != position
        self.rows[lid] = self.rows[lid][:have][keep]
        self.pos[lid] = self.pos[lid][:have][keep]
        self.count[lid] = len(self.pos[lid])
        self.where[position] = -1

    def grow_where(self, need: int) -> None:
        if need > len(self.where):
            where = np.full(max(need, 2 * len(self.where)), -1, np.int32)
            where[: len(self.where)] = self.where
            self.where = where

    def remap(self, keep: npt.NDArray[np.bool_], new_pos: Positions) -> None:
        """Matrix compaction: drop dead positions, renumber the rest."""
        for lid in np.flatnonzero(self.count):
            have = int(self.count[lid])
            pos = self.pos[lid][:have]
            live = keep[pos]
            self.rows[lid] = self.rows[lid][:have][live]
            self.pos[lid] = new_pos[pos[live]]
            self.count[lid] = len(self.pos[lid])
        old = self.where[: len(keep)]
        where = np.full(max(int(np.count_nonzero(keep)), 1), -1, np.int32)
        where[new_pos[keep]] = old[keep]
        self.where = where

    def probe(self, qp: Vectors, nprobe: int) -> list[tuple[Vectors, Positions, int]]:
        """Snapshot of the ``nprobe`` lists nearest the projected query (caller holds the lock)."""
        cs = matvec(self.centroids, qp)
        if nprobe < len(cs):
            chosen = np.argpartition(-cs, nprobe - 1)[:nprobe]
        else:
            chosen = np.arange(len(cs))
        return [
            (self.rows[lid], self.pos[lid], int(self.count[lid]))
            for lid in chosen
            if self.count[lid]
        ]


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
        self._proj: Vectors | None = None  # projected rows, aligned with _mat (below IVF_MIN)
        self._lists: _Lists | None = None  # inverted lists of projected rows (from IVF_MIN)

    def __len__(self) -> int:
        return self._n - self._dead

    @property
    def mode(self) -> str:
        """How the first pass runs now: ``exact``, ``projected`` or ``lists``."""
        if self._lists is not None:
            return "lists"
        return "projected" if self._proj is not None else "exact"

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
            self._lists = None

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
            if self._basis is not None:
                projected = np.asarray(vectors, np.float32) @ self._basis
                if self._proj is not None:
                    self._proj[self._n : need] = projected
                if self._lists is not None:
                    self._lists.add(np.arange(self._n, need, dtype=np.int64), projected)
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
                if self._basis is not None:
                    projected = np.asarray(vector, np.float32).reshape(1, -1) @ self._basis
                    if self._proj is not None:
                        self._proj[pos[0]] = projected[0]
                    if self._lists is not None:
                        self._lists.drop(int(pos[0]))
                        self._lists.add(np.asarray([pos[0]], np.int64), projected)

    def _compact(self) -> None:
        keep = self._alive[: self._n]
        if self._lists is not None:
            new_pos = (np.cumsum(keep) - 1).astype(np.int64)
            self._lists.remap(keep, new_pos)
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

    def _ensure_index(self) -> None:
        """Fit the PCA basis / build the lists once the cube is big enough (lock held)."""
        live = self._n - self._dead
        if self._basis is None:
            if live < PROJECT_MIN:
                return
            self._fit_basis()
        if live >= IVF_MIN and (self._lists is None or live >= 2 * self._lists.built):
            self._build_lists()
        elif self._lists is None and self._proj is None:
            assert self._basis is not None
            proj = np.zeros((len(self._rowids), PROJECTED_DIMS), np.float32)
            proj[: self._n] = self._project(np.arange(self._n, dtype=np.int64))
            self._proj = proj

    def _fit_basis(self) -> None:
        live = np.flatnonzero(self._alive[: self._n])
        rng = np.random.default_rng(0)
        sample = self._mat[rng.choice(live, min(PCA_SAMPLE, len(live)), replace=False)]
        # Uncentred: the projection should preserve inner products, not variances.
        _, vecs = np.linalg.eigh(sample.T.astype(np.float64) @ sample)
        self._basis = np.ascontiguousarray(vecs[:, ::-1][:, :PROJECTED_DIMS], np.float32)

    def _project(self, positions: Positions) -> Vectors:
        """Projected rows of the given matrix positions (in chunks, no full gather)."""
        assert self._basis is not None
        out = np.empty((len(positions), PROJECTED_DIMS), np.float32)
        for i in range(0, len(positions), 65_536):
            out[i : i + 65_536] = self._mat[positions[i : i + 65_536]] @ self._basis
        return out

    def _build_lists(self) -> None:
        positions = np.flatnonzero(self._alive[: self._n]).astype(np.int64)
        proj = self._proj[positions] if self._proj is not None else self._project(positions)
        nlist = max(1, len(positions) // IVF_LIST_ROWS)
        rng = np.random.default_rng(0)
        size = min(len(positions), nlist * IVF_TRAIN_PER_LIST)
        sample = proj[np.sort(rng.choice(len(positions), size, replace=False))]
        lists = _Lists(spherical_kmeans(sample, nlist, IVF_ITERS), len(self._rowids))
        del sample
        lists.fill(positions, proj)
        self._lists, self._proj = lists, None

    def search(
        self, query: Vectors, k: int, allowed: RowIds | None = None
    ) -> list[tuple[int, float]]:
        """Top-k (rowid, cosine) among live rows, optionally only ``allowed`` rowids."""
        pool = max(RESCORE_POOL, 4 * k)
        probed: list[tuple[Vectors, Positions, int]] | None = None
        qp: Vectors | None = None
        with self._lock:
            self._ensure_index()
            n = self._n
            mat, ids, alive = self._mat[:n], self._rowids[:n], self._alive[:n]
            proj, basis, lists, dead = self._proj, self._basis, self._lists, self._dead
            pos: npt.NDArray[np.intp] | None = None
            if allowed is not None:
                pos = self._positions(allowed)
                pos = pos[alive[pos]]
            count = n - dead if pos is None else len(pos)
            if not count:
                return []
            if (
                lists is not None
                and basis is not None
                and count > 2 * pool
                and (pos is None or count > IVF_FILTER_EXACT)
            ):
                share = max(IVF_PROBE_SHARE, IVF_PROBE_ROWS / max(n - dead, 1))
                nprobe = max(IVF_PROBE_MIN, math.ceil(share * len(lists)))
                if pos is not None:
                    nprobe = math.ceil(nprobe * (n - dead) / count)
                qp = query @ basis
                probed = lists.probe(qp, nprobe)
        if probed is not None and qp is not None:
            cand = self._first_pass_lists(probed, qp, pool, n, alive, dead, pos)
            if cand is not None:
                return self._rescore(mat, ids, cand, query, k)
        if pos is None and dead:
            pos = np.flatnonzero(alive)
        if proj is not None and basis is not None and count > 2 * pool:
            rough = matvec(proj[:n], query @ basis)
            if pos is not None:
                keep = np.zeros(n, bool)
                keep[pos] = True
                rough[~keep] = -np.inf
            return self._rescore(mat, ids, np.argpartition(-rough, pool - 1)[:pool], query, k)
        if pos is not None:
            return self._rescore(mat, ids, pos, query, k)
        return self._top(matvec(mat, query), ids, k)

    @staticmethod
    def _first_pass_lists(
        probed: list[tuple[Vectors, Positions, int]],
        qp: Vectors,
        pool: int,
        n: int,
        alive: npt.NDArray[np.bool_],
        dead: int,
        pos: npt.NDArray[np.intp] | None,
    ) -> Positions | None:
        """The ``pool`` best positions of the probed lists; None if too few survive the masks."""
        rough = np.concatenate([matvec(rows[:c], qp) for rows, _, c in probed])
        where = np.concatenate([p[:c] for _, p, c in probed])
        inside = where < n  # rows appended after the snapshot are not ours to see
        if pos is not None:
            keep = np.zeros(n, bool)
            keep[pos] = True
            inside[inside] = keep[where[inside]]
        elif dead:
            inside[inside] = alive[where[inside]]
        if not inside.all():
            rough, where = rough[inside], where[inside]
        if len(where) < pool:
            return None  # the filter's rows sit elsewhere: scan them exactly instead
        best: Positions = where[np.argpartition(-rough, pool - 1)[:pool]]
        return best

    @classmethod
    def _rescore(
        cls,
        mat: Vectors,
        ids: RowIds,
        cand: npt.NDArray[np.intp] | Positions,
        query: Vectors,
        k: int,
    ) -> list[tuple[int, float]]:
        return cls._top(matvec(mat[cand], query), ids[cand], k)

    @staticmethod
    def _top(scores: Vectors, cand_ids: RowIds, k: int) -> list[tuple[int, float]]:
        k = min(k, len(scores))
        if not k:
            return []
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(cand_ids[i]), float(scores[i])) for i in top]

    def get(self, rowids: Sequence[int]) -> dict[int, Vectors]:
        with self._lock:
            want = np.asarray(rowids, np.int64)
            pos = self._positions(want)
            return {int(self._rowids[p]): self._mat[p].copy() for p in pos if self._alive[p]}
