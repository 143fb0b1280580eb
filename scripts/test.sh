#!/usr/bin/env bash
# Quick start, command 2: build with warnings as errors, run every test suite, then the short fault suite
# and overload run (docs/RELIABILITY.md) and a short load run (docs/PERFORMANCE.md) against the native binary.
# The integration tests start their own PostgreSQL (scripts/postgres-local.sh) unless MEMO_TEST_POSTGRES is set,
# and their own redis-server and prometheus. The Native-AOT binary is published first (failing on any trim or AOT
# warning), because a smoke suite runs against it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/install-deps.sh --tests
# Independent JavaScript decoders and tools the tests run (tests/js: @msgpack/msgpack, playwright-core).
npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
dotnet build Memo.Ingest.sln -c Release -warnaserror -nologo -clp:ErrorsOnly
deploy/publish-aot.sh
MEMO_NATIVE_BINARY="$root/$(ls artifacts/aot/*/Memo.Ingest | head -n 1)"
export MEMO_NATIVE_BINARY

log=$(mktemp)
status=0
dotnet test Memo.Ingest.sln -c Release --no-build -nologo 2>&1 | tee "$log" || status=$?

# One plain summary line over all test assemblies.
passed=$(grep -Eo 'Passed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
failed=$(grep -Eo 'Failed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
skipped=$(grep -Eo 'Skipped: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
rm -f "$log"
echo "$passed passed, $failed failed, $skipped skipped"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then
  exit 1
fi

# Kills, PostgreSQL and Redis outages under Meta-like traffic; fails on any lost, duplicated or unacknowledged message.
echo "Fault suite (short form):"
dotnet run -c Release --no-build --project load/Memo.Ingest.Load -- faults --native "$MEMO_NATIVE_BINARY"

# Load beyond capacity: the maximum sustainable rate R is measured first, then 2× and 5× R. Only 200 or 503 with
# Retry-After, accepted/s under overload not below 0.7 × R (no collapse), bounded memory, recovery, every acknowledged
# message stored once.
echo "Overload run (short form):"
dotnet run -c Release --no-build --project load/Memo.Ingest.Load -- overload --native "$MEMO_NATIVE_BINARY"

# A short load run (docs/PERFORMANCE.md): open-model senders and 100 stream subscribers for 20 s; fails on any lost or
# duplicated acknowledged message, any answer but 200, or an event out of order. It prints figures; it does not fail
# on speed (shared machines are noisy).
echo "Load run (short form):"
dotnet run -c Release --no-build --project load/Memo.Ingest.Load -- run --rates 300 --step-seconds 20 --subscribers 100 \
  --strict --native "$MEMO_NATIVE_BINARY" --report-dir artifacts/load/ci

# Issue 19's shape: a closed loop of 16 connections posting one fresh message each, 20 live clients over 20 accounts,
# for 5 s. The same checks (loss, order, only 200s); its report sets webhook → event beside the ack latency.
echo "Closed-loop run (short form):"
dotnet run -c Release --no-build --project load/Memo.Ingest.Load -- run --closed-loop 16 --step-seconds 5 --accounts 20 --subscribers 20 \
  --duplicates 0 --statuses 0 --strict --native "$MEMO_NATIVE_BINARY" --report-dir artifacts/load/ci-closed-loop
