"""The two-stage (projected scan + exact rescoring) path of the vector cache."""

from __future__ import annotations

import numpy as np

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
