/* Salam proactive triggers (issue 19). The loader imports this module only when the
 * site's settings carry triggers. Every condition is evaluated here, in the page: nothing
 * about the visit leaves it unless a trigger fires, and then only which trigger was shown
 * or opened (POST /api/widget/KEY/trigger with the hub's signed rule). Frequency caps
 * are counted in localStorage (per visitor) and sessionStorage (per tab session) under
 * "salam-t:KEY". The message goes in through textContent only. Wire format and events:
 * docs/protocol.md, "Proactive triggers". */

/* Whether `text` matches `pattern`, where `*` stands for any characters. */
export function glob(pattern, text) {
  return RegExp('^' + pattern.split('*').map(function (p) {
    return p.replace(/[\\^$.+?()[\]{}|]/g, '\\$&');
  }).join('[^]*') + '$').test(text);
}

/* Whether one page condition `w` holds in the page state `c`:
 * {path, href, secs, scroll, exit, returning, lang, ev: {name: 1}}. */
export function holds(w, c) {
  var k = w.kind;
  return k == 'url' ? glob(w.pattern, w.pattern[0] == '/' ? c.path : c.href)
    : k == 'time_on_page' ? c.secs >= w.seconds
    : k == 'scroll' ? c.scroll >= w.percent
    : k == 'exit_intent' ? !!c.exit
    : k == 'visitor' ? c.returning == (w.is == 'returning')
    : k == 'language' ? (c.lang + '-').toLowerCase().indexOf(w.is.toLowerCase() + '-') == 0
    : k == 'event' ? !!c.ev[w.name]
    : false;
}

/* Whether trigger `t` fires now: all its conditions hold and it is under its caps;
 * `n` holds the times shown, {v: {id: n}} for the visitor and {s: ...} for the session. */
export function due(t, c, n) {
  return (!t.per_visitor || (n.v[t.id] || 0) < t.per_visitor) &&
    (!t.per_session || (n.s[t.id] || 0) < t.per_session) &&
    t.when.every(function (w) { return holds(w, c); });
}

/* o: {j: the site settings, root, wrap, api: window.Salam, ev: Salam.track calls made
 * so far, hub, site, loc}. */
export default function (o) {
  var d = document, w = window, site = o.site, K = 'salam-t:' + site, list = o.j.triggers || [];
  var done = {}, bubble;
  function get(s) { try { return JSON.parse(s.getItem(K)) || {}; } catch (e) { return {}; } }
  function put(s, v) { try { s.setItem(K, JSON.stringify(v)); } catch (e) {} }
  function token() {
    try { return JSON.parse(localStorage.getItem('salam:' + site)).token; } catch (e) {}
  }
  function post(path, body) {
    return fetch(o.hub + '/api/widget/' + encodeURIComponent(site) + path,
      { method: 'POST', body: JSON.stringify(body), keepalive: true });
  }
  var L = localStorage, S = sessionStorage, ls = get(L), ss = get(S);
  ls.c = ls.c || {};
  ss.c = ss.c || {};
  // A new tab session counts as a visit; "returning" is any visit after the first.
  if (!ss.v) { ss.v = 1; ls.n = (ls.n || 0) + 1; put(L, ls); put(S, ss); }
  var c = {
    path: location.pathname + location.search, href: location.href, scroll: 0,
    returning: ls.n > 1, lang: navigator.language || '', ev: {}
  };
  function report(e, t, k) {
    var v = token();
    // A first visit: the chat gets the visitor's token once it connects.
    if (!v && (k = (k || 0) + 1) < 20) return setTimeout(report, 1000, e, t, k);
    post('/trigger', {
      event: e, visitor: v,
      trigger: { id: t.id, text: t.text, author: t.author, exp: t.exp, sig: t.sig }
    }).catch(function () {});
  }
  function shut() { if (bubble) bubble.remove(); }
  function fire(t) {
    done[t.id] = 1;
    ls = get(L); ls.c = ls.c || {};
    ls.c[t.id] = (ls.c[t.id] || 0) + 1;
    ss.c[t.id] = (ss.c[t.id] || 0) + 1;
    put(L, ls);
    put(S, ss);
    shut();
    var b = bubble = d.createElement('div'), m = d.createElement('button'), x = d.createElement('button');
    var lang = (o.loc || o.j.locale || c.lang).slice(0, 2);
    b.className = 'tb';
    b.dir = /^(ar|fa)/.test(lang) ? 'rtl' : 'ltr';
    b.setAttribute('role', 'status');
    b.setAttribute('aria-live', 'polite');
    b.setAttribute('data-trigger', t.id);
    m.className = 'tm';
    m.dir = 'auto';
    if (t.name) {
      var n = d.createElement('b');
      n.textContent = t.name;
      m.append(n);
    }
    m.append(t.text);
    x.className = 'tx';
    x.textContent = '\u00d7';
    x.setAttribute('aria-label', { ar: 'إغلاق', fa: 'بستن' }[lang] || 'Close');
    b.append(m, x);
    o.wrap.insertBefore(b, o.wrap.querySelector('.L'));
    report('shown', t);
    m.onclick = function () { shut(); report('opened', t); o.api.open(); };
    x.onclick = shut;
    if (t.open) { report('opened', t); o.api.open(); }
  }
  function tick() {
    var h = d.documentElement, m = h.scrollHeight - w.innerHeight;
    c.secs = performance.now() / 1000;
    // Not over the open panel: a trigger due now fires once it is closed.
    if (o.wrap.querySelector('.L').getAttribute('aria-expanded') == 'true') return;
    // A page too short to scroll is seen whole.
    c.scroll = Math.max(c.scroll, m > 0 ? 100 * w.scrollY / m : 100);
    var n = { v: get(L).c || {}, s: ss.c };
    list.some(function (t) { return !done[t.id] && due(t, c, n) && (fire(t), 1); });
  }
  var root = d.createElement('style');
  root.textContent = '.tb{display:flex;align-items:flex-start;max-width:290px;margin:0 0 12px;' +
    'background:#fff;color:#1f2933;border-radius:14px;box-shadow:0 4px 18px rgba(0,0,0,.25)}' +
    '.tm{flex:1;background:none;border:0;color:inherit;text-align:start;padding:12px;' +
    'padding-inline-end:0;white-space:pre-wrap;overflow-wrap:anywhere}' +
    '.tm b{display:block;font-size:12px}.tx{background:none;border:0;color:#475569;' +
    'font-size:22px;line-height:1;padding:8px 10px}';
  o.root.append(root);
  o.api.on('open', shut);
  o.ev.splice(0).forEach(function (e) { c.ev[e[0]] = 1; });
  o.api.track = function (name) { c.ev[name] = 1; tick(); return o.api; };
  d.addEventListener('mouseout', function (e) {
    if (!e.relatedTarget && e.clientY <= 0) { c.exit = 1; tick(); }
  });
  w.addEventListener('scroll', tick, { passive: true });
  setInterval(tick, 1000);
  // An identified visitor may also have triggers on the customer's attributes, which
  // only the hub evaluates.
  var v = o.j.personal_triggers && token();
  if (v) {
    post('/triggers', { visitor: v }).then(function (r) { return r.json(); })
      .then(function (r) { list = r.triggers || list; tick(); }).catch(function () {});
  }
  tick();
}
