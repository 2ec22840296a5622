//! Counters for `/metrics` (Prometheus text format). Plain atomics: the hot path pays
//! one relaxed increment.

use salam_protocol::ErrorCode;
use salam_store::StoreMetrics;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[derive(Default)]
pub struct Metrics {
    pub visitor_connections: AtomicI64,
    pub agent_connections: AtomicI64,
    pub connections_refused: AtomicU64,
    pub messages_committed: AtomicU64,
    pub messages_duplicate: AtomicU64,
    pub frames_received: AtomicU64,
    pub logins_failed: AtomicU64,
    pub login_hashes: AtomicU64,
    pub logins_throttled: AtomicU64,
    pub errors_sent: dashmap::DashMap<&'static str, u64>,
}

impl Metrics {
    pub fn error(&self, code: ErrorCode) {
        *self.errors_sent.entry(code.as_str()).or_insert(0) += 1;
    }

    /// Renders every counter.
    pub fn render(&self, store: &StoreMetrics, kicks: u64) -> String {
        let mut out = String::with_capacity(2048);
        let gauge = |out: &mut String, name: &str, help: &str, kind: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        gauge(
            &mut out,
            "salam_connections",
            "Open WebSocket connections by kind.",
            "gauge",
        );
        let _ = writeln!(
            out,
            "salam_connections{{kind=\"visitor\"}} {}\nsalam_connections{{kind=\"agent\"}} {}",
            self.visitor_connections.load(Ordering::Relaxed),
            self.agent_connections.load(Ordering::Relaxed)
        );
        let counters: [(&str, &str, u64); 10] = [
            (
                "salam_login_hashes_total",
                "Password hashes verified at sign-in (one per attempt that was not refused first).",
                self.login_hashes.load(Ordering::Relaxed),
            ),
            (
                "salam_logins_failed_total",
                "Sign-ins refused for a wrong e-mail or password.",
                self.logins_failed.load(Ordering::Relaxed),
            ),
            (
                "salam_logins_throttled_total",
                "Sign-ins answered 429 (throttled, or too many at once) before any hashing.",
                self.logins_throttled.load(Ordering::Relaxed),
            ),
            (
                "salam_connections_refused_total",
                "Upgrades refused at the connection limit.",
                self.connections_refused.load(Ordering::Relaxed),
            ),
            (
                "salam_messages_total",
                "Messages committed and acknowledged.",
                self.messages_committed.load(Ordering::Relaxed),
            ),
            (
                "salam_messages_duplicate_total",
                "Resends recognised by client id (not stored again).",
                self.messages_duplicate.load(Ordering::Relaxed),
            ),
            (
                "salam_frames_received_total",
                "Client frames received.",
                self.frames_received.load(Ordering::Relaxed),
            ),
            (
                "salam_slow_consumer_kicks_total",
                "Deliveries that found a full client queue (client told to resync).",
                kicks,
            ),
            (
                "salam_commit_failures_total",
                "Group commits that failed (nothing in them was acknowledged).",
                store.failed_batches.load(Ordering::Relaxed),
            ),
            (
                "salam_commit_retries_total",
                "Group commits run again after a deadlock or serialization failure between hubs (PostgreSQL).",
                store.retried_batches.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            gauge(&mut out, name, help, "counter");
            let _ = writeln!(out, "{name} {value}");
        }
        gauge(
            &mut out,
            "salam_errors_sent_total",
            "Error frames sent, by stable code.",
            "counter",
        );
        let mut errors: Vec<(&str, u64)> = self
            .errors_sent
            .iter()
            .map(|entry| (*entry.key(), *entry.value()))
            .collect();
        errors.sort_unstable();
        for (code, count) in errors {
            let _ = writeln!(out, "salam_errors_sent_total{{code=\"{code}\"}} {count}");
        }
        gauge(
            &mut out,
            "salam_commit_batch_size",
            "Writes per group commit.",
            "histogram",
        );
        let mut cumulative = 0;
        for (bound, bucket) in ["1", "4", "16", "64", "+Inf"]
            .iter()
            .zip(store.batch_size_buckets.iter())
        {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "salam_commit_batch_size_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "salam_commit_batch_size_sum {}\nsalam_commit_batch_size_count {}",
            store.jobs.load(Ordering::Relaxed),
            store.batches.load(Ordering::Relaxed)
        );
        gauge(
            &mut out,
            "salam_commit_seconds",
            "Group commit latency (batch start to commit).",
            "summary",
        );
        let _ = writeln!(
            out,
            "salam_commit_seconds_sum {:.6}\nsalam_commit_seconds_count {}",
            store.commit_micros.load(Ordering::Relaxed) as f64 / 1e6,
            store.batches.load(Ordering::Relaxed)
        );
        out
    }
}
