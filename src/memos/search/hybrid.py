"""Hybrid retrieval: vector and BM25 candidates, fused, then ordered by a linear score.

Stages (each measured in docs/benchmarks.md):

1. Candidates: the best ``candidate_pool`` of each channel, fused by weighted
   reciprocal rank (robust to the two scores' different scales).
2. Ordering: a linear score over five per-candidate features (fused rank
   score, cosine gap to the best cosine, normalised BM25, the share of the
   query's terms found in the memory's own text rather than its indexed
   context, and the names and numbers it states) plus, for the default
   embedder, a fitted salience direction of the memory vector
   (``search/ordering.py``; fitted and cross-validated by ``bench/feature_cv.py``).
3. Time: a query that names a time ("in May 2023", "last year") lifts
   memories whose event time falls inside it; near-duplicate versions of a fact
   are ordered newest first, or inside-the-window first when the query looks back.
4. Dedup of near-identical hits.

``relativity`` (search/calibration.py) is a calibrated 0..1 relevance used only
for the caller's threshold, never for the order.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from memos.domain.filters import Node
from memos.domain.models import ArchiveReason, MemoryItem, Scope, ScoredMemory
from memos.embedders.base import Embedder, Vectors
from memos.search.calibration import coverage, query_terms
from memos.search.calibration import relativity as relativity_of
from memos.search.ordering import load_ordering, speaker, specifics
from memos.settings import SearchSettings
from memos.store.base import MemoryStore, VectorHit
from memos.text.timequery import TimeWindow, parse_query_window, previous_state_window

# How far the time preference moves a memory, in the ordering model's units
# (its five feature weights sum to 10 in absolute value).
TIME_WEIGHT = 1.0
# Superseded versions a looking-back query may bring in (they compete with the
# current version only when the query asks for the past).
SUPERSEDED_POOL = 20
# Runs the keyword channel beside the vector one for stores with ``concurrent_reads``.
_CHANNELS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="memos-search")


@dataclass
class Candidate:
    memory_id: str
    fused: float = 0.0
    cosine: float | None = None
    lexical: float = 0.0  # BM25 normalised to the best hit, 0..1
    score: float = 0.0  # the ordering stage's linear score
    cover: float = 0.0  # share of the query's terms in the memory's own text


@dataclass
class CandidatePool:
    ordered: list[Candidate]
    items: dict[str, MemoryItem]
    vectors: dict[str, Vectors]


Row = tuple[float, float, float, float, float]


def features(pool: CandidatePool, query: str) -> list[Row]:
    """Per candidate: fused/best fused, cosine gap, BM25/best, own-text coverage, specifics.

    Coverage is the share of the query's terms found in the memory's own text:
    BM25 also matches the indexed context (neighbouring turns), which finds
    replies that only make sense with their question but also lets a
    neighbour's words lift a turn that says nothing about them. Specifics
    (``ordering.specifics``) leaves out the names of the pool's speakers.
    """
    top_fused = max(c.fused for c in pool.ordered)
    top_cos = max(c.cosine or 0.0 for c in pool.ordered)
    terms = query_terms(query)
    speakers = frozenset(
        name for c in pool.ordered if (name := speaker(pool.items[c.memory_id].value))
    )
    rows = []
    for c in pool.ordered:
        memory = pool.items[c.memory_id]
        cover = coverage(terms, f"{memory.key}\n{memory.value}")
        rows.append(
            (
                c.fused / top_fused,
                (c.cosine or 0.0) - top_cos,
                c.lexical,
                cover,
                specifics(memory.value, speakers),
            )
        )
    return rows


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
        now: datetime | None = None,
        working: Mapping[str, float] | None = None,
        text_hits: Future[list[VectorHit]] | None = None,
    ) -> list[ScoredMemory]:
        """``working``: the working set's nearest members (memory id -> cosine),
        lifted in the candidate pool and added to it when missing. ``text_hits``:
        the keyword channel, already started by ``prefetch_text``."""
        pool = self.candidates(
            scope,
            query,
            qvec=qvec,
            limit=limit,
            flt=flt,
            conversation_id=conversation_id,
            text_hits=text_hits,
        )
        if working:
            pool = self._consult_working(pool, scope, working, flt)
        if pool is None:
            return []
        window = None
        if self.settings.time_aware:
            window = parse_query_window(query, now) or previous_state_window(query, now)
            if window is not None:
                self._add_superseded(pool, scope, qvec, window, flt)
        self._order(pool, query, window)
        results: list[ScoredMemory] = []
        for c in pool.ordered:
            rel = relativity_of(c.cosine or 0.0, c.cover)
            if relativity > 0 and rel < relativity:
                continue
            results.append(
                ScoredMemory(memory=pool.items[c.memory_id], relativity=rel, score=c.score)
            )
        if self.settings.time_aware:
            results = self._versions_in_order(results, pool.vectors, window, conversation_id)
        return self._dedup(results, pool.vectors, limit)

    def _pool_size(self, limit: int) -> int:
        return max(self.settings.candidate_pool, limit * 4)

    def prefetch_text(
        self, scope: Scope, query: str, limit: int, flt: Node | None = None
    ) -> Future[list[VectorHit]] | None:
        """Start the keyword channel now, when the store runs on a database server.

        Such a store answers it on its own connection while this process embeds
        the query and runs the vector channel (the server's cores do the work);
        an in-process store would only contend for this process's (None).
        """
        if not getattr(self.store, "concurrent_reads", False):
            return None
        return _CHANNELS.submit(self.store.text_search, scope, query, self._pool_size(limit), flt)

    def candidates(
        self,
        scope: Scope,
        query: str,
        *,
        qvec: Vectors,
        limit: int,
        flt: Node | None = None,
        conversation_id: str | None = None,
        text_hits: Future[list[VectorHit]] | None = None,
    ) -> CandidatePool | None:
        """Both channels' best hits fused by weighted reciprocal rank, with items and vectors."""
        pool = self._pool_size(limit)
        k = self.settings.rrf_k
        cands: dict[str, Candidate] = {}
        text_future = text_hits or self.prefetch_text(scope, query, limit, flt)
        for rank, hit in enumerate(self.store.vector_search(scope, qvec, pool, flt)):
            c = cands.setdefault(hit.memory_id, Candidate(hit.memory_id))
            c.fused += self.settings.vector_weight / (k + rank + 1)
            c.cosine = hit.score
        keyword = (
            text_future.result()
            if text_future is not None
            else self.store.text_search(scope, query, pool, flt)
        )
        best = keyword[0].score if keyword else 0.0
        for rank, hit in enumerate(keyword):
            c = cands.setdefault(hit.memory_id, Candidate(hit.memory_id))
            c.fused += self.settings.text_weight / (k + rank + 1)
            c.lexical = hit.score / best if best > 0 else 0.0
        if not cands:
            return None
        ordered = sorted(cands.values(), key=lambda c: -c.fused)[: max(limit * 4, 40)]
        items = {m.id: m for m in self.store.get_memories(scope, [c.memory_id for c in ordered])}
        ordered = [c for c in ordered if c.memory_id in items]
        # One fetch serves the cosines of keyword-only hits, versions and dedup.
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
        return CandidatePool(ordered, items, vecs)

    def _consult_working(
        self,
        pool: CandidatePool | None,
        scope: Scope,
        working: Mapping[str, float],
        flt: Node | None,
    ) -> CandidatePool | None:
        """Lift working-set members by ``working_boost``; a member the channels
        missed enters ranked by its cosine among the vector hits (as superseded
        versions do). Members no longer live or outside ``flt`` are skipped."""
        if pool is None:
            pool = CandidatePool([], {}, {})
        lift = 1.0 + self.settings.working_boost
        for c in pool.ordered:
            if c.memory_id in working:
                c.fused *= lift
        missing = [m for m in working if m not in pool.items]
        if flt is not None or not missing:  # a filter is the store's to apply
            return pool if pool.ordered else None
        items = {m.id: m for m in self.store.get_memories(scope, missing)}
        found = [m for m in missing if m in items]
        if not found:
            return pool if pool.ordered else None
        cosines = sorted((c.cosine or 0.0 for c in pool.ordered), reverse=True)
        for memory_id, vec in zip(found, self.store.vectors(scope, found), strict=True):
            cos = working[memory_id]
            rank = sum(1 for c in cosines if c > cos)
            fused = lift * self.settings.vector_weight / (self.settings.rrf_k + rank + 1)
            pool.ordered.append(Candidate(memory_id, fused=fused, cosine=cos))
            pool.items[memory_id] = items[memory_id]
            pool.vectors[memory_id] = vec
        return pool

    def _add_superseded(
        self,
        pool: CandidatePool,
        scope: Scope,
        qvec: Vectors,
        window: TimeWindow,
        flt: Node | None,
    ) -> None:
        """Let earlier versions of changing states that were true in ``window`` compete.

        Evolution archives a state when it changes ("lives in Beijing" superseded
        by "moved to Shanghai"); a query about that time should still find it.
        Each enters the pool ranked by its cosine among the vector hits, as if
        the vector channel had returned it.
        """
        olds = self.store.superseded(scope, window.start, window.end, SUPERSEDED_POOL, flt)
        if not olds:
            return
        cosines = sorted((c.cosine or 0.0 for c in pool.ordered), reverse=True)
        for item, vec in olds:
            if item.id in pool.items:
                continue
            cos = float(vec @ qvec)
            rank = sum(1 for c in cosines if c > cos)
            fused = self.settings.vector_weight / (self.settings.rrf_k + rank + 1)
            pool.ordered.append(Candidate(item.id, fused=fused, cosine=cos))
            pool.items[item.id] = item
            pool.vectors[item.id] = vec

    def _order(self, pool: CandidatePool, query: str, window: TimeWindow | None) -> None:
        """Sort candidates by the ordering model's score (or fused rank when features are off)."""
        model = load_ordering(
            self.embedder.name, self.embedder.dim, salience=self.settings.salience
        )
        for c, row in zip(pool.ordered, features(pool, query), strict=True):
            c.cover = row[3]
            if self.settings.feature_ranking:
                c.score = model.score(row, pool.vectors.get(c.memory_id))
            else:
                c.score = c.fused
        if window is not None and not window.previous:
            for c in pool.ordered:
                if _inside(pool.items[c.memory_id], window):
                    c.score += TIME_WEIGHT
        pool.ordered.sort(key=lambda c: -c.score)

    def _versions_in_order(
        self,
        results: list[ScoredMemory],
        vectors: dict[str, Vectors],
        window: TimeWindow | None,
        conversation_id: str | None = None,
    ) -> list[ScoredMemory]:
        """Put the preferred version of a changing fact ahead of its other versions.

        Two hits are versions of one fact when their cosine reaches
        ``version_cosine`` ("I live in Beijing" / "I live in Shanghai now").
        Without a time in the query the newest version goes first (the current
        state); with one, the version inside the window does. A version from the
        caller's current conversation keeps its place ahead of one from another.
        Only the order of such pairs changes, so unrelated hits keep their rank.
        """
        out = list(results)
        i = 0
        while i < len(out):
            moved = False
            for j in range(i + 1, min(len(out), i + 1 + self.settings.version_scan)):
                a, b = out[i].memory, out[j].memory
                if float(vectors[a.id] @ vectors[b.id]) < self.settings.version_cosine:
                    continue
                if conversation_id is not None and conversation_id in {
                    a.conversation_id,
                    b.conversation_id,
                }:
                    continue
                if self._prefer(b, a, window):
                    out.insert(i, out.pop(j))
                    moved = True
                    break
            if not moved:
                i += 1
        return out

    @staticmethod
    def _prefer(b: MemoryItem, a: MemoryItem, window: TimeWindow | None) -> bool:
        """Whether version ``b`` (ranked lower) should go before ``a``.

        No time in the query: the current version (not superseded, newest) first.
        A dated window: the version true inside it. "Before" without a date:
        the earlier version.
        """
        tb, ta = b.event_time or b.create_time, a.event_time or a.create_time
        if window is None:
            old_b = b.archive_reason == ArchiveReason.SUPERSEDED
            old_a = a.archive_reason == ArchiveReason.SUPERSEDED
            return old_a and not old_b if old_a != old_b else tb > ta
        if window.previous:
            return tb < ta
        inside_b, inside_a = _inside(b, window), _inside(a, window)
        return inside_b and not inside_a

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


def _inside(item: MemoryItem, window: TimeWindow) -> bool:
    """Whether the memory was true inside the window.

    A superseded state held from its event time until ``valid_to``; anything
    else is placed at its event time.
    """
    start = _aware(item.event_time or item.create_time)
    if item.valid_to is None:
        return window.contains(start)
    if window.end is not None and start >= window.end:
        return False
    return window.start is None or _aware(item.valid_to) > window.start


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
