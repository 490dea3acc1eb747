"""The working set: per (cube, conversation), the few memories likely needed next.

Why it exists: the spec's memory scheduling keeps "the memories most likely to
be needed" close at hand (topic and heat based prioritisation, next-scene
prediction) so a request can be answered from them before, or instead of, a
full retrieval. Here that is a bounded in-process set per key, scored by heat
(recent turns, search hits, preloaded neighbours; decaying), closeness to the
recent topic and usage frequency. A lookup is a dot product over a few dozen
unit vectors: microseconds, against milliseconds for a store search.

Nothing here touches the store. The caller feeds observations (turns added,
search hits returned, neighbours it fetched for preloading) and drains usage
deltas to persist them in batches, so this module stays pure Python + numpy
and testable without a service.

Thread safety: one lock guards everything; every operation is short (at most a
few hundred floats of arithmetic), so contention costs less than finer locks.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from memos.embedders.base import Vectors
from memos.working.config import WorkingConfig
from memos.working.heat import decay_factor, decayed, scores, unit

# (cube_id, conversation_id); None is the cube-wide set.
WorkingKey = tuple[str, str | None]


class Observed(NamedTuple):
    """A memory seen in an event: its id, its vector (None if the caller has
    none, so it can only count usage) and its relevance (a cosine, 0..1)."""

    memory_id: str
    vector: Vectors | None
    score: float


class UsageDelta(NamedTuple):
    """Uses of one memory since the last drain, and the wall time of the latest."""

    cube_id: str
    memory_id: str
    uses: int
    last_used: float


class EntryStat(NamedTuple):
    """One member of a working set as :meth:`WorkingMemory.snapshot` reports it."""

    memory_id: str
    score: float
    heat: float
    uses: int
    last_used: float | None


@dataclass
class _Entry:
    vector: Vectors
    heat: float  # as of ``stamp``; decayed lazily
    stamp: float
    uses: int = 0
    last_used: float | None = None


@dataclass
class _Slot:
    """One key's working set plus its recent-topic accumulator and event clock."""

    entries: dict[str, _Entry] = field(default_factory=dict)
    topic: Vectors | None = None  # decayed sum of recent query/turn directions
    topic_stamp: float = 0.0
    events: int = 0
    # Cached (ids, matrix) for lookups; rebuilt only after membership changes.
    _ids: list[str] | None = None
    _matrix: Vectors | None = None

    def invalidate(self) -> None:
        self._ids = None
        self._matrix = None

    def matrix(self) -> tuple[list[str], Vectors]:
        if self._ids is None or self._matrix is None:
            self._ids = list(self.entries)
            self._matrix = (
                np.stack([e.vector for e in self.entries.values()])
                if self.entries
                else np.zeros((0, 0), np.float32)
            )
        return self._ids, self._matrix


class WorkingMemory:
    """Bounded working sets keyed by (cube_id, conversation_id), LRU over keys.

    ``clock`` drives decay when ``config.decay == "seconds"`` (monotonic by
    default); ``wall`` stamps ``last_used`` for persistence (epoch seconds).
    Both are injectable so tests are deterministic.
    """

    def __init__(
        self,
        config: WorkingConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or WorkingConfig()
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._slots: OrderedDict[WorkingKey, _Slot] = OrderedDict()
        self._pending: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
        self.evicted = 0
        self.dropped_keys = 0
        self.dropped_usage = 0

    # ------------------------------------------------------------ observing
    def observe_turns(self, key: WorkingKey, memory_ids: Sequence[str], vectors: Vectors) -> None:
        """New memories of the conversation enter hot (the next turn is most
        likely about what was just said); their direction joins the topic."""
        if len(memory_ids) != len(vectors):
            raise ValueError("memory_ids and vectors differ in length")
        if not memory_ids:
            return
        rows = [unit(v, "turn vector") for v in vectors]
        with self._lock:
            slot = self._slot(key)
            now = self._tick(slot)
            self._add_topic(slot, unit(np.mean(rows, axis=0), "turn direction"), now)
            for memory_id, row in zip(memory_ids, rows, strict=True):
                self._heat(slot, memory_id, row, self.config.turn_gain, now)
            self._evict(slot, now)

    def observe_search(self, key: WorkingKey, query_vec: Vectors, hits: Sequence[Observed]) -> None:
        """Returned hits heat up by gain x relevance and count one use each.

        ``hits`` are in rank order: only the first ``search_admit`` may enter
        the set, the others heat members already in it. Every hit records a
        usage delta (for the store's ``usage`` counts) even when it has no
        vector and so cannot enter the set.
        """
        q = unit(query_vec, "query vector")
        rows = [None if h.vector is None else unit(h.vector, "hit vector") for h in hits]
        with self._lock:
            slot = self._slot(key)
            now = self._tick(slot)
            wall = self._wall()
            self._add_topic(slot, q, now)
            for rank, (hit, row) in enumerate(zip(hits, rows, strict=True)):
                gain = self.config.search_gain * _relevance(hit.score)
                admit = row if rank < self.config.search_admit else None
                entry = self._heat(slot, hit.memory_id, admit, gain, now)
                if entry is not None:
                    entry.uses += 1
                    entry.last_used = wall
                self._count_use(key[0], hit.memory_id, wall)
            self._evict(slot, now)

    def preload(self, key: WorkingKey, neighbours: Sequence[Observed]) -> None:
        """Next-scene prediction: the store's nearest memories to the latest
        turns or queries enter with a lower heat (``preload_gain`` x cosine).

        Preloading is not an event of its own (it follows the observation that
        prompted it), so it neither ticks the event clock nor moves the topic,
        and it never lowers a memory already hotter than the preload would make it.
        """
        rows = [
            None if n.vector is None else unit(n.vector, "neighbour vector") for n in neighbours
        ]
        with self._lock:
            slot = self._slot(key)
            now = self._now(slot)
            for n, row in zip(neighbours, rows, strict=True):
                target = self.config.preload_gain * _relevance(n.score)
                entry = slot.entries.get(n.memory_id)
                if entry is None:
                    if row is not None:
                        self._heat(slot, n.memory_id, row, target, now)
                    continue
                current = entry.heat * decay_factor(now - entry.stamp, self.config.half_life)
                if current < target:
                    entry.heat, entry.stamp = target, now
            self._evict(slot, now)

    # -------------------------------------------------------------- reading
    def lookup(
        self, key: WorkingKey, query_vec: Vectors, k: int, *, min_cosine: float = -1.0
    ) -> list[tuple[str, float]]:
        """The set's ``k`` members closest to ``query_vec`` as (memory_id, cosine).

        Read-only (a lookup is not a use; the service reports what it returned
        through :meth:`observe_search`), apart from refreshing the key's LRU place.
        """
        q = unit(query_vec, "query vector")
        with self._lock:
            slot = self._slots.get(key)
            if slot is None or not slot.entries or k < 1:
                return []
            self._slots.move_to_end(key)
            ids, mat = slot.matrix()
            if mat.shape[1] != q.shape[0]:
                raise ValueError(f"query has dimension {q.shape[0]}, the set {mat.shape[1]}")
            sims = mat @ q
        order = np.argsort(-sims, kind="stable")[:k]
        return [(ids[i], float(sims[i])) for i in order if sims[i] >= min_cosine]

    def members(self, key: WorkingKey) -> list[str]:
        with self._lock:
            slot = self._slots.get(key)
            return list(slot.entries) if slot is not None else []

    def contains(self, key: WorkingKey, memory_id: str) -> bool:
        with self._lock:
            slot = self._slots.get(key)
            return slot is not None and memory_id in slot.entries

    def snapshot(self, key: WorkingKey) -> list[EntryStat]:
        """Members with their current score, hottest first (metrics, debugging)."""
        with self._lock:
            slot = self._slots.get(key)
            if slot is None or not slot.entries:
                return []
            now = self._now(slot)
            ids, values = self._scores(slot, now)
            out = [
                EntryStat(
                    i,
                    float(s),
                    slot.entries[i].heat
                    * decay_factor(now - slot.entries[i].stamp, self.config.half_life),
                    slot.entries[i].uses,
                    slot.entries[i].last_used,
                )
                for i, s in zip(ids, values, strict=True)
            ]
        return sorted(out, key=lambda e: -e.score)

    def active_keys(self) -> list[WorkingKey]:
        """Keys, least recently used first."""
        with self._lock:
            return list(self._slots)

    # ---------------------------------------------------------------- usage
    def usage_snapshot(self) -> list[UsageDelta]:
        """Pending usage deltas, oldest first, without clearing them."""
        with self._lock:
            return [UsageDelta(c, m, int(u), t) for (c, m), (u, t) in self._pending.items()]

    def drain_usage(self) -> list[UsageDelta]:
        """Pending usage deltas, cleared: the service adds them to the store's
        counts in one batch (if that write fails it may :meth:`restore_usage`)."""
        with self._lock:
            out = [UsageDelta(c, m, int(u), t) for (c, m), (u, t) in self._pending.items()]
            self._pending.clear()
            return out

    def restore_usage(self, deltas: Sequence[UsageDelta]) -> None:
        """Put drained deltas back (a failed persist must not lose counts)."""
        with self._lock:
            for d in deltas:
                pending = self._pending.get((d.cube_id, d.memory_id))
                if pending is None:
                    self._pending[(d.cube_id, d.memory_id)] = [float(d.uses), d.last_used]
                else:
                    pending[0] += d.uses
                    pending[1] = max(pending[1], d.last_used)
            self._bound_pending()

    # ----------------------------------------------------------- forgetting
    def discard(self, cube_id: str, memory_ids: Sequence[str]) -> int:
        """Remove memories (deleted or archived) from every set of the cube."""
        gone = set(memory_ids)
        removed = 0
        with self._lock:
            for (cube, _), slot in self._slots.items():
                if cube != cube_id:
                    continue
                for memory_id in gone & slot.entries.keys():
                    del slot.entries[memory_id]
                    removed += 1
                    slot.invalidate()
        return removed

    def clear(self, cube_id: str | None = None) -> None:
        """Drop every set of ``cube_id`` (all sets when None); usage stays pending."""
        with self._lock:
            for key in [k for k in self._slots if cube_id is None or k[0] == cube_id]:
                del self._slots[key]

    # ------------------------------------------------------------- internal
    def _slot(self, key: WorkingKey) -> _Slot:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
            while len(self._slots) > self.config.max_keys:
                self._slots.popitem(last=False)
                self.dropped_keys += 1
        else:
            self._slots.move_to_end(key)
        return slot

    def _now(self, slot: _Slot) -> float:
        return float(slot.events) if self.config.decay == "events" else self._clock()

    def _tick(self, slot: _Slot) -> float:
        slot.events += 1
        return self._now(slot)

    def _add_topic(self, slot: _Slot, direction: Vectors, now: float) -> None:
        if slot.topic is None or slot.topic.shape != direction.shape:
            slot.topic = direction.copy()
        else:
            keep = decay_factor(now - slot.topic_stamp, self.config.half_life)
            slot.topic = (slot.topic * keep + direction).astype(np.float32)
        slot.topic_stamp = now

    def _heat(
        self, slot: _Slot, memory_id: str, row: Vectors | None, gain: float, now: float
    ) -> _Entry | None:
        """Add ``gain`` to a member's decayed heat, or let a new memory enter with it."""
        entry = slot.entries.get(memory_id)
        if entry is not None:
            entry.heat = entry.heat * decay_factor(now - entry.stamp, self.config.half_life) + gain
            entry.stamp = now
            return entry
        if row is None:
            return None
        if slot.entries:
            dim = next(iter(slot.entries.values())).vector.shape[0]
            if row.shape[0] != dim:
                raise ValueError(f"vector has dimension {row.shape[0]}, the set {dim}")
        entry = slot.entries[memory_id] = _Entry(row, gain, now)
        slot.invalidate()
        return entry

    def _scores(self, slot: _Slot, now: float) -> tuple[list[str], np.ndarray]:
        ids, mat = slot.matrix()
        entries = [slot.entries[i] for i in ids]
        heats = decayed(
            np.array([e.heat for e in entries], np.float64),
            np.array([e.stamp for e in entries], np.float64),
            now,
            self.config.half_life,
        )
        if slot.topic is not None and slot.topic.shape[0] == mat.shape[1]:
            norm = float(np.linalg.norm(slot.topic))
            topic_cos = (mat @ (slot.topic / norm)).astype(np.float64) if norm > 0 else 0 * heats
        else:
            topic_cos = np.zeros_like(heats)
        uses = np.array([e.uses for e in entries], np.float64)
        return ids, scores(
            heats,
            topic_cos,
            uses,
            topic_weight=self.config.topic_weight,
            usage_weight=self.config.usage_weight,
        )

    def _evict(self, slot: _Slot, now: float) -> None:
        """Drop the lowest-scored members beyond ``size``; ties go oldest first."""
        excess = len(slot.entries) - self.config.size
        if excess <= 0:
            return
        ids, values = self._scores(slot, now)
        for i in np.argsort(values, kind="stable")[:excess]:
            del slot.entries[ids[i]]
        self.evicted += excess
        slot.invalidate()

    def _count_use(self, cube_id: str, memory_id: str, wall: float) -> None:
        item = (cube_id, memory_id)
        pending = self._pending.get(item)
        if pending is None:
            self._pending[item] = [1.0, wall]
            self._bound_pending()
        else:
            pending[0] += 1
            pending[1] = max(pending[1], wall)
            self._pending.move_to_end(item)

    def _bound_pending(self) -> None:
        while len(self._pending) > self.config.max_pending_usage:
            self._pending.popitem(last=False)
            self.dropped_usage += 1


def _relevance(score: float) -> float:
    """A hit's relevance clipped to 0..1 (cosines can be negative)."""
    return min(max(float(score), 0.0), 1.0)
