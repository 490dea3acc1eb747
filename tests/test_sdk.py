"""The SDK faces: in-process ``MemOS`` and HTTP ``MemOSClient`` against a real server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from memos.errors import (
    MemoryNotFound,
    MemosError,
    MissingField,
    NotFound,
    TaskNotFound,
    Unavailable,
    UserIdTooLong,
)
from memos.sdk import MemoryAPI, MemOS, MemOSClient
from memos.sdk.client import error_for
from memos.settings import load_settings

TEA = [{"role": "user", "content": "I drink green tea every morning before work"}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMOS_")}
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "memos", "serve", "--port", str(port),
             "--data-dir", str(data_dir), "--log-level", "WARNING"],
            stdout=sink, stderr=subprocess.STDOUT, env=env,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError(f"server did not come up in 60 s:\n{log.read_text()}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("sdk-server")
    proc, url = start_server(root / "data", root / "server.log")
    yield url
    stop_server(proc)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MemOS]:
    with MemOS(data_dir=tmp_path_factory.mktemp("sdk-local")) as mem:
        yield mem


@pytest.fixture(scope="module")
def remote(server: str) -> Iterator[MemOSClient]:
    with MemOSClient(server) as client:
        yield client


@pytest.fixture(params=["local", "remote"])
def face(request: pytest.FixtureRequest) -> MemoryAPI:
    api: MemoryAPI = request.getfixturevalue(request.param)
    return api


def round_trip(api: MemoryAPI, user: str) -> dict[str, dict[str, Any]]:
    """add -> status -> search -> get -> messages -> delete; returns each call's data."""
    out: dict[str, dict[str, Any]] = {}
    out["add"] = api.add_message(TEA, user, "c1", tags=["drinks"])
    assert out["add"]["success"] is True
    out["status"] = api.get_status(out["add"]["task_id"])
    assert out["status"] == {"status": "completed"}
    out["search"] = api.search_memory("what do I drink in the morning?", user)
    hits = out["search"]["memory_detail_list"]
    assert hits and "green tea" in hits[0]["memory_value"]
    assert 0 < hits[0]["relativity"] <= 1
    out["get"] = api.get_memory(user, page=1, size=10)
    assert out["get"]["total"] == 1
    assert out["get"]["memory_detail_list"][0]["id"] == hits[0]["id"]
    out["messages"] = api.get_message(user, "c1")
    assert [m["content"] for m in out["messages"]["message_detail_list"]] == [TEA[0]["content"]]
    out["delete"] = api.delete_memory(memory_ids=[hits[0]["id"]], user_ids=[user])
    assert out["delete"] == {"success": True, "deleted_count": 1}
    assert api.get_memory(user)["total"] == 0
    return out


def shape(value: Any) -> Any:
    """The structure of a JSON value: keys and element shapes, not the values."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__ if value is not None else None


def test_round_trip_same_data_in_process_and_over_http(local: MemOS, remote: MemOSClient) -> None:
    mine = round_trip(local, "rt-user")
    theirs = round_trip(remote, "rt-user")
    assert mine.keys() == theirs.keys()
    for step in mine:
        assert shape(mine[step]) == shape(theirs[step]), step
    # the in-process answer is plain JSON data, exactly as it would travel
    assert json.loads(json.dumps(mine)) == mine


def test_delete_all(face: MemoryAPI) -> None:
    face.add_message(TEA + [{"role": "user", "content": "My cat is called Miso"}], "wipe", "c")
    assert face.get_memory("wipe")["total"] >= 2
    assert face.delete_memory(user_id="wipe")["deleted_count"] >= 2
    assert face.get_memory("wipe")["total"] == 0


def test_user_id_too_long(face: MemoryAPI) -> None:
    with pytest.raises(UserIdTooLong) as info:
        face.search_memory("tea", "u" * 101)
    assert info.value.code == 40010
    assert "100" in info.value.message


def test_missing_field_maps_alike(face: MemoryAPI) -> None:
    with pytest.raises(MissingField) as info:
        face.add_message([{"content": "no role"}], "u-missing", "c1")
    assert info.value.code == 40002
    assert "role" in info.value.message


def test_not_found_errors(face: MemoryAPI) -> None:
    face.add_message(TEA, "nf-user", "c1")
    with pytest.raises(MemoryNotFound) as info:
        face.delete_memory(memory_ids=["no-such-id"], user_ids=["nf-user"])
    assert info.value.code == 40307
    assert info.value.data == {"missing": ["no-such-id"]}
    with pytest.raises(TaskNotFound) as task:
        face.get_status("no-such-task")
    assert task.value.code == 50131


def test_unreachable_url_raises_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with MemOSClient(url, timeout=5) as client, pytest.raises(Unavailable) as info:
        client.get_memory("u1")
    assert info.value.code == 50004
    assert url in info.value.message
    assert "memos serve" in info.value.message


def test_error_for_picks_the_most_general_class() -> None:
    assert type(error_for(40001, "x")) is NotFound
    assert type(error_for(50004, "x")) is Unavailable
    assert type(error_for(50000, "x")) is MemosError
    unknown = error_for(49999, "odd", {"k": 1})
    assert type(unknown) is MemosError
    assert (unknown.code, unknown.message, unknown.data) == (49999, "odd", {"k": 1})


class _Recorder(BaseHTTPRequestHandler):
    """A tiny real HTTP server answering each POST with the body queued in ``replies``."""

    replies: list[tuple[int, bytes]] = []
    seen: list[dict[str, str]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).seen.append({"path": self.path, **dict(self.headers.items())})
        status, body = type(self).replies.pop(0)
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture()
def recorder() -> Iterator[tuple[str, type[_Recorder]]]:
    httpd = HTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.replies, _Recorder.seen = [], []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Recorder
    httpd.shutdown()
    httpd.server_close()


def test_client_sends_token_and_maps_codes(recorder: tuple[str, type[_Recorder]]) -> None:
    url, rec = recorder
    rec.replies = [
        (200, json.dumps({"code": 0, "message": "ok", "data": {"status": "done"}}).encode()),
        (400, json.dumps({"code": 49999, "message": "odd", "data": None}).encode()),
        (502, b"<html>bad gateway</html>"),
    ]
    with MemOSClient(url + "/", api_key="sk-test") as client:
        assert client.get_status("t1") == {"status": "done"}
        with pytest.raises(MemosError) as unknown:
            client.get_status("t2")
        assert (unknown.value.code, unknown.value.message) == (49999, "odd")
        with pytest.raises(MemosError) as garbage:
            client.get_status("t3")
        assert garbage.value.code == 50000 and "502" in garbage.value.message
    assert rec.seen[0]["path"] == "/get/status"
    assert rec.seen[0]["Authorization"] == "Token sk-test"


def test_local_settings_and_closed(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": tmp_path / "a", "embedder": {"kind": "hash"}})
    mem = MemOS(data_dir=tmp_path / "b", settings=settings)
    assert mem.settings.data_dir == tmp_path / "b"
    assert (tmp_path / "b" / "memos.db").exists()
    mem.close()
    mem.close()
    with pytest.raises(MemosError, match="closed"):
        mem.get_memory("u1")
