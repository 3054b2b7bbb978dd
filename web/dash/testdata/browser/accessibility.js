// The accessibility scenario: every page of the dashboard as a user sees
// it — logged out, as an ordinary user and as an admin; empty and filled;
// forms fresh and after a failed submit; the console connected — at desktop
// (1280×860) and phone (390×844) widths, each checked with axe-core
// (t.axe: WCAG 2.x A/AA and axe's best practices). Any violation fails the
// run, listed with the page, the rule and the elements. Run by TestBrowser;
// see lib.js.
'use strict';
const { scenario } = require('./lib.js');

const desktop = { width: 1280, height: 860 };
const phone = { width: 390, height: 844 };

scenario(async (t) => {
  const { base, admin, libraryName, outDir, page, step, logIn, newPage, axe } = t;
  let shots = 0;
  // check runs axe on p and keeps a screenshot of what it checked.
  const check = async (p, label) => {
    const w = p.viewportSize().width;
    await axe(p, label);
    await p.screenshot({ path: `${outDir}/${String(++shots).padStart(2, '0')}-${label.replace(/[^a-z0-9]+/gi, '-')}-${w}.png`, fullPage: true });
  };
  // both runs visit(p) then check on the desktop page and the phone page
  // of a pair.
  const both = async ([big, small], label, visit) => {
    for (const p of [big, small]) {
      await visit(p);
      await check(p, label);
    }
  };
  // visitAt is both for a page reached by its address; ready is a selector
  // that says it has finished drawing.
  const visitAt = (pair, label, path, ready) => both(pair, label, async (p) => {
    await p.goto(base + path);
    if (ready) await p.waitForSelector(ready);
  });

  step('logged out: login, login with an error, not found');
  const out = [page, await newPage(phone)];
  await visitAt(out, 'login', '/ui/servers', '#login');
  await both(out, 'login error', async (p) => {
    await p.goto(base + '/login');
    await p.fill('#login', t.login);
    await p.fill('#secret', 'not-the-secret');
    await p.click('button[type=submit]');
    await p.waitForSelector('#login-error');
  });
  await visitAt(out, 'not found', '/no/such/page', 'h1');
  await visitAt(out, 'console logged out', '/static/console/?server=00000000-0000-0000-0000-000000000000', '#note:not([hidden])');
  await out[1].context().close();

  step('a user with nothing yet');
  await logIn();
  const user = [page, await newPage(phone)];
  await visitAt(user, 'servers empty', '/ui/servers', '.empty');
  await visitAt(user, 'drives empty', '/ui/drives', 'h1');
  await visitAt(user, 'network empty', '/ui/resources', 'h1');
  await visitAt(user, 'account', '/ui/account', 'h1');
  await visitAt(user, 'users refused', '/ui/users', 'h1');
  await visitAt(user, 'server not found', '/ui/servers/00000000-0000-0000-0000-000000000000', 'h1');
  await visitAt(user, 'create form', '/ui/servers/new', '#name');
  await both(user, 'create form with errors', async (p) => {
    await p.goto(base + '/ui/servers/new');
    await p.fill('#name', '');
    await p.fill('#drivesize', 'lots');
    await p.fill('#password', 'ninechars');
    await p.click('form button[type=submit]:has-text("Create server")');
    await p.waitForSelector('#drivesize-error');
  });

  step('create an active server with a console and a stopped one');
  await page.goto(base + '/ui/servers/new');
  await page.fill('#name', 'web');
  await page.check('#size-small');
  const source = await page.$eval('#source', (sel, name) =>
    [...sel.options].find((o) => o.textContent.startsWith(name)).value, libraryName);
  await page.selectOption('#source', source);
  await page.fill('#drivesize', '64M');
  await page.selectOption('#nic0', 'none'); // the test appliance has no network
  const webPassword = await page.inputValue('#password'); // the generated one
  await page.click('form button[type=submit]:has-text("Create server")');
  await page.waitForURL(/\/ui\/servers\/[0-9a-f-]{36}$/);
  const web = page.url();
  await page.waitForSelector('.page-head .badge-active', { timeout: 60000 });
  await page.goto(base + '/ui/servers/new');
  await page.fill('#name', 'db');
  await page.selectOption('#source', 'blank');
  await page.fill('#drivesize', '16M');
  await page.uncheck('input[name=start]');
  await page.click('form button[type=submit]:has-text("Create server")');
  await page.waitForURL(/\/ui\/servers\/[0-9a-f-]{36}$/);
  const db = page.url();
  await page.goto(base + '/ui/resources');
  await page.fill('#vlan-name', 'backend');
  await page.click('button:has-text("Create VLAN")');
  await page.waitForSelector('.flash-ok');
  await page.fill('#ip-name', 'front');
  await page.click('button:has-text("Reserve IP")');
  await page.waitForSelector('.flash-ok');

  step('pages with servers, drives and network');
  await visitAt(user, 'servers', '/ui/servers', 'tr:has-text("db") .badge-stopped');
  await visitAt(user, 'server active', web.slice(base.length), '.page-head .badge-active');
  await visitAt(user, 'server stopped', db.slice(base.length), '.page-head .badge-stopped');
  await both(user, 'server config error', async (p) => {
    await p.goto(db);
    await p.fill('#mem', 'lots');
    await p.click('button:has-text("Save configuration")');
    await p.waitForSelector('#mem-error');
  });
  await visitAt(user, 'destroy confirmation', db.slice(base.length) + '/destroy?back=/ui/servers', 'h1');
  await visitAt(user, 'drives', '/ui/drives', 'td.name');
  await both(user, 'drive form error', async (p) => {
    await p.goto(base + '/ui/drives');
    await p.fill('#name', 'scratch');
    await p.fill('#size', 'lots');
    await p.click('button:has-text("Create drive")');
    await p.waitForSelector('#size-error');
  });
  await visitAt(user, 'network', '/ui/resources', 'td.name');

  step('the console, connected');
  await both(user, 'console', async (p) => {
    await p.goto(web);
    await p.click('a:has-text("Console")');
    await p.waitForURL('**/static/console/?server=*');
    await p.waitForSelector('#status[data-state=connected]');
  });

  // Where the dashboard cannot vouch for the viewer (here: its answer is
  // cut off, as for a console page without a dashboard session), the
  // console asks for the VNC password: one longer than VNC allows is kept
  // as typed and refused in words (never cut), the right one connects.
  const anon = [await newPage(desktop), await newPage(phone)];
  for (const p of anon) await p.route('**/console.json', (route) => route.abort());
  await both(anon, 'console password', async (p) => {
    await p.goto(base + '/static/console/?server=' + web.split('/').pop());
    await p.waitForSelector('#login:not([hidden])');
    await p.fill('#password', webPassword + 'x');
    await p.click('#login button[type=submit]');
    await p.waitForSelector('#loginerror:has-text("at most 8 characters; this one has 9")');
    if (await p.inputValue('#password') !== webPassword + 'x') throw new Error('the console cut a long password');
    if (await p.getAttribute('#password', 'aria-invalid') !== 'true') throw new Error('the long console password is not marked invalid');
  });
  for (const p of anon) {
    await p.fill('#password', webPassword);
    await p.click('#login button[type=submit]');
    await p.waitForSelector('#status[data-state=connected]');
  }

  await both(user, 'console without a password', async (p) => {
    await p.goto(db);
    await p.fill('#password', '');
    await p.click('button:has-text("Save configuration")');
    await p.waitForSelector('.flash-ok');
    await p.goto(base + '/static/console/?server=' + db.split('/').pop());
    await p.waitForSelector('#note:not([hidden])');
  });

  step('an admin');
  const adminDesk = await newPage(desktop);
  await adminDesk.context().clearCookies();
  await logIn(adminDesk, admin);
  const admins = [adminDesk, await newPage(phone, adminDesk.context())];
  await visitAt(admins, 'admin servers', '/ui/servers', 'td.name');
  await visitAt(admins, 'admin drives', '/ui/drives', 'td.name');
  await visitAt(admins, 'admin network', '/ui/resources', 'td.name');
  await visitAt(admins, 'users', '/ui/users', 'h1');
  await both(admins, 'user created', async (p) => {
    await p.goto(base + '/ui/users');
    await p.fill('#name', 'a11y-' + p.viewportSize().width);
    await p.click('button:has-text("Create user")');
    await p.waitForSelector('[data-secret]');
  });
  const limits = await adminDesk.$eval(`tr:has-text("${t.login}") a.btn`, (a) => a.getAttribute('href'));
  await visitAt(admins, 'user limits', limits, 'h1');
  await both(admins, 'user limits error', async (p) => {
    await p.goto(base + limits);
    await p.fill('[id="limit:mem"]', 'lots');
    await p.click('button:has-text("Save limits")');
    await p.waitForSelector('.field-error');
  });
  for (const p of admins) await p.context().close();

  step('destroy the servers');
  for (const url of [web, db]) {
    await page.goto(url + '/destroy?back=/ui/servers');
    await page.click('button:has-text("Destroy server")');
    await page.waitForURL(base + '/ui/servers');
  }
  await check(page, 'servers after destroy');
  await user[1].context().close();
});
