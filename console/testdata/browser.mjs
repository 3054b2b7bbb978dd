// Drives the console page in Debian's Chromium for browser_test.go.
// Usage: node browser.mjs URL SCREENSHOT_DIR [PASSWORD]
// Prints one JSON line with what it saw; exits non-zero on failure.
import { chromium } from 'playwright-core';

const [url, shots, password] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const result = {};
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
  page.on('console', (m) => console.error('page:', m.text()));
  await page.goto(url);
  if (password) {
    await page.waitForSelector('#login:not([hidden])', { timeout: 10000 });
    await page.screenshot({ path: `${shots}/1-password.png` });
    await page.fill('#password', password);
    await page.click('#login button[type=submit]');
  }
  await page.waitForSelector('#status[data-state=connected]', { timeout: 10000 });
  const canvas = page.locator('#screen canvas');
  await canvas.waitFor();
  // Lit pixels on the canvas: the console's picture, not a blank page.
  const lit = () => page.evaluate(() => {
    const c = document.querySelector('#screen canvas');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 96) n++;
    return { n, width: c.width, height: c.height };
  });
  await page.waitForTimeout(300);
  result.before = await lit();
  await page.screenshot({ path: `${shots}/2-connected.png` });
  await canvas.click();
  await page.keyboard.type('echo $((6*7)) typed-in-browser');
  await page.keyboard.press('Enter');
  await page.waitForFunction((n) => {
    const c = document.querySelector('#screen canvas');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let lit = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 96) lit++;
    return lit > n + 500;
  }, result.before.n, { timeout: 10000 });
  result.after = await lit();
  await page.screenshot({ path: `${shots}/3-typed.png` });
  await page.click('#pastebutton');
  await page.fill('#pastetext', 'pasted-line ünï €✓');
  await page.click('#paste button[type=submit]');
  await page.click('#cad');
  await page.selectOption('#keys', 'f5');
  result.title = await page.textContent('#title');
  await page.waitForTimeout(300);
  await page.screenshot({ path: `${shots}/4-pasted.png` });
  result.status = await page.textContent('#status');
  // The server stops and starts again: the page reconnects by itself.
  await page.evaluate(() => fetch('/test/restart', { method: 'POST' }));
  await page.waitForSelector('#status[data-state=retrying]', { timeout: 10000 });
  result.retrying = await page.textContent('#status');
  await page.waitForSelector('#status[data-state=connected]', { timeout: 15000 });
  await page.screenshot({ path: `${shots}/5-reconnected.png` });
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
