// Shared harness of the dashboard's browser scenarios, run by TestBrowser
// (browser_test.go) with Debian's Chromium through playwright-core. Every
// scenario is a file beside this one, started as
//   node SCENARIO.js BASE_URL LOGIN SECRET LIBRARY_DRIVE_NAME OUT_DIR
// with a user of its own (and HEARTH_SCENARIO in its environment: the
// admin's login and its input files), and calls scenario(async (t) => { ... }).
// Each step prints "step: ..." so a failure says where it stopped; pages'
// script errors and accessibility violations (t.axe) fail the run; a
// finished run prints "ok".
'use strict';
const { chromium } = require('playwright-core');
const axeSource = require('axe-core').source;

const [base, login, secret, libraryName, outDir] = process.argv.slice(2);
// The admin's login ({login, secret}) and the scenario's input files
// (name → path, or "skip: why"), from TestBrowser.
const { admin, files = {} } = JSON.parse(process.env.HEARTH_SCENARIO || '{}');

// axeRules are the rule sets every page must pass: WCAG 2.0, 2.1 and 2.2
// at levels A and AA, and axe's best practices (landmarks, one h1, ...).
const axeRules = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'];

// axeReport is one page's violations as lines a person can act on: the
// rule, its impact and help, then each element with what to fix.
function axeReport(label, violations) {
  const lines = [`${label}: ${violations.length} accessibility violation(s)`];
  for (const v of violations) {
    lines.push(`  ${v.id} (${v.impact}): ${v.help} — ${v.helpUrl}`);
    for (const n of v.nodes) {
      lines.push(`    at ${n.target.join(' ')}: ${n.html.slice(0, 160)}`);
      for (const why of (n.failureSummary || '').split('\n').slice(1)) lines.push(`      ${why.trim()}`);
    }
  }
  return lines.join('\n');
}

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
    const inaccessible = []; // t.axe reports, failing the run at its end
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
        // starts with the cookies of from (the main context: logged in if
        // it is).
        newPage: async (viewport, from = context) => {
          const ctx = await browser.newContext({ viewport, storageState: await from.storageState() });
          return watch(await ctx.newPage());
        },
      };
      // axe runs axe-core on the page as it is now (evaluated through the
      // DevTools protocol, so the pages' CSP stays as strict as served) and
      // notes its violations under label; the run fails at its end with all
      // of them. It returns the number of violations found.
      t.axe = async (p, label) => {
        if (!(await p.evaluate(() => typeof window.axe === 'object'))) await p.evaluate(axeSource);
        const result = await p.evaluate((tags) => window.axe.run(document, {
          runOnly: { type: 'tag', values: tags },
          resultTypes: ['violations'],
        }), axeRules);
        const size = p.viewportSize();
        const where = `${label} at ${size.width}×${size.height} (${p.url()})`;
        if (result.violations.length) {
          inaccessible.push(axeReport(where, result.violations));
          console.log('axe: ' + inaccessible[inaccessible.length - 1]);
        } else {
          console.log(`axe: ${where}: no violations`);
        }
        return result.violations.length;
      };
      await body(t);
      if (errors.length) throw new Error('page script errors: ' + errors.join('; '));
      if (inaccessible.length) throw new Error('axe-core found violations on ' + inaccessible.length + ' page(s):\n' + inaccessible.join('\n'));
    } catch (e) {
      if (page) await page.screenshot({ path: outDir + '/failure.png', fullPage: true }).catch(() => {});
      throw e;
    } finally {
      await browser.close();
    }
    // After the browser is closed: a page's late console message would
    // otherwise follow the "ok" the test looks for last.
    console.log('ok');
  })().catch((e) => { console.error(e); process.exit(1); });
}

module.exports = { scenario };
