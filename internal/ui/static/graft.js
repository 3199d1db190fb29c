// graft's web view: copy buttons, "/" to jump to a filter, and filters that apply as
// they change. Every page works without it.
(function () {
  'use strict';

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var area = document.createElement('textarea');
      area.value = text;
      area.setAttribute('readonly', '');
      area.className = 'offscreen';
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error('copy refused')); }
    });
  }

  function selectText(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  function flash(button, text) {
    var was = button.dataset.label || button.textContent;
    button.dataset.label = was;
    button.textContent = text;
    window.setTimeout(function () { button.textContent = was; }, 1500);
  }

  document.querySelectorAll('button[data-copy]').forEach(function (b) { b.hidden = false; });

  document.addEventListener('click', function (e) {
    var b = e.target.closest('button[data-copy]');
    if (!b) { return; }
    var el = document.getElementById(b.dataset.copy);
    if (!el) { return; }
    copyText(el.textContent).then(
      function () { flash(b, 'Copied'); },
      function () { selectText(el); flash(b, 'Press Ctrl+C'); });
  });

  document.addEventListener('keydown', function (e) {
    if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey) { return; }
    var active = document.activeElement;
    if (active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) { return; }
    var field = document.querySelector('form[role=search] input');
    if (field) {
      e.preventDefault();
      field.focus();
      field.select();
    }
  });

  // A picture wider than its frame is drawn smaller, down to what stays legible, and
  // beyond that scrolls, starting at its root.
  var minScale = 0.65;
  function fit(frame) {
    var svg = frame.querySelector('svg');
    var w = Number(svg.getAttribute('width')), h = Number(svg.getAttribute('height'));
    var scale = Math.min(1, Math.max(minScale, frame.clientWidth / w));
    svg.style.width = (w * scale) + 'px';
    svg.style.height = (h * scale) + 'px';
    var root = frame.querySelector('.node.root');
    if (root && frame.scrollWidth > frame.clientWidth) {
      var box = root.getBBox();
      frame.scrollLeft = Math.max(0, (box.x + box.width / 2) * scale - frame.clientWidth / 2);
    }
  }
  var frames = document.querySelectorAll('.picture');
  frames.forEach(fit);
  window.addEventListener('resize', function () { frames.forEach(fit); });

  document.querySelectorAll('select[data-autosubmit]').forEach(function (s) {
    s.addEventListener('change', function () { s.form.submit(); });
  });
})();
