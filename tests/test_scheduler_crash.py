"""kill -9 the server in the middle of a fine pass, restart it: nothing lost, nothing doubled.

The queue's lease (2 s here) hands the dead worker's task to the restarted
server's worker; the handler is idempotent by task id, so a pass that had
landed is not redone and one that had not runs again from the start.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from test_scheduler_api import TERMINAL, WINDOWS, add_fine, llm_env, product, status_of

pytestmark = pytest.mark.timeout(400)


def backlog(c: httpx.Client, user: str) -> dict[str, Any]:
    data: dict[str, Any] = product(
        c.get("/product/scheduler/task_queue_status", params={"user_id": user})
    )["data"]
    return data


def test_kill_mid_fine_pass_then_restart_finishes_every_task_once(
    llama_server: Any, restartable_server: Any
) -> None:
    srv = restartable_server(env=llm_env(llama_server, MEMOS_QUEUE__LEASE_S="2"))
    user = "kim"
    with srv.client(timeout=60) as c:
        # two conversations, so their passes are not ordered behind one another
        tasks = [add_fine(c, user, f"c{i % 2}", w) for i, w in enumerate(WINDOWS)]
        deadline = time.monotonic() + 60
        while backlog(c, user)["counts"]["running"] < 1:
            assert time.monotonic() < deadline, "no fine pass started"
            time.sleep(0.05)
    srv.kill()  # mid pass: the running task's lease is left behind
    srv.start()
    with srv.client(timeout=200) as c:
        done = product(
            c.post(
                "/product/scheduler/wait",
                params={"user_name": user, "timeout_seconds": 300, "poll_interval": 0.2},
            )
        )
        assert done["message"] == "idle", done
        for task in tasks:
            status = status_of(c, task, user)
            assert status["status"] in TERMINAL, status
            if status["status"] == "failed":
                assert status["error"], status
        assert backlog(c, user)["pending"] == 0
    srv.stop()

    db = sqlite3.connect(f"file:{srv.db_path}?mode=ro", uri=True)
    rows = db.execute(
        "SELECT value, sources, status, tags FROM memories WHERE user_id = ?", (user,)
    ).fetchall()
    messages = db.execute(
        "SELECT id, message_id FROM messages WHERE user_id = ?", (user,)
    ).fetchall()
    db.close()
    active = [r for r in rows if r[2] == "activated"]
    # nothing doubled: no two active memories say the same thing from the same messages
    seen = Counter(
        (value, tuple(sorted(str(s.get("message_id")) for s in json.loads(sources))))
        for value, sources, _status, _tags in active
    )
    doubled = [key for key, n in seen.items() if n > 1]
    assert not doubled, doubled
    # nothing lost: every message added is the source of an active memory (fast or fine)
    covered = {s.get("message_id") for _v, sources, _s, _t in active for s in json.loads(sources)}
    assert len(messages) == sum(len(w) for w in WINDOWS)
    lost = [m for m in messages if not covered & set(m)]
    assert not lost, lost
