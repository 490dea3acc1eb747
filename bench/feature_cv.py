"""Fit and cross-validate the ordering stage (``memos.search.ordering``) on LoCoMo.

Ingests the public half in-process, takes each question's fused candidate pool
from the real searcher (``HybridSearcher.candidates``, limit 25 as in the
benchmark), computes the five features (``memos.search.hybrid.features``) and
labels each candidate by whether it is an evidence turn. Logistic regressions
(Newton steps, L2) are fitted leaving one conversation out, and the held-out
conversation is ranked with them:

* ``plain``: the five features (light L2, 10);
* ``salience``: the five features plus the candidate's vector (384 weights, the
  salience direction), all under a heavy L2 (3,000) so the direction stays a
  prior that nudges rather than a second retriever.

Prints evidence recall at 200/500/1000 words (categories 1-4; training uses
every question with evidence in the pool, whatever its category) for fused rank
alone, the previous four-feature model, both models cross-validated, and the
weights of every fold. ``--write`` stores the models fitted on all five
conversations, with the held-out figures, in ``src/memos/search/data/ordering.json``.
Run: ``.venv/bin/python bench/feature_cv.py [--write]`` (about 3 minutes).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from memos.bench.locomo import DEFAULT_DATA, Retrieved, budget_recall, load_samples
from memos.domain.models import MessageInput, Scope
from memos.search.hybrid import features
from memos.search.ordering import DATA_FILE, FEATURES
from memos.service import MemoryService
from memos.settings import load_settings

Matrix = npt.NDArray[np.float64]
BUDGETS = (200, 500, 1000)
L2_PLAIN = 10.0
L2_SALIENCE = 3000.0
PREVIOUS_WEIGHTS = (2.287, 3.33, 2.433, 2.83)  # four features, before specifics and salience


@dataclass
class Question:
    got: list[Retrieved]
    x: Matrix  # features
    v: Matrix  # candidate vectors
    y: Matrix  # labels
    wanted: frozenset[str]
    scored: bool  # counts in the overall figure (categories 1-4)
    category: int
    texts: list[str]  # candidate memory texts, for probes that score them another way
    query: str


def fit(x: Matrix, y: Matrix, l2: float, steps: int = 20) -> Matrix:
    """Logistic regression on standardised columns; weights mapped back to raw units."""
    mu, sd = x.mean(0), x.std(0)
    sd[sd < 1e-6] = np.inf  # constant columns (MiniLM has three near-zero dims) weigh nothing
    z = np.hstack([(x - mu) / sd, np.ones((len(x), 1))])
    reg = l2 * np.eye(z.shape[1])  # one L2 for every coefficient, intercept included
    w = np.zeros(z.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-z @ w))
        grad = z.T @ (p - y) + reg @ w
        hess = (z * (p * (1 - p))[:, None]).T @ z + reg + 1e-9 * np.eye(len(w))
        w -= np.linalg.solve(hess, grad)
    return np.asarray(w[:-1] / sd)


def design(q: Question, salience: bool) -> Matrix:
    return np.hstack([q.x, q.v]) if salience else q.x


def collect() -> tuple[dict[str, list[Question]], MemoryService]:
    """Candidate pools per conversation; the service stays open for probes needing its embedder."""
    samples = load_samples(DEFAULT_DATA)
    svc = MemoryService.open(load_settings({"data_dir": tempfile.mkdtemp()}, environ={}))
    data: dict[str, list[Question]] = {}
    for sample in samples:
        for sess in sample.sessions:
            svc.add(
                user_id=sample.sample_id,
                conversation_id=sess.conversation_id,
                messages=[
                    MessageInput(
                        role=t.role,
                        content=t.content,
                        message_id=t.dia_id,
                        chat_time=sess.chat_time,
                    )
                    for t in sess.turns
                ],
            )
        scope = Scope(user_id=sample.sample_id, cube_id=sample.sample_id)
        rows = []
        for q in sample.questions:
            if not q.evidence:
                continue
            qvec = svc.embedder.embed_query(q.text)
            pool = svc.searcher.candidates(scope, q.text, qvec=qvec, limit=25)
            if pool is None:
                continue
            got = [
                Retrieved(
                    len(pool.items[c.memory_id].value.split()),
                    frozenset(s.message_id or "" for s in pool.items[c.memory_id].sources),
                )
                for c in pool.ordered
            ]
            wanted = frozenset(q.evidence)
            rows.append(
                Question(
                    got,
                    np.array(features(pool, q.text)),
                    np.stack([pool.vectors[c.memory_id] for c in pool.ordered]).astype(np.float64),
                    np.array([float(bool(r.sources & wanted)) for r in got]),
                    wanted,
                    q.category != 5,
                    q.category,
                    [pool.items[c.memory_id].value for c in pool.ordered],
                    q.text,
                )
            )
        data[sample.sample_id] = rows
        sys.stderr.write(f"{sample.sample_id}: {len(rows)} questions\n")
    return data, svc


def recall(
    data: dict[str, list[Question]], ids: Sequence[str], score: Callable[[Question], Matrix]
) -> list[float]:
    out = []
    for budget in BUDGETS:
        vals = [
            budget_recall(
                [q.got[i] for i in np.argsort(-score(q), kind="stable")[:25]], q.wanted, budget
            )
            for sid in ids
            for q in data[sid]
            if q.scored
        ]
        out.append(100 * float(np.mean(vals)))
    return out


def by_category(
    data: dict[str, list[Question]], folds: Sequence[Matrix] | None, salience: bool
) -> str:
    """Held-out recall@500 per category (fused rank when ``folds`` is None)."""
    per: dict[int, list[float]] = {}
    for k, sid in enumerate(data):
        for q in data[sid]:
            s = q.x[:, 0] if folds is None else design(q, salience) @ folds[k]
            top = [q.got[i] for i in np.argsort(-s, kind="stable")[:25]]
            per.setdefault(q.category, []).append(budget_recall(top, q.wanted, 500))
    return "  ".join(f"{c}: {100 * np.mean(v):.1f}" for c, v in sorted(per.items()))


def fit_on(data: dict[str, list[Question]], ids: Sequence[str], salience: bool) -> Matrix:
    train = [q for sid in ids for q in data[sid] if q.y.any()]
    x = np.vstack([design(q, salience) for q in train])
    y = np.concatenate([q.y for q in train])
    return fit(x, y, L2_SALIENCE if salience else L2_PLAIN)


def cross_validate(
    data: dict[str, list[Question]], salience: bool
) -> tuple[list[float], list[Matrix]]:
    ids = list(data)
    sums = np.zeros(len(BUDGETS))
    weights = []
    for out in ids:
        w = fit_on(data, [sid for sid in ids if sid != out], salience)
        weights.append(w)
        n = sum(q.scored for q in data[out])
        sums += n * np.array(recall(data, [out], lambda q, w=w: design(q, salience) @ w))
    total = sum(q.scored for sid in ids for q in data[sid])
    return [float(v) for v in sums / total], weights


def scaled(w: Matrix) -> Matrix:
    """Scale so the five feature weights sum to 10 in absolute value (TIME_WEIGHT's unit)."""
    return w * (10.0 / float(np.abs(w[: len(FEATURES)]).sum()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {DATA_FILE}")
    args = parser.parse_args()
    data, svc = collect()
    embedder = svc.embedder.name
    svc.close()
    ids = list(data)
    fmt = "  ".join
    fused = recall(data, ids, lambda q: q.x[:, 0])
    previous = recall(data, ids, lambda q: q.x[:, :4] @ np.array(PREVIOUS_WEIGHTS))
    plain_cv, plain_folds = cross_validate(data, salience=False)
    sal_cv, sal_folds = cross_validate(data, salience=True)
    out = sys.stdout.write
    out(f"fused rank only                 @200/500/1000: {fmt(f'{v:.1f}' for v in fused)}\n")
    out(f"previous 4 features (in-sample) @200/500/1000: {fmt(f'{v:.1f}' for v in previous)}\n")
    out(f"plain 5 features, held out      @200/500/1000: {fmt(f'{v:.1f}' for v in plain_cv)}\n")
    out(f"5 features + salience, held out @200/500/1000: {fmt(f'{v:.1f}' for v in sal_cv)}\n")
    out(f"@500 by category, fused only: {by_category(data, None, False)}\n")
    out(f"@500 by category, plain:      {by_category(data, plain_folds, False)}\n")
    out(f"@500 by category, salience:   {by_category(data, sal_folds, True)}\n")
    for sid, wp, ws in zip(ids, plain_folds, sal_folds, strict=True):
        plain_w, sal_w = scaled(wp), scaled(ws)
        out(
            f"without {sid}: plain {np.round(plain_w, 2).tolist()}  "
            f"salience {np.round(sal_w[:5], 2).tolist()} |s| {np.linalg.norm(sal_w[5:]):.2f}\n"
        )
    if args.write:
        plain = scaled(fit_on(data, ids, salience=False))
        sal = scaled(fit_on(data, ids, salience=True))
        cos = [
            float(
                np.dot(scaled(w)[5:], sal[5:])
                / np.linalg.norm(scaled(w)[5:])
                / np.linalg.norm(sal[5:])
            )
            for w in sal_folds
        ]
        payload = {
            "fitted_by": "bench/feature_cv.py --write",
            "fitted_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "data": "LoCoMo public half (5 conversations), fast-mode candidate pools "
            "of 25-result searches",
            "features": list(FEATURES),
            "held_out_recall_200_500_1000": {
                "fused_only": [round(v, 2) for v in fused],
                "plain": [round(v, 2) for v in plain_cv],
                "salience": [round(v, 2) for v in sal_cv],
            },
            "salience_fold_cosine_to_final": [round(c, 3) for c in cos],
            "plain": {"weights": [round(float(v), 4) for v in plain]},
            "embedders": {
                embedder: {
                    "weights": [round(float(v), 4) for v in sal[:5]],
                    "salience": [round(float(v), 5) for v in sal[5:]],
                }
            },
        }
        DATA_FILE.parent.mkdir(exist_ok=True)
        DATA_FILE.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
        out(f"wrote {DATA_FILE}\n")


if __name__ == "__main__":
    main()
