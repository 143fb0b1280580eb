#!/usr/bin/env bash
# Mints a read token (JWT) for the local gateway of scripts/run.sh: scripts/token.sh ACCOUNT [ACCOUNT...]
# It runs the host's own sub-command, `Memo.Ingest token --account …`, with the key from .data/token-key (or
# Memo__Auth__SigningKeys__0). Options after the accounts go to that command, e.g. --hours 2 --subject crm.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -gt 0 ] || { echo "usage: scripts/token.sh ACCOUNT [ACCOUNT...] [--hours H] [--subject NAME]" >&2; exit 2; }
export Memo__Auth__SigningKeys__0="${Memo__Auth__SigningKeys__0:-$(cat "$root/.data/token-key" 2>/dev/null || true)}"
[ -n "$Memo__Auth__SigningKeys__0" ] || { echo "No token key: set Memo__Auth__SigningKeys__0 or start scripts/run.sh first." >&2; exit 1; }
args=()
while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do args+=(--account "$1"); shift; done
dll="$root/src/Memo.Ingest/bin/Release/net10.0/Memo.Ingest.dll"
[ -f "$dll" ] || dotnet build "$root/src/Memo.Ingest" -c Release -nologo -v q >/dev/null
exec dotnet "$dll" token "${args[@]}" "$@"
