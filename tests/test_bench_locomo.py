"""The LoCoMo benchmark machinery: metric and BM25 on handmade data, then a tiny real run.

The real run spawns ``memos serve`` on a temp data dir and drives it over REST
with one LoCoMo conversation cut to its first two sessions.
"""

from __future__ import annotations

import math

import pytest

from memos.bench.locomo import (
    BM25,
    DEFAULT_DATA,
    Retrieved,
    bm25_search,
    budget_recall,
    format_table,
    full_recall,
    load_samples,
    normalise_evidence,
    run_locomo,
)


def _r(words: int, *ids: str) -> Retrieved:
    return Retrieved(words, frozenset(ids))


def test_bm25_scores_a_handmade_corpus() -> None:
    index = BM25(["apple banana", "apple cherry cherry", "durian"], k1=1.5, b=0.75)
    # N = 3, avgdl = 2. cherry: df 1 -> idf ln(1 + 2.5/1.5) = ln(8/3);
    # doc 1 has tf 2, dl 3 -> 2 * 2.5 / (2 + 1.5 * (0.25 + 0.75 * 3/2)).
    cherry_idf = math.log(8 / 3)
    expected_cherry = cherry_idf * 5 / (2 + 1.5 * 1.375)
    scores = index.scores("cherry")
    assert set(scores) == {1}
    assert scores[1] == pytest.approx(expected_cherry, rel=1e-9)
    assert scores[1] == pytest.approx(1.2071742, rel=1e-6)
    # apple: df 2 -> idf ln(1.6); doc 0 (dl 2) beats doc 1 (dl 3) on apple alone,
    # but doc 1 also has cherry, so it ranks first; durian matches nothing.
    apple_idf = math.log(1.6)
    both = index.scores("Apple and the cherry!")
    assert both[0] == pytest.approx(apple_idf * 2.5 / (1 + 1.5), rel=1e-9)
    assert both[1] == pytest.approx(apple_idf * 2.5 / (1 + 2.0625) + expected_cherry, rel=1e-9)
    assert [doc for doc, _ in index.top("apple cherry", 5)] == [1, 0]
    assert index.scores("the of and") == {}


def test_budget_recall_walks_results_in_rank_order() -> None:
    results = [_r(150, "D1:1"), _r(100, "D1:2"), _r(300, "D1:3"), _r(10, "D1:4")]
    evidence = ["D1:1", "D1:3", "D1:9"]
    assert budget_recall(results, evidence, 200) == pytest.approx(1 / 3)  # 150 fits, 250 not
    assert budget_recall(results, evidence, 550) == pytest.approx(2 / 3)  # 150+100+300 = 550
    assert budget_recall(results, evidence, 549) == pytest.approx(1 / 3)  # stops at the 3rd
    # the first result always counts, even when it alone exceeds the budget
    assert budget_recall([_r(900, "D1:3")], evidence, 200) == pytest.approx(1 / 3)
    assert budget_recall([], evidence, 200) == 0.0
    assert full_recall(results, evidence) == pytest.approx(2 / 3)


def test_evidence_ids_are_normalised() -> None:
    assert normalise_evidence(["D8:6; D9:17", "D:11:26", "D", "D1:3", "D1:3"]) == [
        "D8:6",
        "D9:17",
        "D11:26",
        "D1:3",
    ]


def test_bm25_search_returns_turns_as_results() -> None:
    samples = load_samples(DEFAULT_DATA, limit_samples=1, max_sessions=1)
    turns = samples[0].turns
    index = BM25([t.content for t in turns])
    hits = bm25_search(index, turns, "LGBTQ support group", 3)
    assert hits and "D1:3" in hits[0].sources
    assert hits[0].words == len(turns[2].content.split())


@pytest.mark.timeout(120)
@pytest.mark.skipif(not DEFAULT_DATA.exists(), reason="LoCoMo data not available")
def test_tiny_locomo_run_against_a_real_server() -> None:
    samples = load_samples(DEFAULT_DATA, limit_samples=1, max_sessions=2)
    sample = samples[0]
    assert len(sample.sessions) == 2 and sample.questions
    kept = {t.dia_id for t in sample.turns}
    assert all(set(q.evidence) <= kept for q in sample.questions)

    lines: list[str] = []
    results = run_locomo(samples, progress=lines.append)

    assert any(line.startswith("ingested conv-26") for line in lines)
    assert results["counts"]["messages"] == len(sample.turns)
    overall = results["recall"]["hybrid"]["overall"]
    assert overall["n"] == sum(1 for q in sample.questions if q.category != 5)
    for key in ("200", "500", "1000", "all"):
        assert 0.0 <= overall[key] <= 1.0
        assert 0.0 <= results["recall"]["bm25"]["overall"][key] <= 1.0
    assert overall["500"] > 0.3
    assert overall["200"] <= overall["500"] <= overall["1000"] <= overall["all"]
    assert results["ingest"]["msgs_per_s"] > 0
    assert results["search"]["n"] == len(sample.questions)
    assert results["search"]["p50_ms"] > 0
    assert "overall (1-4)" in format_table(results)
