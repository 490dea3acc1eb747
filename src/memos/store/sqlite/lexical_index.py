"""In-memory BM25 over one cube's live memories (the lexical half of hybrid search).

Why not FTS5: an OR-query's ``bm25()`` is evaluated for every matching row
before ``ORDER BY ... LIMIT``, ~40 ms p50 at 100k memories. Here each query
term's postings are gathered and scored with numpy into a dense score array
(~1 ms), and the index is a cache, like ``vector_index``: rebuilt when another
process bumped the cube's generation, patched in place for this process's writes.

Layout: a document is a *position*; ``add`` appends positions in rowid order;
``replace`` kills the old position and appends a new one for the same rowid,
so ``_key_rowids`` (sorted) / ``_key_pos`` map rowid -> current position.
Per term, postings are an ``array('i')`` of positions and an ``array('H')`` of
term frequencies (clamped at 65535, irrelevant under BM25's tf saturation).
Dead positions stay in the postings until compaction (dead > 25% and > 1024)
rewrites them with numpy; document frequencies count *live* postings only.
Memory is ~6 bytes per distinct term per document plus ~25 bytes per document
(``bench/lexical_probe.py``: ~96 bytes/doc at 100k LoCoMo messages of ~11 terms).

Search at scale (``memos bench scale``, 1M memories indexed with their
context): common terms have postings of 200k+ documents, so a query touches
~1M postings. The per-document length norm ``k1 * (1 - b + b * dl / avgdl)`` is
computed once per write generation instead of once per posting, the per-term
arithmetic runs in place, and the top k are taken from the documents above a
threshold read off a strided sample of the scores (falling back to every
positive score when a filter leaves too few), instead of partitioning every
matching document. Scores are bit-identical to the straightforward pass,
except that a term found in (nearly) every document is skipped when the query
has other terms: its idf makes it add at most ``NEGLIGIBLE`` (1e-4) to any
score, yet it cost a pass over every document; at 1M memories the year in every
memory's date context took a question mentioning "2023" from ~10 to ~35 ms.
(MaxScore-style term pruning was tried and dropped: with the loose bounds
available here it lost more to bookkeeping than it saved, 2x slower at 500k.)

Building: a memory's indexed text repeats its neighbours' turns (context), so
``add`` tokenises each distinct line once per call, and the postings of a
batch are grouped with numpy rather than appended term by term.

Threading: mutations and the search snapshot (copies of the query terms'
postings and of the alive flags) take one lock; scoring runs outside it, on
arrays that writers only append to or replace, never rewrite in place. The
``allowed`` filter is applied to the matches (searchsorted into ``allowed``),
so a large filter costs little.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from memos.text.lexical import K1, NEGLIGIBLE, B, lexical_tokens
from memos.text.tokens import has_cjk

__all__ = ["B", "K1", "NEGLIGIBLE", "CubeLexicon"]

SAMPLE_STRIDE = 16
_TF_MAX = 65535

RowIds = npt.NDArray[np.int64]
Positions = npt.NDArray[np.int32]
Docs = npt.NDArray[np.intp]  # positions as search handles them
Scores = npt.NDArray[np.float32]
_T = TypeVar("_T", bound=np.generic)


def _tokenize(texts: Sequence[str]) -> list[list[str]]:
    """``lexical_tokens`` of each text, each distinct line tokenised once.

    Splitting at newlines changes nothing for text without CJK (a newline is
    never part of a word), so those texts are cut into lines and the lines
    cached for the call; texts with CJK go through jieba whole, as before.
    """
    cache: dict[str, list[str]] = {}
    out: list[list[str]] = []
    for text in texts:
        if "\n" not in text or has_cjk(text):
            out.append(lexical_tokens(text))
            continue
        toks: list[str] = []
        for line in text.split("\n"):
            got = cache.get(line)
            if got is None:
                got = cache[line] = lexical_tokens(line)
            toks.extend(got)
        out.append(toks)
    return out


def _above_kth(scores: Scores, k: int, eligible: Callable[[Docs], Docs]) -> Docs:
    """Eligible documents with a positive score, or at least every one in the top k.

    Scanning a million scores for the nonzero ones and partitioning them all is
    most of a plain search's cost; a strided sample's order statistic gives a
    threshold that keeps a few hundred instead. If fewer than k eligible ones
    clear it (a tight filter), all positive scores are taken as before.
    """
    if len(scores) >= 64 * max(k, 16):
        sample = scores[::SAMPLE_STRIDE]
        want = min(len(sample), max(2, 2 * k // SAMPLE_STRIDE + 1))
        threshold = np.partition(sample, len(sample) - want)[len(sample) - want]
        if threshold > 0:
            cand = eligible(np.flatnonzero(scores >= threshold))
            if len(cand) >= k:
                return cand
    return eligible(np.flatnonzero(scores))


def _grow(arr: npt.NDArray[_T], need: int) -> npt.NDArray[_T]:
    """``arr`` with room for ``need`` entries (capacity doubles, contents kept)."""
    if need <= len(arr):
        return arr
    out = np.zeros(max(need, 2 * len(arr), 256), arr.dtype)
    out[: len(arr)] = arr
    return out


class CubeLexicon:
    """BM25 (Okapi, k1=1.2, b=0.75) over one cube's live memories, keyed by store rowid."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self._lock = threading.Lock()
        self._vocab: dict[str, int] = {}
        self._post_pos: list[array[int]] = []
        self._post_tf: list[array[int]] = []
        self._n = 0  # positions in use (live + dead)
        self._dl: npt.NDArray[np.float32] = np.zeros(0, np.float32)
        self._alive: npt.NDArray[np.bool_] = np.zeros(0, bool)
        self._rowids: RowIds = np.zeros(0, np.int64)  # per position
        self._nk = 0  # keys in use
        self._key_rowids: RowIds = np.zeros(0, np.int64)  # sorted
        self._key_pos: Positions = np.zeros(0, np.int32)
        self._last_rowid: int | None = None
        self._live = 0
        self._live_len = 0  # sum of live documents' lengths, for avgdl
        self._dead = 0
        self._norm: Scores | None = None  # per-document BM25 length norm, see search()
        self._norm_key: tuple[int, int, int] | None = None

    def __len__(self) -> int:
        return self._live

    def add(self, rowids: Sequence[int], texts: Sequence[str]) -> None:
        """Append documents; rowids must increase and exceed every rowid added before."""
        if len(rowids) != len(texts):
            raise ValueError("rowids and texts differ in length")
        if not len(rowids):
            return
        ids = np.asarray(rowids, np.int64)
        tokens = _tokenize(texts)  # outside the lock: the slow part
        with self._lock:
            if (self._last_rowid is not None and ids[0] <= self._last_rowid) or (
                len(ids) > 1 and bool(np.any(np.diff(ids) <= 0))
            ):
                raise ValueError("rowids must be strictly increasing across add() calls")
            first = self._append(ids, tokens)
            need = self._nk + len(ids)
            self._key_rowids = _grow(self._key_rowids, need)
            self._key_pos = _grow(self._key_pos, need)
            self._key_rowids[self._nk : need] = ids
            self._key_pos[self._nk : need] = np.arange(first, first + len(ids), dtype=np.int32)
            self._nk = need
            self._last_rowid = int(ids[-1])
            self._live += len(ids)

    def remove(self, rowids: Sequence[int]) -> None:
        """Mark documents dead; unknown or already removed rowids are ignored."""
        with self._lock:
            pos = np.unique(self._positions(np.asarray(rowids, np.int64)))
            self._kill(pos)
            self._live -= len(pos)
            self._maybe_compact()

    def replace(self, rowid: int, text: str) -> None:
        """Re-index a live document's new text; unknown or removed rowids are ignored."""
        tokens = lexical_tokens(text)
        with self._lock:
            ids = np.asarray([rowid], np.int64)
            if not len(self._positions(ids)):
                return
            idx = np.searchsorted(self._key_rowids[: self._nk], ids)
            self._kill(self._key_pos[idx])
            self._key_pos[idx] = self._append(ids, [tokens])
            self._maybe_compact()

    def search(self, query: str, k: int, allowed: RowIds | None = None) -> list[tuple[int, float]]:
        """Top-k (rowid, BM25 > 0) among live documents, optionally only ``allowed`` rowids.

        Higher is better; equal scores come in ascending rowid order.
        """
        terms = list(dict.fromkeys(lexical_tokens(query)))
        if k <= 0 or not terms or (allowed is not None and not len(allowed)):
            return []
        with self._lock:
            n, live = self._n, self._live
            tids = [self._vocab[t] for t in terms if t in self._vocab]
            if not live or not tids:
                return []
            avgdl = max(self._live_len / live, 1e-9)
            postings = [
                (
                    np.frombuffer(self._post_pos[t], np.int32).astype(np.intp),
                    np.frombuffer(self._post_tf[t], np.uint16).astype(np.float32),
                )
                for t in tids
            ]
            alive = self._alive[:n].copy() if self._dead else None
            dl, ids = self._dl[:n], self._rowids[:n]
            norm_key = (n, self._live_len, live)
            norm = self._norm if self._norm_key == norm_key else None
        c1, c2 = K1 * (1 - B), K1 * B / avgdl
        if norm is None:
            # k1 * (1 - b + b * dl / avgdl) per document, the same float32 arithmetic
            # as computing it per posting; kept until the next write changes avgdl
            norm = np.asarray(c1 + c2 * dl, np.float32)
            with self._lock:
                self._norm, self._norm_key = norm, norm_key
        weighted = []
        for pos, tf in postings:
            df = len(pos) if alive is None else int(np.count_nonzero(alive[pos]))
            if df:
                weighted.append((pos, tf, math.log(1.0 + (live - df + 0.5) / (df + 0.5))))
        # A term in (nearly) every document, like the year that every memory's date
        # context carries, adds under NEGLIGIBLE to any score but costs a pass over
        # every document: left out unless the query has nothing else.
        useful = [w for w in weighted if w[2] * (K1 + 1) >= NEGLIGIBLE]
        scores = np.zeros(n, np.float32)
        for pos, tf, idf in useful or weighted:
            # np.float32(idf * (k1 + 1)) * tf / (tf + norm), without temporaries
            den = norm[pos]
            den += tf
            tf *= np.float32(idf * (K1 + 1))
            np.divide(tf, den, out=tf)
            scores[pos] += tf
        allow: RowIds | None = None
        if allowed is not None:
            allow = np.asarray(allowed, np.int64)
            if bool(np.any(allow[1:] < allow[:-1])):
                allow = np.sort(allow)

        def eligible(cand: Docs) -> Docs:
            if alive is not None:
                cand = cand[alive[cand]]
            if allow is not None:
                # Matches are usually far fewer than allowed rowids: look them up there.
                rids = ids[cand]
                at = np.minimum(np.searchsorted(allow, rids), len(allow) - 1)
                cand = cand[allow[at] == rids]
            return cand

        cand = _above_kth(scores, k, eligible)
        top = scores[cand]
        if len(cand) > k:
            kth = np.partition(top, len(top) - k)[len(top) - k]
            keep = top >= kth  # every tie at the k-th score, so rowid decides below
            cand, top = cand[keep], top[keep]
        rids = ids[cand]
        order = np.lexsort((rids, -top))[:k]
        return [(int(rids[i]), float(top[i])) for i in order]

    # ------------------------------------------------------------ internals
    def _positions(self, rowids: RowIds) -> Positions:
        """Live positions of the given rowids (unknown or dead ones are skipped)."""
        keys = self._key_rowids[: self._nk]
        idx = np.searchsorted(keys, rowids)
        inside = idx < self._nk
        idx, rowids = idx[inside], rowids[inside]
        pos = self._key_pos[idx[keys[idx] == rowids]]
        found: Positions = pos[self._alive[pos]]
        return found

    def _append(self, rowids: RowIds, tokens: Sequence[list[str]]) -> int:
        """Index documents at new positions; returns the first one. Caller holds the lock."""
        first = self._n
        m = len(rowids)
        need = first + m
        self._dl = _grow(self._dl, need)
        self._alive = _grow(self._alive, need)
        self._rowids = _grow(self._rowids, need)
        vocab, post_pos, post_tf = self._vocab, self._post_pos, self._post_tf
        get = vocab.get
        flat: list[int] = []
        for toks in tokens:
            tids = [get(term) for term in toks]
            if None in tids:
                for i, tid in enumerate(tids):
                    if tid is None:
                        tid = get(toks[i])
                        if tid is None:
                            tid = vocab[toks[i]] = len(post_pos)
                            post_pos.append(array("i"))
                            post_tf.append(array("H"))
                        tids[i] = tid
            flat.extend(tids)  # type: ignore[arg-type]  # no None left
        lengths = np.fromiter((len(t) for t in tokens), np.int64, m)
        if flat:
            # (term, document) pairs sorted by term then document; counts are the tfs.
            doc = np.repeat(np.arange(m, dtype=np.int64), lengths)
            pairs, counts = np.unique(np.asarray(flat, np.int64) * m + doc, return_counts=True)
            term_of, doc_of = pairs // m, pairs % m
            starts = np.flatnonzero(np.r_[True, term_of[1:] != term_of[:-1]])
            ends = np.r_[starts[1:], len(pairs)]
            pos = (doc_of + first).astype(np.int32)
            tf = np.minimum(counts, _TF_MAX).astype(np.uint16)
            for tid, a, b in zip(
                term_of[starts].tolist(), starts.tolist(), ends.tolist(), strict=True
            ):
                post_pos[tid].frombytes(pos[a:b].tobytes())
                post_tf[tid].frombytes(tf[a:b].tobytes())
        self._dl[first:need] = lengths
        self._alive[first:need] = True
        self._rowids[first:need] = rowids
        self._live_len += int(lengths.sum())
        self._n = need
        return first

    def _kill(self, pos: Positions) -> None:
        """Mark live positions dead (the live count is the caller's business)."""
        self._alive[pos] = False
        self._dead += len(pos)
        self._live_len -= int(self._dl[pos].sum())

    def _maybe_compact(self) -> None:
        """Drop dead positions from every array once they are > 25% (and > 1024)."""
        if self._dead <= 1024 or self._dead <= self._n // 4:
            return
        keep = self._alive[: self._n]
        new_pos = (np.cumsum(keep) - 1).astype(np.int32)
        vocab: dict[str, int] = {}
        post_pos: list[array[int]] = []
        post_tf: list[array[int]] = []
        for term, tid in self._vocab.items():
            pos = np.frombuffer(self._post_pos[tid], np.int32)
            live = keep[pos]
            if not live.any():
                continue
            vocab[term] = len(post_pos)
            post_pos.append(array("i", new_pos[pos[live]].tobytes()))
            post_tf.append(array("H", np.frombuffer(self._post_tf[tid], np.uint16)[live].tobytes()))
        rowids = self._rowids[: self._n][keep]
        order = np.argsort(rowids, kind="stable")
        self._vocab, self._post_pos, self._post_tf = vocab, post_pos, post_tf
        self._dl = self._dl[: self._n][keep]
        self._rowids = rowids
        self._n = self._nk = len(rowids)
        self._alive = np.ones(self._n, bool)
        self._key_rowids = rowids[order]
        self._key_pos = order.astype(np.int32)
        self._dead = 0
