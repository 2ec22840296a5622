//! A real headless Chromium for the browser tests: chromedriver on a free port, a fresh
//! profile per session, at most two browsers at once per test binary (the machines have
//! two cores). Shared by the widget and console suites.

use anyhow::{Context, Result, bail, ensure};
use fantoccini::{Client, ClientBuilder};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";

static BROWSERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// What keeps a session alive besides its WebDriver client: the driver process (killed
/// on drop), the profile directory and the browser slot.
pub struct Session {
    _driver: tokio::process::Child,
    _profile: tempfile::TempDir,
    _permit: tokio::sync::SemaphorePermit<'static>,
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Starts chromedriver and a headless Chromium with a window of `window` (`"W,H"`).
/// Fails with a clear message when Chromium or chromedriver is not installed: the
/// browser tests are part of the test command and must not be skipped silently.
pub async fn start(window: &str) -> Result<(Client, Session)> {
    start_with(window, &[]).await
}

/// [`start`] with more Chromium switches (the deployment test maps host names to
/// 127.0.0.1 and accepts its self-signed certificate).
pub async fn start_with(window: &str, switches: &[String]) -> Result<(Client, Session)> {
    launch(window, switches, None).await
}

/// A Chromium that emulates a phone's viewport of `width`×`height` CSS pixels (a touch
/// screen at pixel ratio 2): headless windows cannot be narrower than 500 px.
pub async fn start_phone(width: u32, height: u32) -> Result<(Client, Session)> {
    launch("500,900", &[], Some((width, height))).await
}

async fn launch(
    window: &str,
    switches: &[String],
    phone: Option<(u32, u32)>,
) -> Result<(Client, Session)> {
    if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
        bail!(
            "{CHROMEDRIVER} or {CHROMIUM} is missing: the browser tests need Debian's \
             chromium and chromium-driver (`apt-get install -y chromium chromium-driver`, \
             which scripts/ci-widget.sh runs)"
        );
    }
    let permit = BROWSERS.acquire().await?;
    let port = free_port()?;
    let driver = tokio::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start chromedriver")?;
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        ensure!(
            started.elapsed() < Duration::from_secs(10),
            "chromedriver did not listen on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let profile = tempfile::tempdir()?;
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
    ]
    .map(str::to_owned)
    .into();
    args.push(format!("--window-size={window}"));
    args.push(format!("--user-data-dir={}", profile.path().display()));
    args.extend(switches.iter().cloned());
    let mut capabilities = serde_json::Map::new();
    let mut options = json!({ "binary": CHROMIUM, "args": args });
    if let Some((width, height)) = phone {
        options["mobileEmulation"] = json!({
            "deviceMetrics": { "width": width, "height": height, "pixelRatio": 2.0, "touch": true }
        });
    }
    capabilities.insert("goog:chromeOptions".into(), options);
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .context("cannot open a Chromium session")?;
    Ok((
        client,
        Session {
            _driver: driver,
            _profile: profile,
            _permit: permit,
        },
    ))
}

/// Whether a value a page script returned counts as "yes" (JavaScript truthiness, as far
/// as JSON shows it).
pub fn truthy(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null | serde_json::Value::Bool(false) => false,
        serde_json::Value::String(text) => !text.is_empty(),
        serde_json::Value::Number(n) => n.as_f64() != Some(0.0),
        _ => true,
    }
}

/// Runs `script` in the page until it returns a [`truthy`] value, which it returns;
/// `None` when `timeout` passes first.
pub async fn poll(
    client: &Client,
    script: &str,
    timeout: Duration,
) -> Result<Option<serde_json::Value>> {
    let started = Instant::now();
    loop {
        let value = client.execute(script, vec![]).await?;
        if truthy(&value) {
            return Ok(Some(value));
        }
        if started.elapsed() > timeout {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
