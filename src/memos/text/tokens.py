"""Token counting and lexical tokenisation shared by limits and BM25.

Limits (40k tokens per add, 4k per query) use an estimate that tracks
OpenAI-style tokenisers closely enough for a guard rail: one token per CJK
character, one per word-piece of up to four characters elsewhere, one per
punctuation mark. It needs no model and is the same on every server.
"""

from __future__ import annotations

import logging
import re
import threading
from functools import lru_cache

logger = logging.getLogger(__name__)

_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CJK_RE = re.compile(f"[{_CJK}]")
_TOKEN_RE = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+|[^\\w\\s]", re.UNICODE)
_WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)

STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "s",
        "t",
        "don",
        "did",
        "ve",
        "ll",
        "re",
        "m",
        "d",
    ]
)


def count_tokens(text: str) -> int:
    total = 0
    for match in _TOKEN_RE.finditer(text):
        piece = match.group(0)
        total += 1 if len(piece) <= 4 else (len(piece) + 3) // 4
    return total


def cut_by_tokens(text: str, max_tokens: int) -> list[str]:
    """Cut text into pieces of at most ``max_tokens`` (as counted above), at token edges."""
    pieces: list[str] = []
    start = 0
    used = 0
    for match in _TOKEN_RE.finditer(text):
        piece = match.group(0)
        cost = 1 if len(piece) <= 4 else (len(piece) + 3) // 4
        if cost > max_tokens:  # one enormous "word": cut it by characters
            if used:
                pieces.append(text[start : match.start()])
            step = max_tokens * 4
            for i in range(match.start(), match.end(), step):
                pieces.append(text[i : min(i + step, match.end())])
            start, used = match.end(), 0
            continue
        if used + cost > max_tokens:
            pieces.append(text[start : match.start()])
            start, used = match.start(), 0
        used += cost
    if text[start:].strip():
        pieces.append(text[start:])
    return [p.strip() for p in pieces if p.strip()]


def has_cjk(text: str) -> bool:
    return _CJK_RE.search(text) is not None


_jieba_lock = threading.Lock()


@lru_cache(maxsize=1)
def _jieba() -> object:
    with _jieba_lock:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        return jieba


def segment_cjk(text: str) -> str:
    """Space-join jieba words so a word tokenizer sees Chinese words."""
    jieba = _jieba()
    words = jieba.lcut_for_search(text)  # type: ignore[attr-defined]
    return " ".join(w for w in words if w.strip())
