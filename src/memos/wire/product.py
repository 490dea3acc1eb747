"""The open-source dialect (``/product/*``): envelope code 200.

Accepts the current request shapes (``writable_cube_ids``/``readable_cube_ids``)
and the legacy ones (``mem_cube_id``, ``memory_content``). Cubes default to
the user's own cube, whose id is the user id, as upstream does.

Search and get_all answer facts in ``text_mem`` and fine mode's preferences
and tool memories in ``pref_mem`` / ``tool_mem`` (see :mod:`memos.wire.buckets`).
"""

from __future__ import annotations

from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict

from memos.domain.models import MemoryItem, MessageInput, ScoredMemory
from memos.errors import InvalidParameter
from memos.service import MemoryService
from memos.wire.buckets import BUCKET_TYPES, Bucket, grouped, of_types, pref_text
from memos.wire.render import (
    kind_of,
    memory_detail,
    memory_page,
    preference_detail,
    tool_memory_detail,
)

PRODUCT_MAX_TOP_K = 50


class ProductRequest(BaseModel):
    model_config = ConfigDict(extra="allow")


class ProductAddRequest(ProductRequest):
    user_id: str | None = None
    messages: list[MessageInput] | str | None = None
    memory_content: str | None = None
    writable_cube_ids: list[str] | None = None
    mem_cube_id: str | None = None
    session_id: str | None = None
    conversation_id: str | None = None
    agent_id: str | None = None
    app_id: str | None = None
    tags: list[str] | None = None
    custom_tags: list[str] | None = None
    info: dict[str, Any] | None = None
    async_mode: Literal["sync", "async"] = "sync"
    mode: Literal["fast", "fine"] | None = None


class ProductSearchRequest(ProductRequest):
    user_id: str | None = None
    query: str | None = None
    readable_cube_ids: list[str] | None = None
    mem_cube_id: str | None = None
    top_k: int | None = None
    filter: dict[str, Any] | None = None
    relativity: float | None = None
    session_id: str | None = None
    conversation_id: str | None = None
    # upstream APISearchRequest's names and defaults
    include_preference: bool = True
    pref_top_k: int | None = None
    search_tool_memory: bool = True
    tool_mem_top_k: int | None = None


class ProductGetAllRequest(ProductRequest):
    user_id: str | None = None
    memory_type: str = "text_mem"
    mem_cube_ids: list[str] | None = None
    search_query: str | None = None


class ProductGetMemoryRequest(ProductRequest):
    user_id: str | None = None
    mem_cube_id: str | None = None
    page: int | None = None
    size: int | None = None
    filter: dict[str, Any] | None = None
    # upstream GetMemoryRequest's defaults: every kind unless turned off
    include_preference: bool = True
    include_tool_memory: bool = True


class ProductDeleteRequest(ProductRequest):
    user_id: str | None = None
    memory_ids: list[str] | None = None
    mem_cube_id: str | None = None
    writable_cube_ids: list[str] | None = None


def _cubes(many: list[str] | None, one: str | None) -> list[str] | None:
    if many:
        return many
    return [one] if one else None


def add(svc: MemoryService, req: ProductAddRequest) -> list[dict[str, Any]]:
    messages = req.messages
    if isinstance(messages, str):
        messages = [MessageInput(role="user", content=messages)]
    if messages is None and req.memory_content:
        messages = [MessageInput(role="user", content=req.memory_content)]
    named = _cubes(req.writable_cube_ids, req.mem_cube_id)
    cubes: list[str | None] = list(dict.fromkeys(named)) if named else [None]
    results = svc.add_to_cubes(  # every cube checked first, all written in one transaction
        user_id=req.user_id,
        cube_ids=cubes,
        messages=messages,
        conversation_id=req.conversation_id or req.session_id,
        agent_id=req.agent_id,
        app_id=req.app_id,
        tags=(req.tags or []) + (req.custom_tags or []),
        info=req.info,
        mode=req.mode,
        async_mode=req.async_mode == "async",
    )
    out: list[dict[str, Any]] = []
    for cube, result in zip(cubes, results, strict=True):
        for memory_id in result.memory_ids:
            out.append(
                {
                    "memory_id": memory_id,
                    "cube_id": cube or req.user_id,
                    "task_id": result.task_id,
                    "status": result.status,
                }
            )
    return out


PREF_TOP_K = 6
TOOL_MEM_TOP_K = 6
GET_ALL_CAP = 1000


def _bucket_top_k(value: int | None, name: str, default: int) -> int:
    """A per-bucket limit: 0 turns the bucket off (upstream allows it), at most 50."""
    if value is None:
        return default
    if isinstance(value, bool) or not 0 <= value <= PRODUCT_MAX_TOP_K:
        raise InvalidParameter(f"{name} must be between 0 and {PRODUCT_MAX_TOP_K}")
    return value


def _search_bucket(
    svc: MemoryService,
    bucket: Bucket,
    *,
    user_id: str | None,
    query: str | None,
    cube_ids: list[str] | None,
    filter: Any = None,
    limit: int | None,
    relativity: float | None = None,
    conversation_id: str | None = None,
) -> list[ScoredMemory]:
    return svc.search(
        user_id=user_id,
        query=query,
        cube_ids=cube_ids,
        filter=of_types(filter, BUCKET_TYPES[bucket]),
        limit=limit,
        relativity=0.0 if relativity is None else relativity,
        conversation_id=conversation_id,
        max_limit=PRODUCT_MAX_TOP_K,
    )


def search(svc: MemoryService, req: ProductSearchRequest) -> dict[str, Any]:
    """Each bucket searched on its own: ``top_k`` facts, ``pref_top_k`` preferences and
    ``tool_mem_top_k`` tool memories (upstream's defaults: 10, 6, 6)."""
    pref_k = _bucket_top_k(req.pref_top_k, "pref_top_k", PREF_TOP_K)
    tool_k = _bucket_top_k(req.tool_mem_top_k, "tool_mem_top_k", TOOL_MEM_TOP_K)
    named = _cubes(req.readable_cube_ids, req.mem_cube_id)
    cubes = named or [req.user_id or ""]
    common: dict[str, Any] = {
        "user_id": req.user_id,
        "query": req.query,
        "cube_ids": named,
        "filter": req.filter,
        "relativity": req.relativity,
        "conversation_id": req.conversation_id or req.session_id,
    }
    facts = _search_bucket(svc, "text_mem", limit=req.top_k or 10, **common)
    want_prefs, want_tools = req.include_preference and pref_k, req.search_tool_memory and tool_k
    prefs = _search_bucket(svc, "pref_mem", limit=pref_k, **common) if want_prefs else []
    tools = _search_bucket(svc, "tool_mem", limit=tool_k, **common) if want_tools else []
    pref_string, pref_note = pref_text(prefs)
    return {
        "text_mem": grouped(facts, cubes, "text_mem"),
        "act_mem": [],
        "para_mem": [],
        "pref_mem": grouped(prefs, cubes, "pref_mem") if req.include_preference else [],
        "pref_note": pref_note,
        "pref_string": pref_string,
        "tool_mem": grouped(tools, cubes, "tool_mem") if req.search_tool_memory else [],
        "skill_mem": [],
    }


def get_all(svc: MemoryService, req: ProductGetAllRequest) -> list[dict[str, Any]]:
    if req.memory_type not in ("text_mem", "act_mem", "para_mem", "pref_mem", "tool_mem"):
        raise InvalidParameter(
            "memory_type must be text_mem, act_mem, para_mem, pref_mem or tool_mem"
        )
    cubes = req.mem_cube_ids or [req.user_id or ""]
    if req.memory_type in ("act_mem", "para_mem"):
        svc.readable_scopes(req.user_id, cubes)
        return [{"cube_id": c, "memories": []} for c in cubes]
    bucket = cast(Bucket, req.memory_type)
    if req.search_query:
        hits = _search_bucket(
            svc,
            bucket,
            user_id=req.user_id,
            query=req.search_query,
            cube_ids=cubes,
            limit=PRODUCT_MAX_TOP_K,
        )
        return grouped(hits, cubes, bucket)
    out = []
    for cube in cubes:
        items: list[MemoryItem] = []
        page_no, total = 1, 1
        while len(items) < min(total, GET_ALL_CAP):
            page = svc.list_memories(
                user_id=req.user_id,
                cube_id=cube,
                page=page_no,
                size=50,
                filter=of_types(None, BUCKET_TYPES[bucket]),
            )
            total = page.total
            items.extend(page.items)
            if not page.items:
                break
            page_no += 1
        [group] = grouped(items[:GET_ALL_CAP], [cube], bucket)
        out.append({**group, "total": total})
    return out


def get_memory(svc: MemoryService, req: ProductGetMemoryRequest) -> dict[str, Any]:
    page = svc.list_memories(
        user_id=req.user_id,
        cube_id=req.mem_cube_id,
        page=req.page,
        size=req.size,
        filter=req.filter,
    )
    data = memory_page(page, req.size, req.page)
    if not req.include_preference:
        data["preference_detail_list"] = []
    if not req.include_tool_memory:
        data["tool_memory_detail_list"] = []
    return data


def get_memory_by_id(svc: MemoryService, user_id: str | None, memory_id: str) -> dict[str, Any]:
    item = svc.get(user_id=user_id, memory_id=memory_id)
    kind = kind_of(item)
    return {
        "memory_detail_list": [memory_detail(item)] if kind == "memory" else [],
        "preference_detail_list": [preference_detail(item)] if kind == "preference" else [],
        "tool_memory_detail_list": [tool_memory_detail(item)] if kind == "tool" else [],
    }


def delete(svc: MemoryService, req: ProductDeleteRequest) -> dict[str, Any]:
    cubes = _cubes(req.writable_cube_ids, req.mem_cube_id)
    if req.memory_ids is not None:
        deleted = svc.delete_memories(
            user_id=req.user_id, memory_ids=req.memory_ids, cube_ids=cubes
        )
    else:  # every cube checked first, all deleted in one transaction
        deleted = svc.delete_all(user_id=req.user_id, cube_ids=cubes)
    return {"success": True, "deleted_count": deleted}
