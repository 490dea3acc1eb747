"""Reranker adapters, settings and the service's rerank post-step, in-process.

HTTP adapters talk to a real loopback server (``json_server``); the LLM
reranker's parsing is driven by a deterministic fake LLM, because the property
that matters (every document exactly once, no exception) must hold for any
reply a model can produce.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memos.domain.models import MessageInput
from memos.errors import ConfigError, ProviderError
from memos.llm import build_llm
from memos.llm.base import ChatMessage, JsonSchema, LLMError
from memos.llm.openai_compat import OpenAIChatLLM
from memos.rerank import RerankResult, build_reranker, finish
from memos.rerank.http import HttpReranker
from memos.rerank.llm import LLMReranker, parse_ranking
from memos.service import MemoryService
from memos.settings import RerankerSettings, Settings, load_settings

JsonServer = Any  # the ``json_server`` fixture's object (tests/conftest.py)


def make_settings(data_dir: Path, **extra: Any) -> Settings:
    return load_settings({"data_dir": data_dir, "embedder": {"kind": "hash"}, **extra}, environ={})


DOCS = ["alpha apples", "beta bananas", "gamma grapes", "delta dates"]


# ------------------------------------------------------------------ helpers
class FakeLLM:
    """Answers every chat with a fixed reply (or raises), recording what it was asked."""

    def __init__(self, reply: str | Exception) -> None:
        self.reply = reply
        self.calls: list[tuple[Sequence[ChatMessage], JsonSchema | None]] = []

    @property
    def name(self) -> str:
        return "fake"

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        json_schema: JsonSchema | None = None,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> str:
        self.calls.append((messages, json_schema))
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply

    def close(self) -> None:
        return None


def order(results: list[RerankResult]) -> list[int]:
    return [r.index for r in results]


def llm_order(reply: str | Exception, n: int = 4) -> list[int]:
    return order(LLMReranker(FakeLLM(reply)).rerank("q", DOCS[:n]))


# ------------------------------------------------------------ port helper
def test_finish_sorts_dedups_and_keeps_every_document() -> None:
    got = finish(
        [RerankResult(2, 0.9), RerankResult(2, 0.1), RerankResult(0, 0.5), RerankResult(9, 1.0)],
        4,
        None,
    )
    assert order(got) == [2, 0, 1, 3]
    assert [r.score for r in got] == [0.9, 0.5, 0.0, 0.0]
    assert order(finish([RerankResult(1, 0.2), RerankResult(3, 0.7)], 4, 2)) == [3, 1]


# ------------------------------------------------------------ LLM reranker
@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"ranking": [2, 0, 3, 1]}', [2, 0, 3, 1]),
        ('```json\n{"ranking": [3, 2, 1, 0]}\n```', [3, 2, 1, 0]),
        ('Sure! Here it is: {"ranking": [1, 3]} hope that helps', [1, 3, 0, 2]),
        ("[2, 1]", [2, 1, 0, 3]),
        ('{"ranking": ["3", "[0]", 2, 1]}', [3, 0, 2, 1]),
        # out-of-range, negative and boolean entries are skipped
        ('{"ranking": [7, -1, true, 2, 99]}', [2, 0, 1, 3]),
        # duplicates count once, at their first place
        ('{"ranking": [1, 1, 3, 1, 3]}', [1, 3, 0, 2]),
    ],
)
def test_llm_reply_is_repaired_into_a_permutation(reply: str, expected: list[int]) -> None:
    assert llm_order(reply) == expected


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "not json at all",
        '{"ranking": "2,1"}',
        '{"order": [1, 2]}',
        '{"ranking": [9, 8]}',
        '{"ranking": [0, 1',
        "null",
    ],
)
def test_unusable_reply_keeps_the_input_order_with_a_warning(
    reply: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="memos.rerank.llm"):
        assert llm_order(reply) == [0, 1, 2, 3]
    assert "kept the input order" in caplog.text


def test_llm_error_keeps_the_input_order(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="memos.rerank.llm"):
        assert llm_order(LLMError("connection refused")) == [0, 1, 2, 3]
    assert "connection refused" in caplog.text


def test_llm_prompt_numbers_documents_and_asks_for_the_schema() -> None:
    fake = FakeLLM('{"ranking": [1, 0, 2]}')
    results = LLMReranker(fake, max_doc_chars=8).rerank("fruit?", ["a " * 50, "b", "c"], 2)
    assert order(results) == [1, 0]
    assert results[0].score > results[1].score
    messages, schema = fake.calls[0]
    prompt = messages[-1]["content"]
    assert "Query: fruit?" in prompt and "[0] a a a a ..." in prompt and "[2] c" in prompt
    assert schema is not None
    assert schema["properties"]["ranking"]["items"]["enum"] == [0, 1, 2]


def test_llm_reranker_skips_the_model_when_there_is_nothing_to_order() -> None:
    fake = FakeLLM("unused")
    assert LLMReranker(fake).rerank("q", []) == []
    assert order(LLMReranker(fake).rerank("q", ["only"])) == [0]
    assert fake.calls == []


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 12),
    reply=st.one_of(
        st.text(max_size=60),
        st.lists(
            st.one_of(st.integers(-3, 15), st.text(max_size=3), st.booleans()), max_size=20
        ).map(lambda xs: json.dumps({"ranking": xs})),
    ),
)
def test_any_reply_yields_every_document_exactly_once(n: int, reply: str) -> None:
    got = (
        llm_order(reply, n)
        if n <= len(DOCS)
        else order(LLMReranker(FakeLLM(reply)).rerank("q", [f"d{i}" for i in range(n)]))
    )
    assert sorted(got) == list(range(n))
    assert parse_ranking(reply, n) in (None, got)


# ----------------------------------------------------------- HTTP reranker
def cohere(body: Any) -> tuple[int, Any]:
    """Scores by word overlap; best first, Cohere's shape, honouring top_n."""
    words = set(body["query"].split())
    scored = [
        {"index": i, "relevance_score": len(words & set(d.split())) / 10}
        for i, d in enumerate(body["documents"])
    ]
    scored.sort(key=lambda r: -r["relevance_score"])
    return 200, {"results": scored[: body.get("top_n") or len(scored)]}


def test_http_reranker_speaks_cohere(json_server: JsonServer) -> None:
    json_server.routes["/v1/rerank"] = cohere
    rr = HttpReranker(json_server.base_url + "/v1", model="bge", api_key="k", timeout_s=5)
    got = rr.rerank("gamma grapes are good", DOCS, 2)
    assert order(got) == [2, 0]
    assert json_server.requests[-1] == (
        "/v1/rerank",
        {"query": "gamma grapes are good", "documents": DOCS, "model": "bge", "top_n": 2},
    )
    rr.close()


def test_http_reranker_reads_tei_lists_and_memos_envelopes(json_server: JsonServer) -> None:
    json_server.routes["/tei/rerank"] = lambda b: (
        200,
        [{"index": 1, "score": 0.9}, {"index": 3, "score": 0.2}],
    )
    json_server.routes["/memos/rerank"] = lambda b: (
        200,
        {
            "code": 0,
            "message": "ok",
            "data": {"results": [{"index": 3, "relevance_score": 0.8, "document": {"text": "x"}}]},
        },
    )
    json_server.routes["/list/rerank"] = lambda b: (
        200,
        {"code": 0, "data": [{"index": 0, "relevance_score": 0.3}]},
    )
    # documents a provider leaves out follow in input order; nothing is dropped
    assert order(HttpReranker(json_server.base_url + "/tei").rerank("q", DOCS)) == [1, 3, 0, 2]
    assert order(HttpReranker(json_server.base_url + "/memos/rerank").rerank("q", DOCS)) == [
        3,
        0,
        1,
        2,
    ]
    assert order(HttpReranker(json_server.base_url + "/list").rerank("q", DOCS, 1)) == [0]


@pytest.mark.parametrize(
    ("status", "reply", "needle"),
    [
        (500, {"error": "boom"}, "HTTP 500"),
        (200, "{not json", "unexpected answer"),
        (200, {"results": [{"index": 9, "relevance_score": 1}]}, "not a position"),
        (200, {"results": [{"index": 0, "relevance_score": "high"}]}, "not a number"),
        (200, '{"results": [{"index": 0, "relevance_score": NaN}]}', "not a number"),
        (200, {"results": [{"idx": 0}]}, "unexpected answer"),
        (200, {"code": 40000, "message": "bad"}, "error code 40000"),
        (200, {"something": "else"}, "no results"),
    ],
)
def test_http_reranker_failures_are_provider_errors(
    json_server: JsonServer, status: int, reply: Any, needle: str
) -> None:
    json_server.routes["/rerank"] = lambda b: (status, reply)
    with pytest.raises(ProviderError) as info:
        HttpReranker(json_server.base_url).rerank("q", DOCS)
    assert needle in info.value.message
    assert info.value.code == 50004


def test_http_reranker_timeout_and_unreachable(json_server: JsonServer) -> None:
    def slow(body: Any) -> tuple[int, Any]:
        time.sleep(1.0)
        return 200, {"results": []}

    json_server.routes["/rerank"] = slow
    with pytest.raises(ProviderError, match="could not reach"):
        HttpReranker(json_server.base_url, timeout_s=0.2).rerank("q", DOCS)
    with pytest.raises(ProviderError, match="could not reach"):
        HttpReranker("http://127.0.0.1:9/rerank", timeout_s=1).rerank("q", DOCS)


# ------------------------------------------------------------ OpenAI LLM
def completion(content: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}


@pytest.mark.parametrize("status", [400, 422, 500])
def test_openai_llm_falls_back_to_json_object_once(json_server: JsonServer, status: int) -> None:
    def chat(body: Any) -> tuple[int, Any]:
        if body.get("response_format", {}).get("type") == "json_schema":
            # llama-cpp-python: HTTP 500 with the validation error naming response_format
            return status, {"error": {"message": "response_format.type must be json_object"}}
        return 200, completion('{"ranking": [0]}')

    json_server.routes["/v1/chat/completions"] = chat
    llm = OpenAIChatLLM(json_server.base_url + "/v1", "m", api_key="secret", max_tokens=7)
    schema = {"type": "object"}
    assert llm.chat([{"role": "user", "content": "hi"}], json_schema=schema) == '{"ranking": [0]}'
    assert llm.schema_mode == "json_object"
    llm.chat([{"role": "user", "content": "again"}], json_schema=schema)
    formats = [b["response_format"]["type"] for _, b in json_server.requests]
    assert formats == ["json_schema", "json_object", "json_object"]
    assert json_server.requests[0][1]["response_format"]["json_schema"]["schema"] == schema
    assert json_server.requests[1][1]["response_format"]["schema"] == schema
    assert json_server.requests[0][1]["max_tokens"] == 7
    llm.close()


def test_openai_llm_does_not_retry_unrelated_errors(json_server: JsonServer) -> None:
    json_server.routes["/v1/chat/completions"] = lambda b: (500, {"error": "out of memory"})
    with pytest.raises(LLMError, match="HTTP 500"):
        OpenAIChatLLM(json_server.base_url + "/v1", "m").chat(
            [{"role": "user", "content": "x"}], json_schema={"type": "object"}
        )
    assert len(json_server.requests) == 1


@pytest.mark.parametrize(
    ("status", "reply", "needle"),
    [
        (401, {"error": "bad key"}, "HTTP 401"),
        (200, "<html>", "no chat completion"),
        (200, {"choices": []}, "no chat completion"),
        (200, completion(None), "non-text content"),
    ],
)
def test_openai_llm_errors(json_server: JsonServer, status: int, reply: Any, needle: str) -> None:
    json_server.routes["/v1/chat/completions"] = lambda b: (status, reply)
    with pytest.raises(LLMError, match=needle):
        OpenAIChatLLM(json_server.base_url + "/v1", "m").chat([{"role": "user", "content": "x"}])


def test_openai_llm_timeout(json_server: JsonServer) -> None:
    def slow(body: Any) -> tuple[int, Any]:
        time.sleep(1.0)
        return 200, completion("late")

    json_server.routes["/v1/chat/completions"] = slow
    with pytest.raises(LLMError, match="did not answer in time"):
        OpenAIChatLLM(json_server.base_url + "/v1", "m", timeout_s=0.2).chat(
            [{"role": "user", "content": "x"}]
        )


# --------------------------------------------------------------- settings
def test_flat_and_nested_llm_env_names() -> None:
    env = {
        "MEMOS_LLM_BACKEND": "openai",
        "MEMOS_LLM_BASE_URL": "http://flat/v1",
        "MEMOS_LLM_MODEL": "flat-model",
        "MEMOS_LLM_API_KEY": "k",
        "MEMOS_LLM__MODEL": "nested-model",
        "MEMOS_RERANKER__KIND": "llm",
        "MEMOS_RERANKER__TOP_N": "7",
    }
    s = load_settings(environ=env)
    assert (s.llm.backend, s.llm.base_url, s.llm.api_key) == ("openai", "http://flat/v1", "k")
    assert s.llm.model == "nested-model"  # the nested spelling wins
    assert (s.reranker.kind, s.reranker.top_n) == ("llm", 7)
    assert load_settings(environ={}).reranker.kind == "none"
    with pytest.raises(ConfigError):
        load_settings(environ={"MEMOS_RERANKER__KIND": "cohere"})


def test_flat_queue_env_names() -> None:
    s = load_settings(
        environ={
            "MEMOS_QUEUE_URL": "redis://127.0.0.1:6379/3",
            "MEMOS_QUEUE__WORKERS": "0",
            "MEMOS_QUEUE_LEASE_S": "5",
        }
    )
    assert (s.queue.url, s.queue.workers, s.queue.lease_s) == ("redis://127.0.0.1:6379/3", 0, 5.0)
    assert load_settings(environ={}).queue.url is None


def test_builders_explain_missing_settings() -> None:
    assert build_llm(load_settings(environ={}).llm) is None
    with pytest.raises(ConfigError, match="MEMOS_LLM_BASE_URL"):
        build_llm(load_settings(environ={"MEMOS_LLM_BACKEND": "openai"}).llm)
    assert build_reranker(RerankerSettings()) is None
    with pytest.raises(ConfigError, match="base_url"):
        build_reranker(RerankerSettings(kind="http"))
    with pytest.raises(ConfigError, match="needs an LLM"):
        build_reranker(RerankerSettings(kind="llm"))
    assert isinstance(build_reranker(RerankerSettings(kind="llm"), FakeLLM("")), LLMReranker)
    assert isinstance(
        build_reranker(RerankerSettings(kind="http", base_url="http://x")), HttpReranker
    )


def test_open_refuses_an_llm_reranker_without_an_llm(tmp_data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="needs an LLM"):
        MemoryService.open(make_settings(tmp_data_dir, reranker={"kind": "llm"}))
    # the store was released: the same data dir opens again
    MemoryService.open(make_settings(tmp_data_dir)).close()


# ----------------------------------------------- service: search post-step
class Reverse:
    """Reverses whatever it is given, so the post-step's effect is unmistakable."""

    def __init__(self, fail: bool = False, drop: bool = False) -> None:
        self.fail, self.drop, self.seen = fail, drop, [0]

    @property
    def name(self) -> str:
        return "reverse"

    def rerank(
        self, query: str, documents: list[str], top_n: int | None = None
    ) -> list[RerankResult]:
        self.seen[0] = len(documents)
        if self.fail:
            raise ProviderError("reranker down")
        n = len(documents) - (1 if self.drop else 0)
        return [RerankResult(i, float(i)) for i in reversed(range(n))]

    def close(self) -> None:
        return None


FACTS = [f"note {i}: I keep fact number {i} about hiking trips" for i in range(12)]


def seeded(data_dir: Path, reranker: Reverse | None, top_n: int = 5) -> MemoryService:
    svc = MemoryService.open(make_settings(data_dir, reranker={"top_n": top_n}), reranker=reranker)
    if svc.store.cube_owner("hiker") is None:
        svc.add(
            user_id="hiker",
            conversation_id="c",
            messages=[MessageInput(role="user", content=f) for f in FACTS],
        )
        svc.add(
            user_id="other",
            conversation_id="c",
            messages=[MessageInput(role="user", content="other hiking trips of mine")],
        )
    return svc


def search_ids(svc: MemoryService, limit: int = 8) -> list[str]:
    hits = svc.search(user_id="hiker", query="hiking trips", limit=limit, relativity=0)
    return [h.memory.id for h in hits]


def test_search_reorders_the_first_n_hits_only(tmp_data_dir: Path) -> None:
    base = seeded(tmp_data_dir, None)
    plain = search_ids(base, 12)
    base.close()
    reverse = Reverse()
    svc = seeded(tmp_data_dir, reverse, top_n=5)
    got = search_ids(svc, 8)
    assert reverse.seen == [5]
    assert got == list(reversed(plain[:5])) + plain[5:8]
    # a limit below the window still sees the whole window reranked
    assert search_ids(svc, 2) == list(reversed(plain[:5]))[:2]
    svc.close()


@pytest.mark.parametrize("broken", [Reverse(fail=True), Reverse(drop=True)])
def test_a_broken_reranker_keeps_the_search_order(tmp_data_dir: Path, broken: Reverse) -> None:
    base = seeded(tmp_data_dir, None)
    plain = search_ids(base)
    base.close()
    svc = seeded(tmp_data_dir, broken)
    assert search_ids(svc) == plain
    svc.close()


def test_service_rerank_uses_the_configured_reranker(tmp_data_dir: Path) -> None:
    svc = MemoryService.open(make_settings(tmp_data_dir), reranker=Reverse())
    out = svc.rerank(query="q", documents=["a", "b", "c"], top_n=2)
    assert out.model == "reverse"
    assert order(out.results) == [2, 1]
    svc.close()


def test_service_rerank_defaults_to_embedder_cosine(minilm_service: MemoryService) -> None:
    out = minilm_service.rerank(
        query="What are the user's hobbies?",
        documents=["User is a backend developer in Hangzhou.", "User likes playing badminton."],
    )
    assert out.model == "cosine:" + minilm_service.embedder.name
    assert order(out.results) == [1, 0]
    assert all(0 <= r.score <= 1 for r in out.results)
    assert out.results[0].score > out.results[1].score


def test_config_file_under_env_and_flags(tmp_path: Path) -> None:
    toml = tmp_path / "memos.toml"
    toml.write_text(
        'port = 9001\n[llm]\nbackend = "openai"\nbase_url = "http://file/v1"\nmodel = "file"\n'
        "[queue]\nworkers = 3\n",
        encoding="utf-8",
    )
    s = load_settings(
        {"port": 9002}, environ={"MEMOS_CONFIG": str(toml), "MEMOS_LLM_MODEL": "env-model"}
    )
    assert s.port == 9002  # a flag wins over the file
    assert (s.llm.base_url, s.llm.model, s.queue.workers) == ("http://file/v1", "env-model", 3)
    as_json = tmp_path / "memos.json"
    as_json.write_text('{"search": {"default_relativity": 0.3}}', encoding="utf-8")
    assert load_settings(environ={}, config_file=as_json).search.default_relativity == 0.3
    bad = tmp_path / "bad.toml"
    bad.write_text("port = [", encoding="utf-8")
    for path, match in (
        (bad, "not valid toml"),
        (tmp_path / "none.toml", "cannot read"),
    ):
        with pytest.raises(ConfigError, match=match):
            load_settings(environ={}, config_file=path)
    typo = tmp_path / "typo.toml"
    typo.write_text("[llm]\nbakend = 'openai'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="bakend"):
        load_settings(environ={}, config_file=typo)
