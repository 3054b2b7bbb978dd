// The forms scenario: bad input into every form of the dashboard, as a
// person would type it. Each refused form must open with an error summary
// that has focus, mark the field at fault (aria-invalid, described by its
// message), keep what was typed, and say what is wrong in plain words — no
// UUIDs, no "key ...:" leads, no Go error tails. The user is an admin, so
// the users and limits forms are there too. Run by TestBrowser; see lib.js.
'use strict';
const { scenario } = require('./lib.js');

const apiWords = [/\bkey [a-z:0-9]+:/, /invalid argument/, /: busy\b/, /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-/, /\b\d{9,} bytes\b/];

// refused checks the form refused on page p: summary #summary has focus and
// says want; field #field is marked and keeps typed.
async function refused(p, what, summary, field, typed, want) {
  await p.waitForSelector('#' + summary + '[data-error-summary]');
  const focused = await p.evaluate(() => document.activeElement && document.activeElement.id);
  if (focused !== summary) throw new Error(what + ': focus is on ' + JSON.stringify(focused) + ', not the error summary #' + summary);
  if (await p.getAttribute('#' + summary, 'role') !== 'alert') throw new Error(what + ': the summary is not role=alert');
  const text = (await p.textContent('#' + summary)).replace(/\s+/g, ' ').trim();
  if (!text.includes(want)) throw new Error(what + ': the summary says ' + JSON.stringify(text) + ', want ' + JSON.stringify(want));
  for (const w of apiWords) {
    if (w.test(text)) throw new Error(what + ': the summary reads like API output (' + w + '): ' + JSON.stringify(text));
  }
  const el = '[id="' + field + '"]';
  if (await p.getAttribute(el, 'aria-invalid') !== 'true') throw new Error(what + ': #' + field + ' is not marked aria-invalid="true"');
  const describedBy = (await p.getAttribute(el, 'aria-describedby')) || '';
  const described = await p.evaluate((ids) => ids.split(/\s+/).filter(Boolean).map((id) => {
    const n = document.getElementById(id);
    return n ? n.textContent : '';
  }).join(' '), describedBy);
  if (!described.trim()) throw new Error(what + ': #' + field + ' is not described by its message (aria-describedby=' + JSON.stringify(describedBy) + ')');
  if (typed !== null && await p.inputValue(el) !== typed) throw new Error(what + ': #' + field + ' lost what was typed');
  if (await p.$('#' + summary + ' a[href="#' + field + '"]') === null && !summary.startsWith('problem-')) {
    throw new Error(what + ': the summary has no link to #' + field);
  }
}

scenario(async ({ base, login, libraryName, outDir, page, step, logIn, newPage, shot }) => {
  step('login: wrong secret');
  await page.goto(base + '/login');
  await page.fill('#login', login);
  await page.fill('#secret', 'not-the-secret');
  await page.click('button[type=submit]');
  await refused(page, 'login', 'login-error', 'login', login, 'Wrong user name or secret.');
  await shot('01-login');
  await logIn();

  step('create server: a CPU below the minimum');
  await page.goto(base + '/ui/servers/new');
  await page.fill('#name', 'web1');
  await page.check('#size-custom');
  await page.fill('#cpu', '99');
  await page.fill('#mem', '256');
  await page.selectOption('#nic0', 'none');
  await page.click('form button[type=submit]:has-text("Create server")');
  await refused(page, 'create server', 'create-problems', 'cpu', '99', 'Custom CPU (MHz): 99 is out of range 100–100000 MHz');
  await shot('02-create-server');
  const phone = await newPage({ width: 390, height: 844 });
  await phone.goto(base + '/ui/servers/new');
  await phone.fill('#name', 'web1');
  await phone.fill('#drivesize', '99T');
  await phone.click('form button[type=submit]:has-text("Create server")');
  await refused(phone, 'create server at phone width', 'create-problems', 'drivesize', '99T', 'Drive size: 99 TiB is too large: the largest drive is 16 TiB');
  await shot('02-create-server-390', phone);
  await phone.close();

  step('create it for real, running, from the library image');
  await page.check('#size-small');
  const source = await page.$eval('#source', (sel, name) =>
    [...sel.options].find((o) => o.textContent.startsWith(name)).value, libraryName);
  await page.selectOption('#source', source);
  await page.fill('#drivesize', '64M');
  await page.click('form button[type=submit]:has-text("Create server")');
  await page.waitForURL(/\/ui\/servers\/[0-9a-f-]{36}$/);
  await page.waitForSelector('.page-head .badge-active', { timeout: 60000 });

  step('server settings: a CPU below the minimum');
  await page.fill('#cpu', '50');
  await page.click('button:has-text("Save configuration")');
  await refused(page, 'server settings', 'server-problems', 'cpu', '50', 'CPU (MHz): 50 is out of range 100–100000 MHz');
  await shot('03-server-settings');

  step('drives: a drive too large, an upload without a file, a resize of a drive in use');
  await page.goto(base + '/ui/drives');
  await page.fill('#name', 'big');
  await page.fill('#size', '99T');
  await page.click('button:has-text("Create drive")');
  await refused(page, 'create drive', 'drive-problems', 'size', '99T', 'Size: 99 TiB is too large: the largest drive is 16 TiB');
  await shot('04-create-drive');
  await page.click('button:has-text("Upload")');
  const uploadProblem = await page.waitForSelector('form[data-upload] [data-error-summary]');
  await refused(page, 'upload', await uploadProblem.getAttribute('id'), 'upload-file', null, 'Image file: choose an image file first.');
  const resize = page.locator(`tr:has-text("web1 boot"):has-text("${login}") form.inline-resize`);
  await resize.locator('input[name=size]').fill('128M');
  await resize.locator('button').click();
  const resizeProblem = await page.waitForSelector(`tr:has-text("web1 boot"):has-text("${login}") form.inline-resize [data-error-summary]`);
  const resizeInput = await resize.locator('input[name=size]').getAttribute('id');
  await refused(page, 'resize', await resizeProblem.getAttribute('id'), resizeInput, '128M', 'web1 boot is attached to running server web1 — stop web1 first');
  await shot('05-drives');

  step('network: names too long for a VLAN and an IP');
  await page.goto(base + '/ui/resources');
  const long = 'v'.repeat(257);
  await page.fill('#vlan-name', long);
  await page.click('button:has-text("Create VLAN")');
  await refused(page, 'create VLAN', 'vlan-problems', 'vlan-name', long, 'Name of the new VLAN: Longer than 256 bytes');
  await page.fill('#ip-name', long);
  await page.click('button:has-text("Reserve IP")');
  await refused(page, 'reserve IP', 'ip-problems', 'ip-name', long, 'Name of the new IP: Longer than 256 bytes');
  await shot('06-network');

  step('users: a name with a space');
  await page.goto(base + '/ui/users');
  await page.fill('#name', 'has space');
  await page.click('button:has-text("Create user")');
  await refused(page, 'add user', 'user-problems', 'name', 'has space', 'User name: "has space": a user name has no spaces, colons or control characters');
  await shot('07-users');

  step('account: a limit that is not a size');
  await page.goto(base + '/ui/account');
  await page.fill('[id="limit:mem"]', 'plenty');
  await page.click('button:has-text("Save limits")');
  await refused(page, 'limits', 'limits-problems', 'limit:mem', 'plenty', 'Limit of Memory (all servers): "plenty" is not a number of MB or a size (or none)');
  await shot('08-account');
  const narrow = await newPage({ width: 390, height: 844 });
  await narrow.goto(base + '/ui/account');
  await narrow.fill('[id="limit:mem"]', 'plenty');
  await narrow.click('button:has-text("Save limits")');
  await refused(narrow, 'limits at phone width', 'limits-problems', 'limit:mem', 'plenty', 'Limit of Memory (all servers)');
  await shot('08-account-390', narrow);
  await narrow.close();
});
