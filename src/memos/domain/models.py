"""Memories, messages and the scope that isolates them.

These pydantic models are the vocabulary of the service layer and the store
port. Wire formats (the cloud and ``/product`` dialects) are rendered from them
in ``memos.api``; nothing here knows about HTTP.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class MemoryType(StrEnum):
    WORKING = "WorkingMemory"
    LONG_TERM = "LongTermMemory"
    USER = "UserMemory"
    # Fine mode only: preferences and tool memories, answered in their own lists
    # (``preference_detail_list``, ``tool_memory_detail_list``), not as facts.
    EXPLICIT_PREFERENCE = "explicit_preference"
    IMPLICIT_PREFERENCE = "implicit_preference"
    TOOL_SCHEMA = "ToolSchemaMemory"
    TOOL_TRAJECTORY = "ToolTrajectoryMemory"


PREFERENCE_TYPES = frozenset({MemoryType.EXPLICIT_PREFERENCE, MemoryType.IMPLICIT_PREFERENCE})
TOOL_TYPES = frozenset({MemoryType.TOOL_SCHEMA, MemoryType.TOOL_TRAJECTORY})
# ``MemoryItem.info`` key holding the type-specific fields of a fine memory
# (``reasoning``; ``tool_used_status``, ``experience``); renderers lift it out.
DETAIL_KEY = "_memos_detail"


class MemoryStatus(StrEnum):
    ACTIVATED = "activated"
    ARCHIVED = "archived"
    DELETED = "deleted"


class ArchiveReason(StrEnum):
    """Why a memory left the active set (evolution never deletes; it archives with a reason)."""

    SUPERSEDED = "superseded"  # a newer version of a changing state replaced it
    MERGED = "merged"  # its content was folded into another memory
    DUPLICATE = "duplicate"  # another memory already said it; its sources moved there
    REFINED = "refined"  # a fast memory replaced by the fine memories of its window


class MemoryMode(StrEnum):
    FAST = "fast"
    FINE = "fine"


class EdgeKind(StrEnum):
    VERSION_OF = "version-of"
    MERGED_INTO = "merged-into"
    DERIVED_FROM = "derived-from"
    RELATED_TO = "related-to"


class Role(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL = "tool"


# Named cubes live in their owner's namespace: the storage key of bob's cube
# "work" is "bob\x1fwork", while a user's default cube is keyed by the user id
# alone. Ids may not hold control characters (service/validation), so no user
# id or cube name can forge the separator: nobody can create a cube that is, or
# later becomes, someone else's default cube, and a foreign cube reads as missing.
CUBE_SEP = "\x1f"


def cube_key(user_id: str, cube_name: str | None = None) -> str:
    """The storage key of ``user_id``'s cube ``cube_name`` (their default cube if None)."""
    if cube_name is None or cube_name == user_id:
        return user_id
    return f"{user_id}{CUBE_SEP}{cube_name}"


def cube_name(key: str) -> str:
    """The name a client uses for the cube stored under ``key``."""
    return key.split(CUBE_SEP, 1)[1] if CUBE_SEP in key else key


class Scope(BaseModel):
    """Who owns the data a call touches.

    ``cube_id`` is the hard partition (the cloud dialect uses the user id as the
    cube); ``agent_id``/``app_id`` narrow within it when given. The store refuses
    to build a query without a scope.
    """

    model_config = ConfigDict(frozen=True)

    user_id: str
    cube_id: str
    agent_id: str | None = None
    app_id: str | None = None

    @classmethod
    def for_user(cls, user_id: str, **kw: str | None) -> Scope:
        return cls(user_id=user_id, cube_id=user_id, **kw)

    @property
    def cube_name(self) -> str:
        """The cube as the client names it (``cube_id`` is the storage key)."""
        return cube_name(self.cube_id)


class Source(BaseModel):
    """A message a memory was derived from (provenance)."""

    type: str = "chat"
    message_id: str | None = None
    role: str | None = None
    chat_time: str | None = None
    content: str = ""


class Message(BaseModel):
    """A raw message as stored, so ``/get/message`` can return it verbatim."""

    id: str = Field(default_factory=new_id)
    message_id: str | None = None
    user_id: str
    cube_id: str
    conversation_id: str | None = None
    agent_id: str | None = None
    app_id: str | None = None
    role: Role
    content: str
    parts: list[dict[str, Any]] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    chat_time: str | None = None
    event_time: datetime | None = None
    create_time: datetime = Field(default_factory=utcnow)
    update_time: datetime = Field(default_factory=utcnow)


class MemoryItem(BaseModel):
    """One memory: a titled text with provenance, scope and lifecycle."""

    id: str = Field(default_factory=new_id)
    user_id: str
    cube_id: str
    agent_id: str | None = None
    app_id: str | None = None
    conversation_id: str | None = None
    memory_type: MemoryType = MemoryType.LONG_TERM
    key: str = ""
    value: str
    tags: list[str] = Field(default_factory=list)
    info: dict[str, Any] = Field(default_factory=dict)
    status: MemoryStatus = MemoryStatus.ACTIVATED
    confidence: float = 0.99
    sources: list[Source] = Field(default_factory=list)
    mode: MemoryMode = MemoryMode.FAST
    # Index-only text around the memory (neighbouring turns, the date): found by
    # keyword search, never returned, so answers stay precise.
    context: str = ""
    version: int = 1
    event_time: datetime | None = None
    create_time: datetime = Field(default_factory=utcnow)
    update_time: datetime = Field(default_factory=utcnow)
    # Set when evolution archives the memory: why, which memory carries it on,
    # and (for a superseded state) until when it was true.
    archive_reason: ArchiveReason | None = None
    superseded_by: str | None = None
    valid_to: datetime | None = None


class MemoryVersion(BaseModel):
    """An earlier value of a memory, kept when it changes."""

    memory_id: str
    version: int
    key: str
    value: str
    tags: list[str]
    info: dict[str, Any]
    status: MemoryStatus
    update_time: datetime


class Edge(BaseModel):
    src_id: str
    dst_id: str
    kind: EdgeKind
    create_time: datetime = Field(default_factory=utcnow)


class ScoredMemory(BaseModel):
    """A search hit: the memory and its relevance in 0..1."""

    memory: MemoryItem
    relativity: float
    score: float = 0.0


class Page(BaseModel):
    items: list[MemoryItem]
    total: int


class MessageInput(BaseModel):
    """A message as a client sends it (OpenAI chat format plus MemOS extras)."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None
    chat_time: str | int | float | None = None
    message_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
