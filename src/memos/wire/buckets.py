"""The ``/product`` dialect's memory buckets: ``text_mem``, ``pref_mem``, ``tool_mem``.

Upstream answers each kind in its own per-cube list and fills each from its
own retrieval, so a strong fact never pushes a preference out of the answer.
Here every bucket is a memory-type filter over the one store: the request's
filter narrowed to the bucket's types. Items keep upstream's tree-memory shape
(``{id, memory, metadata, ref_id}``); preferences read as upstream's
``PreferenceMemory`` nodes with ``preference_type``, tool memories carry their
``tool_used_status`` and ``experience``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from memos.domain.filters import SOURCE_BLOCKS
from memos.domain.models import (
    PREFERENCE_TYPES,
    TOOL_TYPES,
    MemoryItem,
    MemoryType,
    ScoredMemory,
    cube_name,
)
from memos.reader.prompts import detect_language
from memos.wire.render import fine_detail, iso, public_info, sources

Bucket = Literal["text_mem", "pref_mem", "tool_mem"]
FACT_TYPES = frozenset(MemoryType) - PREFERENCE_TYPES - TOOL_TYPES
BUCKET_TYPES: dict[Bucket, frozenset[MemoryType]] = {
    "text_mem": FACT_TYPES,
    "pref_mem": PREFERENCE_TYPES,
    "tool_mem": TOOL_TYPES,
}
PREF_NOTE = {
    "en": (
        "Follow these preferences where they fit the request: explicit preferences "
        "outweigh implicit ones, and what the user asks now outweighs both."
    ),
    "zh": "在符合当前请求时遵循以上偏好：显式偏好优先于隐式偏好，用户当前的要求优先于两者。",
}

Render = Callable[[MemoryItem, float | None], dict[str, Any]]


def text_mem_item(item: MemoryItem, relativity: float | None = None) -> dict[str, Any]:
    """The tree-memory item shape of upstream's ``text_mem`` lists."""
    ref = f"[{item.id.split('-')[0]}]"
    metadata: dict[str, Any] = {
        "id": item.id,
        "memory": item.value,
        "user_id": item.user_id,
        "session_id": item.conversation_id,
        "status": item.status.value,
        "type": "fact",
        "key": item.key,
        "confidence": item.confidence,
        "tags": item.tags,
        "info": public_info(item),
        "memory_type": item.memory_type.value,
        "memory_time": iso(item.event_time),
        "sources": sources(item),
        "created_at": iso(item.create_time),
        "updated_at": iso(item.update_time),
        "ref_id": ref,
    }
    if relativity is not None:
        metadata["relativity"] = relativity
    return {"id": item.id, "memory": item.value, "metadata": metadata, "ref_id": ref}


def pref_mem_item(item: MemoryItem, relativity: float | None = None) -> dict[str, Any]:
    """A ``pref_mem`` entry: upstream's PreferenceMemory node, its kind in ``preference_type``."""
    out = text_mem_item(item, relativity)
    out["metadata"].update(
        {
            "memory_type": "PreferenceMemory",
            "preference_type": item.memory_type.value,
            "preference": item.value,
            "reasoning": fine_detail(item).get("reasoning", ""),
        }
    )
    return out


def tool_mem_item(item: MemoryItem, relativity: float | None = None) -> dict[str, Any]:
    """A ``tool_mem`` entry: the text item plus the tool fields fine mode extracted."""
    out = text_mem_item(item, relativity)
    detail = fine_detail(item)
    out["metadata"].update(
        {
            "tool_used_status": detail.get("tool_used_status", []),
            "experience": detail.get("experience", ""),
        }
    )
    return out


RENDER: dict[Bucket, Render] = {
    "text_mem": text_mem_item,
    "pref_mem": pref_mem_item,
    "tool_mem": tool_mem_item,
}


def of_types(raw: Any, types: frozenset[MemoryType]) -> Any:
    """The request's filter narrowed to ``types`` (per-source blocks kept as they are).

    A filter that is not an object is passed through so the service rejects it
    with its usual message.
    """
    wanted = {"memory_type": {"in": sorted(t.value for t in types)}}
    if raw is None or raw == {}:
        return wanted
    if not isinstance(raw, dict):
        return raw
    blocks = {k: v for k, v in raw.items() if k in SOURCE_BLOCKS}
    rest = {k: v for k, v in raw.items() if k not in SOURCE_BLOCKS}
    return {**({"and": [rest, wanted]} if rest else wanted), **blocks}


def grouped(
    hits: Sequence[ScoredMemory | MemoryItem], cubes: Sequence[str], bucket: Bucket
) -> list[dict[str, Any]]:
    """One ``{cube_id, memories}`` group per cube asked for (empty ones too), in rank order."""
    render = RENDER[bucket]
    groups: dict[str, list[dict[str, Any]]] = {cube: [] for cube in cubes}
    for hit in hits:
        if isinstance(hit, ScoredMemory):
            item, relativity = hit.memory, hit.relativity
        else:
            item, relativity = hit, None
        groups.setdefault(cube_name(item.cube_id), []).append(render(item, relativity))
    return [{"cube_id": cube, "memories": items} for cube, items in groups.items()]


def pref_text(prefs: Sequence[ScoredMemory]) -> tuple[str, str]:
    """``pref_string`` (the preferences as a prompt block) and ``pref_note``; empty without any."""
    if not prefs:
        return "", ""
    lines: list[str] = []
    for kind, title in (
        (MemoryType.EXPLICIT_PREFERENCE, "Explicit Preference:"),
        (MemoryType.IMPLICIT_PREFERENCE, "Implicit Preference:"),
    ):
        chosen = [p.memory.value for p in prefs if p.memory.memory_type == kind]
        if chosen:
            lines += [title, *(f"{i}. {v}" for i, v in enumerate(chosen, 1))]
    note = PREF_NOTE[detect_language(" ".join(p.memory.value for p in prefs))]
    return "\n".join([*lines, note]), note
