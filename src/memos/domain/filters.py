"""The MemOS filter language, parsed once into a small typed tree.

Grammar (from the seed's examples, generalised so ``and``/``or`` may nest)::

    filter    := {"and": [node, ...]} | {"or": [node, ...]} | condition
                 | {"user": filter, "public": filter, "knowledgebase": filter}
    condition := {field: scalar}                      # equality
               | {field: {op: value, ...}}            # op in gt gte lt lte eq ne contains in

Known fields map to memory columns; any other key is a custom ``info`` field
(bare, as in ``{"scene": "chat"}``, or prefixed ``info.scene``). Dates compare as
UTC instants; a date-only bound covers the whole day (``lte 2025-12-31`` keeps
memories from that day). Store adapters compile the tree to their own SQL.

Per-source blocks: ``user`` applies to personal memories (everything this
server holds today); ``public`` and ``knowledgebase`` are validated and kept
for the sources that later issues add.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from memos.errors import InvalidParameter
from memos.text.timeparse import MAX_YEAR, MIN_YEAR, epoch_seconds, in_range

Op = Literal["eq", "ne", "gt", "gte", "lt", "lte", "contains", "in"]
_OPS: frozenset[str] = frozenset({"eq", "ne", "gt", "gte", "lt", "lte", "contains", "in"})
TIME_FIELDS = frozenset({"create_time", "update_time", "event_time"})
COLUMN_FIELDS = frozenset(
    {"agent_id", "app_id", "conversation_id", "memory_type", "key", "mode", "user_id"}
)
SOURCE_BLOCKS = frozenset({"user", "public", "knowledgebase"})
MAX_DEPTH = 8
MAX_CONDITIONS = 64
# An ``in`` list is bound as SQL parameters: SQLite allows 32,766 in one statement.
MAX_IN_ITEMS = 1_000
# What both stores bind as an integer (and service/validation accepts in any body).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Cond:
    field: str  # a column name, "tags", or "info.<key>"
    op: Op
    value: Any


@dataclass(frozen=True)
class BoolNode:
    kind: Literal["and", "or"]
    children: tuple[Node, ...]


Node = Cond | BoolNode


@dataclass(frozen=True)
class Filter:
    """A parsed filter: what applies to personal memories, plus per-source blocks."""

    personal: Node | None = None
    public: Node | None = None
    knowledgebase: Node | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def parse_time(value: Any, *, bound: str) -> tuple[str, float]:
    """A filter time bound as (operator, epoch seconds).

    A date-only bound covers the whole day: ``lte 2025-12-31`` becomes
    ``lt 2026-01-01T00:00`` and ``gt 2025-12-31`` becomes ``gte 2026-01-01T00:00``.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidParameter(f"filter time must be a date string or epoch number, got {value!r}")
    if isinstance(value, int | float):
        # epoch milliseconds (the cloud examples) or seconds
        seconds = epoch_seconds(value)
        if not in_range(seconds):
            raise InvalidParameter(
                f"filter time {value!r} is outside the years {MIN_YEAR} to {MAX_YEAR}"
            )
        return bound, seconds
    text = value.strip()
    try:
        if len(text) == 10:
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
            if bound == "lte":
                return "lt", (day + timedelta(days=1)).timestamp()
            if bound == "gt":
                return "gte", (day + timedelta(days=1)).timestamp()
            return bound, day.timestamp()
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        raise InvalidParameter(
            f"cannot read time {value!r}: use YYYY-MM-DD or an ISO 8601 datetime"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    seconds = parsed.timestamp()
    if not in_range(seconds):
        raise InvalidParameter(
            f"filter time {value!r} is outside the years {MIN_YEAR} to {MAX_YEAR}"
        )
    return bound, seconds


def _field_name(key: str) -> str:
    if key in COLUMN_FIELDS or key in TIME_FIELDS or key == "tags":
        return key
    name = key[5:] if key.startswith("info.") else key
    # Control characters too: SQLite cuts a JSON path at NUL and then fails (a 503).
    if not name or len(name) > 100 or any(ch in '"\\' or ord(ch) < 32 for ch in name):
        raise InvalidParameter(
            f"invalid filter field {key!r}: info keys are 1-100 characters without quotes"
            " or control characters"
        )
    return "info." + name


def _check_scalar(key: str, value: Any) -> None:
    """A comparable value both stores can bind: 64-bit integers and finite floats only."""
    if isinstance(value, dict | list):
        raise InvalidParameter(f"filter value for {key!r} must be a string, number or boolean")
    if isinstance(value, int) and not isinstance(value, bool):
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidParameter(f"filter value for {key!r} is an integer beyond 64 bits")
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidParameter(f"filter value for {key!r} must be a finite number")


def _condition(key: str, spec: Any) -> Node:
    name = _field_name(key)
    if not isinstance(spec, dict):
        _check_scalar(key, spec)
        if name == "tags":
            return Cond(name, "contains", spec)
        return Cond(name, "eq", spec)
    if not spec:
        raise InvalidParameter(f"filter condition for {key!r} is empty")
    conds: list[Node] = []
    for op, value in spec.items():
        if op not in _OPS:
            raise InvalidParameter(
                f"unknown filter operator {op!r} on {key!r}; use one of {sorted(_OPS)}"
            )
        if op == "in":
            if not isinstance(value, list) or not value:
                raise InvalidParameter(f"'in' on {key!r} needs a non-empty list")
            if len(value) > MAX_IN_ITEMS:
                raise InvalidParameter(
                    f"'in' on {key!r} has {len(value)} values; the maximum is {MAX_IN_ITEMS}"
                )
            for item in value:
                _check_scalar(key, item)
        else:
            _check_scalar(key, value)
        if name in TIME_FIELDS and op in ("gt", "gte", "lt", "lte"):
            op, value = parse_time(value, bound=op)
        elif name in TIME_FIELDS and op in ("eq", "ne"):
            raise InvalidParameter(f"{key!r} supports gt, gte, lt and lte only")
        if op == "contains" and name != "tags" and not isinstance(value, str):
            raise InvalidParameter(f"'contains' on {key!r} needs a string")
        conds.append(Cond(name, op, value))
    return conds[0] if len(conds) == 1 else BoolNode("and", tuple(conds))


class _Counter:
    def __init__(self) -> None:
        self.n = 0

    def tick(self) -> None:
        self.n += 1
        if self.n > MAX_CONDITIONS:
            raise InvalidParameter(f"filter has more than {MAX_CONDITIONS} conditions")


def _node(obj: Any, depth: int, counter: _Counter) -> Node:
    if depth > MAX_DEPTH:
        raise InvalidParameter(f"filter nests deeper than {MAX_DEPTH} levels")
    if not isinstance(obj, dict) or not obj:
        raise InvalidParameter("each filter node must be a non-empty object")
    parts: list[Node] = []
    for key, value in obj.items():
        if key in ("and", "or"):
            if not isinstance(value, list) or not value:
                raise InvalidParameter(f"filter '{key}' needs a non-empty array of conditions")
            children = tuple(_node(child, depth + 1, counter) for child in value)
            parts.append(BoolNode(key, children))
        elif key in SOURCE_BLOCKS:
            raise InvalidParameter(f"filter block {key!r} is only allowed at the top level")
        else:
            counter.tick()
            parts.append(_condition(key, value))
    return parts[0] if len(parts) == 1 else BoolNode("and", tuple(parts))


def parse_filter(raw: Any) -> Filter | None:
    """Validate a request's ``filter`` and return its parsed form (None if absent)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidParameter('filter must be an object such as {"and": [...]}')
    if not raw:
        return None
    counter = _Counter()
    blocks = {k: v for k, v in raw.items() if k in SOURCE_BLOCKS}
    rest = {k: v for k, v in raw.items() if k not in SOURCE_BLOCKS}
    parsed: dict[str, Node | None] = {}
    for name, block in blocks.items():
        parsed[name] = _node(block, 1, counter) if block else None
    root = _node(rest, 1, counter) if rest else None
    personal = parsed.get("user")
    if root is not None and personal is not None:
        personal = BoolNode("and", (root, personal))
    elif root is not None:
        personal = root
    public = parsed.get("public")
    if root is not None:
        public = root if public is None else BoolNode("and", (root, public))
    return Filter(personal=personal, public=public, knowledgebase=parsed.get("knowledgebase"))
