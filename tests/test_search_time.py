"""Time awareness in search, through the service with the packaged MiniLM embedder.

The seed's example: the user lived in Beijing, then moved to Shanghai. "Where do
I live?" must answer Shanghai (the current version), "where did I live in 2023"
must still find Beijing first.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from memos.domain.models import MessageInput
from memos.service import MemoryService

pytestmark = pytest.mark.timeout(180)

DISTRACTORS = [
    "My favourite drink is oolong tea.",
    "I work as a backend engineer at a logistics company.",
    "My daughter plays the violin every evening.",
    "I went hiking in the mountains with my brother.",
]


def _add(svc: MemoryService, user: str, text: str, when: str, conv: str) -> None:
    svc.add(user_id=user, conversation_id=conv,
            messages=[MessageInput(role="user", content=text, chat_time=when)])


def _top(svc: MemoryService, user: str, query: str, **kw: object) -> list[str]:
    return [h.memory.value for h in svc.search(user_id=user, query=query, relativity=0.0, **kw)]


@pytest.fixture
def moved(minilm_service: MemoryService) -> MemoryService:
    # The older version is added last, so insertion order cannot explain the result.
    _add(minilm_service, "mover", "I live in Shanghai with my family.", "2025-06-01", "c2")
    for n, text in enumerate(DISTRACTORS):
        _add(minilm_service, "mover", text, f"2024-0{n + 1}-10", f"d{n}")
    _add(minilm_service, "mover", "I live in Beijing with my family.", "2023-03-01", "c1")
    return minilm_service


def test_current_version_first_without_a_time(moved: MemoryService) -> None:
    for query in ("Where do I live?", "Which city is my home?"):
        assert _top(moved, "mover", query)[0] == "I live in Shanghai with my family."


def test_past_window_prefers_the_version_inside_it(moved: MemoryService) -> None:
    for query in ("Where did I live in 2023?", "Where did I live in March 2023?",
                  "Where did I live before 2024?"):
        top = _top(moved, "mover", query)
        assert top[0] == "I live in Beijing with my family.", query
        assert "I live in Shanghai with my family." in top  # preferred, never filtered


def test_relative_time_reads_against_now(minilm_service: MemoryService) -> None:
    now = datetime.now(UTC)
    last_year = now.replace(year=now.year - 1, month=6, day=1).strftime("%Y-%m-%d")
    recent = (now - timedelta(days=2)).strftime("%Y-%m-%d")
    _add(minilm_service, "trips", "We took a trip to Lisbon for the food.", last_year, "a")
    _add(minilm_service, "trips", "We took a trip to Kyoto for the temples.", recent, "b")
    assert _top(minilm_service, "trips", "Where did we travel last year?")[0].startswith(
        "We took a trip to Lisbon")
    assert _top(minilm_service, "trips", "Where did we travel this week?")[0].startswith(
        "We took a trip to Kyoto")


def test_time_preference_can_be_switched_off(moved: MemoryService) -> None:
    moved.searcher.settings.time_aware = False
    try:
        top = _top(moved, "mover", "Where did I live in 2023?")
    finally:
        moved.searcher.settings.time_aware = True
    assert set(top[:2]) == {"I live in Beijing with my family.",
                            "I live in Shanghai with my family."}
