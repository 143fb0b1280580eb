#!/usr/bin/env bash
# What an inbox record's index entries cost PostgreSQL alone (docs/DECISIONS.md 18, migration 0010): 300,000 rows
# appended to a copy of the inbox table in one INSERT, in alternated rounds, for three layouts:
#   single  primary key on id, one id range (before migration 0010)
#   twopk   primary key on id, history ids from 2^62 present (live ids land in the key's middle)
#   nopk    no primary key, the two lanes' partial indexes only (migration 0010)
# Prints each layout's seconds per round, sorted, and the median. Usage: bench/inbox-indexes.sh [ROUNDS] [PORT]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-8}; port=${2:-55439}
data=$(mktemp -d)
trap 'bash "$root/scripts/postgres-local.sh" stop "$data" >/dev/null 2>&1 || true; rm -rf "$data"' EXIT
bash "$root/scripts/postgres-local.sh" start "$data" "$port" >/dev/null
psql_bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V | tail -n 1)")/psql
command -v psql >/dev/null 2>&1 && psql_bin=psql
sql() { PGOPTIONS="-c client_min_messages=warning" "$psql_bin" -X -q -h 127.0.0.1 -p "$port" -U postgres "$@"; }

setup() {
  local key=""; [ "$1" != nopk ] && key="PRIMARY KEY"
  sql -c "DROP TABLE IF EXISTS t" -c "CREATE TABLE t (
      id bigint GENERATED ALWAYS AS IDENTITY (CACHE 1) $key,
      shard smallint GENERATED ALWAYS AS ((hashtext(COALESCE(account, '')) & 63)::smallint) STORED,
      kind smallint NOT NULL, flags smallint NOT NULL DEFAULT 0, account text, msg_id text, payload bytea,
      received_at timestamptz NOT NULL DEFAULT now())" \
    -c "CREATE INDEX t_live ON t (id) WHERE flags & 3 <> 2" -c "CREATE INDEX t_history ON t (id) WHERE flags & 3 = 2"
  if [ "$1" != single ]; then
    sql -c "INSERT INTO t (id, kind, flags, account, msg_id, payload) OVERRIDING SYSTEM VALUE
            SELECT 4611686018427387904 + g, 1, 2, 'PN' || (g % 8), 'wamid.h' || g, convert_to(repeat('x', 300), 'UTF8')
            FROM generate_series(1, 1000) g"
  fi
  sql -c "VACUUM ANALYZE t" -c "CHECKPOINT"
}

append() {
  sql -c '\timing on' -c "INSERT INTO t (kind, account, msg_id, payload)
      SELECT 1, 'PN' || (g % 8), 'wamid.' || g, convert_to(repeat('x', 300), 'UTF8') FROM generate_series(1, 300000) g" \
    | awk '/^Time:/ { printf "%.3f\n", $2 / 1000 }'
}

declare -A times
for ((r = 1; r <= rounds; r++)); do
  for layout in single twopk nopk; do
    setup "$layout" >/dev/null
    times[$layout]+="$(append) "
  done
done

for layout in single twopk nopk; do
  sorted=$(tr ' ' '\n' <<<"${times[$layout]}" | grep . | sort -n | tr '\n' ' ')
  median=$(tr ' ' '\n' <<<"$sorted" | grep . | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
  echo "$layout: median ${median} s (rounds: ${sorted% })"
done
