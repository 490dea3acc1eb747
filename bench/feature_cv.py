"""Fit and cross-validate the ordering stage's feature weights on LoCoMo.

Ingests the public half in-process, takes each question's fused candidate pool
from the real searcher (``HybridSearcher.candidates``, limit 25 as in the
benchmark), computes the four features (``memos.search.hybrid.features``) and
labels each candidate by whether it is an evidence turn. A logistic regression
(Newton steps, light L2) is fitted leaving one conversation out, and the held-out
conversation is ranked with it. Prints evidence recall at 200/500/1000 words
(categories 1-4) for fused rank alone, the cross-validated weights and the
shipped ``FEATURE_WEIGHTS``, and the weights fitted on all five conversations.
Run: ``.venv/bin/python bench/feature_cv.py`` (about 3 minutes).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from memos.bench.locomo import DEFAULT_DATA, Retrieved, budget_recall, load_samples
from memos.domain.models import MessageInput, Scope
from memos.search.hybrid import FEATURE_WEIGHTS, features
from memos.service import MemoryService
from memos.settings import load_settings

Matrix = npt.NDArray[np.float64]
BUDGETS = (200, 500, 1000)


def fit(x: Matrix, y: Matrix, l2: float = 10.0, steps: int = 30) -> Matrix:
    """Logistic regression on standardised features; weights mapped back to raw units."""
    mu, sd = x.mean(0), x.std(0) + 1e-9
    z = np.hstack([(x - mu) / sd, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-z @ w))
        grad = z.T @ (p - y) + l2 * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + l2 * np.eye(len(w))
        w -= np.linalg.solve(hess, grad)
    return np.asarray(w[:-1] / sd)


def main() -> None:
    samples = load_samples(DEFAULT_DATA)
    svc = MemoryService.open(load_settings({"data_dir": tempfile.mkdtemp()}, environ={}))
    # Per conversation, per question: (memories' word counts, source ids, features, labels).
    data: dict[str, list[tuple[list[Retrieved], Matrix, Matrix, frozenset[str]]]] = {}
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
            if q.category == 5:
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
            labels = np.array([float(bool(r.sources & wanted)) for r in got])
            rows.append((got, np.array(features(pool, q.text)), labels, wanted))
        data[sample.sample_id] = rows
        sys.stderr.write(f"{sample.sample_id}: {len(rows)} questions\n")

    def recall(score: Callable[[Matrix], Matrix], ids: list[str]) -> list[float]:
        out = []
        for budget in BUDGETS:
            vals = []
            for sid in ids:
                for got, x, _, wanted in data[sid]:
                    order = np.argsort(-score(x), kind="stable")[:25]
                    vals.append(budget_recall([got[i] for i in order], wanted, budget))
            out.append(100 * float(np.mean(vals)))
        return out

    ids = list(data)
    fused = recall(lambda x: x[:, 0], ids)
    shipped = recall(lambda x: x @ np.array(FEATURE_WEIGHTS), ids)
    held: list[list[float]] = []
    weights = []
    for out in ids:
        train = [r for sid in ids if sid != out for r in data[sid]]
        w = fit(np.vstack([r[1] for r in train]), np.concatenate([r[2] for r in train]))
        weights.append(w)
        n = len(data[out])
        held.append([v * n for v in recall(lambda x, w=w: x @ w, [out])])
    total = sum(len(data[sid]) for sid in ids)
    cv = [sum(h[i] for h in held) / total for i in range(len(BUDGETS))]
    everything = [r for sid in ids for r in data[sid]]
    w_all = fit(np.vstack([r[1] for r in everything]), np.concatenate([r[2] for r in everything]))
    fmt = "  ".join
    sys.stdout.write(f"fused rank only      @200/500/1000: {fmt(f'{v:.1f}' for v in fused)}\n")
    sys.stdout.write(f"cross-validated      @200/500/1000: {fmt(f'{v:.1f}' for v in cv)}\n")
    sys.stdout.write(f"shipped weights      @200/500/1000: {fmt(f'{v:.1f}' for v in shipped)}\n")
    for sid, w in zip(ids, weights, strict=True):
        sys.stdout.write(f"weights without {sid}: {np.round(w, 3).tolist()}\n")
    sys.stdout.write(f"weights on all five: {np.round(w_all, 3).tolist()}\n")
    svc.close()


if __name__ == "__main__":
    main()
