#!/usr/bin/env bash
# A private PostgreSQL cluster on a loopback port, for the quick start and the tests.
#   scripts/postgres-local.sh start DATA_DIR PORT   create the cluster if needed, start it, print a connection string
#   scripts/postgres-local.sh stop DATA_DIR         stop it (fast shutdown)
#   scripts/postgres-local.sh crash DATA_DIR        stop it as a crash would (immediate: no checkpoint, recovery at the next start)
# MEMO_POSTGRES_OPTIONS adds server settings when the cluster starts (e.g. "-c autovacuum=off"), to measure a setting
# with the load tool, whose clusters this script starts too.
# initdb refuses to run as root, so as root the cluster is owned by, and run as, the 'postgres' system user.
set -euo pipefail

find_pg_bin() {
  if command -v pg_ctl >/dev/null 2>&1; then dirname "$(command -v pg_ctl)"; return; fi
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$dir" ] || { echo "PostgreSQL binaries not found: apt-get install postgresql" >&2; exit 1; }
  echo "$dir"
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

cmd=${1:-}; data=${2:-}
[ -n "$cmd" ] && [ -n "$data" ] || { echo "usage: $0 start DATA_DIR PORT | stop DATA_DIR | crash DATA_DIR" >&2; exit 2; }
bin=$(find_pg_bin)
mkdir -p "$data"
data=$(cd "$data" && pwd)

case "$cmd" in
  start)
    port=${3:?port}
    if [ "$(id -u)" = 0 ]; then
      as_owner true
      chown postgres "$data"
      # The postgres user must be able to reach the data folder through every parent.
      p="$data"; while [ "$p" != / ]; do p=$(dirname "$p"); chmod o+x "$p" 2>/dev/null || true; done
    fi
    if [ ! -f "$data/pgdata/PG_VERSION" ]; then
      as_owner "$bin/initdb" -D "$data/pgdata" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$data/initdb.log" 2>&1 \
        || { cat "$data/initdb.log" >&2; exit 1; }
    fi
    if ! as_owner "$bin/pg_ctl" -D "$data/pgdata" status >/dev/null 2>&1; then
      as_owner "$bin/pg_ctl" -D "$data/pgdata" -w -t 60 -l "$data/postgres.log" start \
        -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c max_connections=1000 -c shared_buffers=256MB ${MEMO_POSTGRES_OPTIONS:-}" >/dev/null \
        || { tail -n 30 "$data/postgres.log" >&2; exit 1; }
    fi
    echo "Host=127.0.0.1;Port=$port;Username=postgres;Database=postgres"
    ;;
  stop)
    if [ -f "$data/pgdata/PG_VERSION" ]; then
      as_owner "$bin/pg_ctl" -D "$data/pgdata" -m fast -w stop >/dev/null 2>&1 || true
    fi
    ;;
  crash)
    as_owner "$bin/pg_ctl" -D "$data/pgdata" -m immediate -w stop >/dev/null 2>&1 || true
    ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
