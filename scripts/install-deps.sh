#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks for running and testing the gateway: PostgreSQL server binaries
# and redis-server; with --tests also Prometheus (promtool), Chromium, Node.js, nginx and wrk.
# Idempotent; installs only when something is missing. Needs root (or sudo) only when it has to install.
set -euo pipefail

have_postgres() {
  command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1
}

missing=()
have_postgres || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# With --tests, also promtool and prometheus: the metrics tests check /metrics, the alert rules and a real scrape.
# and Chromium for the inbox page's browser test (driven by npm playwright-core; Node.js and npm are on the machine).
if [ "${1:-}" = "--tests" ]; then
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
  # nginx runs deploy/compose/nginx.conf in front of test gateways on loopback.
  command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
  # wrk drives `ceilings http` (the gateway beside a bare HMAC endpoint; load/README.md).
  command -v wrk >/dev/null 2>&1 || missing+=(wrk)
fi
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)

if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing: ${missing[*]}" >&2
  sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts the packaged nginx on port 80; the tests start their own on loopback ports.
  if [[ " ${missing[*]} " == *" nginx-light "* ]]; then
    $sudo_cmd service nginx stop >/dev/null 2>&1 || true
  fi
fi

command -v dotnet >/dev/null 2>&1 || { echo "The .NET 10 SDK is required (dotnet not on PATH)." >&2; exit 1; }
