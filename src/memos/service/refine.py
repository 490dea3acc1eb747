"""The fine pass of an add: extract with the LLM, evolve against what is stored, commit.

Runs inline (``async_mode`` off) or on the background runner. Order of work:
the fast memories are already stored and searchable; extraction and the
evolution decisions happen outside any transaction; then one change set adds
the fine memories, applies merges and supersessions, and retires the window's
fast memories together. If extraction fails nothing is retired and the task
records why; if only the evolution call fails, the fine memories are added
as they are (nothing lost) and the task's note says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memos.domain.models import (
    PREFERENCE_TYPES,
    TOOL_TYPES,
    ArchiveReason,
    MemoryItem,
    MemoryMode,
    MemoryType,
    Message,
    Scope,
)
from memos.embedders.base import Embedder, Vectors
from memos.errors import MemosError
from memos.llm.base import LLMError
from memos.organize import Decision, Neighbour, Organizer, plan_changes
from memos.reader.fine import FineReader
from memos.settings import OrganizeSettings
from memos.store.base import ChangeSet, MemoryStore, Retirement

logger = logging.getLogger(__name__)


@dataclass
class RefineOutcome:
    status: str  # completed | failed
    memory_ids: list[str]
    error: str | None = None
    decisions: list[Decision] = field(default_factory=list)
    note: str | None = None  # a non-fatal problem (evolution skipped)


def family(memory_type: MemoryType) -> str:
    """Memories are only compared within a family: facts, preferences, tool memories."""
    if memory_type in PREFERENCE_TYPES:
        return "preference"
    if memory_type in TOOL_TYPES:
        return "tool"
    return "fact"


def _norm(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".!。")


class Refiner:
    def __init__(
        self,
        store: MemoryStore,
        embedder: Embedder,
        reader: FineReader,
        organizer: Organizer | None,
        settings: OrganizeSettings,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.reader = reader
        self.organizer = organizer if settings.enabled else None
        self.settings = settings

    def refine(
        self,
        scope: Scope,
        task_id: str,
        stored: Sequence[Message],
        fast: Sequence[MemoryItem],
        *,
        tags: Sequence[str],
        info: dict[str, Any] | None,
        raise_provider_errors: bool = False,
    ) -> RefineOutcome:
        """``raise_provider_errors``: let an unreachable LLM raise (a queued task is
        retried later) instead of failing the task now."""
        started = time.perf_counter()
        try:
            extraction = self.reader.read(scope, stored, tags=tags, info=info)
        except LLMError as exc:
            if raise_provider_errors:
                raise
            return self._failed(task_id, scope, fast, exc.message)
        except MemosError as exc:
            return self._failed(task_id, scope, fast, exc.message)
        fine = extraction.items
        vectors = self.embedder.embed([m.value for m in fine]) if fine else _empty()
        changes, decisions, note = self.evolve(scope, fine, vectors, skip={m.id for m in fast})
        # Messages of a window that failed have no fine memories: their fast ones stay.
        unread = {i for f in extraction.failed_windows for i in f.message_ids}
        if extraction.errors:
            failed = "fine extraction failed for part of the input: " + "; ".join(extraction.errors)
            logger.warning("%s (task %s, cube %s)", failed, task_id, scope.cube_id)
            note = f"{failed}; {note}" if note else failed
        if fine:  # a window with nothing worth keeping keeps its raw memories
            changes.retire += [
                Retirement(m.id, ArchiveReason.REFINED, fine[0].id, missing_ok=True)
                for m in fast
                if not any(s.message_id in unread for s in m.sources)
            ]
        changes.task = (task_id, "completed", note)  # lands with the writes, or not at all
        self.store.apply(scope, changes)
        logger.info(
            "fine pass for cube %s: %d memories from %d messages (%s) in %.1f ms",
            scope.cube_id,
            len(fine),
            len(stored),
            ", ".join(f"{a} {sum(d.action == a for d in decisions)}" for a in _ACTIONS),
            (time.perf_counter() - started) * 1000,
        )
        kept = [m.id for m in changes.add if m.status == "activated"] if fine else []
        kept += [r.memory_id for r in changes.revise]
        return RefineOutcome(
            "completed", kept or [m.id for m in fast], decisions=decisions, note=note
        )

    @staticmethod
    def _failed(
        task_id: str, scope: Scope, fast: Sequence[MemoryItem], reason: str
    ) -> RefineOutcome:
        logger.warning(
            "fine extraction failed for task %s (cube %s); keeping %d fast memories: %s",
            task_id, scope.cube_id, len(fast), reason,
        )  # fmt: skip
        return RefineOutcome("failed", [m.id for m in fast], error=reason)

    # -------------------------------------------------------------- evolution
    def evolve(
        self, scope: Scope, new: list[MemoryItem], vectors: Vectors, *, skip: set[str]
    ) -> tuple[ChangeSet, list[Decision], str | None]:
        """The change set for ``new`` after comparing it with the scope's memories."""
        decisions = [Decision.add() for _ in new]
        note = None
        if self.organizer is not None and new:
            neighbours = [
                self.neighbours(scope, m, v, skip) for m, v in zip(new, vectors, strict=True)
            ]
            # Word-for-word repeats need no LLM: they are duplicates of the closest one.
            asked: list[list[Neighbour]] = []
            for i, (item, near) in enumerate(zip(new, neighbours, strict=True)):
                same = next((n for n in near if _norm(n.item.value) == _norm(item.value)), None)
                if same is not None:
                    decisions[i] = Decision("duplicate", same.item.id, reason="same text")
                    asked.append([])
                else:
                    asked.append(near)
            try:
                llm_decisions = self.organizer.decide(new, asked)
            except MemosError as exc:
                note = f"evolution skipped, memories added as they are: {exc.message}"
                logger.warning("%s (cube %s)", note, scope.cube_id)
            else:
                decisions = [
                    d if near else kept
                    for d, kept, near in zip(llm_decisions, decisions, asked, strict=True)
                ]
            existing = {n.item.id: n.item for near in neighbours for n in near}
        else:
            existing = {}
        changes, applied = plan_changes(new, vectors, decisions, existing, self.embedder.embed)
        return changes, applied, note

    def neighbours(
        self, scope: Scope, item: MemoryItem, vector: np.ndarray, skip: set[str]
    ) -> list[Neighbour]:
        """The closest active fine memories of the same family, above ``min_cosine``."""
        k = self.settings.max_neighbours
        hits = self.store.vector_search(
            scope, np.asarray(vector, np.float32), k * 4 + len(skip), None
        )
        hits = [h for h in hits if h.score >= self.settings.min_cosine and h.memory_id not in skip]
        if not hits:
            return []
        found = {m.id: m for m in self.store.get_memories(scope, [h.memory_id for h in hits])}
        out = []
        for h in hits:
            m = found.get(h.memory_id)
            if (
                m is None
                or m.mode != MemoryMode.FINE
                or family(m.memory_type) != family(item.memory_type)
            ):
                continue
            out.append(Neighbour(m, h.score))
            if len(out) == k:
                break
        return out


_ACTIONS = ("add", "merge", "update", "duplicate")


def _empty() -> Vectors:
    return np.zeros((0, 1), np.float32)
