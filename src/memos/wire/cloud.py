"""The cloud dialect (``/add/message``, ``/search/memory``, ...): envelope code 0.

Fields, defaults and limits follow the MemOS cloud API reference. Request
models accept unknown fields (clients send cloud-only extras) and leave
required-ness to the service so missing fields get 40002, not a generic 422.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from memos.domain.models import MessageInput, new_id
from memos.errors import InvalidParameter
from memos.service import MemoryService
from memos.wire.render import (
    kind_of,
    memory_detail,
    memory_page,
    message_detail,
    preference_detail,
    tool_memory_detail,
)


class CloudRequest(BaseModel):
    model_config = ConfigDict(extra="allow")


class AddMessageRequest(CloudRequest):
    user_id: str | None = None
    conversation_id: str | None = None
    messages: list[MessageInput] | None = None
    agent_id: str | None = None
    app_id: str | None = None
    tags: list[str] | None = None
    info: dict[str, Any] | None = None
    allow_public: bool = False
    allow_knowledgebase_ids: list[str] | None = None
    async_mode: bool = True
    # Not in the cloud reference (the cloud always refines in the background):
    # "fine" runs LLM extraction and evolution after the fast pass, in the
    # background when async_mode is true (task "running" until it ends), else
    # before answering.
    mode: Literal["fast", "fine"] | None = None


class SearchMemoryRequest(CloudRequest):
    user_id: str | None = None
    query: str | None = None
    conversation_id: str | None = None
    filter: dict[str, Any] | None = None
    knowledgebase_ids: list[str] | str | None = None
    memory_limit_number: int | None = None
    include_preference: bool = True
    preference_limit_number: int | None = None
    include_tool_memory: bool = False
    tool_memory_limit_number: int | None = None
    include_skill: bool = False
    skill_limit_number: int | None = None
    relativity: float | None = None


class GetMemoryRequest(CloudRequest):
    user_id: str | None = None
    page: int | None = None
    size: int | None = None
    filter: dict[str, Any] | None = None
    include_preference: bool = True
    include_tool_memory: bool = False


class DeleteMemoryRequest(CloudRequest):
    memory_ids: list[str] | None = None
    user_id: str | None = None
    user_ids: list[str] | None = None


class GetMessageRequest(CloudRequest):
    user_id: str | None = None
    conversation_id: str | None = None
    message_limit_number: int | None = None


class ExtractMemoryRequest(CloudRequest):
    """``POST /extract/memory``: plain-text messages and which kinds to extract."""

    messages: list[MessageInput] | None = None
    extraction_types: list[str] | None = None
    # Optional: sources and logs name this user; nothing is written either way.
    user_id: str | None = None


class GetStatusRequest(CloudRequest):
    task_id: str | None = None
    # Optional: when given, a task of another user's cube reads as not found.
    user_id: str | None = None


RERANK_MODELS = ("memos-reranker-0.6b", "memos-reranker-4b")


class RerankRequest(CloudRequest):
    """``POST /rerank``: the seed's fields (``model``, ``query``, ``documents``, ``top_n``).

    ``model`` may name either memos-reranker, for clients written against the
    cloud; whichever reranker this server runs answers, and the response's
    ``model`` says which.
    """

    model: str | None = None
    query: str | None = None
    documents: list[str] | None = None
    top_n: int | None = None


def add_message(svc: MemoryService, req: AddMessageRequest) -> dict[str, Any]:
    result = svc.add(
        user_id=req.user_id,
        conversation_id=req.conversation_id,
        messages=req.messages,
        agent_id=req.agent_id,
        app_id=req.app_id,
        tags=req.tags,
        info=req.info,
        require_conversation=True,
        mode=req.mode,
        async_mode=req.async_mode,
    )
    out: dict[str, Any] = {"success": True, "task_id": result.task_id, "status": result.status}
    if result.error is not None:
        out["error"] = result.error
    return out


def extract_memory(svc: MemoryService, req: ExtractMemoryRequest) -> dict[str, Any]:
    """Facts and/or preferences of ``messages``; nothing is stored.

    Lists follow ``extraction_types`` (omitted: both), in the seed's fields plus
    ``confidence`` and ``sources`` so callers can see where each came from.
    ``failed_windows`` appears only when part of a long chat could not be read.
    """
    extraction = svc.extract(
        messages=req.messages, extraction_types=req.extraction_types, user_id=req.user_id
    )
    data: dict[str, Any] = {"success": True}
    if "memory" in extraction.kinds:
        data["memory_detail_list"] = [
            {
                "memory_key": m.key,
                "memory_value": m.value,
                "memory_type": m.memory_type.value,
                "tags": m.tags,
                "confidence": m.confidence,
                "sources": [s.model_dump() for s in m.sources],
            }
            for m in extraction.facts
        ]
    if "preference" in extraction.kinds:
        data["preference_detail_list"] = [
            {
                key: value
                for key, value in preference_detail(p).items()
                if key in ("preference", "preference_type", "reasoning", "sources")
            }
            for p in extraction.preferences
        ]
    if extraction.failed_windows:  # a long chat read in windows, some of which failed
        data["failed_windows"] = [f.summary() for f in extraction.failed_windows]
    return data


def _check_sub_limit(value: int | None, name: str) -> None:
    if value is not None and not 1 <= value <= 25:
        raise InvalidParameter(f"{name} must be between 1 and 25")


def search_memory(svc: MemoryService, req: SearchMemoryRequest) -> dict[str, Any]:
    for name in ("preference_limit_number", "tool_memory_limit_number", "skill_limit_number"):
        _check_sub_limit(getattr(req, name), name)
    hits = svc.search(
        user_id=req.user_id,
        query=req.query,
        filter=req.filter,
        limit=req.memory_limit_number,
        relativity=req.relativity,
        conversation_id=req.conversation_id,
    )
    # Fine mode stores preferences and tool memories beside facts; each goes to its list.
    facts = [h for h in hits if kind_of(h.memory) == "memory"]
    prefs = [h for h in hits if kind_of(h.memory) == "preference"] if req.include_preference else []
    tools = [h for h in hits if kind_of(h.memory) == "tool"]
    data: dict[str, Any] = {
        "memory_detail_list": [memory_detail(h.memory, h.relativity) for h in facts],
        "preference_detail_list": [
            preference_detail(h.memory, h.relativity)
            for h in prefs[: req.preference_limit_number or len(prefs)]
        ],
        "preference_note": "",
    }
    if req.include_tool_memory:
        data["tool_memory_detail_list"] = [
            tool_memory_detail(h.memory, h.relativity)
            for h in tools[: req.tool_memory_limit_number or len(tools)]
        ]
    if req.include_skill:
        data["skill_detail_list"] = []
    return data


def get_memory(svc: MemoryService, req: GetMemoryRequest) -> dict[str, Any]:
    page = svc.list_memories(user_id=req.user_id, page=req.page, size=req.size, filter=req.filter)
    data = memory_page(page, req.size, req.page)
    if not req.include_preference:
        data["preference_detail_list"] = []
    if not req.include_tool_memory:
        data["tool_memory_detail_list"] = []
    return data


def delete_memory(svc: MemoryService, req: DeleteMemoryRequest) -> dict[str, Any]:
    if req.memory_ids is not None and req.user_id:
        raise InvalidParameter("give memory_ids or user_id, not both")
    if req.memory_ids is not None:
        owners = req.user_ids or []
        if len(owners) != 1:
            raise InvalidParameter(
                "deleting by memory_ids needs user_ids with the one owner of those memories"
            )
        deleted = svc.delete_memories(user_id=owners[0], memory_ids=req.memory_ids)
    elif req.user_id:
        deleted = svc.delete_all(user_id=req.user_id)
    else:
        raise InvalidParameter("give memory_ids (with user_ids) or user_id")
    return {"success": True, "deleted_count": deleted}


def get_message(svc: MemoryService, req: GetMessageRequest) -> dict[str, Any]:
    found = svc.messages(
        user_id=req.user_id,
        conversation_id=req.conversation_id,
        limit=req.message_limit_number,
    )
    return {"message_detail_list": [message_detail(m) for m in found]}


def get_status(svc: MemoryService, req: GetStatusRequest) -> dict[str, Any]:
    task = svc.task(req.task_id, req.user_id)
    out: dict[str, Any] = {"status": task.status}
    # Without user_id the request proves nothing but the (unguessable, UUID4) task id:
    # it gets the status, never the failure text, which may quote the owner's
    # messages (docs/decisions.md says what remains until API keys).
    if task.error is not None and req.user_id is not None:
        out["error"] = task.error
    return out


def rerank(svc: MemoryService, req: RerankRequest) -> dict[str, Any]:
    """The seed's rerank answer (``id``, ``model``, ``usage``, ``results``) as ``data``.

    The seed documents that answer without the ``{code, message, data}``
    envelope; we wrap it like every other cloud endpoint so errors (40000,
    40002, 40003, 40305) and successes share one shape, and keep the seed's
    field names inside (``results[].index``, ``relevance_score``,
    ``document.text``). :class:`memos.rerank.http.HttpReranker` reads both forms.
    """
    if req.model is not None and req.model not in RERANK_MODELS:
        raise InvalidParameter(f"model must be one of {', '.join(RERANK_MODELS)} or omitted")
    outcome = svc.rerank(query=req.query, documents=req.documents, top_n=req.top_n)
    documents = req.documents or []
    return {
        "id": new_id(),
        "model": outcome.model,
        "usage": {"prompt_tokens": outcome.prompt_tokens, "total_tokens": outcome.prompt_tokens},
        "results": [
            {
                "index": r.index,
                "relevance_score": r.score,
                "document": {"text": documents[r.index]},
            }
            for r in outcome.results
        ],
    }
