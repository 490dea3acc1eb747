"""Probe: does a *learned* late interaction over MiniLM token vectors beat the untrained one?

``bench/late_interaction_probe.py`` adds untrained MaxSim as a feature (+0.2 to
+0.7 at 500 words held out). This probe trains the interaction instead: a
projection W (384 x k) of the token vectors, so that the mean over the query's
content tokens of the best cosine against the memory's tokens (both projected)
separates evidence from the rest. The score is the shipped salience model's
score (refitted on the training conversations) plus a learned multiple of that
MaxSim. W starts at the identity (k = 384) or at the training tokens' principal
components (k < 384) and is trained with a listwise loss (softmax over each
question's 100 candidates, all evidence turns as positives) and an L2 pull back
to its start, leaving one conversation out.

Needs PyTorch, which the project does not depend on:
``.venv/bin/pip install torch==2.13.0`` (the CPU wheel), then
``.venv/bin/python bench/learned_interaction_probe.py --k 64 --l2 0.1 --epochs 8``
(about 12 minutes on 2 cores; ``--k 384 --l2 0 --epochs 3`` about 16).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from feature_cv import BUDGETS, Question, collect, design, fit_on
from late_interaction_probe import content, token_vectors

from memos.bench.locomo import budget_recall
from memos.embedders.minilm import DIM, MiniLMEmbedder

MAX_TOKENS = 64


@dataclass
class Item:
    query: torch.Tensor  # content-token vectors of the question
    cands: torch.Tensor  # row indices of the candidates' texts
    base: torch.Tensor  # the salience model's score of each candidate
    y: torch.Tensor
    q: Question


def maxsim(w: torch.Tensor, docs: torch.Tensor, mask: torch.Tensor, it: Item) -> torch.Tensor:
    qp = torch.nn.functional.normalize(it.query @ w, dim=-1)
    dp = torch.nn.functional.normalize(docs[it.cands] @ w, dim=-1)
    sim = torch.einsum("qk,nlk->nql", qp, dp).masked_fill(~mask[it.cands][:, None, :], -2.0)
    return sim.max(-1).values.mean(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=64, help="projected dimension (384: full)")
    parser.add_argument("--l2", type=float, default=0.1, help="pull of W back to its start")
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    torch.manual_seed(0)
    np.random.seed(0)
    data, svc = collect()
    embedder = svc.embedder
    if not isinstance(embedder, MiniLMEmbedder):
        raise SystemExit("this probe needs the default MiniLM embedder")
    texts = sorted({t for qs in data.values() for q in qs for t in q.texts})
    row = {t: i for i, t in enumerate(texts)}
    docs = torch.zeros(len(texts), MAX_TOKENS, DIM)
    mask = torch.zeros(len(texts), MAX_TOKENS, dtype=torch.bool)
    for i, text in enumerate(texts):
        h, _ = token_vectors(embedder, text)
        n = min(MAX_TOKENS, len(h))
        docs[i, :n] = torch.tensor(h[:n], dtype=torch.float32)
        mask[i, :n] = True
    queries = {}
    for qs in data.values():
        for q in qs:
            h, toks = token_vectors(embedder, q.query)
            keep = content(toks)
            queries[q.query] = torch.tensor(h[keep] if keep.any() else h, dtype=torch.float32)
    svc.close()

    def items(sid: str, w: np.ndarray) -> list[Item]:
        return [
            Item(
                queries[q.query],
                torch.tensor([row[t] for t in q.texts]),
                torch.tensor(design(q, True) @ w, dtype=torch.float32),
                torch.tensor(q.y, dtype=torch.float32),
                q,
            )
            for q in data[sid]
        ]

    ids = list(data)
    base_sum: dict[int, list[float]] = {b: [] for b in BUDGETS}
    got_sum: dict[int, list[float]] = {b: [] for b in BUDGETS}
    per_cat: dict[int, list[float]] = {}
    for held in ids:
        started = time.time()
        train_ids = [s for s in ids if s != held]
        weights = fit_on(data, train_ids, salience=True)
        train = [it for s in train_ids for it in items(s, weights) if it.y.any()]
        test = items(held, weights)
        if args.k >= DIM:
            w0 = torch.eye(DIM)
        else:
            rows = torch.unique(torch.cat([it.cands for it in train]))
            sample = docs[rows][mask[rows]]
            sample = sample[torch.randperm(len(sample))[:20000]]
            w0 = torch.pca_lowrank(sample, q=args.k, center=True)[2][:, : args.k].clone()
        w = w0.clone().requires_grad_(True)
        a = torch.tensor(2.0, requires_grad=True)
        opt = torch.optim.Adam([w, a], lr=3e-3)
        for _ in range(args.epochs):
            order = np.random.permutation(len(train))
            for start in range(0, len(order), 32):
                loss = torch.zeros(())
                for j in order[start : start + 32]:
                    it = train[j]
                    logp = torch.log_softmax(it.base + a * maxsim(w, docs, mask, it), 0)
                    loss = loss - torch.logsumexp(logp[it.y > 0], 0)
                loss = loss / 32 + args.l2 * ((w - w0) ** 2).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            for it in test:
                learned = (it.base + a * maxsim(w, docs, mask, it)).numpy()
                for score, sums in ((it.base.numpy(), base_sum), (learned, got_sum)):
                    top = [it.q.got[i] for i in np.argsort(-score, kind="stable")[:25]]
                    if it.q.scored:
                        for b in BUDGETS:
                            sums[b].append(budget_recall(top, it.q.wanted, b))
                    if sums is got_sum:
                        per_cat.setdefault(it.q.category, []).append(
                            budget_recall(top, it.q.wanted, 500)
                        )
        sys.stderr.write(f"{held}: a = {a.item():.2f}, {time.time() - started:.0f} s\n")
    fmt = " / ".join
    sys.stdout.write(
        f"k={args.k} l2={args.l2} epochs={args.epochs}\n"
        f"salience model, held out @200/500/1000: "
        f"{fmt(f'{100 * np.mean(base_sum[b]):.1f}' for b in BUDGETS)}\n"
        f"+ learned MaxSim, held out @200/500/1000: "
        f"{fmt(f'{100 * np.mean(got_sum[b]):.1f}' for b in BUDGETS)}\n"
        f"@500 by category: "
        f"{'  '.join(f'{c}: {100 * np.mean(v):.1f}' for c, v in sorted(per_cat.items()))}\n"
    )


if __name__ == "__main__":
    main()
