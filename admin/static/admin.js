// referd console: copy buttons. Everything else works without JavaScript.
document.addEventListener('click', function (ev) {
  var b = ev.target.closest && ev.target.closest('button[data-copy]');
  if (!b) return;
  var src = document.getElementById(b.getAttribute('data-copy'));
  if (!src) return;
  var text = src.value !== undefined ? src.value : src.textContent;
  var ok = function () { var t = b.textContent; b.textContent = 'Copied'; setTimeout(function () { b.textContent = t; }, 1500); };
  if (navigator.clipboard && navigator.clipboard.writeText) {
    navigator.clipboard.writeText(text).then(ok, function () { src.select && src.select(); });
  } else if (src.select) {
    src.select();
    try { document.execCommand('copy'); ok(); } catch (e) {}
  }
});
