"""What only the PostgreSQL adapter has: migrations up and down, concurrent
start-up, the derived BM25 statistics, and the choice between exact and HNSW
vector search. Everything the port promises is in the conformance suite."""

from __future__ import annotations

import threading
import uuid

import numpy as np
import psycopg
import pytest

from memos.domain.filters import parse_filter
from memos.domain.models import MemoryItem, MemoryStatus, Scope
from memos.store.postgres import PostgresStore
from memos.store.postgres import store as pg_store
from memos.store.postgres.schema import HEAD, MIGRATIONS, applied, migrate
from pg_support import fresh_database

TABLES = {"meta", "cubes", "cube_stats", "memories", "memory_versions", "edges", "messages",
          "tasks"}


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {str(r[0]) for r in found} - {"_migrations"}


@pytest.fixture
def empty_db(postgres_url: str) -> str:
    return fresh_database(postgres_url, "schema")


def test_migrations_go_up_down_and_up_again(empty_db: str) -> None:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        assert migrate(conn) == [m.name for m in MIGRATIONS]
        assert applied(conn)[-1] == HEAD
        assert tables(empty_db) == TABLES
        assert migrate(conn) == []  # already at head
        # one step at a time, as an upgrade of a deployed database goes
        assert migrate(conn, MIGRATIONS[0].name) == [
            "-" + m.name for m in reversed(MIGRATIONS[1:])]
        assert migrate(conn) == [m.name for m in MIGRATIONS[1:]]
        assert migrate(conn, None) == ["-" + m.name for m in reversed(MIGRATIONS)]
        assert tables(empty_db) == set() and applied(conn) == []
        assert migrate(conn, HEAD) == [m.name for m in MIGRATIONS]
        with pytest.raises(ValueError, match="unknown migration"):
            migrate(conn, "9999_nope")
    store = PostgresStore(empty_db, embed_model="t")
    try:
        scope = Scope(user_id="u", cube_id="u")
        store.claim_cube("u", "u")
        store.ingest(scope, [], [MemoryItem(user_id="u", cube_id="u", value="kept")],
                     np.ones((1, 4), np.float32) / 2)
    finally:
        store.close()
    reopened = PostgresStore(empty_db, embed_model="t")  # no migration re-runs, data kept
    try:
        assert reopened.count_memories(Scope(user_id="u", cube_id="u")) == 1
    finally:
        reopened.close()


def test_owned_cube_keys_migration_moves_a_squatted_cube_and_back(empty_db: str) -> None:
    """0004: bob's cube named after carol leaves carol's id for her default cube (issue 14)."""
    names = [m.name for m in MIGRATIONS]
    step = names.index("0004_owned_cube_keys")
    with psycopg.connect(empty_db, autocommit=True) as conn:
        migrate(conn, names[step - 1])
        conn.execute("INSERT INTO cubes (cube_id, owner_id, create_time) VALUES "
                     "('carol', 'bob', 0), ('alice', 'alice', 0)")
        conn.execute("INSERT INTO tasks (task_id, cube_id, status, error, create_time, "
                     "update_time) VALUES ('t1', 'carol', 'completed', NULL, 0, 0)")
        assert migrate(conn) == names[step:]
        key = "bob\x1fcarol"
        cubes = dict(conn.execute("SELECT cube_id, owner_id FROM cubes").fetchall())
        assert cubes == {key: "bob", "alice": "alice"}  # default cubes stay as they are
        assert conn.execute("SELECT cube_id FROM tasks WHERE task_id = 't1'").fetchone() == (key,)
        migrate(conn, names[step - 1])  # and back down
        cubes = dict(conn.execute("SELECT cube_id, owner_id FROM cubes").fetchall())
        assert cubes == {"carol": "bob", "alice": "alice"}
        migrate(conn)
    store = PostgresStore(empty_db, embed_model="t")
    try:
        assert store.cube_owner("carol") is None and store.cube_owner(key) == "bob"
        store.claim_cube("carol", "carol")  # carol's default cube is hers again
        assert store.get_task("t1") == (key, "completed", None)
    finally:
        store.close()


def test_servers_starting_together_migrate_once(empty_db: str) -> None:
    errors: list[BaseException] = []
    stores: list[PostgresStore] = []

    def start() -> None:
        try:
            stores.append(PostgresStore(empty_db, embed_model="t", pool_max=1))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert errors == [] and len(stores) == 4
    with psycopg.connect(empty_db) as conn:
        assert applied(conn) == [m.name for m in MIGRATIONS]


def _recount(url: str, cube_id: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), coalesce(sum(lex_len), 0) FROM memories "
            "WHERE cube_id = %s AND status = 'activated'",
            (cube_id,),
        ).fetchone()
        assert row is not None
        stats = conn.execute(
            "SELECT live_count, lex_total FROM cube_stats WHERE cube_id = %s", (cube_id,)
        ).fetchone()
    assert stats is not None
    assert (int(stats[0]), int(stats[1])) == (int(row[0]), int(row[1]))
    return int(row[0]), int(row[1])


def test_bm25_statistics_follow_every_kind_of_write(postgres_url: str) -> None:
    store = PostgresStore(postgres_url, embed_model="t", pool_max=2)
    user = "stats-" + uuid.uuid4().hex[:8]
    scope = Scope(user_id=user, cube_id=user)
    try:
        store.claim_cube(user, user)
        items = [MemoryItem(user_id=user, cube_id=user, value=f"memory number {i} about cats")
                 for i in range(6)]
        store.ingest(scope, [], items, np.eye(6, 8, dtype=np.float32))
        assert _recount(postgres_url, user)[0] == 6
        store.update_memory(scope, items[0].id, {"value": "a much longer text about dogs now"})
        store.set_status(scope, [items[1].id, items[2].id], MemoryStatus.ARCHIVED)
        store.set_status(scope, [items[1].id], MemoryStatus.ACTIVATED)
        store.update_memory(scope, items[3].id, {"status": MemoryStatus.DELETED})
        assert _recount(postgres_url, user)[0] == 4
        store.delete_scope(scope)
        assert _recount(postgres_url, user) == (0, 0)
    finally:
        store.close()


def test_large_cubes_use_the_hnsw_index_and_still_find_the_nearest(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_store, "EXACT_LIMIT", 50)
    store = PostgresStore(postgres_url, embed_model="t", pool_max=2)
    user = "hnsw-" + uuid.uuid4().hex[:8]
    scope = Scope(user_id=user, cube_id=user)
    rng = np.random.default_rng(5)
    vecs = rng.standard_normal((400, 24)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    items = [MemoryItem(user_id=user, cube_id=user, value=f"v{i}", info={"even": i % 2 == 0})
             for i in range(400)]
    try:
        store.claim_cube(user, user)
        store.ingest(scope, [], items, vecs)
        with psycopg.connect(postgres_url) as conn:
            plan = "\n".join(
                str(r[0]) for r in conn.execute(
                    "EXPLAIN SELECT id FROM memories m WHERE m.cube_id = %s "
                    "AND m.status = 'activated' AND m.dims = 24 "
                    "ORDER BY m.vec::vector(24) <=> %s::vector(24) LIMIT 10",
                    (user, str(vecs[0].tolist())),
                ).fetchall()
            )
        assert "memories_vec_24" in plan  # the partial HNSW index serves the query
        recall = []
        for i in range(0, 400, 40):
            exact = list(np.argsort(-(vecs @ vecs[i]))[:10])
            got = [h.memory_id for h in store.vector_search(scope, vecs[i], 10, None)]
            recall.append(len({items[j].id for j in exact} & set(got)) / 10)
            assert got[0] == items[i].id
        assert float(np.mean(recall)) >= 0.9
        # a filter is applied inside the index scan (iterative scan), not after a
        # fixed candidate list, so selective filters still fill k results
        even = parse_filter({"even": True})
        assert even is not None
        for i in range(1, 400, 80):
            hits = store.vector_search(scope, vecs[i], 10, even.personal)
            assert len(hits) == 10
            assert {h.memory_id for h in hits} <= {items[j].id for j in range(0, 400, 2)}
            nearest_even = max(range(0, 400, 2), key=lambda j: float(vecs[j] @ vecs[i]))
            assert hits[0].memory_id == items[nearest_even].id
    finally:
        store.close()


def test_keyword_plan_bounds_the_rows_it_scores() -> None:
    from memos.store.postgres import lexical

    # rare terms first, as many as the budget holds; every term still scores
    p = lexical.plan(["often", "rare", "never", "sometimes"], [4_500, 3, 0, 900],
                     live=100_000, total_len=1_000_000)
    assert p is not None
    assert p.match == "'rare' | 'sometimes'" and p.terms == ["often", "rare", "sometimes"]
    assert p.candidates == lexical.BUDGET
    # when even the rarest term is very common: rows with it and one of the next three
    cap = lexical.DF_CAP
    p = lexical.plan(["a", "b", "c", "d", "e"], [cap * 9, cap, cap * 2, cap * 3, cap * 4],
                     live=1_000_000, total_len=10**7)
    assert p is not None and p.match == "'b' & ('c' | 'd' | 'e')"
    assert lexical.plan(["x"], [0], live=10, total_len=100) is None
    # a lexeme with quotes or backslashes stays one bound literal
    assert lexical.tsquery(["it's", "a\\b"]) == "'it''s' | 'a\\\\b'"


def test_db_command_reports_and_moves_the_schema(empty_db: str) -> None:
    from click.testing import CliRunner

    from memos.cli.main import cli

    runner = CliRunner()
    up = runner.invoke(cli, ["db", "migrate", "--store-url", empty_db])
    assert up.exit_code == 0 and MIGRATIONS[0].name in up.output
    shown = runner.invoke(cli, ["db", "status", "--store-url", empty_db])
    assert f"applied: {', '.join(m.name for m in MIGRATIONS)}" in shown.output
    down = runner.invoke(cli, ["db", "migrate", "--store-url", empty_db, "--to", "base"])
    assert down.exit_code == 0 and tables(empty_db) == set()
    bad = runner.invoke(cli, ["db", "migrate", "--store-url", empty_db, "--to", "nope"])
    assert bad.exit_code != 0 and "unknown migration" in bad.output
