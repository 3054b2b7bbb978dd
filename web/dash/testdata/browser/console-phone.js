// The console-phone scenario: a running server's console opened on a
// phone (390×844). The window is too small for 80×24 at its own size, so
// the console page asks for a desktop the size of its screen: the terminal
// gets the 8×16 cells that fit, the text keeps its size (at least 7.5 CSS
// pixels per column instead of ~5 when 80 columns are scaled down), and the
// guest's terminal is resized to match (`stty size` in the busybox shell
// prints it). Ctrl-Alt-Del says what it did. See lib.js.
'use strict';
const { scenario } = require('./lib.js');

scenario(async ({ base, outDir, step, logIn, newPage }) => {
  await logIn();
  const phone = await newPage({ width: 390, height: 844 });

  step('open the console at phone width');
  await phone.goto(base + '/ui/servers');
  await phone.click('a:has-text("phone1")');
  await phone.waitForURL(/\/ui\/servers\/[0-9a-f-]{36}$/);
  const serverURL = phone.url();
  await phone.waitForSelector('.page-head .badge-active');
  await phone.click('a:has-text("Console")');
  await phone.waitForURL('**/static/console/?server=*');
  await phone.waitForSelector('#status[data-state=connected]');

  step('the desktop follows the screen');
  await phone.waitForFunction(() => {
    const c = document.querySelector('#screen canvas');
    return c && c.width === document.querySelector('#screen').clientWidth && c.width < 640;
  });
  const geo = await phone.evaluate(() => {
    const c = document.querySelector('#screen canvas');
    const cols = Math.floor(c.width / 8), rows = Math.floor(c.height / 16) - 1;
    return { cols, rows, width: c.width, height: c.height, cssPerColumn: c.getBoundingClientRect().width / cols };
  });
  console.log('console geometry: ' + JSON.stringify(geo));
  if (geo.cols < 40 || geo.rows < 20) throw new Error('terminal too small: ' + JSON.stringify(geo));
  if (geo.cssPerColumn < 7.5) throw new Error('text scaled down to ' + geo.cssPerColumn.toFixed(1) + ' CSS px per column');

  step('the guest sees the new size');
  await phone.waitForTimeout(500);
  await phone.click('#screen');
  await phone.keyboard.type('stty size\n', { delay: 30 });
  await phone.waitForTimeout(1000);
  await phone.screenshot({ path: outDir + '/01-console-phone.png' });

  step('Ctrl-Alt-Del says what it did');
  await phone.click('#cad');
  await phone.waitForSelector('#sent:has-text("does not restart the guest")');
  await phone.screenshot({ path: outDir + '/02-ctrl-alt-del.png' });

  step('the server page shows what stty printed');
  await phone.goto(serverURL);
  await phone.waitForSelector(`pre.console-out:has-text("${geo.rows} ${geo.cols}")`, { timeout: 15000 });
  await phone.context().close();
});
