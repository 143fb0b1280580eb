// The live inbox: follows one account over Server-Sent Events and shows its conversations and messages as they are
// stored, with their statuses. Everything from the server is inserted as text (textContent), never as HTML.
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

function showMessage(event) {
  const item = event.data;
  if (!item) return;
  let row = messages.get(item.wamid);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.wamid = item.wamid;
    $("messages").prepend(row);
    messages.set(item.wamid, row);
  }
  row.replaceChildren();
  cell(row, String(event.seq));
  cell(row, item.direction === "inbound" ? item.from : "to " + (item.to ?? ""));
  cell(row, item.type);
  cell(row, item.text);
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
  li.textContent = `${item.profile_name ?? item.wa_id} (${item.message_count}): ${item.last_message?.preview ?? ""}`;
}

function follow(token, account) {
  if (source) source.close();
  messages.clear(); conversations.clear();
  $("messages").replaceChildren(); $("conversations").replaceChildren();
  const query = new URLSearchParams({ accounts: account, since: `${account}:0`, access_token: token });
  // EventSource reconnects by itself and sends Last-Event-ID, so the gateway resumes exactly where it stopped,
  // including after a resync signal.
  source = new EventSource(`/v1/stream/sse?${query}`);
  setStatus("connecting", "connecting…");
  source.addEventListener("ready", () => setStatus("live", "live"));
  source.addEventListener("resync", () => setStatus("reconnecting", "catching up…"));
  for (const kind of ["message.created", "message.status"]) {
    source.addEventListener(kind, (e) => showMessage(JSON.parse(e.data)));
  }
  source.addEventListener("conversation.updated", (e) => showConversation(JSON.parse(e.data)));
  source.onerror = () => setStatus("reconnecting", "reconnecting…");
}

$("connect").addEventListener("submit", (e) => {
  e.preventDefault();
  follow($("token").value.trim(), $("account").value.trim());
});

// #token=…&account=… connects at once (the hash never reaches the server or its logs).
const hash = new URLSearchParams(location.hash.slice(1));
if (hash.get("token") && hash.get("account")) {
  $("token").value = hash.get("token");
  $("account").value = hash.get("account");
  follow(hash.get("token"), hash.get("account"));
}
