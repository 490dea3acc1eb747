"""Both API dialects end to end against a real ``memos serve`` subprocess (MiniLM)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.timeout(180)


def ok(resp: httpx.Response, code: int = 0) -> Any:
    assert resp.status_code == 200, f"{resp.status_code}: {resp.text[:2000]}"
    body = resp.json()
    assert set(body) == {"code", "message", "data"}, body
    assert body["code"] == code, body
    return body["data"]


def uid(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def add(http: httpx.Client, user: str, texts: list[str], conversation: str | None = None,
        **extra: Any) -> list[str]:
    """Add user messages (one per text) with fresh client message ids; returns the ids."""
    mids = [uid("msg") for _ in texts]
    body = {
        "user_id": user,
        "conversation_id": conversation or uid("conv"),
        "messages": [{"role": "user", "content": t, "message_id": m}
                     for t, m in zip(texts, mids, strict=True)],
        **extra,
    }
    data = ok(http.post("/add/message", json=body))
    assert data["success"] is True and data["status"] in ("completed", "running", "pending")
    return mids


def search(http: httpx.Client, user: str, query: str, **extra: Any) -> list[dict[str, Any]]:
    data = ok(http.post("/search/memory", json={"user_id": user, "query": query, **extra}))
    hits: list[dict[str, Any]] = data["memory_detail_list"]
    for hit in hits:
        assert 0.0 <= hit["relativity"] <= 1.0, hit
    return hits


def listed(http: httpx.Client, user: str, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = ok(http.post("/get/memory", json={"user_id": user, "size": 50,
                                                             **extra}))
    return data


FACTS = [
    "I adopted a border collie named Pepper last spring.",
    "My favourite food is spicy Sichuan hotpot.",
    "I work as a marine biologist studying coral reefs.",
    "My sister Lena lives in Toronto with her two kids.",
    "I am training for the Berlin marathon in September.",
    "I play the cello in a community orchestra on Thursdays.",
    "I am allergic to penicillin.",
    "My car is a blue 2015 Subaru Outback.",
    "I grew up in a small village near Porto.",
    "I am learning Japanese with a tutor twice a week.",
    "My favourite book is One Hundred Years of Solitude.",
    "I drink oat milk because I am lactose intolerant.",
    "My daughter's birthday is on March 3rd.",
    "I collect vintage film cameras, mostly Leicas.",
    "We are planning a trip to Iceland to see the northern lights.",
]


# ============================================================= cloud dialect
def test_cloud_add_search_get_delete_round_trip(http: httpx.Client) -> None:
    user, conv = uid(), uid("conv")
    messages = [
        {"role": "system", "content": "You are a helpful assistant.", "message_id": "sys-1"},
        {"role": "user", "content": "I live in Hangzhou and I work as a nurse.",
         "message_id": "m-1", "chat_time": "2025-09-12 08:00:00"},
        {"role": "assistant", "content": "Hangzhou is lovely; nursing is demanding work.",
         "message_id": "m-2", "chat_time": "2025-09-12 08:00:05"},
        {"role": "user", "content": "My cat is called Tofu.", "message_id": "m-3"},
    ]
    data = ok(http.post("/add/message", json={"user_id": user, "conversation_id": conv,
                                               "messages": messages}))
    assert data["success"] is True and data["task_id"]
    status = ok(http.post("/get/status", json={"task_id": data["task_id"]}))
    assert status["status"] == "completed"

    # every message is stored verbatim, in order
    msgs = ok(http.post("/get/message", json={"user_id": user, "conversation_id": conv,
                                              "message_limit_number": 10}))
    detail = msgs["message_detail_list"]
    assert [m["message_id"] for m in detail] == ["sys-1", "m-1", "m-2", "m-3"]
    assert [m["role"] for m in detail] == ["system", "user", "assistant", "user"]
    assert detail[1]["content"] == messages[1]["content"]
    assert detail[1]["chat_time"] == "2025-09-12 08:00:00"
    assert all(m["conversation_id"] == conv for m in detail)
    # the default message limit is 6 and keeps the most recent
    assert len(ok(http.post("/get/message", json={"user_id": user, "conversation_id": conv,
                                                  "message_limit_number": 2}))
               ["message_detail_list"]) == 2

    # the system prompt is not a memory; every memory names its source message
    page = listed(http, user)
    memories = page["memory_detail_list"]
    assert page["total"] == 3 == len(memories)
    by_source = {m["sources"][0]["message_id"]: m for m in memories}
    assert set(by_source) == {"m-1", "m-2", "m-3"}
    assert by_source["m-1"]["memory_value"] == messages[1]["content"]
    assert by_source["m-1"]["sources"][0]["role"] == "user"
    assert by_source["m-1"]["sources"][0]["chat_time"] == "2025-09-12 08:00:00"
    assert by_source["m-1"]["memory_time"].startswith("2025-09-12T08:00:00")
    assert all(m["conversation_id"] == conv for m in memories)

    hits = search(http, user, "Where does the user live?")
    assert hits, "search found nothing"
    assert hits[0]["id"] == by_source["m-1"]["id"]
    for hit in hits:
        assert hit["sources"] and hit["sources"][0]["message_id"] in {"m-1", "m-2", "m-3"}
    cat = search(http, user, "What is my cat's name?")
    assert cat[0]["memory_value"] == "My cat is called Tofu."

    # delete one by id: gone from search and listing
    target = by_source["m-1"]["id"]
    deleted = ok(http.post("/delete/memory", json={"memory_ids": [target], "user_ids": [user]}))
    assert deleted["success"] is True and deleted.get("deleted_count", 1) == 1
    assert target not in {h["id"] for h in search(http, user, "Where does the user live?",
                                                   relativity=0)}
    assert {m["id"] for m in listed(http, user)["memory_detail_list"]} == {
        by_source["m-2"]["id"], by_source["m-3"]["id"]}
    # deleting it again is "not found"
    again = http.post("/delete/memory", json={"memory_ids": [target], "user_ids": [user]})
    assert again.status_code == 404 and again.json()["code"] == 40307

    # delete everything of the user
    ok(http.post("/delete/memory", json={"user_id": user}))
    assert listed(http, user)["total"] == 0
    assert search(http, user, "cat", relativity=0) == []
    # raw messages are kept
    assert len(ok(http.post("/get/message", json={"user_id": user, "conversation_id": conv}))
               ["message_detail_list"]) == 4


def test_cloud_get_memory_pagination(http: httpx.Client) -> None:
    user = uid()
    add(http, user, FACTS[:12])
    first = ok(http.post("/get/memory", json={"user_id": user, "page": 1, "size": 5}))
    assert (first["total"], first["size"], first["current"], first["pages"]) == (12, 5, 1, 3)
    pages = [ok(http.post("/get/memory", json={"user_id": user, "page": p, "size": 5}))
             for p in (1, 2, 3, 4)]
    ids = [m["id"] for p in pages for m in p["memory_detail_list"]]
    assert [len(p["memory_detail_list"]) for p in pages] == [5, 5, 2, 0]
    assert len(set(ids)) == 12
    default = ok(http.post("/get/memory", json={"user_id": user}))
    assert len(default["memory_detail_list"]) == 10


# =========================================================== product dialect
def test_product_add_search_get_delete_round_trip(http: httpx.Client) -> None:
    health = http.get("/health")
    assert health.status_code == 200
    assert health.json()["code"] == 200 and health.json()["data"]["status"] == "ok"

    user = uid("pu")
    body = {
        "user_id": user,
        "messages": [
            {"role": "user", "content": "I moved to Lisbon in 2021 for work.",
             "message_id": "p-1", "chat_time": "2024-03-01 10:00:00"},
            {"role": "assistant", "content": "Lisbon has great weather.", "message_id": "p-2"},
        ],
        "session_id": "sess-1",
        "custom_tags": ["relocation"],
    }
    added = ok(http.post("/product/add", json=body), code=200)
    assert len(added) == 2
    assert all(a["cube_id"] == user and a["memory_id"] for a in added)
    # the legacy shapes: a plain string and memory_content
    ok(http.post("/product/add", json={"user_id": user,
                                       "messages": "I speak Portuguese fluently."}), code=200)
    ok(http.post("/product/add", json={"user_id": user,
                                       "memory_content": "I own a bakery called Sol."}), code=200)

    result = ok(http.post("/product/search", json={"user_id": user,
                                                    "query": "Which city did I move to?"}),
                code=200)
    groups = result["text_mem"]
    assert [g["cube_id"] for g in groups] == [user]
    found = groups[0]["memories"]
    assert found and found[0]["memory"] == "I moved to Lisbon in 2021 for work."
    for item in found:
        meta = item["metadata"]
        assert 0.0 <= meta["relativity"] <= 1.0
        assert meta["user_id"] == user
        assert meta["sources"], item
    assert found[0]["metadata"]["sources"][0]["message_id"] == "p-1"
    assert found[0]["metadata"]["session_id"] == "sess-1"
    assert "relocation" in found[0]["metadata"]["tags"]
    assert len(ok(http.post("/product/search", json={"user_id": user, "query": "city",
                                                     "top_k": 1}), code=200)
               ["text_mem"][0]["memories"]) == 1

    everything = ok(http.post("/product/get_all", json={"user_id": user,
                                                         "memory_type": "text_mem"}), code=200)
    assert everything[0]["cube_id"] == user
    values = {m["memory"] for m in everything[0]["memories"]}
    assert values == {"I moved to Lisbon in 2021 for work.", "Lisbon has great weather.",
                      "I speak Portuguese fluently.", "I own a bakery called Sol."}
    page = ok(http.post("/product/get_memory", json={"user_id": user}), code=200)
    assert page["total"] == 4 and len(page["memory_detail_list"]) == 4

    target = added[0]["memory_id"]
    one = ok(http.get(f"/product/get_memory/{target}", params={"user_id": user}), code=200)
    assert [m["id"] for m in one["memory_detail_list"]] == [target]
    assert one["memory_detail_list"][0]["sources"][0]["message_id"] == "p-1"

    gone = ok(http.post("/product/delete_memory", json={"user_id": user,
                                                         "memory_ids": [target]}), code=200)
    assert gone["success"] is True
    missing = http.get(f"/product/get_memory/{target}", params={"user_id": user})
    assert missing.status_code == 404 and missing.json()["code"] == 404
    after = ok(http.post("/product/search", json={"user_id": user, "query": "Lisbon move"}),
               code=200)
    assert target not in {m["id"] for g in after["text_mem"] for m in g["memories"]}
    assert ok(http.post("/product/get_memory", json={"user_id": user}), code=200)["total"] == 3


def test_product_explicit_cube_round_trip(http: httpx.Client) -> None:
    user = uid("pu")
    cube = uid("cube")
    ok(http.post("/product/add", json={"user_id": user, "writable_cube_ids": [cube],
                                       "messages": [{"role": "user",
                                                     "content": "Project Falcon ships in May."}]}),
       code=200)
    result = ok(http.post("/product/search", json={"user_id": user, "query": "Falcon",
                                                    "readable_cube_ids": [cube]}), code=200)
    assert [g["cube_id"] for g in result["text_mem"]] == [cube]
    assert result["text_mem"][0]["memories"][0]["memory"] == "Project Falcon ships in May."
    # the user's own default cube does not contain it
    own = ok(http.post("/product/search", json={"user_id": user, "query": "Falcon"}), code=200)
    assert all(not g["memories"] for g in own["text_mem"])


# ============================================================ search options
def test_every_search_hit_carries_sources_and_relativity(http: httpx.Client) -> None:
    user = uid()
    mids = add(http, user, FACTS)
    for query in ("What instrument do I play?", "Am I allergic to anything?", "pets"):
        hits = search(http, user, query, relativity=0)
        assert hits
        for hit in hits:
            assert hit["sources"][0]["message_id"] in mids
            assert hit["sources"][0]["role"] == "user"


def test_conversation_id_boosts_without_filtering(http: httpx.Client) -> None:
    user = uid()
    conv_a, conv_b = uid("conv"), uid("conv")
    add(http, user, ["I like the colour blue for my bedroom walls."], conv_a)
    add(http, user, ["I like the colour green for my bedroom walls."], conv_b)
    query = "What colour do I like for the bedroom walls?"
    for favoured in (conv_a, conv_b):
        hits = search(http, user, query, conversation_id=favoured, relativity=0)
        assert len(hits) == 2, "conversation_id must not filter other conversations out"
        assert hits[0]["conversation_id"] == favoured
        assert {h["conversation_id"] for h in hits} == {conv_a, conv_b}


def test_filter_by_agent_id(http: httpx.Client) -> None:
    user = uid()
    add(http, user, ["The deployment window is Friday night."], agent_id="ops-agent")
    add(http, user, ["The deployment window is Monday morning."], agent_id="dev-agent")
    add(http, user, ["The deployment window is undecided."])
    hits = search(http, user, "When is the deployment window?", relativity=0,
                  filter={"agent_id": "ops-agent"})
    assert [h["memory_value"] for h in hits] == ["The deployment window is Friday night."]
    assert hits[0]["agent_id"] == "ops-agent"
    page = listed(http, user, filter={"agent_id": "dev-agent"})
    assert [m["memory_value"] for m in page["memory_detail_list"]] == [
        "The deployment window is Monday morning."]
    everything = search(http, user, "When is the deployment window?", relativity=0)
    assert len(everything) == 3


def test_filter_tags_contains(http: httpx.Client) -> None:
    user = uid()
    add(http, user, ["Booked a hotel in Kyoto for April."], tags=["travel"])
    add(http, user, ["Kyoto office review is in April."], tags=["work"])
    add(http, user, ["Kyoto has great ramen."], tags=["travel", "food"])
    hits = search(http, user, "Kyoto in April", relativity=0,
                  filter={"tags": {"contains": "travel"}})
    assert {h["memory_value"] for h in hits} == {"Booked a hotel in Kyoto for April.",
                                                 "Kyoto has great ramen."}
    assert all("travel" in h["tags"] for h in hits)
    page = listed(http, user, filter={"and": [{"tags": {"contains": "travel"}},
                                              {"tags": {"contains": "food"}}]})
    assert [m["memory_value"] for m in page["memory_detail_list"]] == ["Kyoto has great ramen."]


def test_relativity_threshold(http: httpx.Client) -> None:
    user = uid()
    add(http, user, FACTS)
    query = "Tell me about the user's hobbies"
    strict = search(http, user, query, relativity=0.99, memory_limit_number=10)
    assert len(strict) <= 1
    assert all(h["relativity"] >= 0.99 for h in strict)
    default = search(http, user, query, memory_limit_number=10)
    assert all(h["relativity"] >= 0.45 for h in default)
    everything = search(http, user, query, relativity=0, memory_limit_number=10)
    assert len(everything) == 10
    assert len(default) <= len(everything)
    mid = search(http, user, query, relativity=0.6, memory_limit_number=25)
    assert all(h["relativity"] >= 0.6 for h in mid)


def test_memory_limit_number_defaults_to_nine(http: httpx.Client) -> None:
    user = uid()
    add(http, user, FACTS)
    assert len(search(http, user, "facts about me", relativity=0)) == 9
    assert len(search(http, user, "facts about me", relativity=0, memory_limit_number=3)) == 3
    assert len(search(http, user, "facts about me", relativity=0,
                      memory_limit_number=25)) == len(FACTS)


def test_identical_texts_added_twice_are_returned_once(http: httpx.Client) -> None:
    user = uid()
    text = "My passport number ends in 4471."
    add(http, user, [text])
    add(http, user, [text])
    add(http, user, ["My passport expires in 2031."])
    hits = search(http, user, "What is my passport number?", relativity=0)
    values = [h["memory_value"] for h in hits]
    assert values.count(text) == 1, values
    assert "My passport expires in 2031." in values


def test_retried_add_with_same_message_ids_is_stored_once(http: httpx.Client) -> None:
    user, conv = uid(), uid("conv")
    body = {"user_id": user, "conversation_id": conv,
            "messages": [{"role": "user", "content": "I run every morning.",
                          "message_id": "retry-1"}]}
    ok(http.post("/add/message", json=body))
    ok(http.post("/add/message", json=body))
    msgs = ok(http.post("/get/message", json={"user_id": user, "conversation_id": conv}))
    assert [m["message_id"] for m in msgs["message_detail_list"]] == ["retry-1"]
    assert listed(http, user)["total"] == 1
