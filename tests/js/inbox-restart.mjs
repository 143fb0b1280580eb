// The inbox page when its stream cannot resume, in headless Chromium:   node inbox-restart.mjs URL FIRST_TEXT AFTER_TEXT
// The page follows an account and shows FIRST_TEXT (prints READY); the test then stops the gateway, stores more messages
// and drops the events right after the page's cursor, and starts the gateway again on the same address. EventSource's
// reconnection is answered 410 cursor_expired and gives up, so the page must start over from the sync API and show
// AFTER_TEXT. Prints SHOWN and then the statuses the page went through, one line, separated by " | ".
import { launchChromium } from "./chromium.mjs";

const [url, firstText, afterText] = process.argv.slice(2);
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  page.on("console", (message) => process.stderr.write(`page: ${message.text()}\n`));
  await page.goto(url);
  await page.evaluate(() => {
    const status = document.getElementById("status");
    window.statuses = [status.textContent];
    new MutationObserver(() => window.statuses.push(status.textContent)).observe(status, { childList: true, characterData: true, subtree: true });
  });
  const shows = (text) => document.getElementById("messages").textContent.includes(text)
    && document.getElementById("status").dataset.state === "live";
  await page.waitForFunction(shows, firstText, { timeout: 30000 });
  console.log("READY");
  await page.waitForFunction(shows, afterText, { timeout: 90000 });
  console.log("SHOWN");
  console.log((await page.evaluate(() => window.statuses)).join(" | "));
} finally {
  await browser.close();
}
