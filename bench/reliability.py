"""Reliability under crashes and load: kill -9 during acknowledged adds, and a bounded
32-client mixed load on loopback, both against real ``memos serve`` subprocesses.

* ``crash``: ``--writers`` client threads add 3-message conversations through
  ``/add/message`` (``async_mode: false``) and record every add the server
  acknowledged (HTTP 200, code 0). After a random number of acknowledgements the
  server is SIGKILLed mid-load, ``PRAGMA integrity_check`` runs on the file, and
  the server restarts on the same data dir; ``--kills`` times. A last restart then
  reads every add back with ``/get/message`` and ``/get/memory``: an acknowledged
  add must be there exactly (ids, contents, one memory per message, no duplicate),
  an add cut off by the kill must be all there or not at all. The single-kill
  assertions live in ``tests/test_durability.py``; this repeats the kill and counts.
* ``load``: ``--clients`` threads (httpx, one connection each) send a mix of
  ``/add/message``, ``/product/add``, ``/search/memory``, ``/product/search``,
  ``/get/memory`` and ``/get/message`` over ``--users-per-client`` users each, every
  read checking the client's own latest writes (read-your-writes). Bounded by
  ``--requests`` per client AND ``--duration`` seconds. The baseline, in the same
  run on the same server, is one client sending the same mix. Per-route and
  overall p50/p95/p99, throughput, statuses; 5xx must be 0.

The load itself is ``bench/mixed_load.py``; ``tests/test_reliability_load.py`` runs
a small one of it against the test suite's server fixture.

Usage: python bench/reliability.py --out bench/results/reliability.json
Exit status 1 when a 5xx, a lost or duplicated add or a read-your-writes miss was seen.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from mixed_load import REQUEST_TIMEOUT_S, ratios, run_load

from memos.bench import ServerProcess, machine_info, rss_mb


def cpu_ticks(server_pid: int) -> tuple[int, int, int] | None:
    """(machine busy, machine total, this process + the server) CPU clock ticks, Linux only."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
        ours = 0
        for pid in ("self", str(server_pid)):
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ours += int(stat[11]) + int(stat[12])  # utime + stime
    except (OSError, ValueError, IndexError):
        return None
    total = sum(fields)
    return total - fields[3] - fields[4], total, ours  # idle and iowait are not busy


def cpu_share(before: tuple[int, int, int] | None, after: tuple[int, int, int] | None
              ) -> dict[str, float] | None:
    """Of the machine's CPU time in a phase: what the bench + server used, what others did."""
    if before is None or after is None or after[1] == before[1]:
        return None
    busy, total, ours = (a - b for a, b in zip(after, before, strict=True))
    return {"ours": round(ours / total, 3), "others": round(max(busy - ours, 0) / total, 3),
            "idle": round(1 - busy / total, 3)}


def source_version() -> dict[str, Any]:
    """The commit measured, and whether the working tree differed from it."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "HEAD"),
            "uncommitted_src_changes": bool(git("status", "--porcelain", "src"))}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


# ------------------------------------------------------------- the crash test
@dataclass
class CrashLedger:
    """Every add sent, and which of them the server acknowledged."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> request body
    acked: set[str] = field(default_factory=set)
    rejected: Counter[str] = field(default_factory=Counter)  # non-200 answers while alive
    transport: Counter[str] = field(default_factory=Counter)


def crash_body(run: str, key: str, users: int, n: int) -> dict[str, Any]:
    user = f"crash-{run}-u{zlib.crc32(key.encode()) % users}"
    return {
        "user_id": user,
        "conversation_id": f"conv-{key}",
        "async_mode": False,
        "messages": [
            {"role": "user" if j % 2 == 0 else "assistant",
             "content": f"Crash note {key} part {j}: parcel {key.replace('-', '')}p{j} shelved.",
             "message_id": f"{key}-{j}"}
            for j in range(n)
        ],
    }


def crash_round(
    url: str, ledger: CrashLedger, run: str, rnd: int, writers: int, kill_after: int,
    users: int, per_add: int, max_s: float,
) -> dict[str, Any]:
    """Writers add until ``kill_after`` acknowledgements of this round; returns when
    the caller may kill (the writers keep sending until the connection drops)."""
    stop = threading.Event()
    counts = Counter[str]()

    def writer(w: int) -> None:
        with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as http:
            seq = 0
            while not stop.is_set():
                key = f"r{rnd}w{w}n{seq}"
                seq += 1
                body = crash_body(run, key, users, per_add)
                with ledger.lock:
                    ledger.sent[key] = body
                try:
                    resp = http.post("/add/message", json=body)
                except httpx.HTTPError as exc:
                    with ledger.lock:
                        ledger.transport[type(exc).__name__] += 1
                    return  # the server is gone
                with ledger.lock:
                    if resp.status_code == 200 and resp.json().get("code") == 0:
                        ledger.acked.add(key)
                        counts["acked"] += 1
                    else:
                        ledger.rejected[str(resp.status_code)] += 1

    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(writers)]
    for t in threads:
        t.start()
    started = time.monotonic()
    while time.monotonic() - started < max_s:
        with ledger.lock:
            if counts["acked"] >= kill_after:
                break
        time.sleep(0.001)
    return {"threads": threads, "stop": stop, "acked_before_kill": counts, "load_s": started}


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def read_back(http: httpx.Client, route: str, body: dict[str, Any], statuses: Counter[str]) -> Any:
    """The envelope's data, or None (a user with no data yet answers 40308)."""
    resp = http.post(route, json=body)
    payload = resp.json()
    statuses[f"{resp.status_code} {payload.get('code')}"] += 1
    return payload.get("data") if resp.status_code == 200 and payload.get("code") == 0 else None


@dataclass
class Verdict:
    """What reading the adds back found."""

    statuses: Counter[str] = field(default_factory=Counter)
    lost: set[str] = field(default_factory=set)  # acknowledged adds missing a message or memory
    lost_detail: list[str] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)
    corrupted: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    stored: set[str] = field(default_factory=set)  # adds whose messages are there
    memories_found: int = 0


def check_messages(http: httpx.Client, ledger: CrashLedger, out: Verdict) -> None:
    """Each add's conversation: exactly its messages (acknowledged), or all or nothing."""
    for key, body in sorted(ledger.sent.items()):
        data = read_back(http, "/get/message", {
            "user_id": body["user_id"], "conversation_id": body["conversation_id"],
            "message_limit_number": 50}, out.statuses)
        got = data["message_detail_list"] if data else []
        stored = [m["message_id"] for m in got]
        if not stored:
            if key in ledger.acked:
                out.lost.add(key)
                out.lost_detail.append(f"{key}: no messages")
            continue
        out.stored.add(key)
        if stored != [m["message_id"] for m in body["messages"]]:
            out.partial.append(f"{key}: {stored}")
        elif [m["content"] for m in got] != [m["content"] for m in body["messages"]]:
            out.corrupted.append(f"{key}: message contents differ")


def check_memories(http: httpx.Client, ledger: CrashLedger, user: str, out: Verdict) -> None:
    """Every memory of ``user``: one per stored message, none twice, text unchanged."""
    seen: Counter[str] = Counter()
    value_of: dict[str, str] = {}
    page = 1
    while True:
        data = read_back(http, "/get/memory", {"user_id": user, "page": page, "size": 50},
                         out.statuses)
        if data is None:
            break
        for m in data["memory_detail_list"]:
            out.memories_found += 1
            for src in m["sources"][:1]:
                seen[src["message_id"]] += 1
                value_of[src["message_id"]] = m["memory_value"]
        if page >= data["pages"]:
            break
        page += 1
    out.duplicated += [f"{user}: {mid} x{n}" for mid, n in seen.items() if n > 1]
    written = ledger.acked | out.stored
    for key, body in ledger.sent.items():
        if body["user_id"] != user or key not in written:
            continue
        missing = [m["message_id"] for m in body["messages"] if seen[m["message_id"]] == 0]
        if missing and key in ledger.acked:
            out.lost.add(key)
            out.lost_detail.append(f"{key}: no memories for {missing}")
        elif missing:  # stored messages without their memories: a split add
            out.partial.append(f"{key}: messages stored, no memories for {missing}")
        out.corrupted += [
            f"{key}: memory of {m['message_id']} reads {value_of[m['message_id']]!r}"
            for m in body["messages"]
            if m["message_id"] in value_of and value_of[m["message_id"]] != m["content"]
        ]


def verify_crash(url: str, ledger: CrashLedger, per_add: int) -> dict[str, Any]:
    """Read every add back: acknowledged ones whole, cut-off ones whole or absent."""
    out = Verdict()
    users = sorted({body["user_id"] for body in ledger.sent.values()})
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as http:
        check_messages(http, ledger, out)
        for user in users:
            check_memories(http, ledger, user, out)
    acked = len(ledger.acked)
    return {
        "acknowledged_adds": acked,
        "acknowledged_messages": acked * per_add,
        "found_after_restarts": acked - len(out.lost),
        "lost": len(out.lost),
        "lost_examples": out.lost_detail[:10],
        "partial": len(out.partial),
        "partial_examples": out.partial[:10],
        "corrupted": len(out.corrupted),
        "corrupted_examples": out.corrupted[:10],
        "duplicated": len(out.duplicated),
        "duplicated_examples": out.duplicated[:10],
        "unacknowledged_sent": len(ledger.sent) - acked,
        "unacknowledged_stored_whole": len(out.stored - ledger.acked),
        "memories_found": out.memories_found,
        "memories_expected": per_add * len(ledger.acked | out.stored),
        "read_back_statuses": dict(out.statuses),
        "users": len(users),
    }


def run_crash(
    work: Path, *, kills: int, writers: int, users: int, per_add: int, seed: int,
    env: dict[str, str],
) -> dict[str, Any]:
    rng = random.Random(seed)
    data_dir = work / "crash-data"
    run = uuid.uuid4().hex[:6]
    ledger = CrashLedger()
    rounds: list[dict[str, Any]] = []
    for rnd in range(kills):
        srv = ServerProcess(data_dir, log_path=work / f"crash-server-{rnd}.log", env=env)
        t0 = time.monotonic()
        srv.start()
        start_s = time.monotonic() - t0
        kill_after = rng.randint(40, 120)
        state = crash_round(srv.url, ledger, run, rnd, writers, kill_after, users, per_add, 60.0)
        with ledger.lock:  # no answer is recorded between the count and the kill
            acked_at_kill = state["acked_before_kill"]["acked"]
            unanswered = len(ledger.sent) - len(ledger.acked) - sum(ledger.rejected.values())
            os.kill(srv.pid, signal.SIGKILL)
        in_flight = unanswered - sum(r["unanswered_at_kill"] for r in rounds)
        load_s = time.monotonic() - state["load_s"]
        state["stop"].set()
        for t in state["threads"]:
            t.join(timeout=REQUEST_TIMEOUT_S)
        srv.stop()  # reaps the killed process, closes its log
        check = integrity(data_dir / "memos.db")
        rounds.append({
            "round": rnd + 1, "start_s": round(start_s, 2), "load_s": round(load_s, 2),
            "kill_after_acks": kill_after, "acked_at_kill": acked_at_kill,
            "unanswered_at_kill": in_flight, "integrity_after_kill": check,
        })
        print(f"crash round {rnd + 1}: SIGKILL after {acked_at_kill} acknowledged adds "
              f"({load_s:.1f} s of load), integrity {check}", flush=True)
    srv = ServerProcess(data_dir, log_path=work / "crash-server-final.log", env=env)
    t0 = time.monotonic()
    srv.start()
    restart_s = time.monotonic() - t0
    try:
        verdict = verify_crash(srv.url, ledger, per_add)
    finally:
        srv.stop()
    final_integrity = integrity(data_dir / "memos.db")
    return {
        "kills": kills, "writers": writers, "messages_per_add": per_add,
        "rounds": rounds, "final_restart_s": round(restart_s, 2),
        "rejected_while_alive": dict(ledger.rejected),
        "transport_errors": dict(ledger.transport),
        "integrity_final": final_integrity,
        **verdict,
    }


# ----------------------------------------------------------------------- main
def run_mixed(work: Path, args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    with ServerProcess(work / "load-data", log_path=work / "load-server.log", env=env) as srv:
        rss_start = rss_mb(srv.pid)
        warm = run_load(srv.url, clients=4, requests_per_client=10, duration_s=30, tag="warm")
        ticks = [cpu_ticks(srv.pid)]
        base = run_load(srv.url, clients=1, requests_per_client=args.baseline_requests,
                        duration_s=args.baseline_duration, seed=args.seed, tag="base")
        print(f"baseline: 1 client, {base['requests_completed']} requests, "
              f"p50 {base['overall'].get('p50_ms')} ms, {base['throughput_rps']} req/s",
              flush=True)
        ticks.append(cpu_ticks(srv.pid))
        load = run_load(srv.url, clients=args.clients, requests_per_client=args.requests,
                        duration_s=args.duration, users_per_client=args.users_per_client,
                        seed=args.seed, tag="load")
        print(f"load: {args.clients} clients, {load['requests_completed']} requests, "
              f"p50 {load['overall'].get('p50_ms')} ms, p99 {load['overall'].get('p99_ms')} ms, "
              f"{load['throughput_rps']} req/s, 5xx {load['errors_5xx']}", flush=True)
        ticks.append(cpu_ticks(srv.pid))
        rss_end = rss_mb(srv.pid)
    for phase in (base, load):
        phase.pop("written_per_user")
    return {
        "warmup_5xx": warm["errors_5xx"],
        "baseline": base, "concurrent": load, "ratios": ratios(load, base),
        "server_rss_mb": {"start": rss_start, "end": rss_end},
        # CPU share of the machine: a loaded machine (other jobs) lowers the figures
        "cpu_share": {"baseline": cpu_share(ticks[0], ticks[1]),
                      "concurrent": cpu_share(ticks[1], ticks[2])},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("bench/results/reliability.json"))
    ap.add_argument("--embedder", default="minilm", help="MEMOS_EMBEDDER__KIND of the servers")
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--writers", type=int, default=6)
    ap.add_argument("--crash-users", type=int, default=8)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=300, help="per client")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds, the load's bound")
    ap.add_argument("--users-per-client", type=int, default=4)
    ap.add_argument("--baseline-requests", type=int, default=300)
    ap.add_argument("--baseline-duration", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--skip-crash", action="store_true")
    ap.add_argument("--skip-load", action="store_true")
    args = ap.parse_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMOS_")}
    env["MEMOS_EMBEDDER__KIND"] = args.embedder
    result: dict[str, Any] = {
        "machine": {**machine_info(), "nproc": os.cpu_count(), "cpu_model": cpu_model()},
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "source": source_version(),
    }
    result["machine"]["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="memos-reliability-") as tmp:
        work = Path(tmp)
        if not args.skip_crash:
            result["crash"] = run_crash(
                work, kills=args.kills, writers=args.writers, users=args.crash_users,
                per_add=3, seed=args.seed, env=env)
        if not args.skip_load:
            result["load"] = run_mixed(work, args, env)
    result["total_s"] = round(time.monotonic() - started, 1)
    problems = []
    crash = result.get("crash")
    if crash and (crash["lost"] or crash["partial"] or crash["corrupted"] or crash["duplicated"]
                  or crash["memories_found"] != crash["memories_expected"]
                  or crash["integrity_final"] != "ok"
                  or any(r["integrity_after_kill"] != "ok" for r in crash["rounds"])):
        problems.append("crash test lost, split, altered or duplicated data")
    load = result.get("load")
    if load:
        for phase in ("baseline", "concurrent"):
            if load[phase]["errors_5xx"] or load[phase]["ryw_misses"]:
                problems.append(f"{phase}: 5xx or read-your-writes misses")
    result["problems"] = problems
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out} in {result['total_s']} s; problems: {problems or 'none'}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
