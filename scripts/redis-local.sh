#!/usr/bin/env bash
# A private redis-server on a loopback port, for the quick start.
#   scripts/redis-local.sh start DATA_DIR PORT   start it in the background unless it already runs; print a connection string
#   scripts/redis-local.sh stop DATA_DIR         stop it
# No persistence: Redis holds only a cache of committed ids and the pub/sub channel, both rebuilt from PostgreSQL.
set -euo pipefail

cmd=${1:-}; data=${2:-}
[ -n "$cmd" ] && [ -n "$data" ] || { echo "usage: $0 start DATA_DIR PORT | stop DATA_DIR" >&2; exit 2; }
command -v redis-server >/dev/null 2>&1 || { echo "redis-server not found: apt-get install redis-server" >&2; exit 1; }
mkdir -p "$data"
data=$(cd "$data" && pwd)
pidfile="$data/redis.pid"

running() { [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

case "$cmd" in
  start)
    port=${3:?port required}
    if ! running; then
      # maxmemory with volatile-ttl: under memory pressure, the ids closest to expiry go first (all keys have a TTL).
      redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --pidfile "$pidfile" --dir "$data" \
        --logfile "$data/redis.log" --save "" --appendonly no --maxmemory 256mb --maxmemory-policy volatile-ttl >/dev/null
      for _ in $(seq 1 100); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && break
        sleep 0.1
      done
    fi
    redis-cli -p "$port" ping >/dev/null 2>&1 || { echo "redis-server did not start; see $data/redis.log" >&2; exit 1; }
    echo "127.0.0.1:$port"
    ;;
  stop)
    if running; then kill "$(cat "$pidfile")"; fi
    ;;
  *) echo "unknown command: $cmd" >&2; exit 2 ;;
esac
