// The first-server scenario: log in, create a server from the library
// image (the busybox test guest) with a console, see it become active
// without reloading, type into the guest's shell on the console, find the
// output on the server page, stop it, upload a drive with a progress bar,
// make a VLAN and a static IP, look at phone and tablet widths, destroy the
// server with its boot drive and log out. Run by TestBrowser; see lib.js.
'use strict';
const { scenario } = require('./lib.js');

scenario(async ({ base, libraryName, outDir, context, page, step, logIn, newPage }) => {
  step('log in');
  await page.goto(base + '/ui/servers');
  await page.waitForURL('**/login?next=*');
  await page.screenshot({ path: outDir + '/01-login.png' });
  await logIn();

  step('create a server from the library image');
  await page.click('text=Create server');
  await page.waitForURL('**/ui/servers/new');
  await page.fill('#name', 'web1');
  await page.check('#size-medium');
  const source = await page.$eval('#source', (sel, name) =>
    [...sel.options].find((o) => o.textContent.startsWith(name)).value, libraryName);
  await page.selectOption('#source', source);
  await page.selectOption('#nic0', 'none');
  // Console on by default: a generated password, shown; a longer one
  // pasted is kept as typed and refused next to the field, never cut.
  const generated = await page.inputValue('#password');
  if (!/^[a-z2-9]{8}$/.test(generated)) throw new Error('no generated VNC password in the create form: ' + JSON.stringify(generated));
  await page.fill('#password', 'pw1234567');
  await page.fill('#drivesize', 'lots');
  await page.click('form button[type=submit]:has-text("Create server")');
  await page.waitForSelector('#drivesize-error');
  await page.waitForSelector('#password-error:has-text("9 characters")');
  if (await page.inputValue('#password') !== 'pw1234567') throw new Error('the long password was cut');
  if (await page.getAttribute('#password', 'aria-invalid') !== 'true') throw new Error('the password field is not marked invalid');
  await page.screenshot({ path: outDir + '/02-create-server-error.png', fullPage: true });
  await page.fill('#password', generated);
  await page.fill('#drivesize', '64M');
  await page.screenshot({ path: outDir + '/02-create-server.png', fullPage: true });
  await page.click('form button[type=submit]:has-text("Create server")');
  await page.waitForURL(/\/ui\/servers\/[0-9a-f-]{36}$/);
  const serverURL = page.url();

  step('see it become active without reloading');
  await page.waitForSelector('.page-head .badge-active', { timeout: 60000 });
  // The create flash waited for it and now says it is running.
  await page.waitForSelector('.flash-ok:has-text("Server web1 created. It is running.")');
  await page.waitForTimeout(6000); // a few counter samples for the sparklines
  await page.screenshot({ path: outDir + '/03-server-active.png', fullPage: true });

  step('servers list, live');
  await page.goto(base + '/ui/servers');
  await page.waitForSelector('tr:has-text("web1") .badge-active');
  await page.screenshot({ path: outDir + '/04-servers.png', fullPage: true });

  step('open the console and use the guest shell');
  await page.goto(serverURL);
  await page.click('a:has-text("Console")');
  await page.waitForURL('**/static/console/?server=*');
  await page.waitForSelector('#status[data-state=connected]');
  await page.waitForTimeout(1000);
  await page.click('#screen');
  await page.keyboard.type('echo hearth-$((6*7))\n', { delay: 30 });
  await page.waitForTimeout(1500);
  await page.screenshot({ path: outDir + '/05-console.png' });

  step('the server page shows the console output');
  await page.goto(serverURL);
  await page.waitForSelector('pre.console-out:has-text("hearth-42")');

  step('stop it and see the status change live');
  await page.goto(serverURL);
  await page.click('.page-head a:has-text("Stop")'); // a power cut: asked first
  await page.click('button:has-text("Stop server")');
  await page.waitForSelector('.page-head .badge-stopped');
  await page.waitForSelector('.flash-ok:has-text("stopped")');

  step('upload a small drive with progress');
  await page.goto(base + '/ui/drives');
  const size = 9 << 20; // three chunks
  const data = require('crypto').randomBytes(size); // incompressible: the throttle below holds
  // A slow uplink (4 MB/s), so the progress bar has something to show.
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 5, downloadThroughput: -1, uploadThroughput: 4e6 });
  await page.setInputFiles('#upload-file', { name: 'disk.img', mimeType: 'application/octet-stream', buffer: data });
  await page.fill('#upload-name', 'uploaded');
  await page.click('form[data-upload] button[type=submit]');
  await page.waitForSelector('[data-upload-progress]:not([hidden])');
  const seen = new Set();
  let saidCompressed = false;
  for (let i = 0; i < 200; i++) {
    seen.add(await page.$eval('[data-upload-progress] progress', (p) => p.value));
    saidCompressed = saidCompressed || (await page.textContent('[data-upload-text]')).includes('compressed');
    if (await page.$('text=Uploaded 9.0 MiB into drive uploaded.')) break;
    await page.waitForTimeout(20);
  }
  await page.waitForSelector('[data-upload-text]:has-text("Uploaded 9.0 MiB into drive uploaded.")');
  await page.waitForSelector('td.name:has-text("uploaded")');
  console.log('progress values seen: ' + [...seen].sort((a, b) => a - b).join(' '));
  if (![...seen].some((v) => v > 0 && v < 100)) throw new Error('no upload progress between 0 and 100% was shown');
  // Smooth: the bar moves within a 4 MiB chunk, not only at the two chunk ends.
  if ([...seen].filter((v) => v > 0 && v < 100).length < 4) throw new Error('the upload progress moved in chunk steps only');
  if (saidCompressed) throw new Error('random data was said to be sent compressed');
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  await page.screenshot({ path: outDir + '/06-drives.png', fullPage: true });

  step('network page');
  await page.goto(base + '/ui/resources');
  await page.fill('#vlan-name', 'backend');
  await page.click('button:has-text("Create VLAN")');
  await page.waitForSelector('.flash-ok:has-text("Created VLAN backend")');
  await page.fill('#ip-name', 'front door');
  await page.click('button:has-text("Reserve IP")');
  await page.waitForSelector('.flash-ok:has-text("Created static IP")');
  await page.screenshot({ path: outDir + '/09-network.png', fullPage: true });

  step('phone width');
  const mobile = await newPage({ width: 390, height: 844 });
  await mobile.goto(base + '/ui/servers');
  await mobile.waitForSelector('td.name:has-text("web1")');
  await mobile.screenshot({ path: outDir + '/07-servers-phone.png', fullPage: true });
  await mobile.goto(serverURL);
  await mobile.waitForSelector('.page-head .badge-stopped');
  await mobile.screenshot({ path: outDir + '/08-server-phone.png', fullPage: true });
  await mobile.goto(base + '/ui/servers/new');
  await mobile.screenshot({ path: outDir + '/10-create-phone.png', fullPage: true });
  await mobile.setViewportSize({ width: 1024, height: 768 });
  await mobile.goto(base + '/ui/drives');
  await mobile.screenshot({ path: outDir + '/11-drives-tablet.png', fullPage: true });
  await mobile.context().close();

  step('destroy web1 from its page, with its boot drive');
  await page.goto(serverURL);
  await page.click('.page-head a:has-text("Destroy")');
  await page.waitForURL('**/destroy?back=*');
  if (!(await page.isChecked('input[name=deletedrive]'))) throw new Error('deleting the wizard-made boot drive is not offered ticked');
  await page.screenshot({ path: outDir + '/12-destroy.png', fullPage: true });
  await page.click('button:has-text("Destroy server")');
  await page.waitForURL(base + '/ui/servers');
  await page.waitForSelector('.flash-ok:has-text("Server web1 and its boot drive web1 boot destroyed.")');

  step('log out');
  await page.click('button:has-text("Log out")');
  await page.waitForURL('**/login?bye');
  await page.waitForSelector('text=You have been logged out.');
  await page.goto(base + '/ui/servers');
  await page.waitForURL('**/login?next=*');
});
