"""Zero-configuration reranking with the embedder the service already has.

``/rerank`` must answer without any extra model or service; the embedder's
cosine is the best ranking available then. Scores use the same calibration as
search's ``relativity``, so a threshold means the same on both endpoints.
"""

from __future__ import annotations

import math

from memos.embedders.base import Embedder
from memos.rerank.base import RerankResult, finish
from memos.search.calibration import coverage, query_terms, relativity


class CosineReranker:
    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder

    @property
    def name(self) -> str:
        return f"cosine:{self._embedder.name}"

    def close(self) -> None:
        """The embedder belongs to the service; nothing to release here."""

    def rerank(
        self, query: str, documents: list[str], top_n: int | None = None
    ) -> list[RerankResult]:
        if not documents:
            return []
        qvec = self._embedder.embed_query(query)
        cosines = self._embedder.embed(documents) @ qvec
        terms = query_terms(query)
        scored = [
            RerankResult(i, relativity(float(c) if math.isfinite(c) else 0.0, coverage(terms, doc)))
            for i, (c, doc) in enumerate(zip(cosines, documents, strict=True))
        ]
        return finish(scored, len(documents), top_n)
