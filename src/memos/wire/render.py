"""Render domain objects into the JSON shapes both dialects share."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from memos.domain.models import MemoryItem, Message, Page


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
        "info": item.info,
        "agent_id": item.agent_id,
        "app_id": item.app_id,
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


def memory_page(page: Page, size: int | None, current: int | None) -> dict[str, Any]:
    """A ``get_memory`` payload: facts plus (still empty) preference and tool lists."""
    return {
        "memory_detail_list": [memory_detail(m) for m in page.items],
        "preference_detail_list": [],
        "tool_memory_detail_list": [],
        **page_fields(page.total, size or 10, current or 1),
    }
