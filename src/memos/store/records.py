"""The neutral record stream of ``memos export`` / ``memos import``, shared by the adapters.

A cube exports as JSON-able records, each a dict with a ``record`` kind:
the ``cube``, then its ``memory`` records (every status, with usage and, unless
left out, the ``vector`` and the ``model`` that made it), ``version``,
``edge``, ``message`` and ``task`` records. Fields are the stored columns,
unconverted: times stay epoch seconds (floats, exactly as stored) and the JSON
columns are parsed, so a record written back gives the same row byte for byte.

Importing is done by each adapter in batches (``batches``): this module checks
every record, fills missing vectors through ``embed`` and groups the rows; the
adapter writes one batch per transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memos.domain.models import EdgeKind, MemoryItem, MemoryStatus, Role
from memos.embedders.base import Vectors
from memos.errors import InvalidParameter
from memos.store import rows

KINDS = ("cube", "memory", "version", "edge", "message", "task")
BATCH_SIZE = 500

Record = dict[str, Any]
Records = Iterable[Record]
Embed = Callable[[list[MemoryItem]], Vectors]
"""Vectors for memories that arrive without one (the text the service embeds)."""

CUBE_FIELDS = ("cube_id", "owner_id", "create_time")
MEMORY_COLUMNS = tuple(c.strip() for c in rows.MEMORY_COLUMNS.split(","))
MEMORY_FIELDS = (*MEMORY_COLUMNS, "usage_count", "last_used")
VERSION_FIELDS = (
    "memory_id", "cube_id", "version", "key", "value", "tags", "info", "status", "update_time"
)
EDGE_FIELDS = ("cube_id", "src_id", "dst_id", "kind", "create_time")
MESSAGE_FIELDS = tuple(c.strip() for c in rows.MESSAGE_COLUMNS.split(","))
TASK_FIELDS = ("task_id", "cube_id", "status", "error", "create_time", "update_time")

# Columns holding JSON text (parsed in records; NULL stays null).
_JSON = {
    "memory": {"tags", "info", "sources"},
    "version": {"tags", "info"},
    "message": {"parts", "tool_calls"},
}
FIELDS: dict[str, tuple[str, ...]] = {
    "cube": CUBE_FIELDS,
    "memory": MEMORY_FIELDS,
    "version": VERSION_FIELDS,
    "edge": EDGE_FIELDS,
    "message": MESSAGE_FIELDS,
    "task": TASK_FIELDS,
}


# ------------------------------------------------------------------ export
def record(kind: str, row: Sequence[Any]) -> Record:
    """The record of one stored row (columns in ``FIELDS[kind]`` order)."""
    json_fields = _JSON.get(kind, set())
    out: Record = {"record": kind}
    for name, value in zip(FIELDS[kind], row, strict=True):
        out[name] = json.loads(value) if name in json_fields and value is not None else value
    return out


def memory_record(row: Sequence[Any], model: str | None, vec: np.ndarray | None) -> Record:
    """A memory row (``MEMORY_FIELDS``) with its vector, or without when ``vec`` is None."""
    out = record("memory", row)
    if vec is not None:
        out["model"] = model
        out["vector"] = np.asarray(vec, np.float32).astype(np.float64).tolist()  # exact
    return out


# ------------------------------------------------------------------ import
@dataclass
class MemoryRow:
    params: tuple[Any, ...]  # rows.MEMORY_COLUMNS order
    usage_count: int
    last_used: float | None
    item: MemoryItem
    model: str
    vector: np.ndarray | None = None


@dataclass
class Batch:
    """Rows of up to ``BATCH_SIZE`` records, written by the adapter in one transaction."""

    cubes: list[tuple[Any, ...]] = field(default_factory=list)
    memories: list[MemoryRow] = field(default_factory=list)
    versions: list[tuple[Any, ...]] = field(default_factory=list)
    edges: list[tuple[Any, ...]] = field(default_factory=list)
    messages: list[tuple[Any, ...]] = field(default_factory=list)
    tasks: list[tuple[Any, ...]] = field(default_factory=list)

    def rows(self, kind: str) -> list[tuple[Any, ...]]:
        """The rows of a kind other than ``memory``."""
        return {"cube": self.cubes, "version": self.versions, "edge": self.edges,
                "message": self.messages, "task": self.tasks}[kind]


class Tally:
    """Records written per kind, and those skipped because they were there already."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(KINDS, 0)
        self.skipped = 0

    def add(self, kind: str, offered: int, written: int) -> None:
        self.counts[kind] += written
        self.skipped += offered - written

    def as_dict(self) -> dict[str, int]:
        return {**self.counts, "skipped": self.skipped}


def _fail(n: int, text: str) -> InvalidParameter:
    return InvalidParameter(f"record {n}: {text}")


def _params(rec: Record, kind: str, n: int) -> tuple[Any, ...]:
    json_fields = _JSON.get(kind, set())
    out: list[Any] = []
    for name in FIELDS[kind]:
        if name not in rec:
            raise _fail(n, f"{kind} record has no {name!r}")
        value = rec[name]
        if name in json_fields and value is not None:
            value = json.dumps(value, ensure_ascii=False)
        out.append(value)
    return tuple(out)


def memory_item(rec: Record, n: int = 0) -> MemoryItem:
    """The memory a ``memory`` record holds (``n``: its place, for error messages)."""
    return _item(_params(rec, "memory", n)[: len(MEMORY_COLUMNS)], n)


def _item(base: tuple[Any, ...], n: int) -> MemoryItem:
    try:
        return rows.memory_from_row(base)
    except (ValueError, TypeError) as exc:
        raise _fail(n, f"invalid memory: {exc}") from None


def _memory(rec: Record, n: int, default_model: str) -> MemoryRow:
    params = _params(rec, "memory", n)
    base = params[: len(MEMORY_COLUMNS)]
    item = _item(base, n)
    vector = rec.get("vector")
    vec = None
    if vector is not None:
        vec = np.asarray(vector, np.float32)
        if vec.ndim != 1 or not len(vec):
            raise _fail(n, f"memory {item.id!r} has a malformed vector")
    model = rec.get("model") if vec is not None else None
    return MemoryRow(
        params=base,
        usage_count=int(params[-2]),
        last_used=params[-1],
        item=item,
        model=str(model) if model else default_model,
        vector=vec,
    )


def _check(kind: str, params: tuple[Any, ...], n: int) -> None:
    """Enumerated fields hold known values (the database would take any text)."""
    try:
        if kind == "version":
            MemoryStatus(params[7])
        elif kind == "edge":
            EdgeKind(params[3])
        elif kind == "message":
            Role(params[7])
    except ValueError as exc:
        raise _fail(n, str(exc)) from None


def batches(
    records: Records,
    *,
    embed: Embed | None,
    default_model: str,
    size: int = BATCH_SIZE,
) -> Iterator[Batch]:
    """Checked rows in batches of ``size`` records, every memory with a vector.

    Every record must follow its cube's record in the stream. Memories without
    a vector get one from ``embed`` (made by ``default_model``); with no
    ``embed`` such a memory is refused.
    """
    known: set[str] = set()
    batch, filled = Batch(), 0
    for n, rec in enumerate(records, 1):
        kind = rec.get("record") if isinstance(rec, dict) else None
        if kind not in FIELDS:
            raise _fail(n, f"unknown record kind {kind!r}; expected one of {', '.join(KINDS)}")
        cube_id = rec.get("cube_id")
        if kind == "cube":
            known.add(str(cube_id))
        elif cube_id not in known:
            raise _fail(n, f"{kind} of cube {cube_id!r} comes before that cube's record")
        if kind == "memory":
            batch.memories.append(_memory(rec, n, default_model))
        else:
            params = _params(rec, kind, n)
            _check(kind, params, n)
            batch.rows(kind).append(params)
        filled += 1
        if filled >= size:
            yield _embedded(batch, embed)
            batch, filled = Batch(), 0
    if filled:
        yield _embedded(batch, embed)


def _embedded(batch: Batch, embed: Embed | None) -> Batch:
    missing = [m for m in batch.memories if m.vector is None]
    if not missing:
        return batch
    if embed is None:
        raise InvalidParameter(
            f"memory {missing[0].item.id!r} has no vector and no embedder was given: "
            "import with the embedder configured (memos import embeds them) or export "
            "again with vectors"
        )
    vectors = np.asarray(embed([m.item for m in missing]), np.float32)
    if len(vectors) != len(missing):
        raise ValueError("the embedder returned a different number of vectors")
    for row, vec in zip(missing, vectors, strict=True):
        row.vector = vec
    return batch


def fresh(what: str, existing: dict[str, str], pairs: list[tuple[str, str]]) -> list[bool]:
    """For each (id, cube_id) of a batch: True to write it, False to skip it (stored already).

    ``existing`` maps the ids already stored to their cube; an id stored in
    another cube is refused, since an import keeps ids.
    """
    out = []
    for id_, cube_id in pairs:
        held = existing.get(id_)
        if held is not None and held != cube_id:
            raise InvalidParameter(
                f"{what} {id_!r} already exists in another cube of the target store; "
                "ids are kept on import, so this file cannot go into this store"
            )
        out.append(held is None)
    return out
