"""Row <-> domain conversions shared by the store adapters (same column types in both).

Reading is forgiving where writing is strict: the service refuses bad values at
write time, but a row written before that (or by hand) must not make a whole
cube unreadable. A field that cannot be read back (a time outside what datetime
holds, JSON that is invalid, holds NaN or nests too deep) is repaired to its
empty value and logged, and the rest of the row is served.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

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

logger = logging.getLogger(__name__)
E = TypeVar("E", bound=StrEnum)

# Nesting a stored JSON field may have and still render (write-time limits are lower).
MAX_STORED_DEPTH = 32

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


def _repaired(row_id: Any, name: str, problem: str) -> None:
    logger.warning("stored row %s: field %s unreadable (%s); served empty", row_id, name, problem)


def _read_dt(value: float | None, row_id: Any, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError, TypeError) as exc:
        _repaired(row_id, name, str(exc))
        return None


def _read_when(value: float, row_id: Any, name: str) -> datetime:
    return _read_dt(value, row_id, name) or datetime.fromtimestamp(0, UTC)


def _too_deep(text: str, value: Any) -> bool:
    # Every read passes here: a text with few brackets cannot nest deep, so only
    # the rare large one is walked.
    if isinstance(text, str) and text.count("{") + text.count("[") <= MAX_STORED_DEPTH:
        return False
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_STORED_DEPTH:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999
        raise ValueError(f"{text} is not a finite number")
    return value


# One decoder: ``json.loads`` with hooks builds a new one per call, and every row
# of every read comes through here (3 µs a field, a few ms a search).
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite)


def read_json(text: Any, empty: Any, row_id: Any, name: str, kind: type) -> Any:
    """A stored JSON field, or ``empty`` (logged) when it cannot render back."""
    if text is None or text == "":
        return empty
    try:
        value = _DECODER.decode(text)
    except (ValueError, TypeError, RecursionError) as exc:
        _repaired(row_id, name, str(exc)[:100])
        return empty
    if not isinstance(value, kind) or _too_deep(text, value):
        _repaired(row_id, name, "wrong type, non-finite number or nested too deep")
        return empty
    return value


def _read_enum(kind: type[E], value: Any, fallback: E, row_id: Any, name: str) -> E:
    try:
        return kind(value)
    except ValueError:
        _repaired(row_id, name, f"unknown value {str(value)[:40]!r}")
        return fallback


def _read_sources(text: Any, row_id: Any) -> list[Source]:
    out: list[Source] = []
    for raw in read_json(text, [], row_id, "sources", list):
        try:
            out.append(Source.model_validate(raw))
        except ValueError as exc:
            _repaired(row_id, "sources[]", str(exc)[:100])
    return out


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
        memory_type=_read_enum(MemoryType, row[6], MemoryType.LONG_TERM, row[0], "memory_type"),
        key=row[7],
        value=row[8],
        tags=[t for t in read_json(row[9], [], row[0], "tags", list) if isinstance(t, str)],
        info=read_json(row[10], {}, row[0], "info", dict),
        status=_read_enum(MemoryStatus, row[11], MemoryStatus.ARCHIVED, row[0], "status"),
        confidence=row[12],
        sources=_read_sources(row[13], row[0]),
        mode=_read_enum(MemoryMode, row[14], MemoryMode.FAST, row[0], "mode"),
        version=row[15],
        event_time=_read_dt(row[16], row[0], "event_time"),
        create_time=_read_when(row[17], row[0], "create_time"),
        update_time=_read_when(row[18], row[0], "update_time"),
        context=row[19] or "",
        archive_reason=None
        if row[20] is None
        else _read_enum(ArchiveReason, row[20], ArchiveReason.SUPERSEDED, row[0], "reason"),
        superseded_by=row[21],
        valid_to=_read_dt(row[22], row[0], "valid_to"),
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
        role=_read_enum(Role, row[7], Role.USER, row[0], "role"),
        content=row[8],
        parts=read_json(row[9], None, row[0], "parts", list),
        tool_calls=read_json(row[10], None, row[0], "tool_calls", list),
        tool_call_id=row[11],
        chat_time=row[12],
        event_time=_read_dt(row[13], row[0], "event_time"),
        create_time=_read_when(row[14], row[0], "create_time"),
        update_time=_read_when(row[15], row[0], "update_time"),
    )
