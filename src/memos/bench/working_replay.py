"""Does a working set help? A time-ordered LoCoMo replay through an in-process service.

Each LoCoMo sample is one user (``user_id = sample_id``), replayed session by
session into a fresh :class:`~memos.service.MemoryService` (MiniLM embedder,
temp data dir, settings from ``load_settings`` with an empty environment so
runs are hermetic). After each session:

1. its new memories go to ``observe_turns``, two turns (one exchange) per call
   as a client adding after each reply would (key ``(sample_id, None)``: the
   questions carry no conversation id, so the cube-wide set is the one consulted);
2. next-scene preload: the store's nearest memories to each of the session's
   last ``PRELOAD_TURNS`` turns (vector search, ``PRELOAD_K`` each, the session's
   own memories excluded), best ``PRELOAD_K`` by cosine, go to ``preload``;
3. the questions placed at this session are asked. Placement rules (both run):
   ``earliest``: a question is asked right after the session holding its latest
   evidence turn (the first moment it is answerable; every LoCoMo question with
   known evidence can be placed, so none falls back to the end); ``final``: every
   question is asked after the last session (what a later user visit looks like).
   Per question: the working set's membership, ``lookup(k=10)``, the full
   ``svc.search`` (limit 10, relativity 0) and the searcher alone (same query
   vector) are measured; then ``observe_search`` gets the full search's hits.

Metrics: working-set hit rate (a question's evidence memory is in the set, and
in ``lookup(k=10)``), evidence recall@10 of lookup alone vs full search, the
hit rate a random set of the same size would reach (``chance``), latency
percentiles (lookup vs full search vs searcher-only), a fast-path table (answer
from the set when its top cosine clears a threshold) and the recall of full
search with the set's lookup hits boosted inside the hybrid candidate pool.

Evidence ``dia_id``s map to memories through ``sources[].message_id`` (the
replay sends ``message_id = dia_id``, as :mod:`memos.bench.locomo` does).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from memos.bench import Progress, latency_stats, log_progress, machine_info
from memos.bench.locomo import DEFAULT_DATA, Question, Sample, load_samples
from memos.domain.filters import Node
from memos.domain.models import MessageInput, Scope
from memos.embedders import build_embedder
from memos.embedders.base import Embedder, Vectors
from memos.search.hybrid import Candidate, CandidatePool, HybridSearcher
from memos.service import MemoryService
from memos.settings import load_settings
from memos.store.base import VectorHit
from memos.working import Observed, WorkingConfig, WorkingMemory

DEFAULT_OUT = Path("bench/results/working_memory.json")
K = 10
PRELOAD_TURNS = 4
PRELOAD_K = 8
# Turns per observe_turns call: the session is stored in one add, but observed
# as a client adding after each exchange would feed it.
EXCHANGE = 2
# Fused-score multiplier for working-set members inside the hybrid pool (the
# same form as the searcher's conversation boost).
POOL_BOOST = 0.15
THRESHOLDS = (0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)
PLACEMENTS = ("earliest", "final")
PRIMARY = "heat-32"


@dataclass(frozen=True)
class Variant:
    name: str
    config: WorkingConfig
    preload: bool = True


def default_variants() -> list[Variant]:
    """The proposed default, one-knob ablations and a pure-recency baseline."""
    base = WorkingConfig()
    return [
        Variant(PRIMARY, base),
        Variant("no-preload", base, preload=False),
        Variant("preload-gain-1", replace(base, preload_gain=1.0)),
        Variant("admit-0", replace(base, search_admit=0)),
        Variant("admit-10", replace(base, search_admit=10)),
        Variant("no-topic", replace(base, topic_weight=0.0)),
        Variant("no-usage", replace(base, usage_weight=0.0)),
        Variant("halflife-2", replace(base, half_life=2.0)),
        Variant("halflife-4", replace(base, half_life=4.0)),
        Variant("halflife-16", replace(base, half_life=16.0)),
        Variant("halflife-32", replace(base, half_life=32.0)),
        Variant("halflife-128", replace(base, half_life=128.0)),
        Variant("size-16", replace(base, size=16)),
        Variant("size-64", replace(base, size=64)),
        Variant(
            "recency-32",
            replace(base, search_gain=0.0, preload_gain=0.0, topic_weight=0.0, usage_weight=0.0),
            preload=False,
        ),
    ]


# ------------------------------------------------------------------ search
class BoostedSearcher(HybridSearcher):
    """The hybrid searcher with working-set hits consulted inside its pool.

    Members already in the candidate pool get their fused score multiplied by
    ``1 + boost``; members missing from it enter ranked by their cosine among
    the vector hits (as superseded versions do). ``working`` is set per call
    (benchmark only: not thread-safe).
    """

    def __init__(self, *args: Any, boost: float = POOL_BOOST, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.boost = boost
        self.working: Mapping[str, float] = {}

    def candidates(
        self,
        scope: Scope,
        query: str,
        *,
        qvec: Vectors,
        limit: int,
        flt: Node | None = None,
        conversation_id: str | None = None,
        text_hits: Future[list[VectorHit]] | None = None,
    ) -> CandidatePool | None:
        pool = super().candidates(
            scope, query, qvec=qvec, limit=limit, flt=flt, conversation_id=conversation_id,
            text_hits=text_hits,
        )
        if pool is None or not self.working:
            return pool
        for c in pool.ordered:
            if c.memory_id in self.working:
                c.fused *= 1.0 + self.boost
        missing = [m for m in self.working if m not in pool.items]
        if missing:
            items = {m.id: m for m in self.store.get_memories(scope, missing)}
            found = [m for m in missing if m in items]
            vecs = list(self.store.vectors(scope, found)) if found else []
            cosines = sorted((c.cosine or 0.0 for c in pool.ordered), reverse=True)
            for memory_id, vec in zip(found, vecs, strict=True):
                cos = self.working[memory_id]
                rank = sum(1 for c in cosines if c > cos)
                fused = self.settings.vector_weight / (self.settings.rrf_k + rank + 1)
                pool.ordered.append(
                    Candidate(memory_id, fused=fused * (1 + self.boost), cosine=cos)
                )
                pool.items[memory_id] = items[memory_id]
                pool.vectors[memory_id] = vec
        return pool


# ----------------------------------------------------------------- tallies
@dataclass
class VariantTally:
    """Per-question outcomes of one working-set variant."""

    in_set_any: list[float] = field(default_factory=list)
    in_set_all: list[float] = field(default_factory=list)
    lookup_any: list[float] = field(default_factory=list)
    lookup_recall: list[float] = field(default_factory=list)
    chance: list[float] = field(default_factory=list)
    lookup_s: list[float] = field(default_factory=list)
    observe_s: list[float] = field(default_factory=list)
    top_cosine: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "questions": len(self.in_set_any),
            "in_set_any": _mean(self.in_set_any),
            "in_set_all": _mean(self.in_set_all),
            "lookup10_any": _mean(self.lookup_any),
            "lookup10_recall": _mean(self.lookup_recall),
            "chance_in_set": _mean(self.chance),
            "lookup_latency": _us(self.lookup_s),
            "observe_search_latency": _us(self.observe_s),
        }


@dataclass
class ReplayTally:
    variants: dict[str, VariantTally]
    full_any: list[float] = field(default_factory=list)
    full_recall: list[float] = field(default_factory=list)
    boosted_recall: list[float] = field(default_factory=list)
    embed_s: list[float] = field(default_factory=list)
    search_s: list[float] = field(default_factory=list)
    searcher_s: list[float] = field(default_factory=list)
    preload_s: list[float] = field(default_factory=list)
    categories: list[int] = field(default_factory=list)
    memories: int = 0


def _mean(xs: Sequence[float]) -> float | None:
    return round(float(np.mean(xs)), 4) if xs else None


def _us(seconds: Sequence[float]) -> dict[str, float]:
    if not seconds:
        return {"n": 0}
    us = np.asarray(seconds, np.float64) * 1e6
    return {
        "n": len(us),
        "p50_us": round(float(np.percentile(us, 50)), 1),
        "p95_us": round(float(np.percentile(us, 95)), 1),
        "mean_us": round(float(us.mean()), 1),
    }


def _recall(found: set[str], evidence: Sequence[str]) -> float:
    return sum(1 for e in evidence if e in found) / len(evidence)


@contextmanager
def _timer(into: list[float]) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    into.append(time.perf_counter() - t0)


# ------------------------------------------------------------------ replay
def placements(sample: Sample, rule: str) -> dict[int, list[Question]]:
    """Questions by the index of the session after which they are asked.

    ``earliest``: after the session holding the question's latest evidence
    turn; a question whose evidence cannot be located (none in LoCoMo once
    evidence is normalised) goes after the last session, as under ``final``.
    """
    last = len(sample.sessions) - 1
    where = {t.dia_id: i for i, s in enumerate(sample.sessions) for t in s.turns}
    out: dict[int, list[Question]] = {}
    for q in sample.questions:
        idx = last
        if rule == "earliest" and all(e in where for e in q.evidence):
            idx = max(where[e] for e in q.evidence)
        out.setdefault(idx, []).append(q)
    return out


def replay(
    samples: Sequence[Sample],
    embedder: Embedder,
    rule: str,
    variants: Sequence[Variant],
    progress: Progress,
) -> ReplayTally:
    tally = ReplayTally({v.name: VariantTally() for v in variants})
    with tempfile.TemporaryDirectory(prefix="memos-working-") as tmp:
        settings = load_settings({"data_dir": Path(tmp), "embedder": {"kind": "minilm"}}, {})
        svc = MemoryService.open(settings, embedder=embedder)
        boosted = BoostedSearcher(svc.store, embedder, settings.search)
        sets = {v.name: WorkingMemory(v.config) for v in variants}
        try:
            for sample in samples:
                started = time.perf_counter()
                _replay_sample(svc, boosted, sample, rule, variants, sets, tally)
                progress(
                    f"[{rule}] {sample.sample_id}: {len(sample.sessions)} sessions, "
                    f"{len(sample.questions)} questions in {time.perf_counter() - started:.1f} s"
                )
        finally:
            svc.close()
    return tally


def _replay_sample(
    svc: MemoryService,
    boosted: BoostedSearcher,
    sample: Sample,
    rule: str,
    variants: Sequence[Variant],
    sets: Mapping[str, WorkingMemory],
    tally: ReplayTally,
) -> None:
    user = sample.sample_id
    scope = Scope.for_user(user)
    key = (user, None)
    by_session = placements(sample, rule)
    dia_of: dict[str, str] = {}  # memory id -> dia id
    n_memories = 0
    for idx, session in enumerate(sample.sessions):
        added = svc.add(
            user_id=user,
            conversation_id=session.conversation_id,
            messages=[
                MessageInput(
                    role=t.role, content=t.content, chat_time=session.chat_time, message_id=t.dia_id
                )
                for t in session.turns
            ],
        )
        ids = added.memory_ids
        n_memories += len(ids)
        for item in svc.store.get_memories(scope, ids):
            for src in item.sources:
                if src.message_id:
                    dia_of[item.id] = src.message_id
        vectors = svc.store.vectors(scope, ids)
        # One event per exchange, as a chat client adding after every reply would.
        for start in range(0, len(ids), EXCHANGE):
            part = slice(start, start + EXCHANGE)
            for v in variants:
                sets[v.name].observe_turns(key, ids[part], vectors[part])
        with _timer(tally.preload_s):
            neighbours = _neighbours(svc, scope, vectors[-PRELOAD_TURNS:], set(ids))
        for v in variants:
            if v.preload:
                sets[v.name].preload(key, neighbours)
        for q in by_session.get(idx, []):
            _ask(svc, boosted, scope, key, q, variants, sets, tally, dia_of, n_memories)
    tally.memories += n_memories


def _neighbours(
    svc: MemoryService, scope: Scope, last: Vectors, exclude: set[str]
) -> list[Observed]:
    """The store's nearest memories to the latest turns (next-scene prediction)."""
    best: dict[str, float] = {}
    for row in last:
        for hit in svc.store.vector_search(scope, row, PRELOAD_K + len(exclude), None):
            if hit.memory_id not in exclude:
                best[hit.memory_id] = max(best.get(hit.memory_id, -1.0), hit.score)
    top = sorted(best.items(), key=lambda kv: -kv[1])[:PRELOAD_K]
    if not top:
        return []
    vecs = svc.store.vectors(scope, [m for m, _ in top])
    return [Observed(m, vec, s) for (m, s), vec in zip(top, vecs, strict=True)]


def _ask(
    svc: MemoryService,
    boosted: BoostedSearcher,
    scope: Scope,
    key: tuple[str, None],
    q: Question,
    variants: Sequence[Variant],
    sets: Mapping[str, WorkingMemory],
    tally: ReplayTally,
    dia_of: Mapping[str, str],
    n_memories: int,
) -> None:
    with _timer(tally.embed_s):
        qvec = svc.embedder.embed_query(q.text)
    with _timer(tally.search_s):
        hits = svc.search(user_id=scope.user_id, query=q.text, limit=K, relativity=0)
    with _timer(tally.searcher_s):
        svc.searcher.search(scope, q.text, qvec=qvec, limit=K, relativity=0.0)
    full = {dia_of.get(h.memory.id, "") for h in hits}
    tally.full_any.append(float(bool(full & set(q.evidence))))
    tally.full_recall.append(_recall(full, q.evidence))
    tally.categories.append(q.category)
    hit_ids = [h.memory.id for h in hits]
    hit_vecs = svc.store.vectors(scope, hit_ids) if hit_ids else np.zeros((0, 1), np.float32)
    observed = [
        Observed(m, vec, float(vec @ qvec)) for m, vec in zip(hit_ids, hit_vecs, strict=True)
    ]
    for v in variants:
        wm, t = sets[v.name], tally.variants[v.name]
        members = {dia_of.get(m, "") for m in wm.members(key)}
        t.in_set_any.append(float(bool(members & set(q.evidence))))
        t.in_set_all.append(float(set(q.evidence) <= members))
        t.chance.append(min(1.0, v.config.size / max(n_memories, 1)))
        with _timer(t.lookup_s):
            looked = wm.lookup(key, qvec, K)
        found = {dia_of.get(m, "") for m, _ in looked}
        t.lookup_any.append(float(bool(found & set(q.evidence))))
        t.lookup_recall.append(_recall(found, q.evidence))
        t.top_cosine.append(looked[0][1] if looked else -1.0)
        if v.name == PRIMARY:
            boosted.working = dict(looked)
            got = boosted.search(scope, q.text, qvec=qvec, limit=K, relativity=0.0)
            tally.boosted_recall.append(
                _recall({dia_of.get(h.memory.id, "") for h in got}, q.evidence)
            )
        with _timer(t.observe_s):
            wm.observe_search(key, qvec, observed)


# ----------------------------------------------------------------- report
def fast_path_table(
    top_cosine: Sequence[float], lookup: Sequence[float], full: Sequence[float]
) -> list[dict[str, Any]]:
    """Answer from the working set when its top cosine clears ``t``, else search.

    Per threshold: the share of questions taking the fast path, recall@10 of the
    set vs full search on those questions, and overall recall of the mix.
    """
    cos = np.asarray(top_cosine)
    look, fullr = np.asarray(lookup), np.asarray(full)
    rows = []
    for t in THRESHOLDS:
        fast = cos >= t
        n = int(fast.sum())
        mixed = np.where(fast, look, fullr)
        rows.append(
            {
                "threshold": t,
                "fast_share": round(n / len(cos), 4) if len(cos) else None,
                "fast_recall_set": round(float(look[fast].mean()), 4) if n else None,
                "fast_recall_full": round(float(fullr[fast].mean()), 4) if n else None,
                "mixed_recall": round(float(mixed.mean()), 4) if len(cos) else None,
            }
        )
    return rows


def isolated_lookup(dim: int, size: int, repeats: int = 5000) -> dict[str, float]:
    """Lookup latency on a full set with nothing else running (no embedder
    threads or store work competing for the cores), for comparison."""
    rng = np.random.default_rng(0)
    wm = WorkingMemory(WorkingConfig(size=size))
    vecs = rng.standard_normal((size, dim)).astype(np.float32)
    wm.observe_turns(("bench", None), [f"m{i}" for i in range(size)], vecs)
    query = vecs[0]
    seconds: list[float] = []
    for _ in range(repeats):
        with _timer(seconds):
            wm.lookup(("bench", None), query, K)
    return _us(seconds)


def summarise(tally: ReplayTally) -> dict[str, Any]:
    search = latency_stats(tally.search_s)
    searcher = latency_stats(tally.searcher_s)
    primary = tally.variants[PRIMARY]
    lookup = _us(primary.lookup_s)
    ratio = (
        round(lookup["p50_us"] / 1000 / search["p50_ms"], 6)
        if lookup.get("p50_us") and search["p50_ms"]
        else None
    )
    return {
        "questions": len(tally.full_recall),
        "memories": tally.memories,
        "full_search": {
            "recall10": _mean(tally.full_recall),
            "any10": _mean(tally.full_any),
        },
        "boosted_search": {"boost": POOL_BOOST, "recall10": _mean(tally.boosted_recall)},
        "variants": {name: t.summary() for name, t in tally.variants.items()},
        "latency": {
            "embed_query": latency_stats(tally.embed_s),
            "svc_search": search,
            "searcher_only": searcher,
            "lookup": lookup,
            "preload_fetch": latency_stats(tally.preload_s),
            "lookup_p50_over_search_p50": ratio,
        },
        "fast_path": fast_path_table(primary.top_cosine, primary.lookup_recall, tally.full_recall),
    }


def run(
    samples: Sequence[Sample],
    *,
    rules: Sequence[str] = PLACEMENTS,
    variants: Sequence[Variant] | None = None,
    progress: Progress = log_progress,
    data_path: Path | None = None,
) -> dict[str, Any]:
    variants = list(variants or default_variants())
    embedder = build_embedder(load_settings({"embedder": {"kind": "minilm"}}, {}).embedder)
    embedder.embed(["warm up the model"])
    results: dict[str, Any] = {}
    for rule in rules:
        results[rule] = summarise(replay(samples, embedder, rule, variants, progress))
    isolated = isolated_lookup(embedder.dim, WorkingConfig().size)
    return {
        "benchmark": "locomo-working-memory-replay",
        "machine": machine_info(),
        "config": {
            "data": str(data_path) if data_path else None,
            "samples": [s.sample_id for s in samples],
            "embedder": embedder.name,
            "k": K,
            "key": "(sample_id, None): cube-wide set",
            "preload": f"top {PRELOAD_K} store neighbours of the last {PRELOAD_TURNS} turns",
            "variants": {v.name: {**vars(v.config), "preload": v.preload} for v in variants},
            "events": f"one per {EXCHANGE} turns observed (observe_turns), one per question "
            "(observe_search); preload does not tick",
        },
        "placements": results,
        "lookup_isolated": isolated,
        "notes": [
            "earliest: a question is asked right after the session with its latest evidence "
            "turn; final: all questions after the last session",
            "in_set_any: some evidence turn's memory is in the working set at query time; "
            "in_set_all: every one is; lookup10_*: among lookup(k=10)",
            "recall10: share of a question's evidence turns among the 10 results, averaged",
            "chance_in_set: size / memories stored at query time (a random set's hit "
            "rate for one evidence turn)",
            "svc_search includes embedding the query; searcher_only and lookup reuse one "
            "query vector, so a fast path saves searcher_only - lookup, not svc_search",
            "all categories (1-5) with evidence are counted",
        ],
    }


def format_table(results: dict[str, Any]) -> str:
    lines: list[str] = []
    for rule, r in results["placements"].items():
        lines.append(
            f"[{rule}] {r['questions']} questions, {r['memories']} memories; full search "
            f"recall@10 {r['full_search']['recall10']}, any@10 {r['full_search']['any10']}; "
            f"boosted pool recall@10 {r['boosted_search']['recall10']}"
        )
        head = (
            f"  {'variant':<22}{'in_set':>8}{'all':>7}{'look@10':>9}{'recall':>8}"
            f"{'chance':>8}{'p50 us':>8}{'p95 us':>8}"
        )
        lines.append(head)
        for name, v in r["variants"].items():
            lat = v["lookup_latency"]
            lines.append(
                f"  {name:<22}{v['in_set_any']:>8}{v['in_set_all']:>7}{v['lookup10_any']:>9}"
                f"{v['lookup10_recall']:>8}{v['chance_in_set']:>8}"
                f"{lat.get('p50_us', 0):>8}{lat.get('p95_us', 0):>8}"
            )
        lat = r["latency"]
        lines.append(
            f"  latency p50/p95 ms: svc.search {lat['svc_search']['p50_ms']}/"
            f"{lat['svc_search']['p95_ms']}, searcher {lat['searcher_only']['p50_ms']}/"
            f"{lat['searcher_only']['p95_ms']}, embed {lat['embed_query']['p50_ms']}/"
            f"{lat['embed_query']['p95_ms']}; lookup {lat['lookup']['p50_us']}/"
            f"{lat['lookup']['p95_us']} us (p50 ratio {lat['lookup_p50_over_search_p50']})"
        )
        lines.append("  fast path (primary): t  share  set@10  full@10  mixed")
        for row in r["fast_path"]:
            lines.append(
                f"    {row['threshold']:<5}{row['fast_share']!s:>7}{row['fast_recall_set']!s:>8}"
                f"{row['fast_recall_full']!s:>9}{row['mixed_recall']!s:>7}"
            )
    iso = results["lookup_isolated"]
    lines.append(
        f"lookup alone (full 32-slot set, idle): p50 {iso['p50_us']} us, p95 {iso['p95_us']} us"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--limit-samples", type=int, default=None)
    parser.add_argument("--placement", choices=[*PLACEMENTS, "both"], default="both")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    samples = load_samples(args.data, limit_samples=args.limit_samples)
    rules = PLACEMENTS if args.placement == "both" else (args.placement,)
    results = run(
        samples,
        rules=rules,
        data_path=args.data,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(format_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
