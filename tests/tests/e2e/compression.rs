//! Issue 14 ("hot path"), the widget on the wire: the widget's files are sent
//! precompressed (brotli, gzip) as `Accept-Encoding` asks, and decode to the very bytes
//! of `widget/dist/`; a first load fits the 60 KiB budget as downloaded, not only on
//! disk; the console and the REST API are compressed on the fly above a minimum size;
//! WebSocket upgrades, `/healthz` and `/metrics` are left alone. Every figure is what
//! came over a real socket: the response body's bytes, before decoding.

use anyhow::{Context, Result, bail, ensure};
use salam_e2e::{Client, HttpBytes, SHOP_ORIGIN, TestHub, http_request_bytes, process};
use salam_hub::http::COMPRESS_MIN_BYTES;
use std::io::Read;
use std::path::PathBuf;

/// What a browser over HTTPS sends (Chromium, Firefox).
const BROWSER: &str = "gzip, deflate, br, zstd";

fn dist() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../widget/dist")
}

/// The widget's four files as the hub serves them: the loader, the glue, the WASM and
/// the trigger module (which a site with proactive triggers loads before a first
/// message; issue 19), by their URL paths, and their bytes on disk.
fn widget_files() -> Result<Vec<(String, Vec<u8>)>> {
    let mut glue = None;
    let mut wasm = None;
    let mut triggers = None;
    for entry in std::fs::read_dir(dist())? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with("salam_widget_bg-") && name.ends_with(".wasm") {
            wasm = Some(name);
        } else if name.starts_with("salam_widget-") && name.ends_with(".js") {
            glue = Some(name);
        } else if name.starts_with("triggers-") && name.ends_with(".js") {
            triggers = Some(name);
        }
    }
    let glue = glue.context("no glue in widget/dist")?;
    let wasm = wasm.context("no wasm in widget/dist")?;
    let triggers = triggers.context("no trigger module in widget/dist")?;
    Ok(vec![
        (
            "/widget.js".to_owned(),
            std::fs::read(dist().join("widget.js"))?,
        ),
        (
            format!("/widget/{glue}"),
            std::fs::read(dist().join(&glue))?,
        ),
        (
            format!("/widget/{wasm}"),
            std::fs::read(dist().join(&wasm))?,
        ),
        (
            format!("/widget/{triggers}"),
            std::fs::read(dist().join(&triggers))?,
        ),
    ])
}

async fn get(hub: &TestHub, path: &str, headers: &[(&str, &str)]) -> Result<HttpBytes> {
    let response = http_request_bytes(hub.addr, "GET", path, headers, "").await?;
    ensure!(response.status == 200, "GET {path}: {}", response.status);
    Ok(response)
}

/// The body decoded as its `Content-Encoding` says.
fn decoded(response: &HttpBytes) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    match response.header("content-encoding") {
        None => out.extend_from_slice(&response.body),
        Some("br") => {
            brotli::Decompressor::new(response.body.as_slice(), 4096).read_to_end(&mut out)?;
        }
        Some("gzip") => {
            flate2::read::GzDecoder::new(response.body.as_slice()).read_to_end(&mut out)?;
        }
        Some(other) => bail!("unexpected content-encoding {other}"),
    }
    Ok(out)
}

fn varies_on_encoding(response: &HttpBytes) -> bool {
    response
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("vary"))
        .any(|(_, value)| value.to_ascii_lowercase().contains("accept-encoding"))
}

#[tokio::test]
async fn widget_files_decode_to_the_built_bytes_in_every_encoding() -> Result<()> {
    let hub = TestHub::start().await?;
    // Accept-Encoding (none when absent) and the Content-Encoding that must answer it.
    let cases = [
        (Some("br, gzip"), Some("br")),
        (Some(BROWSER), Some("br")),
        (Some("gzip, deflate"), Some("gzip")),
        (Some("br;q=0, gzip"), Some("gzip")),
        (Some("br;q=0, gzip;q=0"), None),
        (Some("identity"), None),
        (None, None),
    ];
    for (path, on_disk) in widget_files()? {
        let mut etags = Vec::new();
        for (accept, encoding) in cases {
            let headers: Vec<(&str, &str)> = accept
                .map(|accept| ("accept-encoding", accept))
                .into_iter()
                .collect();
            let response = get(&hub, &path, &headers).await?;
            ensure!(
                response.header("content-encoding") == encoding,
                "{path} with {accept:?}: content-encoding {:?}",
                response.header("content-encoding")
            );
            let length: usize = response
                .header("content-length")
                .context("no content-length")?
                .parse()?;
            ensure!(
                length == response.body.len(),
                "{path}: wrong content-length"
            );
            ensure!(
                decoded(&response)? == on_disk,
                "{path} with {accept:?} does not decode to the file"
            );
            ensure!(varies_on_encoding(&response), "{path}: no Vary");
            let cache = response.header("cache-control").unwrap_or_default();
            let expected = if path == "/widget.js" {
                "public, max-age=300"
            } else {
                "public, max-age=31536000, immutable"
            };
            ensure!(cache == expected, "{path}: cache-control {cache}");
            ensure!(response.header("access-control-allow-origin") == Some("*"));
            let etag = response.header("etag").context("no etag")?.to_owned();
            etags.push((encoding, etag));
        }
        // One ETag per encoding, the same one whenever the encoding is the same.
        for (encoding, etag) in &etags {
            for (other_encoding, other_etag) in &etags {
                ensure!(
                    (encoding == other_encoding) == (etag == other_etag),
                    "{path}: ETags {etags:?}"
                );
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn widget_revalidates_per_encoding() -> Result<()> {
    let hub = TestHub::start().await?;
    let brotli = get(&hub, "/widget.js", &[("accept-encoding", "br")]).await?;
    let gzip = get(&hub, "/widget.js", &[("accept-encoding", "gzip")]).await?;
    let brotli_etag = brotli.header("etag").context("no etag")?;
    let gzip_etag = gzip.header("etag").context("no etag")?;
    // Its own ETag: 304 with no body, and the headers a cache needs.
    let again = http_request_bytes(
        hub.addr,
        "GET",
        "/widget.js",
        &[("accept-encoding", "br"), ("if-none-match", brotli_etag)],
        "",
    )
    .await?;
    ensure!(again.status == 304, "got {}", again.status);
    ensure!(again.body.is_empty());
    ensure!(again.header("etag") == Some(brotli_etag));
    ensure!(varies_on_encoding(&again));
    // The gzip copy's ETag does not validate a brotli answer: the full body comes.
    let other = http_request_bytes(
        hub.addr,
        "GET",
        "/widget.js",
        &[("accept-encoding", "br"), ("if-none-match", gzip_etag)],
        "",
    )
    .await?;
    ensure!(other.status == 200, "got {}", other.status);
    ensure!(other.header("content-encoding") == Some("br"));
    ensure!(other.body == brotli.body);
    Ok(())
}

#[tokio::test]
async fn first_load_fits_the_budget_on_the_wire() -> Result<()> {
    let hub = TestHub::start().await?;
    let mut total = 0;
    let mut sizes = Vec::new();
    for (path, on_disk) in widget_files()? {
        let response = get(&hub, &path, &[("accept-encoding", "br, gzip")]).await?;
        ensure!(response.header("content-encoding") == Some("br"));
        ensure!(decoded(&response)? == on_disk);
        let downloaded = response.body.len();
        if path == "/widget.js" {
            ensure!(
                downloaded <= 4 * 1024,
                "the loader is {downloaded} bytes on the wire, over 4 KiB"
            );
        }
        sizes.push((path, on_disk.len(), downloaded));
        total += downloaded;
    }
    ensure!(
        total <= 60 * 1024,
        "a first load downloads {total} bytes, over 60 KiB: {sizes:?}"
    );
    Ok(())
}

#[tokio::test]
async fn console_files_are_compressed_when_asked() -> Result<()> {
    let hub = TestHub::start().await?;
    let console = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crates/hub/console");
    for (path, file) in [("/console/app.js", "app.js"), ("/console", "index.html")] {
        let on_disk = std::fs::read(console.join(file))?;
        for (accept, encoding) in [
            (Some("br, gzip"), Some("br")),
            (Some("gzip"), Some("gzip")),
            (None, None),
        ] {
            let headers: Vec<(&str, &str)> = accept
                .map(|accept| ("accept-encoding", accept))
                .into_iter()
                .collect();
            let response = get(&hub, path, &headers).await?;
            ensure!(
                response.header("content-encoding") == encoding,
                "{path} with {accept:?}: {:?}",
                response.header("content-encoding")
            );
            ensure!(decoded(&response)? == on_disk, "{path} with {accept:?}");
            ensure!(response.header("cache-control") == Some("no-cache"));
            ensure!(response.header("content-security-policy").is_some());
            if encoding.is_some() {
                ensure!(varies_on_encoding(&response));
                ensure!(response.body.len() < on_disk.len());
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn rest_json_is_compressed_above_the_threshold() -> Result<()> {
    let hub = TestHub::start().await?;
    let token = hub.admin_token().await?;
    let bearer = format!("Bearer {token}");
    let auth = ("authorization", bearer.as_str());
    // The rule pack: well over the threshold.
    let plain = get(&hub, "/api/rules", &[auth]).await?;
    ensure!(plain.header("content-encoding").is_none());
    ensure!(plain.body.len() > usize::from(COMPRESS_MIN_BYTES));
    let plain_json: serde_json::Value = serde_json::from_slice(&plain.body)?;
    for (accept, encoding) in [("gzip, deflate, br", "br"), ("gzip", "gzip")] {
        let response = get(&hub, "/api/rules", &[auth, ("accept-encoding", accept)]).await?;
        ensure!(response.header("content-encoding") == Some(encoding));
        ensure!(varies_on_encoding(&response));
        ensure!(response.body.len() < plain.body.len());
        let json: serde_json::Value = serde_json::from_slice(&decoded(&response)?)?;
        ensure!(json == plain_json, "{encoding} decodes to other JSON");
    }
    // A small answer is left as it is.
    let me = get(&hub, "/api/me", &[auth, ("accept-encoding", "br, gzip")]).await?;
    ensure!(me.body.len() < usize::from(COMPRESS_MIN_BYTES));
    ensure!(me.header("content-encoding").is_none());
    serde_json::from_slice::<serde_json::Value>(&me.body)?;
    // An error is still the API's JSON.
    let missing = http_request_bytes(
        hub.addr,
        "GET",
        "/api/conversations/nope",
        &[auth, ("accept-encoding", "br, gzip")],
        "",
    )
    .await?;
    ensure!(missing.status == 404, "got {}", missing.status);
    let error: serde_json::Value = serde_json::from_slice(&decoded(&missing)?)?;
    ensure!(error["error"] == "not_found", "{error}");
    Ok(())
}

#[tokio::test]
async fn sockets_health_and_metrics_are_left_alone() -> Result<()> {
    let hub = TestHub::start().await?;
    let accept = ("Accept-Encoding", "gzip, br".to_owned());
    let mut visitor = Client::connect_with(
        hub.addr,
        "/ws/visitor",
        &[("Origin", SHOP_ORIGIN.to_owned()), accept.clone()],
    )
    .await?;
    visitor.greet_visitor(&hub.site.key, None).await?;
    let token = hub.admin_token().await?;
    let mut agent = Client::connect_with(
        hub.addr,
        "/ws/agent",
        &[("Authorization", format!("Bearer {token}")), accept],
    )
    .await?;
    agent
        .send_json(&serde_json::json!({"type": "hello", "v": 1}))
        .await?;
    agent
        .recv_until(|frame| matches!(frame, salam_protocol::ServerFrame::Welcome { .. }))
        .await?;
    // A message goes from the visitor to the agent over the upgraded sockets.
    visitor
        .send_json(&serde_json::json!({"type": "send", "client_id": "c1", "text": "compressed?"}))
        .await?;
    agent.agent_sees("compressed?").await?;

    let health = get(&hub, "/healthz", &[("accept-encoding", "br, gzip")]).await?;
    ensure!(health.header("content-encoding").is_none());
    let metrics_auth = format!("Bearer {}", process::METRICS_TOKEN);
    let metrics = get(
        &hub,
        "/metrics",
        &[
            ("accept-encoding", "br, gzip"),
            ("authorization", metrics_auth.as_str()),
        ],
    )
    .await?;
    ensure!(metrics.header("content-encoding").is_none());
    ensure!(String::from_utf8(metrics.body)?.contains("salam_"));
    Ok(())
}
