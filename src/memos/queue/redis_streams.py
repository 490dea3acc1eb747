"""The scale-out queue: Redis Streams with consumer groups.

Many ``memos worker`` processes on many machines share one Redis. Every state
change is one Lua script, so it is atomic on the server and uses the server's
clock (no skew between machines). The scripts compute key names, so this needs
a standalone Redis (with replicas if wanted), not Redis Cluster. A task is as
durable as the server makes it: run Redis with ``appendonly yes`` (and
``appendfsync everysec`` or ``always``) for submits to survive a Redis restart.

Keys, under ``prefix`` (default ``memos:queue``; ``P`` below):

* ``P:t:<task_id>`` HASH: the task record (the ``Task`` fields plus ``entry``,
  its current stream entry id). ``status()`` reads it from any process.
  Finished records expire after ``retention_s`` (after that, ``status`` is
  None and a resubmit of the same id runs again).
* ``P:k:<ordering_key>`` LIST: the key's unfinished task ids in submit order.
  Only the head is ever in a stream, so two tasks of one key never run at
  once and they run in order; finishing the head releases the next one.
* ``P:s:<label>`` STREAM, consumer group ``workers``: released tasks
  (field ``id``). ``XREADGROUP`` delivers an entry to one worker (the consumer
  is the worker id) and it stays in the pending-entries list until ``XACK``
  (then ``XDEL``). Heartbeats ``XCLAIM`` the entry to the same consumer, which
  resets its idle time; an entry idle longer than the label's lease is taken
  over with ``XAUTOCLAIM`` by the next claimer, which re-runs the task.
* ``P:turn:<label>`` HASH user -> 1 and ``P:b:<label>:<user>`` LIST: each user
  has at most one undelivered entry per stream; their other ready tasks wait in
  the backlog list and the next one is appended when that entry is delivered,
  so a stream interleaves users round-robin (fairness).
* ``P:delayed`` ZSET task_id -> retry time: failed attempts in backoff; claims
  move due ones back into their streams.
* ``P:n`` and ``P:n:<user>`` HASH status -> count, kept with every transition
  (``counts``/``pending_for`` are O(1)); ``P:rr`` rotates the label order;
  ``P:conf`` holds the retention for scripts that finish tasks during a claim.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, cast

from memos.queue.base import (
    DEFAULT_BACKOFF_BASE_S,
    DEFAULT_BACKOFF_MAX_S,
    DEFAULT_LEASE_S,
    OPEN_STATUSES,
    LeaseLost,
    Task,
    TaskLabel,
    TaskStatus,
    backoff_s,
    empty_counts,
    lease_for,
)

try:
    import redis
except ImportError:  # pragma: no cover - depends on the install
    redis = None  # type: ignore[assignment]

GROUP = "workers"
DEFAULT_PREFIX = "memos:queue"
DEFAULT_RETENTION_S = 7 * 24 * 3600.0
MAX_WAIT_S = 5.0

# Shared by every script: ARGV[1] is the key prefix.
PRELUDE = """
local P = ARGV[1]
local function fmt(x) return string.format('%.6f', x) end
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function tkey(id) return P .. ':t:' .. id end
local function move(user, from, to)
  if from then
    redis.call('HINCRBY', P .. ':n', from, -1)
    redis.call('HINCRBY', P .. ':n:' .. user, from, -1)
  end
  redis.call('HINCRBY', P .. ':n', to, 1)
  redis.call('HINCRBY', P .. ':n:' .. user, to, 1)
end
local function release(id)
  local f = redis.call('HMGET', tkey(id), 'label', 'user_id')
  local label, user = f[1], f[2]
  if redis.call('HSETNX', P .. ':turn:' .. label, user, 1) == 1 then
    local eid = redis.call('XADD', P .. ':s:' .. label, '*', 'id', id)
    redis.call('HSET', tkey(id), 'entry', eid)
  else
    redis.call('RPUSH', P .. ':b:' .. label .. ':' .. user, id)
  end
end
local function advance(okey, id)
  local k = P .. ':k:' .. okey
  if redis.call('LINDEX', k, 0) == id then
    redis.call('LPOP', k)
    local nxt = redis.call('LINDEX', k, 0)
    if nxt then release(nxt) end
  else
    redis.call('LREM', k, 1, id)
  end
end
local function drop_entry(label, eid)
  if eid then
    redis.call('XACK', P .. ':s:' .. label, 'workers', eid)
    redis.call('XDEL', P .. ':s:' .. label, eid)
  end
end
local function finish(id, status, err, now, retention)
  local key = tkey(id)
  local f = redis.call('HMGET', key, 'user_id', 'ordering_key', 'status')
  redis.call('HSET', key, 'status', status, 'updated_at', fmt(now))
  redis.call('HDEL', key, 'claim_token', 'lease_until', 'entry')
  if err then redis.call('HSET', key, 'error', err) else redis.call('HDEL', key, 'error') end
  move(f[1], f[3], status)
  if retention > 0 then redis.call('EXPIRE', key, math.ceil(retention)) end
  advance(f[2], id)
end
-- The caller's claim must still hold the task: running, same token.
local function held(id, token)
  local f = redis.call('HMGET', tkey(id), 'status', 'claim_token', 'label', 'entry')
  if f[1] ~= 'running' or f[2] ~= token then return nil end
  return f
end
"""

SUBMIT = """
local id = ARGV[2]
if redis.call('EXISTS', tkey(id)) == 1 then return 0 end
local now = fmt(clock())
redis.call('HSET', tkey(id), 'task_id', id, 'label', ARGV[3], 'user_id', ARGV[4],
  'cube_id', ARGV[5], 'ordering_key', ARGV[6], 'payload', ARGV[7], 'status', 'queued',
  'attempts', 0, 'max_attempts', ARGV[8], 'created_at', now, 'available_at', now,
  'updated_at', now, 'lease_s', 0)
move(ARGV[4], nil, 'queued')
if redis.call('RPUSH', P .. ':k:' .. ARGV[6], id) == 1 then release(id) end
return 1
"""

# ARGV: P, consumer, token, label1, lease1, label2, lease2, ...
# Returns {'task', HGETALL...} or {'idle', last-generated-id per label}.
CLAIM = """
local consumer, token = ARGV[2], ARGV[3]
local labels, leases = {}, {}
for i = 4, #ARGV, 2 do
  labels[#labels + 1] = ARGV[i]
  leases[#leases + 1] = tonumber(ARGV[i + 1])
end
local now = clock()
local retention = tonumber(redis.call('HGET', P .. ':conf', 'retention') or '0')
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. ':delayed', '-inf', now, 'LIMIT', 0, 100)) do
  redis.call('ZREM', P .. ':delayed', id)
  release(id)
end
local function start(id, lease, eid)
  local key = tkey(id)
  local f = redis.call('HMGET', key, 'status', 'user_id')
  redis.call('HINCRBY', key, 'attempts', 1)
  redis.call('HSET', key, 'status', 'running', 'worker_id', consumer, 'claim_token', token,
    'lease_s', fmt(lease), 'lease_until', fmt(now + lease), 'updated_at', fmt(now), 'entry', eid)
  if f[1] ~= 'running' then move(f[2], f[1], 'running') end
  return {'task', redis.call('HGETALL', key)}
end
local n = #labels
local first = redis.call('INCR', P .. ':rr') % n
-- 1. entries whose worker stopped heartbeating for longer than the label's lease
for j = 0, n - 1 do
  local i = (first + j) % n + 1
  local stream = P .. ':s:' .. labels[i]
  local cursor = '0-0'
  repeat
    local r = redis.call('XAUTOCLAIM', stream, 'workers', consumer,
      math.floor(leases[i] * 1000), cursor, 'COUNT', 1)
    cursor = r[1]
    for _, entry in ipairs(r[2]) do
      local eid, id = entry[1], entry[2][2]
      local f = redis.call('HMGET', tkey(id), 'status', 'attempts', 'max_attempts', 'worker_id')
      if f[1] ~= 'running' then
        drop_entry(labels[i], eid)
      elseif tonumber(f[2]) >= tonumber(f[3]) then
        drop_entry(labels[i], eid)
        finish(id, 'dead', 'lease expired on attempt ' .. f[2] .. ' of ' .. f[3] ..
          ' (worker ' .. tostring(f[4]) .. ' stopped heartbeating)', now, retention)
      else
        return start(id, leases[i], eid)
      end
    end
  until cursor == '0-0'
end
-- 2. new entries; the user's next backlogged task goes to the back of the stream
for j = 0, n - 1 do
  local i = (first + j) % n + 1
  local label = labels[i]
  local stream = P .. ':s:' .. label
  local r = redis.call('XREADGROUP', 'GROUP', 'workers', consumer, 'COUNT', 1,
    'STREAMS', stream, '>')
  if r then
    local entry = r[1][2][1]
    local eid, id = entry[1], entry[2][2]
    local user = redis.call('HGET', tkey(id), 'user_id')
    local nxt = redis.call('LPOP', P .. ':b:' .. label .. ':' .. user)
    if nxt then
      redis.call('HSET', tkey(nxt), 'entry', redis.call('XADD', stream, '*', 'id', nxt))
    else
      redis.call('HDEL', P .. ':turn:' .. label, user)
    end
    return start(id, leases[i], eid)
  end
end
local last = {'idle'}
for i = 1, n do
  local info = redis.call('XINFO', 'STREAM', P .. ':s:' .. labels[i])
  for k = 1, #info, 2 do
    if info[k] == 'last-generated-id' then last[#last + 1] = info[k + 1] end
  end
end
return last
"""

EXTEND = """
local id, token = ARGV[2], ARGV[3]
local f = held(id, token)
if not f then return 0 end
local now = clock()
local g = redis.call('HMGET', tkey(id), 'worker_id', 'lease_s')
redis.call('XCLAIM', P .. ':s:' .. f[3], 'workers', g[1], 0, f[4], 'JUSTID')
redis.call('HSET', tkey(id), 'lease_until', fmt(now + tonumber(g[2])), 'updated_at', fmt(now))
return 1
"""

COMPLETE = """
local id, token = ARGV[2], ARGV[3]
local f = held(id, token)
if not f then return 0 end
drop_entry(f[3], f[4])
finish(id, 'completed', nil, clock(), tonumber(ARGV[4]))
return 1
"""

# ARGV: P, id, token, error, retry (1/0), backoff seconds, retention seconds
FAIL = """
local id, token = ARGV[2], ARGV[3]
local f = held(id, token)
if not f then return 0 end
drop_entry(f[3], f[4])
local now = clock()
local g = redis.call('HMGET', tkey(id), 'attempts', 'max_attempts', 'user_id')
if ARGV[5] == '1' and tonumber(g[1]) < tonumber(g[2]) then
  local at = now + tonumber(ARGV[6])
  redis.call('HSET', tkey(id), 'status', 'failed', 'error', ARGV[4], 'available_at', fmt(at),
    'updated_at', fmt(now))
  redis.call('HDEL', tkey(id), 'claim_token', 'lease_until', 'entry')
  redis.call('ZADD', P .. ':delayed', at, id)
  move(g[3], 'running', 'failed')
  return 'failed'
end
finish(id, 'dead', ARGV[4], now, tonumber(ARGV[7]))
return 'dead'
"""


def _optional_float(value: str | None) -> float | None:
    return float(value) if value else None


def _task_from_hash(h: Mapping[str, str]) -> Task:
    return Task(
        task_id=h["task_id"],
        label=TaskLabel(h["label"]),
        user_id=h["user_id"],
        cube_id=h["cube_id"],
        ordering_key=h["ordering_key"],
        payload=json.loads(h["payload"]),
        status=TaskStatus(h["status"]),
        attempts=int(h["attempts"]),
        max_attempts=int(h["max_attempts"]),
        error=h.get("error") or None,
        created_at=float(h["created_at"]),
        available_at=float(h["available_at"]),
        updated_at=float(h["updated_at"]),
        worker_id=h.get("worker_id") or None,
        claim_token=h.get("claim_token") or None,
        lease_s=float(h.get("lease_s") or 0.0),
        lease_until=_optional_float(h.get("lease_until")),
    )


def _pairs(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


class RedisStreamsQueue:
    """``TaskQueue`` on Redis Streams; any number of processes may share it.

    Pass ``url`` or a ready ``client`` (made with ``decode_responses=True``).
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        client: Any = None,
        prefix: str = DEFAULT_PREFIX,
        leases: Mapping[TaskLabel, float] | None = None,
        default_lease_s: float = DEFAULT_LEASE_S,
        backoff_base_s: float = DEFAULT_BACKOFF_BASE_S,
        backoff_max_s: float = DEFAULT_BACKOFF_MAX_S,
        retention_s: float = DEFAULT_RETENTION_S,
    ) -> None:
        if client is None:
            if redis is None:
                raise ImportError("the Redis queue needs redis-py: pip install 'memos[redis]'")
            client = redis.Redis.from_url(url, decode_responses=True)
        self.client = client
        self.prefix = prefix
        self.leases = dict(leases or {})
        self.default_lease_s = default_lease_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.retention_s = retention_s
        self._idle = threading.local()  # per thread: stream ids seen by its last empty claim
        self._scripts = {
            name: client.register_script(PRELUDE + body)
            for name, body in (
                ("submit", SUBMIT),
                ("claim", CLAIM),
                ("extend", EXTEND),
                ("complete", COMPLETE),
                ("fail", FAIL),
            )
        }
        # The claim script reads retention from here, so every process agrees.
        client.hset(f"{prefix}:conf", "retention", str(retention_s))
        for label in TaskLabel:
            try:
                client.xgroup_create(self._stream(label), GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:  # BUSYGROUP: the group is already there
                if "BUSYGROUP" not in str(exc):
                    raise

    def _stream(self, label: TaskLabel | str) -> str:
        return f"{self.prefix}:s:{label}"

    def _run(self, name: str, *args: Any) -> Any:
        return self._scripts[name](keys=[], args=[self.prefix, *args])

    # ---------------------------------------------------------------- the port
    def submit(self, task: Task) -> bool:
        created = self._run(
            "submit",
            task.task_id,
            str(task.label),
            task.user_id,
            task.cube_id,
            task.ordering_key,
            json.dumps(dict(task.payload)),
            task.max_attempts,
        )
        return bool(created)

    def claim(self, worker_id: str, labels: Iterable[TaskLabel] | None = None) -> Task | None:
        wanted = sorted({TaskLabel(label) for label in (TaskLabel if labels is None else labels)})
        if not wanted:
            return None
        args: list[Any] = [worker_id, f"{worker_id}:{uuid.uuid4().hex}"]
        for label in wanted:
            args += [str(label), lease_for(label, self.leases, self.default_lease_s)]
        reply = cast(list[Any], self._run("claim", *args))
        if reply[0] == "idle":
            self._idle.streams = {
                self._stream(label): last for label, last in zip(wanted, reply[1:], strict=True)
            }
            return None
        self._idle.streams = None
        return _task_from_hash(_pairs(reply[1]))

    def _held(self, name: str, task: Task, *args: Any) -> Any:
        result = self._run(name, task.task_id, task.claim_token or "", *args)
        if result == 0:
            raise LeaseLost(f"task {task.task_id} is no longer leased to {task.worker_id}")
        return result

    def extend(self, task: Task) -> None:
        self._held("extend", task)

    def complete(self, task: Task) -> None:
        self._held("complete", task, self.retention_s)

    def fail(self, task: Task, error: str, *, retry: bool = True) -> TaskStatus:
        delay = backoff_s(task.attempts, self.backoff_base_s, self.backoff_max_s)
        result = self._held("fail", task, error, "1" if retry else "0", delay, self.retention_s)
        return TaskStatus(result)

    def status(self, task_id: str) -> Task | None:
        record = cast(dict[str, str], self.client.hgetall(f"{self.prefix}:t:{task_id}"))
        return _task_from_hash(record) if record.get("task_id") else None

    def counts(self, user_id: str | None = None) -> dict[TaskStatus, int]:
        key = f"{self.prefix}:n" if user_id is None else f"{self.prefix}:n:{user_id}"
        counts = empty_counts()
        for status, n in cast(dict[str, str], self.client.hgetall(key)).items():
            counts[TaskStatus(status)] = int(n)
        return counts

    def pending_for(self, user_id: str) -> int:
        counts = self.counts(user_id)
        return sum(counts[status] for status in OPEN_STATUSES)

    def wait_for_work(self, timeout_s: float) -> None:
        """Block on XREAD after the ids the last empty claim saw, so an entry added
        in between wakes us at once; retries and expired leases wait the timeout."""
        streams = getattr(self._idle, "streams", None)
        if not streams or timeout_s <= 0:
            return
        self.client.xread(streams, count=1, block=max(1, int(min(timeout_s, MAX_WAIT_S) * 1000)))

    def close(self) -> None:
        self.client.close()

    def __repr__(self) -> str:
        return f"RedisStreamsQueue(prefix={self.prefix!r})"
