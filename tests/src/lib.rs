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

pub mod axe;
pub mod chromium;
pub mod cluster;
pub mod host_pages;
pub mod postgres;
pub mod process;
pub mod resending;
pub mod smtp;
pub mod two_sided;
pub mod webhook_receiver;

/// The origin the test site allows.
pub const SHOP_ORIGIN: &str = "http://shop.test";

/// The password [`TestHub::add_account`] gives every account.
pub const AGENT_PASSWORD: &str = "correct horse battery";

/// An account to add with [`TestHub::add_account`].
#[derive(Debug, Clone)]
pub struct AccountSetup<'a> {
    /// Display name; the e-mail is `name@shop.test` in lower case.
    pub name: &'a str,
    pub role: salam_store::AgentRole,
    pub all_sites: bool,
    pub sites: &'a [&'a str],
    pub capacity: Option<u32>,
    pub departments: &'a [&'a str],
}

impl<'a> AccountSetup<'a> {
    /// An agent of these sites, named "Agent".
    pub fn agent_of(sites: &'a [&'a str]) -> AccountSetup<'a> {
        AccountSetup {
            name: "Agent",
            role: salam_store::AgentRole::Agent,
            all_sites: false,
            sites,
            capacity: None,
            departments: &[],
        }
    }
}

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
    /// With `SALAM_E2E_STORE=postgres`: the hub's scratch PostgreSQL database.
    _database: Option<salam_store::postgres::scratch::ScratchDatabase>,
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
        config.log.filter = "warn".into();
        // Every test client comes from 127.0.0.1: per-address limits would make one
        // test's clients one crowd. The tests of those limits set them back.
        config.limits.max_connections_per_ip = 1_000_000;
        config.limits.ip_rate_per_sec = 1_000_000;
        config.limits.ip_burst = 1_000_000;
        config.metrics.token = Some(process::METRICS_TOKEN.to_owned());
        adjust(&mut config);
        // `SALAM_E2E_STORE=postgres`: the same test on a PostgreSQL scratch database
        // (see `process::HubProcess::start`).
        let database = match std::env::var("SALAM_E2E_STORE").as_deref() {
            Ok("postgres") if config.store.url.is_none() => {
                let database = postgres::scratch().await?;
                config.store.url = Some(database.url().to_owned());
                Some(database)
            }
            _ => None,
        };
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
        // Created behind the API's back: routing and the authority are told, as the
        // API would.
        salam_hub::admin::announce_site(&hub.state, &site).await?;
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
            _database: database,
        })
    }

    /// Creates another site, as `POST /api/sites` would (routing and open consoles hear
    /// of it).
    pub async fn create_site(&self, name: &str, origins: &[String]) -> Result<Site> {
        let site = self.state.store.create_site(name, origins).await?;
        salam_hub::admin::announce_site(&self.state, &site).await?;
        Ok(site)
    }

    /// Replaces the test site's settings (JSON, see the hub's `SiteSettings`); visitors
    /// greeted afterwards see them, and routing applies them at once.
    pub async fn set_site_settings(&self, json: &str) -> Result<()> {
        self.state
            .store
            .update_site_settings(&self.site.id, json)
            .await?;
        let site = self
            .state
            .store
            .site_by_id(&self.site.id)
            .await?
            .context("the test site")?;
        salam_hub::admin::announce_site(&self.state, &site).await?;
        Ok(())
    }

    /// Adds an agent of the test site and returns their id and a bearer token.
    pub async fn add_agent(
        &self,
        name: &str,
        capacity: Option<u32>,
        departments: &[&str],
    ) -> Result<(String, String)> {
        self.add_account(AccountSetup {
            name,
            capacity,
            departments,
            ..AccountSetup::agent_of(&[&self.site.id])
        })
        .await
    }

    /// Adds an account as set up and returns its id and a bearer token. The password is
    /// [`AGENT_PASSWORD`].
    pub async fn add_account(&self, setup: AccountSetup<'_>) -> Result<(String, String)> {
        let email = format!("{}@shop.test", setup.name.to_lowercase());
        let agent = self
            .state
            .store
            .create_agent(salam_store::NewAgent {
                email: email.clone(),
                name: setup.name.to_owned(),
                role: setup.role,
                password_hash: salam_hub::auth::hash_password(AGENT_PASSWORD)
                    .map_err(|err| anyhow!("{err}"))?,
                all_sites: setup.all_sites,
                site_ids: setup.sites.iter().map(|site| site.to_string()).collect(),
                capacity: setup.capacity,
                departments: setup.departments.iter().map(|d| d.to_string()).collect(),
            })
            .await?;
        let token = self.login(&email, AGENT_PASSWORD).await?;
        Ok((agent.id, token))
    }

    /// Signs in and returns a bearer token (a new session each time).
    pub async fn login(&self, email: &str, password: &str) -> Result<String> {
        let response = http_request(
            self.addr,
            "POST",
            "/api/login",
            &[("content-type", "application/json")],
            &json!({"email": email, "password": password}).to_string(),
        )
        .await?;
        if response.status != 200 {
            bail!("login failed: {} {}", response.status, response.body);
        }
        let body: Value = serde_json::from_str(&response.body)?;
        Ok(body["token"].as_str().context("no token")?.to_owned())
    }

    /// A REST call with a bearer token and a JSON body; the status and the parsed body.
    pub async fn rest(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Value,
    ) -> Result<(u16, Value)> {
        let bearer = format!("Bearer {token}");
        let response = http_request(
            self.addr,
            method,
            path,
            &[
                ("authorization", bearer.as_str()),
                ("content-type", "application/json"),
            ],
            &if body.is_null() {
                String::new()
            } else {
                body.to_string()
            },
        )
        .await?;
        Ok((
            response.status,
            serde_json::from_str(&response.body).unwrap_or(Value::Null),
        ))
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
        client.greet_visitor(&self.site.key, token).await?;
        Ok(client)
    }

    /// A REST call with a bearer token that insists on `200` and returns the body.
    pub async fn get_ok(&self, token: &str, path: &str) -> Result<Value> {
        let (status, body) = self.rest(token, "GET", path, Value::Null).await?;
        if status != 200 {
            bail!("GET {path}: {status} {body}");
        }
        Ok(body)
    }

    /// A visitor greeted over a socket whose upgrade says it comes from `address`
    /// (`X-Forwarded-For`, believed from the loopback proxy), as a crowd behind one
    /// address or many addresses would look to the hub.
    pub async fn visitor_from(&self, address: &str, token: Option<&str>) -> Result<Client> {
        let mut client = Client::connect_with(
            self.addr,
            "/ws/visitor",
            &[
                ("Origin", SHOP_ORIGIN.to_owned()),
                ("X-Forwarded-For", address.to_owned()),
            ],
        )
        .await?;
        client.greet_visitor(&self.site.key, token).await?;
        Ok(client)
    }

    /// A new visitor says `text`; returns the visitor and the conversation from the ack.
    pub async fn visitor_says(&self, text: &str) -> Result<(Client, String)> {
        let mut visitor = self.visitor(None).await?;
        visitor
            .send_json(&json!({"type": "send", "client_id": "first", "text": text}))
            .await?;
        let (ack, _) = visitor
            .recv_until(|f| matches!(f, ServerFrame::Ack { .. }))
            .await?;
        match ack {
            ServerFrame::Ack { conversation, .. } => Ok((visitor, conversation)),
            _ => unreachable!("only an ack is awaited"),
        }
    }

    /// Polls the store until the conversation is as `want` says (30 s at most: CI runs
    /// the suite's tests in parallel on two shared cores).
    pub async fn wait_for(
        &self,
        conversation: &str,
        want: impl Fn(&salam_store::Conversation) -> bool,
    ) -> Result<salam_store::Conversation> {
        let mut last = None;
        for _ in 0..1000 {
            last = self.state.store.conversation(conversation).await?;
            if let Some(found) = &last
                && want(found)
            {
                return Ok(found.clone());
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        bail!("conversation {conversation} never reached the wanted state; last seen {last:?}")
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
        Client::connect_with(addr, path, header.as_slice()).await
    }

    /// Opens a WebSocket with these request headers.
    pub async fn connect_with(
        addr: SocketAddr,
        path: &str,
        headers: &[(&'static str, String)],
    ) -> Result<Client> {
        let mut request = format!("ws://{addr}{path}").into_client_request()?;
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(*name, HeaderValue::from_str(value)?);
        }
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Client {
            socket,
            token: None,
            welcome: None,
        })
    }

    /// Visitors: sends `hello` for the site (with the token, if any) and keeps the
    /// `welcome` and the token it gives.
    pub async fn greet_visitor(&mut self, site_key: &str, token: Option<&str>) -> Result<()> {
        let mut hello = json!({"type": "hello", "v": 1, "site": site_key});
        if let Some(token) = token {
            hello["token"] = json!(token);
        }
        self.send_json(&hello).await?;
        let welcome = self.recv().await?;
        match &welcome {
            ServerFrame::Welcome { token, .. } => {
                self.token = token.clone();
                self.welcome = Some(welcome);
                Ok(())
            }
            other => bail!("expected welcome, got {other:?}"),
        }
    }

    /// Who the hub greeted: the `you.id` of `welcome` (a visitor's or an agent's id).
    pub fn you(&self) -> Option<String> {
        match &self.welcome {
            Some(ServerFrame::Welcome { you, .. }) => you.id.clone(),
            _ => None,
        }
    }

    /// A round trip: sends `ping` and returns every frame that came before its `pong`.
    /// The hub handles a connection's frames in order, so whatever was sent before
    /// has been handled (and answered, unless its answer waits for a commit).
    pub async fn round_trip(&mut self) -> Result<Vec<ServerFrame>> {
        let nonce = u64::from(std::process::id()) ^ 0x5a1a;
        self.send_json(&json!({"type": "ping", "nonce": nonce}))
            .await?;
        let (_, before) = self
            .recv_until(
                |frame| matches!(frame, ServerFrame::Pong { nonce: Some(n) } if *n == nonce),
            )
            .await?;
        Ok(before)
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

    /// Agents: watches a conversation, as the console does when it opens one (`resume`
    /// from `after`): its stream, replayed and then live, comes to this connection.
    pub async fn watch(&mut self, conversation: &str, after: u64) -> Result<()> {
        self.send_json(&json!({"type": "resume", "conversation": conversation, "after": after}))
            .await
    }

    /// Agents: waits until a message with `text` reaches the console, as a person would
    /// find it: live in a conversation it follows, or as a summary (`activity`) of one
    /// it does not, which it then opens (watches) to read. Returns the message.
    pub async fn agent_sees(&mut self, text: &str) -> Result<salam_protocol::Message> {
        let (frame, _) = self
            .recv_until(|frame| match frame {
                ServerFrame::Message(message) => message.text == text,
                ServerFrame::Activity { preview, .. } => preview.text == text,
                _ => false,
            })
            .await
            .with_context(|| format!("the agent never got {text:?}"))?;
        let conversation = match frame {
            ServerFrame::Message(message) => return Ok(message),
            ServerFrame::Activity { conversation, .. } => conversation,
            _ => unreachable!("only messages and activity are awaited"),
        };
        self.watch(&conversation, 0).await?;
        let (frame, _) = self
            .recv_until(|frame| matches!(frame, ServerFrame::Message(m) if m.text == text))
            .await
            .with_context(|| format!("the agent never read {text:?}"))?;
        match frame {
            ServerFrame::Message(message) => Ok(message),
            _ => unreachable!("only messages are awaited"),
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

/// A JSON Web Token signed with HS256, as a site's backend signs a customer's identity
/// for `identify` (identity v2). Written here from RFC 7519 rather than taken from the
/// hub, so a test checks the hub against the standard, not against itself.
pub fn sign_identity(secret: &str, claims: &Value) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use hmac::Mac;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{header}.{payload}");
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(signed.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signed}.{signature}")
}

/// The code of an `error` frame.
pub fn error_code(frame: &ServerFrame) -> Option<salam_protocol::ErrorCode> {
    match frame {
        ServerFrame::Error { code, .. } => Some(*code),
        _ => None,
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
    let response = http_request_bytes(addr, method, path, headers, body).await?;
    Ok(HttpResponse {
        status: response.status,
        headers: response.headers,
        body: String::from_utf8_lossy(&response.body).into_owned(),
    })
}

/// A response as it came over the socket: the body's bytes as sent (de-chunked, not
/// decoded: with a `Content-Encoding`, still compressed), so its length is what the
/// client downloaded.
#[derive(Debug)]
pub struct HttpBytes {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpBytes {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// [`http_request`] with the body kept as bytes.
pub async fn http_request_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<HttpBytes> {
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
    let head_end = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .context("no header end")?;
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let body = &raw[head_end + 4..];
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
        body.to_vec()
    };
    Ok(HttpBytes {
        status,
        headers,
        body,
    })
}

fn dechunk(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(line_end) = rest.windows(2).position(|window| window == b"\r\n") {
        let size = std::str::from_utf8(&rest[..line_end])
            .ok()
            .and_then(|line| line.split(';').next())
            .and_then(|size| usize::from_str_radix(size.trim(), 16).ok());
        let after = &rest[line_end + 2..];
        let Some(size) = size else { break };
        if size == 0 || after.len() < size {
            break;
        }
        out.extend_from_slice(&after[..size]);
        rest = after[size..]
            .strip_prefix(b"\r\n")
            .unwrap_or(&after[size..]);
    }
    out
}

/// The `salam` binary, built if needed (for tests that run the hub as a process).
pub fn salam_binary() -> Result<std::path::PathBuf> {
    workspace_binary("salam-hub", "salam")
}

/// The `salam-loadgen` binary (crates/loadgen), built if needed (for tests that hold
/// more connections than one process may open files).
pub fn loadgen_binary() -> Result<std::path::PathBuf> {
    workspace_binary("salam-loadgen", "salam-loadgen")
}

/// Binary `bin` of the workspace's package `package`, built (debug) if needed.
fn workspace_binary(package: &str, bin: &str) -> Result<std::path::PathBuf> {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("no workspace root")?
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "-q", "-p", package, "--bin", bin])
        .current_dir(&workspace)
        .status()
        .context("cannot run cargo build")?;
    if !status.success() {
        bail!("cargo build of {bin} failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let binary = target.join("debug").join(bin);
    if !binary.exists() {
        bail!("no binary at {}", binary.display());
    }
    Ok(binary)
}
