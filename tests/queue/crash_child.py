"""A server or worker process for the crash tests (run as a script, killed with -9).

usage: crash_child.py STORE_URL OUT_DB {first|trickle|none} ACCEPTED_LOG

``first`` submits all tasks, then works; ``trickle`` works while submitting
one task at a time and logs each accepted id; ``none`` only works. It exits 0
once no task is pending. The handler is idempotent the way real ones must be:
its effect is an ``INSERT OR IGNORE`` keyed by task id; every run is logged too.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import time

import queue_support

from memos.queue import Task, TaskLabel, TaskQueue, Worker

TASKS = 100
USERS = ("user_A", "user_B")
LEASES = {TaskLabel.MEM_READ: 1.0}


def open_queue(store_url: str) -> TaskQueue:
    return queue_support.open_queue(store_url, leases=LEASES)


def make_task(n: int) -> Task:
    user = USERS[n % 2]
    return Task.new(
        TaskLabel.MEM_READ,
        user,
        "test_mem_cube",
        {"n": n},
        conversation_id=user,  # one ordering key per user: order must survive the crash
        task_id=f"t{n:03d}",
    )


def main(store_url: str, out_db: str, submit: str, accepted_log: str) -> int:
    local = threading.local()

    def effects() -> sqlite3.Connection:
        if not hasattr(local, "conn"):
            local.conn = sqlite3.connect(out_db, timeout=30, isolation_level=None)
        conn: sqlite3.Connection = local.conn
        return conn

    def handle(task: Task) -> None:
        conn = effects()
        conn.execute("INSERT INTO runs (task_id) VALUES (?)", (task.task_id,))
        time.sleep(0.03)
        conn.execute(
            "INSERT OR IGNORE INTO outputs (task_id, ordering_key) VALUES (?, ?)",
            (task.task_id, task.ordering_key),
        )

    queue = open_queue(store_url)
    if submit == "first":
        for n in range(TASKS):
            queue.submit(make_task(n))
    worker = Worker(queue, {TaskLabel.MEM_READ: handle}, concurrency=4, idle_wait_s=0.05)
    worker.start()
    if submit == "trickle":
        with open(accepted_log, "a", encoding="utf-8") as log:
            for n in range(TASKS):
                task = make_task(n)
                queue.submit(task)
                log.write(task.task_id + "\n")
                log.flush()
                time.sleep(0.01)
    while any(queue.pending_for(user) for user in USERS):
        time.sleep(0.05)
    worker.stop()
    queue.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
