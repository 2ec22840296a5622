//! `salam-loadgen`: drives the echo server, the hub or one of its peers (a Socket.IO
//! relay, Soketi) and prints one JSON line of results on stdout (progress goes to
//! stderr).

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use salam_loadgen::client::{Protocol, Server, Target};
use salam_loadgen::probe::ServerProbe;
use salam_loadgen::report::print_json;
use salam_loadgen::{bot, echo, handoff, idle, login_flood, relay};
use std::time::Duration;

/// Load generator for the Salam hub and its peers. All figures per server CPU-second
/// need `--server-pid`.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Runtime worker threads (default: the CPUs this process may run on).
    #[arg(long, global = true, env = "SALAM_LOADGEN_THREADS")]
    threads: Option<usize>,
    /// Further process ids (comma-separated) whose CPU time counts as the server's,
    /// e.g. the PostgreSQL backends serving the hub (`scripts/bench-postgres.sh`).
    #[arg(long, global = true, value_delimiter = ',')]
    also_cpu_of: Vec<u32>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Closed-loop round trips against `salam-echo`.
    Echo {
        #[command(flatten)]
        common: Common,
        /// Connections.
        #[arg(long, default_value_t = 100)]
        connections: usize,
        /// Frames in flight per connection.
        #[arg(long, default_value_t = 8)]
        window: usize,
        /// Filler characters in each frame (on top of a `send` frame's JSON).
        #[arg(long, default_value_t = 64)]
        payload_bytes: usize,
    },
    /// Visitors send messages through the server to agents.
    Relay {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        server: ServerArgs,
        /// Visitor connections.
        #[arg(long, default_value_t = 100)]
        visitors: usize,
        /// Agent connections (all signed in as the same agent).
        #[arg(long, default_value_t = 1)]
        agents: usize,
        /// Messages per second in total (open loop); 0 for closed loop.
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Messages awaiting their ack per visitor, in closed loop.
        #[arg(long, default_value_t = 8)]
        window: usize,
        /// Filler characters in each message text.
        #[arg(long, default_value_t = 64)]
        text_bytes: usize,
        /// Seconds after the window for messages still in flight to arrive.
        #[arg(long, default_value_t = 2.0)]
        drain: f64,
        /// Idle visitors to connect first and hold open through the run.
        #[arg(long, default_value_t = 0)]
        idle: usize,
        /// Handshakes in progress at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// More hubs of the same cluster (repeatable): visitors round-robin over
        /// `--addr` and these, and an agent connection counts only the messages of
        /// visitors on other hubs than its own.
        #[arg(long = "also-addr")]
        also_addrs: Vec<String>,
        /// Hubs the agent connections use, round-robin (repeatable; default: the
        /// visitors' hubs).
        #[arg(long = "agent-addr")]
        agent_addrs: Vec<String>,
    },
    /// Opens idle visitor connections step by step and holds them.
    Idle {
        /// Server address (host:port).
        #[arg(long)]
        addr: String,
        #[command(flatten)]
        server: ServerArgs,
        /// Total connections after each step: `10000` or `1000,5000,10000`.
        #[arg(long, default_value = "1000")]
        connections: String,
        /// Seconds to hold the connections after the last step.
        #[arg(long, default_value_t = 2.0)]
        hold: f64,
        /// Hold the connections until standard input closes (a test that drives several
        /// load generators releases them all at once) instead of for `--hold` seconds.
        #[arg(long, conflicts_with = "hold")]
        hold_until_stdin_closes: bool,
        /// Seconds to wait after each step before reading the hub's memory.
        #[arg(long, default_value_t = 2.0)]
        settle: f64,
        /// Server process id, to read its memory and CPU time from /proc.
        #[arg(long)]
        server_pid: Option<u32>,
        /// Handshakes in progress at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// A storm of hand-offs: every visitor's first message at once on a site with the
    /// bot off, while `/api/widget/{key}` and `/api/agents` are polled (routing under
    /// load; works against any build of the hub).
    Handoff {
        /// Server address (host:port).
        #[arg(long)]
        addr: String,
        #[command(flatten)]
        site: SiteArgs,
        /// Bearer token of an agent to connect (repeatable); their capacities must hold
        /// the storm.
        #[arg(long = "agent-token", required = true)]
        agent_tokens: Vec<String>,
        /// Visitors, each handing off once.
        #[arg(long, default_value_t = 1000)]
        visitors: usize,
        /// Seconds to wait for the last assignment.
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
    },
    /// Many wrong-password logins at once, while `/healthz` (and `/api/me`) are probed
    /// and the hub's memory is read (works against any build of the hub).
    LoginFlood {
        /// Server address (host:port).
        #[arg(long)]
        addr: String,
        /// Workers, each with one login attempt in flight.
        #[arg(long, default_value_t = 200)]
        concurrency: usize,
        /// Seconds during which attempts start (at most 300); those in flight then
        /// finish.
        #[arg(long, default_value_t = 15.0)]
        duration: f64,
        /// Seconds one attempt may take before it counts as timed out (at most 120).
        #[arg(long, default_value_t = 30.0)]
        request_timeout: f64,
        /// Seconds after the last attempt before the hub's memory is read again (at most
        /// 60).
        #[arg(long, default_value_t = 5.0)]
        settle: f64,
        /// The hub's process id, to read its RSS from /proc.
        #[arg(long)]
        pid: Option<u32>,
        /// The existing account every attempt targets (single-source mode).
        #[arg(long, env = "SALAM_EMAIL", required_unless_present = "spread")]
        email: Option<String>,
        /// Every attempt from its own `X-Forwarded-For` address and for its own unknown
        /// e-mail (a botnet behind a trusted proxy) instead of one address and one
        /// account; `--email` is then not used.
        #[arg(long)]
        spread: bool,
        /// An agent's bearer token, to probe `GET /api/me` during the flood too.
        #[arg(long)]
        token: Option<String>,
    },
    /// Visitors ask the hub's bot questions (the bot must be on for the site).
    Bot {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        site: SiteArgs,
        /// Evaluation file to take the questions from (`lang<TAB>expected<TAB>text`).
        #[arg(long, default_value = "bot-rules/eval/dev.tsv")]
        questions: String,
        /// Visitor connections.
        #[arg(long, default_value_t = 100)]
        visitors: usize,
        /// Questions per second in total.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        /// Seconds after the window for answers still in flight to arrive.
        #[arg(long, default_value_t = 2.0)]
        drain: f64,
    },
}

/// The server under test.
#[derive(Debug, clap::Args)]
struct ServerArgs {
    /// The protocol the server speaks.
    #[arg(long, value_enum, default_value_t = Protocol::Salam)]
    protocol: Protocol,
    /// Salam: site public key (`pk_...`).
    #[arg(long)]
    site: Option<String>,
    /// Salam: `Origin` header of visitors (default: `http://ADDR`, which the demo site
    /// allows).
    #[arg(long)]
    origin: Option<String>,
    /// Salam: agent e-mail (the first admin's is printed by the hub on first start).
    #[arg(long, env = "SALAM_EMAIL")]
    email: Option<String>,
    /// Salam: agent password (printed by the hub on first start).
    #[arg(long, env = "SALAM_PASSWORD", requires = "email")]
    password: Option<String>,
    /// Pusher: the app's key.
    #[arg(long, default_value = "salam-bench-key")]
    app_key: String,
    /// Pusher: the app's secret (to sign private-channel subscriptions).
    #[arg(long, default_value = "salam-bench-secret")]
    app_secret: String,
}

impl ServerArgs {
    fn target(self, addr: &str) -> Result<Target> {
        let server = match self.protocol {
            Protocol::Salam => Server::Salam {
                site: self
                    .site
                    .context("--site is required with --protocol salam")?,
                origin: self.origin.unwrap_or_else(|| format!("http://{addr}")),
                email: self.email,
                password: self.password,
            },
            Protocol::Socketio => Server::SocketIo,
            Protocol::Pusher => Server::Pusher {
                key: self.app_key,
                secret: self.app_secret,
            },
            Protocol::Echo => Server::Echo,
        };
        Ok(Target {
            addr: addr.to_owned(),
            server,
        })
    }
}

#[derive(Debug, clap::Args)]
struct Common {
    /// Server address (host:port).
    #[arg(long)]
    addr: String,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Seconds of load before the measured window opens.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Server process id, to read its CPU time from /proc over the measured window.
    #[arg(long)]
    server_pid: Option<u32>,
}

#[derive(Debug, clap::Args)]
struct SiteArgs {
    /// Site public key (`pk_...`).
    #[arg(long)]
    site: String,
    /// `Origin` header of visitors (default: `http://ADDR`, which the demo site allows).
    #[arg(long)]
    origin: Option<String>,
}

impl SiteArgs {
    fn origin(&self, addr: &str) -> String {
        self.origin
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"))
    }
}

fn main() {
    let args = Args::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        builder.worker_threads(threads.max(1));
    }
    let result = builder
        .enable_all()
        .build()
        .context("starting the runtime")
        .and_then(|runtime| runtime.block_on(run(args.command, &args.also_cpu_of)));
    if let Err(err) = result {
        eprintln!("salam-loadgen: {err:#}");
        std::process::exit(1);
    }
}

fn seconds(value: f64, name: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(value).with_context(|| format!("--{name} must be 0 or more"))
}

/// `seconds`, refused above `max` (runs stay bounded in time).
fn bounded_seconds(value: f64, name: &str, max: f64) -> Result<Duration> {
    if value > max {
        bail!("--{name} must be at most {max} s");
    }
    seconds(value, name)
}

fn probe(pid: Option<u32>, also: &[u32]) -> Result<Option<ServerProbe>> {
    pid.map(|pid| ServerProbe::new(pid)?.with_also(also))
        .transpose()
}

async fn run(command: Command, also: &[u32]) -> Result<()> {
    let result = match command {
        Command::Echo {
            common,
            connections,
            window,
            payload_bytes,
        } => {
            echo::run(echo::EchoOptions {
                addr: common.addr,
                connections,
                window,
                payload_bytes,
                warmup: seconds(common.warmup, "warmup")?,
                seconds: seconds(common.seconds, "seconds")?,
                probe: probe(common.server_pid, also)?,
            })
            .await
        }
        Command::Relay {
            common,
            server,
            visitors,
            agents,
            rate,
            window,
            text_bytes,
            drain,
            idle,
            concurrency,
            also_addrs,
            agent_addrs,
        } => {
            let target = server.target(&common.addr)?;
            let spread = (!also_addrs.is_empty() || !agent_addrs.is_empty())
                .then(|| {
                    let visitor_addrs = std::iter::once(common.addr.clone())
                        .chain(also_addrs)
                        .collect();
                    salam_loadgen::spread::Spread::new(visitor_addrs, agent_addrs, agents)
                })
                .transpose()?;
            if target.protocol() == Protocol::Echo {
                bail!("the echo server does not relay: use `salam-loadgen echo`");
            }
            relay::run(relay::RelayOptions {
                target,
                visitors,
                agents,
                rate,
                window,
                text_bytes,
                warmup: seconds(common.warmup, "warmup")?,
                seconds: seconds(common.seconds, "seconds")?,
                drain: seconds(drain, "drain")?,
                connect_concurrency: concurrency,
                idle,
                probe: probe(common.server_pid, also)?,
                spread,
            })
            .await
        }
        Command::Idle {
            addr,
            server,
            connections,
            hold,
            hold_until_stdin_closes,
            settle,
            server_pid,
            concurrency,
        } => {
            idle::run(idle::IdleOptions {
                target: server.target(&addr)?,
                steps: idle::parse_steps(&connections)?,
                hold: if hold_until_stdin_closes {
                    idle::Hold::UntilStdinCloses
                } else {
                    idle::Hold::For(seconds(hold, "hold")?)
                },
                settle: seconds(settle, "settle")?,
                connect_concurrency: concurrency,
                probe: probe(server_pid, also)?,
            })
            .await
        }
        Command::Handoff {
            addr,
            site,
            agent_tokens,
            visitors,
            timeout,
        } => {
            let origin = site.origin(&addr);
            handoff::run(handoff::HandoffOptions {
                addr,
                site: site.site,
                origin,
                agent_tokens,
                visitors,
                timeout: seconds(timeout, "timeout")?,
                connect_concurrency: 64,
            })
            .await
        }
        Command::LoginFlood {
            addr,
            concurrency,
            duration,
            request_timeout,
            settle,
            pid,
            email,
            spread,
            token,
        } => {
            let source = match email {
                Some(email) if !spread => login_flood::Source::Single { email },
                _ => login_flood::Source::Spread,
            };
            login_flood::run(login_flood::LoginFloodOptions {
                addr,
                source,
                concurrency,
                duration: bounded_seconds(duration, "duration", 300.0)?,
                request_timeout: bounded_seconds(request_timeout, "request-timeout", 120.0)?,
                settle: bounded_seconds(settle, "settle", 60.0)?,
                token,
                probe: probe(pid, also)?,
            })
            .await
        }
        Command::Bot {
            common,
            site,
            questions,
            visitors,
            rate,
            drain,
        } => {
            let origin = site.origin(&common.addr);
            bot::run(bot::BotOptions {
                addr: common.addr,
                site: site.site,
                origin,
                questions: bot::load_questions(&questions)?,
                visitors,
                rate,
                warmup: seconds(common.warmup, "warmup")?,
                seconds: seconds(common.seconds, "seconds")?,
                drain: seconds(drain, "drain")?,
                connect_concurrency: 64,
                probe: probe(common.server_pid, also)?,
            })
            .await
        }
    }?;
    print_json(&result);
    Ok(())
}
