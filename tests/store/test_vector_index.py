"""The two-stage (projected scan + exact rescoring) path of the vector cache."""

from __future__ import annotations

import numpy as np
import pytest

from memos.store.sqlite import vector_index
from memos.store.sqlite.vector_index import PROJECT_MIN, CubeVectors


def structured(n: int, dim: int = 384, seed: int = 0) -> np.ndarray:
    """Vectors with low-dimensional structure, like sentence embeddings."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 32)).astype(np.float32)
    w1 = rng.standard_normal((32, 256)).astype(np.float32)
    w2 = rng.standard_normal((256, dim)).astype(np.float32)
    x = np.tanh(z @ w1) @ w2 + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_projected_search_keeps_recall_filters_and_deletes() -> None:
    n = PROJECT_MIN + 10_000
    x = structured(n)
    rowids = np.arange(1, n + 1, dtype=np.int64)
    index = CubeVectors(384, generation=0)
    index.append(rowids.tolist(), x)
    rng = np.random.default_rng(1)
    queries = x[rng.choice(n, 40, replace=False)] + 0.3 * rng.standard_normal((40, 384))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)

    recalls = []
    for q in queries:
        exact = set((np.argsort(-(x @ q))[:10] + 1).tolist())
        got = [r for r, _ in index.search(q, 10)]
        recalls.append(len(exact & set(got)) / 10)
    assert np.mean(recalls) >= 0.97
    assert index._proj is not None  # the two-stage path really ran

    # a filter keeps only allowed rows, still ranked by the exact cosine
    allowed = rowids[rowids % 3 == 0]
    for q in queries[:5]:
        hits = index.search(q, 10, allowed)
        assert hits and all(r % 3 == 0 for r, _ in hits)
        scores = [s for _, s in hits]
        assert scores == sorted(scores, reverse=True)
        assert np.isclose(scores[0], float(x[hits[0][0] - 1] @ q), atol=1e-5)

    # deleted rows never come back; appended rows are found (projected on append)
    top = index.search(queries[0], 5)
    index.remove([r for r, _ in top])
    assert not {r for r, _ in top} & {r for r, _ in index.search(queries[0], 50)}
    index.append([n + 1], queries[0][None, :])
    assert index.search(queries[0], 1)[0][0] == n + 1


def test_inverted_lists_keep_recall_filters_writes_and_rebuild(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The IVF first pass (shrunk thresholds) against the exact scan, through every write."""
    monkeypatch.setattr(vector_index, "IVF_MIN", 30_000)
    monkeypatch.setattr(vector_index, "IVF_LIST_ROWS", 300)
    monkeypatch.setattr(vector_index, "IVF_PROBE_ROWS", 0)
    monkeypatch.setattr(vector_index, "IVF_PROBE_SHARE", 0.4)
    monkeypatch.setattr(vector_index, "IVF_PROBE_MIN", 8)
    monkeypatch.setattr(vector_index, "IVF_FILTER_EXACT", 1_000)
    n = 36_000
    x = structured(n, seed=3)
    rowids = np.arange(1, n + 1, dtype=np.int64)
    index = CubeVectors(384, generation=0)
    index.adopt(rowids, x.copy())
    rng = np.random.default_rng(4)
    queries = x[rng.choice(n, 30, replace=False)] + 0.3 * rng.standard_normal((30, 384))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)

    def recall(q: np.ndarray, got: list[tuple[int, float]], live: np.ndarray) -> float:
        scores = x @ q
        scores[~live] = -np.inf
        kth = np.sort(scores)[-10]
        return sum(s >= kth - 1e-5 for _, s in got[:10]) / 10

    live = np.ones(n, bool)
    assert np.mean([recall(q, index.search(q, 10), live) for q in queries]) >= 0.9
    assert index.mode == "lists"
    lists = index._lists
    assert lists is not None and len(lists) == n // 300

    # a filter wider than IVF_FILTER_EXACT: masked probing, only allowed rows, exact cosines
    allowed = rowids[rowids % 3 == 0]
    for q in queries[:5]:
        hits = index.search(q, 10, allowed)
        assert len(hits) == 10 and all(r % 3 == 0 for r, _ in hits)
        assert np.isclose(hits[0][1], float(x[hits[0][0] - 1] @ q), atol=1e-5)
    # a narrow filter: scanned exactly
    few = rowids[:500]
    best = int(np.argmax(x[:500] @ queries[0])) + 1
    assert index.search(queries[0], 1, few)[0][0] == best

    # deletes, appends (into the nearest list), replaces (moved between lists)
    top = [r for r, _ in index.search(queries[0], 5)]
    index.remove(top)
    live[np.asarray(top) - 1] = False
    assert not set(top) & {r for r, _ in index.search(queries[0], 50)}
    index.append([n + 1], queries[1][None, :])
    assert index.search(queries[1], 1)[0][0] == n + 1
    index.replace(7, queries[2])
    assert index.search(queries[2], 1)[0][0] == 7
    x[6] = queries[2]

    # compaction renumbers the lists' positions; results stay right
    gone = rng.choice(np.flatnonzero(live), n // 3, replace=False)
    index.remove((gone + 1).tolist())
    live[gone] = False
    assert index._dead == 0  # compacted
    x_live = np.vstack([x, queries[1][None, :]])
    live_all = np.append(live, True)
    for q in queries[3:8]:
        scores = x_live @ q
        scores[~live_all] = -np.inf
        got = index.search(q, 10)
        assert all(live_all[r - 1] for r, _ in got)
        assert got[0][1] <= scores.max() + 1e-5
    assert np.mean([recall(q, index.search(q, 10), live) for q in queries[8:]]) >= 0.9

    # the lists are rebuilt once the cube has doubled since they were built
    built = lists.built
    extra = structured(2 * built, seed=9)
    index.append(list(range(n + 2, n + 2 + len(extra))), extra)
    index.search(queries[0], 10)
    assert index._lists is not lists and index._lists is not None
    assert index._lists.built >= 2 * built
