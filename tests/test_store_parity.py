"""The two store adapters rank the same data the same way.

One fixed, generated conversation corpus is added through the real service
(packaged MiniLM embedder, fast mode) once over SQLite and once over
PostgreSQL; the same questions must come back with the same memories. Vector
search is exact on both at this size, and BM25 is the same formula over the
same stems, so the only allowed difference is the order of near-ties
(float32 arithmetic in the SQLite index, float8 in SQL): stated tolerance,
top-1 identical for at least 95% of queries and top-10 overlap of at least 0.95
on average.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from memos.domain.models import MessageInput
from memos.embedders import build_embedder
from memos.service import MemoryService
from memos.settings import load_settings
from memos.store.postgres import PostgresStore
from memos.store.sqlite import SQLiteStore
from pg_support import fresh_database

NAMES = ["Caroline", "Melanie", "Jon", "Gina", "Tim", "Priya", "Wei", "Lena"]
THINGS = [
    ("adopted a puppy named {x}", ["Biscuit", "Pepper", "Mochi", "Ziggy"]),
    ("started learning {x} on weekends", ["pottery", "guitar", "Spanish", "rock climbing"]),
    ("is planning a trip to {x} next summer", ["Kyoto", "Lisbon", "Patagonia", "Iceland"]),
    ("volunteers at the {x} every Saturday", ["animal shelter", "food bank", "library"]),
    ("is allergic to {x}", ["peanuts", "shellfish", "cats", "pollen"]),
    ("works as a {x} at the city hospital", ["nurse", "surgeon", "pharmacist"]),
    ("ran a {x} for a charity last month", ["marathon", "half marathon", "10k race"]),
    ("is reading a book about {x}", ["ancient Rome", "black holes", "mushrooms", "chess"]),
    ("moved from {x} to a bigger apartment", ["Boston", "Denver", "Austin"]),
    ("painted a {x} for the art fair", ["sunset over the lake", "portrait of her mother"]),
]
QUESTIONS = [
    "What is the name of {n}'s puppy?",
    "What hobby did {n} pick up?",
    "Where is {n} travelling next summer?",
    "What is {n} allergic to?",
    "Which job does {n} have at the hospital?",
    "What race did {n} run for charity?",
    "What book topic is {n} reading about?",
    "Where did {n} live before the new apartment?",
]


def corpus() -> list[tuple[str, str]]:
    """(speaker, utterance) pairs, deterministic."""
    rng = random.Random(26)
    lines = []
    for name, (template, options) in itertools.product(NAMES, THINGS):
        lines.append((name, f"{name} {template.format(x=rng.choice(options))}."))
        mood = rng.choice(["great", "awful", "rainy", "so hot"])
        lines.append((name, f"Honestly {name} says the weather has been {mood} this week."))
    rng.shuffle(lines)
    return lines


def _fill(svc: MemoryService, lines: list[tuple[str, str]]) -> None:
    for i in range(0, len(lines), 10):
        batch = lines[i : i + 10]
        svc.add(user_id="parity", conversation_id="c1", messages=[
            MessageInput(role="user", content=f"{who}: {text}",
                         chat_time=f"2025-0{1 + (i // 40) % 9}-1{i % 10} 10:00")
            for who, text in batch])


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory, postgres_url: str
             ) -> Iterator[tuple[MemoryService, MemoryService]]:
    base: Path = tmp_path_factory.mktemp("parity")
    settings = load_settings({"data_dir": base, "embedder": {"kind": "minilm"}}, environ={})
    embedder = build_embedder(settings.embedder)
    lite = MemoryService(settings, SQLiteStore(base / "memos.db", embed_model=embedder.name),
                         embedder, run_workers=False)
    pg_url = fresh_database(postgres_url, "parity")
    pg = MemoryService(settings, PostgresStore(pg_url, embed_model=embedder.name),
                       embedder, run_workers=False)
    lines = corpus()
    for svc in (lite, pg):
        _fill(svc, lines)
    yield lite, pg
    lite.close()
    pg.close()


def test_both_stores_hold_the_same_memories(
    services: tuple[MemoryService, MemoryService],
) -> None:
    lite, pg = services
    a = lite.store.count_memories(lite._scope("parity"))
    b = pg.store.count_memories(pg._scope("parity"))
    assert a == b == len(corpus())


def test_search_returns_the_same_top_results_on_both_stores(
    services: tuple[MemoryService, MemoryService],
) -> None:
    lite, pg = services
    queries = [q.format(n=n) for q, n in itertools.product(QUESTIONS, NAMES)]
    same_top1, overlaps = 0, []
    for q in queries:
        a = [h.memory.value for h in lite.search(user_id="parity", query=q, limit=10,
                                                 relativity=0)]
        b = [h.memory.value for h in pg.search(user_id="parity", query=q, limit=10,
                                               relativity=0)]
        assert len(a) == len(b) == 10, q
        same_top1 += a[0] == b[0]
        overlaps.append(len(set(a) & set(b)) / 10)
    assert same_top1 / len(queries) >= 0.95, same_top1
    assert sum(overlaps) / len(overlaps) >= 0.95, overlaps
    print(f"parity: top-1 identical {same_top1}/{len(queries)}, "
          f"mean top-10 overlap {sum(overlaps) / len(overlaps):.3f}")


def test_keyword_ranking_matches_the_sqlite_index(
    services: tuple[MemoryService, MemoryService],
) -> None:
    lite, pg = services
    for q in ["puppy Biscuit", "allergic peanuts", "charity marathon", "Kyoto summer trip",
              "weather rainy", "pharmacist hospital", "mushrooms"]:
        a = lite.store.text_search(lite._scope("parity"), q, 20, None)
        b = pg.store.text_search(pg._scope("parity"), q, 20, None)
        value = {m.id: m.value for m in lite.store.get_memories(
            lite._scope("parity"), [h.memory_id for h in a])}
        value_pg = {m.id: m.value for m in pg.store.get_memories(
            pg._scope("parity"), [h.memory_id for h in b])}
        assert [round(h.score, 3) for h in a] == [round(h.score, 3) for h in b], q
        tie_free = [i for i in range(len(a) - 1) if a[i].score - a[i + 1].score > 1e-3]
        for i in tie_free:
            assert value[a[i].memory_id] == value_pg[b[i].memory_id], q
