"""Probe: does late interaction (ColBERT-style MaxSim) with MiniLM token vectors help ordering?

The one question-and-memory joint signal the packaged encoder can give without an
LLM: every query token's best cosine against the memory's contextual token
vectors (untrained for this use; MiniLM was trained on pooled vectors). Three
variants are added, alone and together, as extra columns to the ordering
stage's features and cross-validated leaving one conversation out, exactly as
``bench/feature_cv.py`` does:

* ``all``: mean over query tokens of the max over memory tokens;
* ``content q``: the same over the query's content tokens only (no stop words,
  no punctuation);
* ``content q&d``: content tokens on both sides.

Not shipped: the memory's token vectors would have to be stored (about 35
vectors per chat turn, 13 KB in int8) or re-encoded per search (about 0.9 s for
100 candidates on 2 cores). Run: ``.venv/bin/python bench/late_interaction_probe.py``
(about 4 minutes).
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import numpy.typing as npt
from feature_cv import Matrix, Question, by_category, collect, cross_validate

from memos.embedders.minilm import MiniLMEmbedder
from memos.text.tokens import STOPWORDS

VARIANTS = {"all": [0], "content q": [1], "content q&d": [2], "all three": [0, 1, 2]}


def token_vectors(embedder: MiniLMEmbedder, text: str) -> tuple[Matrix, list[str]]:
    """Normalised contextual vectors of the text's word pieces, special tokens dropped."""
    session, tokenizer = embedder._load()
    enc = tokenizer.encode(text, add_special_tokens=True)
    ids = np.array([enc.ids], np.int64)
    (hidden,) = session.run(
        ["last_hidden_state"],
        {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": 0 * ids},
    )
    h = np.asarray(hidden[0, 1:-1], dtype=np.float64)
    return h / (np.linalg.norm(h, axis=1, keepdims=True) + 1e-9), list(enc.tokens[1:-1])


def content(tokens: list[str]) -> npt.NDArray[np.bool_]:
    return np.array(
        [(t.isalnum() or t.startswith("##")) and t.lower() not in STOPWORDS for t in tokens]
    )


def maxsim(
    q: Question, embedder: MiniLMEmbedder, cache: dict[str, tuple[Matrix, list[str]]]
) -> Matrix:
    """The three MaxSim variants for each candidate of one question."""
    qh, qt = token_vectors(embedder, q.query)
    qm = content(qt)
    rows = []
    for text in q.texts:
        if text not in cache:
            cache[text] = token_vectors(embedder, text)
        dh, dt = cache[text]
        sim = qh @ dh.T
        best = sim.max(1)
        dm = content(dt)
        best_content = (sim[:, dm] if dm.any() else sim).max(1)
        rows.append(
            [
                best.mean(),
                best[qm].mean() if qm.any() else best.mean(),
                best_content[qm].mean() if qm.any() else best_content.mean(),
            ]
        )
    return np.array(rows)


def main() -> None:
    data, svc = collect()
    embedder = svc.embedder
    if not isinstance(embedder, MiniLMEmbedder):
        raise SystemExit("this probe needs the default MiniLM embedder")
    cache: dict[str, tuple[Matrix, list[str]]] = {}
    extra = {sid: [maxsim(q, embedder, cache) for q in qs] for sid, qs in data.items()}
    svc.close()
    out = sys.stdout.write
    for salience in (False, True):
        runs = {"five features": data}
        for name, cols in VARIANTS.items():
            runs[f"+ maxsim {name}"] = {
                sid: [
                    dataclasses.replace(q, x=np.hstack([q.x, e[:, cols]]))
                    for q, e in zip(qs, extra[sid], strict=True)
                ]
                for sid, qs in data.items()
            }
        for label, d in runs.items():
            cv, folds = cross_validate(d, salience)
            out(
                f"{label:24s} salience={salience!s:5s} held out @200/500/1000: "
                f"{' / '.join(f'{v:.1f}' for v in cv)}  @500 {by_category(d, folds, salience)}\n"
            )


if __name__ == "__main__":
    main()
