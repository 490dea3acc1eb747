"""Evolution on write: merge, supersede, duplicate, add, and search over versions.

The LLM is a scripted stand-in that answers extraction calls from a table and
evolution calls with a rule the test chooses, so the seed's scenarios (a move,
a changed preference, a fact repeated across sessions) are checked end to end
through the real service, SQLite store and MiniLM embedder. The pipeline
against a real llama.cpp model is in test_evolution_llm.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memos.domain.models import (
    ArchiveReason,
    EdgeKind,
    MemoryItem,
    MemoryMode,
    MemoryStatus,
    MessageInput,
    Scope,
)
from memos.llm.base import ChatMessage, JsonSchema
from memos.organize import Decision, Neighbour
from memos.organize.decide import build_listing, parse_decisions
from memos.organize.plan import plan_changes
from memos.reader.fine import BadOutput
from memos.service import MemoryService
from memos.settings import Settings, load_settings

pytestmark = pytest.mark.timeout(180)

Decide = Callable[[list[str], list[list[str]]], list[dict[str, Any]]]


class TableLLM:
    """Extraction: the memories listed for the window's first user message.

    Evolution: ``decide(new_texts, existing_texts_per_new)`` returns decisions in
    the reply's shape (labels are resolved from the listing, as a model would).
    """

    def __init__(self, table: dict[str, dict[str, Any]], decide: Decide | None = None) -> None:
        self.table = table
        self.decide = decide or (lambda new, near: [])
        self.evolution_calls: list[str] = []
        self.gate: threading.Event | None = None

    @property
    def name(self) -> str:
        return "table"

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        json_schema: JsonSchema | None = None,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> str:
        if self.gate is not None:
            assert self.gate.wait(30), "the test never opened the gate"
        prompt = messages[-1]["content"]
        if json_schema is not None and "decisions" in json_schema["properties"]:
            self.evolution_calls.append(prompt)
            return json.dumps({"decisions": self._decisions(prompt)})
        for needle, reply in self.table.items():
            if needle in prompt:
                return json.dumps(reply)
        return json.dumps({"memories": [], "preferences": []})

    def _decisions(self, listing: str) -> list[dict[str, Any]]:
        new: list[str] = []
        near: list[list[str]] = []
        labels: list[list[str]] = []
        numbers: list[int] = []
        for line in listing.splitlines():
            if line.startswith("NEW "):
                numbers.append(int(line.split()[1]))
                new.append(line.split("): ", 1)[1])
                near.append([])
                labels.append([])
            elif line.strip().startswith("EXISTING "):
                labels[-1].append(line.split()[1])
                near[-1].append(line.split("): ", 1)[1])
        out = []
        for i, d in enumerate(self.decide(new, near)):
            d = dict(d)
            if "target_index" in d:
                d["target"] = labels[i][d.pop("target_index")]
            out.append({"new": numbers[i], "target": "", "merged_value": "", "reason": "", **d})
        return out

    def close(self) -> None:
        pass


def make_settings(data_dir: Path) -> Settings:
    return load_settings({"data_dir": data_dir, "embedder": {"kind": "minilm"}}, environ={})


def fact(value: str, key: str = "", kind: str = "UserMemory") -> dict[str, Any]:
    return {
        "memories": [
            {
                "key": key or value[:20],
                "value": value,
                "memory_type": kind,
                "tags": [],
                "confidence": 0.9,
                "sources": [1],
            }
        ],
        "preferences": [],
    }


def preference(value: str) -> dict[str, Any]:
    return {
        "memories": [],
        "preferences": [
            {
                "preference": value,
                "preference_type": "explicit_preference",
                "reasoning": "said so",
                "sources": [1],
            }
        ],
    }


def add(svc: MemoryService, user: str, text: str, when: str, conv: str, **kw: Any) -> Any:
    return svc.add(
        user_id=user,
        conversation_id=conv,
        mode="fine",
        messages=[MessageInput(role="user", content=text, chat_time=when, message_id=f"{conv}-1")],
        **kw,
    )


def live(svc: MemoryService, user: str) -> list[MemoryItem]:
    return svc.list_memories(user_id=user, size=50).items


def every_memory(svc: MemoryService, user: str) -> list[MemoryItem]:
    """Active and archived memories of a user (straight from the store)."""
    rows = (
        svc.store._reader()
        .execute(  # type: ignore[attr-defined]
            "SELECT id FROM memories WHERE cube_id = ?", (user,)
        )
        .fetchall()
    )
    return svc.store.get_memories(Scope.for_user(user), [r[0] for r in rows], include_inactive=True)


@pytest.fixture
def make_service(tmp_data_dir: Path) -> Iterator[Callable[[TableLLM], MemoryService]]:
    made: list[MemoryService] = []

    def make(llm: TableLLM) -> MemoryService:
        svc = MemoryService.open(make_settings(tmp_data_dir), llm=llm)
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.close()


def update_first(new: list[str], near: list[list[str]]) -> list[dict[str, Any]]:
    return [{"action": "update", "target_index": 0} for _ in new]


# ------------------------------------------------------------ the seed's move
MOVE = {
    "I live in Beijing.": fact("The user lives in Beijing.", "Home city"),
    "I moved to Shanghai.": fact("The user lives in Shanghai.", "Home city"),
    "I traveled to Xi'an": fact(
        "The user traveled to Xi'an for the National Day holiday.", "Trip", "LongTermMemory"
    ),
}


@pytest.fixture
def moved(make_service: Callable[[TableLLM], MemoryService]) -> tuple[MemoryService, TableLLM]:
    def decide(new: list[str], near: list[list[str]]) -> list[dict[str, Any]]:
        return [{"action": "update" if "lives in" in n else "add", "target_index": 0} for n in new]

    llm = TableLLM(MOVE, decide)
    svc = make_service(llm)
    add(svc, "test_user", "I live in Beijing.", "2025-01-10 10:00:00", "s1")
    add(svc, "test_user", "I moved to Shanghai.", "2025-06-01 10:00:00", "s2")
    add(
        svc,
        "test_user",
        "I traveled to Xi'an during last year's National Day holiday.",
        "2025-10-08 10:00:00",
        "s3",
    )
    return svc, llm


def test_a_move_supersedes_the_old_home_and_keeps_it_findable_by_time(
    moved: tuple[MemoryService, TableLLM],
) -> None:
    svc, llm = moved
    assert len(llm.evolution_calls) >= 1 and "EXISTING E1" in llm.evolution_calls[0]
    values = {m.value for m in live(svc, "test_user")}
    assert "The user lives in Shanghai." in values
    assert "The user lives in Beijing." not in values  # only the current state is active
    old = next(m for m in every_memory(svc, "test_user") if m.value == "The user lives in Beijing.")
    new = next(m for m in live(svc, "test_user") if m.value == "The user lives in Shanghai.")
    assert old.status == MemoryStatus.ARCHIVED and old.archive_reason == ArchiveReason.SUPERSEDED
    assert old.superseded_by == new.id
    assert old.valid_to is not None and old.valid_to.strftime("%Y-%m-%d") == "2025-06-01"
    edges = svc.store.edges(Scope.for_user("test_user"), old.id)
    assert any(e.src_id == new.id and e.kind == EdgeKind.VERSION_OF for e in edges)
    # history keeps the active version it had before it was archived
    assert [v.status for v in svc.store.history(Scope.for_user("test_user"), old.id)] == [
        MemoryStatus.ACTIVATED
    ]

    def top(query: str) -> list[str]:
        return [h.memory.value for h in svc.search(user_id="test_user", query=query, relativity=0)]

    assert top("Where does the user live now?")[0] == "The user lives in Shanghai."
    assert "The user lives in Beijing." not in top("Where does the user live?")
    assert top("Where did the user live in March 2025?")[0] == "The user lives in Beijing."
    assert top("Where did I live before?")[0] == "The user lives in Beijing."
    assert top("我以前住在哪里？")[0] == "The user lives in Beijing."
    # the one-time event stays a separate memory
    assert any("Xi'an" in v for v in top("Where did I travel?"))


def test_superseded_versions_respect_filters_and_tenants(
    moved: tuple[MemoryService, TableLLM],
) -> None:
    svc, _ = moved
    svc.add(
        user_id="other",
        conversation_id="o",
        messages=[
            MessageInput(role="user", content="I live in Beijing too.", chat_time="2025-02-01")
        ],
    )
    for user in ("other", "nobody"):
        hits = svc.search(user_id=user, query="Where did I live in March 2025?", relativity=0)
        assert all(h.memory.user_id == user for h in hits)
    only_trips = svc.search(
        user_id="test_user",
        query="Where did I live in March 2025?",
        relativity=0,
        filter={"and": [{"memory_type": "LongTermMemory"}]},
    )
    assert [h.memory.value for h in only_trips] == [
        "The user traveled to Xi'an for the National Day holiday."
    ]


def test_an_older_message_arriving_late_is_stored_as_the_past_version(
    make_service: Callable[[TableLLM], MemoryService],
) -> None:
    svc = make_service(TableLLM(MOVE, update_first))
    add(svc, "late", "I moved to Shanghai.", "2025-06-01 10:00:00", "s2")
    add(svc, "late", "I live in Beijing.", "2025-01-10 10:00:00", "s1")
    assert [m.value for m in live(svc, "late")] == ["The user lives in Shanghai."]
    old = next(m for m in every_memory(svc, "late") if m.value == "The user lives in Beijing.")
    assert old.archive_reason == ArchiveReason.SUPERSEDED
    assert old.valid_to is not None and old.valid_to.strftime("%Y-%m-%d") == "2025-06-01"


# ------------------------------------------------------- a changed preference
def test_a_changed_preference_replaces_the_old_one(
    make_service: Callable[[TableLLM], MemoryService],
) -> None:
    table = {
        "I like coffee": preference("The user likes coffee."),
        "quit coffee": preference("The user quit coffee and drinks tea now."),
    }
    svc = make_service(TableLLM(table, update_first))
    add(svc, "drinker", "I like coffee in the morning.", "2025-09-12 08:00:00", "a")
    add(svc, "drinker", "I've quit coffee, tea now.", "2025-09-25 12:00:00", "b")
    prefs = [m for m in live(svc, "drinker") if m.mode == MemoryMode.FINE]
    assert [m.value for m in prefs] == ["The user quit coffee and drinks tea now."]
    old = next(m for m in every_memory(svc, "drinker") if m.value == "The user likes coffee.")
    assert old.archive_reason == ArchiveReason.SUPERSEDED and old.superseded_by == prefs[0].id
    hits = svc.search(user_id="drinker", query="What does the user like to drink?", relativity=0)
    assert "The user likes coffee." not in [h.memory.value for h in hits]


# ------------------------------------------------- duplicates across sessions
def test_a_fact_repeated_across_sessions_is_one_memory_with_both_sources(
    make_service: Callable[[TableLLM], MemoryService],
) -> None:
    table = {
        "nurse at Acme": fact("The user works at Acme as a nurse.", "Job"),
        "Acme hospital": fact("The user is a nurse at Acme.", "Job"),
    }
    llm = TableLLM(table, lambda new, near: [{"action": "duplicate", "target_index": 0}])
    svc = make_service(llm)
    add(svc, "nurse", "I work as a nurse at Acme.", "2025-03-01 09:00:00", "first")
    add(
        svc,
        "nurse",
        "Long shift at the Acme hospital today, nurses never rest.",
        "2025-04-02 21:00:00",
        "second",
    )
    fine = [m for m in live(svc, "nurse") if m.mode == MemoryMode.FINE]
    assert len(fine) == 1 and fine[0].value == "The user works at Acme as a nurse."
    assert [s.message_id for s in fine[0].sources] == ["first-1", "second-1"]
    assert fine[0].version == 2  # the source change is a new version, the old one kept
    dup = next(m for m in every_memory(svc, "nurse") if m.value == "The user is a nurse at Acme.")
    assert dup.archive_reason == ArchiveReason.DUPLICATE and dup.superseded_by == fine[0].id
    assert any(
        e.kind == EdgeKind.MERGED_INTO and e.dst_id == fine[0].id
        for e in svc.store.edges(Scope.for_user("nurse"), dup.id)
    )


def test_word_for_word_repeats_need_no_llm_call(
    make_service: Callable[[TableLLM], MemoryService],
) -> None:
    table = {"I have a cat": fact("The user has a cat named Tom.", "Pet")}
    llm = TableLLM(table, lambda new, near: pytest.fail("no evolution call expected"))
    svc = make_service(llm)
    add(svc, "cat", "I have a cat named Tom.", "2025-01-01", "a")
    add(svc, "cat", "I have a cat, Tom, did I say?", "2025-02-01", "b")
    fine = [m for m in live(svc, "cat") if m.mode == MemoryMode.FINE]
    assert len(fine) == 1 and len(fine[0].sources) == 2 and llm.evolution_calls == []


def test_merge_rewrites_the_memory_and_keeps_its_history(
    make_service: Callable[[TableLLM], MemoryService],
) -> None:
    table = {
        "quadratic": fact("The student confuses quadratic and linear functions."),
        "exponential": fact("The student also mixes up exponential functions."),
    }
    merged = (
        "The student is confused about function concepts, especially linear, "
        "quadratic and exponential functions."
    )
    llm = TableLLM(
        table, lambda new, near: [{"action": "merge", "target_index": 0, "merged_value": merged}]
    )
    svc = make_service(llm)
    first = add(svc, "stu", "I keep mixing up quadratic and linear.", "2025-09-11", "a")
    add(svc, "stu", "And exponential ones too.", "2025-09-20", "b")
    fine = [m for m in live(svc, "stu") if m.mode == MemoryMode.FINE]
    assert [m.value for m in fine] == [merged] and fine[0].id == first.memory_ids[0]
    history = svc.store.history(Scope.for_user("stu"), fine[0].id)
    assert history[0].value == "The student confuses quadratic and linear functions."
    # the merged text is what search matches now (the vector was recomputed)
    vec = svc.store.vectors(Scope.for_user("stu"), [fine[0].id])[0]
    assert float(vec @ svc.embedder.embed([merged])[0]) > 0.99
    hits = svc.search(user_id="stu", query="exponential functions", relativity=0)
    assert hits[0].memory.value == merged


# ------------------------------------------------------------ failure modes
def test_bad_decisions_degrade_to_add_and_nothing_is_lost(
    make_service: Callable[[TableLLM], MemoryService],
) -> None:
    llm = TableLLM(MOVE, lambda new, near: [{"action": "update", "target": "E99"}])
    svc = make_service(llm)
    add(svc, "u1", "I live in Beijing.", "2025-01-10", "s1")
    add(svc, "u1", "I moved to Shanghai.", "2025-06-01", "s2")
    assert {m.value for m in live(svc, "u1") if m.mode == MemoryMode.FINE} == {
        "The user lives in Beijing.",
        "The user lives in Shanghai.",
    }


def test_unusable_evolution_replies_add_everything_and_say_so(
    make_service: Callable[[TableLLM], MemoryService],
) -> None:
    llm = TableLLM(MOVE)
    svc = make_service(llm)
    add(svc, "u2", "I live in Beijing.", "2025-01-10", "s1")
    llm.chat = _raw_decisions(llm, "no json here")  # type: ignore[method-assign]
    result = add(svc, "u2", "I moved to Shanghai.", "2025-06-01", "s2")
    assert result.status == "completed"
    task = svc.task(result.task_id)
    assert task.status == "completed" and task.error and "evolution skipped" in task.error
    assert len([m for m in live(svc, "u2") if m.mode == MemoryMode.FINE]) == 2


def _raw_decisions(llm: TableLLM, raw: str) -> Callable[..., str]:
    real = TableLLM.chat

    def chat(messages: Sequence[ChatMessage], **kw: Any) -> str:
        schema = kw.get("json_schema")
        if schema is not None and "decisions" in schema["properties"]:
            llm.evolution_calls.append(messages[-1]["content"])
            return raw
        return real(llm, messages, **kw)

    return chat


def test_neighbours_never_come_from_another_tenant(
    make_service: Callable[[TableLLM], MemoryService],
) -> None:
    llm = TableLLM(MOVE, update_first)
    svc = make_service(llm)
    add(svc, "alice", "I live in Beijing.", "2025-01-10", "s1")
    add(svc, "bob", "I moved to Shanghai.", "2025-06-01", "s2")
    assert llm.evolution_calls == []  # bob has nothing similar of his own
    assert [m.value for m in live(svc, "alice") if m.mode == MemoryMode.FINE] == [
        "The user lives in Beijing."
    ]


# -------------------------------------------------------------- async adds
def test_async_fine_add_returns_at_once_and_completes_in_the_background(
    make_service: Callable[[TableLLM], MemoryService],
) -> None:
    llm = TableLLM(MOVE)
    llm.gate = threading.Event()
    svc = make_service(llm)
    result = add(svc, "quick", "I live in Beijing.", "2025-01-10", "s1", async_mode=True)
    assert result.status == "running" and svc.task(result.task_id).status == "running"
    # the fast memory is searchable while the fine pass waits on the LLM
    hits = svc.search(user_id="quick", query="Beijing", relativity=0)
    assert [h.memory.id for h in hits] == result.memory_ids
    assert hits[0].memory.mode == MemoryMode.FAST
    llm.gate.set()
    assert svc.wait_background(30)
    assert svc.task(result.task_id).status == "completed"
    assert [m.value for m in live(svc, "quick")] == ["The user lives in Beijing."]


def test_a_crashing_background_pass_fails_its_task_visibly(
    make_service: Callable[[TableLLM], MemoryService],
) -> None:
    llm = TableLLM(MOVE)
    svc = make_service(llm)

    def boom(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("disk on fire")

    llm.chat = boom  # type: ignore[method-assign]
    result = add(svc, "crash", "I live in Beijing.", "2025-01-10", "s1", async_mode=True)
    assert svc.wait_background(30)
    task = svc.task(result.task_id)
    assert task.status == "failed" and task.error and "disk on fire" in task.error
    assert [m.value for m in live(svc, "crash")] == ["I live in Beijing."]  # fast stays


# ------------------------------------------------------------ pure functions
def _item(value: str, **kw: Any) -> MemoryItem:
    return MemoryItem(user_id="u", cube_id="u", value=value, mode=MemoryMode.FINE, **kw)


def test_listing_labels_each_existing_memory_once() -> None:
    a, b = _item("A"), _item("B")
    listing, labels = build_listing(
        [_item("new 1"), _item("new 2"), _item("new 3")],
        [[Neighbour(a, 0.9)], [], [Neighbour(a, 0.8), Neighbour(b, 0.7)]],
    )
    assert labels == {"E1": a.id, "E2": b.id}
    assert "NEW 2" not in listing and listing.count("EXISTING E1") == 2


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"new": 1, "action": "update", "target": "E1"}, Decision("update", "x")),
        ({"new": "1", "action": "duplicate", "target": "[e1]"}, Decision("duplicate", "x")),
        (
            {"new": 1, "action": "merge", "target": "E1", "merged_value": ""},
            Decision("duplicate", "x"),
        ),
        (
            {"new": 1, "action": "merge", "target": "E1", "merged_value": "AB"},
            Decision("merge", "x", "AB"),
        ),
        ({"new": 1, "action": "update", "target": "E2"}, Decision.add("unknown target 'E2'")),
        ({"new": 1, "action": "update", "target": "E3"}, Decision.add("unknown target 'E3'")),
        ({"new": 1, "action": "explode", "target": "E1"}, Decision.add()),
    ],
)
def test_parse_decisions(entry: dict[str, Any], expected: Decision) -> None:
    labels = {"E1": "x", "E2": "y"}
    got = parse_decisions(json.dumps({"decisions": [entry]}), 2, labels, [{"x"}, {"y"}])
    assert got[1] == expected


def test_parse_decisions_rejects_replies_without_decisions() -> None:
    for raw in ("nothing", '{"memories": []}', '{"decisions": 3}'):
        with pytest.raises(BadOutput):
            parse_decisions(raw, 1, {}, [set()])
    assert parse_decisions('{"decisions": [{"new": 9, "action": "add"}]}', 1, {}, [set()]) == {}


def test_plan_turns_each_decision_into_writes() -> None:
    target = _item("old", sources=[])
    new = [_item("dup"), _item("newer state"), _item("fresh")]
    vecs = np.eye(3, dtype=np.float32)
    changes, applied = plan_changes(
        new,
        vecs,
        [
            Decision("duplicate", target.id),
            Decision("update", target.id),
            Decision("update", "gone"),
        ],
        {target.id: target},
        lambda texts: np.ones((len(texts), 3), np.float32),
    )
    assert [d.action for d in applied] == ["duplicate", "update", "add"]
    assert [m.status for m in changes.add] == [
        MemoryStatus.ARCHIVED,
        MemoryStatus.ACTIVATED,
        MemoryStatus.ACTIVATED,
    ]
    assert [r.memory_id for r in changes.retire] == [target.id]
    assert changes.retire[0].superseded_by == new[1].id
    assert [r.memory_id for r in changes.revise] == [target.id]
    assert {e.kind for e in changes.edges} == {EdgeKind.MERGED_INTO, EdgeKind.VERSION_OF}


def test_a_failed_window_keeps_its_fast_memories_searchable(tmp_data_dir: Path) -> None:
    """A long add read in several windows: one window fails, its messages stay findable."""
    texts = [
        "I adopted a grey cat called Miso from the shelter downtown last month.",
        "Miso sleeps on the windowsill every afternoon and hates the vacuum cleaner.",
        "My sister Jun flies in from Toronto next week to stay with us for a while.",
        "Jun works as a marine biologist studying coral reefs near the Great Barrier.",
    ]
    table = {"adopted a grey cat": fact("The user adopted a grey cat called Miso.")}

    class HalfBroken(TableLLM):
        def chat(self, messages: Sequence[ChatMessage], **kw: Any) -> str:
            if "Jun works" in messages[-1]["content"] or "Jun works" in messages[1]["content"]:
                return "I cannot help with that."
            return super().chat(messages, **kw)

    settings = load_settings(
        {
            "data_dir": tmp_data_dir,
            "embedder": {"kind": "minilm"},
            "reader": {"chat_window_max_tokens": 40},
        },
        environ={},
    )
    svc = MemoryService.open(settings, llm=HalfBroken(table))
    try:
        result = svc.add(
            user_id="pets",
            conversation_id="c",
            mode="fine",
            messages=[
                MessageInput(role="user", content=t, message_id=f"m{i}")
                for i, t in enumerate(texts)
            ],
        )
        assert result.status == "completed"
        task = svc.task(result.task_id)
        assert task.error and "failed for part of the input" in task.error
        values = {m.value for m in live(svc, "pets")}
        assert "The user adopted a grey cat called Miso." in values
        assert texts[3] in values  # the failed window's message is still a live memory
        assert texts[0] not in values  # the read window's fast memory was refined away
        hits = svc.search(user_id="pets", query="marine biologist coral reefs", relativity=0)
        assert hits[0].memory.value == texts[3]
    finally:
        svc.close()


def test_async_fine_add_through_the_redis_queue(tmp_data_dir: Path) -> None:
    """The scale-out queue: the same async add, queued in Redis Streams (real server)."""
    redis = pytest.importorskip("redis")
    url = "redis://127.0.0.1:6379/15"
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis server at {url}: {exc} (scripts/services.sh starts one)")
    for key in client.scan_iter("memos:queue*"):
        client.delete(key)
    settings = load_settings(
        {"data_dir": tmp_data_dir, "embedder": {"kind": "minilm"}, "queue": {"url": url}},
        environ={},
    )
    svc = MemoryService.open(settings, llm=TableLLM(MOVE))
    try:
        result = add(svc, "redis-user", "I live in Beijing.", "2025-01-10", "s1", async_mode=True)
        assert result.status == "running"
        assert svc.scheduler.counts("redis-user")  # the task is in Redis
        assert svc.wait_background(60, "redis-user")
        assert svc.task(result.task_id).status == "completed"
        assert [m.value for m in live(svc, "redis-user")] == ["The user lives in Beijing."]
        assert svc.scheduler.view(result.task_id).queue_status == "completed"  # type: ignore[union-attr]
    finally:
        svc.close()
        for key in client.scan_iter("memos:queue*"):
            client.delete(key)
