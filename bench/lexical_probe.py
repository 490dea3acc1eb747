"""Probe of the in-memory BM25 index (CubeLexicon) against FTS5 on LoCoMo-like text.

One cube of ``--n`` messages (``make_corpus``: "{Name}: {s_i} {s_j}") is indexed
and ``--queries`` LoCoMo questions are searched with k = the hybrid search's
candidate pool (100). Reported, all in the same run on the same machine:

* lexicon: build time (tokenising included, stem cache cold), search p50/p95
  (plain, with an allowed filter of half the rowids, and after removing 20% and
  replacing 5%), index memory (tracemalloc, second build with a warm stem cache);
* FTS5 baseline: a ``porter unicode61`` table shaped like the store's
  ``memory_fts`` and its OR-query ``ORDER BY bm25() LIMIT k`` (no join to
  ``memories``, so the store's real cost is a little higher);
* reference: plain-Python brute-force BM25 over the first 10k messages, whose
  top-10 also checks the lexicon's scores.

Usage: python bench/lexical_probe.py [--n 100000] [--queries 300] [--out FILE]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import re
import sqlite3
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from memos.bench import latency_stats, machine_info
from memos.bench.scale import locomo_questions, locomo_sentences, make_corpus
from memos.store.sqlite.lexical_index import CubeLexicon
from memos.text import lexical
from memos.text.lexical import lexical_tokens
from memos.text.tokens import STOPWORDS, has_cjk, segment_cjk

DEFAULT_LOCOMO = Path("/work/shared/bench/locomo/locomo_public.json")
K = 100


def query_terms(text: str) -> list[str]:
    """Distinct content words for the FTS5 baseline's OR-query (FTS5 stems them itself)."""
    source = segment_cjk(text) if has_cjk(text) else text
    words = re.findall(r"[^\W_]+", source.lower())
    return list(dict.fromkeys(w for w in words if w not in STOPWORDS and len(w) > 1))[:32]


def timed(fn: Callable[[str], object], queries: list[str]) -> dict[str, float]:
    for q in queries[:10]:
        fn(q)
    took = []
    for q in queries:
        t0 = time.perf_counter()
        fn(q)
        took.append(time.perf_counter() - t0)
    return latency_stats(took)


def build(texts: list[str]) -> tuple[CubeLexicon, float]:
    lex = CubeLexicon(0)
    t0 = time.perf_counter()
    lex.add(range(1, len(texts) + 1), texts)
    return lex, time.perf_counter() - t0


def fts5(texts: list[str], queries: list[str]) -> dict[str, Any]:
    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE VIRTUAL TABLE memory_fts USING fts5("
        "tenant, body, tokenize = 'porter unicode61 remove_diacritics 2')"
    )
    t0 = time.perf_counter()
    db.executemany(
        "INSERT INTO memory_fts (rowid, tenant, body) VALUES (?, 'cube', ?)",
        ((i + 1, t) for i, t in enumerate(texts)),
    )
    db.commit()
    build_s = time.perf_counter() - t0

    def search(q: str) -> list[int]:
        terms = query_terms(q)
        if not terms:
            return []
        match = 'tenant : "cube" AND (' + " OR ".join(f'"{t}"' for t in terms) + ")"
        rows = db.execute(
            "SELECT rowid, bm25(memory_fts, 0.0, 1.0) AS s FROM memory_fts "
            "WHERE memory_fts MATCH ? ORDER BY s LIMIT ?",
            (match, K),
        ).fetchall()
        return [int(r[0]) for r in rows]

    return {"build_s": round(build_s, 3), "search": timed(search, queries), "fn": search}


def brute_force(texts: list[str]) -> Callable[[str], list[tuple[int, float]]]:
    """Textbook BM25 in plain Python: score every document for every query."""
    docs = [Counter(lexical_tokens(t)) for t in texts]
    lens = [sum(c.values()) for c in docs]
    n, avgdl = len(docs), sum(lens) / len(docs)

    def search(q: str) -> list[tuple[int, float]]:
        terms = list(dict.fromkeys(lexical_tokens(q)))
        dfs = {t: sum(1 for d in docs if t in d) for t in terms}
        scores = []
        for i, (d, dl) in enumerate(zip(docs, lens, strict=True)):
            s = 0.0
            for t in terms:
                tf = d.get(t, 0)
                if tf:
                    idf = math.log(1 + (n - dfs[t] + 0.5) / (dfs[t] + 0.5))
                    s += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * dl / avgdl))
            if s > 0:
                scores.append((i + 1, s))
        scores.sort(key=lambda h: (-h[1], h[0]))
        return scores[:K]

    return search


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--locomo", type=Path, default=DEFAULT_LOCOMO)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    texts, _ = make_corpus(locomo_sentences(args.locomo), args.n)
    queries = locomo_questions(args.locomo)[: args.queries]
    out: dict[str, Any] = {"machine": machine_info(), "n": args.n, "queries": len(queries), "k": K}

    lexical._cache.clear()
    gc.collect()
    lex, build_s = build(texts)
    out["lexicon_build_s"] = round(build_s, 3)
    out["stem_cache_words"] = len(lexical._cache)
    out["lexicon_search"] = timed(lambda q: lex.search(q, K), queries)
    out["lexicon_search_k10"] = timed(lambda q: lex.search(q, 10), queries)
    rng = np.random.default_rng(1)
    half = np.sort(rng.choice(np.arange(1, args.n + 1), args.n // 2, replace=False))
    out["lexicon_search_allowed_half"] = timed(lambda q: lex.search(q, K, half), queries)

    del lex
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    lex, _ = build(texts)  # stem cache warm: only the index is counted
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    out["lexicon_bytes"] = used
    out["lexicon_bytes_per_doc"] = round(used / args.n, 1)
    out["avg_tokens_per_doc"] = round(float(lex._live_len) / len(lex), 2)
    out["vocabulary"] = len(lex._vocab)

    pick = random.Random(2)
    ids = list(range(1, args.n + 1))
    t0 = time.perf_counter()
    lex.remove(pick.sample(ids, args.n // 5))
    out["remove_20pct_s"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    for r in pick.sample(ids, args.n // 20):
        lex.replace(r, texts[pick.randrange(args.n)])
    out["replace_5pct_s"] = round(time.perf_counter() - t0, 3)
    out["dead_positions_after_churn"] = lex._dead
    out["lexicon_search_after_churn"] = timed(lambda q: lex.search(q, K), queries)
    t0 = time.perf_counter()
    lex.remove(pick.sample(ids, args.n // 10))  # past 25% dead: compacts
    out["remove_10pct_with_compaction_s"] = round(time.perf_counter() - t0, 3)
    out["dead_positions_after_compaction"] = lex._dead
    out["lexicon_search_after_compaction"] = timed(lambda q: lex.search(q, K), queries)
    del lex

    lex, _ = build(texts)
    fts = fts5(texts, queries)
    search_fts = fts.pop("fn")
    out["fts5"] = fts
    overlap = []
    for q in queries:
        a = {r for r, _ in lex.search(q, 10)}
        b = set(search_fts(q)[:10])
        if a or b:
            overlap.append(len(a & b) / len(a | b))
    out["top10_jaccard_vs_fts5"] = round(float(np.mean(overlap)), 3)

    n_ref = min(10_000, args.n)
    ref = brute_force(texts[:n_ref])
    small, _ = build(texts[:n_ref])
    few = queries[:50]
    out["python_bruteforce_10k"] = timed(ref, few)
    out["lexicon_10k"] = timed(lambda q: small.search(q, K), queries)
    worst = 0.0
    for q in few:
        got, want = small.search(q, 10), ref(q)[:10]
        worst = max([worst, *(abs(g[1] - w[1]) for g, w in zip(got, want, strict=True))])
    out["max_score_diff_vs_bruteforce_10k"] = worst

    print(json.dumps(out, indent=2))
    if args.out:
        args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
