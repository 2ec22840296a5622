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
//! - Only `Salam.reset()` removes the site's localStorage entry (the loader does the
//!   same before this module has loaded); every other tab that sees it removed resets
//!   too, but only rewrites it, so that a logout reaches all of a site's tabs once.

use crate::i18n::{Key, Locale};
use crate::state::{ApiEvent, Banner, Effect, Form, Msg, SiteSettings, State, Stored};
use crate::text::{self, Segment};
use crate::wire::{Line, Page};
use salam_protocol::{AuthorKind, MessageKind};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{
    AudioContext, Document, Element, Event, EventTarget, HtmlElement, KeyboardEvent, MessageEvent,
    ShadowRoot, WebSocket, Window,
};

/// What a DOM, socket or timer event means. Every listener and timer is the same
/// closure type carrying one of these: each distinct closure type would cost its own
/// WASM code and JS glue.
#[derive(Debug, Clone)]
enum Action {
    Toggle,
    Close,
    /// The banner's button: "leave a message" or "start a new conversation".
    BannerButton,
    Typed,
    PanelKey,
    InputKey,
    SendInput,
    TalkToPerson,
    QuickReply(String),
    SubmitForm(Form),
    DismissForm,
    Star(u8),
    SocketOpen,
    SocketMessage,
    SocketClosed,
    Tick,
    Reconnect,
    /// localStorage changed in another tab.
    Storage,
}

/// An event listener that is removed when dropped.
struct Listener {
    target: EventTarget,
    kind: &'static str,
    closure: Closure<dyn FnMut(Event)>,
}

impl Listener {
    fn new(target: &EventTarget, kind: &'static str, app: &Weak<App>, action: Action) -> Listener {
        let app = app.clone();
        let closure = Closure::<dyn FnMut(Event)>::new(move |event: Event| {
            if let Some(app) = app.upgrade() {
                on_action(&app, &action, Some(event));
            }
        });
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
    fn new(ms: u32, repeat: bool, app: &Weak<App>, action: Action) -> Option<Timer> {
        let app = app.clone();
        let closure = Closure::<dyn FnMut()>::new(move || {
            if let Some(app) = app.upgrade() {
                on_action(&app, &action, None);
            }
        });
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
    /// The greeting line and its text.
    greeting_line: Element,
    greeting: Element,
    log: Element,
    typing: Element,
    replies: Element,
    form: Element,
    talk: Element,
    /// The compose row, its `<textarea>` and its button.
    compose: Element,
    input: HtmlElement,
    send: Element,
}

/// What takes room at the bottom of the panel: lines drawn, quick replies, form,
/// typing line, banner, panel open.
type Bottom = (
    usize,
    Option<(u64, Locale)>,
    Option<(Option<Form>, Locale, bool)>,
    bool,
    usize,
    bool,
);

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
    /// The score picked in the rating form (0: none yet).
    rating: u8,
    /// What was at the bottom of the panel when it last scrolled there.
    bottom: Option<Bottom>,
    /// The page's own `overflow` on `<html>` while the full-screen panel locks its scroll.
    page_overflow: Option<String>,
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

    /// `identify({token, name, email})`: `token` is the site backend's signed identity
    /// (a JWT, HS256); `name` and `email` beside it are shown as unverified.
    pub fn identify(&self, user: JsValue) {
        let field = |name| prop(&user, name).filter(|value| !value.is_empty());
        if let Some(token) = field("token") {
            dispatch(
                &self.app,
                Msg::Identify {
                    token,
                    name: field("name"),
                    email: field("email"),
                },
            );
        }
    }

    /// `reset()`, for a site's logout: forgets the visitor (their token, conversation,
    /// lines and anything not yet sent, here and in localStorage) and starts over as a
    /// new anonymous visitor on a new connection.
    pub fn reset(&self) {
        // Removed rather than only overwritten: the other tabs of the site see the key
        // go and reset too (see `Action::Storage`).
        if let Some(storage) = storage() {
            let _ = storage.remove_item(&self.app.inner.borrow().storage_key);
        }
        dispatch(&self.app, Msg::Reset);
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
    let mut state = State::new(site, locale, settings, stored);
    // The panel stays open across reloads in this tab.
    state.open = session_get(&storage_key).is_some();
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
            rating: 0,
            bottom: None,
            page_overflow: None,
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
        inner.tick = Timer::new(1_000, true, &app.me, Action::Tick);
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

/// Where this tab remembers that the panel is open (sessionStorage: per tab, gone when
/// the tab closes); the loader reads the same key to load the chat at once.
fn session_get(key: &str) -> Option<String> {
    window()
        .session_storage()
        .ok()
        .flatten()
        .and_then(|storage| storage.get_item(key).ok().flatten())
}

fn session_set(key: &str, open: bool) {
    if let Ok(Some(storage)) = window().session_storage() {
        let _ = if open {
            storage.set_item(key, "1")
        } else {
            storage.remove_item(key)
        };
    }
}

/// A property of a JS object, as a `JsValue`.
fn get(object: &JsValue, name: &str) -> JsValue {
    js_sys::Reflect::get(object, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

/// On a phone the panel covers the screen: the page behind must not scroll. Sets
/// `overflow: hidden` on `<html>` while the panel is open at most 480 px wide, and puts
/// the page's own value back on close (the scroll position is kept by the browser).
fn lock_page(inner: &mut Inner) {
    let window = window();
    let phone = get(&window, "innerWidth")
        .as_f64()
        .is_some_and(|w| w <= 480.0);
    let Some(html) = inner.dom.document.document_element() else {
        return;
    };
    let style = get(&html, "style");
    let lock = inner.state.open && phone;
    if lock && inner.page_overflow.is_none() {
        inner.page_overflow = Some(get(&style, "overflow").as_string().unwrap_or_default());
        set_value_of(&style, "overflow", "hidden");
    } else if !lock && let Some(overflow) = inner.page_overflow.take() {
        set_value_of(&style, "overflow", &overflow);
    }
}

fn now() -> i64 {
    js_sys::Date::now() as i64
}

fn new_client_id() -> String {
    let random = (js_sys::Math::random() * 9_007_199_254_740_991.0) as u64;
    // Decimal, not hex: `{:x}` would add its own formatting code to the WASM.
    format!("w{}-{random}", now() as u64)
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
            let timer = Timer::new(after_ms, false, &app.me, Action::Reconnect);
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
            let _ = app.emit.call2(&JsValue::NULL, &event.name().into(), &data);
        }
        Effect::FocusPanel => {
            let inner = app.inner.borrow();
            let first_field = inner
                .dom
                .form
                .query_selector("input,textarea,button")
                .ok()
                .flatten()
                .map(|el| el.unchecked_into::<HtmlElement>());
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
        Effect::Restart => {
            // A draft typed by the previous visitor is theirs too.
            set_value(&app.inner.borrow().dom.input, "");
            connect(app);
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
    let on_open = Listener::new(&ws, "open", &app.me, Action::SocketOpen);
    let on_message = Listener::new(&ws, "message", &app.me, Action::SocketMessage);
    let on_close = Listener::new(&ws, "close", &app.me, Action::SocketClosed);
    app.inner.borrow_mut().socket = Some(Socket {
        ws,
        _listeners: [on_open, on_message, on_close],
    });
}

fn el(document: &Document, tag: &str, class: &str) -> Result<Element, JsValue> {
    let element = document.create_element(tag)?;
    if !class.is_empty() {
        element.set_attribute("class", class)?;
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
        .unchecked_into();
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
    title.set_attribute("id", "salam-title")?;
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
    // A scrolling region is reachable from the keyboard.
    scroll.set_attribute("tabindex", "0")?;
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
    let input: HtmlElement = el(document, "textarea", "")?.unchecked_into();
    input.set_attribute("rows", "1")?;
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
        greeting_line: greeting,
        greeting: greeting_body,
        log,
        typing,
        replies,
        form,
        talk,
        compose,
        input,
        send,
    })
}

/// Wires the permanent controls.
fn attach(app: &Rc<App>) {
    let listeners = {
        let inner = app.inner.borrow();
        let dom = &inner.dom;
        let me = &app.me;
        vec![
            Listener::new(&dom.launcher, "click", me, Action::Toggle),
            Listener::new(&dom.close, "click", me, Action::Close),
            Listener::new(&dom.leave, "click", me, Action::BannerButton),
            Listener::new(&dom.input, "input", me, Action::Typed),
            Listener::new(&dom.panel, "keydown", me, Action::PanelKey),
            Listener::new(&dom.input, "keydown", me, Action::InputKey),
            Listener::new(&dom.send, "click", me, Action::SendInput),
            Listener::new(&dom.talk, "click", me, Action::TalkToPerson),
            Listener::new(&window(), "storage", me, Action::Storage),
        ]
    };
    app.inner.borrow_mut().listeners = listeners;
}

/// Turns an event into a state message (or acts on the DOM directly).
fn on_action(app: &Rc<App>, action: &Action, event: Option<Event>) {
    // The listener's kind fixes the event's type (keydown: KeyboardEvent, message:
    // MessageEvent), so no `instanceof` check is needed.
    let key = || {
        event
            .as_ref()
            .map(|event| event.unchecked_ref::<KeyboardEvent>().clone())
    };
    let msg = match action {
        Action::Toggle => Msg::Toggle,
        Action::Close => Msg::Close,
        Action::BannerButton => {
            if app.inner.borrow().state.banner() == Banner::Ended {
                Msg::StartNew
            } else {
                Msg::ShowContactForm
            }
        }
        Action::DismissForm => Msg::DismissForm,
        Action::Typed => Msg::Typed { now: now() },
        Action::Tick => Msg::Tick { now: now() },
        Action::PanelKey => match key() {
            Some(key) if key.key() == "Escape" => {
                key.prevent_default();
                Msg::Close
            }
            _ => return,
        },
        Action::InputKey => {
            if let Some(key) = key()
                && key.key() == "Enter"
                && !key.shift_key()
                && !key.is_composing()
            {
                key.prevent_default();
                send_input(app);
            }
            return;
        }
        Action::SendInput => return send_input(app),
        Action::TalkToPerson => Msg::Send {
            text: app
                .inner
                .borrow()
                .state
                .locale
                .text(Key::TalkToPerson)
                .to_owned(),
            client_id: new_client_id(),
        },
        Action::QuickReply(payload) => Msg::Send {
            text: payload.clone(),
            client_id: new_client_id(),
        },
        Action::SubmitForm(form) => match form_msg(app, *form) {
            Some(msg) => msg,
            None => return,
        },
        Action::Star(score) => return set_rating(app, *score),
        Action::SocketOpen => {
            let document = app.inner.borrow().dom.document.clone();
            Msg::SocketOpen {
                page: Page {
                    url: window().location().href().ok(),
                    title: Some(document.title()).filter(|t| !t.is_empty()),
                    referrer: Some(document.referrer()).filter(|r| !r.is_empty()),
                },
            }
        }
        Action::SocketMessage => {
            let frame = event
                .as_ref()
                .and_then(|event| event.unchecked_ref::<MessageEvent>().data().as_string())
                .and_then(|text| crate::wire::decode(&text));
            match frame {
                Some(frame) => Msg::Frame { frame, now: now() },
                None => return,
            }
        }
        Action::SocketClosed => {
            // Dropping the socket detaches this very listener; wasm-bindgen defers
            // freeing a closure that is running.
            app.inner.borrow_mut().socket = None;
            Msg::SocketClosed {
                random: js_sys::Math::random(),
            }
        }
        Action::Reconnect => return connect(app),
        Action::Storage => {
            // Only `Salam.reset()` (here or in the loader) removes the key, so another
            // tab's logout reaches this tab too. The reset here only overwrites the key,
            // so tabs do not set one another off in turn.
            let Some(event) = &event else { return };
            let removed = prop(event, "newValue").is_none()
                && prop(event, "key").as_deref() == Some(&app.inner.borrow().storage_key);
            if !removed {
                return;
            }
            Msg::Reset
        }
    };
    dispatch(app, msg);
}

/// The `value` of an `<input>` or `<textarea>` (read as a property: typed web-sys
/// accessors would each add glue to the download).
fn value(element: &JsValue) -> String {
    prop(element, "value").unwrap_or_default()
}

/// A string property of a JS object (`None` when missing, null or not a string).
fn prop(object: &JsValue, name: &str) -> Option<String> {
    js_sys::Reflect::get(object, &JsValue::from_str(name))
        .ok()
        .and_then(|value| value.as_string())
}

/// The value of the form field named `name`.
fn field(form: &Element, name: &str) -> String {
    match form.query_selector(&format!("[name={name}]")) {
        Ok(Some(element)) => value(&element),
        _ => String::new(),
    }
}

fn form_msg(app: &Rc<App>, form: Form) -> Option<Msg> {
    let inner = app.inner.borrow();
    let container = &inner.dom.form;
    let get = |name| field(container, name);
    match form {
        Form::Prechat => Some(Msg::SubmitPrechat {
            name: get("name"),
            email: get("email"),
        }),
        Form::Contact => Some(Msg::SubmitContact {
            name: get("name"),
            email: get("email"),
            phone: get("phone"),
            message: get("message"),
        }),
        Form::Rating => {
            let score = inner.rating;
            (score > 0).then(|| Msg::SubmitRating {
                score,
                comment: get("comment"),
            })
        }
        Form::ContactThanks | Form::RatingThanks => None,
    }
}

/// A star was pressed: remember the score, mark the stars, enable the submit button.
fn set_rating(app: &Rc<App>, score: u8) {
    let mut inner = app.inner.borrow_mut();
    inner.rating = score;
    let form = &inner.dom.form;
    for star_score in 1..=5u8 {
        if let Ok(Some(star)) = form.query_selector(&format!("[data-score=\"{star_score}\"]")) {
            let pressed = if star_score <= score { "true" } else { "false" };
            let _ = star.set_attribute("aria-pressed", pressed);
        }
    }
    if let Ok(Some(submit)) = form.query_selector(".pb") {
        let _ = submit.remove_attribute("disabled");
    }
}

fn set_value(element: &JsValue, text: &str) {
    set_value_of(element, "value", text);
}

fn set_value_of(object: &JsValue, name: &str, text: &str) {
    let _ = js_sys::Reflect::set(object, &JsValue::from_str(name), &JsValue::from_str(text));
}

fn send_input(app: &Rc<App>) {
    let text = {
        let inner = app.inner.borrow();
        let text = value(&inner.dom.input);
        set_value(&inner.dom.input, "");
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

    // The brand colour and the text colour on it (white or black, whichever meets WCAG
    // AA) are set by the loader, which has the settings before this module loads.
    let side = if state.settings.left(locale) {
        "w l"
    } else {
        "w"
    };
    let open_class = if state.open { " o" } else { "" };
    let _ = dom
        .wrap
        .set_attribute("class", &format!("{side}{open_class}"));

    if inner.rendered_locale != Some(locale) {
        let _ = dom.wrap.set_attribute("lang", locale.tag());
        let _ = dom.panel.set_attribute("dir", locale.dir());
        let _ = dom.panel.set_attribute("lang", locale.tag());
        let _ = dom.close.set_attribute("aria-label", t(Key::CloseChat));
        let _ = dom.close.set_attribute("title", t(Key::CloseChat));
        let _ = dom.log.set_attribute("aria-label", t(Key::Messages));
        set_text(&dom.talk, t(Key::TalkToPerson));
        set_text(&dom.send, t(Key::Send));
        // Not only "Send": the contact form's button says "Send details".
        let _ = dom.send.set_attribute("aria-label", t(Key::SendMessage));
        let _ = dom.input.set_attribute("placeholder", t(Key::Placeholder));
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
        dom.log.replace_children_with_node_0();
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
    set_text(&dom.badge, &locale.digits(&state.unread.to_string()));
    let _ = dom.badge.set_attribute(
        "aria-label",
        &locale.text_n(Key::Unread, state.unread.into()),
    );
    show(&dom.panel, state.open);
    // Nothing unread (the panel was opened, or `Salam.reset()`): the page's own title.
    if state.unread == 0
        && let Some(title) = inner.saved_title.take()
    {
        dom.document.set_title(&title);
    }

    let (status, status_class) = state.status();
    set_text(&dom.status, t(status));
    let _ = dom.status.set_attribute("class", status_class);

    // One state under the header: the queue (with a callback offer), offline, ended,
    // or chat not available on this page.
    let form = state.visible_form();
    let banner = state.banner();
    let queue_text = match banner {
        Banner::Queue {
            position,
            wait_secs,
            ..
        } => format!(
            "{} · {}",
            locale.text_n(Key::QueuePosition, position.into()),
            locale.text_with(
                Key::QueueWait,
                &locale.text_n(Key::Minutes, wait_secs.div_ceil(60).max(1))
            )
        ),
        _ => String::new(),
    };
    show(&dom.queue, !queue_text.is_empty());
    set_text(&dom.queue, &queue_text);
    let (notice, button) = match banner {
        Banner::NotHere => (Some(Key::NotHere), None),
        Banner::Ended => (Some(Key::ChatEnded), Some(Key::StartNew)),
        Banner::Offline if form.is_none() => (Some(Key::Away), Some(Key::LeaveMessage)),
        Banner::Queue { callback: true, .. } if form.is_none() => {
            (Some(Key::CallbackOffer), Some(Key::LeaveMessage))
        }
        _ => (None, None),
    };
    show(&dom.notice, notice.is_some());
    set_text(&dom.notice_text, notice.map(t).unwrap_or_default());
    show(&dom.leave, button.is_some());
    set_text(&dom.leave, button.map(t).unwrap_or_default());

    if let Some(actions) = dom.talk.parent_element() {
        show(&actions, state.show_talk());
    }
    show(&dom.compose, !state.read_only);
    for control in [dom.input.unchecked_ref::<Element>(), &dom.send] {
        let _ = if state.can_write() {
            control.remove_attribute("disabled")
        } else {
            control.set_attribute("disabled", "")
        };
    }

    let greeting = state.settings.greeting(locale);
    // No "how can we help?" where chat is not available.
    show(
        &dom.greeting_line,
        greeting.is_some() && banner != Banner::NotHere,
    );
    set_text(&dom.greeting, greeting.unwrap_or_default());

    let typing = state.typing_name().map(|name| {
        if name.trim().is_empty() {
            t(Key::SomeoneTyping).to_owned()
        } else {
            locale.text_name(Key::Typing, name)
        }
    });
    show(&dom.typing, typing.is_some());
    set_text(&dom.typing, typing.as_deref().unwrap_or_default());

    render_lines(inner);
    render_replies(inner, me);
    render_form(inner, me);
    inner.rendered_locale = Some(locale);
    lock_page(inner);
    session_set(&inner.storage_key, inner.state.open);

    // The newest line stays in view: scroll to the bottom once everything that takes
    // room from the log (quick replies, forms, the typing line, the banner) is drawn,
    // whenever any of it changed.
    let bottom = Some((
        inner.rendered.len(),
        inner.rendered_replies,
        inner.rendered_form,
        inner.state.typing.is_some(),
        queue_text.len(),
        inner.state.open,
    ));
    if inner.bottom != bottom {
        inner.bottom = bottom;
        let scroll = &inner.dom.scroll;
        scroll.set_scroll_top(scroll.scroll_height());
    }
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
                    event: None,
                };
                line_element(document, locale, &line, *pending)
            }
        };
        if let Ok(element) = element {
            let _ = log.append_child(&element);
        }
    }
    inner.rendered = wanted;
}

fn clock(at: i64) -> String {
    let date = js_sys::Date::new(&JsValue::from_f64(at as f64));
    let two = |n: u32| {
        if n < 10 {
            format!("0{n}")
        } else {
            n.to_string()
        }
    };
    format!("{}:{}", two(date.get_hours()), two(date.get_minutes()))
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
        let text = line
            .event
            .as_ref()
            .and_then(|event| locale.event(&event.code, &event.params));
        element.set_text_content(Some(text.as_deref().unwrap_or(&line.text)));
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
            if line.author == AuthorKind::Bot {
                "av bot"
            } else {
                "av"
            },
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
    time.set_text_content(Some(&locale.digits(&stamp)));
    if pending > 0 {
        element.set_attribute("class", if pending == 1 { "m o p" } else { "m o f" })?;
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
    container.replace_children_with_node_0();
    for reply in replies {
        let Ok(element) = button(&inner.dom.document, "sb") else {
            continue;
        };
        element.set_text_content(Some(&reply.label));
        let _ = element.set_attribute("dir", "auto");
        inner.reply_listeners.push(Listener::new(
            &element,
            "click",
            me,
            Action::QuickReply(reply.payload.clone()),
        ));
        let _ = container.append_child(&element);
    }
    show(container, !replies.is_empty());
    inner.rendered_replies = key;
}

/// A labelled `<input>` (or `<textarea>` when `kind` is empty) named `name`.
fn field_element(
    document: &Document,
    parent: &Element,
    label: &str,
    name: &str,
    kind: &str,
) -> Result<(), JsValue> {
    let wrapper = el(document, "label", "")?;
    wrapper.set_text_content(Some(label));
    let field = el(
        document,
        if kind.is_empty() { "textarea" } else { "input" },
        "",
    )?;
    field.set_attribute("name", name)?;
    if kind.is_empty() {
        field.set_attribute("rows", "2")?;
    } else {
        field.set_attribute("type", kind)?;
    }
    wrapper.append_child(&field)?;
    parent.append_child(&wrapper)?;
    Ok(())
}

fn render_form(inner: &mut Inner, me: &Weak<App>) {
    let form = inner.state.visible_form();
    let key = Some((form, inner.state.locale, inner.state.form_error));
    if inner.rendered_form == key {
        return;
    }
    inner.rendered_form = key;
    inner.form_listeners.clear();
    inner.rating = 0;
    let container = inner.dom.form.clone();
    container.replace_children_with_node_0();
    show(&container, form.is_some());
    let Some(form) = form else { return };
    let _ = container.set_attribute(
        "data-form",
        match form {
            Form::Prechat => "prechat",
            Form::Contact => "contact",
            Form::ContactThanks => "contact-thanks",
            Form::Rating => "rating",
            Form::RatingThanks => "rating-thanks",
        },
    );
    // Building only fails if the DOM refuses an element: nothing useful to show then.
    let _ = build_form(inner, me, &container, form);
}

fn build_form(
    inner: &mut Inner,
    me: &Weak<App>,
    container: &Element,
    form: Form,
) -> Result<(), JsValue> {
    let document = inner.dom.document.clone();
    let locale = inner.state.locale;
    let t = |key| locale.text(key);
    let text = |tag, key, class| -> Result<Element, JsValue> {
        let element = el(&document, tag, class)?;
        element.set_text_content(Some(t(key)));
        container.append_child(&element)?;
        Ok(element)
    };
    let field = |label, name, kind| field_element(&document, container, t(label), name, kind);
    let submit = match form {
        Form::ContactThanks => {
            text("p", Key::ContactThanks, "ok")?;
            return Ok(());
        }
        Form::RatingThanks => {
            text("p", Key::RateThanks, "ok")?;
            return Ok(());
        }
        Form::Prechat => {
            text("h3", Key::PrechatTitle, "")?;
            text("p", Key::PrechatIntro, "")?;
            field(Key::Name, "name", "text")?;
            field(Key::Email, "email", "email")?;
            Key::StartChat
        }
        Form::Contact => {
            text("h3", Key::ContactTitle, "")?;
            text("p", Key::ContactIntro, "")?;
            field(Key::Name, "name", "text")?;
            field(Key::Email, "email", "email")?;
            field(Key::Phone, "phone", "tel")?;
            field(Key::Message, "message", "")?;
            if inner.state.form_error {
                text("p", Key::NeedEmailOrPhone, "err")?.set_attribute("role", "alert")?;
            }
            Key::Submit
        }
        Form::Rating => {
            text("h3", Key::RateTitle, "")?;
            let stars = el(&document, "div", "S")?;
            stars.set_attribute("role", "group")?;
            stars.set_attribute("aria-label", t(Key::RateTitle))?;
            for score in 1..=5u8 {
                let star = button(&document, "")?;
                star.set_text_content(Some("★"));
                star.set_attribute("aria-label", &locale.text_n(Key::RateStar, score.into()))?;
                star.set_attribute("aria-pressed", "false")?;
                star.set_attribute("data-score", &score.to_string())?;
                stars.append_child(&star)?;
                inner
                    .form_listeners
                    .push(Listener::new(&star, "click", me, Action::Star(score)));
            }
            container.append_child(&stars)?;
            field(Key::Comment, "comment", "")?;
            Key::Rate
        }
    };
    let row = el(&document, "div", "A")?;
    let primary = button(&document, "pb")?;
    primary.set_text_content(Some(t(submit)));
    if form == Form::Rating {
        primary.set_attribute("disabled", "")?;
    }
    let secondary = button(&document, "sb")?;
    secondary.set_text_content(Some(t(Key::Dismiss)));
    append(&row, &[&primary, &secondary])?;
    container.append_child(&row)?;
    inner.form_listeners.push(Listener::new(
        &primary,
        "click",
        me,
        Action::SubmitForm(form),
    ));
    inner
        .form_listeners
        .push(Listener::new(&secondary, "click", me, Action::DismissForm));
    Ok(())
}
