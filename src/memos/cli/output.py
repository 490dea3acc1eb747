"""Plain aligned tables and JSON for the memory commands; no extra dependencies."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from typing import Any

import click

SHORT_ID = 8


def short_id(value: Any) -> str:
    text = "" if value is None else str(value)
    return text[:SHORT_ID]


def one_line(value: Any) -> str:
    text = "" if value is None else str(value)
    return " ".join(text.split())


def truncate(text: str, width: int) -> str:
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + "…"


def terminal_width() -> int:
    return shutil.get_terminal_size((100, 24)).columns


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], width: int | None = None) -> str:
    """Left-aligned columns two spaces apart; the last column is cut to fit ``width``."""
    width = width or terminal_width()
    fixed = [
        max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers[:-1])
    ]
    used = sum(fixed) + 2 * len(fixed)
    last = max(width - used, 10)

    def line(cells: Sequence[str]) -> str:
        head = "".join(c.ljust(w) + "  " for c, w in zip(cells[:-1], fixed, strict=True))
        return (head + truncate(cells[-1], last)).rstrip()

    return "\n".join([line(headers)] + [line(r) for r in rows])


def relativity(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def memory_table(memories: Sequence[dict[str, Any]], *, scored: bool,
                 full_ids: bool = False) -> str:
    headers = ["ID", "TYPE"] + (["RELATIVITY"] if scored else ["CREATED"]) + ["MEMORY"]
    rows = []
    for m in memories:
        middle = relativity(m.get("relativity")) if scored else one_line(m.get("create_time"))[:19]
        ident = one_line(m.get("id")) if full_ids else short_id(m.get("id"))
        rows.append([ident, one_line(m.get("memory_type")), middle,
                     one_line(m.get("memory_value"))])
    return table(headers, rows)


def message_table(messages: Sequence[dict[str, Any]]) -> str:
    rows = [
        [short_id(m.get("message_id")), one_line(m.get("role")),
         one_line(m.get("chat_time")) or one_line(m.get("create_time"))[:19],
         one_line(m.get("content"))]
        for m in messages
    ]
    return table(["ID", "ROLE", "TIME", "CONTENT"], rows)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))
