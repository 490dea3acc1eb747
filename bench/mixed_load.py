"""A bounded mixed load on a memos server: client threads, each with its own users.

Each :class:`MixedClient` (one httpx connection) sends a weighted mix of
``/add/message``, ``/product/add``, ``/search/memory``, ``/product/search``,
``/get/memory`` and ``/get/message`` over its own users; a user's first request
writes, and every read checks the client's own writes (read-your-writes: the
latest write half the time, any earlier one otherwise). :func:`run_load` runs
``clients`` of them until each sent ``requests_per_client`` or ``duration_s``
passed, and summarizes per-route and overall p50/p95/p99, throughput and
statuses. It needs only a base URL: ``bench/reliability.py`` points it at a
``memos serve`` it starts, ``tests/test_reliability_load.py`` at the test
suite's server fixture.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

ROUTES = (
    "/add/message",
    "/product/add",
    "/search/memory",
    "/product/search",
    "/get/memory",
    "/get/message",
)
# Share of each route in the mix (percent): a third writes, two thirds reads.
MIX = {
    "/add/message": 22,
    "/product/add": 10,
    "/search/memory": 24,
    "/product/search": 14,
    "/get/memory": 16,
    "/get/message": 14,
}
ADDS_PER_CONVERSATION = 3  # a client's conversation takes this many adds, then a new one
REQUEST_TIMEOUT_S = 30.0

# Varied chat text: search drops near-identical hits (cosine >= 0.97), so templates
# that differ only in a number would hide each other. 2,000 of these: max cosine 0.94.
PEOPLE = (
    "Ana", "Bo", "Chen", "Dara", "Eli", "Farid", "Gita", "Hugo", "Ines", "Jun", "Kofi", "Lena",
    "Mateo", "Nia", "Omar", "Priya",
)
VERBS = (
    "booked", "moved", "repaired", "painted", "sold", "borrowed", "ordered", "cancelled",
    "planted", "cleaned",
)
THINGS = (
    "the blue kayak", "a cello", "the garden shed", "two tickets to Lisbon", "the old piano",
    "a sourdough starter", "the spare bike", "a telescope", "the balcony tiles", "a wool rug",
    "the printer", "a lemon tree", "the camping stove", "a chess set", "the roof gutters",
    "a violin bow", "the fish tank", "a winter coat",
)
WHEN = (
    "on Monday", "last spring", "before the storm", "after dinner", "in March", "at dawn",
    "during the holiday", "this weekend", "next Thursday", "at the market", "yesterday evening",
    "before lunch",
)
WHY = (
    "for the school fair", "because the neighbours asked", "to surprise a cousin",
    "for the move to Porto", "after the insurance call", "for a birthday", "since the lease ends",
    "for the choir concert",
)


def chat_text(rng: random.Random, token: str) -> str:
    return (
        f"{rng.choice(PEOPLE)} {rng.choice(VERBS)} {rng.choice(THINGS)} {rng.choice(WHEN)} "
        f"{rng.choice(WHY)}, and {rng.choice(PEOPLE)} {rng.choice(VERBS)} {rng.choice(THINGS)} "
        f"(ref {token})."
    )


# ---------------------------------------------------------------- statistics
def percentiles(seconds: list[float]) -> dict[str, float | int]:
    """n, p50/p95/p99/mean/max in milliseconds (NaN-free: an empty list gives n=0)."""
    if not seconds:
        return {"n": 0}
    ms = np.asarray(seconds, np.float64) * 1000.0
    out: dict[str, float | int] = {"n": len(ms)}
    for q in (50, 95, 99):
        out[f"p{q}_ms"] = round(float(np.percentile(ms, q)), 2)
    out["mean_ms"] = round(float(ms.mean()), 2)
    out["max_ms"] = round(float(ms.max()), 2)
    return out


# ------------------------------------------------------------ the mixed load
@dataclass
class Written:
    """One acknowledged write: where it went and what a read must find."""

    user: str
    conversation: str
    message_ids: list[str]
    contents: list[str]
    token: str  # a unique word of the first message, for the searches


@dataclass
class ClientLog:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {r: [] for r in ROUTES})
    statuses: dict[str, Counter[str]] = field(
        default_factory=lambda: {r: Counter() for r in ROUTES}
    )
    envelope_errors: Counter[str] = field(default_factory=Counter)  # "route code"
    ryw_misses: list[str] = field(default_factory=list)  # first few kept in full
    ryw_miss_count: int = 0
    ryw_checks: int = 0
    sent: int = 0


class MixedClient:
    """One client thread's requests: its own users, each read checks its own writes."""

    def __init__(self, base_url: str, name: str, users: int, seed: int) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_S)
        self.name = name
        self.users = [f"{name}-u{k}" for k in range(users)]
        self.rng = random.Random(seed)
        self.written: dict[str, list[Written]] = {u: [] for u in self.users}
        self.adds: dict[str, int] = dict.fromkeys(self.users, 0)
        self.log = ClientLog()
        self.seq = 0

    def close(self) -> None:
        self.http.close()

    # --------------------------------------------------------------- plumbing
    def _post(self, route: str, body: dict[str, Any]) -> Any:
        """POST and record; the envelope's data on success, else None."""
        self.log.sent += 1
        started = time.perf_counter()
        try:
            resp = self.http.post(route, json=body)
        except httpx.HTTPError as exc:
            self.log.statuses[route][f"transport:{type(exc).__name__}"] += 1
            return None
        self.log.latencies[route].append(time.perf_counter() - started)
        self.log.statuses[route][str(resp.status_code)] += 1
        if resp.status_code != 200:
            return None
        payload = resp.json()
        if payload.get("code") not in (0, 200):
            self.log.envelope_errors[f"{route} {payload.get('code')}"] += 1
            return None
        return payload.get("data")

    def _miss(self, route: str, w: Written, detail: str) -> None:
        self.log.ryw_miss_count += 1
        if len(self.log.ryw_misses) < 5:
            self.log.ryw_misses.append(f"{route} {w.user}/{w.conversation}: {detail}")

    def _new_write(self, user: str, n: int) -> Written:
        self.seq += 1
        adds = self.adds[user]
        self.adds[user] += 1
        token = f"tok{self.name.replace('-', '')}s{self.seq}"
        conv = f"{user}-c{adds // ADDS_PER_CONVERSATION}"
        ids = [f"{self.name}-m{self.seq}-{j}" for j in range(n)]
        contents = [chat_text(self.rng, token if j == 0 else f"{token}r{j}") for j in range(n)]
        return Written(user, conv, ids, contents, token)

    def _conversation(self, user: str, conv: str) -> tuple[list[str], list[str]]:
        """Every acknowledged message of one conversation, in the order written."""
        ids: list[str] = []
        contents: list[str] = []
        for w in self.written[user]:
            if w.conversation == conv:
                ids += w.message_ids
                contents += w.contents
        return ids, contents

    # ------------------------------------------------------------- operations
    def add_message(self, user: str) -> None:
        w = self._new_write(user, 2)
        roles = ("user", "assistant")
        data = self._post("/add/message", {
            "user_id": user, "conversation_id": w.conversation, "async_mode": False,
            "messages": [{"role": roles[j % 2], "content": c, "message_id": i}
                         for j, (i, c) in enumerate(zip(w.message_ids, w.contents, strict=True))],
        })
        if data is not None:
            self.written[user].append(w)

    def product_add(self, user: str) -> None:
        w = self._new_write(user, 1)
        data = self._post("/product/add", {
            "user_id": user, "conversation_id": w.conversation, "async_mode": "sync",
            "messages": [{"role": "user", "content": w.contents[0],
                          "message_id": w.message_ids[0]}],
        })
        if data is not None:
            self.written[user].append(w)
            if len(data) != 1:
                self._miss("/product/add", w, f"{len(data)} memories for one message")

    def _target(self, user: str) -> Written:
        """The latest write half the time (the strict read-your-writes case), else any."""
        ws = self.written[user]
        return ws[-1] if self.rng.random() < 0.5 else self.rng.choice(ws)

    def search_memory(self, user: str) -> None:
        w = self._target(user)
        data = self._post("/search/memory", {"user_id": user, "query": w.token, "relativity": 0})
        if data is not None:
            self.log.ryw_checks += 1
            values = [m["memory_value"] for m in data["memory_detail_list"]]
            if w.contents[0] not in values:
                self._miss("/search/memory", w, f"{w.token} not in {len(values)} hits")

    def product_search(self, user: str) -> None:
        w = self._target(user)
        data = self._post("/product/search", {"user_id": user, "query": w.token, "top_k": 10})
        if data is not None:
            self.log.ryw_checks += 1
            values = [m["memory"] for g in data["text_mem"] for m in g["memories"]]
            if w.contents[0] not in values:
                self._miss("/product/search", w, f"{w.token} not in {len(values)} hits")

    def get_memory(self, user: str) -> None:
        w = self._target(user)
        data = self._post("/get/memory", {
            "user_id": user, "size": 50, "filter": {"conversation_id": w.conversation}})
        if data is not None:
            self.log.ryw_checks += 1
            ids, contents = self._conversation(user, w.conversation)
            got = sorted(m["memory_value"] for m in data["memory_detail_list"])
            if data["total"] != len(ids) or got != sorted(contents):
                self._miss("/get/memory", w, f"total {data['total']}, wanted {len(ids)}")

    def get_message(self, user: str) -> None:
        w = self._target(user)
        data = self._post("/get/message", {
            "user_id": user, "conversation_id": w.conversation, "message_limit_number": 50})
        if data is not None:
            self.log.ryw_checks += 1
            ids, contents = self._conversation(user, w.conversation)
            got = data["message_detail_list"]
            if [m["message_id"] for m in got] != ids or [m["content"] for m in got] != contents:
                self._miss("/get/message", w, f"got {[m['message_id'] for m in got]}")

    def step(self) -> None:
        user = self.rng.choice(self.users)
        if not self.written[user]:
            route = "/add/message"  # a user's first request writes, so every read has a target
        else:
            route = self.rng.choices(list(MIX), weights=list(MIX.values()))[0]
        {
            "/add/message": self.add_message,
            "/product/add": self.product_add,
            "/search/memory": self.search_memory,
            "/product/search": self.product_search,
            "/get/memory": self.get_memory,
            "/get/message": self.get_message,
        }[route](user)


def summarize(logs: list[ClientLog], wall_s: float) -> dict[str, Any]:
    """Per-route and overall latency, throughput and statuses of one load phase."""
    routes: dict[str, Any] = {}
    everything: list[float] = []
    statuses: Counter[str] = Counter()
    for route in ROUTES:
        lat = [x for log in logs for x in log.latencies[route]]
        st: Counter[str] = Counter()
        for log in logs:
            st.update(log.statuses[route])
        everything += lat
        statuses.update(st)
        routes[route] = {**percentiles(lat), "statuses": dict(sorted(st.items()))}
    completed = len(everything)
    five_xx = sum(n for s, n in statuses.items() if s.startswith("5"))
    envelope: Counter[str] = Counter()
    for log in logs:
        envelope.update(log.envelope_errors)
    return {
        "clients": len(logs),
        "requests_sent": sum(log.sent for log in logs),
        "requests_completed": completed,
        "wall_s": round(wall_s, 2),
        "throughput_rps": round(completed / wall_s, 2) if wall_s > 0 else 0.0,
        "overall": percentiles(everything),
        "routes": routes,
        "statuses": dict(sorted(statuses.items())),
        "errors_5xx": five_xx,
        "errors_non_200": sum(n for s, n in statuses.items() if s != "200"),
        "envelope_errors": dict(envelope),
        "ryw_checks": sum(log.ryw_checks for log in logs),
        "ryw_misses": sum(log.ryw_miss_count for log in logs),
        "ryw_miss_examples": [m for log in logs for m in log.ryw_misses][:10],
    }


def run_load(
    base_url: str,
    *,
    clients: int,
    requests_per_client: int,
    duration_s: float,
    users_per_client: int = 4,
    seed: int = 0,
    tag: str | None = None,
) -> dict[str, Any]:
    """``clients`` threads run the mix until each sent ``requests_per_client`` or
    ``duration_s`` passed (a request in flight at the deadline is finished)."""
    tag = tag or uuid.uuid4().hex[:6]
    mixed = [
        MixedClient(base_url, f"{tag}-k{i}", users_per_client, seed * 1000 + i)
        for i in range(clients)
    ]
    barrier = threading.Barrier(clients + 1)
    deadline: list[float] = [0.0]

    def drive(client: MixedClient) -> None:
        barrier.wait()
        while client.log.sent < requests_per_client and time.monotonic() < deadline[0]:
            client.step()

    threads = [threading.Thread(target=drive, args=(c,), daemon=True) for c in mixed]
    for t in threads:
        t.start()
    started = time.monotonic()
    deadline[0] = started + duration_s
    barrier.wait()
    for t in threads:
        t.join(timeout=duration_s + 2 * REQUEST_TIMEOUT_S)
    wall = time.monotonic() - started
    stuck = sum(t.is_alive() for t in threads)
    for c in mixed:
        c.close()
    out = summarize([c.log for c in mixed], wall)
    out["users"] = clients * users_per_client
    out["bounds"] = {"requests_per_client": requests_per_client, "duration_s": duration_s}
    out["hit_time_bound"] = any(c.log.sent < requests_per_client for c in mixed)
    out["stuck_clients"] = stuck
    # acknowledged messages per user, for a caller to read back (not written to the JSON)
    out["written_per_user"] = {
        u: sum(len(w.message_ids) for w in ws) for c in mixed for u, ws in c.written.items()
    }
    out["acknowledged_messages"] = sum(out["written_per_user"].values())
    return out


def ratios(load: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    def ratio(a: Any, b: Any) -> float | None:
        return round(a / b, 2) if a and b else None

    qs = ("p50_ms", "p95_ms", "p99_ms")
    return {
        "throughput_x": ratio(load["throughput_rps"], base["throughput_rps"]),
        "overall": {f"{q}_x": ratio(load["overall"].get(q), base["overall"].get(q)) for q in qs},
        "routes": {
            route: {
                f"{q}_x": ratio(load["routes"][route].get(q), base["routes"][route].get(q))
                for q in qs
            }
            for route in ROUTES
        },
    }
