//! Several hubs behind nginx, for the cluster tests (issue 13).
//!
//! - [`NatsServer`]: Debian's `nats-server` (core NATS, no JetStream) on a free port of
//!   the test's own; killed and restarted on the same port to test the bus going away.
//! - [`Nginx`]: Debian's nginx running `deploy/nginx/salam-cluster.conf` as it is in the
//!   repository, with only its listen line and upstream servers swapped for the test's
//!   addresses ([`render_cluster_conf`]), so the recipe cannot drift from what is
//!   tested.
//! - [`Cluster`]: one scratch PostgreSQL database (or, with [`Cluster::start_on`], a
//!   database of the test's choosing), one NATS server, N real `salam`
//!   processes ([`HubProcess`]) started one after another with `SALAM_DATABASE_URL`,
//!   `SALAM_BUS_URL` and `SALAM_HUB_ID=hub1..N`, and nginx in front of all of them.
//!
//! Every hub must start: [`Cluster::start`] fails otherwise (with the hub's log).
//! Tests that need every hub answering (not only listening) call
//! [`Cluster::wait_all_serving`].

use crate::http_request;
use crate::process::{Api, FirstStart, HubProcess, free_port};
use anyhow::{Context, Result, bail, ensure};
use salam_store::postgres::scratch::ScratchDatabase;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long nginx or NATS may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The path of a program the cluster tests need, or an error that says how to get it.
pub fn tool(name: &str, package: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .with_context(|| {
            format!("{name} is missing: the cluster tests need Debian's {package} (`apt-get install -y {package}`, which .ci/run does)")
        })
}

fn workspace() -> Result<PathBuf> {
    Ok(Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the workspace")?
        .to_path_buf())
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A `nats-server` process of the test's own (core NATS on 127.0.0.1, no JetStream,
/// no monitoring port). Killed on drop.
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<tokio::process::Child>,
}

impl NatsServer {
    /// Starts `nats-server -a 127.0.0.1 -p PORT` on a free port and waits until it
    /// greets a client with `INFO`.
    pub async fn start() -> Result<NatsServer> {
        let mut server = NatsServer {
            binary: tool("nats-server", "nats-server")?,
            port: free_port()?,
            dir: tempfile::Builder::new().prefix("salam-nats").tempdir()?,
            child: None,
        };
        server.spawn().await?;
        Ok(server)
    }

    async fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let mut child = tokio::process::Command::new(&self.binary)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {}", self.binary.display()))?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("nats-server exited ({status}); log:\n{}", self.log_tail(20));
            }
            if nats_info(self.addr()).await.is_ok() {
                break;
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = child.start_kill();
                bail!(
                    "nats-server does not greet on {} within {START_TIMEOUT:?}; log:\n{}",
                    self.addr(),
                    self.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.child = Some(child);
        Ok(())
    }

    /// `nats://127.0.0.1:PORT`, for `SALAM_BUS_URL`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// SIGKILL, then reap: every client's connection drops at once.
    pub async fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            child.wait().await?;
        }
        Ok(())
    }

    /// Kills the server (if running) and starts it again on the same port.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill().await?;
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
        Err(last.unwrap_or_else(|| anyhow::anyhow!("nats-server did not restart")))
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats.log")
    }

    /// The last `n` lines of the server's log, over every start.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log_path(), n)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// Connects to a NATS server and returns the `INFO` line it greets with.
pub async fn nats_info(addr: SocketAddr) -> Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    let line = read_line(&mut stream).await?;
    ensure!(line.starts_with("INFO "), "not a NATS greeting: {line:?}");
    Ok(line)
}

async fn read_line(stream: &mut TcpStream) -> Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(5), async {
        while !line.ends_with(b"\r\n") {
            let n = stream.read(&mut byte).await?;
            ensure!(n == 1, "the connection closed");
            line.push(byte[0]);
            ensure!(line.len() <= 64 * 1024, "an over-long line");
        }
        anyhow::Ok(())
    })
    .await
    .context("no line within 5 s")??;
    Ok(String::from_utf8_lossy(&line).trim_end().to_owned())
}

/// A NATS round trip in the protocol's own words: connect, subscribe to `subject`,
/// publish `payload` to it and return the lines the server sent back (the `MSG` header
/// and the payload) before its `PONG`.
pub async fn nats_round_trip(
    addr: SocketAddr,
    subject: &str,
    payload: &str,
) -> Result<Vec<String>> {
    let mut stream = TcpStream::connect(addr).await?;
    read_line(&mut stream).await?;
    let commands = format!(
        "CONNECT {{\"verbose\":false,\"pedantic\":false,\"name\":\"salam-e2e\"}}\r\nSUB {subject} 1\r\nPUB {subject} {}\r\n{payload}\r\nPING\r\n",
        payload.len()
    );
    stream.write_all(commands.as_bytes()).await?;
    let mut lines = Vec::new();
    loop {
        let line = read_line(&mut stream).await?;
        if line == "PONG" {
            return Ok(lines);
        }
        ensure!(!line.starts_with("-ERR"), "the server said {line}");
        lines.push(line);
    }
}

/// `deploy/nginx/salam-cluster.conf` with nginx on `listen` and `upstreams` as the
/// hubs: the recipe's `listen 8080;` becomes `listen LISTEN;` (its IPv6 line goes), and
/// its three `server 127.0.0.1:808N …;` lines become one line per upstream with the
/// same parameters (`max_fails`, `fail_timeout`). Fails if the recipe no longer has
/// those lines.
pub fn render_cluster_conf(
    recipe: &str,
    listen: SocketAddr,
    upstreams: &[SocketAddr],
) -> Result<String> {
    ensure!(!upstreams.is_empty(), "nginx needs at least one upstream");
    let stale = |what: &str| {
        format!(
            "deploy/nginx/salam-cluster.conf no longer has {what}: change tests/src/cluster.rs and docs/deploy.md with it"
        )
    };
    let mut out = Vec::new();
    let mut servers = 0;
    let (mut listen_lines, mut listen6_lines) = (0, 0);
    for line in recipe.lines() {
        let trimmed = line.trim();
        if trimmed == "listen [::]:8080;" {
            listen6_lines += 1;
            continue;
        }
        if trimmed == "listen 8080;" {
            listen_lines += 1;
            out.push(line.replace("listen 8080;", &format!("listen {listen};")));
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("server 127.0.0.1:808") {
            servers += 1;
            if servers == 1 {
                let indent = &line[..line.len() - line.trim_start().len()];
                // `1 max_fails=… fail_timeout=…;` → ` max_fails=… fail_timeout=…;`
                let parameters = rest
                    .split_once(' ')
                    .map(|(_, parameters)| format!(" {parameters}"))
                    .unwrap_or_else(|| ";".to_owned());
                for upstream in upstreams {
                    out.push(format!("{indent}server {upstream}{parameters}"));
                }
            }
            continue;
        }
        out.push(line.to_owned());
    }
    ensure!(listen_lines == 1, "{}", stale("one `listen 8080;`"));
    ensure!(listen6_lines == 1, "{}", stale("one `listen [::]:8080;`"));
    ensure!(
        servers == 3,
        "{}",
        stale("three `server 127.0.0.1:808N …;` lines")
    );
    Ok(out.join("\n") + "\n")
}

/// The main-context directives given with `-g` (not in the file: nginx refuses a
/// directive given twice).
fn globals(dir: &Path) -> String {
    let dir = dir.display();
    format!("daemon off; pid {dir}/nginx.pid; error_log {dir}/error.log warn;")
}

/// Writes `dir/nginx.conf`, the main context a package's /etc/nginx/nginx.conf would
/// hold (two workers, room for many sockets, temp paths and logs in `dir`) with
/// `recipe` as the `http` block's content, and has `nginx -t` check it.
fn write_and_check(binary: &Path, dir: &Path, recipe: &str) -> Result<()> {
    let path = dir.display();
    let config = format!(
        "worker_processes 2;\nworker_rlimit_nofile 20000;\n\
         events {{ worker_connections 16000; }}\n\
         http {{\n\
         # Which hubs served each request ($upstream_addr lists every one tried).\n\
         log_format salam_upstreams '$request_method $request_uri $status $upstream_addr';\n\
         access_log {path}/access.log salam_upstreams;\n\
         client_body_temp_path {path}/client_body_temp;\nproxy_temp_path {path}/proxy_temp;\n\
         fastcgi_temp_path {path}/fastcgi_temp;\nuwsgi_temp_path {path}/uwsgi_temp;\n\
         scgi_temp_path {path}/scgi_temp;\n\
         # ---- deploy/nginx/salam-cluster.conf\n{recipe}}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), config)?;
    let output = std::process::Command::new(binary)
        .arg("-t")
        .arg("-q")
        .arg("-p")
        .arg(format!("{path}/"))
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-g")
        .arg(globals(dir))
        .output()
        .context("cannot run nginx -t")?;
    ensure!(
        output.status.success(),
        "nginx -t refuses deploy/nginx/salam-cluster.conf: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// `nginx -t` on `deploy/nginx/salam-cluster.conf` exactly as shipped (nginx on 8080,
/// the hubs on 127.0.0.1:8081 to 8083), inside the main context of [`Nginx`].
pub fn check_cluster_conf_as_shipped() -> Result<()> {
    let binary = tool("nginx", "nginx")?;
    let dir = tempfile::Builder::new().prefix("salam-nginx").tempdir()?;
    let recipe = std::fs::read_to_string(workspace()?.join("deploy/nginx/salam-cluster.conf"))?;
    write_and_check(&binary, dir.path(), &recipe)
}

/// Debian's nginx running `deploy/nginx/salam-cluster.conf` on a free port of
/// 127.0.0.1, in front of the given upstreams. Two workers (a master process), in the
/// foreground; the whole process group is killed on drop.
pub struct Nginx {
    binary: PathBuf,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Option<tokio::process::Child>,
}

impl Nginx {
    /// Renders the recipe for `upstreams` and starts nginx; waits until it listens.
    pub async fn start(upstreams: &[SocketAddr]) -> Result<Nginx> {
        let binary = tool("nginx", "nginx")?;
        let dir = tempfile::Builder::new().prefix("salam-nginx").tempdir()?;
        // Run as root, nginx's workers are `nobody`: they must reach the temp paths.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mut nginx = Nginx {
            binary,
            addr,
            dir,
            child: None,
        };
        nginx.write_config(upstreams)?;
        let prefix = format!("{}/", nginx.dir.path().display());
        let mut command = tokio::process::Command::new(&nginx.binary);
        command
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(nginx.config_path())
            .arg("-e")
            .arg(nginx.error_log_path())
            .arg("-g")
            .arg(nginx.globals())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        nginx.child = Some(command.spawn().context("cannot run nginx")?);
        let started = Instant::now();
        while TcpStream::connect(nginx.addr).await.is_err() {
            if let Some(status) = nginx.child.as_mut().and_then(|c| c.try_wait().transpose()) {
                bail!("nginx exited ({}): {}", status?, nginx.log_tail(20));
            }
            ensure!(
                started.elapsed() < START_TIMEOUT,
                "nginx does not listen on {} within {START_TIMEOUT:?}: {}",
                nginx.addr,
                nginx.log_tail(20)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(nginx)
    }

    fn globals(&self) -> String {
        globals(self.dir.path())
    }

    fn write_config(&self, upstreams: &[SocketAddr]) -> Result<()> {
        let recipe = std::fs::read_to_string(workspace()?.join("deploy/nginx/salam-cluster.conf"))?;
        let recipe = render_cluster_conf(&recipe, self.addr, upstreams)?;
        write_and_check(&self.binary, self.dir.path(), &recipe)
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("nginx.conf")
    }

    fn error_log_path(&self) -> PathBuf {
        self.dir.path().join("error.log")
    }

    /// Where clients connect (HTTP and WebSocket).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The last `n` lines of nginx's error log (level `warn` and up: a refused upstream
    /// connect is logged as an error).
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.error_log_path(), n)
    }

    /// The access log, one line per finished request: `METHOD URI STATUS UPSTREAMS`,
    /// where UPSTREAMS lists every hub tried, in order (`127.0.0.1:A, 127.0.0.1:B`).
    /// A WebSocket's line is written when it closes.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// For each finished request in the access log, in order, the last upstream tried:
    /// the hub that answered, unless nginx gave up (502, 504). Requests that reached no
    /// upstream are left out.
    pub fn served_by(&self) -> Vec<SocketAddr> {
        self.access_log()
            .lines()
            .filter_map(|line| line.rsplit([' ', ',']).next()?.parse().ok())
            .collect()
    }

    /// Points nginx at other upstreams without dropping open connections (SIGHUP): the
    /// file is rendered and checked again, and this returns once new workers run and
    /// no old worker accepts connections any more (so the next connection meets the
    /// new upstreams). Old workers finish their open WebSockets.
    pub async fn reload(&mut self, upstreams: &[SocketAddr]) -> Result<()> {
        self.write_config(upstreams)?;
        let pid = self.pid().context("nginx is not running")?;
        let listener = listening_inode(self.addr)?;
        let before = workers(pid);
        rustix::process::kill_process(pid, rustix::process::Signal::HUP)?;
        let started = Instant::now();
        loop {
            let new_workers = workers(pid).iter().any(|worker| !before.contains(worker));
            let old_accepting = before.iter().any(|worker| holds_socket(worker, &listener));
            if new_workers && !old_accepting {
                return Ok(());
            }
            ensure!(
                started.elapsed() < START_TIMEOUT,
                "nginx did not switch to new workers after SIGHUP: {}",
                self.log_tail(20)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn pid(&self) -> Option<rustix::process::Pid> {
        let id = self.child.as_ref()?.id()?;
        rustix::process::Pid::from_raw(i32::try_from(id).ok()?)
    }
}

/// The child processes of `pid` (nginx's workers), from `/proc`.
fn workers(pid: rustix::process::Pid) -> Vec<String> {
    let raw = pid.as_raw_nonzero();
    std::fs::read_to_string(format!("/proc/{raw}/task/{raw}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The inode of the socket listening on `addr` (an IPv4 address), from
/// `/proc/net/tcp`.
fn listening_inode(addr: SocketAddr) -> Result<String> {
    let SocketAddr::V4(v4) = addr else {
        bail!("{addr} is not IPv4");
    };
    let local = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(v4.ip().octets()),
        v4.port()
    );
    let table = std::fs::read_to_string("/proc/net/tcp")?;
    table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        // sl, local_address, rem_address, st (0A: LISTEN), …, inode (the tenth).
        .find(|fields| fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"0A"))
        .and_then(|fields| fields.get(9).map(|inode| inode.to_string()))
        .with_context(|| format!("no socket listens on {addr}"))
}

/// Whether process `pid` has the socket `inode` open (false once it is gone).
fn holds_socket(pid: &str, inode: &str) -> bool {
    let wanted = format!("socket:[{inode}]");
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| {
            entries.filter_map(|entry| entry.ok()).any(|entry| {
                std::fs::read_link(entry.path())
                    .is_ok_and(|target| target.as_os_str() == wanted.as_str())
            })
        })
        .unwrap_or(false)
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // The master and its workers, which would outlive a killed master.
        if let Some(pid) = self.pid() {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// N hubs on one PostgreSQL database and one NATS server, behind nginx.
pub struct Cluster {
    // Dropped in this order: nginx, the hubs, NATS, the data, the database.
    nginx: Nginx,
    hubs: Vec<HubProcess>,
    nats: NatsServer,
    _dirs: Vec<tempfile::TempDir>,
    database_url: String,
    _scratch: Option<ScratchDatabase>,
}

impl Cluster {
    /// A scratch database, a NATS server, `hubs` hubs started one after another (each
    /// with `config_toml`, its own data directory and port, and the environment
    /// `SALAM_DATABASE_URL`, `SALAM_BUS_URL`, `SALAM_HUB_ID=hubN`), then nginx in front
    /// of every hub's address. Any hub failing to start fails the start.
    pub async fn start(hubs: usize, config_toml: &str) -> Result<Cluster> {
        let database = crate::postgres::scratch().await?;
        let mut cluster = Cluster::start_on(database.url(), hubs, config_toml).await?;
        cluster._scratch = Some(database);
        Ok(cluster)
    }

    /// As [`Cluster::start`], on the database at `database_url` (a
    /// [`crate::postgres::PrivatePostgres`] the test stops and starts) instead of a
    /// scratch database; the caller keeps that database alive.
    pub async fn start_on(database_url: &str, hubs: usize, config_toml: &str) -> Result<Cluster> {
        ensure!(hubs >= 1, "a cluster has at least one hub");
        let nats = NatsServer::start().await?;
        let bus = nats.url();
        let mut processes = Vec::new();
        let mut dirs = Vec::new();
        for index in 0..hubs {
            let id = hub_id(index);
            let data = tempfile::Builder::new()
                .prefix(&format!("salam-{id}"))
                .tempdir()?;
            let env = [
                ("SALAM_DATABASE_URL", database_url),
                ("SALAM_BUS_URL", bus.as_str()),
                ("SALAM_HUB_ID", id.as_str()),
            ];
            let mut hub = HubProcess::prepare(data.path(), config_toml, &env).await?;
            hub.launch()
                .await
                .with_context(|| format!("{id} did not start"))?;
            processes.push(hub);
            dirs.push(data);
        }
        let upstreams: Vec<SocketAddr> = processes.iter().map(|hub| hub.addr).collect();
        let nginx = Nginx::start(&upstreams).await?;
        Ok(Cluster {
            nginx,
            hubs: processes,
            nats,
            _dirs: dirs,
            database_url: database_url.to_owned(),
            _scratch: None,
        })
    }

    /// How many hubs the cluster has (running or not).
    pub fn len(&self) -> usize {
        self.hubs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hubs.is_empty()
    }

    /// Hub `index`, from 0 (its `SALAM_HUB_ID` is [`hub_id`]`(index)`, `hub1` for 0).
    /// Kill, restart and inspect it through [`HubProcess`]. Panics past the last hub,
    /// as indexing does.
    pub fn hub(&mut self, index: usize) -> &mut HubProcess {
        &mut self.hubs[index]
    }

    /// The indices of the hubs whose process runs now.
    pub fn running(&mut self) -> Vec<usize> {
        (0..self.hubs.len())
            .filter(|&index| self.hubs[index].is_running())
            .collect()
    }

    /// nginx's address: where browsers, widgets and consoles connect.
    pub fn front(&self) -> SocketAddr {
        self.nginx.addr()
    }

    pub fn nginx(&mut self) -> &mut Nginx {
        &mut self.nginx
    }

    pub fn nats(&mut self) -> &mut NatsServer {
        &mut self.nats
    }

    /// The shared database (`SALAM_DATABASE_URL` of every hub).
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// What the one hub that did the cluster's first start printed (the demo site's key
    /// and the admin's credentials). Fails unless exactly one hub printed them.
    pub fn first_start(&self) -> Result<&FirstStart> {
        let printed: Vec<&FirstStart> = self
            .hubs
            .iter()
            .filter_map(|hub| hub.first_start.as_ref())
            .collect();
        match printed.as_slice() {
            [one] => Ok(one),
            [] => bail!("no hub printed the first start's credentials"),
            many => bail!("{} hubs printed first-start credentials", many.len()),
        }
    }

    /// The first start's admin, signed in through nginx.
    pub async fn admin(&self) -> Result<Api> {
        let first = self.first_start()?;
        Api::login(self.front(), &first.admin_email, &first.admin_password).await
    }

    /// Waits (up to 60 s) until every hub answers `GET /healthz` with 200 on its own
    /// address. Fails at once, with its log, for a hub that is not running.
    pub async fn wait_all_serving(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        for index in 0..self.hubs.len() {
            loop {
                let id = hub_id(index);
                let hub = &mut self.hubs[index];
                if !hub.is_running() {
                    bail!("{id} is not running: it exited; log:\n{}", hub.log_tail(30));
                }
                let last = match http_request(hub.addr, "GET", "/healthz", &[], "").await {
                    Ok(response) if response.status == 200 => break,
                    Ok(response) => format!("{} {}", response.status, response.body),
                    Err(err) => format!("{err:#}"),
                };
                if Instant::now() >= deadline {
                    bail!(
                        "{id} does not answer /healthz with 200 within 60 s (last: {last}); log:\n{}",
                        hub.log_tail(30)
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }

    /// Fails if any hub's log shows a panic (as [`crate::process::World::assert_no_panic`]
    /// for one hub).
    pub fn assert_no_panic(&self) -> Result<()> {
        for (index, hub) in self.hubs.iter().enumerate() {
            ensure!(
                !hub.log_tail(100_000).contains("panicked"),
                "{} panicked; log:\n{}",
                hub_id(index),
                hub.log_tail(60)
            );
        }
        Ok(())
    }

    /// Every hub's log tail and nginx's, for a failing test's message.
    pub fn logs(&self, n: usize) -> String {
        let mut out = String::new();
        for (index, hub) in self.hubs.iter().enumerate() {
            out.push_str(&format!(
                "---- {} log\n{}\n",
                hub_id(index),
                hub.log_tail(n)
            ));
        }
        out.push_str(&format!(
            "---- nginx error log\n{}\n",
            self.nginx.log_tail(n)
        ));
        out.push_str(&format!("---- nats log\n{}\n", self.nats.log_tail(n)));
        out
    }
}

/// The `SALAM_HUB_ID` of hub `index` (from 0): `hub1`, `hub2`, …
pub fn hub_id(index: usize) -> String {
    format!("hub{}", index + 1)
}
