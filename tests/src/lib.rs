//! Test harness for Salam's end-to-end tests.
//!
//! Key design decision: **only real parts.** A test starts the real hub (in this
//! process on `127.0.0.1:0`, or as a separate `salam` process when it must be killed)
//! over a real SQLite file in a temporary directory, and talks to it with real
//! WebSocket clients (tokio-tungstenite) and HTTP. Nothing is mocked.

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use salam_hub::Hub;
use salam_hub::config::Config;
use salam_protocol::ServerFrame;
use salam_store::Site;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub mod chromium;
pub mod process;

/// The origin the test site allows.
pub const SHOP_ORIGIN: &str = "http://shop.test";

/// How long a test waits for any one frame.
pub const WAIT: Duration = Duration::from_secs(10);

/// A hub running in this process.
pub struct TestHub {
    pub addr: SocketAddr,
    pub site: Site,
    pub admin_email: String,
    pub admin_password: String,
    pub state: salam_hub::state::AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestHub {
    /// Starts a hub with default settings.
    pub async fn start() -> Result<TestHub> {
        TestHub::start_with(|_| {}).await
    }

    /// Starts a hub after `adjust` changes its configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Result<TestHub> {
        let dir = tempfile::tempdir()?;
        let mut config = Config {
            data: dir.path().to_path_buf(),
            ..Config::default()
        };
        config.log = "warn".into();
        adjust(&mut config);
        let hub = Hub::open(config).await?;
        let (admin_email, admin_password) = hub
            .first_start
            .admin
            .clone()
            .context("first start created no admin")?;
        let site = hub
            .state
            .store
            .create_site("Test Shop", &[SHOP_ORIGIN.to_owned()])
            .await?;
        // Relay tests talk to people directly; bot tests turn the bot on.
        hub.state
            .store
            .update_site_settings(&site.id, r#"{"bot": false}"#)
            .await?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = hub.state.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(hub.serve(listener, async move {
            let _ = stopped.await;
        }));
        Ok(TestHub {
            addr,
            site,
            admin_email,
            admin_password,
            state,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        })
    }

    /// Replaces the test site's settings (JSON, see the hub's `SiteSettings`); visitors
    /// greeted afterwards see them.
    pub async fn set_site_settings(&self, json: &str) -> Result<()> {
        self.state
            .store
            .update_site_settings(&self.site.id, json)
            .await?;
        Ok(())
    }

    /// Adds an agent of the test site and returns their bearer token.
    pub async fn add_agent(
        &self,
        name: &str,
        capacity: Option<u32>,
        departments: &[&str],
    ) -> Result<(String, String)> {
        let email = format!("{}@shop.test", name.to_lowercase());
        let password = "correct horse battery";
        let agent = self
            .state
            .store
            .create_agent(salam_store::NewAgent {
                email: email.clone(),
                name: name.to_owned(),
                role: salam_store::AgentRole::Agent,
                password_hash: salam_hub::auth::hash_password(password)
                    .map_err(|err| anyhow!("{err}"))?,
                site_ids: vec![self.site.id.clone()],
                capacity,
                departments: departments.iter().map(|d| d.to_string()).collect(),
            })
            .await?;
        let response = http_request(
            self.addr,
            "POST",
            "/api/login",
            &[("content-type", "application/json")],
            &json!({"email": email, "password": password}).to_string(),
        )
        .await?;
        let body: Value = serde_json::from_str(&response.body)?;
        let token = body["token"].as_str().context("no token")?.to_owned();
        Ok((agent.id, token))
    }

    /// An agent socket for a bearer token, greeted.
    pub async fn agent(&self, token: &str) -> Result<Client> {
        let mut client = Client::connect_agent(self.addr, token).await?;
        client.send_json(&json!({"type": "hello", "v": 1})).await?;
        let welcome = client.recv().await?;
        if !matches!(welcome, ServerFrame::Welcome { .. }) {
            bail!("expected welcome, got {welcome:?}");
        }
        client.welcome = Some(welcome);
        Ok(client)
    }

    /// Triggers graceful shutdown and waits for the hub to stop.
    pub async fn shutdown(&mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(15), task)
                .await
                .context("hub did not stop in time")???;
        }
        Ok(())
    }

    pub fn http(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A visitor connected and greeted (a new visitor unless `token` is given).
    pub async fn visitor(&self, token: Option<&str>) -> Result<Client> {
        let mut client = Client::connect_visitor(self.addr, Some(SHOP_ORIGIN)).await?;
        let mut hello = json!({"type": "hello", "v": 1, "site": self.site.key});
        if let Some(token) = token {
            hello["token"] = json!(token);
        }
        client.send_json(&hello).await?;
        let welcome = client.recv().await?;
        match &welcome {
            ServerFrame::Welcome { token, .. } => {
                client.token = token.clone();
                client.welcome = Some(welcome);
            }
            other => bail!("expected welcome, got {other:?}"),
        }
        Ok(client)
    }

    /// Signs in as the admin and returns the bearer token.
    pub async fn admin_token(&self) -> Result<String> {
        let response = http_request(
            self.addr,
            "POST",
            "/api/login",
            &[("content-type", "application/json")],
            &json!({"email": self.admin_email, "password": self.admin_password}).to_string(),
        )
        .await?;
        if response.status != 200 {
            bail!("login failed: {} {}", response.status, response.body);
        }
        let body: Value = serde_json::from_str(&response.body)?;
        body["token"]
            .as_str()
            .map(str::to_owned)
            .context("no token in login response")
    }

    /// An agent socket for the admin, greeted.
    pub async fn admin_agent(&self) -> Result<Client> {
        let token = self.admin_token().await?;
        let mut client = Client::connect_agent(self.addr, &token).await?;
        client.send_json(&json!({"type": "hello", "v": 1})).await?;
        let welcome = client.recv().await?;
        if !matches!(welcome, ServerFrame::Welcome { .. }) {
            bail!("expected welcome, got {welcome:?}");
        }
        client.welcome = Some(welcome);
        Ok(client)
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket client speaking protocol v1.
pub struct Client {
    pub socket: Socket,
    pub token: Option<String>,
    pub welcome: Option<ServerFrame>,
}

/// How a socket ended.
#[derive(Debug)]
pub enum Ended {
    Closed(Option<CloseFrame>),
    Error(String),
}

impl Client {
    /// Opens `/ws/visitor` with an `Origin` header.
    pub async fn connect_visitor(addr: SocketAddr, origin: Option<&str>) -> Result<Client> {
        Client::connect(
            addr,
            "/ws/visitor",
            origin.map(|o| ("Origin", o.to_owned())),
        )
        .await
    }

    /// Opens `/ws/agent` with a bearer token.
    pub async fn connect_agent(addr: SocketAddr, token: &str) -> Result<Client> {
        Client::connect(
            addr,
            "/ws/agent",
            Some(("Authorization", format!("Bearer {token}"))),
        )
        .await
    }

    pub async fn connect(
        addr: SocketAddr,
        path: &str,
        header: Option<(&'static str, String)>,
    ) -> Result<Client> {
        let mut request = format!("ws://{addr}{path}").into_client_request()?;
        if let Some((name, value)) = header {
            request
                .headers_mut()
                .insert(name, HeaderValue::from_str(&value)?);
        }
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Client {
            socket,
            token: None,
            welcome: None,
        })
    }

    pub async fn send_json(&mut self, value: &Value) -> Result<()> {
        self.send_text(&value.to_string()).await
    }

    pub async fn send_text(&mut self, text: &str) -> Result<()> {
        self.socket.send(WsMessage::text(text)).await?;
        Ok(())
    }

    /// The next protocol frame (skipping WebSocket pings).
    pub async fn recv(&mut self) -> Result<ServerFrame> {
        loop {
            let next = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .map_err(|_| anyhow!("no frame within {WAIT:?}"))?;
            match next {
                Some(Ok(WsMessage::Text(text))) => {
                    return salam_protocol::decode_server(text.as_str())
                        .map_err(|err| anyhow!("undecodable server frame {text}: {err}"));
                }
                Some(Ok(WsMessage::Close(frame))) => bail!("socket closed: {frame:?}"),
                Some(Ok(_)) => continue,
                Some(Err(err)) => bail!("socket error: {err}"),
                None => bail!("socket ended"),
            }
        }
    }

    /// Frames until one matches `want`; the others are returned too, in order.
    pub async fn recv_until(
        &mut self,
        mut want: impl FnMut(&ServerFrame) -> bool,
    ) -> Result<(ServerFrame, Vec<ServerFrame>)> {
        let mut skipped = Vec::new();
        loop {
            let frame = self.recv().await?;
            if want(&frame) {
                return Ok((frame, skipped));
            }
            skipped.push(frame);
        }
    }

    /// Waits for the socket to end and says how.
    pub async fn ended(&mut self) -> Ended {
        loop {
            match tokio::time::timeout(WAIT, self.socket.next()).await {
                Err(_) => return Ended::Error("still open".into()),
                Ok(Some(Ok(WsMessage::Close(frame)))) => return Ended::Closed(frame),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(err))) => return Ended::Error(err.to_string()),
                Ok(None) => return Ended::Closed(None),
            }
        }
    }

    /// Asserts that nothing arrives for `quiet` (pings aside).
    pub async fn expect_silence(&mut self, quiet: Duration) -> Result<()> {
        match tokio::time::timeout(quiet, self.socket.next()).await {
            Err(_) => Ok(()),
            Ok(Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_)))) => Ok(()),
            Ok(other) => bail!("expected silence, got {other:?}"),
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

/// Whether a WebSocket connection attempt was refused with `status`.
pub fn refused_with(result: &Result<Client>, status: u16) -> bool {
    match result {
        Err(err) => match err.downcast_ref::<tungstenite::Error>() {
            Some(tungstenite::Error::Http(response)) => response.status().as_u16() == status,
            _ => false,
        },
        Ok(_) => false,
    }
}

/// A minimal HTTP/1.1 response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// One HTTP request over a fresh connection (`Connection: close`), enough for tests
/// without pulling in an HTTP client.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<HttpResponse> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .context("http response timed out")??;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").context("no header end")?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .context("no status line")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// The `salam` binary, built if needed (for tests that run the hub as a process).
pub fn salam_binary() -> Result<std::path::PathBuf> {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("no workspace root")?
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "-q", "-p", "salam-hub", "--bin", "salam"])
        .current_dir(&workspace)
        .status()
        .context("cannot run cargo build")?;
    if !status.success() {
        bail!("cargo build of salam failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let binary = target.join("debug").join("salam");
    if !binary.exists() {
        bail!("no binary at {}", binary.display());
    }
    Ok(binary)
}
