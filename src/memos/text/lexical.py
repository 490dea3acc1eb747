"""Lexical tokens for the in-memory BM25 index (one function for documents and queries).

Why stemming: LoCoMo-style questions ("What is Caroline running for?") and the
memories that answer them ("Caroline runs a charity race") rarely share the
exact inflection, and FTS5's unicode61 tokenizer did not stem. The Snowball
English stemmer (Porter2) is pure Python and slow per call (~10 us), but
conversational text reuses a small vocabulary, so a bounded word -> stem cache
makes it nearly free: indexing 100k messages performs only a few thousand real
stems. CJK words come from jieba (as for FTS5) and are kept as they are.
"""

from __future__ import annotations

import re
import threading

import snowballstemmer

from memos.text.tokens import STOPWORDS, has_cjk, segment_cjk

# BM25 parameters both store adapters rank with, so their keyword scores agree.
K1 = 1.2
B = 0.75
NEGLIGIBLE = 1e-4  # largest score a term may add and still be left out of a query

_WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)
CACHE_LIMIT = 200_000
"""Most cached words; the cache is simply cleared when full (it refills in one pass)."""

# word -> stem, or "" for a word that is dropped (stopword, lone latin letter).
_cache: dict[str, str] = {}
# Snowball stemmer objects keep per-call state, so misses are serialised.
_stem_lock = threading.Lock()
_stemmer = snowballstemmer.stemmer("english")


def _resolve(word: str) -> str:
    """What ``word`` (already lowercase) becomes in the index; "" drops it."""
    if word in STOPWORDS:
        return ""
    if has_cjk(word):
        return word
    if len(word) == 1 and not word.isdigit():
        return ""
    if not word.isascii() or word.isdigit():
        return word  # the English stemmer only knows English words
    with _stem_lock:
        stem = str(_stemmer.stemWord(word))
    return stem or word


def lexical_tokens(text: str) -> list[str]:
    """Index terms of ``text`` in order, with repeats (term frequencies need them).

    Lowercased words (``[^\\W_]+``, jieba-segmented first when the text has
    CJK), stopwords and lone latin letters dropped, English words stemmed.
    Callers that need distinct query terms deduplicate the result themselves.
    """
    if not text:
        return []
    source = segment_cjk(text) if has_cjk(text) else text
    words = _WORD_RE.findall(source.lower())
    get = _cache.get
    stems = [get(w) for w in words]
    if None in stems:
        if len(_cache) >= CACHE_LIMIT:
            _cache.clear()
        for i, stem in enumerate(stems):
            if stem is None:
                word = words[i]
                stem = _cache[word] = _resolve(word)
                stems[i] = stem
    return [s for s in stems if s]


def lexical_text(key: str, value: str, context: str = "") -> str:
    """What a memory contributes to keyword search: value, a title that adds words, context.

    Fast-mode keys are prefixes of the value; indexing them again would only
    inflate the first words' term frequency.
    """
    text = value if not key or value.startswith(key.rstrip("…")) else f"{key}\n{value}"
    return f"{text}\n{context}" if context else text
