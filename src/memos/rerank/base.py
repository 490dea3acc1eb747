"""The reranker port: order candidate texts by relevance to a query.

Results name documents by their position in the input list, so callers keep
their own objects (memories, ids) and the port stays text-only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class RerankResult:
    """One document's position in the input and its relevance (higher is better)."""

    index: int
    score: float


@runtime_checkable
class Reranker(Protocol):
    @property
    def name(self) -> str:
        """Backend and model, reported as the ``model`` of a ``/rerank`` answer."""
        ...

    def rerank(
        self, query: str, documents: list[str], top_n: int | None = None
    ) -> list[RerankResult]:
        """Best first; each index at most once; ``top_n`` None means every document."""
        ...

    def close(self) -> None: ...


def finish(results: Iterable[RerankResult], n_docs: int, top_n: int | None) -> list[RerankResult]:
    """Sort best first, keep one result per index and cut to ``top_n``.

    Documents the backend left out are appended after the scored ones (score 0,
    input order) so a reranker never silently drops a candidate; the caller's
    ``top_n`` is the only thing that shortens the list.
    """
    seen: set[int] = set()
    kept: list[RerankResult] = []
    for r in sorted(results, key=lambda r: -r.score):
        if 0 <= r.index < n_docs and r.index not in seen:
            seen.add(r.index)
            kept.append(r)
    kept.extend(RerankResult(i, 0.0) for i in range(n_docs) if i not in seen)
    return kept if top_n is None else kept[:top_n]
