//! The agent console (`/console`) in a real headless Chromium, driven over WebDriver
//! by fantoccini, against a real hub; visitors are WebSocket test clients.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's `chromium` and
//! `chromium-driver`); without them the tests fail with a message saying so. Every
//! test starts its own chromedriver on a free port and Chromium with a fresh profile.
//! Screenshots of the main screens go to `target/screenshots/console-*.png`. The inbox
//! of issue 15 (names, previews, offers, phone layout, axe-core) is in `inbox.rs`.
//!
//! Tests return `anyhow::Result` and check with `ensure!`, so a failure still closes
//! the browsers (and saves a screenshot of where it stopped).

use anyhow::{Context, Result, bail, ensure};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, Locator};
use salam_e2e::{Client as WsClient, TestHub, http_request};
use salam_protocol::{ConversationState, MessageKind, ServerFrame};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod admin_pages;
// Issue 17: the admin area's API tokens.
mod tokens;
mod triggers;
mod webhooks;

/// How long a test waits for something to show up in the page.
const UI_WAIT: Duration = Duration::from_secs(20);
/// The password `TestHub::add_agent` gives every agent.
const AGENT_PASSWORD: &str = "correct horse battery";
/// A name that would run script if the console ever put it into markup.
const XSS_NAME: &str = "<img src=x onerror=\"window.__xss=1\">";

/// A Chromium session and the chromedriver serving it.
struct Browser {
    client: Client,
    name: &'static str,
    _session: salam_e2e::chromium::Session,
}

impl Browser {
    async fn start(name: &'static str) -> Result<Browser> {
        let (client, session) = salam_e2e::chromium::start("1400,900").await?;
        Ok(Browser {
            client,
            name,
            _session: session,
        })
    }

    async fn close(self) {
        let _ = self.client.clone().close().await;
    }

    /// Runs `body` as a function in the page and returns its value.
    async fn js(&self, body: &str) -> Result<Value> {
        Ok(self.client.execute(body, vec![]).await?)
    }

    /// Polls `body` until it returns a truthy value.
    async fn wait(&self, what: &str, body: &str) -> Result<Value> {
        let started = Instant::now();
        loop {
            let value = self.js(body).await?;
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(text) => !text.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return Ok(value);
            }
            if started.elapsed() > UI_WAIT {
                let _ = self.screenshot("failure").await;
                bail!("{}: timed out waiting for {what}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for an element matching `css` and returns it.
    async fn find(&self, css: &str) -> Result<Element> {
        let query = serde_json::to_string(css)?;
        self.wait(css, &format!("return !!document.querySelector({query});"))
            .await?;
        Ok(self.client.find(Locator::Css(css)).await?)
    }

    /// Clicks the element matching `css`. Live lists re-render under the pointer, so a
    /// click that lands on a replaced (stale) element is retried on the new one.
    async fn click(&self, css: &str) -> Result<()> {
        let mut attempts = 0;
        loop {
            match self.find(css).await?.click().await {
                Ok(()) => return Ok(()),
                Err(err) if attempts < 5 && err.to_string().contains("stale") => attempts += 1,
                Err(err) => return Err(err).context(format!("{}: clicking {css}", self.name)),
            }
        }
    }

    async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let mut attempts = 0;
        loop {
            match self.find(css).await?.send_keys(text).await {
                Ok(()) => return Ok(()),
                Err(err) if attempts < 5 && err.to_string().contains("stale") => attempts += 1,
                Err(err) => return Err(err).context(format!("{}: typing into {css}", self.name)),
            }
        }
    }

    /// Empties an input.
    async fn clear(&self, css: &str) -> Result<()> {
        self.find(css).await?.clear().await?;
        Ok(())
    }

    /// The text of every element matching `css`.
    async fn texts(&self, css: &str) -> Result<Vec<String>> {
        let css = serde_json::to_string(css)?;
        let value = self
            .js(&format!(
                "return [...document.querySelectorAll({css})].map(e => e.textContent);"
            ))
            .await?;
        Ok(serde_json::from_value(value)?)
    }

    /// Sets a `<select>` and fires `change`, as a person picking an option would.
    async fn select(&self, css: &str, value: &str) -> Result<()> {
        let element = self.find(css).await?;
        let css = serde_json::to_string(css)?;
        let value = serde_json::to_string(value)?;
        element
            .click()
            .await
            .context("the select cannot be clicked")?;
        self.js(&format!(
            "const s = document.querySelector({css}); s.value = {value}; \
             s.dispatchEvent(new Event('change', {{bubbles: true}})); return s.value;"
        ))
        .await?;
        Ok(())
    }

    /// Waits until some element matching `css` has text containing `text`.
    async fn wait_text(&self, css: &str, text: &str) -> Result<()> {
        let css_json = serde_json::to_string(css)?;
        let text_json = serde_json::to_string(text)?;
        self.wait(
            &format!("{text:?} in {css}"),
            &format!(
                "return [...document.querySelectorAll({css_json})].some(e => e.textContent.includes({text_json}));"
            ),
        )
        .await?;
        Ok(())
    }

    async fn sign_in(&self, hub: &TestHub, email: &str, password: &str) -> Result<()> {
        self.client.goto(&format!("{}/console", hub.http())).await?;
        // The form is in the page from the start, hidden until `/api/me` says no session.
        self.wait(
            "the sign-in form",
            "return !document.getElementById('login-view').hidden;",
        )
        .await?;
        self.type_into("#login-email", email).await?;
        self.type_into("#login-password", password).await?;
        self.click("#login-submit").await?;
        self.wait(
            "the console after sign-in",
            "return !document.getElementById('app-view').hidden;",
        )
        .await?;
        self.wait(
            "the live connection",
            "return document.getElementById('conn-status').classList.contains('conn-connected');",
        )
        .await?;
        Ok(())
    }

    async fn language(&self, code: &str) -> Result<()> {
        self.select("#lang", code).await?;
        let expected = if code == "en" { "ltr" } else { "rtl" };
        self.wait(
            &format!("dir={expected}"),
            &format!("return document.documentElement.dir === '{expected}';"),
        )
        .await?;
        Ok(())
    }

    /// Saves a PNG of the page under `target/screenshots/` and prints its path.
    async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        // Let the last render and web fonts settle.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let png = self.client.screenshot().await?;
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("console-{name}.png"));
        std::fs::write(&path, png)?;
        println!("screenshot: {}", path.display());
        Ok(path)
    }
}

fn screenshot_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("screenshots")
}

/// A REST call with a bearer token; the parsed body, or an error naming the status.
async fn rest(
    addr: SocketAddr,
    token: &str,
    method: &str,
    path: &str,
    body: Value,
) -> Result<Value> {
    let bearer = format!("Bearer {token}");
    let body_text = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let response = http_request(
        addr,
        method,
        path,
        &[
            ("authorization", &bearer),
            ("content-type", "application/json"),
        ],
        &body_text,
    )
    .await?;
    ensure!(
        (200..300).contains(&response.status),
        "{method} {path}: {} {}",
        response.status,
        response.body
    );
    Ok(serde_json::from_str(&response.body).unwrap_or(Value::Null))
}

/// Polls the hub until `agent_id` has `presence`.
async fn wait_presence(hub: &TestHub, token: &str, agent_id: &str, presence: &str) -> Result<()> {
    let started = Instant::now();
    loop {
        let agents = rest(hub.addr, token, "GET", "/api/agents", Value::Null).await?;
        let found = agents["sites"][&hub.site.id]
            .as_array()
            .into_iter()
            .flatten()
            .any(|agent| agent["id"] == agent_id && agent["presence"] == presence);
        if found {
            return Ok(());
        }
        ensure!(
            started.elapsed() < UI_WAIT,
            "agent {agent_id} never became {presence}: {agents}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Frames until `want`, failing if the visitor got a note or any of the `secrets`.
async fn visitor_until(
    visitor: &mut WsClient,
    secrets: &[&str],
    mut want: impl FnMut(&ServerFrame) -> bool,
) -> Result<(ServerFrame, Vec<ServerFrame>)> {
    let (frame, skipped) = visitor.recv_until(|frame| want(frame)).await?;
    for seen in skipped.iter().chain(std::iter::once(&frame)) {
        if let ServerFrame::Message(message) = seen {
            ensure!(
                message.kind != MessageKind::Note
                    && !secrets.iter().any(|secret| message.text.contains(secret)),
                "the visitor received an internal note: {message:?}"
            );
        }
    }
    Ok((frame, skipped))
}

/// Tests that need two browsers at once take this first. The browser slots are shared
/// by the whole binary (two at most): two such tests each holding one slot and waiting
/// for a second would wait for ever.
static PAIRS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `test` with browsers that are closed whatever happens.
macro_rules! with_browsers {
    ($($browser:ident),+ => $body:block) => {{
        let _pair = if [$(stringify!($browser)),+].len() > 1 { Some(PAIRS.lock().await) } else { None };
        $(let $browser = Browser::start(stringify!($browser)).await?;)+
        let mut result: Result<()> = async { $body }.await;
        if result.is_ok() {
            $(
                let errors = $browser.js("return window.salamErrors || [];").await;
                if let Ok(errors) = errors
                    && errors.as_array().is_some_and(|list| !list.is_empty())
                {
                    result = Err(anyhow::anyhow!("{}: uncaught errors in the console: {errors}", stringify!($browser)));
                }
            )+
        }
        if result.is_err() {
            $(let _ = $browser.screenshot(&format!("failure-{}", stringify!($browser))).await;)+
        }
        $($browser.close().await;)+
        result
    }};
}

/// Issue 6's main flow: an agent signs in and goes away, a visitor asks for a person,
/// the chat shows up live in the queue, the agent takes it, replies with a canned
/// response, writes an internal note the visitor never receives, transfers it to a
/// second agent in another browser, who sees the whole history and closes it; the
/// visitor's rating shows in the reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_takes_replies_notes_transfers_and_the_rating_reaches_reports() -> Result<()> {
    let hub = TestHub::start().await?;
    let admin_token = hub.admin_token().await?;
    let (sara_id, sara_token) = hub.add_agent("Sara", Some(3), &["support"]).await?;
    let (omar_id, _omar_token) = hub.add_agent("Omar", Some(3), &["billing"]).await?;
    rest(
        hub.addr,
        &admin_token,
        "POST",
        "/api/canned",
        json!({"site_id": hub.site.id, "shortcut": "ship", "text": "Your order ships within 2 days."}),
    )
    .await?;
    let note = "VIP customer, second time asking";
    let handover = "Over to billing for the refund";

    with_browsers!(sara, omar => {
        // Sign in, go away so that routing leaves the chat in the queue.
        sara.sign_in(&hub, "sara@shop.test", AGENT_PASSWORD).await?;
        sara.select("#presence", "away").await?;
        wait_presence(&hub, &sara_token, &sara_id, "away").await?;

        // The session survives a reload.
        sara.client.refresh().await?;
        sara.wait("the console after a reload", "return !document.getElementById('app-view').hidden;").await?;
        sara.wait(
            "the live connection after a reload",
            "return document.getElementById('conn-status').classList.contains('conn-connected');",
        )
        .await?;
        ensure!(
            sara.js("return document.getElementById('presence').value;").await? == "away",
            "presence was not kept across the reload"
        );

        // A visitor asks for a person: the chat appears live in the queue.
        let mut visitor = hub.visitor(None).await?;
        visitor
            .send_json(&json!({"type": "send", "client_id": "v-1", "text": "Hello, I want to talk to a person about my order"}))
            .await?;
        let ack = visitor.recv_until(|frame| matches!(frame, ServerFrame::Ack { .. })).await?.0;
        let ServerFrame::Ack { conversation, .. } = ack else { unreachable!() };
        let row = format!("#conversation-list li[data-id='{conversation}'][data-state='queued']");
        sara.find(&row).await?;
        sara.wait_text(&row, "waiting").await?;
        sara.screenshot("inbox").await?;

        // Take it.
        sara.click(&row).await?;
        sara.click("#take-button").await?;
        sara.find("#chat-state[data-state='assigned']").await?;
        sara.wait_text("#messages .msg.author-visitor", "talk to a person").await?;

        // Typing, visitor to agent.
        visitor
            .send_json(&json!({"type": "typing", "conversation": conversation, "typing": true}))
            .await?;
        sara.wait_text("#typing", "is typing").await?;

        // Reply with the canned response: "/" opens the list, Enter picks, Enter sends.
        sara.type_into("#composer", "/shi").await?;
        sara.find("#canned-menu .canned-item").await?;
        sara.type_into("#composer", &Key::Enter.to_string()).await?;
        sara.wait(
            "the canned text in the composer",
            "return document.getElementById('composer').value.includes('ships within 2 days');",
        )
        .await?;
        sara.type_into("#composer", &Key::Enter.to_string()).await?;
        let (reply, before) = visitor_until(&mut visitor, &[note, handover], |frame| {
            matches!(frame, ServerFrame::Message(m) if m.text.contains("ships within 2 days"))
        })
        .await?;
        let ServerFrame::Message(reply) = reply else { unreachable!() };
        ensure!(reply.author.name.as_deref() == Some("Sara"), "reply from {:?}", reply.author);
        // Typing, agent to visitor (sent while the canned response was being picked).
        ensure!(
            before.iter().any(|frame| matches!(frame, ServerFrame::Typing { typing: true, .. })),
            "the visitor never saw the agent typing: {before:?}"
        );
        // A seen receipt from the visitor marks the reply.
        visitor
            .send_json(&json!({"type": "seen", "conversation": conversation, "seq": reply.seq}))
            .await?;
        sara.wait_text(&format!("#messages .msg[data-seq='{}'] .status.seen", reply.seq), "seen").await?;

        // An internal note: shown as a note in the console, never sent to the visitor.
        sara.click("#mode-note").await?;
        sara.type_into("#composer", note).await?;
        sara.type_into("#composer", &Key::Enter.to_string()).await?;
        sara.wait_text("#messages .msg.kind-note", note).await?;
        sara.screenshot("conversation").await?;

        // Omar signs in (online) in another browser; Sara transfers to him with a note.
        omar.sign_in(&hub, "omar@shop.test", AGENT_PASSWORD).await?;
        wait_presence(&hub, &sara_token, &omar_id, "online").await?;
        sara.click("#transfer-button").await?;
        sara.find(&format!("#transfer-agent option[value='{omar_id}']")).await?;
        sara.select("#transfer-agent", &omar_id).await?;
        sara.type_into("#transfer-note", handover).await?;
        sara.click("#transfer-submit").await?;

        // Omar gets it (in his chat strip), sees the whole history, and closes it.
        // A new chat: counted in the title, in the chat strip; Alt+1 opens it.
        let tab = format!(".chat-tab[data-id='{conversation}'].fresh");
        omar.find(&tab).await?;
        omar.wait("the count in the title", "return document.title.startsWith('(1)');").await?;
        omar.type_into("#search", &format!("{}1", Key::Alt)).await?;
        omar.find(&format!(".chat-tab[data-id='{conversation}'].active")).await?;
        omar.wait_text("#messages .msg.author-visitor", "talk to a person").await?;
        omar.wait_text("#messages .msg.author-agent", "ships within 2 days").await?;
        omar.wait_text("#messages .msg.kind-note", note).await?;
        omar.wait_text("#messages .msg.kind-note", handover).await?;
        omar.find("#chat-state[data-state='assigned']").await?;
        omar.wait("the title without a count", "return !document.title.startsWith('(');").await?;
        omar.screenshot("conversation-transferred").await?;
        omar.click("#close-button").await?;
        omar.find("#chat-state[data-state='closed']").await?;

        // The visitor saw the reply and the close, never a note; then rates the chat.
        visitor_until(&mut visitor, &[note, handover], |frame| {
            matches!(frame, ServerFrame::State { state: ConversationState::Closed, .. })
        })
        .await?;
        visitor
            .send_json(&json!({"type": "rate", "conversation": conversation, "score": 4}))
            .await?;

        // The closed tab lists it.
        omar.click("#inbox-tabs button[data-tab='closed']").await?;
        omar.find(&format!("#conversation-list li[data-id='{conversation}'][data-state='closed']"))
            .await?;

        // The score shows in the reports.
        omar.click("#nav button[data-view='reports']").await?;
        let started = Instant::now();
        loop {
            omar.click("#report-load").await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let average = omar
                .js("const e = document.getElementById('r-satisfaction-average'); return e ? e.textContent : '';")
                .await?;
            if average.as_str().is_some_and(|text| text.starts_with('4')) {
                break;
            }
            ensure!(started.elapsed() < UI_WAIT, "the rating never showed in the reports: {average}");
        }
        omar.find("#r-distribution rect[data-score='4'][data-count='1']").await?;
        omar.screenshot("reports").await?;
        Ok(())
    })
}

/// An admin creates a site and copies its snippet; a visitor whose name is markup is
/// shown as text and the markup never runs; the console works in Arabic, right to left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_creates_a_site_and_visitor_markup_stays_text() -> Result<()> {
    let hub = TestHub::start().await?;
    with_browsers!(admin => {
        admin.sign_in(&hub, &hub.admin_email, &hub.admin_password).await?;

        // A visitor identifies with a name that is markup, then writes.
        let mut visitor = hub.visitor(None).await?;
        let token = salam_hub::identity::sign(
            &hub.site.identity_secret,
            &json!({"sub": "u1", "name": XSS_NAME, "email": "u1@shop.test", "exp": salam_hub::clock::now_ms() / 1000 + 600}),
        );
        visitor
            .send_json(&json!({"type": "identify", "token": token}))
            .await?;
        visitor
            .send_json(&json!({"type": "send", "client_id": "x-1", "text": "مرحبا، أين طلبي؟"}))
            .await?;
        visitor.recv_until(|frame| matches!(frame, ServerFrame::Ack { .. })).await?;

        // Admins see every open conversation.
        admin.click("#inbox-tabs button[data-tab='open']").await?;
        let row = "#conversation-list li.item";
        admin.find(row).await?;
        admin.click(row).await?;
        admin.wait_text("#details .visitor-name", XSS_NAME).await?;
        admin.wait_text("#messages .msg.author-visitor", "أين طلبي").await?;
        admin.wait_text("#chat-visitor-name", XSS_NAME).await?;
        let injected = admin
            .js("return [window.__xss === undefined, document.querySelectorAll('img[src=\"x\"]').length];")
            .await?;
        ensure!(injected == json!([true, 0]), "the visitor's name became markup: {injected}");
        let message_dir = admin.js("return document.querySelector('#messages .msg .text').getAttribute('dir');").await?;
        ensure!(message_dir == "auto", "messages need dir=auto, got {message_dir}");

        // Search by e-mail finds the conversation; a miss finds nothing.
        admin.type_into("#search", "u1@shop").await?;
        admin.wait_text("#conversation-list li.item .item-name", XSS_NAME).await?;
        admin.type_into("#search", "zzz-nobody").await?;
        admin.find("#conversation-list li.empty").await?;
        admin.js("const s = document.getElementById('search'); s.value = ''; s.dispatchEvent(new Event('input')); return true;").await?;
        admin.find("#conversation-list li.item").await?;

        // Arabic: the whole layout turns right to left.
        admin.language("ar").await?;
        admin.wait_text("#nav", "الوارد").await?;
        admin.screenshot("conversation-ar").await?;
        admin.click("#inbox-tabs button[data-tab='queue']").await?;
        admin.screenshot("inbox-ar").await?;
        admin.language("en").await?;

        // The admin area: a new site and its snippet, copied with the button.
        admin.click("#nav button[data-view='admin']").await?;
        // Departments, agents and canned responses through the admin forms (departments
        // and canned responses belong to the site chosen above their list).
        admin.click("#admin-tab-departments").await?;
        admin.find("#departments-site").await?;
        admin.select("#departments-site", &hub.site.id).await?;
        admin.find(&format!("#departments-list[data-site='{}']", hub.site.id)).await?;
        admin.type_into("#new-department", "billing").await?;
        admin.type_into("#new-department", &Key::Enter.to_string()).await?;
        admin.wait_text("#departments-list", "billing").await?;
        admin.click("#admin-tab-agents").await?;
        admin.type_into("#new-agent-email", "lina@shop.test").await?;
        admin.type_into("#new-agent-name", "Lina").await?;
        admin.type_into("#new-agent-departments", "billing").await?;
        admin.type_into("#new-agent-capacity", "4").await?;
        admin.click("#agents-form button[type='submit']").await?;
        admin.wait_text("#new-agent-result", "lina@shop.test").await?;
        admin.wait_text("#agents-table", "lina@shop.test").await?;
        admin.click("#admin-tab-canned").await?;
        admin.find(&format!("#canned-table[data-site='{}']", hub.site.id)).await?;
        admin.type_into("#new-canned-shortcut", "hello").await?;
        admin.type_into("#new-canned-text", "Hello! How can I help?").await?;
        admin.click("#new-canned-submit").await?;
        admin.wait_text("#canned-table", "/hello").await?;
        let admin_token = hub.admin_token().await?;
        let agents = rest(hub.addr, &admin_token, "GET", "/api/admin/agents", Value::Null).await?;
        ensure!(
            agents["agents"].as_array().is_some_and(|all| all.iter().any(|a| {
                a["email"] == "lina@shop.test" && a["capacity"] == 4 && a["departments"] == json!(["billing"])
            })),
            "the new agent is not stored as entered: {agents}"
        );

        admin.click("#admin-tab-sites").await?;
        admin.type_into("#new-site-name", "Second Shop").await?;
        admin.type_into("#new-site-origins", "https://second.example").await?;
        admin.click("#new-site-submit").await?;
        let snippet_element = admin.find("#new-site-result .snippet").await?;
        let snippet = snippet_element.text().await?;
        ensure!(
            snippet.contains("/widget.js") && snippet.contains("data-site=\"pk_"),
            "unexpected snippet: {snippet}"
        );
        admin.click("#new-site-result .copy-button").await?;
        admin
            .wait("the copy button to answer", "return document.querySelector('#new-site-result .copy-button').dataset.copied;")
            .await?;
        let sites = rest(hub.addr, &hub.admin_token().await?, "GET", "/api/sites", Value::Null).await?;
        ensure!(
            sites["sites"].as_array().is_some_and(|all| all.iter().any(|s| s["name"] == "Second Shop" && snippet.contains(s["key"].as_str().unwrap_or("?")))),
            "the new site is not stored with the snippet's key: {sites}"
        );
        admin.screenshot("admin").await?;

        // Site settings: turn the pre-chat form on and save.
        let card = format!("#admin-body .site[data-id='{}']", hub.site.id);
        admin.click(&format!("{card} .site-prechat")).await?;
        admin.click(&format!("{card} .site-save")).await?;
        admin.wait_text("#toast", "Saved").await?;
        let sites = rest(hub.addr, &admin_token, "GET", "/api/sites", Value::Null).await?;
        ensure!(
            sites["sites"].as_array().is_some_and(|all| all.iter().any(|s| {
                s["id"] == hub.site.id.as_str() && s["settings"]["prechat"] == true
            })),
            "the pre-chat setting was not saved: {sites}"
        );

        // Bot rules: the try box shows a decision.
        admin.click("#admin-tab-rules").await?;
        admin.type_into("#try-text", "I want to talk to a person").await?;
        admin.click("#try-submit").await?;
        admin.wait_text("#try-result", "handoff").await?;

        admin.language("ar").await?;
        admin.click("#admin-tab-sites").await?;
        admin.find("#admin-body .site").await?;
        admin.screenshot("admin-ar").await?;
        admin.click("#nav button[data-view='reports']").await?;
        admin.find("#report #r-conversations").await?;
        admin.screenshot("reports-ar").await?;
        admin.click("#nav button[data-view='live']").await?;
        admin.find("#live-agents tbody tr").await?;
        admin.screenshot("live-ar").await?;
        Ok(())
    })
}

/// The console is served with a strict Content-Security-Policy, and cookie writes
/// without the CSRF header are refused.
#[tokio::test]
async fn console_pages_carry_a_strict_csp() -> Result<()> {
    let hub = TestHub::start().await?;
    for path in ["/console", "/console/app.js", "/console/console.css"] {
        let response = http_request(hub.addr, "GET", path, &[], "").await?;
        ensure!(response.status == 200, "{path}: {}", response.status);
        let csp = response
            .header("content-security-policy")
            .unwrap_or_default();
        ensure!(
            csp.contains("script-src 'self'")
                && !csp.contains("unsafe-inline")
                && csp.contains("frame-ancestors 'none'"),
            "{path}: weak CSP {csp:?}"
        );
    }
    let page = http_request(hub.addr, "GET", "/console", &[], "")
        .await?
        .body;
    ensure!(
        !page.contains("style=\""),
        "inline style attribute in index.html"
    );
    ensure!(
        !page.contains("<script>") && !page.contains("<style"),
        "inline script or style in index.html"
    );
    Ok(())
}

/// The origin the second site of the per-site tests allows.
const OTHER_ORIGIN: &str = "http://other.test";

/// A second site, bot off like the test site, with routing and the consoles told.
async fn other_site(hub: &TestHub) -> Result<salam_store::Site> {
    let created = hub
        .create_site("Other Shop", &[OTHER_ORIGIN.to_owned()])
        .await?;
    hub.state
        .store
        .update_site_settings(&created.id, r#"{"bot": false}"#)
        .await?;
    let site = hub
        .state
        .store
        .site_by_id(&created.id)
        .await?
        .context("the second site")?;
    salam_hub::admin::announce_site(&hub.state, &site).await?;
    Ok(site)
}

/// A new visitor of `site` says `text`; returns the visitor and the conversation.
async fn visitor_of(
    hub: &TestHub,
    site: &salam_store::Site,
    origin: &str,
    text: &str,
) -> Result<(WsClient, String)> {
    let mut visitor = WsClient::connect_visitor(hub.addr, Some(origin)).await?;
    visitor
        .send_json(&json!({"type": "hello", "v": 1, "site": site.key}))
        .await?;
    visitor
        .recv_until(|frame| matches!(frame, ServerFrame::Welcome { .. }))
        .await?;
    visitor
        .send_json(&json!({"type": "send", "client_id": "o-1", "text": text}))
        .await?;
    let (ack, _) = visitor
        .recv_until(|frame| matches!(frame, ServerFrame::Ack { .. }))
        .await?;
    let ServerFrame::Ack { conversation, .. } = ack else {
        unreachable!("only an ack is awaited")
    };
    Ok((visitor, conversation))
}

/// Issue 12: canned responses and departments belong to a site. The admin adds them
/// per site (a site chooser above each list); the reply box offers only the canned
/// responses of the conversation's site, and the transfer form only its departments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canned_responses_and_departments_are_those_of_the_conversations_site() -> Result<()> {
    let hub = TestHub::start().await?;
    let other = other_site(&hub).await?;
    let admin_token = hub.admin_token().await?;
    // Routing takes a transfer to a department only while an agent of the site serves it.
    rest(
        hub.addr,
        &admin_token,
        "POST",
        "/api/admin/agents",
        json!({"email": "bilal@shop.test", "name": "Bilal", "departments": ["billing"], "site_ids": [hub.site.id]}),
    )
    .await?;
    rest(
        hub.addr,
        &admin_token,
        "POST",
        "/api/canned",
        json!({"site_id": hub.site.id, "shortcut": "hello", "text": "Hello from Test Shop"}),
    )
    .await?;
    let (_shop_visitor, shop_chat) = hub.visitor_says("I need help with my order").await?;
    let (_other_visitor, other_chat) =
        visitor_of(&hub, &other, OTHER_ORIGIN, "Help at the other shop").await?;

    with_browsers!(admin => {
        admin.sign_in(&hub, &hub.admin_email, &hub.admin_password).await?;

        // The other site's canned response, through the admin form for that site.
        admin.click("#nav button[data-view='admin']").await?;
        admin.click("#admin-tab-canned").await?;
        admin.find("#canned-site").await?;
        admin.select("#canned-site", &other.id).await?;
        admin.find(&format!("#canned-table[data-site='{}']", other.id)).await?;
        ensure!(
            !admin.texts("#canned-table").await?.concat().contains("Test Shop"),
            "the other site lists the test site's canned response"
        );
        admin.type_into("#new-canned-shortcut", "hello").await?;
        admin.type_into("#new-canned-text", "Hello from Other Shop").await?;
        admin.click("#new-canned-submit").await?;
        admin.wait_text("#canned-table", "Hello from Other Shop").await?;
        admin.select("#canned-site", &hub.site.id).await?;
        admin.find(&format!("#canned-table[data-site='{}']", hub.site.id)).await?;
        admin.wait_text("#canned-table", "Hello from Test Shop").await?;
        ensure!(
            !admin.texts("#canned-table").await?.concat().contains("Other Shop"),
            "the test site lists the other site's canned response"
        );

        // A department of the test site only (the chooser keeps the site chosen).
        admin.click("#admin-tab-departments").await?;
        admin.find(&format!("#departments-list[data-site='{}']", hub.site.id)).await?;
        admin.type_into("#new-department", "billing").await?;
        admin.type_into("#new-department", &Key::Enter.to_string()).await?;
        admin.wait_text("#departments-list", "billing").await?;
        let of_other = rest(hub.addr, &admin_token, "GET", &format!("/api/departments?site={}", other.id), Value::Null).await?;
        ensure!(of_other["departments"] == json!([]), "the other site got the department: {of_other}");
        admin.screenshot("admin-departments").await?;

        // In each conversation, "/hel" offers that site's canned response only.
        admin.click("#nav button[data-view='inbox']").await?;
        admin.click("#inbox-tabs button[data-tab='open']").await?;
        for (chat, own, foreign) in [(&shop_chat, "Test Shop", "Other Shop"), (&other_chat, "Other Shop", "Test Shop")] {
            admin.click(&format!("#conversation-list li[data-id='{chat}']")).await?;
            admin.find(&format!("#messages[data-conversation='{chat}']")).await?;
            admin.clear("#composer").await?;
            admin.type_into("#composer", "/hel").await?;
            admin.wait_text("#canned-menu .canned-item", &format!("Hello from {own}")).await?;
            let offered = admin.texts("#canned-menu .canned-item").await?;
            ensure!(
                offered.len() == 1 && !offered[0].contains(foreign),
                "the reply box of a {own} conversation offers {offered:?}"
            );
            admin.type_into("#composer", &Key::Escape.to_string()).await?;
            admin.clear("#composer").await?;
        }

        // The other site has no departments to transfer to ...
        admin.click("#transfer-button").await?;
        admin.find("#transfer-no-departments").await?;
        let choices = admin.texts("#transfer-department option").await?;
        ensure!(choices.len() == 1, "the other site's transfer offers departments: {choices:?}");
        admin.click("#transfer-button").await?;

        // ... the test site has billing, and the transfer goes there.
        admin.click(&format!("#conversation-list li[data-id='{shop_chat}']")).await?;
        admin.find(&format!("#messages[data-conversation='{shop_chat}']")).await?;
        admin.click("#transfer-button").await?;
        admin.find("#transfer-department option[value='billing']:not([disabled])").await?;
        admin.select("#transfer-department", "billing").await?;
        admin.click("#transfer-submit").await?;
        hub.wait_for(&shop_chat, |conversation| conversation.department == "billing")
            .await?;
        Ok(())
    })
}

/// Issue 12, identity v2: the site's identity secret is masked until shown, and
/// rotating it (after a confirmation) shows the new one and until when the previous
/// one still works. A visitor identified with a token signed by the new secret shows
/// the signed name as verified, the e-mail typed beside the token as unverified, and
/// the signed attributes. A setting the hub refuses shows its message by the form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_rotates_the_identity_secret_and_signed_details_are_marked_verified() -> Result<()> {
    let hub = TestHub::start().await?;
    let admin_token = hub.admin_token().await?;
    let old_secret = hub.site.identity_secret.clone();
    with_browsers!(admin => {
        admin.sign_in(&hub, &hub.admin_email, &hub.admin_password).await?;
        admin.click("#nav button[data-view='admin']").await?;
        admin.click("#admin-tab-sites").await?;
        let card = format!("#admin-body .site[data-id='{}']", hub.site.id);
        let secret = format!("{card} .identity-secret code.secret");
        let masked = admin.find(&secret).await?.text().await?;
        ensure!(!masked.contains(&old_secret), "the secret is shown before asking: {masked}");
        admin.click(&format!("{card} .secret-toggle")).await?;
        admin.wait_text(&secret, &old_secret).await?;

        // Rotate: a confirmation first, then the new secret and the old one's grace.
        admin.click(&format!("{card} .secret-rotate")).await?;
        admin.click(&format!("{card} .identity-secret .confirm-yes")).await?;
        admin.find(&format!("{card} .secret-grace")).await?;
        let secret_json = serde_json::to_string(&secret)?;
        let old_json = serde_json::to_string(&old_secret)?;
        let new_secret = admin
            .wait(
                "the new secret",
                &format!(
                    "const e = document.querySelector({secret_json}); \
                     return e && e.dataset.revealed === 'yes' && e.textContent !== {old_json} ? e.textContent : null;"
                ),
            )
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let sites = rest(hub.addr, &admin_token, "GET", "/api/sites", Value::Null).await?;
        let stored = sites["sites"]
            .as_array()
            .and_then(|all| all.iter().find(|site| site["id"] == hub.site.id.as_str()))
            .cloned()
            .unwrap_or_default();
        ensure!(
            stored["identity_secret"] == new_secret.as_str() && new_secret != old_secret,
            "the page shows {new_secret:?}, the hub has {stored}"
        );
        ensure!(!stored["previous_secret_valid_until"].is_null(), "no grace for the old secret: {stored}");
        admin.screenshot("admin-identity").await?;

        // A logo that is not https:// is refused, with the hub's message by the form.
        let logo = format!("{card} .site-logo");
        admin.type_into(&logo, "http://insecure.example/logo.png").await?;
        admin.click(&format!("{card} .site-save")).await?;
        admin.wait_text(&format!("{card} .site-error"), "https://").await?;
        admin.clear(&logo).await?;
        admin.type_into(&logo, "https://shop.test/logo.png").await?;
        admin.click(&format!("{card} .site-save")).await?;
        admin.wait_text("#toast", "Saved").await?;
        ensure!(
            admin.texts(&format!("{card} .site-error")).await?.concat().is_empty(),
            "the error stayed after a good save"
        );

        // A visitor identified with the new secret: name and attributes signed, the
        // e-mail typed by the visitor.
        let token = salam_hub::identity::sign(
            &new_secret,
            &json!({
                "sub": "u1", "name": "Mona", "exp": salam_hub::clock::now_ms() / 1000 + 600,
                "attributes": {"plan": "gold", "orders": 3},
            }),
        );
        let mut visitor = hub.visitor(None).await?;
        visitor
            .send_json(&json!({"type": "identify", "token": token, "email": "typed@x.test"}))
            .await?;
        visitor
            .send_json(&json!({"type": "send", "client_id": "i-1", "text": "Where is my parcel?"}))
            .await?;
        let (ack, skipped) = visitor.recv_until(|frame| matches!(frame, ServerFrame::Ack { .. })).await?;
        ensure!(
            !skipped.iter().any(|frame| matches!(frame, ServerFrame::Error { .. })),
            "the identity was refused: {skipped:?}"
        );
        let ServerFrame::Ack { conversation, .. } = ack else { unreachable!() };

        admin.click("#nav button[data-view='inbox']").await?;
        admin.click("#inbox-tabs button[data-tab='open']").await?;
        admin.click(&format!("#conversation-list li[data-id='{conversation}']")).await?;
        admin.wait_text("#details .detail[data-field='name'][data-verified='yes'] .badge.verified", "verified").await?;
        admin.wait_text("#details .detail[data-field='name'] .visitor-name", "Mona").await?;
        admin.wait_text("#details .detail[data-field='email'][data-verified='no'] .badge.unverified", "unverified").await?;
        admin.wait_text("#details .detail[data-field='email'] .visitor-email", "typed@x.test").await?;
        ensure!(
            admin.texts("#details .detail[data-field='email'] .badge.verified").await?.is_empty(),
            "the typed e-mail looks verified"
        );
        admin.wait_text("#visitor-attributes", "plan").await?;
        admin.wait_text("#visitor-attributes", "gold").await?;
        admin.screenshot("details-verified").await?;
        admin.language("fa").await?;
        admin.wait_text("#details .badge.unverified", "تأییدنشده").await?;
        admin.wait_text("#details .badge.verified", "تأییدشده").await?;
        admin.screenshot("details-verified-fa").await?;
        admin.language("en").await?;
        Ok(())
    })
}

/// Issue 12: an admin resets an agent's password from the agents list; the new one is
/// shown once and the agent's open console is signed out at once. The agent then
/// changes their own password in the account dialog (a wrong current password and a
/// too short new one are refused with a message). A throttled sign-in says how long
/// to wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_resets_a_password_and_the_agent_changes_their_own() -> Result<()> {
    let hub = TestHub::start().await?;
    let (sara_id, _sara_token) = hub.add_agent("Sara", Some(3), &[]).await?;
    let chosen = "a brand new passphrase";
    with_browsers!(admin, sara => {
        sara.sign_in(&hub, "sara@shop.test", AGENT_PASSWORD).await?;
        admin.sign_in(&hub, &hub.admin_email, &hub.admin_password).await?;
        admin.click("#nav button[data-view='admin']").await?;
        admin.click("#admin-tab-agents").await?;
        let row = format!("#agents-table tr[data-id='{sara_id}']");
        admin.click(&format!("{row} .reset-password")).await?;
        admin.click(&format!("{row} .confirm-yes")).await?;
        let generated = admin.find("#password-result .new-password").await?.text().await?;
        ensure!(generated.trim().chars().count() >= 10, "a short generated password: {generated:?}");
        admin.screenshot("admin-password-reset").await?;

        // Sara's console: every session of hers ended, so it asks her to sign in.
        sara.wait(
            "the sign-in form after the reset",
            "return !document.getElementById('login-view').hidden;",
        )
        .await?;
        let old = http_request(
            hub.addr,
            "POST",
            "/api/login",
            &[("content-type", "application/json")],
            &json!({"email": "sara@shop.test", "password": AGENT_PASSWORD}).to_string(),
        )
        .await?;
        ensure!(old.status == 401, "the old password still signs in: {}", old.status);
        sara.sign_in(&hub, "sara@shop.test", generated.trim()).await?;

        // Her own change: the current password must be right, the new one long enough.
        sara.click("#me-name").await?;
        sara.type_into("#account-current", "not my password").await?;
        sara.type_into("#account-new", chosen).await?;
        sara.click("#account-submit").await?;
        sara.wait_text("#account-error", "current password is wrong").await?;
        sara.clear("#account-current").await?;
        sara.type_into("#account-current", generated.trim()).await?;
        sara.clear("#account-new").await?;
        sara.type_into("#account-new", "too short").await?;
        sara.click("#account-submit").await?;
        sara.wait_text("#account-error", "10 characters").await?;
        sara.screenshot("account").await?;
        sara.clear("#account-new").await?;
        sara.type_into("#account-new", chosen).await?;
        sara.click("#account-submit").await?;
        sara.wait_text("#toast", "Password changed").await?;
        sara.wait("the dialog to close", "return !document.getElementById('account-dialog').open;").await?;
        hub.login("sara@shop.test", chosen).await?;
        // This console's own session stays.
        sara.wait(
            "the live connection after the change",
            "return document.getElementById('conn-status').classList.contains('conn-connected');",
        )
        .await?;

        // Signed out, and the account throttled (as after many wrong passwords): the
        // sign-in form says how long to wait.
        sara.click("#logout").await?;
        sara.wait("the sign-in form", "return !document.getElementById('login-view').hidden;").await?;
        for _ in 0..10 {
            hub.state.throttle.failed(
                salam_hub::throttle::Key::Account("sara@shop.test".into()),
                0,
                Instant::now(),
            );
        }
        sara.type_into("#login-email", "sara@shop.test").await?;
        sara.type_into("#login-password", chosen).await?;
        sara.click("#login-submit").await?;
        sara.wait_text("#login-error", "Too many attempts").await?;
        sara.wait_text("#login-error", "min").await?;
        sara.select("#login-lang", "ar").await?;
        sara.wait("the Arabic sign-in form", "return document.documentElement.dir === 'rtl';").await?;
        sara.click("#login-submit").await?;
        sara.wait_text("#login-error", "محاولات كثيرة").await?;
        sara.screenshot("login-throttled-ar").await?;
        Ok(())
    })
}

/// Issue 12: offline requests and alerts come a page at a time (100, newest first);
/// "Load more" fetches the next page. Done requests and acknowledged alerts leave the
/// list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_requests_and_alerts_load_a_page_at_a_time() -> Result<()> {
    let hub = TestHub::start().await?;
    let now = salam_hub::clock::now_ms();
    let mut oldest = (0, 0);
    for n in 0..105_i64 {
        let (request, _) = hub
            .state
            .store
            .create_offline_request(salam_store::OfflineRequest {
                id: 0,
                site_id: hub.site.id.clone(),
                visitor_id: format!("v_page_{n}"),
                conversation: None,
                name: Some(format!("Caller {n}")),
                email: None,
                phone: None,
                message: Some(format!("Call me back, request {n}")),
                created_at: now - (105 - n) * 1000,
                done_at: None,
            })
            .await?;
        let alert = hub
            .state
            .store
            .create_alert(salam_store::Alert {
                id: 0,
                site_id: hub.site.id.clone(),
                conversation: None,
                kind: "low_rating".into(),
                detail: format!("score 1, alert {n}"),
                at: now - (105 - n) * 1000,
                acknowledged_at: None,
            })
            .await?
            .context("the alert was not created")?;
        if n == 0 {
            oldest = (request, alert);
        }
    }
    let rows =
        |table: &str| format!("return document.querySelectorAll('#{table} tbody tr').length;");
    with_browsers!(admin => {
        admin.sign_in(&hub, &hub.admin_email, &hub.admin_password).await?;
        admin.click("#nav button[data-view='admin']").await?;
        for (tab, table, more, newest, id) in [
            ("offline", "offline-table", "offline-more", "request 104", oldest.0),
            ("alerts", "alerts-table", "alerts-more", "alert 104", oldest.1),
        ] {
            admin.click(&format!("#admin-tab-{tab}")).await?;
            admin.find(&format!("#{table}")).await?;
            ensure!(admin.js(&rows(table)).await? == 100, "{tab}: the first page is not 100 rows");
            let first = admin.texts(&format!("#{table} tbody tr")).await?;
            ensure!(first[0].contains(newest), "{tab}: not newest first: {:?}", first[0]);
            admin.click(&format!("#{more}")).await?;
            admin.wait(&format!("{tab}: 105 rows"), &format!("return document.querySelectorAll('#{table} tbody tr').length === 105;")).await?;
            ensure!(
                admin.js(&format!("return !document.getElementById('{more}');")).await? == true,
                "{tab}: Load more after the last page"
            );
            admin.click(&format!("#{table} tr[data-id='{id}'] button")).await?;
            admin.wait(&format!("{tab}: the row to leave"), &format!("return document.querySelectorAll('#{table} tbody tr').length === 104;")).await?;
        }
        admin.screenshot("admin-alerts").await?;
        // After a reload, what was done or acknowledged stays out of the lists.
        admin.client.refresh().await?;
        admin.click("#nav button[data-view='admin']").await?;
        for (tab, table, more) in [
            ("offline", "offline-table", "offline-more"),
            ("alerts", "alerts-table", "alerts-more"),
        ] {
            admin.click(&format!("#admin-tab-{tab}")).await?;
            admin.find(&format!("#{table}")).await?;
            admin.click(&format!("#{more}")).await?;
            admin.wait(&format!("{tab}: 104 rows after a reload"), &format!("return !document.getElementById('{more}') && document.querySelectorAll('#{table} tbody tr').length === 104;")).await?;
        }
        Ok(())
    })
}

/// Every string the console looks up by a literal key exists in English, and every
/// English string exists in Arabic and Persian (a missing one would show the English
/// or the bare key in a right-to-left console).
#[test]
fn every_console_string_is_translated() -> Result<()> {
    let console = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/hub/console");
    let i18n = std::fs::read_to_string(console.join("i18n.js"))?;
    let keys_of = |lang: &str| -> Result<std::collections::BTreeSet<String>> {
        let start = i18n
            .find(&format!("\n  {lang}: {{\n"))
            .with_context(|| format!("no {lang} block in i18n.js"))?;
        let block = &i18n[start..];
        let end = block.find("\n  },").context("an unclosed block")?;
        Ok(block[..end]
            .lines()
            .filter_map(|line| line.strip_prefix("    ")?.split_once(':'))
            .map(|(key, _)| key.to_owned())
            .filter(|key| key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .collect())
    };
    let en = keys_of("en")?;
    for lang in ["ar", "fa"] {
        let other = keys_of(lang)?;
        let missing: Vec<_> = en.difference(&other).collect();
        let extra: Vec<_> = other.difference(&en).collect();
        ensure!(
            missing.is_empty() && extra.is_empty(),
            "{lang}: missing {missing:?}, not in English {extra:?}"
        );
    }
    let mut used = std::collections::BTreeSet::new();
    for file in [
        "app.js",
        "admin.js",
        "reports.js",
        "live.js",
        "customer.js",
        "index.html",
        "timeline.js",
    ] {
        let text = std::fs::read_to_string(console.join(file))?;
        for call in [
            "t(\"",
            "field(\"",
            "row(\"",
            "vouched(\"",
            "data-i18n=\"",
            "data-i18n-placeholder=\"",
        ] {
            for (at, _) in text.match_indices(call) {
                let before = text[..at].chars().next_back().unwrap_or(' ');
                if before.is_ascii_alphanumeric() || matches!(before, '_' | '.' | '$' | '-') {
                    continue;
                }
                let rest = &text[at + call.len()..];
                let key: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !key.is_empty() && rest[key.len()..].starts_with('"') {
                    used.insert(key);
                }
            }
        }
    }
    ensure!(used.len() > 100, "found only {} keys in use", used.len());
    let unknown: Vec<_> = used.difference(&en).collect();
    ensure!(
        unknown.is_empty(),
        "keys used but not translated: {unknown:?}"
    );
    Ok(())
}

mod email;
mod inbox;
// Issue 19: the customer card and the Customers page.
mod customer;
// Issue 19: the customer timeline.
mod timeline;
// Issue 19: key accounts first (admin rules, the queue order, reports).
mod key_accounts;
