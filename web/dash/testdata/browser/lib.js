// Shared harness of the dashboard's browser scenarios, run by TestBrowser
// (browser_test.go) with Debian's Chromium through playwright-core. Every
// scenario is a file beside this one, started as
//   node SCENARIO.js BASE_URL LOGIN SECRET LIBRARY_DRIVE_NAME OUT_DIR
// with a user of its own (and HEARTH_SCENARIO in its environment: the
// admin's login and its input files), and calls scenario(async (t) => { ... }).
// Each step prints "step: ..." so a failure says where it stopped; pages'
// script errors fail the run; a finished run prints "ok".
'use strict';
const { chromium } = require('playwright-core');

const [base, login, secret, libraryName, outDir] = process.argv.slice(2);
// The admin's login ({login, secret}) and the scenario's input files
// (name → path, or "skip: why"), from TestBrowser.
const { admin, files = {} } = JSON.parse(process.env.HEARTH_SCENARIO || '{}');

function step(s) { console.log('step: ' + s); }

// scenario runs body with a logged-out page at 1280×860 and the helpers
// every scenario needs; it exits non-zero on any failure, with a
// screenshot of the page as it was.
function scenario(body) {
  (async () => {
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const errors = [];
    const watch = (p) => {
      p.on('console', (m) => console.log('browser console: ' + m.text()));
      p.on('pageerror', (e) => errors.push(e.message));
      p.on('dialog', (d) => d.accept()); // confirmations asked by the script
      p.setDefaultTimeout(30000);
      return p;
    };
    let page;
    try {
      const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
      page = watch(await context.newPage());
      const t = {
        base, login, secret, libraryName, outDir, browser, context, page, step, admin, files,
        // shot saves a full-page screenshot as OUT_DIR/NAME.png.
        shot: (name, p = page) => p.screenshot({ path: outDir + '/' + name + '.png', fullPage: true }),
        // logIn signs the scenario's user (or who: t.admin) in through the
        // login form.
        logIn: async (p = page, who = { login, secret }) => {
          await p.goto(base + '/ui/servers');
          await p.waitForURL('**/login?next=*');
          await p.fill('#login', who.login);
          await p.fill('#secret', who.secret);
          await p.click('button[type=submit]');
          await p.waitForURL('**/ui/servers');
        },
        // newPage opens a page in a context of the given viewport that
        // shares the main context's cookies (logged in if it is).
        newPage: async (viewport) => {
          const ctx = await browser.newContext({ viewport, storageState: await context.storageState() });
          return watch(await ctx.newPage());
        },
      };
      await body(t);
      if (errors.length) throw new Error('page script errors: ' + errors.join('; '));
      console.log('ok');
    } catch (e) {
      if (page) await page.screenshot({ path: outDir + '/failure.png', fullPage: true }).catch(() => {});
      throw e;
    } finally {
      await browser.close();
    }
  })().catch((e) => { console.error(e); process.exit(1); });
}

module.exports = { scenario };
