// Drives the gateway's live inbox page in headless Chromium (Debian's, through playwright-core):
//   node inbox-browser.mjs URL TEXT WAMID OLDER_TEXT HISTORY_WAMID ECHO_WAMID REPLY_TEXT
// Prints READY once the page is live; then, as OLDER_TEXT (a message far older than the newest window) is not shown
// yet, clicks "Load older messages" until it is and prints OLDER; then FOUND once TEXT shows up, and READ once
// WAMID's row shows "read"; then HISTORY once the import line shows 55 % and HISTORY_WAMID's row is marked as
// history, and ECHO once ECHO_WAMID's row is marked as an echo, addressed "to" its contact. Then it replies: clicks the
// conversation, types REPLY_TEXT, sends, and prints "REPLIED <message_id>" once the reply's row shows "accepted", and
// DELIVERED once it shows "delivered" (the test posts Meta's status webhook in between).
import { launchChromium } from "./chromium.mjs";

const [url, text, wamid, olderText, historyWamid, echoWamid, replyText] = process.argv.slice(2);
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  page.on("console", (message) => process.stderr.write(`page: ${message.text()}\n`));
  await page.goto(url);
  await page.waitForSelector('#status[data-state="live"]', { timeout: 30000 });
  console.log("READY");
  const shows = (t) => page.evaluate((x) => document.getElementById("messages").textContent.includes(x), t);
  if (await shows(olderText)) throw new Error("the oldest history was loaded at once");
  for (let clicks = 0; !(await shows(olderText)); clicks++) {
    if (clicks === 20 || await page.isHidden("#older")) throw new Error(`"${olderText}" never loaded`);
    // A click's window can arrive after the wait below on a busy machine and hide the button (no more history) while
    // the next click waits for it: that click gives up, and the loop looks again.
    await page.click("#older", { timeout: 2000 }).catch(() => {});
    await page.waitForTimeout(200);
  }
  console.log("OLDER");
  await page.waitForFunction((t) => document.getElementById("messages").textContent.includes(t), text, { timeout: 30000 });
  console.log("FOUND");
  await page.waitForFunction((w) => document.querySelector(`tr[data-wamid="${w}"] td:last-child`)?.textContent === "read", wamid, { timeout: 30000 });
  console.log("READ");
  await page.waitForFunction((w) => document.getElementById("history").textContent === "importing history: 55 %"
    && document.querySelector(`tr[data-wamid="${w}"]`)?.dataset.origin === "history", historyWamid, { timeout: 30000 });
  console.log("HISTORY");
  await page.waitForFunction((w) => {
    const row = document.querySelector(`tr[data-wamid="${w}"]`);
    return row?.dataset.origin === "echo" && row.cells[2].textContent.startsWith("to ");
  }, echoWamid, { timeout: 30000 });
  console.log("ECHO");
  await page.click("#conversations li");
  await page.fill("#reply-text", replyText);
  await page.click('#reply button[type="submit"]');
  await page.waitForFunction(() => document.getElementById("reply-status").textContent.startsWith("queued as "), null, { timeout: 30000 });
  const key = (await page.textContent("#reply-status")).slice("queued as ".length);
  const replyStatus = (k, status) => page.waitForFunction(([k, status]) => {
    const row = document.querySelector(`tr[data-wamid="${k}"]`);
    return row?.dataset.origin === "outbox" && row.cells[4].textContent === document.getElementById("reply-text").dataset.sent
      && row.cells[5].textContent === status;
  }, [k, status], { timeout: 30000 });
  await page.evaluate((t) => { document.getElementById("reply-text").dataset.sent = t; }, replyText);
  await replyStatus(key, "accepted");
  console.log(`REPLIED ${key}`);
  await replyStatus(key, "delivered");
  console.log("DELIVERED");
} finally {
  await browser.close();
}
