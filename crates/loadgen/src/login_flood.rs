//! A login flood: many wrong-password logins at once, for the hub's memory and its
//! responsiveness meanwhile (issue 12).
//!
//! Key design decision: **a fixed number of workers, one attempt in flight each**, so
//! "200 concurrent logins" means exactly that whatever the hub answers: a hub that
//! hashes every attempt holds 200 hashes in progress, and a hub that answers HTTP 429 at
//! once simply sees the same 200 clients come back sooner. Each attempt is
//! `POST /api/login` with a wrong password over a fresh HTTP/1.0 connection, as a
//! script from many machines would send it; only public interfaces are used, so any
//! build of the hub can be measured.
//!
//! Where the attempts seem to come from ([`Source`]):
//!
//! - **single**: one client address and one existing account, what per-address and
//!   per-account throttles are for;
//! - **spread**: every attempt from its own address in `10.0.0.0/8` and for its own
//!   unknown e-mail, a botnet behind a trusted proxy. No throttle keyed on either
//!   applies, so what bounds the hub is how many password hashes it runs at once.
//!
//! The address is sent as `X-Forwarded-For` in both modes: a hub that trusts the
//! loopback as its proxy believes it, any other hub sees every attempt come from the
//! load generator's one address. Connections come from 127.0.0.1 alone (not the
//! spread of [`wire::tcp_connect`]), so that one trusted proxy address covers them.
//!
//! Measured meanwhile: the hub's RSS (`/proc/PID/status`) before the flood, its peak
//! (sampled every 50 ms until the last reading), when the last attempt ends, and a
//! settling time later; `GET /healthz` (and `GET /api/me` with a token), one probe
//! started every 20 ms during the flood, open loop; each attempt's answer by status and
//! its latency. The flood lasts until the last attempt is answered or times out.

use crate::probe::ServerProbe;
use crate::report::{LatencySummary, latency_histogram, record};
use crate::wire;
use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::time::MissedTickBehavior;

/// How often the hub's RSS is read.
const RSS_EVERY: Duration = Duration::from_millis(50);

/// How often `/healthz` and `/api/me` are probed during the flood.
const PROBE_EVERY: Duration = Duration::from_millis(20);

/// How long one probe of `/healthz` or `/api/me` may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// The one client address of single-source mode (TEST-NET-1, never a real client).
const SINGLE_SOURCE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// Where the attempts seem to come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// One client address, one existing account.
    Single { email: String },
    /// A new address and a new unknown e-mail for every attempt.
    Spread,
}

impl Source {
    /// The e-mail and the forwarded client address of attempt `n`.
    pub fn attempt(&self, n: u64) -> (String, Ipv4Addr) {
        match self {
            Source::Single { email } => (email.clone(), SINGLE_SOURCE),
            Source::Spread => (format!("flood-{n}@bench.invalid"), spread_address(n)),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Source::Single { .. } => "single",
            Source::Spread => "spread",
        }
    }
}

/// Attempt `n`'s address in `10.0.0.0/8`: distinct for the first 2^24 - 1 attempts,
/// never the network's own `.0.0.0`.
pub fn spread_address(n: u64) -> Ipv4Addr {
    let host = (n % 0x00FF_FFFF) as u32 + 1;
    Ipv4Addr::from(0x0A00_0000 | host)
}

/// Options of `salam-loadgen login-flood`.
#[derive(Debug, Clone)]
pub struct LoginFloodOptions {
    pub addr: String,
    pub source: Source,
    /// Workers, each with one attempt in flight.
    pub concurrency: usize,
    /// Workers start no attempt after this; attempts in flight then finish.
    pub duration: Duration,
    /// How long one attempt may take before it counts as timed out.
    pub request_timeout: Duration,
    /// After the last attempt, wait this long before the last RSS reading.
    pub settle: Duration,
    /// A bearer token, to probe `GET /api/me` as well as `GET /healthz`.
    pub token: Option<String>,
    /// The hub's process, for its RSS.
    pub probe: Option<ServerProbe>,
}

/// How the hub answered one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// HTTP 401: the password was hashed and found wrong.
    Unauthorized,
    /// HTTP 429, and whether it said when to come back (`Retry-After`).
    TooMany { retry_after: bool },
    /// Any other status.
    Other(u16),
    /// The connection failed or the answer was not HTTP.
    Error,
    /// No answer within the request timeout.
    Timeout,
}

impl Outcome {
    /// Buckets an answer by its status.
    pub fn of(response: &wire::HttpResponse) -> Outcome {
        match response.status {
            401 => Outcome::Unauthorized,
            429 => Outcome::TooMany {
                retry_after: response.header("retry-after").is_some(),
            },
            status => Outcome::Other(status),
        }
    }
}

/// The attempts, counted by [`Outcome`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    pub attempts: u64,
    pub unauthorized: u64,
    pub too_many: u64,
    /// Of `too_many`, the answers without `Retry-After`.
    pub too_many_without_retry_after: u64,
    /// Any other status, by status.
    pub other: BTreeMap<u16, u64>,
    pub errors: u64,
    pub timeouts: u64,
}

/// Each bucket's share of all attempts (0 to 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Shares {
    pub unauthorized: f64,
    pub too_many: f64,
    pub other: f64,
    pub errors: f64,
    pub timeouts: f64,
}

impl Counts {
    pub fn add(&mut self, outcome: Outcome) {
        self.attempts += 1;
        match outcome {
            Outcome::Unauthorized => self.unauthorized += 1,
            Outcome::TooMany { retry_after } => {
                self.too_many += 1;
                if !retry_after {
                    self.too_many_without_retry_after += 1;
                }
            }
            Outcome::Other(status) => *self.other.entry(status).or_default() += 1,
            Outcome::Error => self.errors += 1,
            Outcome::Timeout => self.timeouts += 1,
        }
    }

    pub fn merge(&mut self, other: &Counts) {
        self.attempts += other.attempts;
        self.unauthorized += other.unauthorized;
        self.too_many += other.too_many;
        self.too_many_without_retry_after += other.too_many_without_retry_after;
        for (status, count) in &other.other {
            *self.other.entry(*status).or_default() += count;
        }
        self.errors += other.errors;
        self.timeouts += other.timeouts;
    }

    pub fn other_total(&self) -> u64 {
        self.other.values().sum()
    }

    pub fn shares(&self) -> Shares {
        let share = |count: u64| {
            if self.attempts == 0 {
                0.0
            } else {
                count as f64 / self.attempts as f64
            }
        };
        Shares {
            unauthorized: share(self.unauthorized),
            too_many: share(self.too_many),
            other: share(self.other_total()),
            errors: share(self.errors),
            timeouts: share(self.timeouts),
        }
    }
}

/// What one worker saw.
struct WorkerResult {
    counts: Counts,
    /// Latency of the attempts that were answered.
    latency: Histogram<u64>,
    first_error: Option<String>,
}

/// Sends attempts one after another until `deadline`.
async fn worker(
    addr: String,
    source: Source,
    next_attempt: Arc<AtomicU64>,
    deadline: Instant,
    request_timeout: Duration,
) -> WorkerResult {
    let mut result = WorkerResult {
        counts: Counts::default(),
        latency: latency_histogram(),
        first_error: None,
    };
    while Instant::now() < deadline {
        let n = next_attempt.fetch_add(1, Ordering::Relaxed);
        let (email, client) = source.attempt(n);
        let body = serde_json::json!({ "email": email, "password": format!("wrong password {n}") })
            .to_string();
        let client = client.to_string();
        let headers = [("X-Forwarded-For", client.as_str())];
        let started = Instant::now();
        let exchange = wire::http_exchange(&addr, "POST", "/api/login", &headers, Some(&body));
        let outcome = match tokio::time::timeout(request_timeout, exchange).await {
            Ok(Ok(response)) => {
                record(&mut result.latency, started.elapsed());
                Outcome::of(&response)
            }
            Ok(Err(err)) => {
                result.first_error.get_or_insert_with(|| format!("{err:#}"));
                Outcome::Error
            }
            Err(_) => Outcome::Timeout,
        };
        result.counts.add(outcome);
    }
    result
}

/// What the prober of one endpoint saw.
struct Probed {
    /// Every probe that was answered (whatever its status) or timed out (counted at
    /// the time it gave up), from its scheduled start: a probe that fails fast does not
    /// flatter the figure, one that hangs counts.
    latency: Histogram<u64>,
    /// Probes not answered 200.
    failures: u64,
    first_failure: Option<String>,
}

/// Starts a probe of `GET path` every [`PROBE_EVERY`] until `done`, whether or not the
/// earlier ones were answered (open loop), and waits for the last.
///
/// Open loop so that a stalled hub cannot hide its stall: one probe at a time would
/// take a single sample of a ten-second stall, where a visitor's browser sends many
/// requests meanwhile. Latency runs from each probe's scheduled start. Probes in
/// flight at once are bounded by [`PROBE_TIMEOUT`] / [`PROBE_EVERY`] (1,500).
async fn probe_endpoint(
    addr: String,
    path: &'static str,
    token: Option<String>,
    done: Arc<AtomicBool>,
) -> Probed {
    let mut probes = tokio::task::JoinSet::new();
    let mut ticks = tokio::time::interval(PROBE_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let scheduled = ticks.tick().await;
        if done.load(Ordering::Relaxed) {
            break;
        }
        let (addr, token) = (addr.clone(), token.clone());
        probes.spawn(async move {
            let answer =
                tokio::time::timeout(PROBE_TIMEOUT, wire::http_get(&addr, path, token.as_deref()))
                    .await;
            let took = scheduled.elapsed();
            match answer {
                Ok(Ok(200)) => (Some(took), None),
                Ok(Ok(status)) => (Some(took), Some(format!("HTTP {status}"))),
                Ok(Err(err)) => (None, Some(format!("{err:#}"))),
                Err(_) => (
                    Some(took),
                    Some(format!("no answer within {PROBE_TIMEOUT:?}")),
                ),
            }
        });
    }
    let mut probed = Probed {
        latency: latency_histogram(),
        failures: 0,
        first_failure: None,
    };
    while let Some(joined) = probes.join_next().await {
        let (took, failure) = joined.unwrap_or_else(|err| (None, Some(format!("{err}"))));
        if let Some(took) = took {
            record(&mut probed.latency, took);
        }
        if let Some(failure) = failure {
            probed.failures += 1;
            probed.first_failure.get_or_insert(failure);
        }
    }
    probed
}

/// Reads the hub's RSS every [`RSS_EVERY`] until `done`; returns the peak and how many
/// readings were taken.
async fn sample_rss(probe: ServerProbe, done: Arc<AtomicBool>) -> (u64, u64) {
    let mut peak = 0;
    let mut samples = 0;
    let mut ticks = tokio::time::interval(RSS_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    while !done.load(Ordering::Relaxed) {
        ticks.tick().await;
        if let Ok(rss) = probe.rss_bytes() {
            peak = peak.max(rss);
            samples += 1;
        }
    }
    (peak, samples)
}

/// The hub's RSS at the moments the run reports, in bytes. The readings after the
/// flood are `None` when the hub is gone by then (killed for lack of memory, say):
/// that is a result too, so it does not fail the run.
#[derive(Debug, Clone, Copy, Default)]
struct Memory {
    before: u64,
    peak: u64,
    at_end: Option<u64>,
    after: Option<u64>,
    samples: u64,
}

fn mib(bytes: u64) -> f64 {
    (bytes as f64 / (1024.0 * 1024.0) * 10.0).round() / 10.0
}

impl Memory {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "before": mib(self.before),
            "peak": mib(self.peak),
            "at_end": self.at_end.map(mib),
            "after": self.after.map(mib),
            "growth": mib(self.peak.saturating_sub(self.before)),
            "retained": self.after.map(|after| mib(after.saturating_sub(self.before))),
            "samples": self.samples,
        })
    }
}

/// Fails unless `GET path` answers 200 within [`PROBE_TIMEOUT`].
async fn check_ok(addr: &str, path: &str, token: Option<&str>) -> Result<()> {
    let status = tokio::time::timeout(PROBE_TIMEOUT, wire::http_get(addr, path, token))
        .await
        .with_context(|| format!("{path} timed out before the flood"))?
        .with_context(|| format!("{path} before the flood"))?;
    if status != 200 {
        bail!("{path} answered HTTP {status} before the flood");
    }
    Ok(())
}

/// Runs the flood; returns the JSON result (and prints a table on stderr).
pub async fn run(options: LoginFloodOptions) -> Result<serde_json::Value> {
    if options.concurrency == 0 || options.duration.is_zero() {
        bail!("needs at least one worker and a duration");
    }
    // A hub that is not up, or a token it does not know, would only show as failures.
    check_ok(&options.addr, "/healthz", None).await?;
    if let Some(token) = &options.token {
        check_ok(&options.addr, "/api/me", Some(token))
            .await
            .context("checking --token")?;
    }
    let mut memory = Memory::default();
    let sampling = Arc::new(AtomicBool::new(false));
    let sampler = match &options.probe {
        Some(probe) => {
            memory.before = probe.rss_bytes()?;
            Some(tokio::spawn(sample_rss(probe.clone(), sampling.clone())))
        }
        None => None,
    };
    eprintln!(
        "login-flood: {} workers for {:?}, {} source",
        options.concurrency,
        options.duration,
        options.source.name()
    );

    let flooding = Arc::new(AtomicBool::new(false));
    let healthz = tokio::spawn(probe_endpoint(
        options.addr.clone(),
        "/healthz",
        None,
        flooding.clone(),
    ));
    let me = options.token.clone().map(|token| {
        tokio::spawn(probe_endpoint(
            options.addr.clone(),
            "/api/me",
            Some(token),
            flooding.clone(),
        ))
    });
    let started = Instant::now();
    let deadline = started + options.duration;
    let next_attempt = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..options.concurrency {
        workers.spawn(worker(
            options.addr.clone(),
            options.source.clone(),
            next_attempt.clone(),
            deadline,
            options.request_timeout,
        ));
    }
    let mut counts = Counts::default();
    let mut latency = latency_histogram();
    let mut first_error = None;
    while let Some(joined) = workers.join_next().await {
        let result = joined.context("a flood worker panicked")?;
        counts.merge(&result.counts);
        latency
            .add(&result.latency)
            .context("merging latency histograms")?;
        first_error = first_error.or(result.first_error);
    }
    let flood_secs = started.elapsed().as_secs_f64();
    let settled_at = tokio::time::Instant::now() + options.settle;
    flooding.store(true, Ordering::Relaxed);
    if let Some(probe) = &options.probe {
        memory.at_end = probe.rss_bytes().ok();
    }
    eprintln!(
        "login-flood: done after {flood_secs:.1} s; {:?} for the hub to settle",
        options.settle
    );
    // The probes still in flight end within PROBE_TIMEOUT, during the settling time
    // or after it.
    let healthz = healthz.await.context("the /healthz prober")?;
    let me = match me {
        Some(me) => Some(me.await.context("the /api/me prober")?),
        None => None,
    };
    tokio::time::sleep_until(settled_at).await;
    if let Some(probe) = &options.probe {
        memory.after = probe.rss_bytes().ok();
    }
    sampling.store(true, Ordering::Relaxed);
    if let Some(sampler) = sampler {
        let (peak, samples) = sampler.await.context("the RSS sampler")?;
        memory.peak = peak
            .max(memory.before)
            .max(memory.at_end.unwrap_or(0))
            .max(memory.after.unwrap_or(0));
        memory.samples = samples;
    }

    let endpoint_json = |probed: &Probed| {
        serde_json::json!({
            "latency_ms": LatencySummary::of(&probed.latency),
            "failures": probed.failures,
            "first_failure": probed.first_failure,
        })
    };
    let result = serde_json::json!({
        "mode": "login-flood",
        "source": options.source.name(),
        "concurrency": options.concurrency,
        "duration_secs": options.duration.as_secs_f64(),
        "flood_secs": flood_secs,
        "attempts_per_sec": if flood_secs > 0.0 { counts.attempts as f64 / flood_secs } else { 0.0 },
        "counts": counts,
        "shares": counts.shares(),
        "first_error": first_error,
        "login_ms": LatencySummary::of(&latency),
        "healthz": endpoint_json(&healthz),
        "me": me.as_ref().map(endpoint_json),
        "rss_mib": options.probe.as_ref().map(|_| memory.json()),
    });
    print_table(&result);
    Ok(result)
}

/// The result as a small table on stderr, for whoever runs it by hand.
fn print_table(result: &serde_json::Value) {
    let number = |pointer: &str| result.pointer(pointer).and_then(|value| value.as_f64());
    let text = |pointer: &str| match number(pointer) {
        Some(value) if value.fract() == 0.0 => format!("{value}"),
        Some(value) => format!("{value:.1}"),
        None => "—".to_owned(),
    };
    let percent = |pointer: &str| match number(pointer) {
        Some(share) => format!("{:.1} %", share * 100.0),
        None => "—".to_owned(),
    };
    let latency = |prefix: &str| {
        format!(
            "{} / {} / {} ms",
            text(&format!("{prefix}/p50_ms")),
            text(&format!("{prefix}/p99_ms")),
            text(&format!("{prefix}/max_ms"))
        )
    };
    let other = result
        .pointer("/counts/other")
        .map(|other| other.to_string())
        .unwrap_or_default();
    let counted = |count: String, bucket: &str| {
        format!("{count} ({})", percent(&format!("/shares/{bucket}")))
    };
    let rows = [
        ("attempts", text("/counts/attempts")),
        ("attempts per second", text("/attempts_per_sec")),
        ("401", counted(text("/counts/unauthorized"), "unauthorized")),
        ("429", counted(text("/counts/too_many"), "too_many")),
        (
            "429 without Retry-After",
            text("/counts/too_many_without_retry_after"),
        ),
        ("other statuses", counted(other, "other")),
        ("errors", counted(text("/counts/errors"), "errors")),
        ("timeouts", counted(text("/counts/timeouts"), "timeouts")),
        ("login p50 / p99 / max", latency("/login_ms")),
        ("/healthz p50 / p99 / max", latency("/healthz/latency_ms")),
        (
            "/healthz probes (failed)",
            format!(
                "{} ({})",
                text("/healthz/latency_ms/count"),
                text("/healthz/failures")
            ),
        ),
        ("/api/me p50 / p99 / max", latency("/me/latency_ms")),
        (
            "RSS before / peak / end / after (MiB)",
            format!(
                "{} / {} / {} / {}",
                text("/rss_mib/before"),
                text("/rss_mib/peak"),
                text("/rss_mib/at_end"),
                text("/rss_mib/after")
            ),
        ),
    ];
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    for (name, value) in rows {
        eprintln!("  {name:<width$}  {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(raw: &str) -> wire::HttpResponse {
        wire::HttpResponse::parse(raw).expect("a valid response")
    }

    #[test]
    fn outcomes_by_status() {
        let check = |raw: &str, expected: Outcome| {
            assert_eq!(Outcome::of(&response(raw)), expected, "{raw}")
        };
        check("HTTP/1.1 401 Unauthorized\r\n\r\n{}", Outcome::Unauthorized);
        check(
            "HTTP/1.1 429 Too Many Requests\r\nretry-after: 3\r\n\r\n",
            Outcome::TooMany { retry_after: true },
        );
        check(
            "HTTP/1.1 429 Too Many Requests\r\n\r\n",
            Outcome::TooMany { retry_after: false },
        );
        check(
            "HTTP/1.1 503 Service Unavailable\r\n\r\n",
            Outcome::Other(503),
        );
        check("HTTP/1.1 200 OK\r\n\r\n{}", Outcome::Other(200));
    }

    #[test]
    fn counts_and_shares() {
        let mut first = Counts::default();
        for outcome in [
            Outcome::Unauthorized,
            Outcome::TooMany { retry_after: true },
            Outcome::TooMany { retry_after: false },
            Outcome::Other(503),
        ] {
            first.add(outcome);
        }
        let mut second = Counts::default();
        for outcome in [
            Outcome::Other(503),
            Outcome::Other(500),
            Outcome::Error,
            Outcome::Timeout,
        ] {
            second.add(outcome);
        }
        first.merge(&second);
        assert_eq!(first.attempts, 8);
        assert_eq!(first.too_many, 2);
        assert_eq!(first.too_many_without_retry_after, 1);
        assert_eq!(first.other, BTreeMap::from([(500, 1), (503, 2)]));
        let shares = first.shares();
        assert_eq!(shares.unauthorized, 0.125);
        assert_eq!(shares.too_many, 0.25);
        assert_eq!(shares.other, 0.375);
        assert_eq!(shares.errors + shares.timeouts, 0.25);
        assert_eq!(Counts::default().shares().too_many, 0.0);
    }

    #[test]
    fn spread_addresses_are_distinct_private_hosts() {
        assert_eq!(spread_address(0), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(spread_address(255), Ipv4Addr::new(10, 0, 1, 0));
        assert_eq!(
            spread_address(0x00FF_FFFE),
            Ipv4Addr::new(10, 255, 255, 255)
        );
        assert_eq!(spread_address(0x00FF_FFFF), spread_address(0));
        let addresses: std::collections::HashSet<_> = (0..100_000).map(spread_address).collect();
        assert_eq!(addresses.len(), 100_000);
    }

    #[test]
    fn sources() {
        let single = Source::Single {
            email: "owner@shop.example".into(),
        };
        assert_eq!(single.attempt(0), single.attempt(7));
        assert_eq!(single.attempt(7).0, "owner@shop.example");
        let (first_email, first_address) = Source::Spread.attempt(1);
        let (second_email, second_address) = Source::Spread.attempt(2);
        assert_ne!(first_email, second_email);
        assert_ne!(first_address, second_address);
    }

    /// Against a stand-in hub that answers every login 429 and every probe 200: the
    /// run ends on time and counts what it was told.
    #[tokio::test]
    async fn floods_a_stand_in_hub() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr").to_string();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut request = vec![0u8; 4096];
                    let read = stream.read(&mut request).await.unwrap_or(0);
                    let answer = if request[..read].starts_with(b"POST /api/login") {
                        "HTTP/1.0 429 Too Many Requests\r\nRetry-After: 1\r\n\r\n{}"
                    } else {
                        "HTTP/1.0 200 OK\r\n\r\n{}"
                    };
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        let started = Instant::now();
        let result = run(LoginFloodOptions {
            addr,
            source: Source::Spread,
            concurrency: 4,
            duration: Duration::from_millis(300),
            request_timeout: Duration::from_secs(5),
            settle: Duration::from_millis(100),
            token: Some("token".into()),
            probe: Some(ServerProbe::new(std::process::id()).expect("own process")),
        })
        .await
        .expect("the flood runs");
        server.abort();
        assert!(started.elapsed() < Duration::from_secs(5));
        let attempts = result["counts"]["attempts"].as_u64().expect("attempts");
        assert!(attempts >= 4, "{result}");
        assert_eq!(result["counts"]["too_many"].as_u64(), Some(attempts));
        assert_eq!(result["shares"]["too_many"].as_f64(), Some(1.0));
        assert_eq!(result["healthz"]["failures"].as_u64(), Some(0));
        assert!(result["healthz"]["latency_ms"]["count"].as_u64() > Some(0));
        assert!(result["me"]["latency_ms"]["count"].as_u64() > Some(0));
        assert!(result["rss_mib"]["peak"].as_f64() >= result["rss_mib"]["before"].as_f64());
    }
}
