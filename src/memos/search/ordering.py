"""The ordering stage's fitted model: five feature weights and a per-embedder salience direction.

Search orders its candidate pool by a linear score. Features (``hybrid.features``):
fused rank score, cosine gap to the best cosine, normalised BM25, the share of
the query's terms in the memory's own text, and ``specifics``: how many names,
places and numbers the memory states. For an embedder with a fitted
``salience`` direction the score adds the memory vector's projection on it.
Chat is full of turns that sit close to every question, reactions and
questions to the other speaker ("Wow, Mel! Any more paintings coming up?"),
and the direction learns to put them below first-person accounts. It is a
prior for chat transcripts, not an informativeness detector (a bare "Same
here!" scores high), and a property of the memory alone, so it costs one dot
product per candidate. Other embedders get the weights fitted without it.

Weights come from ``data/ordering.json``, written by ``bench/feature_cv.py
--write`` (logistic regression on the LoCoMo public half's candidate pools,
checked by leave-one-conversation-out cross-validation; the file records the
held-out figures). Only ratios matter: the weights are scaled so the five sum
to 10 in absolute value, the unit in which ``TIME_WEIGHT`` is expressed.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from memos.embedders.base import Vectors
from memos.search.text_cache import TextCache

FEATURES = ("fused", "cosine_gap", "bm25", "coverage", "specifics")
DATA_FILE = Path(__file__).with_name("data") / "ordering.json"

_SPEAKER = re.compile(r"^\s*([^\s:]{1,40}(?: [^\s:]{1,40})?):\s")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"\d+|[^\W\d_]+(?:['\-][^\W\d_]+)*")


@dataclass(frozen=True)
class OrderingModel:
    weights: tuple[float, ...]
    salience: Vectors | None = None

    def score(self, row: tuple[float, ...], vector: Vectors | None) -> float:
        total = sum(w * x for w, x in zip(self.weights, row, strict=True))
        if self.salience is not None and vector is not None:
            total += float(vector @ self.salience)
        return total


def speaker(text: str) -> str | None:
    """The ``Name:`` a chat line starts with, if any (cached with the scan below)."""
    return _mentions(text)[0]


def specifics(text: str, speakers: frozenset[str] = frozenset()) -> float:
    """log(1 + names and numbers stated), a turn's information content.

    Counts capitalised words that do not start a sentence and numbers, in the
    memory's own words: the ``Name:`` prefix and the names of the people
    speaking (``speakers``: "Thanks, Melanie!" says nothing) are left out.
    Scripts without case count numbers only.
    """
    _, numbers, names = _mentions(text)
    return math.log1p(numbers + sum(1 for name in names if name not in speakers))


def _scan(text: str) -> tuple[str | None, int, tuple[str, ...]]:
    """(speaker, numbers, capitalised words that do not start a sentence after the prefix)."""
    match = _SPEAKER.match(text)
    who = match.group(1) if match else None
    body = text[match.end() - 1 :] if match else text
    numbers = 0
    names: list[str] = []
    for sentence in _SENTENCE.split(body):
        for i, word in enumerate(_WORD.findall(sentence)):
            if word.isdigit():
                numbers += 1
            elif i > 0 and word[0].isupper() and word != "I" and not word.startswith("I'"):
                names.append(word)
    return who, numbers, tuple(names)


_mentions = TextCache(_scan)


@cache
def _data() -> dict[str, object]:
    loaded: dict[str, object] = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    return loaded


@cache
def load_ordering(embedder_name: str, dim: int, *, salience: bool = True) -> OrderingModel:
    """The embedder's fitted model when one exists (and ``salience``), else the plain weights."""
    data = _data()
    models = data["embedders"]
    assert isinstance(models, dict)
    fitted = models.get(embedder_name)
    if salience and isinstance(fitted, dict) and len(fitted["salience"]) == dim:
        return OrderingModel(
            tuple(float(w) for w in fitted["weights"]),
            np.asarray(fitted["salience"], dtype=np.float32),
        )
    plain = data["plain"]
    assert isinstance(plain, dict)
    return OrderingModel(tuple(float(w) for w in plain["weights"]))
