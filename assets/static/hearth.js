// Hearth dashboard script: progressive enhancement only. Every page works
// without it; with it, status updates live (short polling of server-rendered
// fragments), action buttons run in place, destructive ones ask first, and
// drive uploads go in chunks with a progress bar.
(function () {
  'use strict';

  var csrf = document.body ? document.body.getAttribute('data-csrf') : '';

  // ---- flash messages ------------------------------------------------------

  function flash(kind, message) {
    var box = document.querySelector('.flashes');
    if (!box || !message) return;
    var div = document.createElement('div');
    div.className = 'flash flash-' + kind;
    div.textContent = message;
    box.appendChild(div);
    setTimeout(function () { div.remove(); }, kind === 'error' ? 12000 : 5000);
  }

  // ---- live regions: [data-live=URL][data-interval=ms] ----------------------
  // The server renders the fragment; we morph the page's copy into it: only
  // the text and attributes that changed are touched, so buttons, focus and
  // half-typed inputs stay where they are while counters tick.

  function morph(from, to) {
    if (from.nodeType !== to.nodeType || from.nodeName !== to.nodeName) {
      from.replaceWith(to.cloneNode(true));
      return;
    }
    if (from.nodeType === Node.TEXT_NODE || from.nodeType === Node.COMMENT_NODE) {
      if (from.nodeValue !== to.nodeValue) from.nodeValue = to.nodeValue;
      return;
    }
    if (from.nodeType === Node.ELEMENT_NODE) {
      Array.prototype.slice.call(from.attributes).forEach(function (a) {
        if (!to.hasAttribute(a.name)) from.removeAttribute(a.name);
      });
      Array.prototype.forEach.call(to.attributes, function (a) {
        if (from.getAttribute(a.name) !== a.value) from.setAttribute(a.name, a.value);
      });
    }
    var have = from.childNodes, want = to.childNodes;
    for (var i = 0; i < want.length; i++) {
      if (i < have.length) morph(have[i], want[i]);
      else from.appendChild(want[i].cloneNode(true));
    }
    while (have.length > want.length) from.removeChild(from.lastChild);
  }

  var regions = [];

  function refresh(region) {
    if (region.busy) return Promise.resolve();
    region.busy = true;
    return fetch(region.url, { credentials: 'same-origin', headers: { 'X-Hearth-Fetch': '1' } })
      .then(function (res) {
        if (res.status === 401) { location.href = '/login?next=' + encodeURIComponent(location.pathname); return null; }
        if (res.status === 404) { location.reload(); return null; }
        return res.ok ? res.text() : null;
      })
      .then(function (html) {
        if (html === null || html === region.last) return;
        region.last = html;
        var fresh = document.createElement(region.el.nodeName);
        fresh.innerHTML = html;
        Array.prototype.forEach.call(region.el.attributes, function (a) { fresh.setAttribute(a.name, a.value); });
        morph(region.el, fresh);
        enhance(region.el);
        region.el.dispatchEvent(new Event('hearth:refreshed', { bubbles: true }));
        syncConfig();
      })
      .catch(function () { /* offline for a moment: try again next tick */ })
      .then(function () { region.busy = false; });
  }

  function refreshAll() {
    return Promise.all(regions.map(refresh));
  }

  function startLive() {
    document.querySelectorAll('[data-live]').forEach(function (el) {
      var region = { el: el, url: el.getAttribute('data-live'), last: null, busy: false };
      regions.push(region);
      var every = parseInt(el.getAttribute('data-interval'), 10) || 3000;
      setInterval(function () { if (!document.hidden) refresh(region); }, every);
    });
    document.addEventListener('visibilitychange', function () { if (!document.hidden) refreshAll(); });
  }

  // ---- server page: the configuration form follows the status ---------------
  // A running server takes only its live keys, so the form's shape depends on
  // whether it runs. When the live status crosses that line, fetch the page
  // again and swap the form in — unless the user has started editing it.

  function syncConfig() {
    var cfg = document.querySelector('[data-config-status]');
    var head = document.querySelector('[data-status]');
    if (!cfg || !head || cfg.syncing) return;
    var st = head.getAttribute('data-status');
    var shape = (st === 'active' || st === 'paused') ? 'running' : 'stopped';
    if (shape === cfg.getAttribute('data-config-status')) return;
    if (cfg.dirty) {
      if (!cfg.warned) flash('info', 'The server is now ' + st + ': save or reload to see which settings can change.');
      cfg.warned = true;
      return;
    }
    cfg.syncing = true;
    fetch(location.href, { credentials: 'same-origin' })
      .then(function (res) { return res.ok ? res.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, 'text/html').querySelector('[data-config-status]');
        if (fresh && !cfg.dirty) {
          cfg.replaceWith(fresh);
          watchConfig();
        }
      })
      .catch(function () {})
      .then(function () { cfg.syncing = false; });
  }

  function watchConfig() {
    var cfg = document.querySelector('[data-config-status]');
    if (cfg) cfg.addEventListener('input', function () { cfg.dirty = true; });
  }

  // ---- enhanced forms: [data-enhance] --------------------------------------
  // Sent with fetch; the answer is JSON {message|error, redirect}. A hidden
  // input with data-confirm asks first and then carries "yes".

  function submitEnhanced(form, ev) {
    ev.preventDefault();
    var confirmField = form.querySelector('[data-confirm]');
    if (confirmField) {
      if (!window.confirm(confirmField.getAttribute('data-confirm'))) return;
      confirmField.value = 'yes';
    }
    form.classList.add('busy');
    fetch(form.action, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'X-Hearth-Fetch': '1', 'X-CSRF-Token': csrf },
      body: new URLSearchParams(new FormData(form))
    })
      .then(function (res) { return res.json().catch(function () { return { error: 'Unexpected answer (' + res.status + ')' }; }); })
      .then(function (ans) {
        if (ans.error) {
          flash('error', ans.error);
        } else {
          flash('ok', ans.message);
          // The object this page shows is gone (destroyed): go up a level.
          if (ans.redirect && location.pathname.indexOf(ans.redirect + '/') === 0) {
            location.href = ans.redirect;
            return;
          }
        }
        return refreshAll();
      })
      .catch(function (e) { flash('error', 'Request failed: ' + e.message); })
      .then(function () {
        form.classList.remove('busy');
        if (confirmField) confirmField.value = '';
      });
  }

  function enhance(root) {
    root.querySelectorAll('form[data-enhance]').forEach(function (form) {
      if (form.enhanced) return;
      form.enhanced = true;
      form.addEventListener('submit', function (ev) { submitEnhanced(form, ev); });
    });
    root.querySelectorAll('[data-scroll-end]').forEach(function (el) { el.scrollTop = el.scrollHeight; });
  }

  // ---- drive upload: form[data-upload] --------------------------------------
  // Creates the drive, then sends the file in 4 MiB chunks to
  // /ui/drives/ID/write/OFFSET, each gzip-compressed where the browser has
  // CompressionStream.

  var CHUNK = 4 << 20;

  function gzip(blob) {
    if (typeof CompressionStream === 'undefined') return Promise.resolve(null);
    var stream = blob.stream().pipeThrough(new CompressionStream('gzip'));
    return new Response(stream).blob();
  }

  function roundUpMiB(n) {
    var mib = 1 << 20;
    return Math.max(mib, Math.ceil(n / mib) * mib);
  }

  function humanBytes(n) {
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
  }

  function postJSON(url, body, headers) {
    var h = { 'X-Hearth-Fetch': '1', 'X-CSRF-Token': csrf };
    Object.keys(headers || {}).forEach(function (k) { h[k] = headers[k]; });
    return fetch(url, { method: 'POST', credentials: 'same-origin', headers: h, body: body })
      .then(function (res) {
        return res.json().catch(function () { return {}; }).then(function (ans) {
          if (!res.ok) throw new Error(ans.error || ('HTTP ' + res.status));
          return ans;
        });
      });
  }

  function setupUpload(form) {
    var box = form.querySelector('[data-upload-progress]');
    var bar = box.querySelector('progress');
    var text = box.querySelector('[data-upload-text]');
    var button = form.querySelector('button[type=submit]');

    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var file = form.elements.file.files[0];
      if (!file) { flash('error', 'Choose an image file first.'); return; }
      var name = form.elements.name.value.trim() || file.name;
      var size = form.elements.size.value.trim() || String(roundUpMiB(file.size));
      var compress = typeof CompressionStream !== 'undefined';
      button.disabled = true;
      box.hidden = false;
      bar.value = 0;
      text.textContent = 'Creating drive ' + name + '…';

      var started = Date.now();
      var sent = 0;
      var drive;

      function next(offset) {
        if (offset >= file.size) return Promise.resolve();
        var piece = file.slice(offset, offset + CHUNK);
        return gzip(piece).then(function (zipped) {
          var headers = { 'Content-Type': 'application/octet-stream' };
          if (zipped) headers['Content-Encoding'] = 'gzip';
          return postJSON('/ui/drives/' + drive + '/write/' + offset, zipped || piece, headers).then(function () {
            sent += zipped ? zipped.size : piece.size;
            var done = Math.min(file.size, offset + piece.size);
            bar.value = Math.round(done / file.size * 100);
            var secs = (Date.now() - started) / 1000;
            text.textContent = humanBytes(done) + ' of ' + humanBytes(file.size) + ' (' + bar.value + '%)' +
              (compress ? ', ' + humanBytes(sent) + ' sent compressed' : '') +
              (secs > 0 ? ', ' + humanBytes(done / secs) + '/s' : '');
            return next(offset + piece.size);
          });
        });
      }

      var body = new URLSearchParams({ name: name, size: size });
      postJSON('/ui/drives/new', body)
        .then(function (ans) {
          drive = ans.drive;
          return next(0);
        })
        .then(function () {
          bar.value = 100;
          text.textContent = 'Uploaded ' + humanBytes(file.size) + ' into drive ' + name + '.';
          flash('ok', 'Uploaded ' + file.name + ' into drive ' + name + '.');
          form.reset();
          return refreshAll();
        })
        .catch(function (e) {
          text.textContent = 'Upload failed: ' + e.message;
          flash('error', 'Upload failed: ' + e.message + (drive ? ' (the drive was created; destroy it or upload again)' : ''));
        })
        .then(function () { button.disabled = false; });
    });
  }

  function init() {
    enhance(document);
    watchConfig();
    startLive();
    document.querySelectorAll('form[data-upload]').forEach(setupUpload);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
