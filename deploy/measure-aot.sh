#!/usr/bin/env bash
# Measures the Native-AOT binary beside the JIT build in the same run, on the same PostgreSQL and Redis:
# size on disk, time from process start to /readyz 200, RSS when idle, and RSS and throughput after a wrk load run.
#   deploy/measure-aot.sh            # ROUNDS=3 LOAD_SECONDS=10 CONNECTIONS=32; prints a Markdown table of medians
#   BASELINE=/path/to/Memo.Ingest deploy/measure-aot.sh   # also measures an earlier native binary, in the same rounds
# Needs wrk (apt-get install wrk). Loopback only; the servers it starts are stopped on exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rounds=${ROUNDS:-3}
load_seconds=${LOAD_SECONDS:-10}
connections=${CONNECTIONS:-32}
command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 1; }

tmp=$(mktemp -d)
cleanup() {
  [ -n "${gateway_pid:-}" ] && kill -9 "$gateway_pid" 2>/dev/null || true
  scripts/redis-local.sh stop "$tmp/redis" >/dev/null 2>&1 || true
  scripts/postgres-local.sh stop "$tmp/pg" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

deploy/publish-aot.sh >"$tmp/publish.log"
native=$(ls artifacts/aot/*/Memo.Ingest | head -n 1)
dotnet publish src/Memo.Ingest -c Release -p:PublishAot=false -warnaserror -nologo -v q -o "$tmp/jit" >"$tmp/jit.log" || { cat "$tmp/jit.log" >&2; exit 1; }
jit="$tmp/jit/Memo.Ingest.dll"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export ConnectionStrings__Postgres
ConnectionStrings__Postgres=$(scripts/postgres-local.sh start "$tmp/pg" "$(free_port)")
export ConnectionStrings__Redis
ConnectionStrings__Redis=$(scripts/redis-local.sh start "$tmp/redis" "$(free_port)")
export Memo__WhatsApp__AppSecrets__0=measure-secret
export Memo__Auth__SigningKeys__0=measure-token-signing-key-0123456789abcdef
export Logging__LogLevel__Default=Warning

# One signed webhook, posted over and over: after the first, each is a retry (verify, parse, screen, answer 200).
body='{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"PNmeasure"},"contacts":[{"profile":{"name":"Load"},"wa_id":"4915550001"}],"messages":[{"from":"4915550001","id":"wamid.measure.1","timestamp":"1700000000","text":{"body":"measuring"},"type":"text"}]},"field":"messages"}]}]}'
signature=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$Memo__WhatsApp__AppSecrets__0" | awk '{print $NF}')
cat >"$tmp/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Hub-Signature-256"] = "sha256=$signature"
LUA

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# measure KIND COMMAND...: prints "ready_ms idle_rss_kib loaded_rss_kib requests_per_second"
measure() {
  local port url started
  port=$(free_port); url="http://127.0.0.1:$port"
  started=$(date +%s%N)
  ASPNETCORE_URLS="$url" "$@" >"$tmp/gateway.log" 2>&1 &
  gateway_pid=$!
  until curl -sf "$url/readyz" >/dev/null 2>&1; do
    kill -0 "$gateway_pid" 2>/dev/null || { cat "$tmp/gateway.log" >&2; exit 1; }
    sleep 0.005
  done
  local ready_ms=$(( ($(date +%s%N) - started) / 1000000 ))
  sleep 2
  local idle; idle=$(rss_kib "$gateway_pid")
  local rps
  rps=$(wrk -t2 -c"$connections" -d"${load_seconds}s" -s "$tmp/post.lua" "$url/webhooks/whatsapp" | awk '/Requests\/sec/ {print $2}')
  local loaded; loaded=$(rss_kib "$gateway_pid")
  kill -TERM "$gateway_pid"; wait "$gateway_pid" || true; gateway_pid=
  echo "$ready_ms $idle $loaded $rps"
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

: >"$tmp/native.txt"; : >"$tmp/jit.txt"; : >"$tmp/baseline.txt"
baseline=${BASELINE:-}
for round in $(seq 1 "$rounds"); do
  [ -n "$baseline" ] && measure "$baseline" >>"$tmp/baseline.txt"
  measure "$native" >>"$tmp/native.txt"
  measure dotnet "$jit" >>"$tmp/jit.txt"
  echo "round $round: native $(tail -n 1 "$tmp/native.txt") | jit $(tail -n 1 "$tmp/jit.txt") | baseline $(tail -n 1 "$tmp/baseline.txt")  (ready ms, idle KiB, loaded KiB, req/s)" >&2
done

native_size=$(stat -c %s "$native")
jit_size=$(du -sb "$tmp/jit" | awk '{print $1}')
row() { # NAME FILE SIZE
  awk -v name="$1" -v size="$3" -v ready="$(awk '{print $1}' "$2" | median)" -v idle="$(awk '{print $2}' "$2" | median)" \
      -v loaded="$(awk '{print $3}' "$2" | median)" -v rps="$(awk '{print $4}' "$2" | median)" \
      'BEGIN { printf "| %s | %.1f MiB | %d ms | %.0f MiB | %.0f MiB | %.0f |\n", name, size / 1048576, ready, idle / 1024, loaded / 1024, rps }'
}
echo "| build | size on disk | start to ready | RSS idle | RSS after ${load_seconds} s of load | webhooks/s under load |"
echo "|---|---|---|---|---|---|"
row "Native AOT ($(basename "$(dirname "$native")"))" "$tmp/native.txt" "$native_size"
row "JIT (framework-dependent, dotnet Memo.Ingest.dll)" "$tmp/jit.txt" "$jit_size"
[ -n "$baseline" ] && row "Native AOT, baseline ($baseline)" "$tmp/baseline.txt" "$(stat -c %s "$baseline")"
exit 0
