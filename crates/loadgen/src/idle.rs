//! Many idle visitor connections: the hub's memory per connection and how fast it
//! accepts new ones.
//!
//! The connections are opened in steps (`--connections 1000,5000,10000`): after each
//! step the load generator waits for the hub to settle and reads its resident memory,
//! so one run gives the cost per connection at several sizes, all against the same
//! baseline taken before the first connection. Measuring the steps in one process
//! (rather than one process per size) avoids the allocator re-using memory freed by
//! an earlier, larger run and hiding the cost.

use crate::probe::ServerProbe;
use crate::report::Window;
use crate::wire::{self, Socket};
use anyhow::{Result, bail};
use futures_util::StreamExt;
use serde::Serialize;
use std::time::{Duration, Instant};

/// Options of `salam-loadgen idle`.
#[derive(Debug, Clone)]
pub struct IdleOptions {
    pub addr: String,
    pub site: String,
    pub origin: String,
    /// Total connections after each step, increasing.
    pub steps: Vec<usize>,
    pub hold: Duration,
    pub settle: Duration,
    pub connect_concurrency: usize,
    pub probe: Option<ServerProbe>,
}

/// What one step measured.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Connections open after the step.
    pub connections: usize,
    /// Connections this step opened (or tried to).
    pub opened: usize,
    pub failed: usize,
    pub seconds: f64,
    pub connects_per_sec: f64,
    pub server_cpu_seconds: Option<f64>,
    pub connects_per_server_cpu_sec: Option<f64>,
    pub rss_bytes: Option<u64>,
    /// `(rss_bytes - baseline) / connections`.
    pub bytes_per_connection: Option<f64>,
}

/// Opens the connections step by step and holds them; returns the JSON result.
pub async fn run(options: IdleOptions) -> Result<serde_json::Value> {
    if options.steps.is_empty() || options.steps.windows(2).any(|pair| pair[0] >= pair[1]) {
        bail!("--connections must be one or more increasing numbers");
    }
    let rss = |probe: &Option<ServerProbe>| probe.as_ref().and_then(|probe| probe.rss_bytes().ok());
    let baseline_rss = rss(&options.probe);
    let mut sockets: Vec<Socket> = Vec::new();
    let mut steps = Vec::new();
    let mut first_error = None;
    for &target in &options.steps {
        let wanted = target.saturating_sub(sockets.len());
        let window = Window::open(options.probe.as_ref());
        let started = Instant::now();
        let results: Vec<Result<Socket>> = futures_util::stream::iter(0..wanted)
            .map(|_| wire::visitor_hello(&options.addr, &options.site, &options.origin))
            .buffer_unordered(options.connect_concurrency.max(1))
            .collect()
            .await;
        let seconds = started.elapsed().as_secs_f64();
        let measured = window.close();
        let mut failed = 0;
        for result in results {
            match result {
                Ok(socket) => sockets.push(socket),
                Err(err) => {
                    failed += 1;
                    first_error.get_or_insert_with(|| format!("{err:#}"));
                }
            }
        }
        let opened = wanted - failed;
        tokio::time::sleep(options.settle).await;
        let rss_bytes = rss(&options.probe);
        let bytes_per_connection = match (rss_bytes, baseline_rss) {
            (Some(now), Some(base)) if !sockets.is_empty() => {
                Some((now as f64 - base as f64) / sockets.len() as f64)
            }
            _ => None,
        };
        let step = Step {
            connections: sockets.len(),
            opened,
            failed,
            seconds,
            connects_per_sec: if seconds > 0.0 {
                opened as f64 / seconds
            } else {
                0.0
            },
            server_cpu_seconds: measured.server_cpu_seconds,
            connects_per_server_cpu_sec: measured.per_server_cpu_second(opened as u64),
            rss_bytes,
            bytes_per_connection,
        };
        eprintln!(
            "idle: {} connections ({failed} failed) in {seconds:.2} s = {:.0}/s; \
             {:.0} bytes per connection",
            step.connections,
            step.connects_per_sec,
            step.bytes_per_connection.unwrap_or(f64::NAN)
        );
        steps.push(step);
        if failed == wanted && wanted > 0 {
            break;
        }
    }
    if sockets.is_empty() {
        bail!(
            "no visitor could connect: {}",
            first_error.unwrap_or_default()
        );
    }
    eprintln!(
        "idle: holding {} connections for {:?}",
        sockets.len(),
        options.hold
    );
    tokio::time::sleep(options.hold).await;
    let rss_after_hold = rss(&options.probe);
    drop(sockets);
    Ok(serde_json::json!({
        "test": "idle",
        "addr": options.addr,
        "baseline_rss_bytes": baseline_rss,
        "rss_after_hold_bytes": rss_after_hold,
        "steps": steps,
        "first_error": first_error,
    }))
}

/// Parses `1000,5000,10000` (also `10k`).
pub fn parse_steps(text: &str) -> Result<Vec<usize>> {
    text.split(',')
        .map(|part| {
            let part = part.trim();
            let (digits, factor) = match part.strip_suffix(['k', 'K']) {
                Some(digits) => (digits, 1000),
                None => (part, 1),
            };
            match digits.parse::<usize>() {
                Ok(count) => Ok(count * factor),
                Err(_) => bail!("{part:?} is not a number of connections"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps() {
        assert_eq!(parse_steps("1000").ok(), Some(vec![1000]));
        assert_eq!(
            parse_steps("1k, 5000,10K").ok(),
            Some(vec![1000, 5000, 10_000])
        );
        assert!(parse_steps("1000,,2").is_err());
        assert!(parse_steps("many").is_err());
    }
}
