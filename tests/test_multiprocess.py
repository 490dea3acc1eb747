"""Multi-process deployment: the store URL, ``memos serve --workers N``, and
several API servers and ``memos worker`` processes on one PostgreSQL and one Redis.

The fine passes talk to a stub OpenAI-compatible LLM (``json_server``) that
answers every extraction with one memory naming the token in the message, and
counts the extractions per token: a token extracted twice is a task processed
twice. The embedder is the hash embedder, so the whole file runs in seconds.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

import pg_support
from memos.cli.main import cli
from memos.domain.models import MessageInput
from memos.errors import ConfigError
from memos.service import MemoryService
from memos.settings import RESOLVED_SETTINGS_ENV, hand_down, inherited_settings, load_settings
from memos.store.factory import build_store, check_processes, describe, redact, store_kind
from memos.store.sqlite import SQLiteStore

pytestmark = pytest.mark.timeout(120)

REDIS_URL = os.environ.get("MEMOS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CLIENTS = 8  # concurrent client threads
ADDS_PER_CLIENT = 6
USERS = 4  # clients share users, so both servers write to the same cubes at once


def settings_for(tmp_path: Path, **extra: Any) -> Any:
    return load_settings({"data_dir": tmp_path, "embedder": {"kind": "hash"}, **extra}, environ={})


# ------------------------------------------------------------- configuration
def test_store_url_settings_and_their_flat_aliases(tmp_path: Path) -> None:
    env = {
        "MEMOS_STORE_URL": "postgresql://memos:pw@db:5432/memos",
        "MEMOS_STORE_POOL_MAX": "4",
        "MEMOS_QUEUE_PREFIX": "site-a:queue",
        "MEMOS_WORKERS": "3",
    }
    settings = load_settings(environ=env)
    assert settings.store.url == env["MEMOS_STORE_URL"] and settings.store.pool_max == 4
    assert settings.queue.prefix == "site-a:queue" and settings.workers == 3
    assert load_settings(environ={}).store.url is None  # empty: SQLite in the data dir
    with pytest.raises(ConfigError, match="pool_max"):
        load_settings(environ={"MEMOS_STORE_POOL_MIN": "5", "MEMOS_STORE_POOL_MAX": "2"})


def test_build_store_picks_the_adapter_from_the_url(tmp_path: Path) -> None:
    default = build_store(settings_for(tmp_path / "data"), "hash-256")
    assert isinstance(default, SQLiteStore) and default.path == tmp_path / "data" / "memos.db"
    default.close()
    named = settings_for(tmp_path, store={"url": f"sqlite:///{tmp_path / 'elsewhere.db'}"})
    store = build_store(named, "hash-256")
    assert isinstance(store, SQLiteStore) and store.path == tmp_path / "elsewhere.db"
    store.close()
    assert store_kind("postgres://h/db") == store_kind("postgresql://h/db") == "postgres"
    for url, message in [
        ("mysql://u:secret@h/db", "unsupported store URL 'mysql://u:\\*\\*\\*@h/db'"),
        ("sqlite://relative.db", "expected sqlite:///path/to/memos.db"),
        ("/var/lib/memos.db", "unsupported store URL"),
    ]:
        with pytest.raises(ConfigError, match=message):
            build_store(settings_for(tmp_path, store={"url": url}), "hash-256")


def test_a_missing_postgres_driver_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m.startswith("memos.store.postgres")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # "not installed"
    settings = settings_for(tmp_path, store={"url": "postgresql://u:pw@localhost/memos"})
    with pytest.raises(ConfigError) as caught:
        build_store(settings, "hash-256")
    assert "psycopg is not installed: pip install 'memos[postgres]'" in caught.value.message


def test_redact_hides_only_the_password() -> None:
    assert (
        redact("postgresql://memos:s3cret@db:5432/memos") == "postgresql://memos:***@db:5432/memos"
    )
    assert (
        redact("postgresql://db/memos?sslmode=require") == "postgresql://db/memos?sslmode=require"
    )


def test_service_on_a_postgres_url_checks_the_embedder(postgres_url: str, tmp_path: Path) -> None:
    url = pg_support.fresh_database(postgres_url, "mp_open")
    settings = settings_for(tmp_path, store={"url": url, "pool_max": 2})
    svc = MemoryService.open(settings)
    try:
        assert type(svc.store).__name__ == "PostgresStore"
        svc.add(
            user_id="ann",
            conversation_id="c1",
            messages=[MessageInput(role="user", content="I keep bees on the roof.")],
        )
        assert svc.search(user_id="ann", query="bees", relativity=0.0)
    finally:
        svc.close()
    other = settings_for(tmp_path, store={"url": url}, embedder={"kind": "hash", "dim": 128})
    with pytest.raises(ConfigError, match="was built with embedder 'hash-256'.*a new database"):
        MemoryService.open(other)
    assert describe(settings) == url  # no password in the test server's URL


def test_shared_store_processes_need_a_shared_queue(tmp_path: Path) -> None:
    pg = "postgresql://memos:secret@db:5432/memos"
    check_processes(settings_for(tmp_path), "memos worker")  # SQLite store: the data dir's queue
    for queue in ("redis://queue:6379/0", f"sqlite:///{tmp_path / 'queue.db'}"):
        check_processes(settings_for(tmp_path, store={"url": pg}, queue={"url": queue}), "x")
    with pytest.raises(ConfigError, match="MEMOS_QUEUE_URL=redis://"):
        check_processes(settings_for(tmp_path, store={"url": pg}), "memos worker")

    env = {
        "MEMOS_STORE_URL": pg,
        "MEMOS_QUEUE_URL": None,
        "MEMOS_EMBEDDER__KIND": "hash",
        "MEMOS_LLM_BACKEND": "openai",
        "MEMOS_LLM_BASE_URL": "http://127.0.0.1:9/v1",
        "MEMOS_LLM_MODEL": "stub",
    }
    runner = CliRunner()
    for args in (["serve", "--workers", "2"], ["worker"]):
        result = runner.invoke(cli, [*args, "--data-dir", str(tmp_path)], env=env)
        role = "memos serve --workers 2" if args[0] == "serve" else "memos worker"
        assert result.exit_code == 1, result.output
        assert f"{role} with a PostgreSQL store needs a task queue" in result.output
        assert "MEMOS_QUEUE_URL" in result.output and "secret" not in result.output


def test_settings_are_handed_down_to_server_processes(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, workers=2, store={"url": "postgresql://h/db"})
    environ: dict[str, str] = {}
    hand_down(settings, environ)
    assert json.loads(environ[RESOLVED_SETTINGS_ENV])["store"]["url"] == "postgresql://h/db"
    # the child reads exactly that, whatever else its environment says
    environ["MEMOS_STORE_URL"] = "postgresql://other/db"
    assert inherited_settings(environ) == settings
    # nothing handed down: the usual environment (and the variable is no setting itself)
    assert inherited_settings({"MEMOS_WORKERS": "4"}).workers == 4
    with pytest.raises(ConfigError, match=RESOLVED_SETTINGS_ENV):
        inherited_settings({RESOLVED_SETTINGS_ENV: '{"workers": 0}'})


# -------------------------------------------------------- serve --workers 2
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawned_children(parent: int) -> set[int]:
    """uvicorn's worker processes of ``parent`` (multiprocessing spawn children)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue  # the process ended meanwhile
        if int(fields[1]) == parent and b"spawn_main" in cmdline:
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def cloud(resp: httpx.Response) -> Any:
    body = resp.json()
    assert resp.status_code == 200 and body["code"] == 0, body
    return body["data"]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the Linux process table")
def test_serve_workers_answers_on_one_port_from_two_processes(restartable_server: Any) -> None:
    """Two processes on one port over the embedded SQLite store: writes taken by
    one are read by the other (the store's cross-process generation check)."""
    srv = restartable_server(env={"MEMOS_WORKERS": "2"})
    assert srv.proc is not None
    children = spawned_children(srv.proc.pid)
    assert len(children) == 2, children

    def client_run(i: int) -> list[str]:
        user, values = f"sq{i}", []
        for j in range(6):  # a new connection per request, so the kernel spreads them
            value = f"Note {i}-{j}: the word is zz{i}q{j}."
            cloud(
                httpx.post(
                    srv.base_url + "/add/message",
                    json={
                        "user_id": user,
                        "conversation_id": "c",
                        "messages": [{"role": "user", "content": value}],
                    },
                )
            )
            values.append(value)
        return values

    with ThreadPoolExecutor(8) as pool:
        written = list(pool.map(client_run, range(8)))
    for i, values in enumerate(written):
        for _ in range(2):  # fresh connections: each may land on either process
            listed = cloud(httpx.post(srv.base_url + "/get/memory", json={"user_id": f"sq{i}"}))
            assert sorted(m["memory_value"] for m in listed["memory_detail_list"]) == values
        hits = cloud(
            httpx.post(
                srv.base_url + "/search/memory",
                json={"user_id": f"sq{i}", "query": f"zz{i}q5", "relativity": 0},
            )
        )["memory_detail_list"]
        assert hits and hits[0]["memory_value"] == values[5], hits

    served: set[int] = set()
    for _ in range(20):  # both processes answered (each request log line names its pid)
        served = {int(p) for p in re.findall(r"memos\.api \[(\d+)\]: ", srv.log_tail())}
        if served >= children:
            break
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: httpx.get(srv.base_url + "/health"), range(16)))
    assert served == children, (served, children)

    assert srv.stop() == 0
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in children), "server processes outlived the parent"


# ------------------------------- two servers + two workers, PostgreSQL + Redis
def redis_unavailable() -> str | None:
    try:
        import redis
    except ImportError:
        return "redis-py is not installed (pip install -e '.[test]')"
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        return f"no Redis server answers at {REDIS_URL} ({exc}); run scripts/services.sh"
    return None


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    if reason := redis_unavailable():
        pytest.skip(reason)
    import redis

    prefix = f"memos-test:mp:{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


TOKEN = re.compile(r"\bkw[0-9a-f]{6}x\d+x\d+\b")


@dataclass
class StubLLM:
    """Extraction answers for the ``json_server``; counts extractions per token."""

    env: dict[str, str]
    extractions: Counter[str]


@pytest.fixture
def stub_llm(json_server: Any) -> StubLLM:
    extractions: Counter[str] = Counter()
    lock = threading.Lock()

    def chat(body: dict[str, Any]) -> tuple[int, Any]:
        prompt = "\n".join(str(m.get("content")) for m in body["messages"])
        tokens = sorted(set(TOKEN.findall(prompt)))
        with lock:
            extractions.update(tokens)
        reply = {
            "memories": [
                {
                    "key": f"token {t}",
                    "value": f"The user collected {t}.",
                    "memory_type": "UserMemory",
                    "tags": ["collection"],
                    "confidence": 0.9,
                    "sources": [1],
                }
                for t in tokens
            ],
            "preferences": [],
        }
        message = {"role": "assistant", "content": json.dumps(reply)}
        return 200, {"choices": [{"index": 0, "message": message}]}

    json_server.routes["/v1/chat/completions"] = chat
    env = {
        "MEMOS_LLM_BACKEND": "openai",
        "MEMOS_LLM_BASE_URL": json_server.base_url + "/v1",
        "MEMOS_LLM_MODEL": "stub",
        "MEMOS_ORGANIZE__ENABLED": "false",  # one LLM call per task: the extraction
    }
    return StubLLM(env, extractions)


@dataclass
class MemosProcess:
    """One ``python -m memos ...`` subprocess with its log file."""

    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, ready: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start:\n{self.output()[-10_000:]}")
            time.sleep(0.1)

    def wait_worker_running(self) -> None:
        self.wait_for(lambda: "task(s) at once" in self.output(), "memos worker")

    def wait_healthy(self, base_url: str) -> None:
        def healthy() -> bool:
            try:
                return httpx.get(base_url + "/health", timeout=2.0).status_code == 200
            except httpx.HTTPError:
                return False

        self.wait_for(healthy, f"memos serve on {base_url}")


ProcessFactory = Callable[[list[str], dict[str, str]], MemosProcess]


@pytest.fixture
def memos_processes(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ProcessFactory]:
    """Factory: ``spawn(args, env)`` runs ``python -m memos *args`` with ``env`` as its
    only MEMOS_* variables; every process is stopped (SIGTERM) at teardown and its
    log printed if the test failed."""
    started: list[MemosProcess] = []

    def spawn(args: list[str], env: dict[str, str]) -> MemosProcess:
        log = tmp_path / f"{args[0]}{len(started)}.log"
        full = {k: v for k, v in os.environ.items() if not k.startswith("MEMOS_")}
        full.update(env, PYTHONUNBUFFERED="1")
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "memos", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=full,
            )
        started.append(MemosProcess(proc, log))
        return started[-1]

    yield spawn
    for p in started:
        if p.proc.poll() is None:
            p.proc.send_signal(signal.SIGTERM)
    failed = getattr(getattr(request.node, "rep_call", None), "failed", False)
    for p in started:
        try:
            p.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            p.proc.kill()
            p.proc.wait(timeout=10)
        if failed:
            print(f"\n----- {p.log} -----\n{p.output()[-10_000:]}")


@dataclass
class Accepted:
    token: str
    user: str
    conversation: str
    task_id: str
    server: int  # which server took the add


def test_two_servers_and_two_workers_share_one_store_and_queue(
    postgres_url: str,
    redis_prefix: str,
    stub_llm: StubLLM,
    memos_processes: ProcessFactory,
    tmp_path: Path,
) -> None:
    env = {
        "MEMOS_STORE_URL": pg_support.fresh_database(postgres_url, "mp"),
        "MEMOS_STORE_POOL_MAX": "4",
        "MEMOS_QUEUE_URL": REDIS_URL,
        "MEMOS_QUEUE_PREFIX": redis_prefix,
        "MEMOS_EMBEDDER__KIND": "hash",
        **stub_llm.env,
    }
    started = time.monotonic()
    # Time-aware search would rank the newest of these near-identical memories
    # (hash embedder) first as a later "version"; plain ranking puts the token's own first.
    api_env = {**env, "MEMOS_SEARCH__TIME_AWARE": "false"}
    workers = [
        memos_processes(
            ["worker", "--concurrency", "2", "--data-dir", str(tmp_path / f"w{n}")], env
        )
        for n in range(2)
    ]
    ports = [free_port(), free_port()]
    servers = [
        memos_processes(
            [
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path / f"api{n}"),
                "--task-workers",
                "0",  # the API servers only queue fine passes; the workers run them
                *(["--workers", "2"] if n == 0 else []),  # two processes on the first port
            ],
            api_env,
        )
        for n, port in enumerate(ports)
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    for server, url in zip(servers, urls, strict=True):
        server.wait_healthy(url)
    for w in workers:
        w.wait_worker_running()
    ready_s = time.monotonic() - started
    run = uuid.uuid4().hex[:6]

    def client_run(i: int) -> list[Accepted]:
        accepted = []
        clients = [httpx.Client(base_url=url, timeout=30) for url in urls]
        try:
            for j in range(ADDS_PER_CLIENT):
                n = (i + j) % 2  # alternate servers, also within one conversation
                token, user, conversation = f"kw{run}x{i}x{j}", f"user{i % USERS}", f"conv{i}"
                data = cloud(
                    clients[n].post(
                        "/add/message",
                        json={
                            "user_id": user,
                            "conversation_id": conversation,
                            "async_mode": True,
                            "mode": "fine",
                            "messages": [
                                {
                                    "role": "user",
                                    "content": f"Today I collected {token} for my set.",
                                    "message_id": f"m{i}-{j}",
                                }
                            ],
                        },
                    )
                )
                assert data["status"] == "running", data
                accepted.append(Accepted(token, user, conversation, data["task_id"], n))
        finally:
            for c in clients:
                c.close()
        return accepted

    drive_started = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        accepted = [a for batch in pool.map(client_run, range(CLIENTS)) for a in batch]
    drive_s = time.monotonic() - drive_started
    total = CLIENTS * ADDS_PER_CLIENT
    assert len(accepted) == total == len({a.task_id for a in accepted})

    wait_started = time.monotonic()
    users = sorted({a.user for a in accepted})
    clients = [httpx.Client(base_url=url, timeout=90) for url in urls]
    try:
        for k, user in enumerate(users):
            done = clients[k % 2].post(
                "/product/scheduler/wait", params={"user_name": user, "timeout_seconds": 60}
            )
            assert done.json()["message"] == "idle", done.json()
        wait_s = time.monotonic() - wait_started

        # each task ran exactly once: one extraction per token, every task completed
        assert stub_llm.extractions == Counter({a.token: 1 for a in accepted})
        for a in accepted:
            status = cloud(
                clients[1 - a.server].post(
                    "/get/status", json={"task_id": a.task_id, "user_id": a.user}
                )
            )
            assert status["status"] == "completed", (a, status)
        for c in clients:
            counts = c.get("/product/scheduler/allstatus").json()["data"]["counts"]
            assert counts == {"queued": 0, "running": 0, "failed": 0, "completed": total, "dead": 0}

        # no lost or doubled writes: each user's fine memories, the same through both servers
        for user in users:
            expected = sorted(f"The user collected {a.token}." for a in accepted if a.user == user)
            for c in clients:
                listed = cloud(c.post("/get/memory", json={"user_id": user, "size": 50}))
                assert listed["total"] == len(expected), listed["total"]
                values = sorted(m["memory_value"] for m in listed["memory_detail_list"])
                assert values == expected

        # every raw message, in each conversation, through both servers
        for conversation in sorted({a.conversation for a in accepted}):
            mine = [a for a in accepted if a.conversation == conversation]
            for c in clients:
                found = cloud(
                    c.post(
                        "/get/message",
                        json={"user_id": mine[0].user, "conversation_id": conversation},
                    )
                )["message_detail_list"]
                ids = sorted(m["message_id"] for m in found)
                assert ids == sorted(f"m{conversation[4:]}-{j}" for j in range(len(mine)))

        # search through the server that did not take the write finds it
        for a in accepted:
            hits = cloud(
                clients[1 - a.server].post(
                    "/search/memory",
                    json={"user_id": a.user, "query": a.token, "relativity": 0},
                )
            )["memory_detail_list"]
            assert hits and a.token in hits[0]["memory_value"], (a, hits[:2])
    finally:
        for c in clients:
            c.close()

    for w in workers:
        w.proc.send_signal(signal.SIGTERM)
        assert w.proc.wait(timeout=40) == 0, w.output()
    # both workers took part (the queue hands each task to one of them)
    ran = [w.output().count("fine pass for cube") for w in workers]
    assert sum(ran) == total and all(ran), ran
    print(
        f"\nmulti-process: processes up in {ready_s:.1f} s; "
        f"{total} async fine adds from {CLIENTS} threads over 2 servers in "
        f"{drive_s:.2f} s; workers ran {ran} tasks, wait {wait_s:.2f} s; "
        f"{sum(stub_llm.extractions.values())} extractions for {total} tasks; "
        f"whole test {time.monotonic() - started:.1f} s"
    )
