//! What the widget's browser tests share: a headless Chromium driven over WebDriver, a
//! host page server on another origin than the hub, and a hub that can be restarted on
//! the same data directory and port.
//!
//! Every test starts its own chromedriver (on a free port) and Chromium with a fresh
//! profile, and ends both even when the test fails: [`with_browser`] closes the session
//! before returning the test's result, and the driver process is killed on drop. Tests
//! return `anyhow::Result` and check with `ensure!`, never `assert!`, so that a failure
//! does not skip that cleanup.

use anyhow::{Context, Result, anyhow, bail, ensure};
use fantoccini::elements::Element;
use fantoccini::{Client, Locator};
pub use salam_e2e::host_pages::HostPages;
use salam_e2e::{TestHub, http_request};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a test waits for something to show up in the page.
pub const UI_WAIT: Duration = Duration::from_secs(15);

/// A Chromium session and the chromedriver serving it.
pub struct Browser {
    pub client: Client,
    _session: salam_e2e::chromium::Session,
}

/// Starts a browser, runs `test` with it, and closes the browser whatever happened.
pub async fn with_browser(test: impl AsyncFnOnce(&Browser) -> Result<()>) -> Result<()> {
    with_browser_at("1200,900", test).await
}

/// [`with_browser`] with a window of `window` (`"W,H"`: the page's viewport in headless
/// Chromium), for the desktop (1280×800) and phone (375×667) checks.
pub async fn with_browser_at(
    window: &str,
    test: impl AsyncFnOnce(&Browser) -> Result<()>,
) -> Result<()> {
    let (client, session) = match window.split_once(',') {
        // A phone: emulated, since a headless window cannot be narrower than 500 px.
        Some((width, height)) if width.parse::<u32>().is_ok_and(|w| w < 500) => {
            salam_e2e::chromium::start_phone(width.parse()?, height.parse()?).await?
        }
        _ => salam_e2e::chromium::start(window).await?,
    };
    let browser = Browser {
        client,
        _session: session,
    };
    let result = test(&browser).await;
    if result.is_err() {
        let _ = browser.screenshot("failure").await;
    }
    let _ = browser.client.clone().close().await;
    result
}

impl Browser {
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.client.goto(url).await?;
        Ok(())
    }

    /// Runs `body` as a function in the page, with `host` (the `<salam-chat>` element)
    /// and `root` (its shadow root) in scope, and returns its value.
    pub async fn js(&self, body: &str) -> Result<Value> {
        let script = format!(
            "const host = document.querySelector('salam-chat'); \
             const root = host && host.shadowRoot; {body}"
        );
        Ok(self.client.execute(&script, vec![]).await?)
    }

    /// Polls `body` (see [`Browser::js`]) until it returns a truthy value.
    pub async fn wait(&self, what: &str, body: &str) -> Result<Value> {
        let started = Instant::now();
        loop {
            let value = self.js(body).await?;
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return Ok(value);
            }
            if started.elapsed() > UI_WAIT {
                let lines = self.lines().await.unwrap_or_default();
                bail!("timed out waiting for {what}; the widget shows {lines:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An element inside the widget's shadow root.
    pub async fn shadow(&self, selector: &str) -> Result<Element> {
        let host = self.client.find(Locator::Css("salam-chat")).await?;
        let root = host.shadow_root().await?;
        root.find(Locator::Css(selector))
            .await
            .with_context(|| format!("no {selector} in the widget"))
    }

    /// Waits for the launcher, clicks it and waits for the panel. If the panel was open
    /// before in this tab (a reload, another page of the site), it opens by itself: then
    /// only waits for it, since a click would close it.
    pub async fn open_widget(&self) -> Result<()> {
        self.wait("the launcher", "return root && root.querySelector('.L')")
            .await?;
        let restored = self
            .js("const s = document.querySelector('script[data-site]'); \
                 return !!s && !!sessionStorage.getItem('salam:' + s.getAttribute('data-site'))")
            .await?;
        if restored != true {
            self.shadow(".L").await?.click().await?;
        }
        self.wait_panel_open().await
    }

    pub async fn wait_panel_open(&self) -> Result<()> {
        self.wait(
            "the panel to open",
            "const p = root && root.querySelector('.P'); return p && !p.hidden && p.getBoundingClientRect().height > 100",
        )
        .await?;
        Ok(())
    }

    /// Types `text` in the compose box and presses Enter.
    pub async fn type_and_send(&self, text: &str) -> Result<()> {
        let input = self.shadow(".C textarea").await?;
        input.send_keys(text).await?;
        input.send_keys("\u{E007}").await?; // WebDriver's Enter key
        Ok(())
    }

    /// The conversation as shown: `(class, text)` of each line.
    pub async fn lines(&self) -> Result<Vec<(String, String)>> {
        let value = self
            .js(
                "if (!root) return []; return [...root.querySelectorAll('.lg2 > *')].map(e => \
                 [e.className, (e.querySelector('.b') || e).textContent]);",
            )
            .await?;
        serde_json::from_value(value).context("lines")
    }

    /// Waits until a line with exactly `text` is shown, committed (not pending), and
    /// returns its class.
    pub async fn wait_line(&self, text: &str) -> Result<String> {
        let body = format!(
            "if (!root) return null; const want = {}; \
             const line = [...root.querySelectorAll('.lg2 > .m')].find(e => \
               e.querySelector('.b').textContent === want && !e.classList.contains('p')); \
             return line ? line.className : null;",
            json!(text)
        );
        let class = self.wait(&format!("the line {text:?}"), &body).await?;
        Ok(class.as_str().unwrap_or_default().to_owned())
    }

    /// Saves a PNG of the page under `target/screenshots/` and prints its path.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let png = self.client.screenshot().await?;
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("widget-{name}.png"));
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

/// A host page that embeds the widget. `attrs` go on the script tag (`data-locale`),
/// `head` into `<head>` and `before` just before the script tag.
pub fn host_page(hub: &str, site_key: &str, attrs: &str, head: &str, before: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Host shop</title>{head}</head>\
         <body><h1>Host shop</h1><p id=\"probe\">A paragraph of the host page.</p>\
         <button id=\"probe-button\">Host button</button>{before}\
         <script src=\"{hub}/widget.js\" data-site=\"{site_key}\" {attrs} async></script></body></html>"
    )
}

/// A hub, a host page server, and a site that allows the host pages' origin.
pub struct Setup {
    pub hub: TestHub,
    pub host: HostPages,
    pub site_key: String,
}

impl Setup {
    pub async fn new() -> Result<Setup> {
        let hub = TestHub::start().await?;
        let host = HostPages::start().await?;
        let site = hub.create_site("Shop", &[host.origin()]).await?;
        Ok(Setup {
            hub,
            host,
            site_key: site.key,
        })
    }

    /// Serves a host page embedding the widget and returns its URL.
    pub fn page(&self, path: &str, attrs: &str, head: &str, before: &str) -> String {
        let html = host_page(&self.hub.http(), &self.site_key, attrs, head, before);
        self.host.page(path, html)
    }
}

/// Logs in over HTTP and returns the bearer token.
pub async fn login(addr: SocketAddr, email: &str, password: &str) -> Result<String> {
    let response = http_request(
        addr,
        "POST",
        "/api/login",
        &[("content-type", "application/json")],
        &json!({"email": email, "password": password}).to_string(),
    )
    .await?;
    ensure!(
        response.status == 200,
        "login: {} {}",
        response.status,
        response.body
    );
    let body: Value = serde_json::from_str(&response.body)?;
    body["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no token"))
}
