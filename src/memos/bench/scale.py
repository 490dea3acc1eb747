"""Search latency, ingest rate, index build, disk and memory at 10k to 1M memories.

For each size N (a fresh temp data dir each) the corpus recombines LoCoMo
sentences (``"{Name}: {sentence} {sentence}"``, random names, all distinct)
and goes in through ``MemoryService.add`` in batches of up to 500 messages,
as one tenant. Ingest is timed with the real MiniLM embedder on the first
``exact_messages`` (default 5,000), and the time spent inside the embedder is
measured apart from the rest (service + SQLite), so the report shows the
embedder's msgs/s and the store's msgs/s separately. The rest of the corpus,
unless ``exact_messages >= N``, gets *composed* vectors: the normalised sum of
the real MiniLM vectors of the message's two sentences (each sentence embedded
once per benchmark run). That keeps the vectors on MiniLM's distribution while
building 1M in minutes on two cores; search-side work does not depend on how
the vectors were made.

Then, per layout:

* **one tenant**: the data dir is reopened cold; the first search builds the
  in-memory indexes (what a restart costs). ``n_queries`` distinct LoCoMo
  questions are searched through ``MemoryService.search`` (query embedding
  included), with a breakdown per query: the query embedding alone,
  ``store.vector_search`` and ``store.text_search`` alone (pool 100, as the
  searcher asks), and the baseline, a plain numpy exact scan ``X @ q`` +
  ``argpartition`` over the same matrix, whose scores also give the recall of
  the store's vector search (recall@10/@100 counted by score, so exact ties
  between equal vectors count as found).
* **tenants** (where each of ``tenants`` tenants gets at least
  ``MIN_PER_TENANT`` memories): the same rows re-assigned in SQL to
  ``tenants`` users of N/tenants memories each (batches never cross a tenant
  boundary, so no memory's context mentions another tenant's messages); every
  tenant's index is built once (all their first searches), then the queries
  go to random tenants.

For both, ``memos serve`` is started on the data dir: its RSS once the index
is loaded (every tenant searched once) and the HTTP latency of
``http_queries`` searches. Results hold every size in one JSON file, and
``scale_report`` renders the Markdown table and the SVG chart.
"""

from __future__ import annotations

import gc
import random
import re
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from memos.bench import (
    Progress,
    ServerProcess,
    latency_stats,
    log_progress,
    machine_info,
    rss_mb,
)
from memos.bench.locomo import CloudClient, load_samples
from memos.domain.models import MessageInput, Scope
from memos.embedders import build_embedder
from memos.embedders.base import Embedder, Vectors
from memos.service import MemoryService
from memos.settings import Settings, load_settings
from memos.store.sqlite import vector_index
from memos.text.tokens import count_tokens

DEFAULT_OUT = Path("bench/results/scale.json")
DEFAULT_SVG = Path("docs/scale.svg")
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
DEFAULT_TENANTS = 1_000
MIN_PER_TENANT = 100  # the tenants layout runs where every tenant gets at least this many
USER = "scale-bench"
TENANT = "tenant-{:04d}"
BATCH_MESSAGES = 500
BATCH_TOKENS = 30_000  # under the 40k-token add limit
HTTP_QUERIES = 100
POOL = 100  # candidates per retriever, as the hybrid searcher asks for limit <= 25

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
NAMES = (
    "Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy",
    "Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter",
    "Yara", "Zane", "Maria", "Jon", "Priya", "Chen", "Fatima", "Lucas", "Amara", "Diego",
    "Hana", "Omar", "Ingrid", "Kofi", "Leila", "Mateo", "Nadia", "Pavel", "Quinn", "Rosa",
    "Sven", "Tariq", "Uma", "Vera", "Wen", "Xavier", "Yusuf", "Zoe", "Caroline", "Melanie",
    "Gina", "Deborah", "Jolene", "Audrey", "Andrew", "John", "Tim", "Joanna", "Nate",
)  # fmt: skip


# ---------------------------------------------------------------- corpus
def locomo_sentences(samples_path: Path) -> list[str]:
    """Distinct sentences (3 to 40 words) of every LoCoMo turn."""
    seen: dict[str, None] = {}
    for sample in load_samples(samples_path):
        for turn in sample.turns:
            text = turn.content.split(": ", 1)[-1]
            for s in _SENTENCE_END.split(text):
                s = s.strip()
                if 3 <= len(s.split()) <= 40:
                    seen.setdefault(s, None)
    return list(seen)


def locomo_questions(samples_path: Path) -> list[str]:
    seen: dict[str, None] = {}
    for sample in load_samples(samples_path):
        for q in sample.questions:
            seen.setdefault(q.text, None)
    return list(seen)


def make_corpus(
    sentences: Sequence[str], n: int, *, seed: int = 7
) -> tuple[list[str], list[tuple[int, int]]]:
    """``n`` distinct messages ``"{Name}: {s_i} {s_j}"`` and their sentence indices (i, j)."""
    if len(sentences) < 2:
        raise ValueError("need at least two sentences")
    rng = random.Random(seed)
    texts: list[str] = []
    parts: list[tuple[int, int]] = []
    seen: set[str] = set()
    while len(texts) < n:
        i, j = rng.randrange(len(sentences)), rng.randrange(len(sentences))
        if i == j:
            continue
        text = f"{rng.choice(NAMES)}: {sentences[i]} {sentences[j]}"
        if text in seen:
            continue
        seen.add(text)
        texts.append(text)
        parts.append((i, j))
    return texts, parts


def batches(
    token_counts: Sequence[int], *, boundary: int | None = None
) -> Iterator[tuple[int, int]]:
    """[start, end) ranges of at most BATCH_MESSAGES messages and BATCH_TOKENS tokens.

    With ``boundary``, no range crosses a multiple of it (a tenant's first message).
    """
    start, tokens = 0, 0
    for i, n in enumerate(token_counts):
        if i > start and (
            i - start >= BATCH_MESSAGES
            or tokens + n > BATCH_TOKENS
            or (boundary is not None and i % boundary == 0)
        ):
            yield start, i
            start, tokens = i, 0
        tokens += n
    if start < len(token_counts):
        yield start, len(token_counts)


def corpus_token_counts(sentences: Sequence[str], parts: Sequence[tuple[int, int]]) -> list[int]:
    """An upper bound of each message's tokens, from its sentences' counts (fast for 1M).

    Words are tokenised one at a time, so the message's count is its parts'
    counts added; 8 covers the name and the colon.
    """
    per = [count_tokens(s) for s in sentences]
    return [per[i] + per[j] + 8 for i, j in parts]


class ComposedEmbedder:
    """The real embedder, or (once ``compose`` is on) sums of precomputed sentence vectors.

    It keeps the real embedder's name so the data dir stays valid for ``memos serve``.
    Texts it does not know always go to the real embedder, as do queries. The
    seconds spent in the real embedder and in composing are counted apart.
    """

    def __init__(
        self,
        real: Embedder,
        texts: Sequence[str],
        parts: Sequence[tuple[int, int]],
        sentence_vecs: Vectors,
    ) -> None:
        self.real = real
        self.compose = False
        self._parts = dict(zip(texts, parts, strict=True))
        self._sentence_vecs = sentence_vecs
        self.real_seconds = 0.0
        self.compose_seconds = 0.0

    @property
    def name(self) -> str:
        return self.real.name

    @property
    def dim(self) -> int:
        return self.real.dim

    def embed(self, texts: list[str]) -> Vectors:
        t0 = time.perf_counter()
        if not self.compose or any(t not in self._parts for t in texts):
            out = self.real.embed(texts)
            self.real_seconds += time.perf_counter() - t0
            return out
        vecs = self._sentence_vecs
        idx = np.asarray([self._parts[t] for t in texts], np.int64)
        summed = vecs[idx[:, 0]] + vecs[idx[:, 1]]
        composed: Vectors = (summed / np.linalg.norm(summed, axis=1, keepdims=True)).astype(
            np.float32
        )
        self.compose_seconds += time.perf_counter() - t0
        return composed

    def embed_query(self, text: str) -> Vectors:
        return self.real.embed_query(text)


# ---------------------------------------------------------------- helpers
def stats(seconds: Sequence[float]) -> dict[str, float]:
    """``latency_stats`` plus p99, in milliseconds."""
    out = latency_stats(seconds)
    if seconds:
        out["p99_ms"] = round(float(np.percentile(np.asarray(seconds) * 1000.0, 99)), 3)
    else:
        out["p99_ms"] = float("nan")
    return out


def _rate(count: int, seconds: float) -> float | None:
    return round(count / seconds, 1) if seconds > 0 and count else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def disk_usage(db_path: Path) -> dict[str, int]:
    """Bytes of the database file and its WAL / shared-memory files."""
    out = {}
    for suffix in ("", "-wal", "-shm"):
        path = Path(f"{db_path}{suffix}")
        out[f"db{suffix.replace('-', '_')}_bytes"] = path.stat().st_size if path.exists() else 0
    return out


def first_pass(n_rows: int) -> str:
    """How the vector index's first pass runs for a cube of ``n_rows`` (see vector_index)."""
    if n_rows >= vector_index.IVF_MIN:
        return "inverted lists"
    if n_rows >= vector_index.PROJECT_MIN:
        return "projected scan"
    return "exact scan"


def retenant(db_path: Path, old_user: str, users: Sequence[str]) -> float:
    """Reassign one tenant's rows, in rowid order, to ``users`` in equal slices (SQL).

    A benchmark shortcut that builds the many-tenant layout from the rows the
    one-tenant run ingested (one memory per message, rowids in ingest order).
    Returns the seconds it took.
    """
    t0 = time.perf_counter()
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        (n_mem, first_mem) = conn.execute(
            "SELECT count(*), min(rowid) FROM memories WHERE cube_id = ?", (old_user,)
        ).fetchone()
        (n_msg, first_msg) = conn.execute(
            "SELECT count(*), min(rowid) FROM messages WHERE cube_id = ?", (old_user,)
        ).fetchone()
        if n_mem != n_msg or n_mem % len(users):
            raise ValueError(f"{n_mem} memories / {n_msg} messages do not split {len(users)} ways")
        per = n_mem // len(users)
        conn.execute("CREATE TEMP TABLE tenant_names (i INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO temp.tenant_names VALUES (?, ?)", enumerate(users))
        owner = "(SELECT name FROM temp.tenant_names WHERE i = ({col} - ?) / ?)"
        for table, first in (("memories", first_mem), ("messages", first_msg)):
            expr = owner.format(col=f"{table}.rowid")
            conn.execute(
                f"UPDATE {table} SET cube_id = {expr}, user_id = {expr} WHERE cube_id = ?",
                (first, per, first, per, old_user),
            )
        conn.execute(
            "UPDATE memory_vectors SET cube_id = (SELECT cube_id FROM memories m "
            "WHERE m.rowid = memory_vectors.rowid) WHERE cube_id = ?",
            (old_user,),
        )
        created = time.time()
        conn.execute("DELETE FROM cubes WHERE cube_id = ?", (old_user,))
        conn.executemany(
            "INSERT INTO cubes (cube_id, owner_id, create_time) VALUES (?, ?, ?)",
            [(u, u, created) for u in users],
        )
        conn.execute("DELETE FROM cube_state WHERE cube_id = ?", (old_user,))
        conn.executemany(
            "INSERT INTO cube_state (cube_id, generation) VALUES (?, 1)", [(u,) for u in users]
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return time.perf_counter() - t0


def _tenant_matrix(db_path: Path, cube_id: str) -> Vectors:
    """A tenant's live vectors straight from SQLite, for the numpy baseline."""
    conn = sqlite3.connect(db_path)
    try:
        blobs = [
            r[0]
            for r in conn.execute(
                "SELECT v.vec FROM memory_vectors v JOIN memories m ON m.rowid = v.rowid "
                "WHERE v.cube_id = ? AND m.status = 'activated' ORDER BY v.rowid",
                (cube_id,),
            )
        ]
    finally:
        conn.close()
    mat: Vectors = np.frombuffer(b"".join(blobs), np.float32).reshape(len(blobs), -1).copy()
    return mat


def _exact_scores(mat: Vectors, q: Vectors, k: int) -> Vectors:
    """The k best cosines of an exact scan, best first (the baseline's work)."""
    scores = mat @ q
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    out: Vectors = np.sort(scores[top])[::-1]
    return out


# ------------------------------------------------------------------- run
@dataclass
class _Corpus:
    texts: list[str]
    parts: list[tuple[int, int]]
    tokens: list[int]


def _ingest(
    svc: MemoryService,
    corpus: _Corpus,
    embedder: ComposedEmbedder,
    exact_messages: int,
    progress: Progress,
    boundary: int | None,
) -> dict[str, Any]:
    texts = corpus.texts
    timed_exact = timed_all = 0.0
    real_exact = compose_all = 0.0
    every = max(5_000, len(texts) // 10)
    next_report = every
    for b, (start, end) in enumerate(batches(corpus.tokens, boundary=boundary)):
        if start >= exact_messages and not embedder.compose:
            embedder.compose = True
            real_exact = embedder.real_seconds
        day = 1 + b % 28
        msgs = [
            MessageInput(
                role="user" if (start + k) % 2 == 0 else "assistant",
                content=texts[start + k],
                chat_time=f"2023-{1 + b % 12:02d}-{day:02d} {9 + k % 12:02d}:{k % 60:02d}:00",
                message_id=f"m{start + k}",
            )
            for k in range(end - start)
        ]
        t0 = time.perf_counter()
        svc.add(user_id=USER, conversation_id=f"batch-{b}", messages=msgs)
        took = time.perf_counter() - t0
        timed_all += took
        if not embedder.compose:
            timed_exact += took
        if end >= next_report:
            progress(f"  ingested {end:,}/{len(texts):,} ({end / timed_all:.0f} msgs/s so far)")
            next_report += every
    if not embedder.compose:
        real_exact = embedder.real_seconds
    compose_all = embedder.compose_seconds
    exact = min(exact_messages, len(texts))
    rest = len(texts) - exact
    timed_rest = timed_all - timed_exact
    return {
        "messages": len(texts),
        "seconds": round(timed_all, 1),
        "real_embedder": {
            "messages": exact,
            "seconds": round(timed_exact, 2),
            "msgs_per_s": _rate(exact, timed_exact),
            "embedder_seconds": round(real_exact, 2),
            "embedder_msgs_per_s": _rate(exact, real_exact),
            "store_msgs_per_s": _rate(exact, timed_exact - real_exact),
        },
        "composed_vectors": {
            "messages": rest,
            "seconds": round(timed_rest, 2),
            "msgs_per_s": _rate(rest, timed_rest),
            "compose_seconds": round(compose_all, 2),
        },
        # everything but the embedder: validation, reader, SQLite, index patching
        "store_msgs_per_s": _rate(len(texts), timed_all - real_exact - compose_all),
    }


def _open(settings: Settings, embedder: Embedder) -> MemoryService:
    return MemoryService.open(settings, embedder=embedder)


def _measure(
    settings: Settings,
    embedder: Embedder,
    users: Sequence[str],
    queries: Sequence[str],
    progress: Progress,
    *,
    seed: int,
    open_service: Callable[[], MemoryService] | None = None,
    tenant_matrix: Callable[[str], Vectors] | None = None,
) -> dict[str, Any]:
    """Cold open, build every user's index, then the per-query stage breakdown.

    ``open_service`` and ``tenant_matrix`` replace the SQLite data dir's service
    and vectors (the PostgreSQL run passes its own).
    """
    gc.collect()
    svc = open_service() if open_service else _open(settings, embedder)
    try:
        rss_before = rss_mb()
        builds: list[float] = []
        every = max(1, len(users) // 4)
        for i, user in enumerate(users):
            t0 = time.perf_counter()
            svc.search(user_id=user, query=queries[i % len(queries)], limit=10)
            builds.append(time.perf_counter() - t0)
            if len(users) > 1 and (i + 1) % every == 0:
                progress(f"  built the indexes of {i + 1}/{len(users)} tenants")
        rss_loaded = rss_mb()
        progress(
            f"  index build (first search{'es' if len(users) > 1 else ''} after a cold open) "
            f"{sum(builds):.1f} s; RSS {rss_loaded:.0f} MiB"
        )
        rng = random.Random(seed)
        picked = [users[0] if len(users) == 1 else rng.choice(users) for _ in queries]
        names = (
            "search_limit10",
            "search_limit25_rel0",
            "embed_query",
            "vector_search",
            "text_search",
            "numpy_exact_scan",
        )
        stages: dict[str, list[float]] = {k: [] for k in names}
        qvecs: list[Vectors] = []
        found: list[Vectors] = []
        for i, (user, q) in enumerate(zip(picked, queries, strict=True)):
            scope = Scope(user_id=user, cube_id=user)
            t0 = time.perf_counter()
            qvec = svc.embedder.embed_query(q)
            t1 = time.perf_counter()
            hits = svc.store.vector_search(scope, qvec, POOL, None)
            t2 = time.perf_counter()
            svc.store.text_search(scope, q, POOL, None)
            t3 = time.perf_counter()
            svc.search(user_id=user, query=q, limit=10)
            t4 = time.perf_counter()
            svc.search(user_id=user, query=q, limit=25, relativity=0)
            t5 = time.perf_counter()
            for key, dt in zip(
                names[:5], (t4 - t3, t5 - t4, t1 - t0, t2 - t1, t3 - t2), strict=True
            ):
                stages[key].append(dt)
            qvecs.append(qvec)
            found.append(np.asarray([h.score for h in hits], np.float32))
            if (i + 1) % 100 == 0:
                progress(f"  searched {i + 1}/{len(queries)}")
    finally:
        svc.close()
    # The baseline in its own pass: a multi-threaded BLAS scan leaves OpenBLAS's
    # worker spinning for a while, which would slow whatever is timed next.
    top1: list[float] = []
    recall10: list[float] = []
    recall100: list[float] = []
    mats: dict[str, Vectors] = {}
    for user, qvec, got in zip(picked, qvecs, found, strict=True):
        if user not in mats:
            mats.clear()  # one tenant's matrix at a time
            mats[user] = (
                tenant_matrix(user) if tenant_matrix else _tenant_matrix(settings.db_path, user)
            )
        t0 = time.perf_counter()
        exact = _exact_scores(mats[user], qvec, POOL)
        stages["numpy_exact_scan"].append(time.perf_counter() - t0)
        if len(got) and len(exact):
            top1.append(float(abs(got[0] - exact[0]) < 1e-4))
            k10, k100 = min(10, len(exact)), len(exact)
            recall10.append(float(np.sum(got[:k10] >= exact[k10 - 1] - 1e-5)) / k10)
            recall100.append(float(np.sum(got[:k100] >= exact[k100 - 1] - 1e-5)) / k100)
    del mats
    latency = {k: stats(v) for k, v in stages.items()}
    numpy_p50 = latency["numpy_exact_scan"]["p50_ms"]
    return {
        "index": {
            "build_seconds": round(sum(builds), 2),
            "first_search_ms": stats(builds),
            "rss_mb_before_load": _round(rss_before),
            "rss_mb_loaded": _round(rss_loaded),
        },
        "latency": latency,
        "ratios": {
            "vector_search_vs_numpy_p50": round(latency["vector_search"]["p50_ms"] / numpy_p50, 3),
            "search_limit10_vs_numpy_p50": round(
                latency["search_limit10"]["p50_ms"] / numpy_p50, 3
            ),
        },
        "recall": {
            "top1_matches_exact": round(float(np.mean(top1)), 4) if top1 else None,
            "recall_at_10": round(float(np.mean(recall10)), 4) if recall10 else None,
            "recall_at_100": round(float(np.mean(recall100)), 4) if recall100 else None,
        },
    }


def _serve(
    data_dir: Path, users: Sequence[str], queries: Sequence[str], http_queries: int, seed: int
) -> dict[str, Any]:
    """``memos serve`` on the data dir: RSS with every index loaded, HTTP latency."""
    info: dict[str, Any] = {}
    with ServerProcess(data_dir, log_path=data_dir.parent / "server.log") as server:
        info["rss_mb_started"] = _round(server.rss_mb())
        client = CloudClient(server.url, timeout_s=900.0)
        try:
            t0 = time.perf_counter()
            for i, user in enumerate(users):
                client.search(user, queries[i % len(queries)], 10)
            info["load_seconds"] = round(time.perf_counter() - t0, 2)
            info["rss_mb_loaded"] = _round(server.rss_mb())
            rng = random.Random(seed)
            http: list[float] = []
            for q in queries[:http_queries]:
                user = users[0] if len(users) == 1 else rng.choice(users)
                t0 = time.perf_counter()
                client.search(user, q, 10)
                http.append(time.perf_counter() - t0)
        finally:
            client.close()
        info["rss_mb_after_searches"] = _round(server.rss_mb())
        info["http_search_limit10"] = stats(http)
    return info


def run_scale(
    sizes: Sequence[int] = DEFAULT_SIZES,
    *,
    data_path: Path,
    tenants: int = DEFAULT_TENANTS,
    n_queries: int = 300,
    exact_messages: int = 5_000,
    http_queries: int = HTTP_QUERIES,
    progress: Progress = log_progress,
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """Every size, one tenant and (where each gets >= MIN_PER_TENANT) ``tenants`` tenants."""
    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="memos-scale-", dir=work_dir) as tmp:
        return _run_all(
            list(sizes),
            tenants,
            n_queries,
            exact_messages,
            http_queries,
            data_path,
            progress,
            Path(tmp),
        )


def tenant_layout(n: int, tenants: int) -> int | None:
    """Memories per tenant when ``n`` is also run as ``tenants`` tenants, else None."""
    if tenants < 2 or n % tenants or n // tenants < MIN_PER_TENANT:
        return None
    return n // tenants


def _run_all(
    sizes: list[int],
    tenants: int,
    n_queries: int,
    exact_messages: int,
    http_queries: int,
    data_path: Path,
    progress: Progress,
    tmp: Path,
) -> dict[str, Any]:
    wall = time.perf_counter()
    sentences = locomo_sentences(data_path)
    questions = locomo_questions(data_path)
    queries = random.Random(11).sample(questions, min(n_queries, len(questions)))
    settings0 = load_settings({"data_dir": tmp / "probe"})
    real = build_embedder(settings0.embedder)
    real.embed(["warm up the model"])
    progress(f"embedding {len(sentences)} distinct LoCoMo sentences once (composed vectors)")
    t0 = time.perf_counter()
    sentence_vecs = real.embed(list(sentences))
    sentence_s = time.perf_counter() - t0
    progress(f"  {sentence_s:.1f} s ({len(sentences) / sentence_s:.0f} texts/s)")
    runs: list[dict[str, Any]] = []
    for n in sorted(sizes):
        runs.extend(
            _run_size(
                n,
                tenants,
                queries,
                exact_messages,
                http_queries,
                sentences,
                sentence_vecs,
                real,
                progress,
                tmp / f"n{n}",
            )
        )
    return {
        "benchmark": "search-at-scale",
        "machine": machine_info(),
        "config": {
            "sizes": sorted(sizes),
            "tenants": tenants,
            "min_per_tenant": MIN_PER_TENANT,
            "queries": len(queries),
            "http_queries": http_queries,
            "candidate_pool": POOL,
            "embedder": real.name,
            "exact_embedder_messages": exact_messages,
            "vectors_for_the_rest": "normalised sum of real sentence vectors",
            "vector_index": {
                "project_min": vector_index.PROJECT_MIN,
                "projected_dims": vector_index.PROJECTED_DIMS,
                "rescore_pool": vector_index.RESCORE_POOL,
                "ivf_min": vector_index.IVF_MIN,
                "ivf_list_rows": vector_index.IVF_LIST_ROWS,
                "ivf_probe_share": vector_index.IVF_PROBE_SHARE,
            },
        },
        "sentence_embedding": {
            "sentences": len(sentences),
            "seconds": round(sentence_s, 1),
            "texts_per_s": round(len(sentences) / sentence_s, 1),
        },
        "runs": runs,
        "total_seconds": round(time.perf_counter() - wall, 1),
    }


def _run_size(
    n: int,
    tenants: int,
    queries: Sequence[str],
    exact_messages: int,
    http_queries: int,
    sentences: Sequence[str],
    sentence_vecs: Vectors,
    real: Embedder,
    progress: Progress,
    root: Path,
) -> list[dict[str, Any]]:
    started = time.perf_counter()
    data_dir = root / "data"
    settings = load_settings({"data_dir": data_dir})
    texts, parts = make_corpus(sentences, n)
    corpus = _Corpus(texts, parts, corpus_token_counts(sentences, parts))
    per_tenant = tenant_layout(n, tenants)
    progress(f"[{n:,}] ingesting {n:,} messages as one tenant")
    embedder = ComposedEmbedder(real, texts, parts, sentence_vecs)
    svc = _open(settings, embedder)
    try:
        ingest = _ingest(svc, corpus, embedder, exact_messages, progress, per_tenant)
        disk = disk_usage(settings.db_path)
    finally:
        svc.close()
    del svc, texts, parts, corpus, embedder  # the composed embedder's lookup is big at 1M
    disk_closed = disk_usage(settings.db_path)
    total = disk["db_bytes"] + disk["db_wal_bytes"] + disk["db_shm_bytes"]
    disk_info = {
        **disk,
        "bytes_per_memory": round(total / n),
        "bytes_per_memory_after_close": round(disk_closed["db_bytes"] / n),
    }
    progress(f"[{n:,}] ingest {ingest}; disk {disk_info['bytes_per_memory']} B/memory")
    common = {"n_memories": n, "ingest": ingest, "disk": disk_info}

    progress(f"[{n:,}] one tenant: cold open, index build, {len(queries)} queries")
    one = _measure(settings, real, [USER], queries, progress, seed=n)
    progress(f"[{n:,}] one tenant: memos serve")
    one["server"] = _serve(data_dir, [USER], queries, http_queries, seed=n)
    runs = [
        {
            "layout": "one-tenant",
            "tenants": 1,
            "memories_per_tenant": n,
            "vector_first_pass": first_pass(n),
            **common,
            **one,
            "seconds": round(time.perf_counter() - started, 1),
        }
    ]
    progress(f"[{n:,}] one tenant: {_summary(runs[-1])}")
    if per_tenant is not None:
        started = time.perf_counter()
        users = [TENANT.format(i) for i in range(tenants)]
        took = retenant(settings.db_path, USER, users)
        progress(f"[{n:,}] {tenants} tenants x {per_tenant}: rows reassigned in {took:.1f} s")
        many = _measure(settings, real, users, queries, progress, seed=n + 1)
        progress(f"[{n:,}] {tenants} tenants: memos serve")
        many["server"] = _serve(data_dir, users, queries, http_queries, seed=n + 1)
        runs.append(
            {
                "layout": "tenants",
                "tenants": tenants,
                "memories_per_tenant": per_tenant,
                "vector_first_pass": first_pass(per_tenant),
                **common,
                "retenant_seconds": round(took, 1),
                **many,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        progress(f"[{n:,}] {tenants} tenants: {_summary(runs[-1])}")
    return runs


def _summary(run: dict[str, Any]) -> str:
    lat = run["latency"]["search_limit10"]
    return (
        f"search p50/p95/p99 {lat['p50_ms']:.1f}/{lat['p95_ms']:.1f}/{lat['p99_ms']:.1f} ms, "
        f"recall@10 {run['recall']['recall_at_10']}, serve RSS {run['server']['rss_mb_loaded']} MiB"
    )
