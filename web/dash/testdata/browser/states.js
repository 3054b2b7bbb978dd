// The states scenario: a server's states as they happen. web1 (made before
// the run, its guest deaf to its power-off signal) is started, shut down
// and watched "shutting down (N s left)" until the kill at the end of the
// grace period makes it stopped, the flash staying (and counting) until
// then; Stop asks first; empty1's start fails (its boot drive has no
// filesystem) and says why in the list and on its page; the activity log
// has the requests, the kill and the failure. Run by TestBrowser; see lib.js.
'use strict';
const { scenario } = require('./lib.js');

scenario(async ({ base, login, page, step, shot, logIn, newPage }) => {
  step('log in; both servers are stopped');
  await logIn();
  await page.waitForSelector('tr:has-text("web1") .badge-stopped');
  await page.waitForSelector('tr:has-text("empty1") .badge-stopped');

  step('start web1 from its page');
  await page.click('td.name a:has-text("web1")');
  await page.waitForURL(/\/ui\/servers\/[0-9a-f-]{36}$/);
  const serverURL = page.url();
  await page.click('.page-head button:has-text("Start")');
  await page.waitForSelector('.page-head .badge-active', { timeout: 60000 });
  await page.waitForSelector('.flashes .flash-ok:has-text("Server web1 started.")'); // the start's flash waited for it

  step('shut it down: shutting down (N s left), the flash waiting with it');
  const y = await page.evaluate(() => document.querySelector('.grid-2').getBoundingClientRect().top);
  await page.click('.page-head button:has-text("Shut down")');
  const badge = page.locator('.page-head .badge-shutting-down');
  await badge.waitFor();
  const label = await badge.textContent();
  if (!/^shutting down \(\d+ s left\)$/.test(label)) throw new Error('badge while shutting down: ' + label);
  const waiting = page.locator('.flashes .flash-info[data-await-server]');
  await waiting.waitFor();
  if (!/^Shutting down server web1…/.test(await waiting.locator('.flash-text').textContent())) throw new Error('flash: ' + await waiting.textContent());
  if (await page.evaluate(() => document.querySelector('.grid-2').getBoundingClientRect().top) !== y) throw new Error('the flash pushed the page down');
  if (await page.locator('.page-head button:has-text("Shut down"), .page-head button:has-text("Pause")').count()) throw new Error('Shut down or Pause offered while shutting down');
  await page.waitForSelector('.flashes .flash-info:has-text("s left)")');
  await shot('01-shutting-down');
  const phone = await newPage({ width: 390, height: 844 });
  await phone.goto(base + '/ui/servers');
  await phone.waitForSelector('tr:has-text("web1") .badge-shutting-down');
  await shot('02-shutting-down-phone', phone);
  await phone.context().close();

  step('it stops at the end of the grace period; the flash says so');
  await page.waitForSelector('.page-head .badge-stopped', { timeout: 60000 });
  await page.waitForSelector('.flashes .flash-ok:has-text("Server web1 shut down.")');
  if (await page.locator('.flashes .flash').count() !== 1) throw new Error('the flash should have changed in place');
  const activity = page.locator('ol.activity');
  await activity.locator('text=shutdown requested — by ' + login).waitFor();
  await activity.locator('text=/killed: the guest did not power off within the \\d+ s grace period/').waitFor();
  await shot('03-shut-down');
  await page.click('.flashes .flash-close');
  if (await page.locator('.flashes .flash').count() !== 0) throw new Error('the flash did not close');

  step('Stop asks first');
  await page.click('.page-head button:has-text("Start")');
  await page.waitForSelector('.page-head .badge-active', { timeout: 60000 });
  await page.waitForSelector('.flashes .flash-ok:has-text("Server web1 started.")'); // the start's flash waited for it
  await page.click('.page-head a:has-text("Stop")');
  await page.waitForURL('**/stop?back=*');
  await page.waitForSelector('h1:has-text("Stop server web1 now?")');
  await shot('04-stop-confirm');
  await page.click('a:has-text("Cancel")');
  await page.waitForURL(serverURL);
  await page.waitForSelector('.page-head .badge-active');
  await page.click('.page-head a:has-text("Stop")');
  await page.click('button:has-text("Stop server")');
  await page.waitForURL(serverURL);
  await page.waitForSelector('.page-head .badge-stopped');
  await page.waitForSelector('.flashes .flash-ok:has-text("Server web1 stopped.")');

  step('a start that fails says why, in the list and on the page');
  await page.goto(base + '/ui/servers');
  await page.click('tr:has-text("empty1") button:has-text("Start")');
  await page.waitForSelector('.flashes .flash-error');
  const row = page.locator('tr:has-text("empty1")');
  await row.locator('.badge-start-failed:has-text("start failed")').waitFor();
  const why = (await row.locator('td[data-label=Status] .state-detail').textContent()).trim();
  if (!why || /\/(var|tmp|srv)\//.test(why)) throw new Error('start failure reason: ' + JSON.stringify(why));
  console.log('start failed: ' + why);
  await shot('05-start-failed-list');
  await row.locator('td.name a').click();
  await page.waitForSelector('.flash-error:has-text("Start failed:")');
  await page.locator('ol.activity').locator('text=start requested — by ' + login).waitFor();
  await page.locator('ol.activity').locator('text=stopped → dead:').waitFor();
  await shot('06-start-failed-page');
  const phone2 = await newPage({ width: 390, height: 844 });
  await phone2.goto(page.url());
  await phone2.waitForSelector('.page-head .badge-start-failed');
  await shot('07-start-failed-phone', phone2);
  await phone2.context().close();
});
