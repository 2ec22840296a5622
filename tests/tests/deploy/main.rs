//! The deployment recipes of docs/deploy.md, run as far as this machine allows:
//!
//! - nginx (Debian's) in front of a real hub, configured by `deploy/nginx/salam.conf` as
//!   it is in the repository (only names, ports and the certificate are swapped in),
//!   with TLS from a self-signed certificate made here with openssl: the widget on a
//!   shop page and the console, in a real headless Chromium, over https:// and wss://;
//!   the session cookie is `Secure`; the origin and CSRF checks hold through the proxy;
//!   HTTP is redirected to HTTPS; an admin exports and erases a visitor's data and sets a
//!   retention period in the console, through the proxy.
//! - the systemd units of `deploy/systemd/` pass `systemd-analyze verify`.
//!
//! Needs nginx, openssl, curl, systemd-analyze, Chromium and chromedriver
//! (`bash .ci/run` installs what is missing); without them the tests fail, saying so.

use anyhow::{Context, Result, bail, ensure};
use fantoccini::{Client, Locator};
use salam_e2e::TestHub;
use salam_e2e::process::eventually;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The hub's name in this test (Chromium maps it to 127.0.0.1).
const CHAT: &str = "chat.salam.test";
/// The shop whose pages embed the widget: another origin.
const SHOP: &str = "shop.salam.test";
/// How long a test waits for something to show up in a page.
const UI_WAIT: Duration = Duration::from_secs(20);

fn workspace() -> Result<PathBuf> {
    Ok(Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the workspace")?
        .to_path_buf())
}

/// The path of a tool this test needs, or an error that says how to get it.
fn tool(name: &str, package: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .with_context(|| {
            format!("{name} is missing: the deployment test needs Debian's {package} (`apt-get install -y {package}`, which .ci/run does)")
        })
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs a command to completion; fails with its output unless it succeeds.
fn run(program: &Path, args: &[&str]) -> Result<std::process::Output> {
    let output = std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", program.display()))?;
    ensure!(
        output.status.success(),
        "{} {args:?} failed: {}{}",
        program.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output)
}

/// The recipe with this test's names, ports, certificate and hub. Every line the test
/// swaps must be in the recipe, so the recipe cannot drift away from what is tested.
fn adapt(recipe: &str, hub: SocketAddr, port: u16, http_port: u16, dir: &Path) -> Result<String> {
    let cert = dir.join("cert.pem").display().to_string();
    let key = dir.join("key.pem").display().to_string();
    let mut text = recipe.to_owned();
    for (from, to) in [
        ("    listen [::]:80;\n", String::new()),
        ("    listen [::]:443 ssl;\n", String::new()),
        ("listen 80;", format!("listen 127.0.0.1:{http_port};")),
        ("listen 443 ssl;", format!("listen 127.0.0.1:{port} ssl;")),
        ("server 127.0.0.1:8080;", format!("server {hub};")),
        ("/etc/letsencrypt/live/chat.example.com/fullchain.pem", cert),
        ("/etc/letsencrypt/live/chat.example.com/privkey.pem", key),
        ("chat.example.com", CHAT.to_owned()),
    ] {
        ensure!(
            text.contains(from),
            "deploy/nginx/salam.conf no longer has {from:?}: change this test and docs/deploy.md with it"
        );
        text = text.replace(from, &to);
    }
    Ok(text)
}

/// nginx as configured by the recipe, in front of `hub`, in one foreground process.
struct Nginx {
    child: tokio::process::Child,
    port: u16,
    http_port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl Nginx {
    async fn start(hub: SocketAddr, port: u16, shop_page: &str) -> Result<Nginx> {
        let nginx = tool("nginx", "nginx")?;
        let openssl = tool("openssl", "openssl")?;
        let dir = tempfile::tempdir()?;
        let path = dir.path();
        // A self-signed certificate for both names (Chromium is told to accept it).
        let (key, cert) = (path.join("key.pem"), path.join("cert.pem"));
        run(
            &openssl,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                &format!("/CN={CHAT}"),
                "-addext",
                &format!("subjectAltName=DNS:{CHAT},DNS:{SHOP}"),
                "-keyout",
                key.to_str().context("utf-8")?,
                "-out",
                cert.to_str().context("utf-8")?,
            ],
        )?;
        let http_port = free_port()?;
        let recipe = std::fs::read_to_string(workspace()?.join("deploy/nginx/salam.conf"))?;
        let recipe = adapt(&recipe, hub, port, http_port, path)?;
        std::fs::create_dir_all(path.join("shop"))?;
        std::fs::write(path.join("shop/index.html"), shop_page)?;
        for temp in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir_all(path.join("tmp").join(temp))?;
        }
        let dir_text = path.display();
        let config = format!(
            "daemon off;\nmaster_process off;\npid {dir_text}/nginx.pid;\nerror_log {dir_text}/error.log warn;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n\
             access_log {dir_text}/access.log;\n\
             client_body_temp_path {dir_text}/tmp/body;\nproxy_temp_path {dir_text}/tmp/proxy;\n\
             fastcgi_temp_path {dir_text}/tmp/fastcgi;\nuwsgi_temp_path {dir_text}/tmp/uwsgi;\n\
             scgi_temp_path {dir_text}/tmp/scgi;\n\
             types {{ text/html html; }}\n\
             # ---- deploy/nginx/salam.conf\n{recipe}\n\
             # ---- not part of the recipe: the shop, on another origin\n\
             server {{\n  listen 127.0.0.1:{port} ssl;\n  server_name {SHOP};\n\
               ssl_certificate {};\n  ssl_certificate_key {};\n  root {dir_text}/shop;\n}}\n}}\n",
            cert.display(),
            key.display(),
        );
        let config_path = path.join("nginx.conf");
        std::fs::write(&config_path, config)?;
        let config_arg = config_path.to_str().context("utf-8")?.to_owned();
        let prefix = format!("{dir_text}/");
        run(&nginx, &["-t", "-q", "-c", &config_arg, "-p", &prefix])?;
        let child = tokio::process::Command::new(&nginx)
            .args(["-c", &config_arg, "-p", &prefix])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut nginx = Nginx {
            child,
            port,
            http_port,
            dir,
        };
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Some(status) = nginx.child.try_wait()? {
                bail!("nginx exited ({status}): {}", nginx.error_log());
            }
            ensure!(
                started.elapsed() < Duration::from_secs(10),
                "nginx does not listen"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(nginx)
    }

    fn https(&self, host: &str) -> String {
        format!("https://{host}:{}", self.port)
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// `curl` through this nginx (names resolved to 127.0.0.1, the certificate
    /// accepted): the status code and the response headers.
    async fn curl(&self, url: &str, args: &[&str]) -> Result<(u16, String)> {
        self.curl_to(url, args, "/dev/null").await
    }

    /// Like [`Nginx::curl`], with the body written after the headers (a WebSocket's
    /// first frames, say).
    async fn curl_with_body(&self, url: &str, args: &[&str]) -> Result<(u16, String)> {
        self.curl_to(url, args, "-").await
    }

    async fn curl_to(&self, url: &str, args: &[&str], body: &str) -> Result<(u16, String)> {
        let curl = tool("curl", "curl")?;
        let output = tokio::process::Command::new(curl)
            .args([
                "-sk",
                "--max-time",
                "3",
                "-o",
                body,
                "-D",
                "-",
                "-w",
                "%{http_code}",
            ])
            .args(["--resolve", &format!("{CHAT}:{}:127.0.0.1", self.port)])
            .args(["--resolve", &format!("{CHAT}:{}:127.0.0.1", self.http_port)])
            .args(args)
            .arg(url)
            .output()
            .await?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        // A WebSocket upgrade stays open until --max-time: the code is still printed.
        let code = text
            .get(text.len().saturating_sub(3)..)
            .and_then(|code| code.parse().ok())
            .with_context(|| format!("curl printed no status: {text:?}"))?;
        Ok((code, text))
    }
}

/// A Chromium that resolves the test's names to 127.0.0.1 and accepts its certificate.
struct Browser {
    client: Client,
    name: &'static str,
    _session: salam_e2e::chromium::Session,
}

impl Browser {
    async fn start(name: &'static str) -> Result<Browser> {
        let switches = [
            format!("--host-resolver-rules=MAP {CHAT} 127.0.0.1, MAP {SHOP} 127.0.0.1"),
            "--ignore-certificate-errors".to_owned(),
        ];
        let (client, session) = salam_e2e::chromium::start_with("1300,900", &switches).await?;
        Ok(Browser {
            client,
            name,
            _session: session,
        })
    }

    /// Runs `body` in the page, with `root` the widget's shadow root (if any).
    async fn js(&self, body: &str) -> Result<Value> {
        let script = format!(
            "const host = document.querySelector('salam-chat'); \
             const root = host && host.shadowRoot; {body}"
        );
        Ok(self.client.execute(&script, vec![]).await?)
    }

    async fn wait(&self, what: &str, body: &str) -> Result<Value> {
        let script = format!(
            "const host = document.querySelector('salam-chat'); \
             const root = host && host.shadowRoot; {body}"
        );
        match salam_e2e::chromium::poll(&self.client, &script, UI_WAIT).await? {
            Some(value) => Ok(value),
            None => {
                self.screenshot("failure").await;
                bail!("{}: timed out waiting for {what}", self.name)
            }
        }
    }

    /// Clicks the element matching `css`. Live lists re-render under the pointer, so a
    /// click that lands on a replaced (stale) element is retried on the new one.
    async fn click(&self, css: &str) -> Result<()> {
        let query = serde_json::to_string(css)?;
        let mut attempts = 0;
        loop {
            self.wait(css, &format!("return !!document.querySelector({query});"))
                .await?;
            match self.client.find(Locator::Css(css)).await?.click().await {
                Ok(()) => return Ok(()),
                Err(err) if attempts < 5 && err.to_string().contains("stale") => attempts += 1,
                Err(err) => return Err(err).context(format!("{}: clicking {css}", self.name)),
            }
        }
    }

    async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let query = serde_json::to_string(css)?;
        self.wait(css, &format!("return !!document.querySelector({query});"))
            .await?;
        self.client
            .find(Locator::Css(css))
            .await?
            .send_keys(text)
            .await?;
        Ok(())
    }

    async fn wait_text(&self, css: &str, text: &str) -> Result<()> {
        let (css_json, text_json) = (serde_json::to_string(css)?, serde_json::to_string(text)?);
        self.wait(
            &format!("{text:?} in {css}"),
            &format!(
                "return [...document.querySelectorAll({css_json})].some(e => e.textContent.includes({text_json}));"
            ),
        )
        .await?;
        Ok(())
    }

    async fn screenshot(&self, what: &str) {
        let Ok(png) = self.client.screenshot().await else {
            return;
        };
        let dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().unwrap_or_default().join("target"))
            .join("screenshots");
        if std::fs::create_dir_all(&dir).is_ok() {
            let path = dir.join(format!("deploy-{}-{what}.png", self.name));
            if std::fs::write(&path, png).is_ok() {
                println!("screenshot: {}", path.display());
            }
        }
    }

    async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_widget_and_the_console_work_behind_nginx_with_tls() -> Result<()> {
    // Not `auth.secure_cookie`: the cookie is Secure because nginx (loopback, a trusted
    // proxy by default) says `X-Forwarded-Proto: https`.
    let hub = TestHub::start().await?;
    let port = free_port()?;
    // The test site (bot off) now lives on the shop's origin.
    let origins = [format!("https://{SHOP}:{port}")];
    let site = hub
        .state
        .store
        .update_site(&hub.site.id, None, Some(&origins))
        .await?;
    salam_hub::admin::announce_site(&hub.state, &site).await?;
    let shop_page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Shop</title></head>\
         <body><h1>Shop</h1><script src=\"https://{CHAT}:{port}/widget.js\" data-site=\"{}\" async></script></body></html>",
        site.key
    );
    let nginx = Nginx::start(hub.addr, port, &shop_page).await?;
    let admin = Browser::start("admin").await?;
    let visitor = Browser::start("visitor").await?;
    let result = behind_nginx(&hub, &nginx, &site, &admin, &visitor).await;
    if result.is_err() {
        admin.screenshot("failure").await;
        visitor.screenshot("failure").await;
        println!("nginx error log:\n{}", nginx.error_log());
    }
    admin.close().await;
    visitor.close().await;
    result
}

async fn behind_nginx(
    hub: &TestHub,
    nginx: &Nginx,
    site: &salam_store::Site,
    admin: &Browser,
    visitor: &Browser,
) -> Result<()> {
    // The console over https://, its live connection over wss://, through nginx.
    admin
        .client
        .goto(&format!("{}/console", nginx.https(CHAT)))
        .await?;
    admin.type_into("#login-email", &hub.admin_email).await?;
    admin
        .type_into("#login-password", &hub.admin_password)
        .await?;
    admin.click("#login-submit").await?;
    admin
        .wait(
            "the live connection over wss://",
            "return location.protocol === 'https:' && \
             document.getElementById('conn-status').classList.contains('conn-connected');",
        )
        .await?;
    let cookie = admin.client.get_named_cookie("salam_session").await?;
    ensure!(
        cookie.secure() == Some(true) && cookie.http_only() == Some(true),
        "the session cookie is Secure and HttpOnly behind TLS: {cookie:?}"
    );

    // The widget on the shop's page, over wss:// to the hub's name.
    visitor.client.goto(&nginx.https(SHOP)).await?;
    visitor
        .wait("the launcher", "return root && root.querySelector('.L')")
        .await?;
    visitor
        .js("root.querySelector('.L').click(); return true;")
        .await?;
    visitor
        .wait(
            "the panel",
            "const p = root && root.querySelector('.P'); return p && !p.hidden;",
        )
        .await?;
    let textarea = visitor
        .client
        .find(Locator::Css("salam-chat"))
        .await?
        .shadow_root()
        .await?
        .find(Locator::Css(".C textarea"))
        .await?;
    textarea.send_keys("hello through nginx").await?;
    textarea.send_keys("\u{E007}").await?;

    let sites = std::slice::from_ref(&site.id);
    let conversation = eventually("the widget's message arrives", UI_WAIT, || async {
        Ok(hub
            .state
            .store
            .open_conversations_of_sites(sites, 5)
            .await?
            .into_iter()
            .next())
    })
    .await?;

    // The admin answers in the console (routing gave them the chat: "All open" lists
    // it whoever has it); the widget shows the answer.
    admin.click("button[data-tab='open']").await?;
    admin
        .click(&format!(
            "#conversation-list li[data-id='{}']",
            conversation.id
        ))
        .await?;
    admin
        .js("const take = document.getElementById('take-button'); if (take && !take.hidden) take.click(); return true;")
        .await?;
    admin
        .wait_text("#messages .msg.author-visitor", "hello through nginx")
        .await?;
    admin.type_into("#composer", "hello back over wss").await?;
    admin.type_into("#composer", "\u{E007}").await?;
    visitor
        .wait(
            "the agent's reply in the widget",
            "return root && [...root.querySelectorAll('.lg2 > .m .b')].some(e => e.textContent === 'hello back over wss');",
        )
        .await?;

    // The origin checks hold through the proxy: another page's origin is told
    // `origin_not_allowed` and closed, the shop's is let through.
    let socket = format!("{}/ws/visitor?site={}", nginx.https(CHAT), site.key);
    let upgrade = [
        "-H",
        "Connection: Upgrade",
        "-H",
        "Upgrade: websocket",
        "-H",
        "Sec-WebSocket-Version: 13",
        "-H",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ];
    let evil = format!("Origin: https://evil.salam.test:{}", nginx.port);
    let (status, answer) = nginx
        .curl_with_body(&socket, &[&upgrade[..], &["-H", &evil]].concat())
        .await?;
    ensure!(
        status == 101 && answer.contains(r#""code":"origin_not_allowed""#),
        "a foreign origin is told it is refused through nginx: {status} {answer:?}"
    );
    let shop = format!("Origin: {}", nginx.https(SHOP));
    let (status, _) = nginx
        .curl(&socket, &[&upgrade[..], &["-H", &shop]].concat())
        .await?;
    ensure!(
        status == 101,
        "the shop's origin is upgraded through nginx: {status}"
    );
    // A write with the session cookie but without the CSRF header is refused.
    let session = format!("Cookie: salam_session={}", cookie.value());
    let logout = format!("{}/api/logout", nginx.https(CHAT));
    let (status, _) = nginx.curl(&logout, &["-X", "POST", "-H", &session]).await?;
    ensure!(
        status == 403,
        "a cookie write without x-salam-csrf: {status}"
    );
    // Plain HTTP is sent to HTTPS.
    let plain = format!("http://{CHAT}:{}/console", nginx.http_port);
    let (status, headers) = nginx.curl(&plain, &[]).await?;
    ensure!(
        status == 301 && headers.contains(&format!("https://{CHAT}/console")),
        "HTTP redirects to HTTPS: {status} {headers}"
    );

    // Retention and a visitor's data, in the console.
    admin.click("button[data-view='admin']").await?;
    admin.click("#admin-tab-privacy").await?;
    let days = format!("#retention form[data-id='{}'] .retention-days", site.id);
    admin.type_into(&days, "30").await?;
    admin
        .click(&format!(
            "#retention form[data-id='{}'] .retention-save",
            site.id
        ))
        .await?;
    eventually("the retention period is saved", UI_WAIT, || async {
        let stored = hub
            .state
            .store
            .site_by_id(&site.id)
            .await?
            .context("the site")?;
        let days = salam_hub::site::SiteSettings::parse(&stored.settings).retention_days;
        Ok((days == Some(30)).then_some(()))
    })
    .await?;
    admin
        .js(
            "const kind = document.getElementById('privacy-kind'); kind.value = 'visitor'; \
             kind.dispatchEvent(new Event('change', {bubbles: true})); return true;",
        )
        .await?;
    admin
        .type_into("#privacy-value", &conversation.visitor_id)
        .await?;
    admin.click("#privacy-export").await?;
    admin
        .wait_text(
            "#privacy-exported",
            "1 visitor(s), 1 conversation(s) exported",
        )
        .await?;
    admin
        .wait(
            "a download of the export",
            "const a = document.getElementById('privacy-download'); return a && a.href.startsWith('blob:') && a.download;",
        )
        .await?;
    admin.click("#privacy-erase").await?;
    admin.click("#privacy-confirm").await?;
    admin
        .wait_text("#privacy-erased", "Erased 1 visitor(s): 1 conversation(s)")
        .await?;
    admin.wait_text("#audit-table", "visitor.erase").await?;
    admin
        .wait_text("#audit-table", &conversation.visitor_id)
        .await?;
    ensure!(
        hub.state
            .store
            .conversation(&conversation.id)
            .await?
            .is_none(),
        "the erased conversation is gone"
    );
    Ok(())
}

#[test]
fn the_systemd_units_pass_systemd_analyze_verify() -> Result<()> {
    let analyze = tool("systemd-analyze", "systemd")?;
    let salam = salam_e2e::salam_binary()?;
    let units = tempfile::tempdir()?;
    let mut names = Vec::new();
    for entry in std::fs::read_dir(workspace()?.join("deploy/systemd"))? {
        let path = entry?.path();
        let name = path.file_name().context("a name")?.to_owned();
        // The binary the units name must exist for the check: this build's.
        let unit = std::fs::read_to_string(&path)?
            .replace("/usr/local/bin/salam", salam.to_str().context("utf-8")?);
        std::fs::write(units.path().join(&name), unit)?;
        names.push(units.path().join(&name).display().to_string());
    }
    names.sort();
    ensure!(
        names.len() == 3,
        "salam.service, salam-backup.service and .timer: {names:?}"
    );
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let output = std::process::Command::new(&analyze)
        .arg("verify")
        .args(&names)
        .output()?;
    let said = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success() && !said.contains(".service") && !said.contains(".timer"),
        "systemd-analyze verify: {said}"
    );
    Ok(())
}
