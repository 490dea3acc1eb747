"""``POST /rerank`` on a real server, one memos server reranking for another, and the SDK.

Limits under test: at most 100 documents and 8,000 tokens across them (the
seed's cap); ``top_n`` above the document count returns them all.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from memos.errors import EmptyField, InvalidParameter
from memos.rerank.http import HttpReranker
from memos.sdk import MemOS, MemOSClient
from memos.settings import load_settings

pytestmark = pytest.mark.timeout(180)

HOBBIES = "What are the user's hobbies?"
DOCS = [
    "User likes playing badminton.",
    "User is a backend developer in Hangzhou.",
    "User prefers concise replies.",
    "User prefers Jiangxiang-flavored baijiu.",
    "User is going on a business trip to Beijing next Wednesday.",
]


def rerank(http: httpx.Client, body: Any) -> httpx.Response:
    return http.post("/rerank", json=body)


def test_seed_example(http: httpx.Client) -> None:
    resp = rerank(
        http, {"model": "memos-reranker-0.6b", "query": HOBBIES, "documents": DOCS, "top_n": 3}
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["code"], body["message"]) == (0, "ok")
    data = body["data"]
    assert set(data) == {"id", "model", "usage", "results"}
    assert data["usage"]["total_tokens"] > 0
    results = data["results"]
    assert len(results) == 3
    assert results[0]["index"] == 0
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert all(r["document"] == {"text": DOCS[r["index"]]} for r in results)


def test_top_n_omitted_or_large_returns_every_document(http: httpx.Client) -> None:
    for extra in ({}, {"top_n": 50}):
        data = rerank(http, {"query": HOBBIES, "documents": DOCS, **extra}).json()["data"]
        assert sorted(r["index"] for r in data["results"]) == list(range(5))


def test_duplicates_and_empty_strings_are_ranked_not_merged(http: httpx.Client) -> None:
    data = rerank(http, {"query": "tea", "documents": ["tea", "tea", ""]}).json()["data"]
    assert sorted(r["index"] for r in data["results"]) == [0, 1, 2]


def test_nothing_is_stored(http: httpx.Client) -> None:
    user = f"rr-{uuid.uuid4().hex[:8]}"
    rerank(http, {"query": "tea", "documents": ["green tea"], "user_id": user})
    page = http.post("/get/memory", json={"user_id": user}).json()["data"]
    assert page["total"] == 0


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"query": HOBBIES, "documents": []}, 40003),
        ({"query": HOBBIES}, 40002),
        ({"documents": DOCS}, 40002),
        ({"query": "   ", "documents": DOCS}, 40002),
        ({"query": HOBBIES, "documents": "User likes badminton."}, 40000),
        ({"query": HOBBIES, "documents": [1, 2]}, 40000),
        ({"query": HOBBIES, "documents": [{"text": "a"}]}, 40000),
        ({"query": HOBBIES, "documents": [None]}, 40000),
        ({"query": ["a"], "documents": DOCS}, 40000),
        ({"query": HOBBIES, "documents": ["d"] * 101}, 40000),
        ({"query": HOBBIES, "documents": ["word " * 4001, "word " * 4001]}, 40305),
        ({"query": "word " * 4001, "documents": DOCS}, 40305),
        ({"query": HOBBIES, "documents": DOCS, "top_n": 0}, 40000),
        ({"query": HOBBIES, "documents": DOCS, "top_n": -3}, 40000),
        ({"query": HOBBIES, "documents": DOCS, "top_n": "three"}, 40000),
        ({"query": HOBBIES, "documents": DOCS, "top_n": 1.5}, 40000),
        ({"query": HOBBIES, "documents": DOCS, "model": "gpt-4o"}, 40000),
    ],
)
def test_bad_input_gets_its_code_never_a_500(http: httpx.Client, body: Any, code: int) -> None:
    resp = rerank(http, body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == code, resp.text


def test_limits_at_the_edge_are_accepted(http: httpx.Client) -> None:
    docs = [f"document number {i}" for i in range(100)]
    resp = rerank(http, {"query": "number 42", "documents": docs, "top_n": 1})
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["data"]["results"]) == 1


def test_malformed_json_is_40000(http: httpx.Client) -> None:
    resp = http.post("/rerank", content=b'{"query": ', headers={"Content-Type": "application/json"})
    assert (resp.status_code, resp.json()["code"]) == (400, 40000)


def test_http_reranker_reads_a_memos_server(server: Any) -> None:
    rr = HttpReranker(server.base_url + "/rerank", model="memos-reranker-0.6b")
    got = rr.rerank(HOBBIES, DOCS, 2)
    assert [r.index for r in got][0] == 0 and len(got) == 2
    assert HttpReranker(server.base_url).rerank(HOBBIES, DOCS)[0].index == 0
    rr.close()


def test_sdk_faces_answer_alike(server: Any, tmp_path: Any) -> None:
    local = MemOS(
        settings=load_settings({"data_dir": tmp_path, "embedder": {"kind": "minilm"}}, environ={})
    )
    with local, MemOSClient(server.base_url) as remote:
        mine, theirs = local.rerank(HOBBIES, DOCS, 2), remote.rerank(HOBBIES, DOCS, 2)
        assert [r["index"] for r in mine["results"]] == [r["index"] for r in theirs["results"]]
        assert mine["model"] == theirs["model"]
        for face in (local, remote):
            with pytest.raises(EmptyField):
                face.rerank(HOBBIES, [])
            with pytest.raises(InvalidParameter):
                face.rerank(HOBBIES, DOCS, model="nope")


def test_server_reranking_through_another_server(restartable_server: Any) -> None:
    """MEMOS_RERANKER__KIND=http against a second real server: scoped, reordered results."""
    judge = restartable_server(embedder="minilm")
    front = restartable_server(
        env={
            "MEMOS_RERANKER__KIND": "http",
            "MEMOS_RERANKER__BASE_URL": judge.base_url,
            "MEMOS_RERANKER__TOP_N": "10",
        }
    )
    with front.client() as c:
        for user, texts in {
            "rr-alice": DOCS,
            "rr-bob": ["Bob plays badminton every weekend.", "Bob's hobby is chess."],
        }.items():
            resp = c.post(
                "/add/message",
                json={
                    "user_id": user,
                    "conversation_id": "c1",
                    "messages": [{"role": "user", "content": t} for t in texts],
                },
            )
            assert resp.json()["code"] == 0, resp.text
        alice = {
            m["id"]: m["memory_value"]
            for m in c.post("/get/memory", json={"user_id": "rr-alice", "size": 50}).json()["data"][
                "memory_detail_list"
            ]
        }
        resp = c.post(
            "/search/memory",
            json={
                "user_id": "rr-alice",
                "query": HOBBIES,
                "relativity": 0,
                "memory_limit_number": 10,
            },
        )
        assert resp.status_code == 200, resp.text
        hits = resp.json()["data"]["memory_detail_list"]
        product = c.post(
            "/product/search", json={"user_id": "rr-alice", "query": HOBBIES, "top_k": 3}
        ).json()
    # every memory of Alice's, once, nothing of Bob's, the judge's favourite first
    assert sorted(h["id"] for h in hits) == sorted(alice)
    assert hits[0]["memory_value"] == "User likes playing badminton."
    assert all("Bob" not in h["memory_value"] for h in hits)
    assert product["code"] == 200, product
    assert "POST /rerank 200" in judge.log_tail()


def test_an_unreachable_reranker_does_not_fail_search(restartable_server: Any) -> None:
    front = restartable_server(
        env={
            "MEMOS_RERANKER__KIND": "http",
            "MEMOS_RERANKER__BASE_URL": "http://127.0.0.1:9",
            "MEMOS_RERANKER__TIMEOUT_S": "2",
        }
    )
    with front.client() as c:
        c.post(
            "/add/message",
            json={
                "user_id": "u",
                "conversation_id": "c",
                "messages": [
                    {"role": "user", "content": "I like tea"},
                    {"role": "user", "content": "I like hikes"},
                ],
            },
        )
        resp = c.post("/search/memory", json={"user_id": "u", "query": "tea", "relativity": 0})
        assert resp.status_code == 200 and len(resp.json()["data"]["memory_detail_list"]) == 2
        # /rerank itself says the configured reranker is unavailable (50004), not 500
        resp = c.post("/rerank", json={"query": "tea", "documents": ["a", "b"]})
        assert (resp.status_code, resp.json()["code"]) == (503, 50004)
    assert "keeping search order" in front.log_tail()
