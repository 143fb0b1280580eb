#!/usr/bin/env bash
# A diagnosis to run beside a load run (docs/PERFORMANCE.md, thirty-third session): where the sequencer's PostgreSQL
# backends spend a round's time, by sampling pg_stat_activity (state and wait event) every few milliseconds for
# SECONDS, over one psql session of single-statement transactions (a sampler in one long transaction would hold back
# the xmin horizon and with it the inbox's vacuum). Local clusters of the load tool and the tests (/tmp/memo-test-pg-*).
#
# What the rows mean, per backend (share of its samples):
#   active|-|-                running its statement: on a core, or waiting for one (the load tool's `run` column
#                             "sequencer's backends: on a core / waiting for one" splits the two)
#   active|IO|WALSync,        its commit waiting for the WAL flush (its own, or the one in progress through the WALWrite
#   active|LWLock|WALWrite    lock: group commit)
#   idle|Client|ClientRead    the round is over and the gateway has not yet sent the next statement (it reads the rows,
#                             publishes the events, waits for work)
# A backend that waits for a core right after a wait shows that time under the wait (PostgreSQL ends a wait event once
# it runs again).
# Usage: bench/sequencer-waits.sh [SECONDS]   (default 10; e.g. 20 s into `run --closed-loop 16 --step-seconds 30 …`)
set -euo pipefail
seconds=${1:-10}
source "$(dirname "$0")/local-clusters.sh"
marker=$(sequencer_statement_marker)
port=$(local_cluster_ports | head -n 1)
[ -n "$port" ] || { echo "no running cluster under /tmp/memo-test-pg-*" >&2; exit 1; }

sample="SELECT pid, state, coalesce(wait_event_type, '-'), coalesce(wait_event, '-') FROM pg_stat_activity WHERE starts_with(ltrim(query), '$marker');"
# More samples than the time allows (each takes 2-4 ms with its sleep); timeout ends the session, and the writer stops
# at the closed pipe.
(trap '' PIPE; for ((i = 0; i < seconds * 1000; i++)); do printf '%s\nSELECT pg_sleep(0.001);\n' "$sample" 2>/dev/null || break; done) \
  | { timeout "$seconds" psql -X -At -F '|' -h 127.0.0.1 -p "$port" -U postgres -d postgres 2>/dev/null || true; } \
  | awk -F'|' 'NF == 4 { n[$1]++; c[$1 " " $2 "|" $3 "|" $4]++ }
      END {
        for (k in c) { split(k, a, " "); if (c[k] / n[a[1]] >= 0.005) printf "%s\t%5.1f %%\t%s\n", a[1], 100 * c[k] / n[a[1]], a[2] }
        for (p in n) printf "%s\t%d samples\n", p, n[p] > "/dev/stderr"
      }' \
  | sort -k1,1n -k2,2nr
