"""Render domain objects into the JSON shapes both dialects share."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from memos.domain.models import (
    DETAIL_KEY,
    PREFERENCE_TYPES,
    TOOL_TYPES,
    MemoryItem,
    Message,
    Page,
)


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def sources(item: MemoryItem) -> list[dict[str, Any]]:
    return [s.model_dump() for s in item.sources]


def memory_detail(item: MemoryItem, relativity: float | None = None) -> dict[str, Any]:
    """A ``memory_detail_list`` entry (cloud and ``/product/get_memory``)."""
    out: dict[str, Any] = {
        "id": item.id,
        "memory_key": item.key,
        "memory_value": item.value,
        "memory_type": item.memory_type.value,
        "memory_time": iso(item.event_time),
        "create_time": iso(item.create_time),
        "update_time": iso(item.update_time),
        "conversation_id": item.conversation_id,
        "status": item.status.value,
        "confidence": item.confidence,
        "tags": item.tags,
        "info": public_info(item),
        "agent_id": item.agent_id,
        "app_id": item.app_id,
        "sources": sources(item),
    }
    if relativity is not None:
        out["relativity"] = relativity
    return out


def public_info(item: MemoryItem) -> dict[str, Any]:
    """The client's ``info``, without the fields fine mode keeps there."""
    return {k: v for k, v in item.info.items() if k != DETAIL_KEY}


def fine_detail(item: MemoryItem) -> dict[str, Any]:
    found = item.info.get(DETAIL_KEY)
    return found if isinstance(found, dict) else {}


def preference_detail(item: MemoryItem, relativity: float | None = None) -> dict[str, Any]:
    """A ``preference_detail_list`` entry."""
    out: dict[str, Any] = {
        "id": item.id,
        "preference_type": item.memory_type.value,
        "preference": item.value,
        "reasoning": fine_detail(item).get("reasoning", ""),
        "create_time": iso(item.create_time),
        "update_time": iso(item.update_time),
        "conversation_id": item.conversation_id,
        "status": item.status.value,
        "tags": item.tags,
        "info": public_info(item),
        "sources": sources(item),
    }
    if relativity is not None:
        out["relativity"] = relativity
    return out


def tool_memory_detail(item: MemoryItem, relativity: float | None = None) -> dict[str, Any]:
    """A ``tool_memory_detail_list`` entry."""
    detail = fine_detail(item)
    out: dict[str, Any] = {
        "id": item.id,
        "tool_type": item.memory_type.value,
        "tool_value": item.value,
        "tool_used_status": detail.get("tool_used_status", []),
        "experience": detail.get("experience", ""),
        "create_time": iso(item.create_time),
        "update_time": iso(item.update_time),
        "conversation_id": item.conversation_id,
        "status": item.status.value,
        "tags": item.tags,
        "info": public_info(item),
        "sources": sources(item),
    }
    if relativity is not None:
        out["relativity"] = relativity
    return out


def message_detail(msg: Message) -> dict[str, Any]:
    return {
        "message_id": msg.message_id or msg.id,
        "role": msg.role.value,
        "content": msg.content,
        "chat_time": msg.chat_time,
        "conversation_id": msg.conversation_id,
        "create_time": iso(msg.create_time),
        "update_time": iso(msg.update_time),
    }


def page_fields(total: int, size: int, page: int) -> dict[str, int]:
    return {"total": total, "size": size, "current": page, "pages": (total + size - 1) // size}


def kind_of(item: MemoryItem) -> str:
    """Which response list a memory belongs in: ``memory``, ``preference`` or ``tool``."""
    if item.memory_type in PREFERENCE_TYPES:
        return "preference"
    if item.memory_type in TOOL_TYPES:
        return "tool"
    return "memory"


def memory_page(page: Page, size: int | None, current: int | None) -> dict[str, Any]:
    """A ``get_memory`` payload: facts, preferences and tool memories in their own lists."""
    return {
        "memory_detail_list": [memory_detail(m) for m in page.items if kind_of(m) == "memory"],
        "preference_detail_list": [
            preference_detail(m) for m in page.items if kind_of(m) == "preference"
        ],
        "tool_memory_detail_list": [
            tool_memory_detail(m) for m in page.items if kind_of(m) == "tool"
        ],
        **page_fields(page.total, size or 10, current or 1),
    }
