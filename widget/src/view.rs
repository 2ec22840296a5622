//! The DOM and browser glue (compiled for wasm32 only).
//!
//! The loader has already drawn the launcher inside a Shadow DOM; [`start`] takes that
//! shadow root, builds the panel next to the launcher, opens the WebSocket, and returns
//! the [`Widget`] handle behind `window.Salam`. Browser events become [`Msg`]s; the
//! [`State`] answers with [`Effect`]s, performed here.
//!
//! Rules this module keeps:
//! - Every text from the network goes in as a text node or `textContent`; `innerHTML`
//!   is never used. Links are `<a>` elements built from [`text::segments`] (http and
//!   https only) with `rel="noopener noreferrer"`.
//! - Listeners and timers are RAII handles ([`Listener`], [`Timer`]): dropping one
//!   removes it, so rebuilding a form or replacing a socket leaks nothing.
//! - State updates are queued: a `Salam.on` callback that calls back into the widget
//!   while an update runs is handled after it, never re-entrantly.

use crate::i18n::{Key, Locale};
use crate::state::{ApiEvent, Connection, Effect, Form, Msg, SiteSettings, State, Stored};
use crate::text::{self, Segment};
use crate::wire::{Line, Page};
use salam_protocol::{AuthorKind, ConversationState, MessageKind};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{
    AudioContext, Document, Element, Event, EventTarget, HtmlElement, HtmlInputElement,
    HtmlTextAreaElement, KeyboardEvent, MessageEvent, ShadowRoot, WebSocket, Window,
};

/// An event listener that is removed when dropped.
struct Listener {
    target: EventTarget,
    kind: &'static str,
    closure: Closure<dyn FnMut(Event)>,
}

impl Listener {
    fn new(target: &EventTarget, kind: &'static str, handler: impl FnMut(Event) + 'static) -> Listener {
        let closure = Closure::<dyn FnMut(Event)>::new(handler);
        let _ = target.add_event_listener_with_callback(kind, closure.as_ref().unchecked_ref());
        Listener {
            target: target.clone(),
            kind,
            closure,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self
            .target
            .remove_event_listener_with_callback(self.kind, self.closure.as_ref().unchecked_ref());
    }
}

/// A `setTimeout` or `setInterval` that is cleared when dropped.
struct Timer {
    id: i32,
    repeat: bool,
    _closure: Closure<dyn FnMut()>,
}

impl Timer {
    fn new(ms: u32, repeat: bool, callback: impl FnMut() + 'static) -> Option<Timer> {
        let closure = Closure::<dyn FnMut()>::new(callback);
        let window = window();
        let function = closure.as_ref().unchecked_ref();
        let ms = i32::try_from(ms).unwrap_or(i32::MAX);
        let id = if repeat {
            window.set_interval_with_callback_and_timeout_and_arguments_0(function, ms)
        } else {
            window.set_timeout_with_callback_and_timeout_and_arguments_0(function, ms)
        };
        id.ok().map(|id| Timer {
            id,
            repeat,
            _closure: closure,
        })
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        let window = window();
        if self.repeat {
            window.clear_interval_with_handle(self.id);
        } else {
            window.clear_timeout_with_handle(self.id);
        }
    }
}

/// The WebSocket and its listeners; dropping it detaches the listeners and closes it.
struct Socket {
    ws: WebSocket,
    _listeners: [Listener; 3],
}

impl Drop for Socket {
    fn drop(&mut self) {
        let _ = self.ws.close();
    }
}

/// The elements the view updates.
struct Dom {
    document: Document,
    wrap: Element,
    launcher: HtmlElement,
    badge: Element,
    panel: Element,
    logo: Element,
    title: Element,
    status: Element,
    close: Element,
    queue: Element,
    notice: Element,
    notice_text: Element,
    leave: Element,
    scroll: Element,
    greeting: Element,
    log: Element,
    typing: Element,
    replies: Element,
    form: Element,
    talk: Element,
    input: HtmlTextAreaElement,
    send: Element,
}

struct Inner {
    state: State,
    dom: Dom,
    hub: String,
    storage_key: String,
    socket: Option<Socket>,
    reconnect: Option<Timer>,
    tick: Option<Timer>,
    listeners: Vec<Listener>,
    form_listeners: Vec<Listener>,
    reply_listeners: Vec<Listener>,
    /// Keys of the rendered lines (`key`, `pending`), in order.
    rendered: Vec<(String, u8)>,
    rendered_form: Option<(Option<Form>, Locale, bool)>,
    rendered_replies: Option<(u64, Locale)>,
    rendered_locale: Option<Locale>,
    rating: Rc<Cell<u8>>,
    stored: String,
    saved_title: Option<String>,
    audio: Option<AudioContext>,
}

struct App {
    inner: RefCell<Inner>,
    queue: RefCell<VecDeque<Msg>>,
    busy: Cell<bool>,
    emit: js_sys::Function,
    me: Weak<App>,
}

/// The handle behind `window.Salam`.
#[wasm_bindgen]
pub struct Widget {
    app: Rc<App>,
}

#[wasm_bindgen]
impl Widget {
    pub fn open(&self) {
        dispatch(&self.app, Msg::Open);
    }

    pub fn close(&self) {
        dispatch(&self.app, Msg::Close);
    }

    pub fn toggle(&self) {
        dispatch(&self.app, Msg::Toggle);
    }

    /// Sends `text` as the visitor (queued while disconnected).
    pub fn send(&self, text: String) {
        dispatch(
            &self.app,
            Msg::Send {
                text,
                client_id: new_client_id(),
            },
        );
    }

    /// `identify({id, name, email, hash})`: `hash` is the site backend's HMAC of `id`.
    pub fn identify(&self, user: JsValue) {
        let field = |name: &str| {
            js_sys::Reflect::get(&user, &JsValue::from_str(name))
                .ok()
                .and_then(|value| value.as_string())
                .filter(|value| !value.is_empty())
        };
        if let (Some(id), Some(hash)) = (field("id"), field("hash")) {
            dispatch(
                &self.app,
                Msg::Identify {
                    id,
                    name: field("name"),
                    email: field("email"),
                    hash,
                },
            );
        }
    }

    #[wasm_bindgen(js_name = setLocale)]
    pub fn set_locale(&self, locale: String) {
        if let Some(locale) = Locale::parse(&locale) {
            dispatch(&self.app, Msg::SetLocale(locale));
        }
    }
}

/// Starts the widget in the loader's shadow root. `hub` is the hub's base URL,
/// `settings` the JSON of `GET /api/widget/{site}` (or nothing if it failed), `emit`
/// the loader's `(event, data)` function for `Salam.on`.
#[wasm_bindgen]
pub fn start(
    root: ShadowRoot,
    hub: String,
    site: String,
    locale: Option<String>,
    settings: Option<String>,
    emit: js_sys::Function,
) -> Result<Widget, JsValue> {
    let window = window();
    let document = window.document().ok_or("no document")?;
    let settings = settings
        .map(|json| SiteSettings::parse(&json))
        .unwrap_or_default();
    let navigator = window.navigator().language();
    let locale = Locale::choose(
        locale.as_deref(),
        settings.locale.as_deref(),
        navigator.as_deref(),
    );
    let storage_key = format!("salam:{site}");
    let stored_json = storage()
        .and_then(|storage| storage.get_item(&storage_key).ok().flatten())
        .unwrap_or_default();
    let stored = Stored::parse(&stored_json);
    let state = State::new(site, locale, settings, stored);
    let dom = build(&document, &root)?;
    let app = Rc::new_cyclic(|me| App {
        inner: RefCell::new(Inner {
            state,
            dom,
            hub,
            storage_key,
            socket: None,
            reconnect: None,
            tick: None,
            listeners: Vec::new(),
            form_listeners: Vec::new(),
            reply_listeners: Vec::new(),
            rendered: Vec::new(),
            rendered_form: None,
            rendered_replies: None,
            rendered_locale: None,
            rating: Rc::new(Cell::new(0)),
            stored: stored_json,
            saved_title: None,
            audio: None,
        }),
        queue: RefCell::new(VecDeque::new()),
        busy: Cell::new(false),
        emit,
        me: me.clone(),
    });
    attach(&app);
    {
        let mut inner = app.inner.borrow_mut();
        render(&mut inner, &app.me);
        let me = app.me.clone();
        inner.tick = Timer::new(1_000, true, move || {
            if let Some(app) = me.upgrade() {
                dispatch(&app, Msg::Tick { now: now() });
            }
        });
    }
    connect(&app);
    Ok(Widget { app })
}

fn window() -> Window {
    web_sys::window().expect("the widget runs in a window")
}

fn storage() -> Option<web_sys::Storage> {
    // Storage can be disabled (private modes, sandboxed frames): then nothing persists.
    window().local_storage().ok().flatten()
}

fn now() -> i64 {
    js_sys::Date::now() as i64
}

fn new_client_id() -> String {
    let random = (js_sys::Math::random() * 9_007_199_254_740_991.0) as u64;
    format!("w{:x}{random:x}", now())
}

/// Runs `msg` and everything queued behind it: update, render, persist, then effects.
fn dispatch(app: &Rc<App>, msg: Msg) {
    app.queue.borrow_mut().push_back(msg);
    if app.busy.replace(true) {
        return;
    }
    loop {
        let next = app.queue.borrow_mut().pop_front();
        let Some(msg) = next else { break };
        let effects = {
            let mut inner = app.inner.borrow_mut();
            let effects = inner.state.update(msg);
            render(&mut inner, &app.me);
            persist(&mut inner);
            effects
        };
        for effect in effects {
            perform(app, effect);
        }
    }
    app.busy.set(false);
}

fn persist(inner: &mut Inner) {
    let json = inner.state.stored().to_text();
    if json != inner.stored {
        if let Some(storage) = storage() {
            let _ = storage.set_item(&inner.storage_key, &json);
        }
        inner.stored = json;
    }
}

fn perform(app: &Rc<App>, effect: Effect) {
    match effect {
        Effect::Frame(frame) => {
            let inner = app.inner.borrow();
            if let Some(socket) = &inner.socket {
                let _ = socket.ws.send_with_str(&frame.encode());
            }
        }
        Effect::Reconnect { after_ms } => {
            let me = app.me.clone();
            let timer = Timer::new(after_ms, false, move || {
                if let Some(app) = me.upgrade() {
                    connect(&app);
                }
            });
            app.inner.borrow_mut().reconnect = timer;
        }
        Effect::Notify => notify(&mut app.inner.borrow_mut()),
        Effect::Emit(event) => {
            let data = match &event {
                ApiEvent::Message { text, author, name } => {
                    let object = js_sys::Object::new();
                    let author = match author {
                        AuthorKind::Agent => "agent",
                        AuthorKind::Bot => "bot",
                        AuthorKind::Visitor => "visitor",
                        AuthorKind::System => "system",
                    };
                    let set = |key: &str, value: JsValue| {
                        let _ = js_sys::Reflect::set(&object, &key.into(), &value);
                    };
                    set("text", text.into());
                    set("author", author.into());
                    set("name", name.clone().map_or(JsValue::NULL, JsValue::from));
                    object.into()
                }
                ApiEvent::Unread(n) => JsValue::from(*n),
                ApiEvent::Open | ApiEvent::Close => JsValue::UNDEFINED,
            };
            let _ = app
                .emit
                .call2(&JsValue::NULL, &event.name().into(), &data);
        }
        Effect::FocusPanel => {
            let inner = app.inner.borrow();
            let first_field = inner
                .dom
                .form
                .query_selector("input,textarea,button")
                .ok()
                .flatten()
                .and_then(|el| el.dyn_into::<HtmlElement>().ok());
            match first_field {
                Some(field) => {
                    let _ = field.focus();
                }
                None => {
                    let _ = inner.dom.input.focus();
                }
            }
        }
        Effect::FocusLauncher => {
            let _ = app.inner.borrow().dom.launcher.focus();
        }
    }
}

/// Sound and title notice for a message that arrived while the panel is closed.
fn notify(inner: &mut Inner) {
    if inner.state.open {
        return;
    }
    let document = &inner.dom.document;
    let original = inner
        .saved_title
        .get_or_insert_with(|| document.title())
        .clone();
    document.set_title(&format!(
        "({}) {} · {original}",
        inner.state.unread,
        inner.state.locale.text(Key::NewMessage)
    ));
    // Browsers refuse audio before a user gesture; a missing beep is fine.
    if inner.audio.is_none() {
        inner.audio = AudioContext::new().ok();
    }
    if let Some(audio) = &inner.audio {
        let _ = beep(audio);
    }
}

fn beep(audio: &AudioContext) -> Result<(), JsValue> {
    let oscillator = audio.create_oscillator()?;
    let gain = audio.create_gain()?;
    oscillator.frequency().set_value(880.0);
    gain.gain().set_value(0.05);
    oscillator.connect_with_audio_node(&gain)?;
    gain.connect_with_audio_node(&audio.destination())?;
    oscillator.start()?;
    oscillator.stop_with_when(audio.current_time() + 0.15)?;
    Ok(())
}

/// Opens a new socket (dropping the old one and any pending retry).
fn connect(app: &Rc<App>) {
    let url = {
        let mut inner = app.inner.borrow_mut();
        inner.socket = None;
        inner.reconnect = None;
        let base = inner.hub.trim_end_matches('/');
        let ws_base = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            base.to_owned()
        };
        format!(
            "{ws_base}/ws/visitor?site={}",
            String::from(js_sys::encode_uri_component(&inner.state.site))
        )
    };
    let ws = match WebSocket::new(&url) {
        Ok(ws) => ws,
        Err(_) => {
            dispatch(
                app,
                Msg::SocketClosed {
                    random: js_sys::Math::random(),
                },
            );
            return;
        }
    };
    let me = app.me.clone();
    let on_open = Listener::new(&ws, "open", move |_| {
        if let Some(app) = me.upgrade() {
            let document = app.inner.borrow().dom.document.clone();
            let page = Page {
                url: window().location().href().ok(),
                title: Some(document.title()).filter(|t| !t.is_empty()),
                referrer: Some(document.referrer()).filter(|r| !r.is_empty()),
            };
            dispatch(&app, Msg::SocketOpen { page });
        }
    });
    let me = app.me.clone();
    let on_message = Listener::new(&ws, "message", move |event| {
        let Some(app) = me.upgrade() else { return };
        let Some(text) = event
            .dyn_ref::<MessageEvent>()
            .and_then(|event| event.data().as_string())
        else {
            return;
        };
        if let Some(frame) = crate::wire::decode(&text) {
            dispatch(&app, Msg::Frame { frame, now: now() });
        }
    });
    let me = app.me.clone();
    let on_close = Listener::new(&ws, "close", move |_| {
        if let Some(app) = me.upgrade() {
            app.inner.borrow_mut().socket = None;
            dispatch(
                &app,
                Msg::SocketClosed {
                    random: js_sys::Math::random(),
                },
            );
        }
    });
    app.inner.borrow_mut().socket = Some(Socket {
        ws,
        _listeners: [on_open, on_message, on_close],
    });
}

fn el(document: &Document, tag: &str, class: &str) -> Result<Element, JsValue> {
    let element = document.create_element(tag)?;
    if !class.is_empty() {
        element.set_class_name(class);
    }
    Ok(element)
}

fn button(document: &Document, class: &str) -> Result<Element, JsValue> {
    let element = el(document, "button", class)?;
    element.set_attribute("type", "button")?;
    Ok(element)
}

fn show(element: &Element, visible: bool) {
    let _ = if visible {
        element.remove_attribute("hidden")
    } else {
        element.set_attribute("hidden", "")
    };
}

fn set_text(element: &Element, text: &str) {
    if element.text_content().as_deref() != Some(text) {
        element.set_text_content(Some(text));
    }
}

fn append(parent: &Element, children: &[&Element]) -> Result<(), JsValue> {
    for child in children {
        parent.append_child(child)?;
    }
    Ok(())
}

/// Builds the panel next to the loader's launcher.
fn build(document: &Document, root: &ShadowRoot) -> Result<Dom, JsValue> {
    let wrap = root.query_selector(".w")?.ok_or("no launcher wrapper")?;
    let launcher: HtmlElement = root
        .query_selector(".L")?
        .ok_or("no launcher")?
        .dyn_into()?;
    let badge = root.query_selector(".B")?.ok_or("no badge")?;

    let panel = el(document, "div", "P")?;
    panel.set_attribute("role", "dialog")?;
    panel.set_attribute("aria-labelledby", "salam-title")?;
    panel.set_attribute("hidden", "")?;
    let header = el(document, "div", "H")?;
    let logo = el(document, "img", "lg")?;
    logo.set_attribute("alt", "")?;
    logo.set_attribute("hidden", "")?;
    let heading = el(document, "div", "T")?;
    let title = el(document, "h2", "")?;
    title.set_id("salam-title");
    let status = el(document, "span", "st")?;
    status.set_attribute("role", "status")?;
    append(&heading, &[&title, &status])?;
    let close = button(document, "X")?;
    close.set_text_content(Some("×"));
    append(&header, &[&logo, &heading, &close])?;

    let queue = el(document, "div", "Q")?;
    queue.set_attribute("role", "status")?;
    let notice = el(document, "div", "N")?;
    let notice_text = el(document, "span", "")?;
    let leave = button(document, "sb")?;
    append(&notice, &[&notice_text, &leave])?;

    let scroll = el(document, "div", "G")?;
    let greeting = el(document, "div", "m i gr")?;
    let greeting_body = el(document, "div", "b")?;
    greeting_body.set_attribute("dir", "auto")?;
    greeting.append_child(&greeting_body)?;
    let log = el(document, "div", "lg2")?;
    log.set_attribute("role", "log")?;
    log.set_attribute("aria-live", "polite")?;
    append(&scroll, &[&greeting, &log])?;

    let typing = el(document, "div", "Y")?;
    typing.set_attribute("aria-live", "polite")?;
    let replies = el(document, "div", "R")?;
    let form = el(document, "div", "F")?;
    let actions = el(document, "div", "A")?;
    let talk = button(document, "sb")?;
    actions.append_child(&talk)?;
    let compose = el(document, "div", "C")?;
    let input: HtmlTextAreaElement = el(document, "textarea", "")?.dyn_into()?;
    input.set_rows(1);
    let send = button(document, "pb")?;
    append(&compose, &[&input, &send])?;
    append(
        &panel,
        &[
            &header, &queue, &notice, &scroll, &typing, &replies, &form, &actions, &compose,
        ],
    )?;
    wrap.insert_before(&panel, Some(&launcher))?;
    Ok(Dom {
        document: document.clone(),
        wrap,
        launcher,
        badge,
        panel,
        logo,
        title,
        status,
        close,
        queue,
        notice,
        notice_text,
        leave,
        scroll,
        greeting: greeting_body,
        log,
        typing,
        replies,
        form,
        talk,
        input,
        send,
    })
}

/// Wires the permanent controls.
fn attach(app: &Rc<App>) {
    let on = |target: &EventTarget, kind: &'static str, make: fn() -> Option<Msg>| {
        let me = app.me.clone();
        Listener::new(target, kind, move |_| {
            if let (Some(app), Some(msg)) = (me.upgrade(), make()) {
                dispatch(&app, msg);
            }
        })
    };
    let mut listeners = Vec::new();
    {
        let inner = app.inner.borrow();
        let dom = &inner.dom;
        listeners.push(on(&dom.launcher, "click", || Some(Msg::Toggle)));
        listeners.push(on(&dom.close, "click", || Some(Msg::Close)));
        listeners.push(on(&dom.leave, "click", || Some(Msg::ShowContactForm)));
        listeners.push(on(&dom.input, "input", || Some(Msg::Typed { now: now() })));
        let me = app.me.clone();
        listeners.push(Listener::new(&dom.panel, "keydown", move |event| {
            let Some(key) = event.dyn_ref::<KeyboardEvent>() else {
                return;
            };
            if key.key() == "Escape"
                && let Some(app) = me.upgrade()
            {
                event.prevent_default();
                dispatch(&app, Msg::Close);
            }
        }));
        let me = app.me.clone();
        listeners.push(Listener::new(&dom.input, "keydown", move |event| {
            let Some(key) = event.dyn_ref::<KeyboardEvent>() else {
                return;
            };
            if key.key() == "Enter"
                && !key.shift_key()
                && !key.is_composing()
                && let Some(app) = me.upgrade()
            {
                event.prevent_default();
                send_input(&app);
            }
        }));
        let me = app.me.clone();
        listeners.push(Listener::new(&dom.send, "click", move |_| {
            if let Some(app) = me.upgrade() {
                send_input(&app);
            }
        }));
        let me = app.me.clone();
        listeners.push(Listener::new(&dom.talk, "click", move |_| {
            if let Some(app) = me.upgrade() {
                let text = app.inner.borrow().state.locale.text(Key::TalkToPerson);
                dispatch(
                    &app,
                    Msg::Send {
                        text: text.to_owned(),
                        client_id: new_client_id(),
                    },
                );
            }
        }));
    }
    app.inner.borrow_mut().listeners = listeners;
}

fn send_input(app: &Rc<App>) {
    let text = {
        let inner = app.inner.borrow();
        let text = inner.dom.input.value();
        inner.dom.input.set_value("");
        text
    };
    dispatch(
        app,
        Msg::Send {
            text,
            client_id: new_client_id(),
        },
    );
}

/// Brings the DOM in line with the state.
fn render(inner: &mut Inner, me: &Weak<App>) {
    let state = &inner.state;
    let locale = state.locale;
    let t = |key| locale.text(key);
    let dom = &inner.dom;

    let (color, on_color) = text::brand_colors(state.settings.color.as_deref());
    let _ = dom
        .wrap
        .set_attribute("style", &format!("--c:{color};--f:{on_color}"));
    let side = if state.settings.left(locale) { "w l" } else { "w" };
    let open_class = if state.open { " o" } else { "" };
    dom.wrap.set_class_name(&format!("{side}{open_class}"));

    if inner.rendered_locale != Some(locale) {
        let _ = dom.wrap.set_attribute("lang", locale.tag());
        let _ = dom.panel.set_attribute("dir", locale.dir());
        let _ = dom.panel.set_attribute("lang", locale.tag());
        let _ = dom.close.set_attribute("aria-label", t(Key::CloseChat));
        let _ = dom.close.set_attribute("title", t(Key::CloseChat));
        let _ = dom.log.set_attribute("aria-label", t(Key::Messages));
        set_text(&dom.talk, t(Key::TalkToPerson));
        set_text(&dom.leave, t(Key::LeaveMessage));
        set_text(&dom.notice_text, t(Key::Away));
        set_text(&dom.send, t(Key::Send));
        dom.input.set_placeholder(t(Key::Placeholder));
        let _ = dom.input.set_attribute("aria-label", t(Key::Placeholder));
        let title = if state.settings.name.trim().is_empty() {
            t(Key::Title)
        } else {
            state.settings.name.as_str()
        };
        set_text(&dom.title, title);
        match state.settings.logo.as_deref() {
            Some(logo) if logo.starts_with("https://") || logo.starts_with("http://") => {
                let _ = dom.logo.set_attribute("src", logo);
                show(&dom.logo, true);
            }
            _ => show(&dom.logo, false),
        }
        // Times and sender labels are translated: redraw the lines.
        inner.rendered.clear();
        let _ = dom.log.replace_children_with_node_0();
    }

    let launcher_label = if state.open {
        t(Key::CloseChat)
    } else {
        t(Key::OpenChat)
    };
    let _ = dom.launcher.set_attribute("aria-label", launcher_label);
    let _ = dom
        .launcher
        .set_attribute("aria-expanded", if state.open { "true" } else { "false" });
    show(&dom.badge, state.unread > 0);
    set_text(&dom.badge, &state.unread.to_string());
    let _ = dom
        .badge
        .set_attribute("aria-label", &locale.text_n(Key::Unread, state.unread.into()));
    show(&dom.panel, state.open);
    if state.open
        && let Some(title) = inner.saved_title.take()
    {
        dom.document.set_title(&title);
    }

    let (status, status_class) = match state.connection {
        Connection::Connecting => (t(Key::Connecting), "st c"),
        Connection::Online => (t(Key::Online), "st on"),
        Connection::Reconnecting => (t(Key::Reconnecting), "st off"),
        Connection::Refused => (t(Key::Unavailable), "st off"),
    };
    set_text(&dom.status, status);
    dom.status.set_class_name(status_class);

    let closed = state.conversation_state == Some(ConversationState::Closed);
    let queue_text = match state.queue {
        _ if closed => t(Key::ChatEnded).to_owned(),
        Some((position, wait_secs)) => format!(
            "{} · {}",
            locale.text_n(Key::QueuePosition, position.into()),
            locale.text_n(Key::QueueWait, wait_secs.div_ceil(60).max(1))
        ),
        None => String::new(),
    };
    show(&dom.queue, !queue_text.is_empty());
    set_text(&dom.queue, &queue_text);

    let form = state.visible_form();
    show(&dom.notice, !state.settings.agents_online && form.is_none());
    let greeting = state.settings.greeting(locale);
    show(&dom.greeting.parent_element().unwrap_or(dom.greeting.clone()), greeting.is_some());
    set_text(&dom.greeting, greeting.unwrap_or_default());

    let typing = state.typing_name().map(|name| {
        if name.trim().is_empty() {
            t(Key::SomeoneTyping).to_owned()
        } else {
            t(Key::Typing).replace("{name}", name)
        }
    });
    show(&dom.typing, typing.is_some());
    set_text(&dom.typing, typing.as_deref().unwrap_or_default());

    render_lines(inner);
    render_replies(inner, me);
    render_form(inner, me);
    inner.rendered_locale = Some(locale);
}

fn line_key(message: &Line) -> String {
    match &message.client_id {
        Some(client_id) => format!("c:{client_id}"),
        None => format!("s:{}", message.seq),
    }
}

fn render_lines(inner: &mut Inner) {
    let state = &inner.state;
    let wanted: Vec<(String, u8)> = state
        .lines
        .iter()
        .map(|line| (line_key(line), 0))
        .chain(
            state
                .outbox
                .iter()
                .map(|o| (format!("c:{}", o.client_id), if o.failed { 2 } else { 1 })),
        )
        .collect();
    let keep = inner
        .rendered
        .iter()
        .zip(&wanted)
        .take_while(|(a, b)| a == b)
        .count();
    if keep == wanted.len() && keep == inner.rendered.len() {
        return;
    }
    let log = &inner.dom.log;
    while log.child_element_count() as usize > keep {
        if let Some(last) = log.last_element_child() {
            last.remove();
        }
    }
    let document = &inner.dom.document;
    let locale = state.locale;
    for (index, (_, pending)) in wanted.iter().enumerate().skip(keep) {
        let element = match state.lines.get(index) {
            Some(line) => line_element(document, locale, line, 0),
            None => {
                let outgoing = &state.outbox[index - state.lines.len()];
                let line = Line {
                    conversation: String::new(),
                    seq: 0,
                    kind: MessageKind::Text,
                    author: AuthorKind::Visitor,
                    name: None,
                    text: outgoing.text.clone(),
                    at: now(),
                    client_id: Some(outgoing.client_id.clone()),
                    quick_replies: Vec::new(),
                };
                line_element(document, locale, &line, *pending)
            }
        };
        if let Ok(element) = element {
            let _ = log.append_child(&element);
        }
    }
    inner.rendered = wanted;
    let scroll = &inner.dom.scroll;
    scroll.set_scroll_top(scroll.scroll_height());
}

fn clock(at: i64) -> String {
    let date = js_sys::Date::new(&JsValue::from_f64(at as f64));
    format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
}

/// One line of the conversation. `pending`: 0 committed, 1 sending, 2 not sent.
fn line_element(
    document: &Document,
    locale: Locale,
    line: &Line,
    pending: u8,
) -> Result<Element, JsValue> {
    if line.kind == MessageKind::Event || line.author == AuthorKind::System {
        let element = el(document, "div", "e")?;
        element.set_attribute("dir", "auto")?;
        element.set_text_content(Some(&line.text));
        return Ok(element);
    }
    let own = line.author == AuthorKind::Visitor;
    let element = el(document, "div", if own { "m o" } else { "m i" })?;
    if line.seq > 0 {
        element.set_attribute("data-seq", &line.seq.to_string())?;
    }
    let name = match line.author {
        AuthorKind::Bot => line
            .name
            .clone()
            .unwrap_or_else(|| locale.text(Key::Bot).to_owned()),
        AuthorKind::Agent => line
            .name
            .clone()
            .unwrap_or_else(|| locale.text(Key::Agent).to_owned()),
        _ => locale.text(Key::You).to_owned(),
    };
    if !own {
        let who = el(document, "div", "who")?;
        let avatar = el(
            document,
            "span",
            if line.author == AuthorKind::Bot { "av bot" } else { "av" },
        )?;
        avatar.set_attribute("aria-hidden", "true")?;
        avatar.set_text_content(Some(&text::initials(&name)));
        let label = el(document, "span", "n")?;
        label.set_attribute("dir", "auto")?;
        label.set_text_content(Some(&name));
        append(&who, &[&avatar, &label])?;
        element.append_child(&who)?;
    } else {
        let label = el(document, "span", "vh")?;
        label.set_text_content(Some(&name));
        element.append_child(&label)?;
    }
    let body = el(document, "div", "b")?;
    body.set_attribute("dir", "auto")?;
    if own {
        body.set_text_content(Some(&line.text));
    } else {
        for segment in text::segments(&line.text) {
            match segment {
                Segment::Text(plain) => {
                    body.append_child(&document.create_text_node(plain))?;
                }
                Segment::Link(href) => {
                    let link = el(document, "a", "")?;
                    link.set_attribute("href", href)?;
                    link.set_attribute("target", "_blank")?;
                    link.set_attribute("rel", "noopener noreferrer")?;
                    link.set_text_content(Some(href));
                    body.append_child(&link)?;
                }
            }
        }
    }
    let time = el(document, "div", "t")?;
    let stamp = match pending {
        1 => format!("{} · {}", clock(line.at), locale.text(Key::Sending)),
        2 => format!("{} · {}", clock(line.at), locale.text(Key::NotSent)),
        _ => clock(line.at),
    };
    time.set_text_content(Some(&stamp));
    if pending > 0 {
        element.set_class_name(if pending == 1 { "m o p" } else { "m o f" });
    }
    append(&element, &[&body, &time])?;
    Ok(element)
}

fn render_replies(inner: &mut Inner, me: &Weak<App>) {
    let state = &inner.state;
    let replies = state.quick_replies();
    let key = state
        .lines
        .last()
        .filter(|_| !replies.is_empty())
        .map(|line| (line.seq, state.locale));
    if inner.rendered_replies == key {
        return;
    }
    inner.reply_listeners.clear();
    let container = &inner.dom.replies;
    let _ = container.replace_children_with_node_0();
    for reply in replies {
        let Ok(element) = button(&inner.dom.document, "sb") else {
            continue;
        };
        element.set_text_content(Some(&reply.label));
        let _ = element.set_attribute("dir", "auto");
        let payload = reply.payload.clone();
        let me = me.clone();
        inner.reply_listeners.push(Listener::new(&element, "click", move |_| {
            if let Some(app) = me.upgrade() {
                dispatch(
                    &app,
                    Msg::Send {
                        text: payload.clone(),
                        client_id: new_client_id(),
                    },
                );
            }
        }));
        let _ = container.append_child(&element);
    }
    show(container, !replies.is_empty());
    inner.rendered_replies = key;
}

fn input(document: &Document, parent: &Element, label: &str, kind: &str) -> Result<HtmlInputElement, JsValue> {
    let wrapper = el(document, "label", "")?;
    wrapper.set_text_content(Some(label));
    let field: HtmlInputElement = el(document, "input", "")?.dyn_into()?;
    field.set_type(kind);
    wrapper.append_child(&field)?;
    parent.append_child(&wrapper)?;
    Ok(field)
}

fn textarea(document: &Document, parent: &Element, label: &str) -> Result<HtmlTextAreaElement, JsValue> {
    let wrapper = el(document, "label", "")?;
    wrapper.set_text_content(Some(label));
    let field: HtmlTextAreaElement = el(document, "textarea", "")?.dyn_into()?;
    field.set_rows(2);
    wrapper.append_child(&field)?;
    parent.append_child(&wrapper)?;
    Ok(field)
}

fn render_form(inner: &mut Inner, me: &Weak<App>) {
    let form = inner.state.visible_form();
    let key = Some((form, inner.state.locale, inner.state.form_error));
    if inner.rendered_form == key {
        return;
    }
    inner.rendered_form = key;
    inner.form_listeners.clear();
    inner.rating.set(0);
    let container = inner.dom.form.clone();
    let _ = container.replace_children_with_node_0();
    show(&container, form.is_some());
    let Some(form) = form else { return };
    let _ = container.set_attribute("data-form", match form {
        Form::Prechat => "prechat",
        Form::Contact => "contact",
        Form::ContactThanks => "contact-thanks",
        Form::Rating => "rating",
        Form::RatingThanks => "rating-thanks",
    });
    if let Err(err) = build_form(inner, me, &container, form) {
        web_sys::console::warn_1(&err);
    }
}

fn build_form(inner: &mut Inner, me: &Weak<App>, container: &Element, form: Form) -> Result<(), JsValue> {
    let document = inner.dom.document.clone();
    let locale = inner.state.locale;
    let t = |key| locale.text(key);
    let heading = |key| -> Result<(), JsValue> {
        let element = el(&document, "h3", "")?;
        element.set_text_content(Some(t(key)));
        container.append_child(&element)?;
        Ok(())
    };
    let paragraph = |key, class| -> Result<Element, JsValue> {
        let element = el(&document, "p", class)?;
        element.set_text_content(Some(t(key)));
        container.append_child(&element)?;
        Ok(element)
    };
    let row = el(&document, "div", "A")?;
    let primary = button(&document, "pb")?;
    let secondary = button(&document, "sb")?;
    secondary.set_text_content(Some(t(Key::Dismiss)));
    append(&row, &[&primary, &secondary])?;
    let submit: Box<dyn FnMut() -> Option<Msg>> = match form {
        Form::ContactThanks => {
            paragraph(Key::ContactThanks, "ok")?;
            return Ok(());
        }
        Form::RatingThanks => {
            paragraph(Key::RateThanks, "ok")?;
            return Ok(());
        }
        Form::Prechat => {
            heading(Key::PrechatTitle)?;
            paragraph(Key::PrechatIntro, "")?;
            let name = input(&document, container, t(Key::Name), "text")?;
            let email = input(&document, container, t(Key::Email), "email")?;
            primary.set_text_content(Some(t(Key::StartChat)));
            Box::new(move || {
                Some(Msg::SubmitPrechat {
                    name: name.value(),
                    email: email.value(),
                })
            })
        }
        Form::Contact => {
            heading(Key::ContactTitle)?;
            paragraph(Key::ContactIntro, "")?;
            let name = input(&document, container, t(Key::Name), "text")?;
            let email = input(&document, container, t(Key::Email), "email")?;
            let phone = input(&document, container, t(Key::Phone), "tel")?;
            let message = textarea(&document, container, t(Key::Message))?;
            if inner.state.form_error {
                let error = paragraph(Key::NeedEmailOrPhone, "err")?;
                error.set_attribute("role", "alert")?;
            }
            primary.set_text_content(Some(t(Key::Submit)));
            Box::new(move || {
                Some(Msg::SubmitContact {
                    name: name.value(),
                    email: email.value(),
                    phone: phone.value(),
                    message: message.value(),
                })
            })
        }
        Form::Rating => {
            heading(Key::RateTitle)?;
            let stars = el(&document, "div", "S")?;
            stars.set_attribute("role", "group")?;
            stars.set_attribute("aria-label", t(Key::RateTitle))?;
            let mut star_buttons = Vec::new();
            for score in 1..=5u8 {
                let star = button(&document, "")?;
                star.set_text_content(Some("★"));
                star.set_attribute("aria-label", &locale.text_n(Key::RateStar, score.into()))?;
                star.set_attribute("aria-pressed", "false")?;
                star.set_attribute("data-score", &score.to_string())?;
                stars.append_child(&star)?;
                star_buttons.push(star);
            }
            container.append_child(&stars)?;
            let comment = textarea(&document, container, t(Key::Comment))?;
            primary.set_text_content(Some(t(Key::Submit)));
            primary.set_attribute("disabled", "")?;
            for (index, star) in star_buttons.iter().enumerate() {
                let all = star_buttons.clone();
                let rating = inner.rating.clone();
                let primary = primary.clone();
                inner.form_listeners.push(Listener::new(star, "click", move |_| {
                    let score = index + 1;
                    rating.set(score as u8);
                    for (other, element) in all.iter().enumerate() {
                        let pressed = if other < score { "true" } else { "false" };
                        let _ = element.set_attribute("aria-pressed", pressed);
                    }
                    let _ = primary.remove_attribute("disabled");
                }));
            }
            let rating = inner.rating.clone();
            Box::new(move || {
                let score = rating.get();
                (score > 0).then(|| Msg::SubmitRating {
                    score,
                    comment: comment.value(),
                })
            })
        }
    };
    container.append_child(&row)?;
    let mut submit = submit;
    let app = me.clone();
    inner.form_listeners.push(Listener::new(&primary, "click", move |_| {
        if let (Some(app), Some(msg)) = (app.upgrade(), submit()) {
            dispatch(&app, msg);
        }
    }));
    let app = me.clone();
    inner.form_listeners.push(Listener::new(&secondary, "click", move |_| {
        if let Some(app) = app.upgrade() {
            dispatch(&app, Msg::DismissForm);
        }
    }));
    Ok(())
}
