"""The storage port.

Every method takes a :class:`~memos.domain.models.Scope` first: the adapter
builds no query without it, so tenancy is enforced in one place. Adapters keep
all backend SQL inside their own package and translate driver errors into
:class:`~memos.errors.StoreError`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

import numpy as np

from memos.domain.filters import Node
from memos.domain.models import (
    ArchiveReason,
    Edge,
    MemoryItem,
    MemoryStatus,
    MemoryVersion,
    Message,
    Page,
    Scope,
)
from memos.embedders.base import Vectors
from memos.store.records import Embed, Record, Records


class VectorHit(NamedTuple):
    memory_id: str
    score: float


@dataclass(frozen=True)
class Revision:
    """New content for an existing memory (its earlier value is kept as a version)."""

    memory_id: str
    changes: dict[str, Any]  # key, value, tags, info, confidence, sources
    vector: Vectors | None = None


@dataclass(frozen=True)
class Retirement:
    """An active memory leaving the active set, with the reason and its successor."""

    memory_id: str
    reason: ArchiveReason
    superseded_by: str | None = None
    valid_to: datetime | None = None
    # Skip, rather than fail, when the memory is no longer active (a fast memory
    # the user deleted while its window was being refined).
    missing_ok: bool = False


@dataclass
class Ingest:
    """One cube's share of an add: its messages, memories and vectors, and the task.

    ``claim``: create the cube for ``scope.user_id`` inside the write transaction
    if it does not exist, and refuse the whole batch (PermissionDenied) if another
    user owns it, so a refused call leaves not even an empty cube behind.
    """

    scope: Scope
    messages: Sequence[Message]
    memories: Sequence[MemoryItem]
    vectors: Vectors
    task: tuple[str, str, str | None] | None = None
    claim: bool = True


@dataclass
class ChangeSet:
    """Writes that must land together: new memories, revisions, retirements, links.

    Fine mode and evolution commit one of these per window, so a reader never
    sees the refined memories without the raw ones retired, or the reverse.
    """

    add: list[MemoryItem] = field(default_factory=list)
    vectors: Vectors = field(default_factory=lambda: np.zeros((0, 1), np.float32))
    revise: list[Revision] = field(default_factory=list)
    retire: list[Retirement] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    # (task_id, status, note) recorded in the same transaction, so a retried task
    # can tell that its writes already landed (idempotent background passes).
    task: tuple[str, str, str | None] | None = None

    def __bool__(self) -> bool:
        return bool(self.add or self.revise or self.retire or self.edges or self.task)


class MemoryStore(Protocol):
    # --- store metadata (e.g. the embedder its vectors came from) ---
    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    # --- cubes (the hard tenant partition) ---
    def claim_cube(self, user_id: str, cube_id: str) -> None:
        """Create ``cube_id`` owned by ``user_id`` or check the user owns it.

        Raises PermissionDenied when another user owns the cube.
        """
        ...

    def cube_owner(self, cube_id: str) -> str | None: ...

    # --- writes ---
    def ingest(
        self,
        scope: Scope,
        messages: Sequence[Message],
        memories: Sequence[MemoryItem],
        vectors: Vectors,
    ) -> None:
        """Store raw messages and their memories atomically (all or nothing)."""
        ...

    def ingest_batch(self, batch: Sequence[Ingest]) -> None:
        """Store several cubes' shares of one add in one transaction (all or nothing)."""
        ...

    def update_memory(
        self,
        scope: Scope,
        memory_id: str,
        changes: dict[str, Any],
        vector: Vectors | None = None,
    ) -> MemoryItem:
        """Change a memory, keeping its previous value as a version."""
        ...

    def set_status(self, scope: Scope, memory_ids: Sequence[str], status: MemoryStatus) -> int:
        """Move memories to a lifecycle state; returns how many changed."""
        ...

    def set_status_batch(
        self, batch: Sequence[tuple[Scope, Sequence[str]]], status: MemoryStatus
    ) -> int:
        """``set_status`` over several scopes in one transaction (all or nothing)."""
        ...

    def delete_scope(self, scope: Scope) -> int:
        """Mark every live memory of the scope deleted; returns the count."""
        ...

    def delete_scopes(self, scopes: Sequence[Scope]) -> int:
        """``delete_scope`` over several scopes in one transaction (all or nothing)."""
        ...

    def add_edges(self, scope: Scope, edges: Sequence[Edge]) -> None: ...

    def apply(self, scope: Scope, changes: ChangeSet) -> None:
        """Commit a change set in one transaction (all or nothing).

        Added items may be archived already (kept for provenance); retired
        memories must be active in the scope, revised ones must exist in it.
        """
        ...

    # --- reads ---
    def get_memories(
        self, scope: Scope, memory_ids: Sequence[str], *, include_inactive: bool = False
    ) -> list[MemoryItem]: ...

    def list_memories(self, scope: Scope, flt: Node | None, *, offset: int, limit: int) -> Page: ...

    def history(self, scope: Scope, memory_id: str) -> list[MemoryVersion]: ...

    def edges(self, scope: Scope, memory_id: str) -> list[Edge]: ...

    def list_messages(
        self, scope: Scope, conversation_id: str | None, *, limit: int
    ) -> list[Message]:
        """The most recent ``limit`` messages, returned oldest first."""
        ...

    def get_messages(self, scope: Scope, ids: Sequence[str]) -> list[Message]:
        """Stored messages by their internal ``id``, in the order asked (missing ones absent)."""
        ...

    def count_memories(self, scope: Scope) -> int: ...

    def existing_message_ids(
        self, scope: Scope, conversation_id: str | None, message_ids: Sequence[str]
    ) -> set[str]:
        """Which client message ids are already stored in this conversation (for retries)."""
        ...

    # --- retrieval ---
    def vector_search(
        self, scope: Scope, query: Vectors, k: int, flt: Node | None
    ) -> list[VectorHit]:
        """Nearest live memories by cosine, filter applied before ranking."""
        ...

    def text_search(self, scope: Scope, query: str, k: int, flt: Node | None) -> list[VectorHit]:
        """Best live memories by BM25 (higher score is better)."""
        ...

    def superseded(
        self,
        scope: Scope,
        start: datetime | None,
        end: datetime | None,
        limit: int,
        flt: Node | None = None,
    ) -> list[tuple[MemoryItem, np.ndarray]]:
        """Superseded versions of changing states that were true inside [start, end).

        Search consults them only when a query looks back in time ("where did I
        live in 2023"), so an old state stays findable without competing with
        the current one. Newest first.
        """
        ...

    def vectors(self, scope: Scope, memory_ids: Sequence[str]) -> Vectors:
        """Stored vectors for the given live memories, in the same order."""
        ...

    def record_usage(self, scope: Scope, usage: Sequence[tuple[str, int, float]]) -> int:
        """Add (memory_id, uses, last_used epoch seconds) to the memories' usage
        counts and last-used times; not a content change (no version, no
        update_time). Unknown ids are skipped; returns how many rows changed."""
        ...

    # --- tasks (status of add requests) ---
    def put_task(
        self, scope: Scope, task_id: str, status: str, error: str | None = None
    ) -> None: ...

    def get_task(self, task_id: str) -> tuple[str, str, str | None] | None:
        """(cube_id, status, error) of a task, or None."""
        ...

    # --- transfer (``memos export`` / ``memos import``; see memos.store.records) ---
    def cubes(self) -> list[tuple[str, str]]:
        """Every cube as (cube_id, owner_id), by cube id."""
        ...

    def export_cube(self, cube_id: str, *, vectors: bool = True) -> Iterator[Record]:
        """Stream one cube as JSON-able records from one consistent snapshot.

        The order is deterministic and the same on every adapter: the ``cube``
        record, its ``memory`` records in insertion order (every status, with
        usage, and the ``vector`` and its ``model`` unless ``vectors`` is
        False), then ``version``, ``edge``, ``message`` and ``task`` records.
        Raises NotFound for an unknown cube. Rows are fetched in slices, never
        the whole cube at once.
        """
        ...

    def import_records(self, records: Records, *, embed: Embed | None) -> dict[str, int]:
        """Write exported records, keeping ids, versions, times and usage exactly.

        One transaction per batch of records; the adapter's derived state
        (caches, keyword statistics, vector index) follows. A memory without a
        vector gets one from ``embed`` (refused when it is None). A cube owned
        by another user is refused (PermissionDenied); a record already stored
        in the same cube is skipped, so importing a file twice adds nothing;
        an id stored in another cube is refused (InvalidParameter). Returns the
        records written per kind and ``skipped``.
        """
        ...

    def close(self) -> None: ...
