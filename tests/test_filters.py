"""The MemOS filter language: parse_filter's grammar and its SQL semantics.

The first half checks the parsed tree and the errors (InvalidParameter, code
40000); the second half runs filters through the real SQLite store and checks
which memories come back.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memos.domain.filters import BoolNode, Cond, Filter, Node, parse_filter, parse_time
from memos.domain.models import MemoryItem, MessageInput, Scope
from memos.errors import InvalidParameter
from memos.store.sqlite import SQLiteStore


def parsed(raw: Any) -> Filter:
    out = parse_filter(raw)
    assert out is not None
    return out


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


# ================================================================== grammar
def test_absent_and_empty_filters_mean_no_filter() -> None:
    assert parse_filter(None) is None
    assert parse_filter({}) is None


def test_equality_condition() -> None:
    assert parsed({"agent_id": "a1"}).personal == Cond("agent_id", "eq", "a1")


def test_and_or_nest() -> None:
    f = parsed({"and": [{"agent_id": "a1"},
                        {"or": [{"conversation_id": "c1"}, {"conversation_id": "c2"}]}]})
    assert f.personal == BoolNode("and", (
        Cond("agent_id", "eq", "a1"),
        BoolNode("or", (Cond("conversation_id", "eq", "c1"),
                        Cond("conversation_id", "eq", "c2"))),
    ))


def test_or_of_and_and_deep_nesting_within_the_limit() -> None:
    node: dict[str, Any] = {"agent_id": "x"}
    for i in range(7):
        node = {"and" if i % 2 else "or": [node, {"app_id": f"p{i}"}]}
    tree = parsed(node).personal
    depth = 0
    while isinstance(tree, BoolNode):
        depth += 1
        tree = tree.children[0]
    assert depth == 7 and tree == Cond("agent_id", "eq", "x")


def test_sibling_keys_are_anded() -> None:
    f = parsed({"agent_id": "a", "app_id": "b"})
    assert f.personal == BoolNode("and", (Cond("agent_id", "eq", "a"), Cond("app_id", "eq", "b")))


def test_several_operators_on_one_field_are_anded() -> None:
    f = parsed({"info.n": {"gte": 1, "lt": 5}})
    assert f.personal == BoolNode("and", (Cond("info.n", "gte", 1), Cond("info.n", "lt", 5)))


@pytest.mark.parametrize("block", ["user", "public", "knowledgebase"])
def test_per_source_blocks_are_accepted(block: str) -> None:
    f = parsed({block: {"agent_id": "a"}})
    assert isinstance(f, Filter)


def test_source_blocks_route_conditions() -> None:
    f = parsed({
        "user": {"tags": {"contains": "mine"}},
        "public": {"agent_id": "pub"},
        "knowledgebase": {"info.kb": "docs"},
    })
    assert f.personal == Cond("tags", "contains", "mine")
    assert f.public == Cond("agent_id", "eq", "pub")
    assert f.knowledgebase == Cond("info.kb", "eq", "docs")


def test_top_level_conditions_apply_to_the_user_block_too() -> None:
    f = parsed({"agent_id": "a", "user": {"app_id": "b"}})
    assert f.personal == BoolNode("and", (Cond("agent_id", "eq", "a"), Cond("app_id", "eq", "b")))


def test_empty_source_blocks_do_not_crash() -> None:
    f = parsed({"user": {}, "public": {}, "knowledgebase": {}})
    assert f.personal is None


def test_tags_contains_and_bare_tag_value() -> None:
    assert parsed({"tags": {"contains": "travel"}}).personal == Cond("tags", "contains", "travel")
    assert parsed({"tags": "travel"}).personal == Cond("tags", "contains", "travel")
    assert parsed({"tags": {"in": ["a", "b"]}}).personal == Cond("tags", "in", ["a", "b"])


def _holds(node: Node | None, t: float) -> bool:
    """Evaluate a parsed time condition (or an AND of them) at instant ``t``."""
    if isinstance(node, BoolNode):
        assert node.kind == "and"
        return all(_holds(child, t) for child in node.children)
    assert isinstance(node, Cond) and node.field == "create_time"
    ops = {"gt": t > node.value, "gte": t >= node.value, "lt": t < node.value,
           "lte": t <= node.value}
    return ops[node.op]


@pytest.mark.parametrize(
    ("op", "value", "inside", "outside"),
    [
        # date-only bounds are whole days: "lte D" keeps all of D, "gt D" starts at D+1 00:00
        ("lte", "2025-12-31", ["2025-12-31T00:00:00", "2025-12-31T23:59:59.999"],
         ["2026-01-01T00:00:00", "2026-01-01T00:00:00.001"]),
        ("gt", "2025-12-31", ["2026-01-01T00:00:00", "2026-01-02T08:00:00"],
         ["2025-12-31T23:59:59.999", "2025-12-31T00:00:00"]),
        ("gte", "2025-12-31", ["2025-12-31T00:00:00", "2026-01-05T00:00:00"],
         ["2025-12-30T23:59:59.999"]),
        ("lt", "2025-12-31", ["2025-12-30T23:59:59.999"],
         ["2025-12-31T00:00:00", "2025-12-31T12:00:00"]),
        # datetimes are instants
        ("gte", "2025-12-31T10:30:00", ["2025-12-31T10:30:00"], ["2025-12-31T10:29:59"]),
        ("lt", "2025-12-31T10:30:00Z", ["2025-12-31T10:29:59"], ["2025-12-31T10:30:00"]),
        ("gt", "2025-12-31T10:30:00+08:00", ["2025-12-31T02:30:01"], ["2025-12-31T02:30:00"]),
        ("lte", "2025-12-31T10:30:00", ["2025-12-31T10:30:00"], ["2025-12-31T10:30:01"]),
    ],
)
def test_create_time_bounds(op: str, value: str, inside: list[str], outside: list[str]) -> None:
    node = parsed({"create_time": {op: value}}).personal
    for t in inside:
        assert _holds(node, ts(t)), f"{op} {value} should keep {t}"
    for t in outside:
        assert not _holds(node, ts(t)), f"{op} {value} should drop {t}"


def test_one_day_range_keeps_exactly_that_day() -> None:
    node = parsed({"create_time": {"gte": "2025-12-31", "lte": "2025-12-31"}}).personal
    assert _holds(node, ts("2025-12-31T00:00:00"))
    assert _holds(node, ts("2025-12-31T23:59:59"))
    assert not _holds(node, ts("2026-01-01T00:00:00"))
    assert not _holds(node, ts("2025-12-30T23:59:59"))


def test_time_bounds_accept_epoch_seconds_and_milliseconds() -> None:
    secs = ts("2025-06-01T00:00:00")
    assert parse_time(secs, bound="gte") == ("gte", secs)
    assert parse_time(int(secs * 1000), bound="gte") == ("gte", secs)


def test_info_bare_keys_and_prefixed_keys_are_the_same_field() -> None:
    bare = parsed({"scene": "chat"}).personal
    prefixed = parsed({"info.scene": "chat"}).personal
    assert bare == prefixed == Cond("info.scene", "eq", "chat")
    assert parsed({"info.n": {"gte": 3}}).personal == Cond("info.n", "gte", 3)


def test_in_and_ne_operators() -> None:
    assert parsed({"agent_id": {"in": ["a", "b"]}}).personal == Cond("agent_id", "in", ["a", "b"])
    assert parsed({"app_id": {"ne": "x"}}).personal == Cond("app_id", "ne", "x")


@pytest.mark.parametrize(
    "raw",
    [
        {"agent_id": {"like": "a%"}},                     # unknown operator
        {"agent_id": {"$eq": "a"}},                       # mongo-style operator
        {"agent_id": {}},                                 # empty condition
        {"and": {"agent_id": "a"}},                       # and needs an array
        {"or": []},                                       # empty array
        {"and": [1]},                                     # non-object child
        {"and": ["agent_id"]},
        {"or": [{}]},                                     # empty child
        {"and": [{"user": {"agent_id": "a"}}]},           # source block nested
        {"agent_id": ["a", "b"]},                         # list as a scalar
        {"agent_id": {"eq": {"x": 1}}},                   # object as a value
        {"agent_id": {"in": []}},
        {"agent_id": {"in": "a"}},
        {"agent_id": {"in": [["a"]]}},
        {"key": {"contains": 5}},                         # contains on text needs text
        {"create_time": {"gt": "yesterday"}},
        {"create_time": {"gt": "2025-13-45"}},
        {"create_time": {"gt": True}},
        {"create_time": {"gt": None}},
        {"create_time": {"eq": "2025-01-01"}},           # only range operators on times
        {"info.": "x"},                                   # empty info key
        {"x" * 101: "y"},                                 # absurd key
        {"user": 5},
        {"public": ["a"]},
        {"knowledgebase": "kb"},
        ["agent_id", "a"],                                # not an object at all
        "agent_id = 'a'",
        42,
    ],
)
def test_invalid_filters_are_invalid_parameter(raw: Any) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_filter(raw)
    assert info.value.code == 40000


def test_too_deep_and_too_many_conditions_are_rejected() -> None:
    node: dict[str, Any] = {"agent_id": "x"}
    for _ in range(12):
        node = {"and": [node]}
    with pytest.raises(InvalidParameter):
        parse_filter(node)
    with pytest.raises(InvalidParameter):
        parse_filter({"or": [{"agent_id": str(i)} for i in range(200)]})


# ============================================================ SQL semantics
DAY = datetime(2025, 12, 31, tzinfo=UTC)
SCOPE = Scope(user_id="fu", cube_id="fu")
OTHER = Scope(user_id="fo", cube_id="fo")


def _item(scope: Scope, name: str, **kw: Any) -> MemoryItem:
    return MemoryItem(user_id=scope.user_id, cube_id=scope.cube_id, key=name, value=name, **kw)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The same rows in each adapter: every case below runs against both compilers."""
    s: Any
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path_factory.mktemp("filters") / "f.db", embed_model="t")
    else:
        import pg_support
        from memos.store.postgres import PostgresStore

        url = pg_support.fresh_database(request.getfixturevalue("postgres_url"), "filters")
        s = PostgresStore(url, embed_model="t", pool_max=2)
    items = [
        _item(SCOPE, "early", create_time=DAY - timedelta(days=1, hours=1),
              tags=["work", "mode:fast"], info={"scene": "work", "n": 1, "flag": True},
              agent_id="a1", conversation_id="c1"),
        _item(SCOPE, "day-start", create_time=DAY, tags=["travel"],
              info={"scene": "chat", "n": 2, "flag": False}, agent_id="a1",
              conversation_id="c2"),
        _item(SCOPE, "day-end", create_time=DAY + timedelta(hours=23, minutes=59, seconds=59),
              tags=["travel", "work"], info={"scene": "chat", "n": 3}, agent_id="a2",
              app_id="p1", conversation_id="c1"),
        _item(SCOPE, "next-midnight", create_time=DAY + timedelta(days=1), tags=[],
              info={"n": 4, "city": "杭州", "odd key": "yes", "a.b": "dot", 'q"k': "quote"},
              agent_id="a2", app_id="p2"),
        _item(SCOPE, "later", create_time=DAY + timedelta(days=3), tags=["Travel"],
              info={"scene": "Chat", "n": 10}, agent_id=None),
    ]
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((len(items), 8)).astype(np.float32)
    s.claim_cube(SCOPE.user_id, SCOPE.cube_id)
    s.ingest(SCOPE, [], items, vecs)
    # another cube with matching data that must never leak into SCOPE's results
    s.claim_cube(OTHER.user_id, OTHER.cube_id)
    s.ingest(OTHER, [], [_item(OTHER, "foreign", tags=["travel", "work"],
                               info={"scene": "chat", "n": 3}, create_time=DAY)],
             rng.standard_normal((1, 8)).astype(np.float32))
    yield s
    s.close()


def names(store: SQLiteStore, raw: Any, scope: Scope = SCOPE) -> set[str]:
    flt = parse_filter(raw)
    node: Node | None = flt.personal if flt else None
    page = store.list_memories(scope, node, offset=0, limit=50)
    assert page.total == len(page.items)
    got = {m.key for m in page.items}
    # vector search must apply the same filter
    hits = store.vector_search(scope, np.ones(8, np.float32) / np.sqrt(8), 50, node)
    assert {h.memory_id for h in hits} == {m.id for m in page.items}, raw
    return got


ALL = {"early", "day-start", "day-end", "next-midnight", "later"}


def _case_id(value: Any) -> str | None:
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=True)[:70]
    return "all" if value is None else None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, ALL),
        ({"agent_id": "a1"}, {"early", "day-start"}),
        ({"agent_id": {"ne": "a1"}}, {"day-end", "next-midnight", "later"}),  # NULL counts as ne
        ({"agent_id": {"in": ["a2", "zz"]}}, {"day-end", "next-midnight"}),
        ({"app_id": "p1"}, {"day-end"}),
        ({"conversation_id": "c1"}, {"early", "day-end"}),
        ({"key": {"contains": "day"}}, {"day-start", "day-end"}),
        ({"tags": {"contains": "travel"}}, {"day-start", "day-end"}),  # exact, case-sensitive
        ({"tags": "work"}, {"early", "day-end"}),
        ({"tags": {"in": ["Travel", "work"]}}, {"early", "day-end", "later"}),
        ({"tags": {"ne": "travel"}}, {"early", "next-midnight", "later"}),
        ({"scene": "chat"}, {"day-start", "day-end"}),
        ({"info.scene": "chat"}, {"day-start", "day-end"}),
        ({"scene": {"ne": "chat"}}, {"early", "next-midnight", "later"}),  # missing key counts
        ({"n": {"gt": 2}}, {"day-end", "next-midnight", "later"}),
        ({"info.n": {"gte": 2, "lte": 4}}, {"day-start", "day-end", "next-midnight"}),
        ({"n": {"in": [1, 10]}}, {"early", "later"}),
        ({"flag": True}, {"early"}),
        ({"flag": False}, {"day-start"}),
        ({"city": "杭州"}, {"next-midnight"}),
        ({"odd key": "yes"}, {"next-midnight"}),
        ({"a.b": "dot"}, {"next-midnight"}),
        ({"info.a.b": "dot"}, {"next-midnight"}),
        ({"nonexistent": "x"}, set()),
        ({"and": [{"tags": {"contains": "travel"}}, {"agent_id": "a2"}]}, {"day-end"}),
        ({"or": [{"agent_id": "a1"}, {"app_id": "p2"}]}, {"early", "day-start", "next-midnight"}),
        ({"or": [{"and": [{"agent_id": "a1"}, {"conversation_id": "c2"}]},
                 {"and": [{"n": {"gte": 4}}, {"app_id": {"ne": "p2"}}]}]},
         {"day-start", "later"}),
        ({"user": {"tags": {"contains": "work"}}, "public": {"agent_id": "zz"},
          "knowledgebase": {"kb": "x"}}, {"early", "day-end"}),
        # date-only bounds cover the whole day, to the second
        ({"create_time": {"lte": "2025-12-31"}}, {"early", "day-start", "day-end"}),
        ({"create_time": {"lt": "2025-12-31"}}, {"early"}),
        ({"create_time": {"gte": "2025-12-31"}}, {"day-start", "day-end", "next-midnight",
                                                   "later"}),
        ({"create_time": {"gt": "2025-12-31"}}, {"next-midnight", "later"}),
        ({"create_time": {"gte": "2025-12-31", "lte": "2025-12-31"}}, {"day-start", "day-end"}),
        ({"create_time": {"gt": "2025-12-30", "lt": "2026-01-01"}}, {"day-start", "day-end"}),
        ({"create_time": {"gte": "2025-12-31T12:00:00Z"}}, {"day-end", "next-midnight",
                                                            "later"}),
        ({"create_time": {"gte": int(DAY.timestamp() * 1000)}}, {"day-start", "day-end",
                                                                 "next-midnight", "later"}),
    ],
    ids=_case_id,
)
def test_filter_semantics(store: SQLiteStore, raw: Any, expected: set[str]) -> None:
    assert names(store, raw) == expected


def test_filters_never_reach_outside_the_scope(store: SQLiteStore) -> None:
    assert names(store, {"scene": "chat"}, OTHER) == {"foreign"}
    assert names(store, {"or": [{"user_id": "fu"}, {"tags": {"contains": "travel"}}]},
                 OTHER) == {"foreign"}
    assert names(store, {"user_id": "fu"}, OTHER) == set()


def test_hostile_values_are_bound_not_interpolated(store: SQLiteStore) -> None:
    for value in ["' OR 1=1 --", '" OR 1=1 --', "%", "_", "\\", "a'); DROP TABLE memories; --"]:
        assert names(store, {"agent_id": value}) == set()
        assert names(store, {"key": {"contains": value}}) == set()
        assert names(store, {"tags": {"contains": value}}) == set()
        if '"' in value or "\\" in value:
            with pytest.raises(InvalidParameter):
                parse_filter({value: value})
        else:
            assert names(store, {value: value}) == set()
    assert names(store, None) == ALL


def test_filter_through_the_store_text_search(store: SQLiteStore) -> None:
    flt = parsed({"agent_id": "a1"}).personal
    hits = store.text_search(SCOPE, "day start early", 10, flt)
    got = {m.key for m in store.get_memories(SCOPE, [h.memory_id for h in hits])}
    assert got == {"day-start", "early"}


def test_parsed_filter_drives_service_search(tmp_path: Path) -> None:
    from memos.service import MemoryService
    from memos.settings import load_settings

    svc = MemoryService.open(load_settings({"data_dir": tmp_path, "embedder": {"kind": "hash"}},
                                           environ={}))
    try:
        svc.add(user_id="u", conversation_id="c", tags=["travel"],
                messages=[MessageInput(role="user", content="trip to Kyoto in spring")])
        svc.add(user_id="u", conversation_id="c", tags=["work"],
                messages=[MessageInput(role="user", content="trip to the Kyoto office")])
        hits = svc.search(user_id="u", query="Kyoto trip", relativity=0,
                          filter={"tags": {"contains": "travel"}})
        assert [h.memory.value for h in hits] == ["trip to Kyoto in spring"]
        with pytest.raises(InvalidParameter):
            svc.search(user_id="u", query="Kyoto", filter={"tags": {"regex": ".*"}})
    finally:
        svc.close()


@pytest.mark.parametrize("key", ['q"k', "back\\slash", "info." + "k" * 101])
def test_info_keys_with_quotes_or_too_long_are_rejected(key: str) -> None:
    with pytest.raises(InvalidParameter):
        parse_filter({key: "x"})
