//! The measured window and the latency summaries every run reports.

use crate::probe::ServerProbe;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::{Duration, Instant};

/// The measured part of a run: wall-clock time and, with a probe, the server's CPU
/// time over exactly the same span.
pub struct Window {
    probe: Option<ServerProbe>,
    started: Instant,
    cpu_at_start: Option<f64>,
    own_cpu_at_start: Option<f64>,
}

impl Window {
    /// Opens the window now.
    pub fn open(probe: Option<&ServerProbe>) -> Window {
        let cpu_at_start = probe.and_then(|probe| probe.cpu_seconds().ok());
        Window {
            probe: probe.cloned(),
            started: Instant::now(),
            cpu_at_start,
            own_cpu_at_start: own_cpu_seconds(),
        }
    }

    /// When the window opened.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Closes the window now.
    pub fn close(self) -> Measured {
        let server_cpu_seconds = match (&self.probe, self.cpu_at_start) {
            (Some(probe), Some(start)) => probe.cpu_seconds().ok().map(|end| end - start),
            _ => None,
        };
        let seconds = self.started.elapsed().as_secs_f64();
        let loadgen_cpu_share = match (self.own_cpu_at_start, own_cpu_seconds()) {
            (Some(start), Some(end)) if seconds > 0.0 => Some((end - start) / seconds),
            _ => None,
        };
        Measured {
            seconds,
            server_cpu_seconds,
            loadgen_cpu_share,
        }
    }
}

/// What a closed [`Window`] measured.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Measured {
    pub seconds: f64,
    /// `None` without `--server-pid` (or when `/proc` could not be read).
    pub server_cpu_seconds: Option<f64>,
    /// The load generator's own CPU time over the window, in cores: near 1.0 per core
    /// it may run on means the load generator, not the server, is the bottleneck.
    pub loadgen_cpu_share: Option<f64>,
}

/// This process's CPU time so far.
fn own_cpu_seconds() -> Option<f64> {
    ServerProbe::new(std::process::id())
        .ok()?
        .cpu_seconds()
        .ok()
}

impl Measured {
    /// `count` per wall-clock second.
    pub fn per_second(&self, count: u64) -> f64 {
        if self.seconds > 0.0 {
            count as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// `count` per second of server CPU time.
    pub fn per_server_cpu_second(&self, count: u64) -> Option<f64> {
        self.server_cpu_seconds
            .filter(|cpu| *cpu > 0.0)
            .map(|cpu| count as f64 / cpu)
    }

    /// The fraction of one core the server used.
    pub fn server_cpu_share(&self) -> Option<f64> {
        self.server_cpu_seconds
            .filter(|_| self.seconds > 0.0)
            .map(|cpu| cpu / self.seconds)
    }
}

/// A latency histogram in microseconds, from 1 µs to two minutes at three significant
/// digits.
pub fn latency_histogram() -> Histogram<u64> {
    // Constant bounds that satisfy hdrhistogram's rules (low >= 1, high >= 2 * low,
    // sigfig <= 5), so this cannot fail at run time.
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("constant histogram bounds are valid")
}

/// Records a duration in microseconds (clamped into the histogram's range).
pub fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let micros = u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    histogram.saturating_record(micros);
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    /// Summarises a histogram of microseconds.
    pub fn of(histogram: &Histogram<u64>) -> LatencySummary {
        let ms = |micros: u64| micros as f64 / 1000.0;
        LatencySummary {
            count: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
        }
    }
}

/// Prints the run's one JSON line on stdout.
pub fn print_json(result: &serde_json::Value) {
    println!("{result}");
}

/// Splits the results of connecting many clients: the sockets that opened, how many
/// failed, and the first failure's text. An error when none opened.
pub fn split_connected<T>(
    results: Vec<anyhow::Result<T>>,
    what: &str,
) -> anyhow::Result<(Vec<T>, u64, Option<String>)> {
    let mut sockets = Vec::new();
    let mut errors = 0u64;
    let mut first_error = None;
    for result in results {
        match result {
            Ok(socket) => sockets.push(socket),
            Err(err) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("{err:#}"));
            }
        }
    }
    if sockets.is_empty() {
        anyhow::bail!(
            "no {what} could connect: {}",
            first_error.unwrap_or_default()
        );
    }
    Ok((sockets, errors, first_error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_values() {
        let mut histogram = latency_histogram();
        for millis in 1..=1000u64 {
            record(&mut histogram, Duration::from_millis(millis));
        }
        let summary = LatencySummary::of(&histogram);
        assert_eq!(summary.count, 1000);
        assert!((summary.p50_ms - 500.0).abs() < 1.0, "{summary:?}");
        assert!((summary.p99_ms - 990.0).abs() < 1.5, "{summary:?}");
        assert!((summary.max_ms - 1000.0).abs() < 1.5, "{summary:?}");
    }

    #[test]
    fn out_of_range_is_clamped() {
        let mut histogram = latency_histogram();
        record(&mut histogram, Duration::ZERO);
        record(&mut histogram, Duration::from_secs(100_000));
        assert_eq!(histogram.len(), 2);
    }

    #[test]
    fn rates() {
        let measured = Measured {
            seconds: 2.0,
            server_cpu_seconds: Some(0.5),
            loadgen_cpu_share: None,
        };
        assert_eq!(measured.per_second(100), 50.0);
        assert_eq!(measured.per_server_cpu_second(100), Some(200.0));
        assert_eq!(measured.server_cpu_share(), Some(0.25));
        let unprobed = Measured {
            seconds: 2.0,
            server_cpu_seconds: None,
            loadgen_cpu_share: None,
        };
        assert_eq!(unprobed.per_server_cpu_second(100), None);
    }
}
