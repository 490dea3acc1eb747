"""Any OpenAI-compatible ``/embeddings`` endpoint (OpenAI, Ollama, vLLM, LM Studio...).

Lets users bring a larger or domain-specific model without memos bundling it.
Vectors are re-normalised locally because not every server returns unit rows.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import httpx
import numpy as np

from memos.embedders.base import Vectors
from memos.errors import ConfigError, ProviderError

logger = logging.getLogger(__name__)

_PROBE_TEXT = "dim probe"


class OpenAIEmbedder:
    """Embeds through ``POST {base_url}/embeddings`` in batches of ``batch_size``.

    ``dim`` may be left unset; it is then learned from the first response (reading
    the property before any embedding sends one probe request).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        dim: int | None = None,
        batch_size: int = 64,
        timeout_s: float = 30.0,
    ) -> None:
        if not base_url or not model:
            raise ConfigError("the openai embedder needs both base_url and model")
        if batch_size < 1:
            raise ConfigError("the openai embedder needs batch_size >= 1")
        self._url = base_url.rstrip("/") + "/embeddings"
        self._model = model
        self._dim = dim
        self._batch_size = batch_size
        self._lock = threading.Lock()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=timeout_s)

    @property
    def name(self) -> str:
        return f"openai:{self._model}"

    @property
    def dim(self) -> int:
        if self._dim is not None:
            return self._dim
        return int(self._request([_PROBE_TEXT]).shape[1])

    def close(self) -> None:
        self._client.close()

    def embed(self, texts: list[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [
            self._request(texts[start : start + self._batch_size])
            for start in range(0, len(texts), self._batch_size)
        ]
        return np.concatenate(parts, axis=0)

    def embed_query(self, text: str) -> Vectors:
        row: Vectors = self.embed([text])[0]
        return row

    def _request(self, batch: list[str]) -> Vectors:
        """Send one batch; every failure becomes a ProviderError saying what to check."""
        try:
            response = self._client.post(self._url, json={"model": self._model, "input": batch})
        except httpx.HTTPError as exc:
            raise ProviderError(
                f"could not reach the embeddings endpoint {self._url} ({exc!r}); "
                "check base_url and that the server is running"
            ) from exc
        if not response.is_success:
            raise ProviderError(self._status_message(response))
        try:
            vectors = _parse(response.json(), len(batch))
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderError(
                f"unexpected response from {self._url} for model {self._model!r}: {exc}; "
                "check that base_url points at an OpenAI-compatible /v1 API"
            ) from exc
        with self._lock:
            if self._dim is None:
                self._dim = int(vectors.shape[1])
                logger.info("embedder %s reports dim %d", self.name, self._dim)
        if vectors.shape[1] != self._dim:
            raise ProviderError(
                f"{self._url} returned {vectors.shape[1]}-dim vectors, expected {self._dim}; "
                "check the model name and the configured dim"
            )
        return vectors

    def _status_message(self, response: httpx.Response) -> str:
        status = response.status_code
        body = response.text[:200]
        if status in (401, 403):
            hint = "check api_key"
        elif status == 404:
            hint = "check base_url (usually ends in /v1) and the model name"
        elif status in (400, 422):
            hint = "check the model name and that it is an embedding model"
        else:
            hint = "the server failed; check its logs, base_url and model"
        return (
            f"embeddings endpoint {self._url} answered HTTP {status} "
            f"for model {self._model!r}: {hint}. Body: {body}"
        )


def _parse(payload: Any, expected: int) -> Vectors:
    """Order rows by their ``index`` and L2-normalise them."""
    data = payload["data"]
    if not isinstance(data, list) or len(data) != expected:
        raise ValueError(f"expected {expected} embeddings, got {type(data).__name__}")
    rows = sorted(data, key=lambda item: int(item["index"]))
    matrix = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise ValueError(f"embeddings have shape {matrix.shape}")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    result: Vectors = (matrix / np.maximum(norms, 1e-12)).astype(np.float32)
    return result
