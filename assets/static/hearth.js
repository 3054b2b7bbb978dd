// Hearth dashboard script: progressive enhancement only. Every page works
// without it; with it, status updates live (short polling of server-rendered
// fragments), action buttons run in place, destructive ones ask first,
// flashes follow the state they announce, drive uploads go in chunks and
// library imports in one request, with a progress bar that moves as the
// bytes leave.
(function () {
  'use strict';

  var csrf = document.body ? document.body.getAttribute('data-csrf') : '';

  // ---- flash messages ------------------------------------------------------
  // Flashes overlay the bottom corner (nothing moves under the pointer) and
  // stay until closed or replaced by the next action's news. One that
  // awaits a state ([data-await-server]) is never replaced: it follows the
  // server's row or page head ([data-server][data-state]) after every
  // refresh, "Shutting down web1… (42 s left)", then says its data-done
  // message once the server is in one of the awaited states, or gone.

  function closable(div) {
    if (div.querySelector('.flash-close')) return;
    var x = document.createElement('button');
    x.type = 'button';
    x.className = 'flash-close';
    x.setAttribute('aria-label', 'Dismiss');
    x.textContent = '×';
    x.addEventListener('click', function () { div.remove(); });
    div.appendChild(x);
  }

  // flashText sets a flash's message and, apart, a count that changes every
  // refresh: hidden from screen readers, so the live region announces the
  // message and its end, not every tick.
  function flashText(div, text, count) {
    var span = div.querySelector('.flash-text');
    if (!span) {
      span = document.createElement('span');
      span.className = 'flash-text';
      while (div.firstChild) span.appendChild(div.firstChild);
      div.appendChild(span);
    }
    var msg = span.firstChild && span.firstChild.nodeType === Node.TEXT_NODE ? span.firstChild : null;
    if (!msg) { msg = document.createTextNode(''); span.insertBefore(msg, span.firstChild); }
    if (msg.nodeValue !== text) msg.nodeValue = text;
    var tick = span.querySelector('.flash-count');
    if (!count) { if (tick) tick.remove(); return; }
    if (!tick) {
      tick = document.createElement('span');
      tick.className = 'flash-count';
      tick.setAttribute('aria-hidden', 'true');
      span.appendChild(tick);
    }
    if (tick.textContent !== ' (' + count + ')') tick.textContent = ' (' + count + ')';
  }

  function flash(kind, message, await_) {
    var box = document.querySelector('.flashes');
    if (!box || !message) return;
    var div = document.createElement('div');
    div.className = 'flash flash-' + kind;
    if (await_) {
      div.setAttribute('data-await-server', await_.server);
      div.setAttribute('data-await', await_.states);
      div.setAttribute('data-done', await_.done);
      if (await_.failed) div.setAttribute('data-failed', await_.failed);
    }
    flashText(div, message);
    closable(div);
    box.querySelectorAll('.flash:not([data-await-server])').forEach(function (old) { old.remove(); });
    box.appendChild(div);
    settleFlashes(false);
  }

  function doneFlash(div) {
    flashText(div, div.getAttribute('data-done'));
    div.className = 'flash flash-ok';
    div.removeAttribute('data-await-server');
  }

  // failedFlash ends a flash whose awaited state will not come (a start
  // that failed, or the server gone) with its data-failed message.
  function failedFlash(div) {
    flashText(div, div.getAttribute('data-failed'));
    div.className = 'flash flash-error';
    div.removeAttribute('data-await-server');
  }

  // settleFlashes brings awaiting flashes up to date with what the page
  // shows; listed: the page's server list was just refreshed, so a server
  // missing from it is gone.
  function settleFlashes(listed) {
    document.querySelectorAll('.flashes .flash[data-await-server]').forEach(function (div) {
      if (!div.hasAttribute('data-message')) div.setAttribute('data-message', div.querySelector('.flash-text').firstChild.nodeValue);
      var id = div.getAttribute('data-await-server');
      var el = document.querySelector('[data-server="' + id + '"][data-state]');
      var failed = div.getAttribute('data-failed');
      if (!el) {
        if (listed) (failed ? failedFlash : doneFlash)(div);
        return;
      }
      var state = el.getAttribute('data-state');
      if (div.getAttribute('data-await').split(' ').indexOf(state) >= 0) {
        doneFlash(div);
        return;
      }
      if (failed && state === 'start-failed') {
        failedFlash(div);
        return;
      }
      flashText(div, div.getAttribute('data-message'), el.getAttribute('data-state-left'));
    });
  }

  // A server page whose server is gone sends the browser to the list,
  // carrying the flashes that waited for it (now done).
  var CARRIED = 'hearth-flashes';

  function leaveForList() {
    var carried = [];
    document.querySelectorAll('.flashes .flash[data-await-server]').forEach(function (div) {
      var failed = div.getAttribute('data-failed');
      carried.push(failed ? { kind: 'error', message: failed } : { kind: 'ok', message: div.getAttribute('data-done') });
    });
    try { sessionStorage.setItem(CARRIED, JSON.stringify(carried)); } catch (e) { /* private mode */ }
    location.href = '/ui/servers';
  }

  function setupFlashes() {
    document.querySelectorAll('.flashes .flash').forEach(function (div) {
      flashText(div, div.textContent);
      closable(div);
    });
    var carried = null;
    try { carried = JSON.parse(sessionStorage.getItem(CARRIED) || 'null'); sessionStorage.removeItem(CARRIED); } catch (e) { /* none */ }
    (carried || []).forEach(function (m) { flash(m.kind, m.message); });
    settleFlashes(false);
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
      var marked = from.hasAttribute('data-scripted-invalid'); // a form problem the script marked stays
      Array.prototype.slice.call(from.attributes).forEach(function (a) {
        if (!to.hasAttribute(a.name) && !(marked && scriptedAttrs.indexOf(a.name) >= 0)) from.removeAttribute(a.name);
      });
      Array.prototype.forEach.call(to.attributes, function (a) {
        if (from.getAttribute(a.name) !== a.value) from.setAttribute(a.name, a.value);
      });
    }
    // The script's own error summaries are not the server's to remove.
    var have = Array.prototype.filter.call(from.childNodes, function (n) {
      return !(n.nodeType === Node.ELEMENT_NODE && n.hasAttribute('data-scripted'));
    });
    var want = to.childNodes;
    for (var i = 0; i < want.length; i++) {
      if (i < have.length) morph(have[i], want[i]);
      else from.appendChild(want[i].cloneNode(true));
    }
    for (var j = want.length; j < have.length; j++) from.removeChild(have[j]);
  }

  var scriptedAttrs = ['aria-invalid', 'aria-describedby', 'data-scripted-invalid'];

  var regions = [];

  function refresh(region) {
    if (region.busy) return Promise.resolve();
    region.busy = true;
    return fetch(region.url, { credentials: 'same-origin', headers: { 'X-Hearth-Fetch': '1' } })
      .then(function (res) {
        if (res.status === 401) { location.href = '/login?next=' + encodeURIComponent(location.pathname); return null; }
        if (res.status === 404) {
          if (/^\/ui\/servers\/[^/]+\/live$/.test(region.url)) leaveForList(); else location.reload();
          return null;
        }
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
        settleFlashes(region.url === '/ui/servers/rows');
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

  // ---- form problems ------------------------------------------------------
  // A refused form says what is wrong at its top (the error summary, as the
  // server renders it for forms sent without this script), marks the field
  // at fault, and moves focus to the summary so a screen reader reads it.

  var problemCount = 0;

  function clearProblem(form) {
    var old = form.querySelector('[data-error-summary][data-scripted]');
    if (old) old.remove();
    form.querySelectorAll('[data-scripted-invalid]').forEach(function (el) {
      el.removeAttribute('aria-invalid');
      el.removeAttribute('aria-describedby');
      el.removeAttribute('data-scripted-invalid');
    });
  }

  function formProblem(form, message, input) {
    clearProblem(form);
    var box = document.createElement('div');
    box.className = 'error-summary';
    box.id = 'problem-' + (++problemCount);
    box.setAttribute('role', 'alert');
    box.setAttribute('tabindex', '-1');
    box.setAttribute('data-error-summary', '');
    box.setAttribute('data-scripted', '');
    var title = document.createElement('h2');
    title.className = 'error-summary-title';
    title.textContent = 'There is a problem';
    var text = document.createElement('p');
    text.textContent = message;
    box.appendChild(title);
    box.appendChild(text);
    form.insertBefore(box, form.firstChild);
    if (input && !input.hasAttribute('aria-invalid')) {
      input.setAttribute('aria-invalid', 'true');
      input.setAttribute('aria-describedby', box.id);
      input.setAttribute('data-scripted-invalid', '');
    }
    box.focus();
  }

  // textInput is the one field an inline form (resize, rename) is about.
  function textInput(form) {
    return form.querySelector('input[type=text], input:not([type])');
  }

  // swapFromPage replaces the element matching selector with its copy in
  // this page fetched again (a part of the page that is not live).
  function swapFromPage(selector) {
    return fetch(location.href, { credentials: 'same-origin' })
      .then(function (res) { return res.ok ? res.text() : null; })
      .then(function (html) {
        var fresh = html && new DOMParser().parseFromString(html, 'text/html').querySelector(selector);
        var here = document.querySelector(selector);
        if (fresh && here) here.replaceWith(fresh);
      })
      .catch(function () {});
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
        if (ans.error && textInput(form)) {
          formProblem(form, ans.error, textInput(form));
        } else if (ans.error) {
          flash('error', ans.error);
        } else {
          clearProblem(form);
          flash(ans.kind || 'ok', ans.message, ans.await);
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

  // ---- uploads: form[data-upload] (a drive) and form[data-import] (a library image)
  // Both send with XMLHttpRequest, whose upload progress events move the bar
  // as the bytes leave, and share the progress box and its wording.

  // send POSTs body and resolves with the JSON answer; onProgress(loaded,
  // total) follows the upload.
  function send(url, body, headers, onProgress) {
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      xhr.open('POST', url);
      xhr.setRequestHeader('X-Hearth-Fetch', '1');
      xhr.setRequestHeader('X-CSRF-Token', csrf);
      Object.keys(headers || {}).forEach(function (k) { xhr.setRequestHeader(k, headers[k]); });
      if (onProgress) {
        xhr.upload.addEventListener('progress', function (e) {
          if (e.lengthComputable) onProgress(e.loaded, e.total);
        });
      }
      xhr.addEventListener('load', function () {
        var ans = {};
        try { ans = JSON.parse(xhr.responseText); } catch (e) { /* not JSON: the status says it */ }
        if (xhr.status < 200 || xhr.status >= 300) {
          var err = new Error(ans.error || ('HTTP ' + xhr.status));
          err.field = ans.field; // the form field at fault, when the answer names one
          reject(err);
          return;
        }
        resolve(ans);
      });
      xhr.addEventListener('error', function () { reject(new Error('the connection failed')); });
      xhr.addEventListener('abort', function () { reject(new Error('cancelled')); });
      xhr.send(body);
    });
  }

  var CHUNK = 4 << 20;

  // gzip resolves with the compressed blob, or null where the browser cannot
  // compress or compressing does not make it smaller (random or already
  // compressed data): that chunk is sent as it is.
  function gzip(blob) {
    if (typeof CompressionStream === 'undefined') return Promise.resolve(null);
    var stream = blob.stream().pipeThrough(new CompressionStream('gzip'));
    return new Response(stream).blob().then(function (z) { return z.size < blob.size ? z : null; });
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

  // progressBox drives a form's [data-upload-progress] box.
  function progressBox(form) {
    var box = form.querySelector('[data-upload-progress]');
    var bar = box.querySelector('progress');
    var text = box.querySelector('[data-upload-text]');
    var started = 0;
    return {
      start: function (what) { box.hidden = false; bar.value = 0; text.textContent = what; started = Date.now(); },
      say: function (pct, what) { bar.value = pct; text.textContent = what; },
      // sent reports done of total bytes (wire: bytes that went on the
      // wire, when fewer than done, as compression made them).
      sent: function (done, total, wire) {
        var pct = total > 0 ? Math.floor(done / total * 100) : 100;
        var secs = (Date.now() - started) / 1000;
        bar.value = pct;
        text.textContent = humanBytes(done) + ' of ' + humanBytes(total) + ' (' + pct + '%)' +
          (wire < done ? ', ' + humanBytes(wire) + ' sent compressed' : '') +
          (secs > 0.5 ? ', ' + humanBytes(done / secs) + '/s' : '');
      }
    };
  }

  function setupUpload(form) {
    var progress = progressBox(form);
    var button = form.querySelector('button[type=submit]');

    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var file = form.elements.file.files[0];
      if (!file) { formProblem(form, 'Image file: choose an image file first.', form.elements.file); return; }
      clearProblem(form);
      var name = form.elements.name.value.trim() || file.name;
      var size = form.elements.size.value.trim() || String(roundUpMiB(file.size));
      button.disabled = true;
      progress.start('Creating drive ' + name + '…');

      var wire = 0; // bytes sent, compressed or not
      var drive;

      function next(offset) {
        if (offset >= file.size) return Promise.resolve();
        var piece = file.slice(offset, offset + CHUNK);
        return gzip(piece).then(function (zipped) {
          var headers = { 'Content-Type': 'application/octet-stream' };
          if (zipped) headers['Content-Encoding'] = 'gzip';
          var body = zipped || piece;
          return send('/ui/drives/' + drive + '/write/' + offset, body, headers, function (loaded, total) {
            // The chunk's share of the file, in the proportion sent.
            progress.sent(offset + piece.size * loaded / total, file.size, wire + loaded);
          }).then(function () {
            wire += body.size;
            progress.sent(offset + piece.size, file.size, wire);
            return next(offset + piece.size);
          });
        });
      }

      send('/ui/drives/new', new URLSearchParams({ name: name, size: size }))
        .then(function (ans) {
          drive = ans.drive;
          return next(0);
        })
        .then(function () {
          progress.say(100, 'Uploaded ' + humanBytes(file.size) + ' into drive ' + name +
            (wire < file.size ? ', sent compressed as ' + humanBytes(wire) : '') + '.');
          flash('ok', 'Uploaded ' + file.name + ' into drive ' + name + '.');
          form.reset();
          return refreshAll();
        })
        .catch(function (e) {
          progress.say(0, 'Upload failed: ' + e.message);
          var at = { name: form.elements.name, size: form.elements.size }[e.field];
          formProblem(form, 'Upload failed: ' + e.message + (drive ? ' (the drive was created; destroy it or upload again)' : ''), at);
        })
        .then(function () { button.disabled = false; });
    });
  }

  // An import sends the form (its file last) in one request, then follows
  // the conversion on the server until the image is ready or has failed.
  function setupImport(form) {
    var progress = progressBox(form);
    var button = form.querySelector('button[type=submit]');

    function follow(job) {
      return new Promise(function (resolve, reject) {
        function poll() {
          fetch('/ui/library/imports/' + job, { credentials: 'same-origin', headers: { 'X-Hearth-Fetch': '1' } })
            .then(function (res) { return res.json(); })
            .then(function (st) {
              if (st.error) { reject(new Error(st.error)); return; }
              if (st.state === 'ready') { resolve(st); return; }
              if (st.state === 'failed') { reject(new Error(st.text)); return; }
              progress.say(st.progress, 'Uploaded; the server is ' + st.text + '…');
              refreshAll();
              setTimeout(poll, 1000);
            })
            .catch(function () { setTimeout(poll, 2000); });
        }
        poll();
      });
    }

    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var file = form.elements.file.files[0];
      if (!file) { formProblem(form, 'Image file: choose an image file first.', form.elements.file); return; }
      if (!form.elements.name.value.trim()) { formProblem(form, 'Name: give the library image a name.', form.elements.name); return; }
      clearProblem(form);
      button.disabled = true;
      progress.start('Uploading ' + file.name + '…');
      send(form.action, new FormData(form), {}, function (loaded, total) {
        // The multipart envelope is a few hundred bytes: scale it away.
        progress.sent(file.size * loaded / total, file.size, Infinity);
      })
        .then(function (ans) {
          progress.say(0, ans.message);
          refreshAll();
          return follow(ans.job);
        })
        .then(function (st) {
          progress.say(100, st.text);
          flash('ok', st.text);
          form.reset();
          return Promise.all([refreshAll(), swapFromPage('[data-library]')]);
        })
        .catch(function (e) {
          progress.say(0, 'Import failed: ' + e.message);
          formProblem(form, 'Import failed: ' + e.message, form.elements[e.field]);
          return refreshAll();
        })
        .then(function () { button.disabled = false; });
    });
  }

  function init() {
    setupFlashes();
    var summary = document.querySelector('[data-error-summary]');
    if (summary && document.activeElement !== summary) summary.focus();
    enhance(document);
    watchConfig();
    startLive();
    document.querySelectorAll('form[data-upload]').forEach(setupUpload);
    document.querySelectorAll('form[data-import]').forEach(setupImport);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
