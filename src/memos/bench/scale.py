"""Search latency, ingest rate and memory at scale: one tenant with N memories.

The corpus recombines LoCoMo sentences (``"{Name}: {sentence} {sentence}"``,
random names, all distinct) and goes in through ``MemoryService.add`` in
batches of up to 500 messages. Ingest is timed with the real MiniLM embedder
on the first ``exact_messages`` (default 5,000); the rest, unless
``exact_messages >= n``, get *composed* vectors: the normalised sum of the
real MiniLM vectors of the message's two sentences (each sentence embedded
once). That keeps the vectors on MiniLM's distribution (so the index, the
dedup and the thresholds behave as with real data) while building 100k in
minutes on two cores; search-side work (query embedding, exact scan, FTS5,
fusion) is the real code path and does not depend on how vectors were made.

Then ``n_queries`` distinct LoCoMo questions are searched through
``MemoryService.search`` (query embedding included), with a breakdown: query
embedding alone, ``store.vector_search`` alone, ``store.text_search`` alone,
and the baseline, a plain numpy exact scan ``X @ q`` + ``argpartition`` over
the same matrix. Finally ``memos serve`` is started on the same data dir and
its RSS read after one search has loaded the index.
"""

from __future__ import annotations

import random
import re
import resource
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Sequence
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
from memos.text.tokens import count_tokens

DEFAULT_OUT = Path("bench/results/scale.json")
USER = "scale-bench"
BATCH_MESSAGES = 500
BATCH_TOKENS = 30_000  # under the 40k-token add limit
PROGRESS_EVERY = 5_000
HTTP_QUERIES = 100

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
NAMES = (
    "Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy",
    "Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter",
    "Yara", "Zane", "Maria", "Jon", "Priya", "Chen", "Fatima", "Lucas", "Amara", "Diego",
    "Hana", "Omar", "Ingrid", "Kofi", "Leila", "Mateo", "Nadia", "Pavel", "Quinn", "Rosa",
    "Sven", "Tariq", "Uma", "Vera", "Wen", "Xavier", "Yusuf", "Zoe", "Caroline", "Melanie",
    "Gina", "Deborah", "Jolene", "Audrey", "Andrew", "John", "Tim", "Joanna", "Nate",
)


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


def batches(texts: Sequence[str]) -> Iterator[tuple[int, int]]:
    """[start, end) ranges of at most BATCH_MESSAGES messages and BATCH_TOKENS tokens."""
    start, tokens = 0, 0
    for i, text in enumerate(texts):
        n = count_tokens(text)
        if i > start and (i - start >= BATCH_MESSAGES or tokens + n > BATCH_TOKENS):
            yield start, i
            start, tokens = i, 0
        tokens += n
    if start < len(texts):
        yield start, len(texts)


class ComposedEmbedder:
    """The real embedder, or (once ``compose`` is on) sums of precomputed sentence vectors.

    It keeps the real embedder's name so the data dir stays valid for ``memos serve``.
    Texts it does not know always go to the real embedder, as do queries.
    """

    def __init__(
        self,
        real: Embedder,
        texts: Sequence[str],
        parts: Sequence[tuple[int, int]],
        sentences: Sequence[str],
    ) -> None:
        self.real = real
        self.compose = False
        self._parts = dict(zip(texts, parts, strict=True))
        self._sentences = sentences
        self._sentence_vecs: Vectors | None = None
        self.embedded_real = 0

    @property
    def name(self) -> str:
        return self.real.name

    @property
    def n_sentences(self) -> int:
        return len(self._sentences)

    @property
    def dim(self) -> int:
        return self.real.dim

    def prepare(self) -> float:
        """Embed every sentence once with the real model; returns the seconds it took."""
        started = time.perf_counter()
        self._sentence_vecs = self.real.embed(list(self._sentences))
        return time.perf_counter() - started

    def embed(self, texts: list[str]) -> Vectors:
        vecs = self._sentence_vecs
        if not self.compose or vecs is None or any(t not in self._parts for t in texts):
            self.embedded_real += len(texts)
            return self.real.embed(texts)
        idx = np.asarray([self._parts[t] for t in texts], np.int64)
        summed = vecs[idx[:, 0]] + vecs[idx[:, 1]]
        out: Vectors = (summed / np.linalg.norm(summed, axis=1, keepdims=True)).astype(np.float32)
        return out

    def embed_query(self, text: str) -> Vectors:
        return self.real.embed_query(text)


# ------------------------------------------------------------------- run
def _ingest(
    svc: MemoryService,
    texts: Sequence[str],
    embedder: ComposedEmbedder,
    exact_messages: int,
    progress: Progress,
) -> dict[str, Any]:
    timed_exact = 0.0
    timed_all = 0.0
    done = 0
    next_report = PROGRESS_EVERY
    for b, (start, end) in enumerate(batches(texts)):
        if start >= exact_messages and not embedder.compose:
            progress(f"embedding {embedder.n_sentences} distinct sentences for the rest")
            took = embedder.prepare()
            progress(f"  done in {took:.1f} s; composed vectors from here on")
            embedder.compose = True
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
        done = end
        if done >= next_report:
            progress(f"ingested {done}/{len(texts)} ({done / timed_all:.0f} msgs/s so far)")
            next_report += PROGRESS_EVERY
    exact = min(exact_messages, len(texts))
    return {
        "messages": len(texts),
        "exact_embedder_messages": exact,
        "exact_msgs_per_s": round(exact / timed_exact, 1) if timed_exact else None,
        "composed_msgs_per_s": (
            round((len(texts) - exact) / (timed_all - timed_exact), 1)
            if timed_all > timed_exact else None
        ),
        "seconds": round(timed_all, 1),
    }


def _embed_baseline(real: Embedder, texts: Sequence[str]) -> float:
    """Raw embedder texts/s on the same kind of text (one big call, length-bucketed)."""
    sample = list(texts[:1000])
    t0 = time.perf_counter()
    real.embed(sample)
    return len(sample) / (time.perf_counter() - t0)


def _load_matrix(settings: Settings) -> Vectors:
    """The tenant's vectors straight from SQLite, for the numpy baseline."""
    conn = sqlite3.connect(settings.db_path)
    try:
        blobs = [
            r[0]
            for r in conn.execute(
                "SELECT vec FROM memory_vectors WHERE cube_id = ? ORDER BY rowid", (USER,)
            )
        ]
    finally:
        conn.close()
    mat: Vectors = np.frombuffer(b"".join(blobs), np.float32).reshape(len(blobs), -1).copy()
    return mat


def _numpy_topk(mat: Vectors, q: Vectors, k: int) -> list[int]:
    scores = mat @ q
    top = np.argpartition(-scores, k - 1)[:k]
    return [int(i) for i in top[np.argsort(-scores[top])]]


def run_scale(
    n: int = 100_000,
    *,
    n_queries: int = 300,
    data_path: Path,
    exact_messages: int = 5_000,
    progress: Progress = log_progress,
    data_dir: Path | None = None,
) -> dict[str, Any]:
    if data_dir is not None:
        return _run(n, n_queries, data_path, exact_messages, progress, data_dir)
    with tempfile.TemporaryDirectory(prefix="memos-scale-") as tmp:
        return _run(n, n_queries, data_path, exact_messages, progress, Path(tmp) / "data")


def _run(
    n: int,
    n_queries: int,
    data_path: Path,
    exact_messages: int,
    progress: Progress,
    data_dir: Path,
) -> dict[str, Any]:
    wall = time.perf_counter()
    sentences = locomo_sentences(data_path)
    texts, parts = make_corpus(sentences, n)
    questions = locomo_questions(data_path)
    queries = random.Random(11).sample(questions, min(n_queries, len(questions)))
    progress(f"corpus: {n} messages from {len(sentences)} sentences; {len(queries)} queries")

    settings = load_settings({"data_dir": data_dir})
    real = build_embedder(settings.embedder)
    embedder = ComposedEmbedder(real, texts, parts, sentences)
    svc = MemoryService.open(settings, embedder=embedder)
    real.embed(["warm up the model"])
    embed_rate = _embed_baseline(real, texts)
    progress(f"raw embedder baseline: {embed_rate:.0f} texts/s")
    ingest = _ingest(svc, texts, embedder, exact_messages, progress)
    ingest["raw_embed_texts_per_s"] = round(embed_rate, 1)
    if ingest["exact_msgs_per_s"]:
        ingest["ratio_exact_ingest_vs_raw_embed"] = round(
            ingest["exact_msgs_per_s"] / embed_rate, 3
        )
    progress(f"ingest: {ingest}")

    scope = Scope(user_id=USER, cube_id=USER)
    rss_before = rss_mb()
    t0 = time.perf_counter()
    svc.search(user_id=USER, query=queries[0], limit=10)
    first_search_s = time.perf_counter() - t0
    rss_loaded = rss_mb()
    progress(f"first search (loads the index) {first_search_s * 1000:.0f} ms; RSS {rss_loaded} MiB")

    mat = _load_matrix(settings)
    pool = max(settings.search.candidate_pool, 25 * 4)
    stages: dict[str, list[float]] = {
        k: [] for k in ("search_limit10", "search_limit25_rel0", "embed_query",
                        "vector_search", "text_search", "numpy_exact_scan")
    }
    overlap: list[float] = []
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        qvec = svc.embedder.embed_query(q)
        t1 = time.perf_counter()
        hits = svc.store.vector_search(scope, qvec, pool, None)
        t2 = time.perf_counter()
        svc.store.text_search(scope, q, pool, None)
        t3 = time.perf_counter()
        top = _numpy_topk(mat, qvec, pool)
        t4 = time.perf_counter()
        svc.search(user_id=USER, query=q, limit=10)
        t5 = time.perf_counter()
        svc.search(user_id=USER, query=q, limit=25, relativity=0)
        t6 = time.perf_counter()
        for key, dt in zip(stages, (t5 - t4, t6 - t5, t1 - t0, t2 - t1, t3 - t2, t4 - t3),
                           strict=True):
            stages[key].append(dt)
        if hits:  # the store's exact scan and numpy's must agree on the top score
            overlap.append(float(abs(hits[0].score - float(mat[top[0]] @ qvec)) < 1e-4))
        if (i + 1) % 100 == 0:
            progress(f"searched {i + 1}/{len(queries)}")
    svc.close()
    latency = {k: latency_stats(v) for k, v in stages.items()}
    numpy_p50 = latency["numpy_exact_scan"]["p50_ms"]
    ratios = {
        "vector_search_vs_numpy_p50": round(latency["vector_search"]["p50_ms"] / numpy_p50, 2),
        "search_limit10_vs_numpy_p50": round(latency["search_limit10"]["p50_ms"] / numpy_p50, 2),
    }
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    del mat

    progress("starting memos serve on the same data dir")
    server_info: dict[str, Any] = {}
    with ServerProcess(data_dir, log_path=data_dir.parent / "server.log") as server:
        server_info["rss_mb_started"] = _round(server.rss_mb())
        client = CloudClient(server.url)
        try:
            t0 = time.perf_counter()
            client.search(USER, queries[0], 10)
            server_info["first_search_ms"] = round((time.perf_counter() - t0) * 1000, 1)
            server_info["rss_mb_loaded"] = _round(server.rss_mb())
            http: list[float] = []
            for q in queries[:HTTP_QUERIES]:
                t0 = time.perf_counter()
                client.search(USER, q, 10)
                http.append(time.perf_counter() - t0)
        finally:
            client.close()
        server_info["rss_mb_after_searches"] = _round(server.rss_mb())
        server_info["http_search_limit10"] = latency_stats(http)
    progress(f"server: {server_info}")

    return {
        "benchmark": "search-at-scale",
        "machine": machine_info(),
        "config": {
            "n_memories": n,
            "queries": len(queries),
            "candidate_pool": pool,
            "embedder": real.name,
            "exact_embedder_messages": min(exact_messages, n),
            "vectors_for_the_rest": "normalised sum of real sentence vectors"
            if exact_messages < n else "real embedder",
        },
        "ingest": ingest,
        "index": {
            "first_search_ms": round(first_search_s * 1000, 1),
            "rss_mb_before_load": _round(rss_before),
            "rss_mb_loaded": _round(rss_loaded),
            "peak_rss_mb_process": round(peak_rss, 1),
        },
        "latency": latency,
        "ratios": ratios,
        "store_matches_numpy_top1": round(sum(overlap) / len(overlap), 4) if overlap else None,
        "server": server_info,
        "total_seconds": round(time.perf_counter() - wall, 1),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def format_table(results: dict[str, Any]) -> str:
    lat = results["latency"]
    lines = [
        f"search at scale: {results['config']['n_memories']} memories in one tenant, "
        f"{results['config']['queries']} queries",
        f"{'stage':<24}{'p50 ms':>9}{'p95 ms':>9}{'mean ms':>9}",
    ]
    for key, s in lat.items():
        lines.append(f"{key:<24}{s['p50_ms']:>9.2f}{s['p95_ms']:>9.2f}{s['mean_ms']:>9.2f}")
    r = results["ratios"]
    lines.append(
        f"vector_search / numpy p50 = {r['vector_search_vs_numpy_p50']}, "
        f"search(limit 10) / numpy p50 = {r['search_limit10_vs_numpy_p50']}"
    )
    ing = results["ingest"]
    lines.append(
        f"ingest: {ing['exact_msgs_per_s']} msgs/s with the real embedder "
        f"(first {ing['exact_embedder_messages']}), raw embedder {ing['raw_embed_texts_per_s']} "
        f"texts/s, composed-vector ingest {ing['composed_msgs_per_s']} msgs/s"
    )
    idx, srv = results["index"], results["server"]
    lines.append(
        f"in-process RSS: {idx['rss_mb_before_load']} MiB before / {idx['rss_mb_loaded']} MiB "
        f"after loading the index (first search {idx['first_search_ms']} ms)"
    )
    http = srv.get("http_search_limit10", {})
    lines.append(
        f"memos serve RSS: {srv.get('rss_mb_started')} MiB started, {srv.get('rss_mb_loaded')} "
        f"MiB after loading, {srv.get('rss_mb_after_searches')} MiB after searches; "
        f"HTTP search p50 {http.get('p50_ms')} ms, p95 {http.get('p95_ms')} ms"
    )
    lines.append(f"total {results['total_seconds']} s")
    return "\n".join(lines)
