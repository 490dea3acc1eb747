"""Any OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, vLLM, Ollama, llama.cpp).

Structured output comes in two dialects: OpenAI's ``{"type": "json_schema",
"json_schema": {...}}`` and the older ``{"type": "json_object", "schema": {...}}``
that llama-cpp-python's server (and some proxies) accept instead. We send the
OpenAI form first; a 400/422 answer to it switches this client to the other form
once (a 400/422, or any error that names ``response_format``: llama-cpp-python
answers HTTP 500), so one setting works against both kinds of server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any, Literal

import httpx

from memos.errors import ConfigError
from memos.llm.base import ChatMessage, JsonSchema, LLMError
from memos.text.unicode import scrub

logger = logging.getLogger(__name__)

SchemaMode = Literal["json_schema", "json_object"]


class OpenAIChatLLM:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_tokens: int = 512,
    ) -> None:
        if not base_url or not model:
            raise ConfigError("the openai LLM needs both base_url and model")
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._model = model
        self._max_tokens = max_tokens
        self._lock = threading.Lock()
        self.schema_mode: SchemaMode = "json_schema"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=timeout_s)

    @property
    def name(self) -> str:
        return f"openai:{self._model}"

    def close(self) -> None:
        self._client.close()

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        json_schema: JsonSchema | None = None,
        max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> str:
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [dict(m) for m in messages],
            "max_tokens": max_tokens or self._max_tokens,
            "temperature": temperature,
        }
        if json_schema is None:
            return _content(self._url, self._post(body))
        mode = self.schema_mode
        body["response_format"] = _response_format(json_schema, mode)
        response = self._post(body)
        if mode == "json_schema" and _rejects_format(response):
            logger.info(
                "%s rejected response_format json_schema (HTTP %d); retrying with json_object",
                self._url,
                response.status_code,
            )
            body["response_format"] = _response_format(json_schema, "json_object")
            response = self._post(body)
            if response.is_success:
                with self._lock:
                    self.schema_mode = "json_object"
        return _content(self._url, response)

    def _post(self, body: dict[str, Any]) -> httpx.Response:
        try:
            return self._client.post(self._url, json=body)
        except httpx.TimeoutException as exc:
            raise LLMError(f"LLM at {self._url} did not answer in time ({exc!r})") from exc
        except httpx.HTTPError as exc:
            raise LLMError(
                f"could not reach the LLM at {self._url} ({exc!r}); "
                "check MEMOS_LLM_BASE_URL and that the server is running"
            ) from exc


def _rejects_format(response: httpx.Response) -> bool:
    """Did the server refuse the request's ``response_format`` (not fail for another reason)?

    llama-cpp-python answers a validation error with HTTP 500, so the body counts too.
    """
    if response.is_success:
        return False
    return response.status_code in (400, 422) or "response_format" in response.text


def _response_format(schema: JsonSchema, mode: SchemaMode) -> dict[str, Any]:
    if mode == "json_object":
        return {"type": "json_object", "schema": dict(schema)}
    return {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": dict(schema), "strict": True},
    }


def _content(url: str, response: httpx.Response) -> str:
    """The first choice's text; every other shape is an LLMError naming what came back."""
    if not response.is_success:
        raise LLMError(f"LLM at {url} answered HTTP {response.status_code}: {response.text[:200]}")
    try:
        payload = response.json()
        content = payload["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise LLMError(f"LLM at {url} sent no chat completion: {response.text[:200]}") from exc
    if not isinstance(content, str):
        raise LLMError(f"LLM at {url} sent non-text content: {content!r:.200}")
    return scrub(content)
