// The graphs scenario: a running server with two hours of history (seeded
// by TestBrowser: 1 KiB/s in, a 3 MiB/s burst 20 minutes ago). The server
// page's tiles show units, the latest value, the peak and a time axis;
// pointing at the graph reads a value out, and so do the arrow keys once
// the graph has focus, across live refreshes; the 24-hour range shows the
// 5-minute averages. At phone width the tiles stack. See lib.js.
'use strict';
const { scenario } = require('./lib.js');

scenario(async ({ base, outDir, page, step, logIn, newPage, shot }) => {
  await logIn();

  step('open the running server');
  await page.click('a:has-text("graphs1")');
  await page.waitForURL(/\/ui\/servers\/[0-9a-f-]{36}$/);
  const serverURL = page.url();
  await page.waitForSelector('.page-head .badge-active');

  step('units, latest value, peak and axis');
  const tile = (label) => page.locator('.stat.chart', { has: page.locator('.label', { hasText: label }) });
  const netIn = tile('Network in');
  const text = async (loc) => (await loc.textContent()).trim();
  const expect = (what, got, re) => { if (!re.test(got)) throw new Error(what + ': ' + JSON.stringify(got) + ' does not match ' + re); };
  expect('network in unit', await text(netIn.locator('.unit')), /^bytes\/s$/);
  // The seeded 1 KiB/s, or the sampler's reading of the idle guest by now.
  expect('network in now', await text(netIn.locator('.value')), /^\d+(\.\d)? (K|M)?i?B\/s$/);
  expect('network in peak', await text(netIn.locator('.chart-peak')), /^peak 3 MiB\/s at \d\d:\d\d$/);
  expect('axis end', await text(netIn.locator('.chart-axis span').last()), /^\d\d:\d\d UTC$/);
  expect('cpu unit', await text(tile('CPU').locator('.unit')), /^% of one core$/);
  expect('cpu now', await text(tile('CPU').locator('.value')), /^\d+%$/);
  expect('memory now', await text(tile('Memory used').locator('.value')), /MiB$/);
  await shot('01-server-graphs');

  step('point at the burst: the readout says when and how much');
  const plot = netIn.locator('[data-chart]');
  const values = (await plot.getAttribute('data-values')).split('|');
  const burst = values.indexOf('3 MiB/s');
  if (burst < 0) throw new Error('no 3 MiB/s slot in the last hour: ' + values.slice(-5));
  const box = await plot.boundingBox();
  await page.mouse.move(box.x + burst / (values.length - 1) * box.width, box.y + box.height / 2);
  expect('readout at the burst', await text(netIn.locator('.chart-readout')), /^\d\d:\d\d:\d\d UTC: 3 MiB\/s$/);
  await page.screenshot({ path: outDir + '/02-hover.png', clip: { x: box.x - 20, y: box.y - 90, width: box.width + 40, height: box.height + 140 } });
  await page.mouse.move(0, 0);
  if (await text(netIn.locator('.chart-readout')) !== '') throw new Error('the readout stayed after the pointer left');

  step('the keyboard reads values too, across live refreshes');
  await plot.focus();
  expect('readout on focus', await text(netIn.locator('.chart-readout')), /^\d\d:\d\d:\d\d UTC: .*B\/s$/);
  const last = await plot.getAttribute('aria-valuetext');
  await page.keyboard.press('ArrowLeft');
  const before = await plot.getAttribute('aria-valuetext');
  if (before === last) throw new Error('ArrowLeft did not move the reading: ' + before);
  await page.waitForTimeout(3000); // a live refresh of the page's counters
  if (await plot.getAttribute('aria-valuetext') !== before) throw new Error('a live refresh moved the reading');
  await page.keyboard.press('Home');
  expect('readout at the start', await text(netIn.locator('.chart-readout')), /^\d\d:\d\d:\d\d UTC: /);

  step('the last 24 hours: 5-minute averages');
  await page.click('.chart-ranges a:has-text("Last 24 hours")');
  await page.waitForURL(/range=24h$/);
  await page.waitForSelector('.chart-ranges a[aria-current]:has-text("Last 24 hours")');
  expect('24 h peak', await text(netIn.locator('.chart-peak')), /^peak 10\d(\.\d)? KiB\/s at \d\d:\d\d$/);
  await shot('03-server-graphs-24h');

  step('phone width');
  const phone = await newPage({ width: 390, height: 844 });
  await phone.goto(serverURL);
  await phone.waitForSelector('.stat.chart');
  await phone.screenshot({ path: outDir + '/04-phone.png', fullPage: true });
  await phone.context().close();
});
