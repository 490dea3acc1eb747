"""The LLM port and the LLM reranker against a real OpenAI-compatible server.

The server is llama-cpp-python's, running SmolLM2-135M (``llama_server`` in
conftest). A 135M model ranks poorly and its greedy output differs between
CPUs, so these tests assert the pipeline, not ranking quality: the schema
reaches the server, a complete reply is a valid ranking, every document comes
back exactly once, and nothing raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from memos.domain.models import MessageInput
from memos.llm.base import ChatMessage, JsonSchema
from memos.llm.jsonreply import BadOutput, read_object
from memos.llm.openai_compat import OpenAIChatLLM
from memos.rerank.llm import LLMReranker, parse_ranking
from memos.service import MemoryService
from memos.settings import load_settings

pytestmark = pytest.mark.timeout(300)

DOCS = [
    "User likes playing badminton.",
    "User is a backend developer in Hangzhou.",
    "User prefers concise replies.",
    "User prefers Jiangxiang-flavored baijiu.",
    "User is going on a business trip to Beijing next Wednesday.",
]


class Recording:
    """Wraps an LLM and keeps each schema it was given and each reply it returned."""

    def __init__(self, inner: OpenAIChatLLM) -> None:
        self.inner = inner
        self.schemas: list[JsonSchema | None] = []
        self.replies: list[str] = []

    @property
    def name(self) -> str:
        return self.inner.name

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        json_schema: JsonSchema | None = None,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> str:
        self.schemas.append(json_schema)
        reply = self.inner.chat(
            messages, json_schema=json_schema, max_tokens=max_tokens, temperature=temperature
        )
        self.replies.append(reply)
        return reply

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def llm(llama_server: Any) -> Any:
    client = OpenAIChatLLM(llama_server.base_url, llama_server.model, timeout_s=120)
    yield client
    client.close()


def test_plain_chat(llm: OpenAIChatLLM) -> None:
    """The round trip works; what the model says (even nothing) is its own business."""
    reply = llm.chat([{"role": "user", "content": "Say hello."}], max_tokens=16)
    assert isinstance(reply, str)


def test_llm_reranker_with_a_real_model(llm: OpenAIChatLLM) -> None:
    """Valid permutation via the schema path; the order itself is not judged (135M model)."""
    recording = Recording(llm)
    results = LLMReranker(recording).rerank("What are the user's hobbies?", DOCS)
    assert sorted(r.index for r in results) == list(range(len(DOCS)))
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)
    schema = recording.schemas[0]
    assert schema is not None and "ranking" in schema["properties"]
    # llama-cpp-python rejects OpenAI's json_schema form, so the adapter switched
    assert llm.schema_mode == "json_object"
    # constrained decoding: a complete reply is the schema's object with in-range indices;
    # one cut off at max_tokens (CPU-dependent) leaves the input order
    order = [r.index for r in results]
    try:
        reply = read_object(recording.replies[0])
    except BadOutput:
        assert order == list(range(len(DOCS)))
    else:
        assert set(reply) == {"ranking"}
        assert all(0 <= i < len(DOCS) for i in reply["ranking"])
        # an empty ranking reads as None, which keeps the input order too
        assert (parse_ranking(recording.replies[0], len(DOCS)) or list(range(len(DOCS)))) == order
    top = LLMReranker(recording).rerank("hobbies", DOCS, 2)
    assert len(top) == 2 and len({r.index for r in top}) == 2


def test_search_with_the_llm_reranker(llama_server: Any, tmp_path: Path) -> None:
    """End to end: MEMOS_LLM_* + MEMOS_RERANKER__KIND=llm; search keeps scope and every hit."""
    settings = load_settings(
        {"data_dir": tmp_path, "embedder": {"kind": "hash"}},
        environ={
            "MEMOS_LLM_BACKEND": "openai",
            "MEMOS_LLM_BASE_URL": llama_server.base_url,
            "MEMOS_LLM_MODEL": llama_server.model,
            "MEMOS_RERANKER__KIND": "llm",
        },
    )
    svc = MemoryService.open(settings)
    try:
        assert svc.reranker is not None and svc.reranker.name.startswith("llm:")
        svc.add(
            user_id="a",
            conversation_id="c",
            messages=[MessageInput(role="user", content=d) for d in DOCS],
        )
        svc.add(
            user_id="b",
            conversation_id="c",
            messages=[MessageInput(role="user", content="Bob likes chess.")],
        )
        hits = svc.search(user_id="a", query="hobbies", relativity=0, limit=10)
        assert sorted(h.memory.value for h in hits) == sorted(DOCS)
        out = svc.rerank(query="hobbies", documents=DOCS, top_n=3)
        assert len(out.results) == 3 and out.model.startswith("llm:")
    finally:
        svc.close()
