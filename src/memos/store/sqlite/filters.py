"""Compile a parsed filter tree into a parameterised SQLite WHERE fragment."""

from __future__ import annotations

from typing import Any

from memos.domain.filters import TIME_FIELDS, Cond, Node

_COMPARE = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _json(alias: str, column: str, empty: str) -> str:
    """A JSON column, or ``empty`` where the stored text is not valid JSON: a row
    written before write-time validation (``NaN`` in ``info``) must not fail the
    whole cube's filtered reads; it just matches nothing."""
    return f"(CASE WHEN json_valid({alias}.{column}) THEN {alias}.{column} ELSE '{empty}' END)"


def _info_path(name: str) -> str:
    key = name[5:].replace("\\", "\\\\").replace('"', '\\"')
    return f'$."{key}"'


def _value(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value


def _cond(cond: Cond, alias: str, params: list[Any]) -> str:
    tags, info = _json(alias, "tags", "[]"), _json(alias, "info", "{}")
    if cond.field == "tags":
        if cond.op == "in":
            params.extend(_value(v) for v in cond.value)
            marks = ", ".join("?" for _ in cond.value)
            return f"EXISTS (SELECT 1 FROM json_each({tags}) WHERE value IN ({marks}))"
        params.append(_value(cond.value))
        exists = f"EXISTS (SELECT 1 FROM json_each({tags}) WHERE value = ?)"
        return f"NOT {exists}" if cond.op == "ne" else exists
    if cond.field.startswith("info."):
        params.append(_info_path(cond.field))
        column = f"json_extract({info}, ?)"
    else:
        # field names come from a fixed allow-list in memos.domain.filters
        column = f"{alias}.{cond.field}"
    if cond.op in _COMPARE:
        params.append(cond.value if cond.field in TIME_FIELDS else _value(cond.value))
        return f"{column} {_COMPARE[cond.op]} ?"
    if cond.op == "ne":
        params.append(_value(cond.value))
        return f"({column} IS NULL OR {column} != ?)"
    if cond.op == "in":
        params.extend(_value(v) for v in cond.value)
        return f"{column} IN ({', '.join('?' for _ in cond.value)})"
    # contains on a text field
    params.append(str(cond.value))
    return f"instr({column}, ?) > 0"


def compile_filter(node: Node, alias: str, params: list[Any]) -> str:
    """Return SQL for ``node`` over table ``alias``; appends bound values to params."""
    if isinstance(node, Cond):
        if node.field.startswith("info.") and node.op == "ne":
            # the json path parameter is bound twice in the IS NULL/!= form
            info = _json(alias, "info", "{}")
            params.append(_info_path(node.field))
            params.append(_info_path(node.field))
            params.append(_value(node.value))
            col = f"json_extract({info}, ?)"
            return f"({col} IS NULL OR {col} != ?)"
        return _cond(node, alias, params)
    joiner = " AND " if node.kind == "and" else " OR "
    return "(" + joiner.join(compile_filter(child, alias, params) for child in node.children) + ")"
