"""The storage port.

Every method takes a :class:`~memos.domain.models.Scope` first: the adapter
builds no query without it, so tenancy is enforced in one place. Adapters keep
all backend SQL inside their own package and translate driver errors into
:class:`~memos.errors.StoreError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from memos.domain.filters import Node
from memos.domain.models import (
    Edge,
    MemoryItem,
    MemoryStatus,
    MemoryVersion,
    Message,
    Page,
    Scope,
)
from memos.embedders.base import Vectors


class VectorHit(NamedTuple):
    memory_id: str
    score: float


class MemoryStore(Protocol):
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

    def delete_scope(self, scope: Scope) -> int:
        """Mark every live memory of the scope deleted; returns the count."""
        ...

    def add_edges(self, scope: Scope, edges: Sequence[Edge]) -> None: ...

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

    def vectors(self, scope: Scope, memory_ids: Sequence[str]) -> Vectors:
        """Stored vectors for the given live memories, in the same order."""
        ...

    # --- tasks (status of add requests) ---
    def put_task(
        self, scope: Scope, task_id: str, status: str, error: str | None = None
    ) -> None: ...

    def get_task(self, task_id: str) -> tuple[str, str, str | None] | None:
        """(cube_id, status, error) of a task, or None."""
        ...

    def close(self) -> None: ...
