"""The memory commands: in-process with --data-dir, and one real server run with --url."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from memos.cli.main import cli
from memos.cli.output import table


def run(*args: str, data_dir: Path | None = None, input: str | None = None) -> Result:
    argv = list(args) + (["--data-dir", str(data_dir)] if data_dir is not None else [])
    return CliRunner().invoke(cli, argv, input=input, env={"COLUMNS": "100"})


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-data")


def test_add_search_get_messages_delete(data_dir: Path) -> None:
    added = run("add", "--user", "u1", "--conversation", "c1", "--chat-time",
                "2025-01-31 09:00", "--message-id", "m-1", "I like jasmine tea",
                data_dir=data_dir)
    assert added.exit_code == 0, added.output
    assert "added 1 message(s) to u1/c1" in added.stdout

    found = run("search", "--user", "u1", "what do I drink?", data_dir=data_dir)
    assert found.exit_code == 0, found.output
    header, first = found.stdout.splitlines()[:2]
    assert header.split() == ["ID", "TYPE", "RELATIVITY", "MEMORY"]
    assert "I like jasmine tea" in first

    data = as_json(run("search", "--user", "u1", "--json", "--limit", "3", "--relativity", "0",
                       "what do I drink?", data_dir=data_dir))
    memory_id = data["memory_detail_list"][0]["id"]
    assert first.startswith(memory_id[:8] + " ")

    listed = run("get", "--user", "u1", "--full-ids", data_dir=data_dir)
    assert listed.exit_code == 0, listed.output
    assert memory_id in listed.stdout and "1 memories in all" in listed.stdout
    page = as_json(run("get", "--user", "u1", "--json", "--page", "1", "--size", "5",
                       data_dir=data_dir))
    assert (page["total"], page["size"], page["current"]) == (1, 5, 1)

    talk = as_json(run("messages", "--user", "u1", "--conversation", "c1", "--json",
                       data_dir=data_dir))
    [message] = talk["message_detail_list"]
    assert (message["message_id"], message["chat_time"]) == ("m-1", "2025-01-31 09:00")
    shown = run("messages", "--user", "u1", "--conversation", "c1", data_dir=data_dir)
    assert "2025-01-31 09:00" in shown.stdout and "I like jasmine tea" in shown.stdout

    gone = run("delete", "--user", "u1", memory_id, data_dir=data_dir)
    assert gone.exit_code == 0, gone.output
    assert gone.stdout.strip() == "deleted 1 memories"
    empty = run("get", "--user", "u1", data_dir=data_dir)
    assert "no memories" in empty.stdout


def test_add_file_and_delete_all(data_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "messages.json"
    path.write_text(json.dumps([
        {"role": "user", "content": "My sister Ana lives in Lisbon"},
        {"role": "assistant", "content": "Lisbon is lovely in spring."},
    ]))
    added = as_json(run("add", "--user", "u2", "--conversation", "c9", "--file", str(path),
                        "--json", data_dir=data_dir))
    assert added["success"] is True
    assert as_json(run("get", "--user", "u2", "--json", data_dir=data_dir))["total"] >= 1

    refused = run("delete", "--user", "u2", "--all", data_dir=data_dir, input="n\n")
    assert refused.exit_code == 1
    assert as_json(run("get", "--user", "u2", "--json", data_dir=data_dir))["total"] >= 1

    wiped = as_json(run("delete", "--user", "u2", "--all", "--yes", "--json",
                        data_dir=data_dir))
    assert wiped["deleted_count"] >= 1
    assert as_json(run("get", "--user", "u2", "--json", data_dir=data_dir))["total"] == 0


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["search", "--user", "x" * 101, "tea"], "40010"),
        (["delete", "--user", "u1", "no-such-id"], "40307"),
        (["search", "--user", "u1", "--filter", "{not json", "tea"], "40000"),
        (["search", "--user", "u1", "--relativity", "2", "tea"], "40012"),
        (["messages", "--user", "u1", "--conversation", "c" * 101], "40011"),
    ],
)
def test_errors_exit_1_with_code(data_dir: Path, args: list[str], code: str) -> None:
    result = run(*args, data_dir=data_dir)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error {code}: ")
    assert "Traceback" not in result.output


def test_usage_errors(data_dir: Path) -> None:
    both = run("get", "--user", "u1", "--url", "http://127.0.0.1:1", data_dir=data_dir)
    assert both.exit_code == 2 and "not both" in both.stderr
    neither = run("add", "--user", "u1", "--conversation", "c1", data_dir=data_dir)
    assert neither.exit_code == 2 and "exactly one" in neither.stderr
    assert run("delete", "--user", "u1", data_dir=data_dir).exit_code == 2


def test_unreachable_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run("get", "--user", "u1", "--url", f"http://127.0.0.1:{port}")
    assert result.exit_code == 1
    assert result.stderr.startswith("error 50004: ")
    assert "memos serve" in result.stderr


def test_table_truncates_last_column() -> None:
    text = table(["ID", "MEMORY"], [["abc", "x" * 200]], width=40)
    assert all(len(line) <= 40 for line in text.splitlines())
    assert text.splitlines()[1].endswith("…")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("cli-server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMOS_")}
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "memos", "serve", "--port", str(port),
         "--data-dir", str(root / "data"), "--log-level", "WARNING"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, (root / "server.log").read_text()
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "server did not come up in 60 s"
        time.sleep(0.2)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def memos(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMOS_")}
    return subprocess.run([sys.executable, "-m", "memos", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def test_against_server_with_url(server: str) -> None:
    added = memos("add", "--url", server, "--user", "s1", "--conversation", "c1",
                  "I play the cello on Sundays")
    assert added.returncode == 0, added.stderr
    found = memos("search", "--url", server, "--user", "s1", "--json", "which instrument?")
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)["memory_detail_list"]
    assert "cello" in hits[0]["memory_value"]
    failed = memos("get", "--url", server, "--user", "y" * 101)
    assert failed.returncode == 1
    assert failed.stderr.startswith("error 40010: ")
