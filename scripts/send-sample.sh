#!/usr/bin/env bash
# Sends one signed sample webhook (a text message with non-ASCII text, Meta-style \u escapes) to a running gateway
# and prints what the sync API returns for it. Uses the same secret as scripts/run.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
url="${MEMO_URL:-http://127.0.0.1:8080}"
secret="${Memo__WhatsApp__AppSecrets__0:-$(cat "$root/.data/app-secret" 2>/dev/null || true)}"
[ -n "$secret" ] || { echo "No app secret: set Memo__WhatsApp__AppSecrets__0 or start scripts/run.sh first." >&2; exit 1; }
account="${1:-15550001111}"
now=$(date +%s)
wamid="wamid.sample.$now.$RANDOM"
body='{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"'"$account"'"},"contacts":[{"profile":{"name":"J\u00f6rg"},"wa_id":"4915111111111"}],"messages":[{"from":"4915111111111","id":"'"$wamid"'","timestamp":"'"$now"'","text":{"body":"Hallo from the sample \ud83d\ude00"},"type":"text"}]},"field":"messages"}]}]}'
signature="sha256=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" | awk '{print $NF}')"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -H "X-Hub-Signature-256: $signature" --data-binary "$body" "$url/webhooks/whatsapp")
echo "POST /webhooks/whatsapp -> $code ($wamid)"
curl -s -H "Authorization: Bearer $("$root/scripts/token.sh" "$account" --hours 1)" "$url/v1/accounts/$account/messages?since_seq=0&limit=5"
echo
