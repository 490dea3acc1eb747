"""``relativity``: one 0..1 relevance scale for every query, for the caller's threshold.

A logistic of the cosine and of the share of the query's terms found in the
memory's own text, measured against LoCoMo's evidence turns and against junk
(the same question asked of another user's conversation, where every hit is
wrong; ``bench/threshold_probe.py``). A logistic regression on those two
classes put the no-shared-words pass point at cosine 0.47, which drops plain
paraphrase answers ("Where do I live?" -> "I moved to Hangzhou last spring...",
cosine 0.29), so the pass point is set by hand at cosine 0.28 with a term
weight of 8. At the default threshold 0.45 that keeps 99.1% of the evidence
turns and lets 8.3 junk hits of 25 through per question. The earlier curve
(cosine only, plus a lift for the query's best keyword hit) kept 99.9% but let
20.8 through, because every query has a best keyword hit. MiniLM cannot
separate the two much further: junk cosines reach 0.34 at the 95th percentile
while 5% of the evidence sits below 0.26.

The cosine scale is MiniLM's: other embedders spread cosines differently, so
with them the threshold means something else (documented in the README).
"""

from __future__ import annotations

import math

from memos.search.text_cache import TextCache
from memos.text.lexical import lexical_tokens

W_COSINE = 18.5
W_COVER = 8.0
PASS_COSINE = 0.28  # with no query term in the text, this cosine scores exactly 0.45
BIAS = -W_COSINE * PASS_COSINE + math.log(0.45 / 0.55)


def relativity(cosine: float, cover: float) -> float:
    z = W_COSINE * cosine + W_COVER * cover + BIAS
    return round(1.0 / (1.0 + math.exp(-z)), 6)


def query_terms(query: str) -> set[str]:
    return set(lexical_tokens(query))


def _terms(text: str) -> frozenset[str]:
    return frozenset(lexical_tokens(text))


text_terms = TextCache(_terms)


def coverage(terms: set[str], text: str) -> float:
    """Share of the query's terms present in ``text`` (0 when the query has none)."""
    if not terms:
        return 0.0
    return len(terms & text_terms(text)) / len(terms)
