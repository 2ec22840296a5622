//! Configuration: one typed struct with documented defaults, layered as
//! defaults → TOML file → environment → command-line flags.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
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
    pub retention: RetentionConfig,
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
    /// Bytes above which the socket is closed instead (code 1009).
    pub hard_max_frame_bytes: u32,
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
    /// A connection silent (no frame, no pong) for this long is closed.
    pub idle_timeout_secs: u32,
}

/// Storage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
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
    /// Allow a site origin of `*` to accept any `Origin` (development only).
    pub allow_any_origin: bool,
    /// Mark the session cookie `Secure` (set when serving over HTTPS).
    pub secure_cookie: bool,
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
            retention: RetentionConfig::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_text_chars: salam_protocol::DEFAULT_MAX_TEXT_CHARS as u32,
            max_frame_bytes: salam_protocol::DEFAULT_MAX_FRAME_BYTES as u32,
            hard_max_frame_bytes: 1024 * 1024,
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
            idle_timeout_secs: 70,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
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
            allow_any_origin: false,
            secure_cookie: false,
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

    /// Applies `SALAM_LISTEN` and `SALAM_DATA` from the environment.
    pub fn apply_env(&mut self) -> Result<(), ConfigError> {
        if let Ok(listen) = std::env::var("SALAM_LISTEN") {
            self.listen = listen.parse().map_err(|err| ConfigError::Env {
                name: "SALAM_LISTEN",
                reason: format!("{err}"),
            })?;
        }
        if let Ok(data) = std::env::var("SALAM_DATA") {
            self.data = PathBuf::from(data);
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
