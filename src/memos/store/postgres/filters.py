"""Compile a parsed filter tree into a parameterised PostgreSQL WHERE fragment.

Column names come from the fixed allow-list in :mod:`memos.domain.filters`;
every value and every ``info`` key is a bound parameter. ``info`` values are
compared by their JSON type (a number with a number, a string with a string),
as SQLite's ``json_extract`` does, and a value of another type simply does not
match instead of failing the cast.
"""

from __future__ import annotations

from typing import Any

from memos.domain.filters import TIME_FIELDS, Cond, Node

_COMPARE = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _info(alias: str, key: str, value: Any, params: list[Any]) -> str:
    """The ``info`` field as an SQL value of ``value``'s type (NULL otherwise)."""
    params.extend([key, key])
    if isinstance(value, bool):
        return (
            f"(CASE WHEN json_typeof({alias}.info -> %s) = 'boolean' "
            f"THEN ({alias}.info ->> %s)::boolean END)"
        )
    if isinstance(value, int | float):
        return (
            f"(CASE WHEN json_typeof({alias}.info -> %s) = 'number' "
            f"THEN ({alias}.info ->> %s)::double precision END)"
        )
    return (
        f"(CASE WHEN json_typeof({alias}.info -> %s) = 'string' "
        f"THEN {alias}.info ->> %s END)"
    )


def _column(cond: Cond, alias: str, value: Any, params: list[Any]) -> str:
    if cond.field.startswith("info."):
        return _info(alias, cond.field[5:], value, params)
    return f"{alias}.{cond.field}"


def _tags(cond: Cond, alias: str, params: list[Any]) -> str:
    elements = f"json_array_elements_text({alias}.tags) AS t(v)"
    if cond.op == "in":
        params.append([str(v) for v in cond.value])
        return f"EXISTS (SELECT 1 FROM {elements} WHERE t.v = ANY(%s))"
    params.append(str(cond.value))
    exists = f"EXISTS (SELECT 1 FROM {elements} WHERE t.v = %s)"
    return f"NOT {exists}" if cond.op == "ne" else exists


def _cond(cond: Cond, alias: str, params: list[Any]) -> str:
    if cond.field == "tags":
        return _tags(cond, alias, params)
    if cond.op == "in":
        parts = [_cond(Cond(cond.field, "eq", v), alias, params) for v in cond.value]
        return "(" + " OR ".join(parts) + ")" if parts else "FALSE"
    if cond.op == "contains":
        if cond.field.startswith("info."):
            column = _info(alias, cond.field[5:], "", params)
        else:
            column = f"{alias}.{cond.field}"
        params.append(str(cond.value))
        return f"strpos({column}, %s) > 0"
    value = cond.value
    if cond.field in TIME_FIELDS:
        value = float(value)
    elif not cond.field.startswith("info."):
        value = str(value)  # the other columns are text
    if cond.op == "ne":
        first = _column(cond, alias, value, params)
        second = _column(cond, alias, value, params)
        params.append(value)
        return f"({first} IS NULL OR {second} != %s)"
    column = _column(cond, alias, value, params)
    params.append(value)
    return f"{column} {_COMPARE[cond.op]} %s"


def compile_filter(node: Node, alias: str, params: list[Any]) -> str:
    """Return SQL for ``node`` over table ``alias``; appends bound values to params."""
    if isinstance(node, Cond):
        return _cond(node, alias, params)
    joiner = " AND " if node.kind == "and" else " OR "
    return "(" + joiner.join(compile_filter(child, alias, params) for child in node.children) + ")"
