//! Configuration: one typed struct with documented defaults, layered as
//! defaults → TOML file → environment → command-line flags.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// Every setting of the hub, with its default; `salam defaults` prints them all as TOML
/// (see [`Config::default_toml`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on. Env `SALAM_LISTEN`, flag `--listen`.
    pub listen: SocketAddr,
    /// Data directory (holds `salam.db`). Env `SALAM_DATA`, flag `--data`.
    pub data: PathBuf,
    /// Logging: `[log] filter` and `format`. The older `log = "FILTER"` still reads as
    /// the filter.
    #[serde(deserialize_with = "log_or_filter")]
    pub log: Log,
    pub limits: Limits,
    pub websocket: WebSocket,
    pub store: StoreConfig,
    pub auth: Auth,
    pub demo: Demo,
    pub bot: Bot,
    pub routing: RoutingConfig,
    pub metrics: MetricsConfig,
    pub retention: RetentionConfig,
    pub api: ApiConfig,
    pub webhooks: WebhooksConfig,
    pub smtp: SmtpConfig,
    pub smtp_inbound: SmtpInbound,
    pub bus: BusConfig,
    pub cluster: ClusterConfig,
}

/// The message bus between hubs (`[bus]`, issue 13; docs/deploy.md, "Running several
/// hubs").
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// Absent (the default): one hub, no bus. `nats://[USER:PASSWORD@]HOST:PORT`: a
    /// NATS server (core NATS) shared by every hub of the cluster; needs `store.url`
    /// (PostgreSQL). Env `SALAM_BUS_URL`.
    pub url: Option<String>,
}

/// This hub in a cluster (`[cluster]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// The hub's name in logs and in `/metrics` (`hub="…"`): letters, digits, `-` and
    /// `_`, at most 32. Absent: `hub-N`, N being the hub's number in the cluster. Env
    /// `SALAM_HUB_ID`.
    pub hub_id: Option<String>,
}

/// Logging (`[log]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    /// Which events to log (tracing `EnvFilter` syntax). Env `RUST_LOG` wins.
    pub filter: String,
    /// `text` for people, or `json`: one JSON object per line (`timestamp`, `level`,
    /// `target`, `message` and the event's fields) for log aggregators.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for Log {
    fn default() -> Log {
        Log {
            filter: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Reads `[log]` as a table, or a plain string as the filter (configuration files
/// written before `[log]` had a format say `log = "info"`).
fn log_or_filter<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Log, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Filter(String),
        Table(Log),
    }
    Ok(match Either::deserialize(deserializer)? {
        Either::Filter(filter) => Log {
            filter,
            ..Log::default()
        },
        Either::Table(log) => log,
    })
}

/// Webhook deliveries (`[webhooks]`, issue 17; see docs/webhooks.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Run the dispatcher in this hub (events are recorded in the outbox either way).
    pub enabled: bool,
    /// One request's time limit (connect, send, answer), in milliseconds.
    pub timeout_ms: u64,
    /// Requests in flight at once, across all endpoints.
    pub concurrency: u32,
    /// The first retry's delay; each next one is three times longer, up to
    /// `retry_max_ms`, with full jitter (a random delay between 0 and that).
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// Attempts before a delivery is given up (`dead`; redeliver it by hand).
    pub max_attempts: u32,
    /// An endpoint is disabled, with an alert to admins, after this many failed
    /// attempts in a row spread over at least `disable_after_secs`.
    pub disable_after_failures: u32,
    pub disable_after_secs: u64,
    /// After a secret rotation the previous secret also signs for this long.
    pub rotation_grace_secs: u64,
    /// Also poll the outbox this often (new events wake the dispatcher at once).
    pub poll_ms: u64,
    /// A new event waits this long before its first attempt, so that the events of a
    /// conversation queued by different tasks at nearly the same time go out in the
    /// order of their sequence numbers (at most 60 000).
    pub settle_ms: u64,
}

impl Default for WebhooksConfig {
    fn default() -> WebhooksConfig {
        WebhooksConfig {
            enabled: true,
            timeout_ms: 10_000,
            concurrency: 16,
            retry_base_ms: 10_000,
            retry_max_ms: 3_600_000,
            max_attempts: 20,
            disable_after_failures: 50,
            disable_after_secs: 86_400,
            rotation_grace_secs: 86_400,
            poll_ms: 5_000,
            settle_ms: 250,
        }
    }
}

/// The retention sweep (`[retention]`): deletes what each site's `retention_days` says
/// is too old, in small batches through the one writer. With several hubs on one
/// database, leave it enabled on one of them (or disable it everywhere and run
/// `salam retention run` from a timer).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Run the sweep in this hub.
    pub enabled: bool,
    /// Seconds between two sweeps (the first runs a minute after the start).
    pub interval_secs: u32,
    /// Conversations per batch at most.
    pub batch_conversations: u32,
    /// Messages per batch at most (a batch takes at least one conversation).
    pub batch_messages: u32,
    /// Pause between two batches, milliseconds: the writer serves everyone else.
    pub pause_ms: u32,
}

impl Default for RetentionConfig {
    fn default() -> RetentionConfig {
        RetentionConfig {
            enabled: true,
            interval_secs: 3600,
            batch_conversations: 200,
            batch_messages: 5000,
            pause_ms: 50,
        }
    }
}

/// The REST API v1 (`[api]`, issue 17; docs/api.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Requests a second per API token, and the burst above it (more: 429 with
    /// `Retry-After`).
    pub rate_per_sec: u32,
    pub burst: u32,
}

impl Default for ApiConfig {
    fn default() -> ApiConfig {
        ApiConfig {
            rate_per_sec: 50,
            burst: 500,
        }
    }
}

// --- e-mail (issue 17): see docs/email.md ---

/// Outgoing mail (`[smtp]`). Without `url`, no mail is sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// `smtp://HOST:PORT` of the relay (a local MTA). Env `SALAM_SMTP_URL`.
    pub url: Option<String>,
    /// The sender: `Name <address>`.
    pub from: String,
    /// A visitor who has not seen an agent's reply this long after it gets the unseen
    /// replies in one e-mail (when they gave an address).
    pub unseen_reply_after_secs: u32,
    /// Agents are told of a missed chat (queued this long, nobody answered) in one mail.
    pub missed_chat_after_secs: u32,
    /// Mails waiting to be sent at most (more: refused and logged).
    pub queue: u32,
    /// Tries per mail before it is given up (logged).
    pub attempts: u32,
    /// Pause before the second try; doubled for each next one.
    pub retry_ms: u32,
}

impl Default for SmtpConfig {
    fn default() -> SmtpConfig {
        SmtpConfig {
            url: None,
            from: "Salam <salam@localhost>".into(),
            unseen_reply_after_secs: 300,
            missed_chat_after_secs: 600,
            queue: 256,
            attempts: 5,
            retry_ms: 2000,
        }
    }
}

/// Incoming mail (`[smtp_inbound]`): the hub's own small SMTP listener for replies.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpInbound {
    /// Address to listen on (behind the MTA; none: no inbound mail).
    pub listen: Option<SocketAddr>,
    /// The domain of reply addresses (`reply+TOKEN@DOMAIN`).
    pub domain: String,
    /// Bytes in one message at most (more: 552).
    pub max_message_bytes: u32,
    /// Recipients of one message at most (more: 452).
    pub max_recipients: u32,
    /// Connections at once at most (more: 421).
    pub max_connections: u32,
    /// A connection silent this long is closed (421).
    pub timeout_secs: u32,
}

impl Default for SmtpInbound {
    fn default() -> SmtpInbound {
        SmtpInbound {
            listen: None,
            domain: "reply.localhost".into(),
            max_message_bytes: 1 << 20,
            max_recipients: 10,
            max_connections: 32,
            timeout_secs: 60,
        }
    }
}

/// `/metrics`: Prometheus text for the operator, never for the public.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// `GET /metrics` on the main address answers only with `Authorization: Bearer
    /// TOKEN`; without a token (and without `listen`) it answers 404 there.
    pub token: Option<String>,
    /// A separate address serving only `/metrics`, without a token (keep it private:
    /// loopback or an internal network).
    pub listen: Option<SocketAddr>,
}

/// The bot.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bot {
    /// Directory of rule files; when it does not exist, the pack built into the binary
    /// is used.
    pub rules_dir: PathBuf,
    /// How often the rule directory is checked for changes, milliseconds.
    pub reload_poll_ms: u64,
}

impl Default for Bot {
    fn default() -> Bot {
        Bot {
            rules_dir: PathBuf::from("bot-rules"),
            reload_poll_ms: 1000,
        }
    }
}

/// Limits on what one client may send.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Characters in one message text.
    pub max_text_chars: u32,
    /// Bytes in one WebSocket frame; a larger frame gets `frame_too_large`.
    pub max_frame_bytes: u32,
    /// Agents: bytes above which the socket is closed instead (code 1009).
    pub hard_max_frame_bytes: u32,
    /// Visitors: bytes above which the socket is closed (code 1009). Lower than the
    /// agents': an anonymous socket should not pin a megabyte of unfinished frame.
    pub visitor_hard_max_frame_bytes: u32,
    /// Open WebSockets from one address at most (HTTP 429 beyond; a proxy's clients are
    /// counted by their forwarded address).
    pub max_connections_per_ip: u32,
    /// Of `max_connections`, this many (at most half) are kept for agents: visitors
    /// get HTTP 503 when only these are left.
    pub agent_reserved_connections: u32,
    /// Seconds a client has to send a request's headers (slowloris).
    pub header_timeout_secs: u32,
    /// Messages and forms per second a visitor may send across all their sockets, and
    /// the burst (on top of the per-connection bucket).
    pub visitor_rate_per_sec: u32,
    pub visitor_burst: u32,
    /// The same from one address, all visitors together (offices share an address).
    pub ip_rate_per_sec: u32,
    pub ip_burst: u32,
    /// Token bucket: frames per second in steady state, per connection.
    pub rate_per_sec: u32,
    /// Token bucket: burst size, per connection.
    pub burst: u32,
    /// Open WebSocket connections at most; further upgrades get HTTP 503.
    pub max_connections: u32,
    /// Frames queued for one slow visitor before it is told to resync and dropped
    /// (agents, who receive summaries of their whole sites, get eight times as many).
    pub outbound_queue: u32,
}

/// WebSocket tuning.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocket {
    /// Read buffer per connection, bytes (tungstenite's default 128 KiB costs ~133 KB
    /// per idle connection; the default here is 1 KiB).
    pub read_buffer: u32,
    /// Write buffer per connection, bytes.
    pub write_buffer: u32,
    /// The hub pings a connection idle for this long.
    pub heartbeat_secs: u32,
    /// A socket that has not sent `hello` this long after opening is closed (1008).
    pub hello_timeout_secs: u32,
    /// A connection silent (no frame, no pong) for this long is closed.
    pub idle_timeout_secs: u32,
}

/// Storage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Where conversations are kept. Absent (the default): the embedded SQLite file
    /// `DATA/salam.db`, nothing to install. `postgres://USER:PASSWORD@HOST:PORT/DB`: a
    /// PostgreSQL database, which several hubs can share (docs/deploy.md, "Running
    /// several hubs"). Env `SALAM_DATABASE_URL`.
    pub url: Option<String>,
    /// `true`: fsync every commit (survives power loss). `false`: WAL with
    /// `synchronous=NORMAL` (survives a crash of the hub process; faster).
    pub synchronous_full: bool,
    /// Writes in one group commit at most.
    pub max_batch: u32,
    /// Writes waiting for the writer at most.
    pub queue: u32,
}

/// Authentication.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    /// Agent sessions last this many hours.
    pub session_hours: u32,
    /// A session unused for this many hours ends (an open console keeps it in use).
    pub session_idle_hours: u32,
    /// Allow a site origin of `*` to accept any `Origin` (development only).
    pub allow_any_origin: bool,
    /// Always mark the session cookie `Secure`. Without it, it is `Secure` when the
    /// request came over HTTPS: `X-Forwarded-Proto: https` from a trusted proxy.
    pub secure_cookie: bool,
    /// Proxies in front of the hub (addresses or CIDR blocks, `10.0.0.0/8`): their
    /// `X-Forwarded-For` and `X-Forwarded-Proto` are believed, nobody else's, and
    /// their TCP connections are not capped per address. Default: loopback (a proxy
    /// on the same machine).
    pub trusted_proxies: Vec<IpNet>,
    /// Origins besides the hub's own that may open `/ws/agent` (a console served
    /// elsewhere, `https://support.example`).
    pub console_origins: Vec<String>,
    /// Password hashes computed at once at most (each takes about 19 MiB); further
    /// logins get HTTP 429 (0: the number of cores).
    pub hash_concurrency: u32,
    /// Wrong logins of one account before it is slowed down (then 1 s, 2 s, 4 s, …
    /// up to 15 min between attempts).
    pub account_free_failures: u32,
    /// Wrong logins from one address before it is slowed down, the same way.
    pub ip_free_failures: u32,
    /// The first admin's e-mail, chosen at first start (env `SALAM_ADMIN_EMAIL`, flag
    /// `--admin-email`); without it a random, unguessable one is made and printed.
    pub first_admin_email: Option<String>,
    /// After a site's identity secret is rotated, the old one still verifies for this
    /// many hours.
    pub identity_secret_grace_hours: u32,
}

/// An address or a block of addresses (`127.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    /// Whether `ip` is in this block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let bits = u32::from(self.prefix.min(32));
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let bits = u32::from(self.prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            (IpAddr::V4(net), IpAddr::V6(ip)) => ip.to_ipv4_mapped().is_some_and(|ip| {
                IpNet {
                    addr: IpAddr::V4(net),
                    prefix: self.prefix,
                }
                .contains(IpAddr::V4(ip))
            }),
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }
}

impl std::str::FromStr for IpNet {
    type Err = String;
    fn from_str(text: &str) -> Result<IpNet, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not an address or a CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= max)
                .ok_or_else(|| format!("{text:?} has a bad prefix length"))?,
            None => max,
        };
        Ok(IpNet { addr, prefix })
    }
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for IpNet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<IpNet, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The demo site created on first start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Demo {
    /// Create a demo site and an admin on first start.
    pub enabled: bool,
    /// Origins the demo site allows (the hub's own origin is added automatically).
    pub origins: Vec<String>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data: PathBuf::from("./data"),
            log: Log::default(),
            limits: Limits::default(),
            websocket: WebSocket::default(),
            store: StoreConfig::default(),
            auth: Auth::default(),
            demo: Demo::default(),
            bot: Bot::default(),
            routing: RoutingConfig::default(),
            metrics: MetricsConfig::default(),
            retention: RetentionConfig::default(),
            api: ApiConfig::default(),
            webhooks: WebhooksConfig::default(),
            smtp: SmtpConfig::default(),
            smtp_inbound: SmtpInbound::default(),
            bus: BusConfig::default(),
            cluster: ClusterConfig::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_text_chars: salam_protocol::DEFAULT_MAX_TEXT_CHARS as u32,
            max_frame_bytes: salam_protocol::DEFAULT_MAX_FRAME_BYTES as u32,
            hard_max_frame_bytes: 1024 * 1024,
            visitor_hard_max_frame_bytes: 128 * 1024,
            max_connections_per_ip: 256,
            agent_reserved_connections: 500,
            header_timeout_secs: 10,
            visitor_rate_per_sec: 10,
            visitor_burst: 40,
            ip_rate_per_sec: 50,
            ip_burst: 200,
            rate_per_sec: 10,
            burst: 40,
            max_connections: 19_500,
            outbound_queue: 512,
        }
    }
}

impl Default for WebSocket {
    fn default() -> WebSocket {
        WebSocket {
            // A chat frame is small; a larger one still arrives whole (the buffer grows
            // for it). 1 KiB instead of 4 saves 3 KiB per idle connection.
            read_buffer: 1024,
            write_buffer: 4096,
            heartbeat_secs: 25,
            hello_timeout_secs: 10,
            idle_timeout_secs: 70,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            url: None,
            synchronous_full: false,
            max_batch: 512,
            queue: 8192,
        }
    }
}

impl Default for Auth {
    fn default() -> Auth {
        Auth {
            session_hours: 24 * 14,
            session_idle_hours: 24,
            allow_any_origin: false,
            secure_cookie: false,
            // A proxy on the same machine (nginx in front of the hub) out of the box;
            // no remote peer can pose as one.
            trusted_proxies: vec![
                IpNet {
                    addr: IpAddr::from([127, 0, 0, 1]),
                    prefix: 32,
                },
                IpNet {
                    addr: IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
                    prefix: 128,
                },
            ],
            console_origins: Vec::new(),
            hash_concurrency: 0,
            account_free_failures: 5,
            ip_free_failures: 20,
            first_admin_email: None,
            identity_secret_grace_hours: 24,
        }
    }
}

impl Default for Demo {
    fn default() -> Demo {
        Demo {
            enabled: true,
            origins: Vec::new(),
        }
    }
}

/// Routing (`[routing]`). A site's own settings override the default capacity of new
/// agents, the first-response target and the accept timeout.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingConfig {
    /// Concurrent chats per agent, across all their sites, unless the agent has their
    /// own capacity.
    pub default_capacity: u32,
    /// Seconds an agent keeps their chats after their last socket drops.
    pub grace_secs: u32,
    /// First-response target in seconds; a chat past it gets its priority raised.
    pub first_response_target_secs: u32,
    /// How much a missed target raises the priority.
    pub sla_priority_boost: i32,
    /// Priority of a VIP visitor's conversation.
    pub vip_priority: i32,
    /// Close a conversation after this many seconds without a message (0: never).
    pub auto_close_secs: u32,
    /// When set, an agent must accept a chat within this many seconds or it passes to
    /// the next agent (0: chats are assigned directly).
    pub accept_timeout_secs: u32,
}

impl Default for RoutingConfig {
    fn default() -> RoutingConfig {
        RoutingConfig {
            default_capacity: 5,
            grace_secs: 60,
            first_response_target_secs: 60,
            sla_priority_boost: 10,
            vip_priority: 20,
            auto_close_secs: 30 * 60,
            accept_timeout_secs: 0,
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{name}: {reason}")]
    Env { name: &'static str, reason: String },
}

impl Config {
    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// Applies `SALAM_LISTEN`, `SALAM_DATA`, `SALAM_ADMIN_EMAIL`, `SALAM_SMTP_URL`,
    /// `SALAM_DATABASE_URL`, `SALAM_BUS_URL` and `SALAM_HUB_ID` from the environment.
    pub fn apply_env(&mut self) -> Result<(), ConfigError> {
        if let Ok(email) = std::env::var("SALAM_ADMIN_EMAIL") {
            self.auth.first_admin_email = Some(email);
        }
        if let Ok(listen) = std::env::var("SALAM_LISTEN") {
            self.listen = listen.parse().map_err(|err| ConfigError::Env {
                name: "SALAM_LISTEN",
                reason: format!("{err}"),
            })?;
        }
        if let Ok(data) = std::env::var("SALAM_DATA") {
            self.data = PathBuf::from(data);
        }
        if let Ok(url) = std::env::var("SALAM_SMTP_URL") {
            self.smtp.url = Some(url);
        }
        if let Ok(url) = std::env::var("SALAM_DATABASE_URL") {
            let url = url.trim();
            self.store.url = (!url.is_empty()).then(|| url.to_owned());
        }
        if let Ok(url) = std::env::var("SALAM_BUS_URL") {
            let url = url.trim();
            self.bus.url = (!url.is_empty()).then(|| url.to_owned());
        }
        if let Ok(id) = std::env::var("SALAM_HUB_ID") {
            let id = id.trim();
            self.cluster.hub_id = (!id.is_empty()).then(|| id.to_owned());
        }
        Ok(())
    }

    /// The database file.
    pub fn database_path(&self) -> PathBuf {
        self.data.join("salam.db")
    }

    /// The defaults as a commented TOML document.
    pub fn default_toml() -> String {
        toml::to_string_pretty(&Config::default()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_files_override() {
        let text = Config::default_toml();
        let parsed: Config = toml::from_str(&text).unwrap();
        assert_eq!(parsed.listen, Config::default().listen);
        let partial: Config = toml::from_str("[limits]\nmax_text_chars = 10\n").unwrap();
        assert_eq!(partial.limits.max_text_chars, 10);
        assert_eq!(partial.limits.burst, Limits::default().burst);
        assert!(toml::from_str::<Config>("nonsense = 1").is_err());
    }

    #[test]
    fn trusted_proxies_are_addresses_or_blocks() {
        let parsed: Config = toml::from_str(
            "[auth]\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\", \"fd00::/8\"]\n",
        )
        .unwrap();
        let nets = &parsed.auth.trusted_proxies;
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert!(nets[0].contains(ip("127.0.0.1")) && !nets[0].contains(ip("127.0.0.2")));
        assert!(nets[1].contains(ip("10.200.3.4")) && !nets[1].contains(ip("11.0.0.1")));
        assert!(nets[2].contains(ip("fd12::1")) && !nets[2].contains(ip("fe80::1")));
        assert!(
            nets[0].contains(ip("::ffff:127.0.0.1")),
            "a mapped IPv4 address"
        );
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0.0/x"] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
        let round: Config = toml::from_str(&Config::default_toml()).unwrap();
        assert_eq!(
            round.auth.trusted_proxies,
            Config::default().auth.trusted_proxies
        );
        // By default only a proxy on the same machine is believed.
        let default = Config::default().auth.trusted_proxies;
        assert!(default.iter().any(|net| net.contains(ip("127.0.0.1"))));
        assert!(default.iter().any(|net| net.contains(ip("::1"))));
        assert!(!default.iter().any(|net| net.contains(ip("192.168.1.1"))));
    }

    /// A configuration file written before `[log]` had a format still loads.
    #[test]
    fn the_log_setting_reads_old_and_new_forms() {
        let old: Config = toml::from_str("log = \"debug\"\n").unwrap();
        assert_eq!(
            (old.log.filter.as_str(), old.log.format),
            ("debug", LogFormat::Text)
        );
        let new: Config = toml::from_str("[log]\nformat = \"json\"\n").unwrap();
        assert_eq!(
            (new.log.filter.as_str(), new.log.format),
            ("info", LogFormat::Json)
        );
        assert!(toml::from_str::<Config>("[log]\nformat = \"xml\"\n").is_err());
    }
}
