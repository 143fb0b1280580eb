// Drives the gateway's live inbox page in headless Chromium (Debian's, through playwright-core):
//   node inbox-browser.mjs URL TEXT WAMID
// Prints READY once the page is live, FOUND once TEXT shows up, then waits until WAMID's row shows "read".
import { chromium } from "playwright-core";

const [url, text, wamid] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  const page = await browser.newPage();
  page.on("console", (message) => process.stderr.write(`page: ${message.text()}\n`));
  await page.goto(url);
  await page.waitForSelector('#status[data-state="live"]', { timeout: 30000 });
  console.log("READY");
  await page.waitForFunction((t) => document.getElementById("messages").textContent.includes(t), text, { timeout: 30000 });
  console.log("FOUND");
  await page.waitForFunction((w) => document.querySelector(`tr[data-wamid="${w}"] td:last-child`)?.textContent === "read", wamid, { timeout: 30000 });
  console.log("READ");
} finally {
  await browser.close();
}
