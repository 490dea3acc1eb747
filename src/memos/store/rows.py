"""Row <-> domain conversions shared by the store adapters (same column types in both)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

from memos.domain.models import (
    ArchiveReason,
    MemoryItem,
    MemoryMode,
    MemoryStatus,
    MemoryType,
    Message,
    Role,
    Source,
)

MEMORY_COLUMNS = (
    "id, cube_id, user_id, agent_id, app_id, conversation_id, memory_type, key, value, tags, "
    "info, status, confidence, sources, mode, version, event_time, create_time, update_time, "
    "context, archive_reason, superseded_by, valid_to"
)
N_MEMORY_COLUMNS = MEMORY_COLUMNS.count(",") + 1


def qualified(alias: str) -> str:
    """MEMORY_COLUMNS prefixed with a table alias, for joins."""
    return ", ".join(f"{alias}.{c.strip()}" for c in MEMORY_COLUMNS.split(","))
MESSAGE_COLUMNS = (
    "id, message_id, cube_id, user_id, conversation_id, agent_id, app_id, role, content, parts, "
    "tool_calls, tool_call_id, chat_time, event_time, create_time, update_time"
)


def ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def when(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def memory_params(item: MemoryItem) -> tuple[Any, ...]:
    return (
        item.id,
        item.cube_id,
        item.user_id,
        item.agent_id,
        item.app_id,
        item.conversation_id,
        item.memory_type.value,
        item.key,
        item.value,
        json.dumps(item.tags, ensure_ascii=False),
        json.dumps(item.info, ensure_ascii=False),
        item.status.value,
        item.confidence,
        json.dumps([s.model_dump() for s in item.sources], ensure_ascii=False),
        item.mode.value,
        item.version,
        ts(item.event_time),
        ts(item.create_time),
        ts(item.update_time),
        item.context,
        None if item.archive_reason is None else item.archive_reason.value,
        item.superseded_by,
        ts(item.valid_to),
    )


def memory_from_row(row: sqlite3.Row | tuple[Any, ...]) -> MemoryItem:
    return MemoryItem(
        id=row[0],
        cube_id=row[1],
        user_id=row[2],
        agent_id=row[3],
        app_id=row[4],
        conversation_id=row[5],
        memory_type=MemoryType(row[6]),
        key=row[7],
        value=row[8],
        tags=json.loads(row[9]),
        info=json.loads(row[10]),
        status=MemoryStatus(row[11]),
        confidence=row[12],
        sources=[Source.model_validate(s) for s in json.loads(row[13])],
        mode=MemoryMode(row[14]),
        version=row[15],
        event_time=dt(row[16]),
        create_time=when(row[17]),
        update_time=when(row[18]),
        context=row[19] or "",
        archive_reason=None if row[20] is None else ArchiveReason(row[20]),
        superseded_by=row[21],
        valid_to=dt(row[22]),
    )


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def message_params(msg: Message) -> tuple[Any, ...]:
    return (
        msg.id,
        msg.message_id,
        msg.cube_id,
        msg.user_id,
        msg.conversation_id,
        msg.agent_id,
        msg.app_id,
        msg.role.value,
        msg.content,
        _json_or_none(msg.parts),
        _json_or_none(msg.tool_calls),
        msg.tool_call_id,
        msg.chat_time,
        ts(msg.event_time),
        ts(msg.create_time),
        ts(msg.update_time),
    )


def message_from_row(row: sqlite3.Row | tuple[Any, ...]) -> Message:
    return Message(
        id=row[0],
        message_id=row[1],
        cube_id=row[2],
        user_id=row[3],
        conversation_id=row[4],
        agent_id=row[5],
        app_id=row[6],
        role=Role(row[7]),
        content=row[8],
        parts=json.loads(row[9]) if row[9] else None,
        tool_calls=json.loads(row[10]) if row[10] else None,
        tool_call_id=row[11],
        chat_time=row[12],
        event_time=dt(row[13]),
        create_time=when(row[14]),
        update_time=when(row[15]),
    )
