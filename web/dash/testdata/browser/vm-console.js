// The vm-console scenario: a VM server made in the dashboard (type VM, a
// blank drive, started at once), its type and the TCG note on its page,
// then its console: QEMU's VGA relayed through Hearth, where SeaBIOS finds
// nothing to boot and says so in text mode (720×400). The canvas must show
// something (not all black) at desktop width and on a phone (390 px), where
// the VGA desktop keeps its size and is scaled down to the window (a VM's
// display takes no size from the viewer). Ctrl-Alt-Del says it pressed the
// VM's keys. Every page is checked with axe-core. See lib.js.
'use strict';
const { scenario } = require('./lib.js');

// canvasDrawn reports the noVNC canvas's size and whether any pixel is not
// black.
function canvasDrawn() {
  const c = document.querySelector('#screen canvas');
  if (!c || !c.width || !c.height) return null;
  const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let lit = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i] | data[i + 1] | data[i + 2]) lit++;
  const box = c.getBoundingClientRect();
  return { width: c.width, height: c.height, shownWidth: box.width, lit };
}

scenario(async ({ base, outDir, page, step, logIn, newPage, axe, shot }) => {
  await logIn();

  step('create a VM with a blank drive');
  await page.goto(base + '/ui/servers/new');
  await page.fill('#name', 'vm1');
  await page.selectOption('#type', 'vm');
  await page.check('#size-custom');
  await page.fill('#cpu', '1000');
  await page.fill('#mem', '64');
  await page.selectOption('#source', 'blank');
  await page.fill('#drivesize', '16M');
  await page.selectOption('#nicmodel', 'e1000');
  await axe(page, 'create a VM');
  await page.click('button:has-text("Create server")');
  await page.waitForURL(/\/ui\/servers\/[0-9a-f-]{36}$/);
  const serverURL = page.url();
  const id = serverURL.split('/').pop();

  step('its page says VM, and how VMs run here');
  await page.waitForSelector('.page-head .badge-active', { timeout: 60000 });
  const typeText = await page.textContent('dt:has-text("Type") + dd');
  console.log('type on the page: ' + typeText.trim());
  if (!/^VM/.test(typeText.trim())) throw new Error('the server page does not say VM: ' + typeText);
  await axe(page, 'running VM');
  await shot('01-vm-page');

  for (const [label, viewport] of [['desktop', { width: 1280, height: 860 }], ['phone', { width: 390, height: 844 }]]) {
    step(`the console at ${label} width shows the VGA screen`);
    const p = await newPage(viewport);
    await p.goto(base + '/static/console/?server=' + id);
    await p.waitForSelector('#status[data-state=connected]', { timeout: 60000 });
    await p.waitForSelector('#screen[data-display=vga]');
    // SeaBIOS under TCG: its text comes within seconds of QEMU's start.
    await p.waitForFunction(() => {
      const c = document.querySelector('#screen canvas');
      if (!c || c.width !== 720 || c.height !== 400) return false;
      const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      for (let i = 0; i < data.length; i += 4) if (data[i] | data[i + 1] | data[i + 2]) return true;
      return false;
    }, null, { timeout: 90000 });
    const geo = await p.evaluate(canvasDrawn);
    console.log(`VGA canvas at ${label}: ${JSON.stringify(geo)}`);
    if (geo.shownWidth > viewport.width) throw new Error(`the VGA desktop overflows the ${viewport.width} px window: ${JSON.stringify(geo)}`);
    await p.screenshot({ path: `${outDir}/02-vga-${label}.png` });
    await axe(p, `VM console (${label})`);

    step(`Ctrl-Alt-Del at ${label} width`);
    await p.click('#cad');
    await p.waitForSelector('#sent:has-text("pressed on the VM")');
    await p.context().close();
  }
});
