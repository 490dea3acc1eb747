"""The working set: heat, decay, eviction, usage deltas, key LRU, threads, and a real service.

Vectors are real numpy float32 rows (basis vectors where a test needs exact
cosines); clocks are injected, so every number below is deterministic.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from memos.bench.locomo import Question, Sample, Session, Turn
from memos.bench.working_replay import fast_path_table, placements
from memos.domain.models import MessageInput, Scope
from memos.service import MemoryService
from memos.settings import load_settings
from memos.working import Observed, UsageDelta, WorkingConfig, WorkingMemory
from memos.working.heat import decay_factor, unit

DIM = 16
KEY = ("cube", None)


def basis(i: int, dim: int = DIM) -> np.ndarray:
    row = np.zeros(dim, np.float32)
    row[i] = 1.0
    return row


def rows(*idx: int) -> np.ndarray:
    return np.stack([basis(i) for i in idx])


class FakeClock:
    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def plain(**kw: object) -> WorkingConfig:
    """Heat only: no topic or usage term, so scores equal decayed heat."""
    base: dict[str, object] = {"topic_weight": 0.0, "usage_weight": 0.0}
    base.update(kw)
    return WorkingConfig(**base)  # type: ignore[arg-type]


def heat_of(wm: WorkingMemory, key: tuple[str, str | None], memory_id: str) -> float:
    return next(e.heat for e in wm.snapshot(key) if e.memory_id == memory_id)


# ------------------------------------------------------------------ heat
def test_decay_factor_halves_per_half_life_and_never_grows() -> None:
    assert decay_factor(0.0, 10.0) == 1.0
    assert decay_factor(10.0, 10.0) == pytest.approx(0.5)
    assert decay_factor(30.0, 10.0) == pytest.approx(0.125)
    assert decay_factor(-5.0, 10.0) == 1.0  # a clock stepping back heats nothing


def test_heat_decays_with_wall_time() -> None:
    clock = FakeClock()
    wm = WorkingMemory(plain(decay="seconds", half_life=60.0), clock=clock)
    wm.observe_turns(KEY, ["a"], rows(0))
    assert heat_of(wm, KEY, "a") == pytest.approx(1.0)
    clock.now = 60.0
    assert heat_of(wm, KEY, "a") == pytest.approx(0.5)
    clock.now = 180.0
    assert heat_of(wm, KEY, "a") == pytest.approx(0.125)


def test_heat_decays_per_event_of_the_same_key_only() -> None:
    wm = WorkingMemory(plain(decay="events", half_life=2.0))
    wm.observe_turns(KEY, ["a"], rows(0))  # event 1
    wm.observe_turns(("other", None), ["x"], rows(1))  # another key: no tick here
    assert heat_of(wm, KEY, "a") == pytest.approx(1.0)
    wm.observe_turns(KEY, ["b"], rows(1))  # event 2
    wm.observe_turns(KEY, ["c"], rows(2))  # event 3
    assert heat_of(wm, KEY, "a") == pytest.approx(0.5)
    wm.lookup(KEY, basis(0), 3)  # a lookup is not an event
    assert heat_of(wm, KEY, "a") == pytest.approx(0.5)


def test_search_hits_heat_by_relevance_and_accumulate() -> None:
    wm = WorkingMemory(plain(decay="events", half_life=1e9, search_gain=1.0))
    wm.observe_turns(KEY, ["a", "b"], rows(0, 1))
    wm.observe_search(KEY, basis(0), [Observed("a", basis(0), 0.8)])
    wm.observe_search(KEY, basis(0), [Observed("a", basis(0), 0.5), Observed("b", None, -0.3)])
    assert heat_of(wm, KEY, "a") == pytest.approx(1.0 + 0.8 + 0.5)
    assert heat_of(wm, KEY, "b") == pytest.approx(1.0)  # negative relevance adds nothing
    uses = {e.memory_id: e.uses for e in wm.snapshot(KEY)}
    assert uses == {"a": 2, "b": 1}


# -------------------------------------------------------------- eviction
def test_eviction_drops_the_coldest_member() -> None:
    wm = WorkingMemory(plain(size=2, decay="events", half_life=1e9))
    wm.observe_turns(KEY, ["a", "b"], rows(0, 1))
    wm.observe_search(KEY, basis(0), [Observed("a", basis(0), 0.9)])
    wm.observe_turns(KEY, ["c"], rows(2))
    assert sorted(wm.members(KEY)) == ["a", "c"]
    assert wm.evicted == 1


def test_ties_evict_the_oldest_and_new_turns_beat_decayed_ones() -> None:
    wm = WorkingMemory(plain(size=2, decay="events", half_life=1.0))
    wm.observe_turns(KEY, ["a"], rows(0))
    wm.observe_turns(KEY, ["b"], rows(1))
    wm.observe_turns(KEY, ["c"], rows(2))
    assert sorted(wm.members(KEY)) == ["b", "c"]
    same = WorkingMemory(plain(size=2, decay="events", half_life=1e9))
    same.observe_turns(KEY, ["a", "b", "c"], rows(0, 1, 2))  # equal heat: oldest goes
    assert same.members(KEY) == ["b", "c"]


def test_only_the_first_search_hits_are_admitted() -> None:
    wm = WorkingMemory(plain(size=8, search_admit=1))
    hits = [Observed("x", basis(3), 0.9), Observed("y", basis(4), 0.8)]
    wm.observe_search(KEY, basis(3), hits)
    assert wm.members(KEY) == ["x"]
    assert {d.memory_id for d in wm.drain_usage()} == {"x", "y"}  # both were used


def test_topic_keeps_memories_close_to_recent_queries() -> None:
    """Equal heat: the memory near what the user asks about now stays."""
    wm = WorkingMemory(
        WorkingConfig(size=2, decay="events", half_life=1e9, topic_weight=1.0, usage_weight=0.0)
    )
    wm.observe_turns(KEY, ["tiles", "mortgage"], rows(0, 1))
    wm.observe_search(KEY, basis(0), [])  # the user talks about tiles now
    wm.observe_turns(KEY, ["plumbing"], unit(basis(0) + basis(2))[None, :])
    assert sorted(wm.members(KEY)) == ["plumbing", "tiles"]


def test_usage_frequency_term_breaks_heat_ties() -> None:
    wm = WorkingMemory(plain(size=2, decay="events", half_life=1e9, usage_weight=0.5))
    wm.observe_turns(KEY, ["a", "b"], rows(0, 1))
    wm.observe_search(KEY, basis(5), [Observed("b", basis(1), 0.0)])  # used, no heat gained
    wm.observe_turns(KEY, ["c"], unit(basis(2) * 0.5)[None, :])
    assert sorted(wm.members(KEY)) == ["b", "c"]


def test_preload_enters_lower_and_never_cools_a_member() -> None:
    wm = WorkingMemory(plain(size=4, decay="events", half_life=1e9, preload_gain=0.5))
    wm.observe_turns(KEY, ["a"], rows(0))
    wm.preload(KEY, [Observed("a", basis(0), 0.2), Observed("n", basis(1), 0.6)])
    assert heat_of(wm, KEY, "a") == pytest.approx(1.0)
    assert heat_of(wm, KEY, "n") == pytest.approx(0.3)
    wm.preload(KEY, [Observed("n", basis(1), 1.0)])
    assert heat_of(wm, KEY, "n") == pytest.approx(0.5)
    # a full set evicts preloaded neighbours before turns just said
    small = WorkingMemory(plain(size=2, decay="events", half_life=1e9))
    small.observe_turns(KEY, ["a", "b"], rows(0, 1))
    small.preload(KEY, [Observed("n", basis(2), 0.9)])
    assert sorted(small.members(KEY)) == ["a", "b"]


# ---------------------------------------------------------------- lookup
def test_lookup_orders_by_cosine_and_honours_k_and_floor() -> None:
    wm = WorkingMemory(plain())
    vecs = np.stack([unit(basis(0) + 0.1 * basis(1)), unit(basis(0) + basis(1)), basis(2)])
    wm.observe_turns(KEY, ["near", "mid", "far"], vecs)
    got = wm.lookup(KEY, basis(0), 2)
    assert [m for m, _ in got] == ["near", "mid"]
    assert got[0][1] == pytest.approx(float(vecs[0][0]), abs=1e-6)
    assert got[1][1] == pytest.approx(2**-0.5, abs=1e-6)
    assert [m for m, _ in wm.lookup(KEY, basis(0) * 7.0, 5, min_cosine=0.5)] == ["near", "mid"]
    assert wm.lookup(("nobody", None), basis(0), 3) == []
    assert wm.lookup(KEY, basis(0), 0) == []
    with pytest.raises(ValueError):
        wm.lookup(KEY, np.ones(DIM + 1, np.float32), 3)
    with pytest.raises(ValueError):
        wm.lookup(KEY, np.zeros(DIM, np.float32), 3)
    with pytest.raises(ValueError):
        wm.observe_turns(KEY, ["bad"], np.ones((1, DIM + 1), np.float32))


def test_vectors_are_stored_unit_length() -> None:
    wm = WorkingMemory(plain())
    wm.observe_turns(KEY, ["a"], (3.0 * basis(4))[None, :])
    assert wm.lookup(KEY, basis(4), 1)[0][1] == pytest.approx(1.0)


# ----------------------------------------------------------------- usage
def test_usage_deltas_drain_once_and_can_be_restored() -> None:
    wall = FakeClock(1_700_000_000.0)
    wm = WorkingMemory(plain(), wall=wall)
    wm.observe_turns(("c1", "conv"), ["a"], rows(0))
    wm.observe_search(("c1", "conv"), basis(0), [Observed("a", basis(0), 0.9)])
    wall.now += 5
    wm.observe_search(("c1", None), basis(0), [Observed("a", basis(0), 0.9)])
    wm.observe_search(("c2", None), basis(1), [Observed("z", None, 0.4)])
    snap = wm.usage_snapshot()
    assert snap == wm.usage_snapshot()  # non-destructive
    drained = wm.drain_usage()
    assert sorted(drained) == [
        UsageDelta("c1", "a", 2, 1_700_000_005.0),
        UsageDelta("c2", "z", 1, 1_700_000_005.0),
    ]
    assert wm.drain_usage() == []
    wm.observe_search(("c1", None), basis(0), [Observed("a", basis(0), 0.9)])
    wm.restore_usage(drained)  # a failed persist puts them back, merged
    assert sorted(wm.drain_usage()) == [
        UsageDelta("c1", "a", 3, 1_700_000_005.0),
        UsageDelta("c2", "z", 1, 1_700_000_005.0),
    ]


def test_pending_usage_is_bounded() -> None:
    wm = WorkingMemory(plain(max_pending_usage=3))
    for i in range(5):
        wm.observe_search(KEY, basis(0), [Observed(f"m{i}", None, 0.5)])
    assert [d.memory_id for d in wm.drain_usage()] == ["m2", "m3", "m4"]
    assert wm.dropped_usage == 2


# ------------------------------------------------------------------ keys
def test_keys_are_lru_bounded() -> None:
    wm = WorkingMemory(plain(max_keys=2))
    wm.observe_turns(("a", None), ["x"], rows(0))
    wm.observe_turns(("b", None), ["y"], rows(1))
    wm.lookup(("a", None), basis(0), 1)  # touch a
    wm.observe_turns(("c", "conv"), ["z"], rows(2))
    assert wm.active_keys() == [("a", None), ("c", "conv")]
    assert wm.dropped_keys == 1
    assert wm.members(("b", None)) == []


def test_discard_and_clear_forget_a_cube() -> None:
    wm = WorkingMemory(plain())
    wm.observe_turns(("c1", None), ["a", "b"], rows(0, 1))
    wm.observe_turns(("c1", "conv"), ["a"], rows(0))
    wm.observe_turns(("c2", None), ["a"], rows(0))
    assert wm.discard("c1", ["a", "missing"]) == 2
    assert wm.members(("c1", None)) == ["b"]
    assert [m for m, _ in wm.lookup(("c1", None), basis(0), 5)] == ["b"]  # cache rebuilt
    assert wm.members(("c2", None)) == ["a"]
    wm.clear("c1")
    assert wm.active_keys() == [("c2", None)]
    wm.clear()
    assert wm.active_keys() == []


def test_config_is_validated() -> None:
    for bad in ({"size": 0}, {"half_life": 0.0}, {"decay": "turns"}, {"search_gain": -1.0}):
        with pytest.raises(ValueError):
            WorkingConfig(**bad)  # type: ignore[arg-type]


# --------------------------------------------------------------- threads
def test_concurrent_observers_and_readers_keep_invariants() -> None:
    wm = WorkingMemory(WorkingConfig(size=8, max_keys=3))
    rng = np.random.default_rng(7)
    vecs = rng.standard_normal((64, DIM)).astype(np.float32)
    keys = [(f"c{i % 4}", None) for i in range(4)]
    per_thread = 200
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def writer(seed: int) -> None:
        local = np.random.default_rng(seed)
        try:
            barrier.wait()
            for n in range(per_thread):
                key = keys[n % len(keys)]
                i = int(local.integers(0, 64))
                if n % 3 == 0:
                    wm.observe_turns(key, [f"m{i}"], vecs[i : i + 1])
                else:
                    wm.observe_search(key, vecs[i], [Observed(f"m{i}", vecs[i], 0.7)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            barrier.wait()
            for n in range(per_thread * 2):
                for m, cos in wm.lookup(keys[n % len(keys)], vecs[n % 64], 5):
                    assert m.startswith("m") and -1.0001 <= cos <= 1.0001
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in range(4)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(wm.active_keys()) <= 3
    assert all(len(wm.members(k)) <= 8 for k in wm.active_keys())
    searches = sum(1 for n in range(per_thread) if n % 3 != 0) * 4
    assert sum(d.uses for d in wm.drain_usage()) == searches  # no lost updates


# ---------------------------------------------------------------- replay
def test_replay_places_questions_after_their_latest_evidence() -> None:
    sessions = tuple(
        Session(f"session_{n}", "", (Turn(f"D{n}:1", "user", "x"), Turn(f"D{n}:2", "user", "y")))
        for n in (1, 2, 3)
    )
    questions = (
        Question("q1", 4, ("D1:2",)),
        Question("q2", 1, ("D1:1", "D3:2")),
        Question("q3", 4, ("D2:1",)),
        Question("q4", 4, ("D9:9",)),  # cannot be placed: after the last session
    )
    sample = Sample("s", sessions, questions)
    early = placements(sample, "earliest")
    assert {i: [q.text for q in qs] for i, qs in early.items()} == {
        0: ["q1"],
        2: ["q2", "q4"],
        1: ["q3"],
    }
    assert [q.text for q in placements(sample, "final")[2]] == ["q1", "q2", "q3", "q4"]


def test_fast_path_table_mixes_set_and_full_recall() -> None:
    rows_ = fast_path_table([0.9, 0.2], [1.0, 0.0], [0.5, 1.0])
    by_t = {r["threshold"]: r for r in rows_}
    assert by_t[0.8]["fast_share"] == 0.5
    assert by_t[0.8]["fast_recall_set"] == 1.0
    assert by_t[0.8]["fast_recall_full"] == 0.5
    assert by_t[0.8]["mixed_recall"] == 1.0  # (1.0 from the set + 1.0 from search) / 2


# --------------------------------------------------------------- service
def test_working_set_over_a_real_service_with_minilm(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": tmp_path / "data", "embedder": {"kind": "minilm"}}, {})
    svc = MemoryService.open(settings)
    try:
        lines = [
            "I adopted a golden retriever puppy named Max last week.",
            "My sister is getting married in Lisbon this October.",
            "I started learning the cello at a community music school.",
            "We repainted the kitchen a pale sage green.",
            "My favourite breakfast is congee with pickled vegetables.",
            "I'm training for a half marathon along the river.",
        ]
        added = svc.add(
            user_id="alice",
            conversation_id="c1",
            messages=[
                MessageInput(role="user", content=text, message_id=f"m{i}")
                for i, text in enumerate(lines)
            ],
        )
        scope = Scope.for_user("alice")
        ids = added.memory_ids
        assert len(ids) == len(lines)
        wm = WorkingMemory(WorkingConfig(size=4))
        wm.observe_turns(("alice", "c1"), ids, svc.store.vectors(scope, ids))
        assert len(wm.members(("alice", "c1"))) == 4  # bounded: two were evicted

        query = "What is the name of my dog?"
        qvec = svc.embedder.embed_query(query)
        hits = svc.search(user_id="alice", query=query, limit=3, relativity=0)
        assert hits[0].memory.id == ids[0]
        hit_ids = [h.memory.id for h in hits]
        hit_vecs = svc.store.vectors(scope, hit_ids)
        wm.observe_search(
            ("alice", "c1"),
            qvec,
            [Observed(m, v, float(v @ qvec)) for m, v in zip(hit_ids, hit_vecs, strict=True)],
        )
        top, cosine = wm.lookup(("alice", "c1"), qvec, 1)[0]
        assert top == ids[0]  # the search hit entered the set and answers the lookup
        assert cosine > 0.3
        assert {d.memory_id for d in wm.drain_usage()} == set(hit_ids)
    finally:
        svc.close()
