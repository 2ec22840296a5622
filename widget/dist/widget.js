(function (w, d) {
var s = d.currentScript || d.querySelector('script[data-site]');
if (!s || w.__salam) return;
w.__salam = 1;
var site = s.getAttribute('data-site'), loc = s.getAttribute('data-locale') || '';
var src = s.src, hub = src.slice(0, src.lastIndexOf('/widget.js'));
var base = hub + '/widget/', old = w.Salam, q = [], hs = {};
var widget, ready, loading, root, wrap, settings;
var rtl = /^(ar|fa)/i;
var CSS = ':host{all:initial}.w{position:fixed;bottom:20px;right:20px;direction:ltr;z-index:2147483647;display:flex;flex-direction:column;align-items:flex-end;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Tahoma,"Noto Sans Arabic",sans-serif;color:#1f2933;--c:#0f766e;--f:#fff;text-align:start}.w.l{right:auto;left:20px;align-items:flex-start}.w *{box-sizing:border-box}[hidden]{display:none!important}button{font:inherit;cursor:pointer}.L{width:56px;height:56px;border-radius:50%;border:0;background:var(--c);color:var(--f);box-shadow:0 4px 14px rgba(0,0,0,.3);display:flex;align-items:center;justify-content:center;position:relative;padding:0}.L svg{width:28px;height:28px;fill:currentColor}.B{position:absolute;top:-4px;right:-4px;min-width:20px;height:20px;border-radius:10px;background:#b91c1c;color:#fff;font-size:12px;font-weight:700;line-height:20px;padding:0 5px;text-align:center}.P{width:370px;max-width:calc(100vw - 40px);height:560px;max-height:calc(100vh - 110px);max-height:calc(100dvh - 110px);margin-bottom:14px;background:#fff;border-radius:14px;box-shadow:0 10px 34px rgba(0,0,0,.3);display:flex;flex-direction:column;overflow:hidden}.H{background:var(--c);color:var(--f);padding:12px 14px;display:flex;align-items:center;gap:10px}.H img{width:34px;height:34px;border-radius:8px;background:#fff;object-fit:contain}.T{flex:1;min-width:0}.T h2{margin:0;font-size:16px;font-weight:700;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}.st{display:block;font-size:12px}.st:before{content:"";display:inline-block;width:8px;height:8px;border-radius:50%;margin-inline-end:6px;background:#fbbf24;border:1px solid var(--f)}.st.on:before{background:#22c55e}.st.off:before{background:#ef4444}.st.aw:before{background:#94a3b8}.X{background:transparent;border:0;color:inherit;font-size:24px;line-height:1;width:36px;height:36px;border-radius:8px}.Q{background:#fef3c7;color:#713f12;padding:7px 14px;font-size:13px}.N{background:#f1f5f9;color:#1f2933;padding:8px 14px;font-size:13px;display:flex;gap:8px;align-items:center;justify-content:space-between}.G{flex:1;overflow-y:auto;padding:12px;background:#f8fafc}.lg2,.G{display:flex;flex-direction:column;gap:10px}.m{max-width:82%;align-self:flex-start}.m.o{align-self:flex-end}.b{background:#fff;border:1px solid #e2e8f0;border-radius:14px;padding:8px 11px;white-space:pre-wrap;overflow-wrap:anywhere;text-align:start}.m.o .b{background:var(--c);color:var(--f);border-color:transparent}.m.p .b{outline:1px dashed var(--c);outline-offset:2px}.m.f .b{background:#fee2e2;color:#7f1d1d}.b a{color:#1d4ed8;text-decoration:underline}.who{display:flex;align-items:center;gap:6px;font-size:12px;color:#334155;margin-bottom:3px}.av{width:24px;height:24px;border-radius:50%;background:#334155;color:#fff;font-size:10px;font-weight:700;display:inline-flex;align-items:center;justify-content:center;flex:none}.av.bot{background:var(--c);color:var(--f)}.t{font-size:11px;color:#475569;margin-top:3px}.m.o .t{text-align:end}.e{align-self:center;font-size:12px;color:#475569;text-align:center}.Y{padding:2px 14px 6px;font-size:12px;color:#475569;font-style:italic;background:#f8fafc}.R,.A{display:flex;flex-wrap:wrap;gap:6px;padding:8px 12px 0}.R{background:#f8fafc;padding-bottom:8px}.sb{background:#fff;color:#0f172a;border:1px solid #64748b;border-radius:18px;padding:6px 12px;font-size:13px}.pb{background:var(--c);color:var(--f);border:0;border-radius:10px;padding:8px 14px;font-weight:600}.pb[disabled]{opacity:.5;cursor:default}.F{padding:10px 14px;border-top:1px solid #e2e8f0;display:flex;flex-direction:column;gap:6px;max-height:45%;overflow-y:auto;flex:none}.F h3{margin:0;font-size:15px}.F p{margin:0;font-size:13px}.F label{display:flex;flex-direction:column;gap:2px;font-size:12px;color:#334155}.F .A{padding:4px 0 0}.F .err{color:#b91c1c}.F .ok{color:#14532d;font-weight:600}input,textarea{font:inherit;font-size:16px;color:#0f172a;background:#fff;border:1px solid #64748b;border-radius:8px;padding:7px 9px;width:100%}.S{display:flex;gap:4px}.S button{font-size:26px;line-height:1;background:none;border:0;color:#64748b;padding:2px}.S button[aria-pressed=true]{color:#b45309}.C{display:flex;gap:8px;padding:10px 12px;align-items:flex-end}.C textarea{flex:1;resize:none;height:40px;max-height:110px}.vh{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}button:focus-visible,textarea:focus-visible,input:focus-visible,a:focus-visible{outline:3px solid #2563eb;outline-offset:2px}@media (max-width:480px){.P{position:fixed;inset:0;width:100%;max-width:none;height:100vh;height:100dvh;max-height:none;margin:0;border-radius:0}.w.o .L{display:none}}';
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
q = q.filter(function (c) { return !/^(send|identify)$/.test(c[0]); });
try { localStorage.removeItem('salam:' + site); } catch (e) {}
} else {
q.push([m, a]);
if (m != 'setLocale') load();
}
return api;
};
});
var ev = [];
api.track = function (n, x) { if (ev.length < 100) ev.push([n, x]); return api; };
w.Salam = api;
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
Promise.all([import(base + 'salam_widget-07a8a41b958a.js'), got]).then(function (r) {
return r[0].default({ module_or_path: base + 'salam_widget_bg-86c6c1015e56.wasm' }).then(function () {
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
got.then(function (t) {
var j;
try { j = JSON.parse(t); } catch (e) {}
if (j && (j.personal_triggers || (j.triggers || [])[0])) {
import(base + 'triggers-095caba83247.js').then(function (m) {
m.default({ j: j, root: root, wrap: wrap, api: api, ev: ev, hub: hub, site: site, loc: loc });
});
}
});
var was;
try { was = sessionStorage.getItem('salam:' + site); } catch (e) {}
if (q.length || was) load();
else (w.requestIdleCallback || function (f) { setTimeout(f, 2000); })(load, { timeout: 4000 });
}
d.body ? mount() : d.addEventListener('DOMContentLoaded', mount);
})(window, document);
