#!/usr/bin/env bash
# Publishes the gateway as a Native-AOT Linux x64 binary into artifacts/aot/net10.0/Memo.Ingest. Any trim or AOT
# warning fails it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

tfm=net10.0
out="artifacts/aot/$tfm"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "Publishing Native AOT for $tfm ..."
if ! dotnet publish src/Memo.Ingest -c Release -r linux-x64 -warnaserror -nologo -o "$out" >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  exit 1
fi

if grep -Eq 'warning (IL|CS|NU)[0-9]+' "$log"; then
  grep -E 'warning (IL|CS|NU)[0-9]+' "$log" | sort -u >&2
  echo "Native AOT publish produced warnings." >&2
  exit 1
fi

size=$(stat -c %s "$out/Memo.Ingest")
echo "Native binary: $out/Memo.Ingest ($tfm, $((size / 1024 / 1024)) MiB, $size bytes)"
