// The live inbox: shows one account's newest messages and its conversations from the sync API, then follows it over
// Server-Sent Events from there, with statuses; older messages load on demand. With a token that may send, it replies
// through the gateway's outbox: the reply appears through the stream like any message, and its status moves there. Everything from the server is inserted as text (textContent), never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const conversations = new Map();
const messages = new Map();
let source = null;

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text ?? "";
  if (className) td.className = className;
  return td;
}

function showMessage(event, where = "prepend") {
  const item = event.data;
  if (!item) return;
  let row = messages.get(item.wamid);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.wamid = item.wamid;
    if (where === "append") $("messages").append(row); else $("messages").prepend(row);
    messages.set(item.wamid, row);
  }
  row.replaceChildren();
  // Echoes (sent from the WhatsApp Business app) are outbound; history is marked so it never looks new.
  row.dataset.origin = item.origin ?? "live";
  cell(row, String(event.seq));
  cell(row, item.origin && item.origin !== "live" ? item.origin : "", "origin");
  cell(row, item.direction === "inbound" ? item.from : "to " + (item.to ?? item.contact ?? ""));
  cell(row, item.type);
  // An edited or revoked message (coexistence numbers) shows what it says now.
  cell(row, item.revoked ? "(deleted)" : item.edited_text != null ? `${item.edited_text} (edited)` : item.text);
  cell(row, item.status ?? "", item.status ? "status-" + item.status : "");
}

function showConversation(event) {
  const item = event.data;
  if (!item) return;
  let li = conversations.get(item.wa_id);
  if (!li) {
    li = document.createElement("li");
    conversations.set(item.wa_id, li);
  }
  $("conversations").prepend(li);
  li.onclick = () => { $("reply-to").value = item.wa_id; $("reply-text").focus(); };
  const unread = item.unread_count ? `, ${item.unread_count} unread` : "";
  li.textContent = `${item.profile_name ?? item.wa_id} (${item.message_count}${unread}): ${item.last_message?.preview ?? ""}`;
}

/** The history backfill of a coexistence number: "importing history: 55 %", completed or declined. */
function showHistory(history) {
  const line = $("history");
  if (!history || !history.state) { line.hidden = true; return; }
  line.hidden = false;
  line.dataset.state = history.state;
  line.textContent = history.state === "receiving" ? `importing history: ${history.progress ?? 0} %`
    : history.state === "completed" ? "history imported" : "history declined by the business";
}

// The page never replays an account from seq 0: it shows the newest window of the log (NEWEST_WINDOW seqs) from the
// sync API, follows the stream from there, and loads older windows only when asked.
const NEWEST_WINDOW = 200;
const OLDER_WINDOW = 200;
let followed = null;

async function sync(collection, sinceSeq, limit) {
  const response = await fetch(`/v1/accounts/${encodeURIComponent(followed.account)}/${collection}?since_seq=${sinceSeq}&limit=${limit}`,
    { headers: { Authorization: `Bearer ${followed.token}` } });
  // Events before the log's oldest are no longer kept (retention): a window that starts earlier starts there.
  if (response.status === 410) return sync(collection, (await response.json()).oldest_seq - 1, limit);
  if (!response.ok) throw new Error(`sync ${collection}: ${response.status}`);
  return response.json();
}

/** Every item of a seq window, page by page (latest_seq is the cursor to continue from). */
async function syncWindow(collection, sinceSeq, untilSeq) {
  const items = [];
  for (let since = sinceSeq; ;) {
    const page = await sync(collection, since, 1000);
    items.push(...page.items.filter((item) => item.seq <= untilSeq));
    since = page.latest_seq;
    if (!page.has_more || since >= untilSeq) return items;
  }
}

async function loadOlder() {
  const until = followed.oldest;
  const since = Math.max(0, until - OLDER_WINDOW);
  const older = await syncWindow("messages", since, until);
  // Newest first; rows already on the page are newer versions of the same message and stay as they are.
  for (const item of older.sort((a, b) => b.seq - a.seq)) {
    if (!messages.has(item.wamid)) showMessage({ seq: item.seq, data: item }, "append");
  }
  followed.oldest = since;
  $("older").hidden = since === 0;
}

async function follow(token, account) {
  if (source) source.close();
  messages.clear(); conversations.clear();
  $("messages").replaceChildren(); $("conversations").replaceChildren();
  followed = { token, account, oldest: 0 };
  setStatus("connecting", "loading…");
  // A cursor past the end answers the account's latest seq.
  const latest = (await sync("messages", Number.MAX_SAFE_INTEGER, 1)).latest_seq;
  const start = Math.max(0, latest - NEWEST_WINDOW);
  for (const item of await syncWindow("conversations", 0, latest)) showConversation({ data: item });
  for (const item of await syncWindow("messages", start, latest)) showMessage({ seq: item.seq, data: item });
  const history = await fetch(`/v1/accounts/${encodeURIComponent(account)}/history`, { headers: { Authorization: `Bearer ${token}` } });
  if (history.ok) showHistory((await history.json()).history);
  followed.oldest = start;
  $("older").hidden = start === 0;
  $("reply").hidden = false;

  const query = new URLSearchParams({ accounts: account, since: `${account}:${latest}`, access_token: token });
  // EventSource reconnects by itself and sends Last-Event-ID, so the gateway resumes exactly where it stopped,
  // including after a resync signal.
  source = new EventSource(`/v1/stream/sse?${query}`);
  source.addEventListener("ready", () => setStatus("live", "live"));
  source.addEventListener("resync", () => setStatus("reconnecting", "catching up…"));
  source.addEventListener("token_expired", () => {
    source.close();
    setStatus("expired", "token expired: enter a fresh one");
  });
  for (const kind of ["message.created", "message.status", "message.updated"]) {
    source.addEventListener(kind, (e) => showMessage(JSON.parse(e.data)));
  }
  source.addEventListener("conversation.updated", (e) => showConversation(JSON.parse(e.data)));
  source.addEventListener("history.sync", (e) => showHistory(JSON.parse(e.data).data));
  const current = source;
  current.onerror = () => {
    if (current.readyState !== EventSource.CLOSED) {
      setStatus("reconnecting", "reconnecting…");
      return;
    }
    // Refused outright (its cursor expired, or the gateway was unavailable), so EventSource gave up: start over
    // from the sync API in a moment, unless another account was followed meanwhile.
    setStatus("reconnecting", "reloading…");
    setTimeout(() => {
      if (source === current) follow(token, account).catch((error) => setStatus("error", error.message));
    }, 2000);
  };
}

/** Queues a reply in the outbox; the stream then shows it (queued, sending, accepted, sent, delivered, read). */
async function reply(to, text) {
  const key = self.crypto?.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
  const response = await fetch(`/v1/accounts/${encodeURIComponent(followed.account)}/messages`, {
    method: "POST",
    headers: { Authorization: `Bearer ${followed.token}`, "Content-Type": "application/json", "Idempotency-Key": key },
    body: JSON.stringify({ to, type: "text", text: { body: text } }),
  });
  const answer = await response.json().catch(() => ({}));
  if (response.status === 403) throw new Error("this token cannot send (mint one with --scope 'read send')");
  if (!response.ok) throw new Error(answer.message ?? `reply: ${response.status}`);
  return answer;
}

$("reply").addEventListener("submit", (e) => {
  e.preventDefault();
  $("reply-status").textContent = "queuing…";
  reply($("reply-to").value.trim(), $("reply-text").value)
    .then((queued) => { $("reply-text").value = ""; $("reply-status").textContent = `queued as ${queued.message_id}`; })
    .catch((error) => { $("reply-status").textContent = error.message; });
});

$("older").addEventListener("click", () => loadOlder().catch((error) => setStatus("error", error.message)));

$("connect").addEventListener("submit", (e) => {
  e.preventDefault();
  follow($("token").value.trim(), $("account").value.trim()).catch((error) => setStatus("error", error.message));
});

// #token=…&account=… connects at once (the hash never reaches the server or its logs).
const hash = new URLSearchParams(location.hash.slice(1));
if (hash.get("token") && hash.get("account")) {
  $("token").value = hash.get("token");
  $("account").value = hash.get("account");
  follow(hash.get("token"), hash.get("account")).catch((error) => setStatus("error", error.message));
}
