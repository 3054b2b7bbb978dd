// Hearth console page: noVNC connected to /servers/SERVER/vnc.
//
// URL parameters: server (required), name (shown in the toolbar). For a
// logged-in owner the dashboard's /ui/servers/SERVER/console.json supplies
// the name, the VNC password and, fetched anew for every connection, a
// console token (good once, for seconds) that the websocket carries as its
// subprotocol "hearth-token.TOKEN", never in a URL; without the dashboard
// the page asks for the password. Reconnects with exponential back-off and
// gives up after maxRetries; a wrong password asks again instead of
// retrying.
//
// A window too small for the 80×24 desktop at its own size (a phone) asks
// the console for a desktop the size of the window instead (noVNC's
// resizeSession: SetDesktopSize): the console gives its terminal the 8×16
// pixel cells that fit and resizes the guest's terminal to match, so text
// keeps its size instead of shrinking to a few pixels. Larger windows keep
// 80×24, scaled to fit.
//
// A VM's console (console.json's display "vga") is QEMU's VGA: the guest
// sets its size (720×400 text, 640×480, 1024×768 …, told to noVNC by
// DesktopSize) and std VGA refuses a viewer's SetDesktopSize, so the page
// never asks for one there: the desktop is scaled to the window instead.
import RFB from '/static/novnc/core/rfb.js';
import KeyTable from '/static/novnc/core/input/keysym.js';

const params = new URLSearchParams(location.search);
const server = params.get('server') || '';
let password = '';

const $ = (id) => document.getElementById(id);
const screen = $('screen');
const maxRetries = 8;
const firstDelay = 1000;
const maxDelay = 30000;
// The default desktop: 80×24 cells of 8×16 pixels and the status line.
const defaultWidth = 80 * 8;
const defaultHeight = 25 * 16;

let rfb = null;
let retries = 0;
let retryTimer = 0;
let wanted = false; // the user wants to be connected
let authFailed = false;
let vga = false; // the console is a VM's VGA display, not a terminal

$('title').textContent = 'Console: ' + (params.get('name') || server || '?');
document.title = $('title').textContent + ' — Hearth';

function setStatus(state, text) {
  const s = $('status');
  s.dataset.state = state;
  s.textContent = text;
  $('connect').hidden = state === 'connected' || state === 'connecting';
  $('disconnect').hidden = !$('connect').hidden;
}

// layoutScreen decides whether this window sizes the guest's terminal and
// then gives the screen a whole number of pixels: noVNC asks again for as
// long as the desktop differs from the screen's size, and a fractional
// height (under a toolbar of fractional height) would keep it asking.
function layoutScreen() {
  const avail = Math.floor(window.innerHeight - screen.getBoundingClientRect().top);
  const fit = !vga && (screen.clientWidth < defaultWidth || avail < defaultHeight);
  screen.style.flex = fit ? 'none' : '';
  screen.style.height = fit ? avail + 'px' : '';
  if (rfb) rfb.resizeSession = fit;
  return fit;
}

function wsURL() {
  // location.host, not a fixed host: the Origin check compares the two.
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return proto + '//' + location.host + '/servers/' + encodeURIComponent(server) + '/vnc';
}

// consoleInfo asks the dashboard about the server: null without one (or
// when not logged in), with the HTTP status.
async function consoleInfo() {
  try {
    const r = await fetch('/ui/servers/' + encodeURIComponent(server) + '/console.json', { credentials: 'same-origin' });
    return { status: r.status, info: r.ok ? await r.json() : null };
  } catch (e) {
    return { status: 0, info: null }; // no dashboard on this origin: the password will do
  }
}

async function connect() {
  if (!server) {
    setStatus('failed', 'No server given (?server=UUID)');
    return;
  }
  clearTimeout(retryTimer);
  wanted = true;
  authFailed = false;
  $('login').hidden = true;
  setStatus('connecting', retries ? `Reconnecting (attempt ${retries + 1} of ${maxRetries + 1})…` : 'Connecting…');
  // A token is good once: every connection gets a fresh one.
  const { info } = await consoleInfo();
  if (!wanted) return; // disconnected while asking
  const protocols = ['binary'];
  if (info && info.token) protocols.push('hearth-token.' + info.token);
  rfb = new RFB(screen, wsURL(), {
    shared: true,
    wsProtocols: protocols,
    credentials: password ? { password } : undefined,
  });
  rfb.scaleViewport = $('scale').checked;
  layoutScreen();
  rfb.background = '#111';
  rfb.addEventListener('connect', () => {
    retries = 0;
    setStatus('connected', 'Connected');
    rfb.focus();
  });
  rfb.addEventListener('credentialsrequired', () => {
    if (password) {
      rfb.sendCredentials({ password });
      return;
    }
    askPassword('');
  });
  rfb.addEventListener('securityfailure', (e) => {
    authFailed = true;
    password = '';
    askPassword(e.detail.reason || 'Authentication failed');
  });
  rfb.addEventListener('desktopname', (e) => {
    $('title').textContent = 'Console: ' + e.detail.name;
  });
  rfb.addEventListener('disconnect', (e) => {
    rfb = null;
    if (!wanted) {
      setStatus('idle', 'Disconnected');
      return;
    }
    if (authFailed) {
      setStatus('failed', 'Not connected: password needed');
      return;
    }
    scheduleRetry(e.detail.clean);
  });
}

function scheduleRetry(clean) {
  if (retries >= maxRetries) {
    wanted = false;
    setStatus('failed', `Gave up after ${retries + 1} attempts — the server may be stopped`);
    return;
  }
  const delay = Math.min(maxDelay, firstDelay * 2 ** retries);
  retries++;
  setStatus('retrying', `${clean ? 'Disconnected' : 'Connection lost'}; retrying in ${Math.round(delay / 1000)} s`);
  retryTimer = setTimeout(connect, delay);
}

function disconnect() {
  wanted = false;
  clearTimeout(retryTimer);
  retries = 0;
  if (rfb) rfb.disconnect();
  setStatus('idle', 'Disconnected');
}

function askPassword(reason) {
  $('login').hidden = false;
  $('loginerror').textContent = reason;
  $('password').value = '';
  $('password').focus();
  setStatus('auth', 'Password needed');
}

$('login').addEventListener('submit', (e) => {
  e.preventDefault();
  // No maxlength on the field: a browser would cut a pasted longer
  // password silently, and the guess would fail for a reason nobody sees.
  const typed = $('password').value;
  if (typed.length > 8) {
    $('loginerror').textContent = 'A VNC password has at most 8 characters; this one has ' + typed.length + '.';
    $('password').setAttribute('aria-invalid', 'true');
    $('password').focus();
    return;
  }
  $('password').removeAttribute('aria-invalid');
  password = typed;
  $('login').hidden = true;
  if (rfb && !authFailed) {
    rfb.sendCredentials({ password });
  } else {
    if (rfb) rfb.disconnect();
    retries = 0;
    connect();
  }
});

$('connect').addEventListener('click', () => { retries = 0; connect(); });
$('disconnect').addEventListener('click', disconnect);
$('scale').addEventListener('change', () => { if (rfb) rfb.scaleViewport = $('scale').checked; });
$('fullscreen').addEventListener('click', () => {
  if (document.fullscreenElement) document.exitFullscreen();
  else document.documentElement.requestFullscreen();
});
window.addEventListener('resize', layoutScreen);
// The toolbar wraps and panels come and go above the screen.
const above = new ResizeObserver(layoutScreen);
for (const id of ['bar', 'paste', 'login', 'note']) above.observe($(id));

// A VM's Ctrl-Alt-Del is the three keys pressed on its keyboard (RFB key
// events, relayed to QEMU, which types them as scancodes). A text console
// has no Ctrl-Alt-Del of its own: the keys reach the guest's terminal as
// xterm's Ctrl-Alt-Delete sequence, which the program reading it
// interprets (a shell ignores it); the guest's init is not signalled.
let sentTimer = 0;
function sentNote(text) {
  $('sent').textContent = text;
  clearTimeout(sentTimer);
  sentTimer = setTimeout(() => { $('sent').textContent = ''; }, 15000);
}
$('cad').addEventListener('click', () => {
  if (!rfb) return;
  rfb.sendCtrlAltDel();
  rfb.focus();
  if (vga) {
    sentNote('Ctrl-Alt-Del was pressed on the VM\'s keyboard: its BIOS or system decides what it means (most restart or show a menu).');
    return;
  }
  sentNote('Ctrl-Alt-Del was typed into the terminal: the program reading it decides what it means (a shell ignores it). ' +
    'It does not restart the guest; Reset on the server page does.');
});

const specialKeys = {
  esc: [KeyTable.XK_Escape, 'Escape'],
  tab: [KeyTable.XK_Tab, 'Tab'],
  home: [KeyTable.XK_Home, 'Home'],
  end: [KeyTable.XK_End, 'End'],
  pgup: [KeyTable.XK_Page_Up, 'PageUp'],
  pgdn: [KeyTable.XK_Page_Down, 'PageDown'],
  ins: [KeyTable.XK_Insert, 'Insert'],
  del: [KeyTable.XK_Delete, 'Delete'],
};
for (let i = 1; i <= 12; i++) specialKeys['f' + i] = [KeyTable['XK_F' + i], 'F' + i];

$('keys').addEventListener('change', (e) => {
  const v = e.target.value;
  e.target.value = '';
  if (!rfb || !v) return;
  if (v.startsWith('ctrl-')) {
    rfb.sendKey(KeyTable.XK_Control_L, 'ControlLeft', true);
    rfb.sendKey(v.charCodeAt(5), 'Key' + v[5].toUpperCase());
    rfb.sendKey(KeyTable.XK_Control_L, 'ControlLeft', false);
  } else {
    const [sym, code] = specialKeys[v];
    rfb.sendKey(sym, code);
  }
  rfb.focus();
});

$('pastebutton').addEventListener('click', () => {
  const panel = $('paste');
  panel.hidden = !panel.hidden;
  $('pastebutton').setAttribute('aria-expanded', String(!panel.hidden));
  if (!panel.hidden) $('pastetext').focus();
});
$('paste').addEventListener('submit', (e) => {
  e.preventDefault();
  // The console types clipboard text into the guest (no agent needed).
  if (rfb) rfb.clipboardPasteFrom($('pastetext').value);
  $('pastetext').value = '';
  $('paste').hidden = true;
  $('pastebutton').setAttribute('aria-expanded', 'false');
  if (rfb) rfb.focus();
});

function note(html) {
  $('note').innerHTML = html;
  $('note').hidden = false;
}

// start asks the dashboard what it knows of the server, then connects.
async function start() {
  const { status, info } = await consoleInfo();
  if (info) {
    if (info.name) $('title').textContent = 'Console: ' + info.name;
    vga = info.display === 'vga';
    screen.dataset.display = info.display || 'terminal';
    $('back').href = '/ui/servers/' + encodeURIComponent(server);
    $('back').hidden = false;
    if (!info.hasPassword) {
      setStatus('failed', 'No console');
      note('This server has no console: set a VNC password on the <a href="/ui/servers/' +
        encodeURIComponent(server) + '">server page</a> and start the server.');
      return;
    }
    if (info.password) password = info.password;
  } else if (status === 401) {
    setStatus('failed', 'Not logged in');
    note('Log in to use this console: <a href="/login?next=' +
      encodeURIComponent(location.pathname + location.search) + '">log in</a>.');
    return;
  }
  connect();
}

window.hearthConsole = { connect, disconnect, get rfb() { return rfb; } }; // for tests and the dashboard
start();
