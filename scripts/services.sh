#!/usr/bin/env bash
# Start the services the test suite talks to, if they are installed and not running.
# The embedded default needs none; PostgreSQL and Redis are used by the scale-out
# adapters' tests, which skip themselves when their DSN/URL is not set.
set -uo pipefail

# The Redis queue's tests need a real server: install it where we may (root + apt).
if ! command -v redis-server >/dev/null 2>&1 && [ "$(id -u)" = 0 ] \
   && command -v apt-get >/dev/null 2>&1; then
  echo "services: installing redis-server" >&2
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null 2>&1 \
    || { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null 2>&1; }; } \
    || echo "services: could not install redis-server; the Redis tests will skip" >&2
fi

if command -v redis-server >/dev/null 2>&1; then
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "services: starting redis" >&2
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || echo "services: redis did not start" >&2
  fi
fi

if command -v pg_ctlcluster >/dev/null 2>&1 && ! pg_isready -h 127.0.0.1 -q 2>/dev/null; then
  echo "services: starting postgresql" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start \
    || echo "services: postgresql did not start" >&2
fi
exit 0
