"""Turn evolution decisions into one change set (pure: no I/O but ``embed``).

What each decision writes:

- add: the new memory, active.
- duplicate: the existing memory takes the new one's sources (so a fact said in
  two sessions is one memory naming both); the new one is stored archived
  (reason ``duplicate``) with a ``merged-into`` link.
- merge: the existing memory's text becomes the merged text (the old text stays
  in its version history) and it takes the new sources; the new one is stored
  archived (reason ``merged``) with a ``merged-into`` link.
- update: the newer of the two stays active and the older is archived as
  ``superseded``, valid until the newer one's time, with a ``version-of`` link
  from newer to older. Usually the new memory is the newer one; when messages
  arrive out of order the existing one is, and the new one is stored archived.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from memos.domain.models import (
    ArchiveReason,
    Edge,
    EdgeKind,
    MemoryItem,
    MemoryStatus,
    Source,
)
from memos.embedders.base import Vectors
from memos.organize.decide import Decision
from memos.store.base import ChangeSet, Retirement, Revision

Embed = Callable[[list[str]], Vectors]


def _moment(item: MemoryItem) -> datetime:
    return item.event_time or item.create_time


def _merge_sources(old: Sequence[Source], new: Sequence[Source]) -> list[Source]:
    seen = {(s.message_id, s.content) for s in old}
    out = list(old)
    for s in new:
        if (s.message_id, s.content) not in seen:
            seen.add((s.message_id, s.content))
            out.append(s)
    return out


def _archived(
    item: MemoryItem, reason: ArchiveReason, by: str, until: datetime | None = None
) -> MemoryItem:
    return item.model_copy(
        update={
            "status": MemoryStatus.ARCHIVED,
            "archive_reason": reason,
            "superseded_by": by,
            "valid_to": until,
        }
    )


def plan_changes(
    new: Sequence[MemoryItem],
    vectors: Vectors,
    decisions: Sequence[Decision],
    existing: dict[str, MemoryItem],
    embed: Embed,
) -> tuple[ChangeSet, list[Decision]]:
    """The change set for ``decisions`` and the decisions as applied.

    A decision that can no longer apply (its target was already superseded by
    an earlier decision of the same batch) becomes "add".
    """
    changes = ChangeSet()
    added: list[MemoryItem] = []
    added_vecs: list[np.ndarray] = []
    revisions: dict[str, dict[str, Any]] = {}
    retired: set[str] = set()
    applied: list[Decision] = []
    for item, vec, decision in zip(new, vectors, decisions, strict=True):
        target = existing.get(decision.target or "")
        if decision.action != "add" and (target is None or target.id in retired):
            decision = Decision.add("target no longer active")
        applied.append(decision)
        if decision.action == "add" or target is None:
            added.append(item)
            added_vecs.append(vec)
            continue
        if decision.action == "update":
            if _moment(item) >= _moment(target):
                added.append(item)
                retired.add(target.id)
                changes.retire.append(
                    Retirement(target.id, ArchiveReason.SUPERSEDED, item.id, _moment(item))
                )
                changes.edges.append(
                    Edge(src_id=item.id, dst_id=target.id, kind=EdgeKind.VERSION_OF)
                )
            else:  # the new message is older than what we know: it is the past version
                added.append(_archived(item, ArchiveReason.SUPERSEDED, target.id, _moment(target)))
                changes.edges.append(
                    Edge(src_id=target.id, dst_id=item.id, kind=EdgeKind.VERSION_OF)
                )
            added_vecs.append(vec)
            continue
        # duplicate or merge: the existing memory carries both from now on
        rev = revisions.setdefault(target.id, {"sources": list(target.sources)})
        rev["sources"] = _merge_sources(rev["sources"], item.sources)
        rev["confidence"] = max(target.confidence, item.confidence, rev.get("confidence", 0.0))
        if decision.action == "merge":
            rev["value"] = decision.merged_value
            rev["tags"] = list(dict.fromkeys([*target.tags, *item.tags]))
        reason = ArchiveReason.MERGED if decision.action == "merge" else ArchiveReason.DUPLICATE
        added.append(_archived(item, reason, target.id))
        added_vecs.append(vec)
        changes.edges.append(Edge(src_id=item.id, dst_id=target.id, kind=EdgeKind.MERGED_INTO))
    merged_ids = [i for i, r in revisions.items() if "value" in r]
    merged_vecs = embed([revisions[i]["value"] for i in merged_ids]) if merged_ids else None
    for memory_id, rev in revisions.items():
        vector = None
        if merged_vecs is not None and memory_id in merged_ids:
            vector = merged_vecs[merged_ids.index(memory_id)]
        changes.revise.append(Revision(memory_id, rev, vector))
    changes.add = added
    changes.vectors = np.stack(added_vecs) if added_vecs else np.zeros((0, 1), np.float32)
    return changes, applied
