// Hearth dashboard charts: reads a graph's values out under the pointer, or
// with the arrow keys once the graph has focus (it is a slider over the
// graph's time slots). The server renders each graph with its slots' values
// as text (data-values, "|"-separated, empty where there is no sample), the
// first slot's Unix time (data-from) and the seconds per slot (data-step).
(function () {
  'use strict';

  function slots(el) { return el.getAttribute('data-values').split('|'); }

  function timeText(unix, step) {
    var iso = new Date(unix * 1000).toISOString();
    return iso.slice(11, step < 60 ? 19 : 16) + ' UTC';
  }

  // show puts the cursor on the slot nearest unix time t (kept across live
  // refreshes, which shift the slots as time passes).
  function show(el, t) {
    var values = slots(el), n = values.length;
    var from = parseInt(el.getAttribute('data-from'), 10), step = parseInt(el.getAttribute('data-step'), 10);
    var i = Math.max(0, Math.min(n - 1, Math.round((t - from) / step)));
    el.cursorTime = from + i * step;
    var text = timeText(el.cursorTime, step) + ': ' + (values[i] || 'no sample');
    el.setAttribute('aria-valuenow', String(i));
    el.setAttribute('aria-valuetext', text);
    var cursor = el.querySelector('.chart-cursor');
    cursor.hidden = false;
    cursor.style.left = (n > 1 ? i / (n - 1) * 100 : 0) + '%';
    var readout = el.parentNode.querySelector('.chart-readout');
    if (readout) readout.textContent = text;
  }

  function hide(el) {
    el.cursorTime = null;
    el.querySelector('.chart-cursor').hidden = true;
    var readout = el.parentNode.querySelector('.chart-readout');
    if (readout) readout.textContent = '';
  }

  // lastTime is the time of the newest slot with a value (the step in
  // progress has none yet), or of the last slot.
  function lastTime(el) {
    var from = parseInt(el.getAttribute('data-from'), 10), step = parseInt(el.getAttribute('data-step'), 10);
    var values = slots(el), i = values.length - 1;
    while (i > 0 && values[i] === '') i--;
    return from + (values[i] === '' ? values.length - 1 : i) * step;
  }

  function setup(el) {
    if (el.chartReady) {
      if (el.cursorTime != null) show(el, el.cursorTime); // the refresh reset the readout
      return;
    }
    el.chartReady = true;
    el.addEventListener('pointermove', function (ev) {
      var r = el.getBoundingClientRect(), n = slots(el).length;
      var from = parseInt(el.getAttribute('data-from'), 10), step = parseInt(el.getAttribute('data-step'), 10);
      show(el, from + Math.round((ev.clientX - r.left) / r.width * (n - 1)) * step);
    });
    el.addEventListener('pointerleave', function () { if (document.activeElement !== el) hide(el); });
    el.addEventListener('focus', function () { show(el, el.cursorTime != null ? el.cursorTime : lastTime(el)); });
    el.addEventListener('blur', function () { hide(el); });
    el.addEventListener('keydown', function (ev) {
      var step = parseInt(el.getAttribute('data-step'), 10), t = el.cursorTime != null ? el.cursorTime : lastTime(el);
      var moves = { ArrowLeft: -1, ArrowDown: -1, ArrowRight: 1, ArrowUp: 1, PageDown: -30, PageUp: 30 };
      if (ev.key in moves) t += moves[ev.key] * step;
      else if (ev.key === 'Home') t = parseInt(el.getAttribute('data-from'), 10);
      else if (ev.key === 'End') t = lastTime(el);
      else return;
      ev.preventDefault();
      show(el, t);
    });
  }

  function setupAll() { document.querySelectorAll('[data-chart]').forEach(setup); }

  document.addEventListener('hearth:refreshed', setupAll);
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', setupAll);
  else setupAll();
})();
