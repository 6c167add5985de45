/* referd universal.js: reads the referral key from the URL, keeps it in a
 * first-party cookie, reports the click, creates customers, renders the
 * referral widget. Never throws. */
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


    // po('renderReferralWidget', {container, customer_key, token, theme, show_stats})
    // draws the customer's link, share buttons, counts and invite form in a Shadow
    // DOM: the page's CSS does not reach in, the widget's does not leak out.
    var enc = encodeURIComponent, pend = []; // widgets asked for before their program
    var el = function (tag, attrs, text) {
      var e = d.createElement(tag), k;
      for (k in attrs) e.setAttribute(k, attrs[k]);
      if (text != null) e.textContent = text;
      return e;
    };
    var css = ':host{all:initial;display:block!important}*{box-sizing:border-box;font:14px/1.4 system-ui,sans-serif}' +
      '.w{padding:16px;border-radius:8px;border:1px solid var(--b);background:var(--bg);color:var(--fg);max-width:480px}' +
      '.r{display:flex;gap:8px;margin:8px 0;flex-wrap:wrap}input,textarea{flex:1;min-width:0;padding:6px;border:1px solid var(--b);border-radius:4px;background:var(--bg);color:var(--fg)}' +
      'button,a{padding:6px 10px;border-radius:4px;border:0;background:var(--a);color:#fff;text-decoration:none;cursor:pointer}' +
      'button:focus,a:focus,input:focus,textarea:focus{outline:2px solid var(--a);outline-offset:2px}dl{display:flex;gap:16px;margin:8px 0}dt{font-size:12px;opacity:.8}dd{margin:0;font-weight:600}' +
      '.light{--bg:#fff;--fg:#1a1a1a;--b:#ccc;--a:#2457c5}.dark{--bg:#1e1f24;--fg:#f2f2f2;--b:#555;--a:#5b8cff}';
    var draw = function (host, v, o, id) {
      var root = host.shadowRoot || host.attachShadow({ mode: 'open' }), box, row, link, copy, dl, form, note;
      host.style.setProperty('display', 'block', 'important');
      root.textContent = '';
      root.appendChild(el('style', {}, css));
      box = el('div', { 'class': 'w ' + (o.theme === 'dark' ? 'dark' : 'light'), role: 'region', 'aria-label': 'Your referral link' });
      box.appendChild(el('label', { 'for': 'l' }, 'Your referral link'));
      row = el('div', { 'class': 'r' });
      link = el('input', { id: 'l', readonly: '', value: v.referral_link });
      copy = el('button', { type: 'button' }, 'Copy');
      copy.onclick = function () {
        try {
          link.select();
          if (navigator.clipboard) navigator.clipboard.writeText(v.referral_link)['catch'](function () { d.execCommand('copy'); });
          else d.execCommand('copy');
          copy.textContent = 'Copied';
        } catch (e) {}
      };
      row.appendChild(link); row.appendChild(copy); box.appendChild(row);
      row = el('div', { 'class': 'r', role: 'group', 'aria-label': 'Share' });
      for (var k in v.sharing_links) row.appendChild(el('a', { href: v.sharing_links[k], target: '_blank', rel: 'noopener', 'data-share': k }, k.charAt(0).toUpperCase() + k.slice(1)));
      box.appendChild(row);
      if (o.show_stats !== false) {
        dl = el('dl');
        var add = function (t, n) { var g = el('div'); g.appendChild(el('dt', {}, t)); g.appendChild(el('dd', {}, String(n))); dl.appendChild(g); };
        add('Clicks', v.stats.clicks); add('Referrals', v.stats.successful_referrals); add('Pending', v.stats.pending_referrals);
        for (var j = 0; j < v.stats.total_rewards.length; j++) add('Rewards', v.stats.total_rewards[j].amount + ' ' + v.stats.total_rewards[j].amount_units.toUpperCase());
        box.appendChild(dl);
      }
      if (v.invite) {
        form = el('form', { 'aria-label': 'Invite friends by email' });
        form.appendChild(el('label', { 'for': 'e' }, 'Invite friends by email (up to 10, separated by commas)'));
        row = el('div', { 'class': 'r' });
        row.appendChild(el('input', { id: 'e', type: 'text', name: 'emails', autocomplete: 'off' }));
        row.appendChild(el('button', { type: 'submit' }, 'Invite'));
        form.appendChild(row);
        note = el('p', { role: 'status' });
        form.appendChild(note);
        form.onsubmit = function (ev) {
          ev.preventDefault();
          var x = new XMLHttpRequest(), to = form.emails.value.split(/[\s,;]+/).filter(function (s) { return s; });
          x.open('POST', api() + '/widget/invite');
          x.setRequestHeader('Content-Type', 'text/plain');
          x.onload = function () {
            try { note.textContent = x.status === 202 ? 'Invitations sent.' : JSON.parse(x.responseText).message; } catch (e) {}
            if (x.status === 202) form.emails.value = '';
          };
          x.send(JSON.stringify({ program: id, customer_key: o.customer_key, token: o.token, emails: to }));
        };
        box.appendChild(form);
      }
      root.appendChild(box);
    };
    var widget = function (o, id) {
      if (!o || !id) return;
      var host = typeof o.container === 'string' ? d.querySelector(o.container) : o.container;
      if (!host) {
        if (d.readyState === 'loading') d.addEventListener('DOMContentLoaded', function () { try { widget(o, id); } catch (e) {} });
        return;
      }
      if (!host.attachShadow) return;
      var x = new XMLHttpRequest();
      x.open('GET', api() + '/widget/customer?program=' + enc(id) + '&customer_key=' + enc(o.customer_key || '') + '&token=' + enc(o.token || ''));
      x.onload = function () {
        try {
          if (x.status === 200) draw(host, JSON.parse(x.responseText).data, o, id);
          else if (w.console) w.console.warn('referd: the referral widget is not shown (' + x.status + ': check its token)');
        } catch (e) {}
      };
      x.send();
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
      else if (a[0] === 'program' && a[2] === 'load' && a[1]) {
        load(last = String(a[1]));
        while (pend.length) widget(pend.shift(), last);
      }
      else if (a[0] === 'createCustomer') signup(a[1], last);
      else if (a[0] === 'renderReferralWidget') { if (last) widget(a[1], last); else pend.push(a[1]); }
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
