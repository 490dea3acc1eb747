"""CubeLexicon against a brute-force BM25 reference, plus tokeniser behaviour."""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memos.store.sqlite.lexical_index import CubeLexicon
from memos.text.lexical import lexical_tokens

WORDS = [
    "apple", "banana", "cherry", "river", "mountain", "run", "runs", "running", "paint",
    "painting", "dog", "cat", "school", "music", "guitar", "the", "and", "x", "42", "杭州",
]  # fmt: skip


def reference(
    docs: dict[int, str], query: str, allowed: set[int] | None
) -> list[tuple[int, float]]:
    """Every matching live doc with its Okapi BM25 (float64), best first, ties by rowid."""
    toks = {r: lexical_tokens(t) for r, t in docs.items()}
    n = len(toks)
    if not n:
        return []
    avgdl = sum(len(t) for t in toks.values()) / n
    counts = {r: Counter(t) for r, t in toks.items()}
    scores: dict[int, float] = {}
    for term in dict.fromkeys(lexical_tokens(query)):
        df = sum(1 for c in counts.values() if term in c)
        if not df:
            continue
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for r, c in counts.items():
            tf = c.get(term, 0)
            if tf:
                norm = 1.2 * (1 - 0.75 + 0.75 * len(toks[r]) / avgdl)
                scores[r] = scores.get(r, 0.0) + idf * tf * 2.2 / (tf + norm)
    hits = [(r, s) for r, s in scores.items() if allowed is None or r in allowed]
    return sorted(hits, key=lambda h: (-h[1], h[0]))


def check(got: list[tuple[int, float]], ref: list[tuple[int, float]], k: int) -> None:
    """Same scores rank by rank; rowids may only differ inside (near-)ties."""
    assert len(got) == min(k, len(ref))
    assert len({r for r, _ in got}) == len(got)
    by_id = dict(ref)
    for (r, s), (_, s_ref) in zip(got, ref, strict=False):
        assert s > 0
        assert abs(s - s_ref) < 1e-4
        assert abs(by_id[r] - s) < 1e-4
    for (r1, s1), (r2, s2) in zip(got, got[1:], strict=False):
        assert s1 > s2 or (s1 == s2 and r1 < r2)


def random_text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 8)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(1, 12))
def test_matches_reference_under_adds_removes_replaces(seed: int, steps: int) -> None:
    rng = random.Random(seed)
    lex, docs, next_id = CubeLexicon(0), {}, 1
    for _ in range(steps):
        op = rng.random()
        if op < 0.5 or not docs:
            ids = []
            for _ in range(rng.randint(1, 6)):
                ids.append(next_id)
                next_id += rng.randint(1, 3)
            texts = [random_text(rng) for _ in ids]
            lex.add(ids, texts)
            docs.update(zip(ids, texts, strict=True))
        elif op < 0.75:
            gone = rng.sample(sorted(docs), rng.randint(1, len(docs))) + [next_id + 100]
            lex.remove(gone)
            for r in gone:
                docs.pop(r, None)
        else:
            r = rng.choice(sorted(docs))
            docs[r] = random_text(rng)
            lex.replace(r, docs[r])
        assert len(lex) == len(docs)
        query = " ".join(rng.sample(WORDS, rng.randint(1, 4)))
        k = rng.randint(1, 8)
        check(lex.search(query, k), reference(docs, query, None), k)
        if docs:
            allowed = sorted(rng.sample(sorted(docs), rng.randint(0, len(docs))))
            got = lex.search(query, k, np.asarray(allowed + [next_id + 7], np.int64))
            check(got, reference(docs, query, set(allowed)), k)


def test_compaction_keeps_results_exact() -> None:
    rng = random.Random(3)
    lex, docs = CubeLexicon(0), {}
    ids = list(range(10, 10 + 4000))
    texts = [random_text(rng) for _ in ids]
    lex.add(ids, texts)
    docs.update(zip(ids, texts, strict=True))
    for r in rng.sample(ids, 300):
        docs[r] = random_text(rng)
        lex.replace(r, docs[r])
    gone = rng.sample(ids, 1500)
    lex.remove(gone)
    for r in gone:
        del docs[r]
    assert lex._dead == 0  # compaction ran
    lex.add([50_000, 50_001], ["river dog", "apple"])
    docs.update({50_000: "river dog", 50_001: "apple"})
    for r in rng.sample(sorted(docs), 50):
        docs[r] = random_text(rng)
        lex.replace(r, docs[r])
    victim = rng.choice(sorted(docs))
    lex.remove([*gone[:10], victim])  # already gone, then one live
    del docs[victim]
    assert len(lex) == len(docs)
    for q in ["river dog", "apple banana cherry", "running paint 42", "杭州 guitar"]:
        allowed = sorted(rng.sample(sorted(docs), 500))
        check(lex.search(q, 20), reference(docs, q, None), 20)
        check(
            lex.search(q, 20, np.asarray(allowed, np.int64)), reference(docs, q, set(allowed)), 20
        )


def test_chinese_query_finds_chinese_doc() -> None:
    lex = CubeLexicon(0)
    lex.add([1, 2, 3], ["我住在杭州，喜欢西湖。", "I moved to Berlin last year.", "上海的天气很好"])
    hits = lex.search("杭州", 5)
    assert [r for r, _ in hits] == [1]


def test_stemming_matches_inflections() -> None:
    lex = CubeLexicon(0)
    lex.add([1, 2, 3], ["Caroline runs every morning", "We run a bakery", "Melanie paints"])
    assert {r for r, _ in lex.search("running", 10)} == {1, 2}
    assert lexical_tokens("running runs run") == ["run", "run", "run"]


def test_empty_and_stopword_queries_return_nothing() -> None:
    lex = CubeLexicon(0)
    lex.add([1], ["the cat and the dog"])
    assert lex.search("", 5) == []
    assert lex.search("the and of to a", 5) == []
    assert lex.search("zebra", 5) == []
    assert lex.search("cat", 0) == []
    assert CubeLexicon(0).search("cat", 5) == []


def test_k_larger_than_matches_and_allowed_filter() -> None:
    lex = CubeLexicon(7)
    lex.add([1, 2, 3, 4], ["red apple", "green apple", "blue sky", "apple apple pie"])
    hits = lex.search("apple", 100)
    assert sorted(r for r, _ in hits) == [1, 2, 4]
    assert hits[0][0] == 4  # highest tf wins
    assert hits[1:] == sorted(hits[1:], key=lambda h: h[0])  # equal scores: rowid order
    only = lex.search("apple", 100, np.asarray([2, 3, 99], np.int64))
    assert [r for r, _ in only] == [2]
    assert lex.search("apple", 100, np.zeros(0, np.int64)) == []
    unsorted = lex.search("apple", 100, np.asarray([4, 2, 2, 0], np.int64))
    assert [r for r, _ in unsorted] == [4, 2]
    assert lex.generation == 7


def test_add_rejects_non_increasing_rowids() -> None:
    lex = CubeLexicon(0)
    lex.add([5], ["a doc"])
    for bad in ([5], [4], [7, 6]):
        try:
            lex.add(bad, ["x"] * len(bad))
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad}")


def test_replace_and_remove_unknown_are_ignored() -> None:
    lex = CubeLexicon(0)
    lex.add([1, 2], ["alpha beta", "gamma"])
    lex.remove([2, 2, 99])
    lex.replace(2, "alpha")  # removed: ignored
    lex.replace(42, "alpha")  # unknown: ignored
    assert len(lex) == 1
    assert [r for r, _ in lex.search("alpha", 5)] == [1]
    lex.replace(1, "delta")
    assert lex.search("alpha", 5) == []
    assert [r for r, _ in lex.search("delta", 5)] == [1]


def test_concurrent_writes_and_searches() -> None:
    """Searches score outside the lock while a writer appends, replaces and compacts."""
    import threading

    rng = random.Random(5)
    lex = CubeLexicon(0)
    lex.add(list(range(1, 3001)), [random_text(rng) for _ in range(3000)])
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        try:
            while not done.is_set():
                for r, s in lex.search("apple river running", 20):
                    assert s > 0 and r > 0
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    wrng = random.Random(6)
    next_id = 3001
    for _ in range(200):
        lex.add([next_id, next_id + 1], [random_text(wrng), random_text(wrng)])
        next_id += 2
        lex.remove(wrng.sample(range(1, next_id), 20))
        lex.replace(wrng.randrange(1, next_id), random_text(wrng))
    done.set()
    for t in threads:
        t.join()
    assert not errors
