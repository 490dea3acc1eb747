"""Acknowledged writes survive restarts and SIGKILL; the SQLite file stays intact."""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.timeout(300)

REQUESTS = 200
PER_REQUEST = 5
WORKERS = 4
KILL_AFTER = 60  # acknowledged requests before the SIGKILL


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def data(resp: httpx.Response) -> Any:
    assert resp.status_code == 200, resp.text[:1000]
    body = resp.json()
    assert body["code"] == 0, body
    return body["data"]


def test_data_survives_a_restart(restartable_server: Any) -> None:
    srv = restartable_server()
    user, conv = "restart-user", "restart-conv"
    with srv.client() as http:
        data(http.post("/add/message", json={
            "user_id": user, "conversation_id": conv,
            "messages": [{"role": "user", "content": "My locker combination is 31-7-22.",
                          "message_id": "r1"},
                         {"role": "assistant", "content": "Noted.", "message_id": "r2"}]}))
        before = data(http.post("/get/memory", json={"user_id": user}))
    srv.stop()
    srv.start()
    with srv.client() as http:
        hits = data(http.post("/search/memory", json={
            "user_id": user, "query": "locker combination", "relativity": 0}))
        assert hits["memory_detail_list"][0]["memory_value"] == "My locker combination is 31-7-22."
        assert hits["memory_detail_list"][0]["sources"][0]["message_id"] == "r1"
        after = data(http.post("/get/memory", json={"user_id": user}))
        assert after == before
        msgs = data(http.post("/get/message", json={"user_id": user, "conversation_id": conv}))
        assert [m["message_id"] for m in msgs["message_detail_list"]] == ["r1", "r2"]
        # and it keeps accepting writes on the reopened file
        data(http.post("/add/message", json={
            "user_id": user, "conversation_id": conv,
            "messages": [{"role": "user", "content": "The gym opens at six.",
                          "message_id": "r3"}]}))
        assert data(http.post("/get/memory", json={"user_id": user}))["total"] == 3
    srv.stop()
    assert integrity(srv.db_path) == "ok"


def _request(i: int, run: str) -> dict[str, Any]:
    return {
        "user_id": f"dur-{run}-{i % 4}",
        "conversation_id": f"conv-{run}-{i}",
        "messages": [
            {"role": "user" if j % 2 == 0 else "assistant",
             "content": f"Durability note r{i}m{j}: item code kq{i}x{j} stored at step {j}.",
             "message_id": f"{run}-{i}-{j}"}
            for j in range(PER_REQUEST)
        ],
    }


def test_acknowledged_adds_survive_sigkill(restartable_server: Any) -> None:
    srv = restartable_server()
    run = uuid.uuid4().hex[:6]
    todo: queue.Queue[int] = queue.Queue()
    for i in range(REQUESTS):
        todo.put(i)
    acked: set[int] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def worker() -> None:
        with httpx.Client(base_url=srv.base_url, timeout=10.0) as http:
            while not stop.is_set():
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    resp = http.post("/add/message", json=_request(i, run))
                except httpx.HTTPError:
                    return  # the server is gone
                if resp.status_code == 200 and resp.json().get("code") == 0:
                    with lock:
                        acked.add(i)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with lock:
            if len(acked) >= KILL_AFTER:
                break
        time.sleep(0.002)
    srv.kill()
    with lock:
        at_kill = set(acked)
    stop.set()
    for t in threads:
        t.join(timeout=15)
    assert len(at_kill) >= KILL_AFTER, "the server acknowledged too few requests"
    assert len(at_kill) < REQUESTS, "the kill came after the batch finished; nothing was tested"
    acknowledged = set(acked)  # includes any answered between the kill and the join
    print(f"acknowledged {len(at_kill)} of {REQUESTS} requests before the SIGKILL")

    # the file is consistent right after the crash, before the server reopens it
    assert integrity(srv.db_path) == "ok"
    srv.start()
    with srv.client() as http:
        for i in range(REQUESTS):
            req = _request(i, run)
            got = data(http.post("/get/message", json={
                "user_id": req["user_id"], "conversation_id": req["conversation_id"],
                "message_limit_number": 50}))["message_detail_list"]
            stored = [m["message_id"] for m in got]
            wanted = [m["message_id"] for m in req["messages"]]
            if i in acknowledged:
                assert stored == wanted, f"acknowledged request {i} lost messages: {stored}"
                assert [m["content"] for m in got] == [m["content"] for m in req["messages"]]
            else:
                # never half-written: an add is one transaction
                assert stored in ([], wanted), f"request {i} is partially stored: {stored}"
            if stored:
                page = data(http.post("/get/memory", json={
                    "user_id": req["user_id"], "size": 50,
                    "filter": {"conversation_id": req["conversation_id"]}}))
                assert page["total"] == PER_REQUEST, (i, page["total"])
                sources = {m["sources"][0]["message_id"] for m in page["memory_detail_list"]}
                assert sources == set(wanted)
        # memories of acknowledged adds are searchable
        for i in sorted(acknowledged)[:: max(1, len(acknowledged) // 25)]:
            req = _request(i, run)
            hits = data(http.post("/search/memory", json={
                "user_id": req["user_id"], "query": f"kq{i}x3", "relativity": 0}))
            found = {h["sources"][0]["message_id"] for h in hits["memory_detail_list"]}
            assert f"{run}-{i}-3" in found, (i, found)
        # the reopened server keeps working
        data(http.post("/add/message", json=_request(REQUESTS + 1, run)))
    srv.stop()
    assert integrity(srv.db_path) == "ok"
