# Sourced by the diagnoses that run beside a load run (cpu-priority.sh, sequencer-waits.sh): how they find the load
# tool's and the tests' local PostgreSQL clusters and, in them, the sequencer's sessions.

# The comment every sequencer statement starts with, read from its one definition (SequencerSql.StatementMarker).
sequencer_statement_marker() {
  local marker
  marker=$(sed -n '/const string StatementMarker = """/{n;s/^ *//;p;q}' \
    "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/src/Memo.Ingest/Sequencing/SequencerSql.cs")
  [ -n "$marker" ] || { echo "SequencerSql.StatementMarker not found" >&2; return 1; }
  echo "$marker"
}

# The port of every running local cluster (/tmp/memo-test-pg-*), one a line.
local_cluster_ports() {
  local data
  for data in /tmp/memo-test-pg-*/pgdata; do
    [ -f "$data/postmaster.pid" ] && sed -n 4p "$data/postmaster.pid"
  done
  return 0
}
