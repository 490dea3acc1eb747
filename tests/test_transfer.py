"""``memos export`` / ``memos import``: SQLite -> PostgreSQL -> SQLite keeps everything.

Real components only: the SQLite store in tmp dirs, a real PostgreSQL + pgvector
server (``postgres_url``), the hash embedder, the service for the data and for
search, and the CLI through click's runner. PostgreSQL is shared by the
session, so every test works in fresh user and cube ids.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from memos.cli.main import cli
from memos.domain.models import (
    ArchiveReason,
    Edge,
    EdgeKind,
    MemoryItem,
    MemoryStatus,
    MemoryType,
    Message,
    MessageInput,
    Role,
    Scope,
    cube_key,
)
from memos.embedders import build_embedder
from memos.errors import InvalidParameter, PermissionDenied
from memos.service import MemoryService
from memos.settings import EmbedderSettings, Settings, load_settings
from memos.store.base import ChangeSet, MemoryStore, Retirement
from memos.store.sqlite import SQLiteStore
from memos.transfer import jsonl

EMBEDDER = build_embedder(EmbedderSettings(kind="hash"))
ENV = {"MEMOS_EMBEDDER__KIND": "hash", "MEMOS_STORE_URL": ""}  # hermetic: flags choose
QUERIES = ["Where do I live now?", "spicy food", "green tea", "杭州", "project deadline"]


# --------------------------------------------------------------------- helpers
def make_settings(data_dir: Path) -> Settings:
    return load_settings({"data_dir": data_dir, "embedder": {"kind": "hash"}}, environ={})


def run(*args: str, ok: bool = True, input: bytes | None = None,
        env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), env={**ENV, **(env or {})}, input=input)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def read_records(path: Path) -> list[dict[str, Any]]:
    with path.open("rb") as fh:
        return list(jsonl.Reader(fh, str(path)))


@dataclass
class Source:
    data_dir: Path
    alice: str
    bob: str
    notes: str  # a second cube owned by alice (the /product dialect's cubes)
    scope: Scope


def build_source(data_dir: Path) -> Source:
    """A cube with every kind of state: active, superseded, deleted, revised, used, linked."""
    tag = uuid.uuid4().hex[:8]
    alice, bob = f"alice-{tag}", f"bob-{tag}"
    notes = cube_key(alice, "notes")  # the storage key of alice's cube "notes"
    svc = MemoryService.open(make_settings(data_dir))
    try:
        svc.add(user_id=alice, conversation_id="c1", agent_id="agent-1", tags=["life"],
                info={"scene": "move", "score": 0.25}, messages=[
                    MessageInput(role="user", content="I live in Beijing near the park.",
                                 chat_time="2025-01-05 09:00:00", message_id="m1"),
                    MessageInput(role="assistant", content="Noted: Beijing, near the park."),
                    MessageInput(role="user", content="I love spicy food and green tea 🍵"),
                    MessageInput(role="user", content="我去年搬到了杭州，喜欢西湖。"),
                ])
        svc.add(user_id=alice, conversation_id="c2", messages=[
            MessageInput(role="user", content="The project deadline is next Friday."),
            MessageInput(role="user", content="Remind me to buy oolong tea."),
        ])
        svc.add(user_id=alice, cube_id="notes", conversation_id="n1", messages=[
            MessageInput(role="user", content="Notes cube: green tea brewing at 80 degrees."),
        ])
        svc.add(user_id=bob, conversation_id="b1", messages=[
            MessageInput(role="user", content="Bob's secret: I also love spicy food."),
        ])
        store = svc.store
        scope = Scope.for_user(alice)
        page = store.list_memories(scope, None, offset=0, limit=100).items
        by_text = {m.value: m for m in page}
        beijing = by_text["I live in Beijing near the park."]
        oolong = by_text["Remind me to buy oolong tea."]
        tea = by_text["I love spicy food and green tea 🍵"]
        # revised twice (two earlier versions kept), with the vector of the new text
        for text in ("I love spicy food and jasmine tea", "I love spicy food and green tea"):
            store.update_memory(scope, tea.id, {"value": text, "tags": ["food", "drink"]},
                                vector=EMBEDDER.embed([text]))
        # superseded by a new state, linked, and a task recorded with it
        moved = MemoryItem(user_id=alice, cube_id=alice, agent_id="agent-1",
                           memory_type=MemoryType.USER, key="home", value="I live in Hangzhou now.",
                           event_time=datetime(2025, 6, 1, tzinfo=UTC), confidence=0.8,
                           info={"_memos_detail": {"reasoning": "moved"}})
        store.apply(scope, ChangeSet(
            add=[moved], vectors=EMBEDDER.embed([moved.value]),
            retire=[Retirement(beijing.id, ArchiveReason.SUPERSEDED, moved.id,
                               datetime(2025, 6, 1, tzinfo=UTC))],
            edges=[Edge(src_id=moved.id, dst_id=beijing.id, kind=EdgeKind.VERSION_OF)],
            task=(f"task-{tag}", "completed", None),
        ))
        store.add_edges(scope, [Edge(src_id=tea.id, dst_id=moved.id, kind=EdgeKind.RELATED_TO)])
        store.set_status(scope, [oolong.id], MemoryStatus.DELETED)
        store.record_usage(scope, [(tea.id, 3, 1_750_000_000.125), (moved.id, 1, time.time())])
        tool = Message(user_id=alice, cube_id=alice, conversation_id="c3", role=Role.TOOL,
                       content="{\"temp\": 21}", tool_call_id="call-1",
                       parts=[{"type": "text", "text": "weather"}])
        call = Message(user_id=alice, cube_id=alice, conversation_id="c3", role=Role.ASSISTANT,
                       content="", tool_calls=[{"id": "call-1", "type": "function",
                                                "function": {"name": "weather"}}])
        store.ingest(scope, [call, tool], [], np.zeros((0, EMBEDDER.dim), np.float32))
        store.put_task(scope, f"failed-{tag}", "failed", "the LLM was unreachable")
    finally:
        svc.close()
    return Source(data_dir, alice, bob, notes, scope)


def snapshot(store: MemoryStore, cube_id: str) -> dict[str, Any]:
    """Everything the port shows of a cube, through the port's own reads."""
    scope = Scope(user_id=store.cube_owner(cube_id) or "", cube_id=cube_id)
    ids = [r["id"] for r in store.export_cube(cube_id, vectors=False) if r["record"] == "memory"]
    items = store.get_memories(scope, ids, include_inactive=True)
    live = [m.id for m in items if m.status == MemoryStatus.ACTIVATED]
    edges = {tuple(e.model_dump().values()) for m in ids for e in store.edges(scope, m)}
    return {
        "memories": [m.model_dump() for m in items],
        "versions": {m: [v.model_dump() for v in store.history(scope, m)] for m in ids},
        "edges": sorted(edges, key=repr),
        "messages": [m.model_dump() for m in store.list_messages(scope, None, limit=1000)],
        "vectors": store.vectors(scope, live).tolist(),
        "page": [m.id for m in store.list_memories(scope, None, offset=0, limit=100).items],
        "count": store.count_memories(scope),
    }


def search(store: MemoryStore, data_dir: Path, user: str) -> list[list[tuple[str, float]]]:
    """Top-10 of the service's hybrid search for each query (the store stays open)."""
    svc = MemoryService(make_settings(data_dir), store, EMBEDDER)
    try:
        out = []
        for query in QUERIES:
            hits = svc.search(user_id=user, query=query, limit=10, relativity=0)
            out.append([(h.memory.id, round(h.relativity, 4)) for h in hits])
        hits = svc.search(user_id=user, query="tea", cube_ids=["notes"], relativity=0)
        out.append([(h.memory.id, round(h.relativity, 4)) for h in hits])
        return out
    finally:
        svc.scheduler.close()
        svc.background.close()


@contextmanager
def opened(path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(path, embed_model=EMBEDDER.name)
    try:
        yield store
    finally:
        store.close()


def assert_pg_derived_state(url: str, cube_ids: list[str]) -> None:
    """BM25's per-cube statistics match the rows; the vectors' HNSW index exists."""
    import psycopg

    with psycopg.connect(url) as conn:
        for cube_id in cube_ids:
            stats = conn.execute(
                "SELECT live_count, lex_total FROM cube_stats WHERE cube_id = %s", (cube_id,)
            ).fetchone()
            rows = conn.execute(
                "SELECT count(*), sum(lex_len) FROM memories "
                "WHERE cube_id = %s AND status = 'activated'", (cube_id,)
            ).fetchone()
            assert stats == rows
        index = conn.execute("SELECT to_regclass(%s)", (f"memories_vec_{EMBEDDER.dim}",))
        assert index.fetchone() == (f"memories_vec_{EMBEDDER.dim}",)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    return build_source(tmp_path_factory.mktemp("source") / "data")


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[MemoryStore]:
    from memos.store.postgres import PostgresStore

    store = PostgresStore(postgres_url, embed_model=EMBEDDER.name, pool_max=4)
    yield store
    store.close()


# ----------------------------------------------------------------------- tests
def test_round_trip_sqlite_postgres_sqlite_keeps_everything(
    source: Source, postgres_url: str, pg_store: MemoryStore, tmp_path: Path
) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    back = tmp_path / "back"
    started = time.perf_counter()
    out = run("export", "--user", source.alice, "--data-dir", str(source.data_dir), str(first))
    assert "sha256" in out.output and "2 cube(s)" in out.output
    done = run("import", str(first), "--store-url", postgres_url)
    assert "verified: sha256" in done.output
    assert_pg_derived_state(postgres_url, [source.alice, source.notes])
    run("export", "--user", source.alice, "--store-url", postgres_url, str(second))
    run("import", str(second), "--data-dir", str(back))
    elapsed = time.perf_counter() - started

    records = read_records(first)
    kinds = {k: sum(r["record"] == k for r in records) for k in jsonl.KINDS}
    assert kinds["cube"] == 2 and kinds["version"] >= 4 and kinds["edge"] == 2
    assert kinds["task"] >= 3 and kinds["message"] == 9
    statuses = {r["status"] for r in records if r["record"] == "memory"}
    assert statuses == {"activated", "archived", "deleted"}
    print(f"\nround trip of {len(records)} records x 4 steps in {elapsed:.2f} s")
    # the same records, in the same order, out of both stores
    assert read_records(second) == records

    with opened(source.data_dir / "memos.db") as a, \
            opened(back / "memos.db") as b:
        for cube in (source.alice, source.notes):
            assert snapshot(b, cube) == snapshot(a, cube) == snapshot(pg_store, cube)
        before = search(a, source.data_dir, source.alice)
        assert before[0], "the queries find something"
        assert search(b, back, source.alice) == before
        pg = search(pg_store, tmp_path / "pg", source.alice)
        assert [[i for i, _ in q] for q in pg] == [[i for i, _ in q] for q in before]
        assert np.allclose([s for q in pg for _, s in q], [s for q in before for _, s in q],
                           atol=1e-3)


def test_no_vectors_export_is_embedded_again_to_the_same_vectors(
    source: Source, pg_store: MemoryStore, postgres_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "plain.jsonl"
    run("export", "--cube", source.alice, "--no-vectors", "--data-dir", str(source.data_dir),
        str(path))
    text = path.read_text()
    assert '"vector"' not in text and '"vectors":false' in text.splitlines()[0]
    run("import", str(path), "--data-dir", str(tmp_path / "c"))
    run("import", str(path), "--store-url", postgres_url)
    with opened(source.data_dir / "memos.db") as a, \
            opened(tmp_path / "c" / "memos.db") as c:
        want = [r for r in a.export_cube(source.alice) if r["record"] == "memory"]
        for store in (c, pg_store):
            got = [r for r in store.export_cube(source.alice) if r["record"] == "memory"]
            assert [r["vector"] for r in got] == [r["vector"] for r in want]
            assert {r["model"] for r in got} == {EMBEDDER.name}
    # and without an embedder the port refuses rather than storing no vector
    with opened(tmp_path / "d.db") as d, path.open("rb") as fh, \
            pytest.raises(InvalidParameter, match="has no vector"):
        d.import_records(jsonl.Reader(fh), embed=None)


def test_vectors_of_another_embedder_are_refused_unless_reembedded(
    source: Source, tmp_path: Path
) -> None:
    path = tmp_path / "notes.jsonl.gz"
    run("export", "--cube", source.notes, "--data-dir", str(source.data_dir), str(path))
    other = {"MEMOS_EMBEDDER__DIM": "64"}  # the hash embedder at 64 dims: "hash-64"
    refused = run("import", str(path), "--data-dir", str(tmp_path / "e"), env=other, ok=False)
    assert refused.exit_code == 1 and "'hash-256'" in refused.output
    assert "--reembed" in refused.output
    done = run("import", str(path), "--reembed", "--data-dir", str(tmp_path / "e"), env=other)
    assert "verified" in done.output
    with opened(tmp_path / "e" / "memos.db") as e:
        got = [r for r in e.export_cube(source.notes) if r["record"] == "memory"]
    assert {len(r["vector"]) for r in got} == {64} and {r["model"] for r in got} == {"hash-64"}


def test_tenant_scoping_keeps_other_users_out(source: Source, tmp_path: Path) -> None:
    path = tmp_path / "alice.jsonl"
    run("export", "--user", source.alice, "--data-dir", str(source.data_dir), str(path))
    records = read_records(path)
    assert {r["cube_id"] for r in records} == {source.alice, source.notes}
    assert source.bob not in path.read_text() and "Bob's secret" not in path.read_text()
    one = tmp_path / "notes.jsonl"
    run("export", "--cube", source.notes, "--data-dir", str(source.data_dir), str(one))
    assert {r["cube_id"] for r in read_records(one)} == {source.notes}
    everything = tmp_path / "all.jsonl"
    run("export", "--all", "--data-dir", str(source.data_dir), str(everything))
    assert {source.alice, source.notes, source.bob} <= {
        r["cube_id"] for r in read_records(everything)}
    missing = run("export", "--user", "nobody", "--data-dir", str(source.data_dir),
                  str(tmp_path / "x.jsonl"), ok=False)
    assert missing.exit_code == 1 and "owns no cube" in missing.output
    assert not (tmp_path / "x.jsonl").exists()


def test_importing_twice_adds_nothing_and_another_owner_is_refused(
    source: Source, tmp_path: Path
) -> None:
    path = tmp_path / "alice.jsonl"
    run("export", "--cube", source.alice, "--data-dir", str(source.data_dir), str(path))
    target = tmp_path / "t"
    with opened(target / "memos.db") as warm:  # a running store with its caches built
        scope = Scope(user_id=source.alice, cube_id=source.alice)
        query = EMBEDDER.embed_query("spicy food")
        assert warm.vector_search(scope, query, 5, None) == []
        assert warm.text_search(scope, "spicy food", 5, None) == []
        run("import", str(path), "--data-dir", str(target))
        assert warm.vector_search(scope, query, 5, None)  # the import made it reload
        assert warm.text_search(scope, "spicy food", 5, None)
    again = run("import", str(path), "--data-dir", str(target))
    n = len(read_records(path))
    assert f"nothing new; {n} records already there" in again.output
    assert "verified" in again.output
    with opened(target / "memos.db") as t:
        assert list(t.export_cube(source.alice)) == read_records(path)
    with opened(tmp_path / "other.db") as other:
        other.claim_cube("mallory", source.alice)
        with path.open("rb") as fh, pytest.raises(PermissionDenied, match="another user"):
            other.import_records(jsonl.Reader(fh), embed=None)
        assert other.count_memories(Scope(user_id="mallory", cube_id=source.alice)) == 0
    refused = run("import", str(path), "--store-url", f"sqlite:///{tmp_path / 'other.db'}",
                  ok=False)
    assert refused.exit_code == 1 and "error 40306" in refused.output


def test_damaged_or_truncated_files_are_refused_before_writing(
    source: Source, tmp_path: Path
) -> None:
    path = tmp_path / "alice.jsonl"
    run("export", "--cube", source.alice, "--data-dir", str(source.data_dir), str(path))
    lines = path.read_bytes().splitlines(keepends=True)
    changed = tmp_path / "changed.jsonl"
    changed.write_bytes(b"".join(lines).replace(b"Hangzhou", b"Shanghai"))
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"".join(lines[:-3]))
    half = tmp_path / "half.jsonl"
    half.write_bytes(b"".join(lines)[: len(b"".join(lines)) // 2])
    for bad, why in ((changed, "checksum mismatch"), (cut, "cut short"), (half, "cut short")):
        target = tmp_path / ("t-" + bad.stem)
        result = run("import", str(bad), "--data-dir", str(target), ok=False)
        assert result.exit_code == 1 and why in result.output and "export it again" in result.output
        with opened(target / "memos.db") as t:
            assert t.cubes() == []  # nothing was written
    # from stdin nothing can be checked up front: the end says what happened
    piped = run("import", "-", "--data-dir", str(tmp_path / "piped"), ok=False,
                input=changed.read_bytes())
    assert "checksum mismatch" in piped.output and "were imported" in piped.output
    with pytest.raises(jsonl.FormatError, match="cut short"):
        list(jsonl.Reader(io.BytesIO(b"".join(lines[:-1]))))
    with pytest.raises(jsonl.FormatError, match="follows the trailer"):
        list(jsonl.Reader(io.BytesIO(b"".join(lines) + lines[1])))


def test_stdout_export_pipes_into_import(source: Source, tmp_path: Path) -> None:
    out = run("export", "--cube", source.notes, "--data-dir", str(source.data_dir), "-")
    data = out.stdout_bytes
    assert data.startswith(b'{"created":') and b'"end":"memos-export"' in data
    done = run("import", "-", "--data-dir", str(tmp_path / "p"), input=data)
    assert "verified" in done.output


def test_memcube_dump_is_json_and_safetensors(source: Source, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    out = tmp_path / "cube"
    run("export", "--cube", source.alice, "--format", "memcube", "--data-dir",
        str(source.data_dir), str(out))
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "textual_memory.json", "vectors.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["cube_id"] == source.alice and config["user_id"] == source.alice
    dump = json.loads((out / "textual_memory.json").read_text())
    nodes = dump["nodes"]
    assert {n["metadata"]["status"] for n in nodes} == {"activated", "archived", "deleted"}
    assert all(n["memory"] and n["metadata"]["id"] == n["id"] for n in nodes)
    assert {e["type"] for e in dump["edges"]} == {"version-of", "related-to"}
    tensors = load_file(str(out / "vectors.safetensors"))
    assert list(tensors) == ["embedding"]
    vecs = tensors["embedding"]
    assert vecs.dtype == np.float32 and vecs.shape == (len(nodes), EMBEDDER.dim)
    with opened(source.data_dir / "memos.db") as a:
        want = {r["id"]: r["vector"] for r in a.export_cube(source.alice)
                if r["record"] == "memory"}
    assert np.array_equal(vecs, np.array([want[n["id"]] for n in nodes], np.float32))
    # no pickle anywhere: no pickle file, no pickle opcode stream
    for path in out.iterdir():
        assert path.suffix not in (".pickle", ".pkl", ".pt", ".bin")
        assert not path.read_bytes().startswith(b"\x80")
    # several cubes: one MemCube directory each
    many = tmp_path / "many"
    run("export", "--user", source.alice, "--format", "memcube", "--data-dir",
        str(source.data_dir), str(many))
    assert len(list(many.iterdir())) == 2
