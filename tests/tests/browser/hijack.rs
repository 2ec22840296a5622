//! Cross-site WebSocket hijacking (issue 12): a page of another origin must not ride on
//! an agent's session cookie to open `/ws/agent`.
//!
//! The agent signs into the console in Chromium at `http://127.0.0.1:HUB_PORT`, which
//! sets the `SameSite=Strict` session cookie. A page served from another port of
//! 127.0.0.1 is another origin but the same site, and cookies ignore ports: its
//! `new WebSocket("ws://127.0.0.1:HUB_PORT/ws/agent")` carries the cookie. Before the
//! hub checked the upgrade's `Origin`, that page got `welcome` and the agent's whole
//! stream. The hub must refuse the upgrade (403), unless the page's origin is one of
//! `auth.console_origins`.

use crate::support::{Browser, HostPages, with_browser};
use anyhow::{Result, ensure};
use fantoccini::Locator;
use salam_e2e::TestHub;
use serde_json::Value;

/// A page that opens the agent socket of the hub at `hub_ws` and records what
/// happened in `window.probe`: opened, welcomed (a `welcome` frame arrived), errored,
/// and the close code once the socket ended.
fn hijacking_page(hub_ws: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not the console</title></head>\
         <body><h1>A page of another origin</h1><script>\
         window.probe = {{ opened: false, welcomed: false, errored: false, closed: null, frames: [] }};\
         const socket = new WebSocket({hub_ws:?});\
         socket.onopen = () => {{ probe.opened = true; socket.send(JSON.stringify({{ type: 'hello', v: 1 }})); }};\
         socket.onmessage = (event) => {{\
           probe.frames.push(String(event.data).slice(0, 200));\
           try {{ if (JSON.parse(event.data).type === 'welcome') probe.welcomed = true; }} catch (err) {{}}\
         }};\
         socket.onerror = () => {{ probe.errored = true; }};\
         socket.onclose = (event) => {{ probe.closed = event.code; }};\
         </script></body></html>"
    )
}

/// Signs into the console with the real form and waits for its live connection: the
/// console's own origin may open the socket with the cookie.
async fn sign_into_console(browser: &Browser, hub: &TestHub) -> Result<()> {
    browser.goto(&format!("{}/console", hub.http())).await?;
    browser
        .wait(
            "the sign-in form",
            "const view = document.getElementById('login-view'); return view && !view.hidden;",
        )
        .await?;
    let client = &browser.client;
    client
        .find(Locator::Css("#login-email"))
        .await?
        .send_keys(&hub.admin_email)
        .await?;
    client
        .find(Locator::Css("#login-password"))
        .await?
        .send_keys(&hub.admin_password)
        .await?;
    client
        .find(Locator::Css("#login-submit"))
        .await?
        .click()
        .await?;
    console_connected(browser).await
}

/// Waits until the console's own socket (same origin, the cookie) is connected.
async fn console_connected(browser: &Browser) -> Result<()> {
    browser
        .wait(
            "the console's live connection (same origin)",
            "const status = document.getElementById('conn-status'); \
             return status && status.classList.contains('conn-connected');",
        )
        .await?;
    Ok(())
}

/// Loads the hijacking page from `pages` and waits until its socket has settled:
/// welcomed, or ended. Returns `window.probe`.
async fn probe_from(browser: &Browser, pages: &HostPages, hub: &TestHub) -> Result<Value> {
    let hub_ws = format!("ws://{}/ws/agent", hub.addr);
    let url = pages.page("/hijack.html", hijacking_page(&hub_ws));
    browser.goto(&url).await?;
    browser
        .wait(
            "the page's socket to be welcomed or to end",
            "return window.probe && (window.probe.welcomed || window.probe.closed !== null);",
        )
        .await?;
    browser.js("return window.probe;").await
}

/// A page on another port of 127.0.0.1 opens `/ws/agent` with the signed-in agent's
/// cookie: the upgrade is refused, the socket never opens, no `welcome` arrives.
/// The console on the hub's own origin connects as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_origin_cannot_open_the_agent_socket_with_the_cookie() -> Result<()> {
    let hub = TestHub::start().await?;
    let pages = HostPages::start().await?;
    with_browser(async |browser: &Browser| {
        sign_into_console(browser, &hub).await?;
        let probe = probe_from(browser, &pages, &hub).await?;
        ensure!(
            probe["welcomed"] == false && probe["opened"] == false,
            "a page of {} opened the agent socket with the cookie: {probe}",
            pages.origin()
        );
        ensure!(
            probe["errored"] == true && probe["closed"] != Value::Null,
            "the refused socket should error and close: {probe}"
        );
        // The refusal is of the origin, not of a session gone missing: the console
        // (signed in still) connects again from its own origin with the same cookie.
        browser.goto(&format!("{}/console", hub.http())).await?;
        console_connected(browser).await?;
        Ok(())
    })
    .await
}

/// The other way round: with the page's origin in `auth.console_origins` (a console
/// served elsewhere), the same page is welcomed, which shows the cookie does travel
/// to another port and the refusal above is the origin check's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_console_origin_may_open_the_agent_socket() -> Result<()> {
    let pages = HostPages::start().await?;
    let allowed = pages.origin();
    let hub = TestHub::start_with(|config| config.auth.console_origins = vec![allowed]).await?;
    with_browser(async |browser: &Browser| {
        sign_into_console(browser, &hub).await?;
        let probe = probe_from(browser, &pages, &hub).await?;
        ensure!(
            probe["opened"] == true && probe["welcomed"] == true,
            "a configured console origin should be welcomed: {probe}"
        );
        Ok(())
    })
    .await
}
