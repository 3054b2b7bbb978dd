// The import scenario: an admin imports a root-filesystem tarball and a
// qcow2 image into the library from the Drives page, watching the upload's
// progress bar move and the conversion end; a file that is no image fails
// with a plain message and is dismissed; then an ordinary user, who is not
// offered the import, creates a server from the imported tarball and sees
// it run. Run by TestBrowser; see lib.js.
'use strict';
const { scenario } = require('./lib.js');

scenario(async ({ base, outDir, context, page, step, logIn, newPage, admin, files }) => {
  step('log in as the admin');
  await logIn(page, admin);
  await page.goto(base + '/ui/drives');
  await page.waitForSelector('form[data-import]');
  await page.screenshot({ path: outDir + '/01-import-form.png', fullPage: true });

  // A slow uplink (2 MB/s), so the upload's progress has something to show.
  const cdp = await context.newCDPSession(page);
  const throttle = (bytesPerSecond) => cdp.send('Network.emulateNetworkConditions',
    { offline: false, latency: 5, downloadThroughput: -1, uploadThroughput: bytesPerSecond });

  // importFile sends path through the import form and returns the progress
  // values the bar showed until the image was ready.
  async function importFile(name, format, path) {
    await page.fill('#import-name', name);
    await page.selectOption('#import-format', format);
    await page.setInputFiles('#import-file', path);
    await page.click('form[data-import] button[type=submit]');
    await page.waitForSelector('form[data-import] [data-upload-progress]:not([hidden])');
    const seen = new Set();
    const texts = new Set();
    for (let i = 0; i < 3000; i++) {
      seen.add(await page.$eval('form[data-import] progress', (p) => p.value));
      const text = await page.textContent('form[data-import] [data-upload-text]');
      texts.add(text.replace(/[0-9.]+ [KMG]?i?B\/s/, 'N/s'));
      if (text.startsWith('Imported') || text.startsWith('Import failed')) break;
      await page.waitForTimeout(20);
    }
    console.log(name + ': progress values seen: ' + [...seen].sort((a, b) => a - b).join(' '));
    console.log(name + ': texts seen: ' + [...texts].slice(0, 12).join(' | '));
    return seen;
  }

  step('import the busybox tarball, detecting its format');
  await throttle(2e6);
  const seen = await importFile('imported-tar', '', files.tarball);
  await page.waitForSelector('form[data-import] [data-upload-text]:has-text("Imported guest.tar (a root-filesystem tarball) as library image imported-tar")');
  if (![...seen].some((v) => v > 0 && v < 100)) throw new Error('no upload progress between 0 and 100% was shown');
  await throttle(-1);
  await page.waitForSelector('.flash-ok:has-text("as library image imported-tar")');
  await page.waitForSelector('td.name:has-text("imported-tar")');
  // The library list below shows it too, without a reload.
  await page.waitForSelector('[data-library] td.name:has-text("imported-tar")');
  await page.screenshot({ path: outDir + '/02-imported-tarball.png', fullPage: true });

  if (files.qcow2.startsWith('skip: ')) {
    step('qcow2 import skipped: ' + files.qcow2.slice(6));
  } else {
    step('import a qcow2 image, its format chosen');
    await importFile('imported-qcow2', 'qcow2', files.qcow2);
    await page.waitForSelector('form[data-import] [data-upload-text]:has-text("(a qcow2 image holding a raw ext4 filesystem image) as library image imported-qcow2")');
    await page.waitForSelector('td.name:has-text("imported-qcow2")');
  }

  step('a file that is no image fails plainly and can be dismissed');
  await page.fill('#import-name', 'notes');
  await page.setInputFiles('#import-file', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('shopping list\n') });
  await page.click('form[data-import] button[type=submit]');
  await page.waitForSelector('form[data-import] [data-upload-text]:has-text("Import failed: notes.txt is not an image Hearth can import")');
  await page.waitForSelector('form[data-import] [data-error-summary]:has-text("notes.txt is not an image Hearth can import")');
  const failedRow = 'tr[id^="import-"]:has-text("notes")';
  await page.waitForSelector(failedRow + ' .badge-error:has-text("import failed")');
  await page.screenshot({ path: outDir + '/03-import-failed.png', fullPage: true });
  await page.click(failedRow + ' button:has-text("Dismiss")');
  await page.waitForSelector(failedRow, { state: 'detached' });

  step('a compressible drive upload says it went compressed');
  await page.setInputFiles('#upload-file', { name: 'zeros.img', mimeType: 'application/octet-stream', buffer: Buffer.alloc(6 << 20) });
  await page.fill('#upload-name', 'zeros');
  await page.click('form[data-upload] button[type=submit]');
  await page.waitForSelector('form[data-upload] [data-upload-text]:has-text("Uploaded 6.0 MiB into drive zeros, sent compressed as")');

  step('phone width');
  const phone = await newPage({ width: 390, height: 844 });
  await phone.goto(base + '/ui/drives');
  await phone.waitForSelector('form[data-import]');
  await phone.screenshot({ path: outDir + '/04-drives-phone.png', fullPage: true });
  await phone.context().close();

  step('log out; an ordinary user is not offered the import');
  await page.click('button:has-text("Log out")');
  await page.waitForURL('**/login*');
  await logIn();
  await page.goto(base + '/ui/drives');
  await page.waitForSelector('h2:has-text("Library images")');
  if (await page.$('form[data-import]')) throw new Error('an ordinary user is offered the import form');
  await page.screenshot({ path: outDir + '/05-user-library.png', fullPage: true });

  step('the user creates a server from the imported tarball');
  await page.goto(base + '/ui/servers/new');
  await page.fill('#name', 'from-import');
  const options = await page.$$eval('#source option', (os) => os.map((o) => ({ value: o.value, text: o.textContent })));
  const pick = options.find((o) => o.text.startsWith('imported-tar'));
  if (!pick) throw new Error('the create form does not offer imported-tar: ' + JSON.stringify(options));
  if (!files.qcow2.startsWith('skip: ') && !options.some((o) => o.text.startsWith('imported-qcow2'))) {
    throw new Error('the create form does not offer imported-qcow2');
  }
  await page.selectOption('#source', pick.value);
  await page.selectOption('#nic0', 'none');
  await page.fill('#drivesize', '128M');
  await page.screenshot({ path: outDir + '/06-create-from-import.png', fullPage: true });
  await page.click('form button[type=submit]:has-text("Create server")');
  await page.waitForURL(/\/ui\/servers\/[0-9a-f-]{36}$/);
  await page.waitForSelector('.page-head .badge-active', { timeout: 60000 });
  await page.screenshot({ path: outDir + '/07-server-from-import.png', fullPage: true });
});
