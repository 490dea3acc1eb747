"""The open-source dialect (``/product/*``): envelope code 200.

Accepts the current request shapes (``writable_cube_ids``/``readable_cube_ids``)
and the legacy ones (``mem_cube_id``, ``memory_content``). Cubes default to
the user's own cube, whose id is the user id, as upstream does.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from memos.domain.models import MemoryItem, MessageInput, ScoredMemory
from memos.errors import InvalidParameter
from memos.service import MemoryService
from memos.wire.render import iso, memory_detail, memory_page, sources

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
    include_preference: bool = True


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
    include_preference: bool = True
    include_tool_memory: bool = False


class ProductDeleteRequest(ProductRequest):
    user_id: str | None = None
    memory_ids: list[str] | None = None
    mem_cube_id: str | None = None
    writable_cube_ids: list[str] | None = None


def _cubes(many: list[str] | None, one: str | None) -> list[str] | None:
    if many:
        return many
    return [one] if one else None


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
        "info": item.info,
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


def add(svc: MemoryService, req: ProductAddRequest) -> list[dict[str, Any]]:
    messages = req.messages
    if isinstance(messages, str):
        messages = [MessageInput(role="user", content=messages)]
    if messages is None and req.memory_content:
        messages = [MessageInput(role="user", content=req.memory_content)]
    named = _cubes(req.writable_cube_ids, req.mem_cube_id)
    cubes: list[str | None] = list(named) if named else [None]
    out: list[dict[str, Any]] = []
    for cube in cubes:
        result = svc.add(
            user_id=req.user_id,
            cube_id=cube,
            messages=messages,
            conversation_id=req.conversation_id or req.session_id,
            agent_id=req.agent_id,
            app_id=req.app_id,
            tags=(req.tags or []) + (req.custom_tags or []),
            info=req.info,
            mode=req.mode,
        )
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


def _grouped(hits: list[tuple[str, ScoredMemory | MemoryItem]]) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for cube, hit in hits:
        if isinstance(hit, ScoredMemory):
            groups.setdefault(cube, []).append(text_mem_item(hit.memory, hit.relativity))
        else:
            groups.setdefault(cube, []).append(text_mem_item(hit))
    return [{"cube_id": cube, "memories": items} for cube, items in groups.items()]


def search(svc: MemoryService, req: ProductSearchRequest) -> dict[str, Any]:
    hits = svc.search(
        user_id=req.user_id,
        query=req.query,
        cube_ids=_cubes(req.readable_cube_ids, req.mem_cube_id),
        filter=req.filter,
        limit=req.top_k or 10,
        relativity=0.0 if req.relativity is None else req.relativity,
        conversation_id=req.conversation_id or req.session_id,
        max_limit=PRODUCT_MAX_TOP_K,
    )
    cubes = _cubes(req.readable_cube_ids, req.mem_cube_id) or [req.user_id or ""]
    grouped = _grouped([(h.memory.cube_id, h) for h in hits]) or [
        {"cube_id": c, "memories": []} for c in cubes
    ]
    return {
        "text_mem": grouped,
        "act_mem": [],
        "para_mem": [],
        "pref_mem": [],
        "pref_note": "",
        "tool_mem": [],
        "skill_mem": [],
    }


GET_ALL_CAP = 1000


def get_all(svc: MemoryService, req: ProductGetAllRequest) -> list[dict[str, Any]]:
    if req.memory_type not in ("text_mem", "act_mem", "para_mem", "pref_mem", "tool_mem"):
        raise InvalidParameter(
            "memory_type must be text_mem, act_mem, para_mem, pref_mem or tool_mem"
        )
    cubes = req.mem_cube_ids or [req.user_id or ""]
    if req.memory_type != "text_mem":
        svc.readable_scopes(req.user_id, cubes)
        return [{"cube_id": c, "memories": []} for c in cubes]
    if req.search_query:
        hits = svc.search(
            user_id=req.user_id,
            query=req.search_query,
            cube_ids=cubes,
            limit=PRODUCT_MAX_TOP_K,
            relativity=0.0,
            max_limit=PRODUCT_MAX_TOP_K,
        )
        return _grouped([(h.memory.cube_id, h) for h in hits])
    out = []
    for cube in cubes:
        items: list[dict[str, Any]] = []
        page_no, total = 1, 1
        while len(items) < min(total, GET_ALL_CAP):
            page = svc.list_memories(user_id=req.user_id, cube_id=cube, page=page_no, size=50)
            total = page.total
            items.extend(text_mem_item(m) for m in page.items)
            if not page.items:
                break
            page_no += 1
        out.append({"cube_id": cube, "memories": items[:GET_ALL_CAP], "total": total})
    return out


def get_memory(svc: MemoryService, req: ProductGetMemoryRequest) -> dict[str, Any]:
    page = svc.list_memories(
        user_id=req.user_id,
        cube_id=req.mem_cube_id,
        page=req.page,
        size=req.size,
        filter=req.filter,
    )
    return memory_page(page, req.size, req.page)


def get_memory_by_id(svc: MemoryService, user_id: str | None, memory_id: str) -> dict[str, Any]:
    item = svc.get(user_id=user_id, memory_id=memory_id)
    return {
        "memory_detail_list": [memory_detail(item)],
        "preference_detail_list": [],
        "tool_memory_detail_list": [],
    }


def delete(svc: MemoryService, req: ProductDeleteRequest) -> dict[str, Any]:
    cubes = _cubes(req.writable_cube_ids, req.mem_cube_id)
    if req.memory_ids is not None:
        deleted = svc.delete_memories(
            user_id=req.user_id, memory_ids=req.memory_ids, cube_ids=cubes
        )
    else:
        deleted = 0
        targets: list[str | None] = list(cubes) if cubes else [None]
        for cube in targets:
            deleted += svc.delete_all(user_id=req.user_id, cube_id=cube)
    return {"success": True, "deleted_count": deleted}
