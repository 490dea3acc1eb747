"""Search caches stay consistent with the store through updates, archives and deletes.

Runs against the real SQLite file with the real MiniLM embedder, through the
service (one process) and through a second store instance on the same file
(another process's view).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from memos.domain.models import MemoryStatus, MessageInput, Scope
from memos.embedders.minilm import MiniLMEmbedder
from memos.service import MemoryService
from memos.settings import load_settings
from memos.store.sqlite import SQLiteStore

FACTS = [
    "I live in Hangzhou near the West Lake.",
    "My favourite drink is oolong tea.",
    "I work as a backend engineer at a logistics company.",
    "My daughter plays the violin every evening.",
    "I am allergic to peanuts.",
]


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def test_search_follows_updates_archives_and_deletes(tmp_path: Path,
                                                     embedder: MiniLMEmbedder) -> None:
    settings = load_settings({"data_dir": tmp_path}, environ={})
    svc = MemoryService.open(settings, embedder=embedder)
    scope = Scope.for_user("u1")
    added = svc.add(user_id="u1", conversation_id="c1",
                    messages=[MessageInput(role="user", content=f) for f in FACTS])
    ids = dict(zip(FACTS, added.memory_ids, strict=True))

    def found(query: str) -> list[str]:
        return [h.memory.value for h in svc.search(user_id="u1", query=query, relativity=0.0)]

    assert found("Where do I live?")[0] == FACTS[0]

    # update: the new version is found by its new words, the old words no longer match it
    new_value = "I moved to Chengdu last month for the spicy food."
    svc.store.update_memory(scope, ids[FACTS[0]], {"value": new_value},
                            vector=embedder.embed([new_value])[0])
    assert found("Chengdu")[0] == new_value
    assert FACTS[0] not in found("West Lake Hangzhou")
    assert [v.value for v in svc.store.history(scope, ids[FACTS[0]])] == [FACTS[0]]

    # archive and delete: gone from both retrievers, whatever the query
    svc.store.set_status(scope, [ids[FACTS[1]]], MemoryStatus.ARCHIVED)
    svc.delete_memories(user_id="u1", memory_ids=[ids[FACTS[4]]])
    for query in ("oolong tea drink", "peanut allergy", "favourite drink", "allergic"):
        assert FACTS[1] not in found(query) and FACTS[4] not in found(query)
    assert set(found("engineer violin")) >= {FACTS[2], FACTS[3]}

    # restoring an archived memory brings it back
    svc.store.set_status(scope, [ids[FACTS[1]]], MemoryStatus.ACTIVATED)
    assert found("oolong tea")[0] == FACTS[1]

    # another process's view of the same file sees the same state, and its writes reach us
    other = SQLiteStore(settings.db_path, embed_model=embedder.name)
    try:
        hits = other.text_search(scope, "peanuts allergic", 10, None)
        assert ids[FACTS[4]] not in {h.memory_id for h in hits}
        other.set_status(scope, [ids[FACTS[2]]], MemoryStatus.DELETED)
    finally:
        other.close()
    assert FACTS[2] not in found("backend engineer logistics")
    svc.close()
