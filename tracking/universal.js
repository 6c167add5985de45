/* referd universal.js: reads the referral key from the URL, keeps it in a
 * first-party cookie, reports the click, creates customers. Never throws. */
(function (w, d) {
  'use strict';
  function chain() { return chain; }
  function noop() {}
  try {
    var name = w.__partnerObject || 'po', stub = w[name];
    if (stub && stub.referd) return; // loaded twice
    var queue = (stub && stub.q) || [], settings = {}, programs = {}, conf = {}, wait = [], base = '', i, m, last;
    // The API is where this script came from (currentScript can be null).
    var tags = [d.currentScript].concat([].slice.call(d.getElementsByTagName('script')));
    for (i = 0; i < tags.length && !base; i++) {
      m = tags[i] && /^(.*)\/js\/universal\.js(?:[?#]|$)/.exec(tags[i].src || '');
      if (m) base = m[1];
    }
    var api = function () { return settings.api_host || base; };

    var cookie = function (n) {
      var parts = d.cookie ? d.cookie.split(/; */) : [], j, k;
      for (j = 0; j < parts.length; j++) {
        k = parts[j].indexOf('=');
        if (parts[j].slice(0, k) === n) {
          try { return decodeURIComponent(parts[j].slice(k + 1)); } catch (e) { return parts[j].slice(k + 1); }
        }
      }
      return null;
    };
    var setCookie = function (t, key) {
      var days = t.cookie_days > 0 ? t.cookie_days : 3650; // 0 = lifetime: 10 years
      var c = t.cookie_name + '=' + encodeURIComponent(key) +
        '; expires=' + new Date(new Date().getTime() + days * 864e5).toUTCString() +
        '; path=/; SameSite=Lax' + (location.protocol === 'https:' ? '; Secure' : '');
      if (t.cookie_domain) {
        d.cookie = c + '; domain=' + t.cookie_domain;
        if (cookie(t.cookie_name) === key) return;
      }
      // Host-only: no cookie_domain, or the browser refused it (IP, localhost).
      d.cookie = c;
    };

    // ?ref=KEY always (old links outlive a format change); /ref/KEY only for
    // the path format: a site may have pages of its own under /ref/.
    var keyFrom = function (t) {
      var p = String(t.param).replace(/[^\w-]/g, ''), k = null;
      if (t.link_format === 'path') {
        m = new RegExp('/' + p + '/([^/?#]+)').exec(location.pathname);
        if (m) k = m[1];
      }
      if (k === null) {
        m = new RegExp('[?&]' + p + '=([^&#]*)').exec(location.search);
        if (m) k = m[1].replace(/\+/g, ' ');
      }
      if (k === null) return null;
      try { k = decodeURIComponent(k); } catch (e) { return null; }
      return /^[^\s\/?#&%]{1,255}$/.test(k) ? k : null; // what referd accepts as a key
    };

    var send = function (url, body) {
      try { if (navigator.sendBeacon && navigator.sendBeacon(url, body)) return; } catch (e) {}
      try {
        w.fetch(url, { method: 'POST', body: body, keepalive: true, mode: 'cors', credentials: 'omit',
          headers: { 'Content-Type': 'text/plain' } })['catch'](noop);
      } catch (e) {}
    };

    // po('createCustomer', {...}) waits for its program's settings (the cookie's name).
    var signup = function (c, id) {
      var t = conf[id], b = { program: id }, f = ['key', 'email', 'name', 'surname'], j;
      if (!t) return wait.push(c);
      if (!c || t.browser_signups === false) return;
      for (j = 0; j < 4; j++) if (c[f[j]] != null) b[f[j]] = String(c[f[j]]);
      try { b.referral_key = cookie(t.cookie_name) || t.k || void 0; } catch (e) { b.referral_key = t.k || void 0; }
      send(api() + '/track/customer', JSON.stringify(b));
    };

    var track = function (id, t) {
      var key = t.k = keyFrom(t);
      if (key) {
        try {
          if (!(t.attribution === 'first_click' && cookie(t.cookie_name))) setCookie(t, key);
        } catch (e) {} // cookies blocked: the click still counts
        send(api() + '/track/click', JSON.stringify({ program: id, key: key }));
      }
      programs[id] = key ? 'tracked' : 'ready';
      conf[id] = t;
      while (wait.length) signup(wait.shift(), id);
    };

    var load = function (id) {
      if (programs[id]) return;
      programs[id] = 'loading';
      var x = new XMLHttpRequest();
      x.open('GET', api() + '/track/program/' + encodeURIComponent(id));
      x.timeout = 10000;
      x.onload = function () {
        try {
          var t = x.status === 200 && JSON.parse(x.responseText).data;
          if (t) track(id, t); else programs[id] = x.status === 200 ? 'unknown' : 'error';
        } catch (e) { programs[id] = 'error'; }
      };
      x.onerror = x.ontimeout = function () { programs[id] = 'error'; };
      x.send();
    };

    var run = function (a) {
      if (a[0] === 'settings') settings[a[1]] = a[2];
      else if (a[0] === 'program' && a[2] === 'load' && a[1]) load(last = String(a[1]));
      else if (a[0] === 'createCustomer') signup(a[1], last);
    };
    // Returns a function, as the loader's stub does: chained calls do nothing.
    var po = function () {
      try { run(arguments); } catch (e) {}
      return chain;
    };
    po.q = [];
    po.referd = 1;
    po.programs = programs; // state: loading, ready, tracked, unknown, error
    w[name] = po;
    // Settings first: an api_host set after the load still applies to it.
    for (i = 0; i < queue.length; i++) { if (queue[i].a && queue[i].a[0] === 'settings') po.apply(w, queue[i].a); }
    for (i = 0; i < queue.length; i++) { if (queue[i].a && queue[i].a[0] !== 'settings') po.apply(w, queue[i].a); }
  } catch (e) {}
})(window, document);
