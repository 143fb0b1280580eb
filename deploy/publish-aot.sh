#!/usr/bin/env bash
# Publishes the gateway as a Native-AOT Linux x64 binary into artifacts/aot/<tfm>/Memo.Ingest.
# Tries net10.0 first; if its NativeAOT packs cannot be restored from the package mirror, builds the same code for
# net9.0 through the MemoTargetFramework global property (docs/DECISIONS.md, 7). Any trim or AOT warning fails it.
#   deploy/publish-aot.sh            # MEMO_AOT_TFMS="net9.0" forces one target framework
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

for tfm in ${MEMO_AOT_TFMS:-net10.0 net9.0}; do
  out="artifacts/aot/$tfm"
  log=$(mktemp)
  echo "Publishing Native AOT for $tfm ..."
  if dotnet publish src/Memo.Ingest -c Release -r linux-x64 -p:MemoTargetFramework="$tfm" -warnaserror -nologo -o "$out" >"$log" 2>&1; then
    if grep -Eq 'warning (IL|CS|NU)[0-9]+' "$log"; then
      grep -E 'warning (IL|CS|NU)[0-9]+' "$log" | sort -u >&2
      echo "Native AOT publish for $tfm produced warnings." >&2
      exit 1
    fi
    rm -f "$log"
    size=$(stat -c %s "$out/Memo.Ingest")
    echo "Native binary: $out/Memo.Ingest ($tfm, $((size / 1024 / 1024)) MiB, $size bytes)"
    exit 0
  fi
  if grep -Eq 'NU110[0-9]|NETSDK1094|NETSDK1084|Unable to find package' "$log"; then
    echo "NativeAOT packs for $tfm are not available here; trying the next target framework." >&2
    rm -f "$log"
    continue
  fi
  tail -n 40 "$log" >&2
  exit 1
done
echo "No target framework could be published as Native AOT." >&2
exit 1
