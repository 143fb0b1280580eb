#!/usr/bin/env bash
# Quick start, command 1: run the gateway on http://127.0.0.1:8080.
# Without ConnectionStrings__Postgres it creates and starts a private PostgreSQL under .data/ (kept between runs);
# without ConnectionStrings__Redis, a private redis-server (MEMO_LOCAL_REDIS=off runs without Redis).
# Without Memo__WhatsApp__AppSecrets__0 it uses a local development secret stored in .data/app-secret, and without
# Memo__Auth__SigningKeys__0 a local token-signing key in .data/token-key.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
data="$root/.data"
mkdir -p "$data"

scripts/install-deps.sh

if [ -z "${ConnectionStrings__Postgres:-}" ]; then
  export ConnectionStrings__Postgres
  ConnectionStrings__Postgres=$(scripts/postgres-local.sh start "$data/postgres" "${MEMO_LOCAL_PG_PORT:-54329}")
  echo "PostgreSQL: local cluster in .data/postgres ($ConnectionStrings__Postgres)"
fi

if [ -z "${ConnectionStrings__Redis:-}" ] && [ "${MEMO_LOCAL_REDIS:-on}" != off ]; then
  export ConnectionStrings__Redis
  ConnectionStrings__Redis=$(scripts/redis-local.sh start "$data/redis" "${MEMO_LOCAL_REDIS_PORT:-63799}")
  echo "Redis: local redis-server in .data/redis ($ConnectionStrings__Redis)"
fi

if [ -z "${Memo__WhatsApp__AppSecrets__0:-}" ]; then
  [ -s "$data/app-secret" ] || openssl rand -hex 16 > "$data/app-secret"
  export Memo__WhatsApp__AppSecrets__0
  Memo__WhatsApp__AppSecrets__0=$(cat "$data/app-secret")
  echo "App secret: local development secret from .data/app-secret (set Memo__WhatsApp__AppSecrets__0 for Meta's)"
fi
if [ -z "${Memo__Auth__SigningKeys__0:-}" ]; then
  [ -s "$data/token-key" ] || openssl rand -hex 32 > "$data/token-key"
  export Memo__Auth__SigningKeys__0
  Memo__Auth__SigningKeys__0=$(cat "$data/token-key")
  echo "Token key: local key from .data/token-key (signs the read tokens of the sync API and streams)"
fi
export Memo__WhatsApp__VerifyToken="${Memo__WhatsApp__VerifyToken:-memo-local-verify-token}"
url="${ASPNETCORE_URLS:-http://127.0.0.1:8080}"
export ASPNETCORE_URLS="$url"

cat <<MSG

Memo.Ingest starts on $url. Next, in another terminal:
  scripts/send-sample.sh                      # POST a signed sample webhook and read it back
  scripts/token.sh 15550001111                # mint a read token for an account (sync API, streams)
  curl -H "Authorization: Bearer \$(scripts/token.sh 15550001111)" '$url/v1/accounts/15550001111/messages?since_seq=0&limit=10'
  curl '$url/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=$Memo__WhatsApp__VerifyToken&hub.challenge=42'
Stop with Ctrl+C (queued webhooks are committed first). The local database stays in .data/;
stop the local servers with scripts/postgres-local.sh stop .data/postgres and scripts/redis-local.sh stop .data/redis.

MSG
exec dotnet run --project src/Memo.Ingest -c Release
