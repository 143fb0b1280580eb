#!/usr/bin/env bash
# A diagnosis to run beside a load run (docs/PERFORMANCE.md, thirty-second session): how much of webhook → event
# latency is PostgreSQL's sequencer backend waiting for a core. Linux, root, local clusters of the load tool and the
# tests (/tmp/memo-test-pg-*) only.
#
# Why autogroups: started outside a CPU cgroup (as here: the load tool starts PostgreSQL with pg_ctl), every
# PostgreSQL backend calls setsid() and so gets an autogroup of its own, and the kernel shares the cores between
# autogroups first and only then, inside each, by the processes' nice values. `renice` of a backend therefore changes
# nothing against the other backends or the gateway; the weight of its autogroup (/proc/<pid>/autogroup) does.
#
# Until stopped, gives every matching process's autogroup the nice value NICE (−20 … 19; lower runs first), checking
# every 20 ms for new ones:
#   sequencer   the backends whose latest statement was a sequencer round (SequencerSql.StatementMarker), found
#               through pg_stat_activity every half second;
#   autovacuum  the autovacuum workers, which start and end with each table they process.
# Usage: bench/cpu-priority.sh sequencer|autovacuum NICE   (e.g. beside `run --closed-loop 16 …`, then kill it)
set -euo pipefail
target=${1:?sequencer or autovacuum}
nice=${2:?nice value, -20 to 19}
source "$(dirname "$0")/local-clusters.sh"
marker=$(sequencer_statement_marker)

sequencer_pids() {
  local port
  for port in $(local_cluster_ports); do
    # pg_stat_activity lists the sessions of every database of the cluster.
    psql -X -At -h 127.0.0.1 -p "$port" -U postgres -d postgres \
      -c "SELECT pid FROM pg_stat_activity WHERE starts_with(ltrim(query), '$marker')" 2>/dev/null || true
  done
}

set_nice() {
  local pid=$1 current
  current=$(awk '{ print $3 }' "/proc/$pid/autogroup" 2>/dev/null) || return 0
  if [ -n "$current" ] && [ "$current" != "$nice" ] && echo "$nice" > "/proc/$pid/autogroup" 2>/dev/null; then
    echo "$(date +%T.%N | cut -c1-12) pid $pid: autogroup nice $current -> $nice" >&2
  fi
}

ticks=0
pids=()
while true; do
  if [ "$target" = sequencer ]; then
    # A psql start per cluster: every 25th tick (half a second) is often enough for sessions that live as long as
    # the gateway.
    if [ $((ticks % 25)) -eq 0 ]; then mapfile -t pids < <(sequencer_pids); fi
  else
    mapfile -t pids < <(pgrep -f '^postgres: autovacuum worker' || true)
  fi
  for pid in "${pids[@]}"; do [ -n "$pid" ] && set_nice "$pid"; done
  ticks=$((ticks + 1))
  sleep 0.02
done
