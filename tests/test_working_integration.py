"""Proposal check: working memory wired into MemoryService (settings.working.enabled)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from memos.domain.models import MessageInput
from memos.service import MemoryService
from memos.settings import load_settings

LINES = [
    "I adopted a golden retriever puppy named Max last week.",
    "My sister is getting married in Lisbon this October.",
    "I started learning the cello at a community music school.",
    "We repainted the kitchen a pale sage green.",
]


def _open(tmp_path: Path, enabled: bool, **working: object) -> MemoryService:
    return MemoryService.open(
        load_settings(
            {
                "data_dir": tmp_path / "data",
                "embedder": {"kind": "minilm"},
                "working": {"enabled": enabled, **working},
            },
            {},
        )
    )


def _add(svc: MemoryService) -> list[str]:
    res = svc.add(
        user_id="alice",
        conversation_id="c1",
        messages=[
            MessageInput(role="user", content=t, message_id=f"m{i}") for i, t in enumerate(LINES)
        ],
    )
    return res.memory_ids


def test_search_observes_and_usage_is_persisted(tmp_path: Path) -> None:
    svc = _open(tmp_path, True, preload_k=2)
    try:
        ids = _add(svc)
        assert svc.working is not None
        assert set(svc.working.members(("alice", "c1"))) == set(ids)
        assert set(svc.working.members(("alice", None))) == set(ids)
        hits = svc.search(user_id="alice", query="what is my dog called?", limit=2, relativity=0)
        assert hits[0].memory.id == ids[0]
        svc.search(user_id="alice", query="my puppy Max", limit=1, relativity=0)
        svc.flush_usage()
        with sqlite3.connect(tmp_path / "data" / "memos.db") as conn:
            rows = dict(conn.execute("SELECT id, usage_count FROM memories WHERE usage_count > 0"))
            last = conn.execute("SELECT last_used FROM memories WHERE id = ?", (ids[0],)).fetchone()
        assert rows[ids[0]] == 2
        assert sum(rows.values()) == 3
        assert last[0] is not None
        svc.delete_memories(user_id="alice", memory_ids=[ids[0]])
        assert ids[0] not in svc.working.members(("alice", None))
        again = svc.search(user_id="alice", query="what is my dog called?", limit=4, relativity=0)
        assert ids[0] not in {h.memory.id for h in again}
        svc.delete_all(user_id="alice")
        assert svc.working.active_keys() == []
    finally:
        svc.close()


def test_disabled_by_default_and_same_results(tmp_path: Path) -> None:
    off = _open(tmp_path / "off", False)
    on = _open(tmp_path / "on", True)
    try:
        assert off.working is None
        _add(off)
        _add(on)
        for q in ["what is my dog called?", "where is the wedding", "kitchen colour"]:
            a = [h.memory.value for h in off.search(user_id="alice", query=q, relativity=0)]
            b = [h.memory.value for h in on.search(user_id="alice", query=q, relativity=0)]
            assert a[0] == b[0]
    finally:
        off.close()
        on.close()
