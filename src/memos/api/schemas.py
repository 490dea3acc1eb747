"""The ``data`` of each successful answer, as the OpenAPI document describes it.

Documentation only: the routes return the plain dicts :mod:`memos.wire` builds
and nothing validates or serializes a response through these models. They
follow ``wire/render.py``, ``wire/buckets.py``, ``wire/cloud.py``,
``wire/product.py`` and ``wire/scheduler.py`` field for field; a field the
handler leaves out when it does not apply is optional (:func:`absent`), a
field it sends as ``null`` is ``X | None`` and required. Objects forbid
unlisted fields, so the conformance fuzzer notices a field the document
forgot. The envelopes around ``data`` live in :mod:`memos.api.openapi`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel
from pydantic.config import JsonDict

from memos.domain.models import MemoryStatus, MemoryType, Role

TaskState = Literal["running", "completed", "failed"]


def _no_null_default(schema: JsonDict) -> None:
    """An absent field is not ``null``: drop the ``default: null`` pydantic writes for it."""
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for prop in properties.values():
            if isinstance(prop, dict) and "default" in prop and prop["default"] is None:
                del prop["default"]


class Out(BaseModel):
    """An object of a response body: exactly these fields."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_no_null_default)


def absent(description: str) -> Any:
    """A field the handler omits (rather than sending ``null``) when it does not apply."""
    return Field(default=None, description=description)


# ------------------------------------------------------------- render.py
class Source(Out):
    type: str
    message_id: str | None
    role: str | None
    chat_time: str | None
    content: str


class ToolUse(Out):
    used_tool: str
    error_type: str
    success_rate: float
    tool_experience: str


RELATIVITY = "how relevant to the query (0..1); search answers only"


class MemoryDetail(Out):
    """A ``memory_detail_list`` entry: a fact."""

    id: str
    memory_key: str
    memory_value: str
    memory_type: MemoryType
    memory_time: str | None = Field(description="when the event happened (ISO 8601), if known")
    create_time: str
    update_time: str
    conversation_id: str | None
    status: MemoryStatus
    confidence: float
    tags: list[str]
    info: dict[str, Any]
    agent_id: str | None
    app_id: str | None
    sources: list[Source]
    relativity: float = absent(RELATIVITY)


class _FineDetail(Out):
    """What preference and tool-memory entries share (``wire/render.py``)."""

    create_time: str
    update_time: str
    conversation_id: str | None
    status: MemoryStatus
    tags: list[str]
    info: dict[str, Any]
    sources: list[Source]
    relativity: float = absent(RELATIVITY)


class PreferenceDetail(_FineDetail):
    """A ``preference_detail_list`` entry (fine mode)."""

    id: str
    preference_type: MemoryType = Field(description="explicit_preference or implicit_preference")
    preference: str
    reasoning: str


class ToolMemoryDetail(_FineDetail):
    """A ``tool_memory_detail_list`` entry (fine mode)."""

    id: str
    tool_type: MemoryType = Field(description="ToolSchemaMemory or ToolTrajectoryMemory")
    tool_value: str
    tool_used_status: list[ToolUse]
    experience: str


class MessageDetail(Out):
    message_id: str
    role: Role
    content: str
    chat_time: str | None
    conversation_id: str | None
    create_time: str
    update_time: str


class MemoryLists(Out):
    """One memory by id, in the list its kind belongs to (the other two are empty)."""

    memory_detail_list: list[MemoryDetail]
    preference_detail_list: list[PreferenceDetail]
    tool_memory_detail_list: list[ToolMemoryDetail]


class MemoryPageData(MemoryLists):
    """A page of memories; a list turned off by the request is empty."""

    total: int
    size: int
    current: int = Field(description="the page number")
    pages: int


# --------------------------------------------------------------- cloud.py
class AddMessageData(Out):
    success: Literal[True]
    task_id: str
    status: TaskState
    error: str = absent("why fine extraction failed (status failed; the fast memories stay)")


class SearchMemoryData(Out):
    memory_detail_list: list[MemoryDetail]
    preference_detail_list: list[PreferenceDetail]
    preference_note: str
    tool_memory_detail_list: list[ToolMemoryDetail] = absent("only with include_tool_memory")
    skill_detail_list: list[dict[str, Any]] = absent(
        "only with include_skill; always empty (skills are not stored)"
    )


class DeleteData(Out):
    success: Literal[True]
    deleted_count: int


class GetMessageData(Out):
    message_detail_list: list[MessageDetail]


class ExtractedMemory(Out):
    memory_key: str
    memory_value: str
    memory_type: MemoryType
    tags: list[str]
    confidence: float
    sources: list[Source]


class ExtractedPreference(Out):
    preference: str
    preference_type: MemoryType = Field(description="explicit_preference or implicit_preference")
    reasoning: str
    sources: list[Source]


class FailedWindow(Out):
    window: int = Field(description="0-based, in reading order")
    message_ids: list[str]
    reason: str


class ExtractMemoryData(Out):
    success: Literal[True]
    memory_detail_list: list[ExtractedMemory] = absent("when extraction_types asks for memory")
    preference_detail_list: list[ExtractedPreference] = absent(
        "when extraction_types asks for preference"
    )
    failed_windows: list[FailedWindow] = absent("only when part of a long chat could not be read")


class GetStatusData(Out):
    status: TaskState
    error: str = absent("why the task failed")


class RerankUsage(Out):
    prompt_tokens: int
    total_tokens: int


class RerankDocument(Out):
    text: str


class RerankResult(Out):
    index: int = Field(description="position of the document in the request")
    relevance_score: float
    document: RerankDocument


class RerankData(Out):
    id: str
    model: str = Field(description="the reranker that answered")
    usage: RerankUsage
    results: list[RerankResult] = Field(description="best first")


# ------------------------------------------------------ product.py, buckets.py
class HealthData(Out):
    status: Literal["ok"]
    version: str
    embedder: str


class AddedMemory(Out):
    memory_id: str
    cube_id: str
    task_id: str
    status: TaskState


class ProductAddData(RootModel[list[AddedMemory]]):
    """One entry per memory written, over every cube written to."""


class _MemMetadata(Out):
    id: str
    memory: str
    user_id: str
    session_id: str | None
    status: MemoryStatus
    type: Literal["fact"]
    key: str
    confidence: float
    tags: list[str]
    info: dict[str, Any]
    memory_time: str | None
    sources: list[Source]
    created_at: str
    updated_at: str
    ref_id: str
    relativity: float = absent(RELATIVITY)


class TextMemMetadata(_MemMetadata):
    memory_type: MemoryType


class PrefMemMetadata(_MemMetadata):
    """Upstream's PreferenceMemory node; the kind of preference in ``preference_type``."""

    memory_type: Literal["PreferenceMemory"]
    preference_type: MemoryType = Field(description="explicit_preference or implicit_preference")
    preference: str
    reasoning: str


class ToolMemMetadata(TextMemMetadata):
    tool_used_status: list[ToolUse]
    experience: str


class TextMemItem(Out):
    """Upstream's tree-memory item shape."""

    id: str
    memory: str
    metadata: TextMemMetadata
    ref_id: str


class PrefMemItem(Out):
    id: str
    memory: str
    metadata: PrefMemMetadata
    ref_id: str


class ToolMemItem(Out):
    id: str
    memory: str
    metadata: ToolMemMetadata
    ref_id: str


class TextMemGroup(Out):
    cube_id: str
    memories: list[TextMemItem]


class PrefMemGroup(Out):
    cube_id: str
    memories: list[PrefMemItem]


class ToolMemGroup(Out):
    cube_id: str
    memories: list[ToolMemItem]


class ProductSearchData(Out):
    """One group per cube searched, in each bucket; a bucket turned off is an empty list."""

    text_mem: list[TextMemGroup]
    act_mem: list[dict[str, Any]] = Field(description="always empty")
    para_mem: list[dict[str, Any]] = Field(description="always empty")
    pref_mem: list[PrefMemGroup]
    pref_note: str
    pref_string: str
    tool_mem: list[ToolMemGroup]
    skill_mem: list[dict[str, Any]] = Field(description="always empty")


class GetAllGroup(Out):
    """The memories of one cube in the bucket asked for (act_mem, para_mem: none)."""

    cube_id: str
    memories: list[TextMemItem | PrefMemItem | ToolMemItem]
    total: int = absent("the cube's count in the bucket, when listing without search_query")


class GetAllData(RootModel[list[GetAllGroup]]):
    """One group per cube asked for."""


# ----------------------------------------------------------- scheduler.py
class TaskStatusItem(Out):
    task_id: str
    status: TaskState
    queue_status: str | None = Field(
        description="queued, running, failed (retrying), completed or dead; null off the queue"
    )
    attempts: int
    label: str | None
    error: str = absent("why the task failed")


class TaskStatusData(RootModel[list[TaskStatusItem]]):
    """The one task asked for, as a one-item list (the upstream shape)."""


class Workers(Out):
    in_process: bool
    worker_id: str | None
    concurrency: int
    busy: int


class AllStatusData(Out):
    counts: dict[str, int] = Field(description="tasks per queue status, everyone's")
    queue: Literal["redis", "sqlite"]
    workers: Workers
    llm_configured: bool


class QueueStatusData(Out):
    user_id: str
    counts: dict[str, int] = Field(description="the user's tasks per queue status")
    pending: int = Field(description="open (unfinished) tasks")


class WaitProgress(Out):
    """The data of a ``progress`` event."""

    running_tasks: int
    waited_seconds: float
    user_name: str


class WaitData(WaitProgress):
    """The outcome of a wait (message ``idle`` or ``timeout``; the stream's last event)."""

    timed_out: bool
