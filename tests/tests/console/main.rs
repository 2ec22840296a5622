//! The agent console (`/console`) in a real headless Chromium, driven over WebDriver
//! by fantoccini, against a real hub; visitors are WebSocket test clients.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's `chromium` and
//! `chromium-driver`); without them the tests fail with a message saying so. Every
//! test starts its own chromedriver on a free port and Chromium with a fresh profile.
//! Screenshots of the main screens go to `target/screenshots/console-*.png`.
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
        self.find("#login-email").await?;
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

/// Runs `test` with browsers that are closed whatever happens.
macro_rules! with_browsers {
    ($($browser:ident),+ => $body:block) => {{
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
        json!({"shortcut": "ship", "text": "Your order ships within 2 days."}),
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
        // Departments, agents and canned responses through the admin forms.
        admin.click("#admin-tab-departments").await?;
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
