"""``/product/scheduler/*`` and ``memos worker`` over real ``memos serve`` subprocesses.

The fine passes talk to the llama.cpp fixture (SmolLM2-135M) with short
replies, so a pass may fail on bad output: the tests accept either terminal
state and require that every task ends, never extraction quality.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from memos.cli.main import cli

pytestmark = pytest.mark.timeout(300)

WINDOWS = [
    [
        {"role": "user", "content": "I'm Alex, a backend dev in Hangzhou."},
        {"role": "assistant", "content": "Nice to meet you, Alex."},
    ],
    [
        {"role": "user", "content": "I play badminton every Saturday morning."},
        {"role": "assistant", "content": "Great exercise!"},
    ],
]
TERMINAL = ("completed", "failed")


def llm_env(llama_server: Any, **extra: str) -> dict[str, str]:
    return {
        "MEMOS_LLM_BACKEND": "openai",
        "MEMOS_LLM_BASE_URL": llama_server.base_url,
        "MEMOS_LLM_MODEL": llama_server.model,
        "MEMOS_LLM_TIMEOUT_S": "120",
        "MEMOS_LLM_MAX_TOKENS": "64",
        **extra,
    }


def cloud(resp: httpx.Response) -> Any:
    body = resp.json()
    assert resp.status_code == 200 and body["code"] == 0, body
    return body["data"]


def product(resp: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = resp.json()
    assert resp.status_code == 200 and body["code"] == 200, body
    return body


def add_fine(c: httpx.Client, user: str, conversation: str, messages: list[Any]) -> str:
    data = cloud(
        c.post(
            "/add/message",
            json={
                "user_id": user,
                "conversation_id": conversation,
                "async_mode": True,
                "mode": "fine",
                "messages": messages,
            },
        )
    )
    assert data["status"] == "running", data
    task_id: str = data["task_id"]
    return task_id


def status_of(c: httpx.Client, task_id: str, user: str) -> dict[str, Any]:
    data: dict[str, Any] = cloud(c.post("/get/status", json={"task_id": task_id, "user_id": user}))
    return data


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_async_fine_adds_drain_and_wait_reports_idle(
    llama_server: Any, restartable_server: Any
) -> None:
    srv = restartable_server(env=llm_env(llama_server))
    with srv.client(timeout=180) as c:
        # two windows of one conversation: ordered, so the second waits in the queue
        tasks = [add_fine(c, "alex", "c1", w) for w in WINDOWS]
        assert status_of(c, tasks[-1], "alex") == {"status": "running"}
        backlog = product(c.get("/product/scheduler/task_queue_status", params={"user_id": "alex"}))
        assert backlog["data"]["user_id"] == "alex" and backlog["data"]["pending"] >= 2, backlog
        assert backlog["data"]["counts"]["queued"] >= 1, backlog

        # the product status view of one task, and tenancy on it
        listed = product(
            c.get("/product/scheduler/status", params={"user_id": "alex", "task_id": tasks[0]})
        )["data"]
        assert len(listed) == 1 and listed[0]["task_id"] == tasks[0]
        assert listed[0]["status"] in ("running", *TERMINAL)
        theirs = c.get("/product/scheduler/status", params={"user_id": "bo", "task_id": tasks[0]})
        assert theirs.status_code == 404 and theirs.json()["data"]["error_code"] == 50131
        other = c.post("/get/status", json={"task_id": tasks[0], "user_id": "bo"}).json()
        assert other["code"] == 50131, other

        # another user's wait is idle at once while alex has work
        started = time.monotonic()
        bo = product(c.post("/product/scheduler/wait", params={"user_name": "bo"}))
        assert bo["message"] == "idle" and time.monotonic() - started < 2, bo
        assert bo["data"] == {
            "running_tasks": 0,
            "waited_seconds": bo["data"]["waited_seconds"],
            "timed_out": False,
            "user_name": "bo",
        }

        # a short wait times out with the open count
        short = product(
            c.post(
                "/product/scheduler/wait",
                params={"user_name": "alex", "timeout_seconds": 0.2, "poll_interval": 0.05},
            )
        )
        assert short["message"] == "timeout" and short["data"]["timed_out"] is True, short
        assert short["data"]["running_tasks"] >= 1

        allstatus = product(c.get("/product/scheduler/allstatus"))["data"]
        assert sum(allstatus["counts"][k] for k in ("queued", "running", "failed")) >= 1
        assert allstatus["workers"]["in_process"] is True and allstatus["llm_configured"]

        # the stream: progress per poll while work is open, then idle
        with c.stream(
            "GET",
            "/product/scheduler/wait/stream",
            params={"user_name": "alex", "timeout_seconds": 400, "poll_interval": 0.25},
        ) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            events = sse_events(resp.read().decode())
        names = [name for name, _ in events]
        assert names[-1] == "idle" and set(names[:-1]) == {"progress"}, names
        assert len(names) >= 3 and events[0][1]["running_tasks"] >= 1, events
        assert events[-2][1]["running_tasks"] == 0 and events[-1][1]["timed_out"] is False

        # idle means every task ended: none is still running
        done = product(c.post("/product/scheduler/wait", params={"user_name": "alex"}))
        assert done["message"] == "idle" and done["data"]["running_tasks"] == 0
        for task in tasks:
            status = status_of(c, task, "alex")
            assert status["status"] in TERMINAL, status
            if status["status"] == "failed":
                assert status["error"], status
        after = product(c.get("/product/scheduler/task_queue_status", params={"user_id": "alex"}))
        assert after["data"]["pending"] == 0
        finished = after["data"]["counts"]["completed"] + after["data"]["counts"]["dead"]
        assert finished == len(WINDOWS)


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("POST", "/product/scheduler/wait", {}),
        ("POST", "/product/scheduler/wait", {"user_name": ""}),
        ("POST", "/product/scheduler/wait", {"user_name": "x" * 101}),
        ("POST", "/product/scheduler/wait", {"user_name": "a", "timeout_seconds": 0}),
        ("POST", "/product/scheduler/wait", {"user_name": "a", "timeout_seconds": 3601}),
        ("POST", "/product/scheduler/wait", {"user_name": "a", "timeout_seconds": "soon"}),
        ("POST", "/product/scheduler/wait", {"user_name": "a", "timeout_seconds": "nan"}),
        ("POST", "/product/scheduler/wait", {"user_name": "a", "poll_interval": 0.01}),
        ("POST", "/product/scheduler/wait", {"user_name": "a", "poll_interval": 61}),
        ("GET", "/product/scheduler/wait/stream", {}),
        ("GET", "/product/scheduler/wait/stream", {"user_name": "a", "timeout_seconds": -1}),
        ("GET", "/product/scheduler/task_queue_status", {}),
        ("GET", "/product/scheduler/status", {"task_id": "t"}),
        ("GET", "/product/scheduler/status", {"user_id": "a"}),
    ],
)
def test_scheduler_params_are_validated(
    http: httpx.Client, method: str, path: str, params: dict[str, Any]
) -> None:
    resp = http.request(method, path, params=params)
    body = resp.json()
    assert resp.status_code == 400, body
    assert body["code"] == 400 and body["data"]["error_code"] == 40000, body


def test_scheduler_answers_without_an_llm(http: httpx.Client) -> None:
    unknown = http.get("/product/scheduler/status", params={"user_id": "a", "task_id": "nope"})
    assert unknown.status_code == 404 and unknown.json()["data"]["error_code"] == 50131
    idle = product(http.post("/product/scheduler/wait", params={"user_name": "nobody"}))
    assert idle["message"] == "idle" and idle["data"]["timed_out"] is False
    allstatus = product(http.get("/product/scheduler/allstatus"))["data"]
    assert set(allstatus["counts"]) == {"queued", "running", "failed", "completed", "dead"}
    assert allstatus["workers"]["in_process"] is False and allstatus["llm_configured"] is False


def test_worker_refuses_to_start_without_an_llm(tmp_path: Any) -> None:
    result = CliRunner().invoke(
        cli, ["worker", "--data-dir", str(tmp_path)], env={"MEMOS_LLM_BACKEND": "none"}
    )
    assert result.exit_code == 1 and "needs an LLM" in result.output, result.output


def test_memos_worker_drains_what_the_server_queues(
    llama_server: Any, restartable_server: Any
) -> None:
    """``MEMOS_QUEUE__WORKERS=0``: the server only submits; ``memos worker`` runs the pass."""
    env = llm_env(llama_server, MEMOS_QUEUE__WORKERS="0")
    srv = restartable_server(env=env)
    with srv.client(timeout=60) as c:
        task = add_fine(c, "wen", "c1", WINDOWS[0])
        stuck = product(
            c.post("/product/scheduler/wait", params={"user_name": "wen", "timeout_seconds": 0.5})
        )
        assert stuck["message"] == "timeout" and stuck["data"]["running_tasks"] == 1
        assert product(c.get("/product/scheduler/allstatus"))["data"]["workers"]["busy"] == 0
        worker_env = {k: v for k, v in os.environ.items() if not k.startswith("MEMOS_")}
        worker_env.update(env, MEMOS_EMBEDDER__KIND="hash", MEMOS_QUEUE__WORKERS="1")
        log = (srv.log_path.parent / "worker.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "memos", "worker", "--data-dir", str(srv.data_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=worker_env,
        )
        try:
            done = product(
                c.post("/product/scheduler/wait", params={"user_name": "wen"}, timeout=150)
            )
            assert done["message"] == "idle", done
            assert status_of(c, task, "wen")["status"] in TERMINAL
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=40)
            log.close()
        output = (srv.log_path.parent / "worker.log").read_text()
        assert code == 0 and "memos worker: stopped" in output, output
