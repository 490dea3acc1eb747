"""kill -9 mid-run, restart: every accepted task completes exactly once in effect.

The seed MemScheduler's checkpoint-restart scenario, for both adapters, with
real processes: 100 tasks for two users, a process that submitted them and
was working is killed, a second process (no resubmission) finishes, and the
100 outputs each exist once, in submit order per ordering key.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from queue_support import open_queue

from memos.queue import TaskStatus

CHILD = Path(__file__).with_name("crash_child.py")
TASKS = 100


def make_effects_db(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE runs (task_id TEXT NOT NULL)")
    conn.execute(
        "CREATE TABLE outputs (pos INTEGER PRIMARY KEY AUTOINCREMENT,"
        " task_id TEXT NOT NULL UNIQUE, ordering_key TEXT NOT NULL)"
    )
    conn.commit()
    conn.close()


def count(db: Path, table: str) -> int:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def spawn(store_url: str, db: Path, submit: str, log: Path, tmp: Path) -> subprocess.Popen[bytes]:
    out = open(tmp / f"child-{submit}-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, str(CHILD), store_url, str(db), submit, str(log)],
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).parents[2],
    )


def kill_after(proc: subprocess.Popen[bytes], db: Path, outputs: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while count(db, "outputs") < outputs:
        assert proc.poll() is None, "the child ended before it was killed"
        assert time.monotonic() < deadline, "the child made no progress"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    return count(db, "outputs")


def finish(proc: subprocess.Popen[bytes], tmp: Path) -> None:
    try:
        rc = proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in tmp.glob("child-*.log"))
    assert rc == 0, logs


def check_exactly_once(store_url: str, db: Path) -> int:
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT task_id, ordering_key FROM outputs ORDER BY pos").fetchall()
    runs = conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    conn.close()
    ids = [task_id for task_id, _ in rows]
    assert sorted(ids) == [f"t{n:03d}" for n in range(TASKS)]  # each output exactly once
    for key in {key for _, key in rows}:
        in_key = [task_id for task_id, k in rows if k == key]
        assert in_key == sorted(in_key), f"{key} ran out of order"
    queue = open_queue(store_url)
    try:
        assert queue.counts()[TaskStatus.COMPLETED] == TASKS
        assert all(
            (record := queue.status(f"t{n:03d}")) is not None
            and record.status == TaskStatus.COMPLETED
            for n in range(TASKS)
        )
    finally:
        queue.close()
    return int(runs)


def test_worker_killed_mid_run_restarts_and_finishes(store_url: str, tmp_path: Path) -> None:
    db, log = tmp_path / "effects.db", tmp_path / "accepted.log"
    make_effects_db(db)
    first = spawn(store_url, db, "first", log, tmp_path)
    at_kill = kill_after(first, db, outputs=25)
    assert at_kill < TASKS
    queue = open_queue(store_url)
    try:
        interrupted = queue.counts()[TaskStatus.RUNNING]
    finally:
        queue.close()
    assert interrupted >= 1, "the kill should land while handlers run"
    second = spawn(store_url, db, "none", log, tmp_path)  # restart without resubmitting
    finish(second, tmp_path)
    # The interrupted tasks were reclaimed after their leases and run again
    # (some had written their effect already), still with one effect each.
    assert check_exactly_once(store_url, db) >= TASKS


def test_server_killed_mid_submit_keeps_every_accepted_task(store_url: str, tmp_path: Path) -> None:
    db, log = tmp_path / "effects.db", tmp_path / "accepted.log"
    make_effects_db(db)
    first = spawn(store_url, db, "trickle", log, tmp_path)
    kill_after(first, db, outputs=15)
    accepted = log.read_text().split()
    assert 15 <= len(accepted) < TASKS, "killed while still accepting tasks"
    queue = open_queue(store_url)
    try:
        missing = [task_id for task_id in accepted if queue.status(task_id) is None]
    finally:
        queue.close()
    assert not missing, f"accepted tasks lost by the crash: {missing}"
    # The client retries everything (idempotent by task id) and a new process works.
    second = spawn(store_url, db, "first", log, tmp_path)
    finish(second, tmp_path)
    check_exactly_once(store_url, db)
