//! The hub as a separate `salam` process, for the chaos and soak tests: start it on a
//! data directory with a configuration file, SIGKILL and restart it, sample its memory
//! and open files from `/proc`, and drive it through its admin REST API.
//!
//! Key design decision: these tests must see what an operator sees, so the hub is the
//! real binary (not the in-process [`crate::TestHub`]): its RSS is its own, a SIGKILL
//! loses whatever was not committed, and its log goes to a file the tests print when
//! something fails.

use crate::{Client, HttpResponse, http_request};
use anyhow::{Context, Result, anyhow, bail, ensure};
use salam_protocol::ServerFrame;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpSocket;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// How long the hub may take to print that it is listening (a debug build on a busy
/// two-core machine, possibly replaying a WAL after a SIGKILL).
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// What the hub printed on its first start.
#[derive(Debug, Clone)]
pub struct FirstStart {
    pub site_key: String,
    pub admin_email: String,
    pub admin_password: String,
}

/// A `salam serve` process.
pub struct HubProcess {
    binary: PathBuf,
    data: PathBuf,
    config: PathBuf,
    log: PathBuf,
    pub addr: SocketAddr,
    child: Option<tokio::process::Child>,
    /// Set by the first start on an empty data directory.
    pub first_start: Option<FirstStart>,
    /// Extra environment of the process (the cluster's `SALAM_DATABASE_URL`,
    /// `SALAM_BUS_URL`, `SALAM_HUB_ID`).
    env: Vec<(String, String)>,
    _scratch: tempfile::TempDir,
    /// With `SALAM_E2E_STORE=postgres`: the hub's own scratch PostgreSQL database.
    _database: Option<salam_store::postgres::scratch::ScratchDatabase>,
}

/// One sample of the hub process from `/proc`.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    /// Resident set size, KiB (`VmRSS`).
    pub rss_kib: u64,
    /// Open file descriptors (entries of `/proc/PID/fd`).
    pub fds: u64,
    pub threads: u64,
}

/// A port that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

impl HubProcess {
    /// Builds (if needed) and starts the hub on `data` with `config_toml` on a free port.
    /// The configuration file and the log live outside `data`, so a test can make the
    /// data directory read-only or full.
    pub async fn start(data: &Path, config_toml: &str) -> Result<HubProcess> {
        HubProcess::start_with_env(data, config_toml, &[]).await
    }

    /// [`HubProcess::start`] with extra environment variables for the process. With
    /// `SALAM_DATABASE_URL` among them, `SALAM_E2E_STORE` gives it no database of its
    /// own.
    pub async fn start_with_env(
        data: &Path,
        config_toml: &str,
        env: &[(&str, &str)],
    ) -> Result<HubProcess> {
        let mut hub = HubProcess::prepare(data, config_toml, env).await?;
        hub.spawn().await?;
        Ok(hub)
    }

    /// The process ready to run, on a free port, but not started ([`HubProcess::launch`]
    /// starts it).
    pub async fn prepare(
        data: &Path,
        config_toml: &str,
        env: &[(&str, &str)],
    ) -> Result<HubProcess> {
        let binary = tokio::task::spawn_blocking(crate::salam_binary).await??;
        let scratch = tempfile::tempdir()?;
        let config = scratch.path().join("salam.toml");
        let (config_toml, database) = if env.iter().any(|(name, _)| *name == "SALAM_DATABASE_URL") {
            (config_toml.to_owned(), None)
        } else {
            on_store_under_test(config_toml).await?
        };
        std::fs::write(&config, with_test_defaults(&config_toml)?)?;
        let log = scratch.path().join("hub.log");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        Ok(HubProcess {
            binary,
            data: data.to_path_buf(),
            config,
            log,
            addr,
            child: None,
            first_start: None,
            env: env
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            _scratch: scratch,
            _database: database,
        })
    }

    /// Starts a prepared (or killed) process once, without retrying; fails (with the
    /// log's tail) if it exits before listening.
    pub async fn launch(&mut self) -> Result<()> {
        self.kill().await?;
        self.spawn().await
    }

    /// Starts the process again on the same data directory and address (after a kill).
    pub async fn restart(&mut self) -> Result<()> {
        self.kill().await?;
        // The port was just released by a killed process; a few tries cover the rare
        // case where the kernel has not let go of it yet.
        let mut last = None;
        for _ in 0..10 {
            match self.spawn().await {
                Ok(()) => return Ok(()),
                Err(err) => {
                    last = Some(err);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("restart failed")))
    }

    async fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut child = tokio::process::Command::new(&self.binary)
            .arg("--config")
            .arg(&self.config)
            .arg("--data")
            .arg(&self.data)
            .arg("--listen")
            .arg(self.addr.to_string())
            .env("RUST_LOG", "warn")
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {}", self.binary.display()))?;
        let stdout = child.stdout.take().context("stdout is piped")?;
        let mut lines = BufReader::new(stdout).lines();
        let (mut site_key, mut email, mut password) = (None, None, None);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match tokio::time::timeout(left, lines.next_line()).await {
                Err(_) => {
                    let _ = child.start_kill();
                    bail!(
                        "the hub did not start within {START_TIMEOUT:?}; log:\n{}",
                        self.log_tail(40)
                    );
                }
                Ok(Ok(Some(line))) => line,
                Ok(Ok(None)) | Ok(Err(_)) => {
                    let status = child.wait().await?;
                    bail!(
                        "the hub exited before listening ({status}); log:\n{}",
                        self.log_tail(40)
                    );
                }
            };
            if let Some(rest) = line.split("public key ").nth(1) {
                site_key = Some(rest.trim_end_matches(").").to_owned());
            }
            if let Some(rest) = line.trim().strip_prefix("e-mail:") {
                email = Some(rest.trim().to_owned());
            }
            if let Some(rest) = line.trim().strip_prefix("password:") {
                password = Some(rest.trim().to_owned());
            }
            if line.starts_with("Salam is listening") {
                break;
            }
        }
        // Keep draining stdout so the hub never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        if let (Some(site_key), Some(admin_email), Some(admin_password)) =
            (site_key, email, password)
        {
            self.first_start = Some(FirstStart {
                site_key,
                admin_email,
                admin_password,
            });
        }
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL (no graceful shutdown, nothing flushed), then reap the process.
    pub async fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            child.wait().await?;
        }
        Ok(())
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|child| child.id())
    }

    /// Whether the process is still running (it has not crashed or exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Memory, open files and threads of the running hub.
    pub fn sample(&self) -> Result<ProcSample> {
        let pid = self.pid().context("the hub is not running")?;
        proc_sample(pid)
    }

    /// The last `n` lines of the hub's log (stderr, over every start).
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The credentials printed on the first start.
    pub fn first(&self) -> Result<&FirstStart> {
        self.first_start
            .as_ref()
            .context("the hub printed no first-start credentials")
    }

    /// Signs in as the admin created on the first start.
    pub async fn admin(&self) -> Result<Api> {
        let first = self.first()?;
        Api::login(self.addr, &first.admin_email, &first.admin_password).await
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// Reads `/proc/PID/status` and `/proc/PID/fd`.
pub fn proc_sample(pid: u32) -> Result<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("no /proc/{pid}/status (has the hub died?)"))?;
    let field = |name: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64;
    Ok(ProcSample {
        rss_kib: field("VmRSS:")?,
        fds,
        threads: field("Threads:")?,
    })
}

/// A site created for a test.
#[derive(Debug, Clone)]
pub struct SiteInfo {
    pub id: String,
    pub key: String,
}

/// The REST API with a bearer token.
#[derive(Debug, Clone)]
pub struct Api {
    pub addr: SocketAddr,
    pub token: String,
}

impl Api {
    /// `POST /api/login`.
    pub async fn login(addr: SocketAddr, email: &str, password: &str) -> Result<Api> {
        // Many agents signing in at once find every hashing slot busy (429 with
        // `Retry-After`) and try again, as a person would.
        let mut tries = 0;
        let response = loop {
            let response = http_request(
                addr,
                "POST",
                "/api/login",
                &[("content-type", "application/json")],
                &json!({"email": email, "password": password}).to_string(),
            )
            .await?;
            tries += 1;
            if response.status != 429 || tries >= 120 {
                break response;
            }
            let wait: u64 = response
                .header("retry-after")
                .and_then(|value| value.parse().ok())
                .unwrap_or(1);
            // Spread the retries so they do not come back in one wave.
            let jitter = u64::from(rand_jitter_ms());
            tokio::time::sleep(Duration::from_millis(wait * 1000 / 2 + jitter)).await;
        };
        ensure!(
            response.status == 200,
            "login of {email} failed: {} {}",
            response.status,
            response.body
        );
        let body: Value = serde_json::from_str(&response.body)?;
        let token = body["token"].as_str().context("no token")?.to_owned();
        Ok(Api { addr, token })
    }

    /// Any request; the response as it came.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<HttpResponse> {
        let bearer = format!("Bearer {}", self.token);
        let mut headers = vec![("authorization", bearer.as_str())];
        let body = match body {
            Some(body) => {
                headers.push(("content-type", "application/json"));
                body.to_string()
            }
            None => String::new(),
        };
        http_request(self.addr, method, path, &headers, &body).await
    }

    /// A request that must answer 2xx with JSON.
    pub async fn json(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let response = self.call(method, path, body).await?;
        ensure!(
            (200..300).contains(&response.status),
            "{method} {path}: {} {}",
            response.status,
            response.body
        );
        Ok(serde_json::from_str(&response.body)?)
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.json("GET", path, None).await
    }

    /// Creates a site allowing `origin`, with `settings` (such as `{"bot": false}`).
    pub async fn create_site(&self, name: &str, origin: &str, settings: Value) -> Result<SiteInfo> {
        let created = self
            .json(
                "POST",
                "/api/sites",
                Some(&json!({"name": name, "origins": [origin]})),
            )
            .await?;
        let site = SiteInfo {
            id: created["site"]["id"]
                .as_str()
                .context("site id")?
                .to_owned(),
            key: created["site"]["key"]
                .as_str()
                .context("site key")?
                .to_owned(),
        };
        self.json(
            "PUT",
            &format!("/api/sites/{}/settings", site.id),
            Some(&settings),
        )
        .await?;
        Ok(site)
    }

    /// Creates an agent of `site_ids` and returns their id.
    pub async fn create_agent(
        &self,
        email: &str,
        password: &str,
        site_ids: &[String],
        capacity: Option<u32>,
    ) -> Result<String> {
        let name = email.split('@').next().unwrap_or(email);
        let created = self
            .json(
                "POST",
                "/api/admin/agents",
                Some(&json!({
                    "email": email,
                    "name": name,
                    "password": password,
                    "site_ids": site_ids,
                    "capacity": capacity,
                })),
            )
            .await?;
        Ok(created["agent"]["id"]
            .as_str()
            .context("agent id")?
            .to_owned())
    }

    /// The whole history of a conversation, paging through it.
    pub async fn history(&self, conversation: &str) -> Result<Vec<Value>> {
        let mut messages: Vec<Value> = Vec::new();
        loop {
            let after = messages
                .last()
                .and_then(|message| message["seq"].as_u64())
                .unwrap_or(0);
            let page = self
                .get(&format!(
                    "/api/conversations/{conversation}/messages?after={after}&limit=1000"
                ))
                .await?;
            let page = page["messages"].as_array().cloned().unwrap_or_default();
            if page.is_empty() {
                return Ok(messages);
            }
            messages.extend(page);
        }
    }

    /// Open conversations of one site (summaries), at most 500.
    pub async fn open_conversations(&self, site_id: &str) -> Result<Vec<Value>> {
        let listed = self
            .get(&format!(
                "/api/conversations?site={site_id}&state=open&limit=500"
            ))
            .await?;
        Ok(listed["conversations"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

/// Checks a conversation's stored history: sequences 1, 2, 3, … without a gap, and no
/// `client_id` stored twice. Returns client id → sequence.
pub fn check_history(
    conversation: &str,
    messages: &[Value],
) -> Result<std::collections::HashMap<String, u64>> {
    let mut by_client = std::collections::HashMap::new();
    for (index, message) in messages.iter().enumerate() {
        let seq = message["seq"].as_u64().context("message without seq")?;
        ensure!(
            seq == index as u64 + 1,
            "{conversation}: stored sequence has a gap or duplicate: position {} holds seq {seq}",
            index + 1
        );
        if let Some(client_id) = message["client_id"].as_str()
            && let Some(earlier) = by_client.insert(client_id.to_owned(), seq)
        {
            bail!("{conversation}: client id {client_id} stored twice (seq {earlier} and {seq})");
        }
    }
    Ok(by_client)
}

/// Opens `/ws/visitor` from `origin` and greets with `site_key` (and `token` to come
/// back as the same visitor). The client's `token` and `welcome` are set.
pub async fn visitor_session(
    addr: SocketAddr,
    origin: &str,
    site_key: &str,
    token: Option<&str>,
) -> Result<Client> {
    let mut client = Client::connect_visitor(addr, Some(origin)).await?;
    greet_visitor(&mut client, site_key, token).await?;
    Ok(client)
}

async fn greet_visitor(client: &mut Client, site_key: &str, token: Option<&str>) -> Result<()> {
    let mut hello = json!({"type": "hello", "v": 1, "site": site_key});
    if let Some(token) = token {
        hello["token"] = json!(token);
    }
    client.send_json(&hello).await?;
    match client.recv().await? {
        welcome @ ServerFrame::Welcome { .. } => {
            if let ServerFrame::Welcome { token, .. } = &welcome {
                client.token = token.clone();
            }
            client.welcome = Some(welcome);
            Ok(())
        }
        other => bail!("expected welcome, got {other:?}"),
    }
}

/// Opens `/ws/agent` with a bearer token and greets; `welcome` is set.
pub async fn agent_session(addr: SocketAddr, token: &str) -> Result<Client> {
    let mut client = Client::connect_agent(addr, token).await?;
    greet_agent(&mut client).await?;
    Ok(client)
}

async fn greet_agent(client: &mut Client) -> Result<()> {
    client.send_json(&json!({"type": "hello", "v": 1})).await?;
    match client.recv().await? {
        welcome @ ServerFrame::Welcome { .. } => {
            client.welcome = Some(welcome);
            Ok(())
        }
        other => bail!("expected welcome, got {other:?}"),
    }
}

/// A WebSocket whose kernel receive buffer is tiny (a few KiB instead of megabytes of
/// auto-tuned buffer), so a client that stops reading pushes back on the hub at once.
async fn connect_small_buffer(
    addr: SocketAddr,
    path: &str,
    header: (&'static str, String),
) -> Result<Client> {
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let stream = socket.connect(addr).await?;
    let mut request = format!("ws://{addr}{path}").into_client_request()?;
    request
        .headers_mut()
        .insert(header.0, HeaderValue::from_str(&header.1)?);
    let (socket, _) =
        tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)).await?;
    Ok(Client {
        socket,
        token: None,
        welcome: None,
    })
}

/// [`visitor_session`] over a socket with a tiny receive buffer (a slow consumer).
pub async fn small_buffer_visitor(
    addr: SocketAddr,
    origin: &str,
    site_key: &str,
    token: Option<&str>,
) -> Result<Client> {
    let mut client =
        connect_small_buffer(addr, "/ws/visitor", ("Origin", origin.to_owned())).await?;
    greet_visitor(&mut client, site_key, token).await?;
    Ok(client)
}

/// [`agent_session`] over a socket with a tiny receive buffer (a slow consumer).
pub async fn small_buffer_agent(addr: SocketAddr, token: &str) -> Result<Client> {
    let mut client = connect_small_buffer(
        addr,
        "/ws/agent",
        ("Authorization", format!("Bearer {token}")),
    )
    .await?;
    greet_agent(&mut client).await?;
    Ok(client)
}

/// Up to a second, different for each caller (no `rand` dependency: the clock's
/// nanoseconds are as good for spreading retries).
fn rand_jitter_ms() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos() % 1000)
}

/// `SALAM_E2E_STORE=postgres` runs every hub these helpers start on a PostgreSQL
/// scratch database of its own (issue 13): the same tests, the other backend. A test
/// that sets `store.url` itself keeps it. Default (unset or `sqlite`): the SQLite file
/// in the data directory.
async fn on_store_under_test(
    config_toml: &str,
) -> Result<(
    String,
    Option<salam_store::postgres::scratch::ScratchDatabase>,
)> {
    match std::env::var("SALAM_E2E_STORE").as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => Ok((config_toml.to_owned(), None)),
        Ok("postgres") => {
            let mut config: toml::Table =
                config_toml.parse().context("the test's configuration")?;
            let store = config
                .entry("store")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(store) = store else {
                bail!("[store] is not a table");
            };
            if store.contains_key("url") {
                return Ok((config_toml.to_owned(), None));
            }
            let database = crate::postgres::scratch().await?;
            store.insert("url".into(), toml::Value::String(database.url().into()));
            Ok((toml::to_string(&config)?, Some(database)))
        }
        Ok(other) => bail!("SALAM_E2E_STORE is sqlite or postgres, not {other:?}"),
    }
}

/// The `/metrics` token of hubs started by these tests.
pub const METRICS_TOKEN: &str = "test-metrics-token";

/// The configuration a test asked for, with what every process test needs unless it
/// says otherwise: a `/metrics` token, and per-address limits out of the way (every
/// client of a test comes from 127.0.0.1, which in production would be thousands of
/// addresses). A test that raised the per-connection rate gets the same rate per
/// visitor.
pub fn with_test_defaults(config_toml: &str) -> Result<String> {
    let mut config: toml::Table = config_toml.parse().context("the test's configuration")?;
    let table = |config: &mut toml::Table, name: &str| -> Result<toml::Table> {
        Ok(match config.remove(name) {
            Some(toml::Value::Table(table)) => table,
            Some(_) => bail!("[{name}] is not a table"),
            None => toml::Table::new(),
        })
    };
    let mut limits = table(&mut config, "limits")?;
    for key in ["max_connections_per_ip", "ip_rate_per_sec", "ip_burst"] {
        limits.entry(key).or_insert(toml::Value::Integer(1_000_000));
    }
    for (from, to) in [
        ("rate_per_sec", "visitor_rate_per_sec"),
        ("burst", "visitor_burst"),
    ] {
        if let Some(value) = limits.get(from).cloned() {
            limits.entry(to).or_insert(value);
        }
    }
    config.insert("limits".into(), toml::Value::Table(limits));
    let mut metrics = table(&mut config, "metrics")?;
    metrics
        .entry("token")
        .or_insert(toml::Value::String(METRICS_TOKEN.into()));
    config.insert("metrics".into(), toml::Value::Table(metrics));
    Ok(toml::to_string(&config)?)
}

/// A value of the hub's Prometheus text (`/metrics`), such as
/// `salam_connections{kind="agent"}`; 0 when absent. A hub of a cluster labels every
/// sample `hub="ID"` first (`salam_connections{hub="hub1",kind="agent"}`): that label
/// is ignored, so the same name matches on one hub and on a cluster's.
pub async fn metric(addr: SocketAddr, name: &str) -> Result<f64> {
    let authorization = format!("Bearer {METRICS_TOKEN}");
    let response = http_request(
        addr,
        "GET",
        "/metrics",
        &[("authorization", authorization.as_str())],
        "",
    )
    .await?;
    ensure!(
        response.status == 200,
        "/metrics answered {}",
        response.status
    );
    Ok(response
        .body
        .lines()
        .find_map(|line| {
            without_hub_label(line)
                .strip_prefix(name)
                .filter(|rest| rest.starts_with(' '))
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0))
}

/// A sample line without its leading `hub="…"` label: `a{hub="h1",k="v"} 1` →
/// `a{k="v"} 1`, `a{hub="h1"} 1` → `a 1`.
fn without_hub_label(line: &str) -> std::borrow::Cow<'_, str> {
    let Some(start) = line.find("{hub=\"") else {
        return line.into();
    };
    let value = start + "{hub=\"".len();
    let Some(end) = line[value..].find('"').map(|end| value + end + 1) else {
        return line.into();
    };
    let (name, rest) = (&line[..start], &line[end..]);
    match rest.strip_prefix(',') {
        Some(labels) => format!("{name}{{{labels}").into(),
        None => format!("{name}{}", rest.strip_prefix('}').unwrap_or(rest)).into(),
    }
}

/// The origin every site created by [`World`] allows.
pub const ORIGIN: &str = "http://chaos.test";

/// The password of every agent [`add_agents`] creates.
pub const PASSWORD: &str = "chaos-password-1";

/// A hub process with a site whose bot is off (visitors go straight to agents).
pub struct World {
    pub hub: HubProcess,
    pub admin: Api,
    pub site: SiteInfo,
    _data: Option<tempfile::TempDir>,
}

impl World {
    /// A hub on a fresh temporary data directory.
    pub async fn start(config_toml: &str) -> Result<World> {
        let data = tempfile::tempdir()?;
        let mut world = World::start_on(data.path(), config_toml).await?;
        world._data = Some(data);
        Ok(world)
    }

    /// A hub on `data` (which the caller keeps alive).
    pub async fn start_on(data: &Path, config_toml: &str) -> Result<World> {
        let hub = HubProcess::start(data, config_toml).await?;
        let admin = hub.admin().await?;
        let site = admin
            .create_site("Chaos Shop", ORIGIN, json!({"bot": false}))
            .await?;
        Ok(World {
            hub,
            admin,
            site,
            _data: None,
        })
    }

    /// Fails if the hub's log shows a panic.
    pub fn assert_no_panic(&self) -> Result<()> {
        let log = self.hub.log_tail(100_000);
        ensure!(
            !log.contains("panicked"),
            "the hub panicked; log:\n{}",
            self.hub.log_tail(60)
        );
        Ok(())
    }
}

/// An agent account with a session.
#[derive(Debug, Clone)]
pub struct AgentAccount {
    pub id: String,
    pub token: String,
}

/// Creates `n` agents named `{prefix}{i}` through `POST /api/admin/agents` and signs
/// each in through `POST /api/login`. Both hash or verify an argon2 password (about
/// 15–20 ms each here), so a few run at once: enough for both cores, without hundreds
/// of 19 MiB argon2 buffers on the hub's blocking pool.
pub async fn add_agents(
    admin: &Api,
    prefix: &str,
    sites_of: impl Fn(usize) -> Vec<String>,
    n: usize,
    capacity: Option<u32>,
) -> Result<Vec<AgentAccount>> {
    let limit = Arc::new(tokio::sync::Semaphore::new(4));
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..n {
        let admin = admin.clone();
        let limit = limit.clone();
        let email = format!("{prefix}{index}@chaos.test");
        let site_ids = sites_of(index);
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await?;
            let id = admin
                .create_agent(&email, PASSWORD, &site_ids, capacity)
                .await?;
            let session = Api::login(admin.addr, &email, PASSWORD).await?;
            anyhow::Ok((
                index,
                AgentAccount {
                    id,
                    token: session.token,
                },
            ))
        });
    }
    let mut agents: Vec<Option<AgentAccount>> = vec![None; n];
    while let Some(joined) = tasks.join_next().await {
        let (index, agent) = joined??;
        agents[index] = Some(agent);
    }
    agents
        .into_iter()
        .map(|agent| agent.context("an agent was not created"))
        .collect()
}

/// Waits (generously) until `check` holds, polling; fails with `what` and the last
/// error or value seen.
pub async fn eventually<T, F, Fut>(
    what: &str,
    timeout: std::time::Duration,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => "condition not met".to_owned(),
            Err(err) => format!("{err:#}"),
        };
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("{what}: not within {timeout:?} ({last})");
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Latency and trend statistics for the chaos and soak tests.
pub mod stats {
    /// The `q`-quantile (0..=1) of `values` (nearest rank); 0 for no values.
    pub fn quantile(values: &[f64], q: f64) -> f64 {
        if values.is_empty() {
            return 0.0;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = (q * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    pub fn mean(values: &[f64]) -> f64 {
        if values.is_empty() {
            return 0.0;
        }
        values.iter().sum::<f64>() / values.len() as f64
    }

    /// Least-squares slope of `ys` over `xs`.
    pub fn slope(xs: &[f64], ys: &[f64]) -> f64 {
        let (mx, my) = (mean(xs), mean(ys));
        let covariance: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
        let variance: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
        if variance == 0.0 {
            0.0
        } else {
            covariance / variance
        }
    }

    /// `n=…, p50=…, p99=…, max=…` in milliseconds.
    pub fn describe(values_ms: &[f64]) -> String {
        format!(
            "n={}, p50={:.1} ms, p95={:.1} ms, p99={:.1} ms, max={:.1} ms",
            values_ms.len(),
            quantile(values_ms, 0.5),
            quantile(values_ms, 0.95),
            quantile(values_ms, 0.99),
            quantile(values_ms, 1.0)
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_hub_label_is_ignored() {
        use super::without_hub_label as strip;
        assert_eq!(
            strip("salam_connections{hub=\"hub1\",kind=\"visitor\"} 5"),
            "salam_connections{kind=\"visitor\"} 5"
        );
        assert_eq!(strip("salam_up{hub=\"hub2\"} 1"), "salam_up 1");
        assert_eq!(strip("salam_up 1"), "salam_up 1");
        assert_eq!(strip("a{kind=\"x\"} 1"), "a{kind=\"x\"} 1");
    }
}
