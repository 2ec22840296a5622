/* Salam loader (hand-written; scripts/build-widget.sh fills in the hashed file names).
 * Draws the launcher at once inside a Shadow DOM, defines window.Salam (calls are queued
 * until the chat has loaded), and loads the WASM chat on first use or when the page is
 * idle, and the proactive triggers module (triggers.js) when the site has triggers. The only markup set with innerHTML is the constant template below: no text from
 * the network or the page ever goes through it. */
(function (w, d) {
  var s = d.currentScript || d.querySelector('script[data-site]');
  if (!s || w.__salam) return;
  w.__salam = 1;
  var site = s.getAttribute('data-site'), loc = s.getAttribute('data-locale') || '';
  var src = s.src, hub = src.slice(0, src.lastIndexOf('/widget.js'));
  var base = hub + '/widget/', old = w.Salam, q = [], hs = {};
  var widget, ready, loading, root, wrap, settings;
  var rtl = /^(ar|fa)/i;
  var CSS = '__CSS__';
  function emit(e, x) {
    (hs[e] || []).slice().forEach(function (f) {
      try { f(x); } catch (err) { setTimeout(function () { throw err; }); }
    });
  }
  var api = {
    on: function (e, f) {
      (hs[e] = hs[e] || []).push(f);
      if (e == 'ready' && ready) f();
      return api;
    }
  };
  'open close toggle send identify setLocale reset'.split(' ').forEach(function (m) {
    api[m] = function () {
      var a = [].slice.call(arguments);
      if (widget) widget[m].apply(widget, a);
      else if (m == 'reset') {
        // Not loaded yet: forget the visitor here and now (a logout often navigates
        // away at once), with what was queued for them; no WASM needs to load for it.
        q = q.filter(function (c) { return !/^(send|identify)$/.test(c[0]); });
        try { localStorage.removeItem('salam:' + site); } catch (e) {}
      } else {
        q.push([m, a]);
        if (m != 'setLocale') load();
      }
      return api;
    };
  });
  // Salam.track(name, data): kept (at most 100) until the trigger module (issue 19)
  // takes over; a site without triggers never sends them anywhere.
  var ev = [];
  api.track = function (n, x) { if (ev.length < 100) ev.push([n, x]); return api; };
  w.Salam = api;
  // Calls made on the page's stub (see widget/README.md) before this script ran.
  ((old && old.q) || []).forEach(function (c) { api[c[0]] && api[c[0]].apply(api, c[1]); });
  if (!site) return console.warn('salam: the script tag has no data-site');

  function lum(h) {
    h = h.length < 5 ? h.replace(/\w/g, '$&$&') : h;
    return [1, 3, 5].reduce(function (a, i, k) {
      var c = parseInt(h.substr(i, 2), 16) / 255;
      c = c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
      return a + c * [0.2126, 0.7152, 0.0722][k];
    }, 0);
  }
  function style() {
    var j = {}, c, l;
    try { j = JSON.parse(settings) || {}; } catch (e) {}
    c = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.test(j.color) ? j.color : '#0f766e';
    l = lum(c) + 0.05;
    wrap.setAttribute('style', '--c:' + c + ';--f:' + (1.05 / l >= l / 0.05 ? '#fff' : '#000'));
    l = (j.position == 'left') != rtl.test(loc || j.locale || navigator.language);
    wrap.className = l ? 'w l' : 'w';
  }
  var got = fetch(hub + '/api/widget/' + encodeURIComponent(site))
    .then(function (r) { return r.ok ? r.text() : null; })
    .catch(function () { return null; })
    .then(function (t) { settings = t; if (wrap && !widget) style(); return t; });

  function load() {
    if (loading || !root) return;
    loading = 1;
    Promise.all([import(base + '__GLUE__'), got]).then(function (r) {
      return r[0].default({ module_or_path: base + '__WASM__' }).then(function () {
        widget = r[0].start(root, hub, site, loc || undefined, r[1] || undefined, emit);
        q.splice(0).forEach(function (c) {
          try { widget[c[0]].apply(widget, c[1]); } catch (e) { console.warn('salam:', c[0], e); }
        });
        ready = 1;
        emit('ready');
      });
    }).catch(function (e) {
      loading = 0;
      console.warn('salam: cannot load the chat', e);
    });
  }

  function mount() {
    var h = d.createElement('salam-chat');
    // Inline !important beats any page rule, even `* { all: unset }`.
    h.setAttribute('style', 'all:initial!important;display:block!important;position:fixed!important;' +
      'bottom:0!important;right:0!important;width:0!important;height:0!important;' +
      'z-index:2147483647!important;visibility:visible!important;opacity:1!important');
    root = h.attachShadow({ mode: 'open' });
    root.innerHTML = '<style>' + CSS + '</style><div class="w"><button type="button" class="L" aria-expanded="false">' +
      '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z"/></svg>' +
      '<span class="B" hidden></span></button></div>';
    wrap = root.firstChild.nextSibling;
    var b = wrap.firstChild;
    b.setAttribute('aria-label', { ar: 'افتح المحادثة', fa: 'باز کردن گفتگو' }[(loc || navigator.language).slice(0, 2)] || 'Open chat');
    b.addEventListener('click', function () { if (!widget) api.open(); });
    style();
    d.body.appendChild(h);
    // Proactive triggers: their module loads only for a site that has some.
    got.then(function (t) {
      var j;
      try { j = JSON.parse(t); } catch (e) {}
      if (j && (j.personal_triggers || (j.triggers || [])[0])) {
        import(base + '__TRIGGERS__').then(function (m) {
          m.default({ j: j, root: root, wrap: wrap, api: api, ev: ev, hub: hub, site: site, loc: loc });
        });
      }
    });
    // The panel was open before a reload in this tab (the chat keeps that in
    // sessionStorage): load at once rather than when idle.
    var was;
    try { was = sessionStorage.getItem('salam:' + site); } catch (e) {}
    if (q.length || was) load();
    else (w.requestIdleCallback || function (f) { setTimeout(f, 2000); })(load, { timeout: 4000 });
  }
  d.body ? mount() : d.addEventListener('DOMContentLoaded', mount);
})(window, document);
