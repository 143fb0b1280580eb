// The inbox page after an operator dropped an account's old events (docs/OPERATIONS.md "Retention"), in headless
// Chromium:   node inbox-retention.mjs URL NEWEST_TEXT
// The page's newest window starts before the oldest kept event, so its first sync page is answered 410
// cursor_expired; the page must start the window where the log starts instead. Prints READY once the page is live and
// shows NEWEST_TEXT, then OLDER once "Load older messages" has been clicked until it hides, with no error shown.
import { launchChromium } from "./chromium.mjs";

const [url, newestText] = process.argv.slice(2);
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  page.on("console", (message) => process.stderr.write(`page: ${message.text()}\n`));
  await page.goto(url);
  const state = await page.waitForFunction(() => {
    const status = document.getElementById("status");
    return ["live", "error"].includes(status.dataset.state) ? `${status.dataset.state}: ${status.textContent}` : null;
  }, null, { timeout: 30000 });
  const reached = await state.jsonValue();
  if (!reached.startsWith("live")) throw new Error(`the page did not go live (${reached})`);
  const shows = (t) => page.evaluate((x) => document.getElementById("messages").textContent.includes(x), t);
  if (!(await shows(newestText))) throw new Error(`"${newestText}" is not shown`);
  console.log("READY");
  for (let clicks = 0; !(await page.isHidden("#older")); clicks++) {
    if (clicks === 20) throw new Error("\"Load older messages\" never hid");
    await page.click("#older");
    await page.waitForTimeout(200);
    const status = await page.evaluate(() => document.getElementById("status").dataset.state);
    if (status !== "live") throw new Error(`loading older messages left the page ${status}`);
  }
  console.log("OLDER");
} finally {
  await browser.close();
}
