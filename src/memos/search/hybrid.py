"""Hybrid retrieval: vector and BM25 candidates fused by reciprocal rank.

Ranking uses reciprocal-rank fusion (robust to the two scores' different
scales); ``relativity`` is a calibrated 0..1 relevance used only for the
caller's threshold: a logistic of the cosine, lifted for strong keyword matches
that embeddings miss (names, ids, rare words). The midpoint was set on the
LoCoMo public half with MiniLM: the seed's default threshold 0.45 then means
cosine >= 0.20, which keeps 97% of the evidence turns (cosine 0.30 kept 91%).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from memos.domain.filters import Node
from memos.domain.models import Scope, ScoredMemory
from memos.embedders.base import Embedder, Vectors
from memos.settings import SearchSettings
from memos.store.base import MemoryStore

COSINE_MIDPOINT = 0.22
COSINE_SLOPE = 12.0


def calibrate(cosine: float) -> float:
    return 1.0 / (1.0 + math.exp(-(cosine - COSINE_MIDPOINT) * COSINE_SLOPE))


@dataclass
class Candidate:
    memory_id: str
    fused: float = 0.0
    cosine: float | None = None
    lexical: float = 0.0  # BM25 normalised to the best hit, 0..1


class HybridSearcher:
    def __init__(self, store: MemoryStore, embedder: Embedder, settings: SearchSettings) -> None:
        self.store = store
        self.embedder = embedder
        self.settings = settings

    def search(
        self,
        scope: Scope,
        query: str,
        *,
        qvec: Vectors,
        limit: int,
        relativity: float,
        flt: Node | None = None,
        conversation_id: str | None = None,
    ) -> list[ScoredMemory]:
        pool = max(self.settings.candidate_pool, limit * 4)
        k = self.settings.rrf_k
        cands: dict[str, Candidate] = {}
        for rank, hit in enumerate(self.store.vector_search(scope, qvec, pool, flt)):
            c = cands.setdefault(hit.memory_id, Candidate(hit.memory_id))
            c.fused += self.settings.vector_weight / (k + rank + 1)
            c.cosine = hit.score
        text_hits = self.store.text_search(scope, query, pool, flt)
        best = text_hits[0].score if text_hits else 0.0
        for rank, hit in enumerate(text_hits):
            c = cands.setdefault(hit.memory_id, Candidate(hit.memory_id))
            c.fused += self.settings.text_weight / (k + rank + 1)
            c.lexical = hit.score / best if best > 0 else 0.0
        if not cands:
            return []
        ordered = sorted(cands.values(), key=lambda c: -c.fused)[: max(limit * 4, 40)]
        items = {m.id: m for m in self.store.get_memories(scope, [c.memory_id for c in ordered])}
        ordered = [c for c in ordered if c.memory_id in items]
        # One fetch serves both the cosines of keyword-only hits and the dedup below.
        vecs = dict(
            zip(
                (c.memory_id for c in ordered),
                self.store.vectors(scope, [c.memory_id for c in ordered]),
                strict=True,
            )
        )
        for c in ordered:
            if c.cosine is None:
                c.cosine = float(vecs[c.memory_id] @ qvec)
        if conversation_id is not None:
            for c in ordered:
                if items[c.memory_id].conversation_id == conversation_id:
                    c.fused *= 1.0 + self.settings.conversation_boost
            ordered.sort(key=lambda c: -c.fused)
        results: list[ScoredMemory] = []
        for c in ordered:
            rel = max(calibrate(c.cosine or 0.0), 0.75 * c.lexical if c.lexical >= 0.5 else 0.0)
            rel = round(min(1.0, max(0.0, rel)), 6)
            if relativity > 0 and rel < relativity:
                continue
            results.append(ScoredMemory(memory=items[c.memory_id], relativity=rel, score=c.fused))
        return self._dedup(results, vecs, limit)

    def _dedup(
        self, results: list[ScoredMemory], vectors: dict[str, Vectors], limit: int
    ) -> list[ScoredMemory]:
        """Drop near-identical hits (same text, or cosine above the dedup threshold)."""
        if len(results) <= 1:
            return results[:limit]
        head = results[: limit * 3]
        vecs = np.stack([vectors[r.memory.id] for r in head])
        kept: list[int] = []
        seen_text: set[str] = set()
        for i, r in enumerate(head):
            norm = " ".join(r.memory.value.lower().split())
            if norm in seen_text:
                continue
            if kept and float(np.max(vecs[kept] @ vecs[i])) >= self.settings.dedup_cosine:
                continue
            seen_text.add(norm)
            kept.append(i)
            if len(kept) >= limit:
                break
        return [head[i] for i in kept]
