"""A reranker behind HTTP: Cohere, Jina, TEI-compatible servers, or another memos.

Request: ``{"model", "query", "documents", "top_n"}`` (model and top_n only when
set). Accepted answers, since servers disagree on the envelope:

* Cohere/Jina: ``{"results": [{"index", "relevance_score"}]}``;
* TEI: a bare list ``[{"index", "score"}]``;
* MemOS (this server's ``/rerank``): ``{"code": 0, "data": {"results": [...]}}``,
  so one memos instance can rerank for another.
"""

from __future__ import annotations

import math
from typing import Any

import httpx

from memos.errors import ConfigError, ProviderError
from memos.rerank.base import RerankResult, finish


class HttpReranker:
    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        if not base_url:
            raise ConfigError("the http reranker needs base_url, e.g. http://localhost:8080")
        url = base_url.rstrip("/")
        self._url = url if url.endswith("/rerank") else url + "/rerank"
        self._model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=timeout_s)

    @property
    def name(self) -> str:
        return f"http:{self._model or self._url}"

    def close(self) -> None:
        self._client.close()

    def rerank(
        self, query: str, documents: list[str], top_n: int | None = None
    ) -> list[RerankResult]:
        if not documents:
            return []
        body: dict[str, Any] = {"query": query, "documents": documents}
        if self._model:
            body["model"] = self._model
        if top_n is not None:
            body["top_n"] = top_n
        try:
            response = self._client.post(self._url, json=body)
        except httpx.HTTPError as exc:
            raise ProviderError(f"could not reach the reranker at {self._url} ({exc!r})") from exc
        if not response.is_success:
            raise ProviderError(
                f"reranker at {self._url} answered HTTP {response.status_code}: "
                f"{response.text[:200]}"
            )
        try:
            rows = _rows(response.json())
            results = [_result(row, len(documents)) for row in rows]
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderError(
                f"unexpected answer from the reranker at {self._url}: {exc}; "
                f"body: {response.text[:200]}"
            ) from exc
        return finish(results, len(documents), top_n)


def _rows(payload: Any) -> list[Any]:
    """The result rows of any of the accepted answer shapes."""
    if isinstance(payload, list):
        return payload
    if not isinstance(payload, dict):
        raise ValueError(f"expected an object or a list, got {type(payload).__name__}")
    if "results" in payload:
        results = payload["results"]
        if not isinstance(results, list):
            raise ValueError("results is not a list")
        return results
    if "code" in payload:
        if payload["code"] != 0:
            raise ValueError(f"error code {payload['code']}: {payload.get('message')}")
        return _rows(payload.get("data"))
    raise ValueError("no results in the answer")


def _result(row: Any, n_docs: int) -> RerankResult:
    index = row["index"]
    score = row["relevance_score"] if "relevance_score" in row else row["score"]
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n_docs:
        raise ValueError(f"index {index!r} is not a position in the {n_docs} documents")
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise ValueError(f"score {score!r} is not a number")
    return RerankResult(index, float(score))
