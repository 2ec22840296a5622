//! Steady load with latency measurement, for the cases that compare the others'
//! latency with and without a misbehaving client (slow consumer, flood).
//!
//! Visitors send on a fixed schedule (open loop: a slow hub does not slow the senders
//! down and hide its own latency); a watching agent receives every message of the site.
//! The [`Book`] remembers when each tracked message was sent and in which phase, and
//! collects two latencies per message: send → `ack` (the sender) and send → `message`
//! at the watching agent (delivery to someone else).

use anyhow::Result;
use futures_util::StreamExt;
use salam_e2e::Client;
use salam_e2e::process::stats;
use salam_protocol::{ErrorCode, ServerFrame};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Before the fault.
pub const BEFORE: u8 = 0;
/// While the fault lasts.
pub const DURING: u8 = 1;
/// After the fault.
pub const AFTER: u8 = 2;
/// Stop sending.
pub const STOP: u8 = 3;

/// The current phase, shared by every task of a case.
#[derive(Clone, Default)]
pub struct Phases(Arc<AtomicU8>);

impl Phases {
    pub fn get(&self) -> u8 {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self, phase: u8) {
        self.0.store(phase, Ordering::Relaxed);
    }
}

/// One measured latency: when the message was sent, in which phase, how long it took.
type Sample = (Instant, u8, Duration);

#[derive(Default)]
struct BookInner {
    sent: HashMap<String, (Instant, u8)>,
    ack: Vec<Sample>,
    delivery: Vec<Sample>,
}

/// Send times and latencies of the tracked messages, by phase.
#[derive(Default)]
pub struct Book(Mutex<BookInner>);

impl Book {
    fn lock(&self) -> std::sync::MutexGuard<'_, BookInner> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn sent(&self, client_id: &str, at: Instant, phase: u8) {
        self.lock().sent.insert(client_id.to_owned(), (at, phase));
    }

    fn acked(&self, client_id: &str, at: Instant) {
        let mut inner = self.lock();
        if let Some(&(sent, phase)) = inner.sent.get(client_id)
            && phase < STOP
        {
            inner.ack.push((sent, phase, at - sent));
        }
    }

    fn delivered(&self, client_id: &str, at: Instant) {
        let mut inner = self.lock();
        if let Some(&(sent, phase)) = inner.sent.get(client_id)
            && phase < STOP
        {
            inner.delivery.push((sent, phase, at - sent));
        }
    }

    /// Ack and delivery samples.
    fn samples(&self) -> (Vec<Sample>, Vec<Sample>) {
        let inner = self.lock();
        (inner.ack.clone(), inner.delivery.clone())
    }
}

/// The window of sending time over which one p99 is taken.
const WINDOW: Duration = Duration::from_millis(2500);

/// Latencies (ms) of the samples sent in one of `phases`.
fn pooled(samples: &[Sample], phases: &[u8]) -> Vec<f64> {
    samples
        .iter()
        .filter(|(_, phase, _)| phases.contains(phase))
        .map(|(_, _, latency)| latency.as_secs_f64() * 1000.0)
        .collect()
}

/// The p99 of each [`WINDOW`] of sending time within `phases` (windows with fewer than
/// 20 samples left out).
fn windowed_p99(samples: &[Sample], phases: &[u8]) -> Vec<f64> {
    let Some(start) = samples.iter().map(|(sent, _, _)| *sent).min() else {
        return Vec::new();
    };
    let mut windows: HashMap<(u8, u128), Vec<f64>> = HashMap::new();
    for (sent, phase, latency) in samples {
        if phases.contains(phase) {
            let index = (*sent - start).as_millis() / WINDOW.as_millis();
            windows
                .entry((*phase, index))
                .or_default()
                .push(latency.as_secs_f64() * 1000.0);
        }
    }
    windows
        .into_values()
        .filter(|values| values.len() >= 20)
        .map(|values| stats::quantile(&values, 0.99))
        .collect()
}

/// How one sender ended.
#[derive(Debug, Default)]
pub struct SenderReport {
    pub name: String,
    /// client id → seq, in ack order.
    pub acked: Vec<(String, u64)>,
    /// Error frames: code and the client id they named.
    pub errors: Vec<(ErrorCode, Option<String>)>,
    /// Sends that got no answer at all.
    pub unanswered: Vec<String>,
    pub sent: usize,
    /// Sends made in each phase.
    pub sent_by_phase: [usize; 3],
    /// Acks of sends made in each phase.
    pub acked_by_phase: [usize; 3],
}

/// A visitor sending `rate` messages a second into `conversation` while `active` says
/// so for the current phase; until [`STOP`], then it waits (30 s at most) for an
/// answer to every send.
pub struct Sender {
    pub name: String,
    pub client: Client,
    pub conversation: String,
    pub rate: f64,
    pub text: String,
    /// Latencies of this sender's messages go into the book.
    pub tracked: bool,
    pub active: fn(u8) -> bool,
}

impl Sender {
    pub async fn run(mut self, book: Arc<Book>, phases: Phases) -> Result<SenderReport> {
        let mut report = SenderReport {
            name: self.name.clone(),
            ..SenderReport::default()
        };
        let every = Duration::from_secs_f64(1.0 / self.rate);
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut outstanding: HashMap<String, u8> = HashMap::new();
        let mut next = 0u64;
        let mut drain_deadline = None;
        loop {
            let phase = phases.get();
            if phase == STOP {
                if outstanding.is_empty() {
                    break;
                }
                let deadline =
                    *drain_deadline.get_or_insert_with(|| Instant::now() + Duration::from_secs(30));
                if Instant::now() >= deadline {
                    break;
                }
            }
            tokio::select! {
                _ = ticker.tick() => {
                    if phase == STOP || !(self.active)(phase) {
                        continue;
                    }
                    next += 1;
                    let client_id = format!("{}-{next}", self.name);
                    let frame = json!({
                        "type": "send",
                        "conversation": self.conversation,
                        "client_id": client_id,
                        "text": self.text,
                    });
                    let now = Instant::now();
                    if self.tracked {
                        book.sent(&client_id, now, phase);
                    }
                    outstanding.insert(client_id, phase);
                    report.sent += 1;
                    report.sent_by_phase[phase as usize] += 1;
                    self.client.send_json(&frame).await?;
                }
                incoming = self.client.socket.next() => {
                    let text = match incoming {
                        Some(Ok(WsMessage::Text(text))) => text,
                        Some(Ok(_)) => continue,
                        other => anyhow::bail!("{}: socket ended: {other:?}", self.name),
                    };
                    match salam_protocol::decode_server(text.as_str())? {
                        ServerFrame::Ack { client_id, seq, .. } => {
                            if self.tracked {
                                book.acked(&client_id, Instant::now());
                            }
                            if let Some(phase) = outstanding.remove(&client_id) {
                                report.acked_by_phase[phase as usize] += 1;
                            }
                            report.acked.push((client_id, seq));
                        }
                        ServerFrame::Error { code, client_id, .. } => {
                            if let Some(client_id) = &client_id {
                                outstanding.remove(client_id);
                            }
                            report.errors.push((code, client_id));
                        }
                        _ => {}
                    }
                }
            }
        }
        report.unanswered = outstanding.into_keys().collect();
        self.client.close().await;
        Ok(report)
    }
}

/// What the watching agent received.
#[derive(Debug, Default)]
pub struct WatchReport {
    /// client id → seq of every visitor message received.
    pub delivered: HashMap<String, u64>,
    /// Messages out of order or repeated on the one connection.
    pub disorder: Vec<String>,
    /// Bytes of `message` frames received, by phase.
    pub bytes_by_phase: [u64; 4],
    pub errors: Vec<String>,
}

/// An agent that reads everything of its sites and records delivery latencies. Once
/// `expect` is set it reads until it holds all those client ids (30 s at most).
pub async fn watch(
    mut client: Client,
    book: Arc<Book>,
    phases: Phases,
    expect: tokio::sync::watch::Receiver<Option<Arc<HashSet<String>>>>,
) -> Result<WatchReport> {
    let mut report = WatchReport::default();
    let mut last: HashMap<String, u64> = HashMap::new();
    let mut deadline = None;
    loop {
        if let Some(expected) = expect.borrow().clone() {
            if expected.iter().all(|id| report.delivered.contains_key(id)) {
                break;
            }
            let deadline =
                *deadline.get_or_insert_with(|| Instant::now() + Duration::from_secs(30));
            if Instant::now() >= deadline {
                break;
            }
        }
        let incoming =
            match tokio::time::timeout(Duration::from_millis(200), client.socket.next()).await {
                Err(_) => continue,
                Ok(incoming) => incoming,
            };
        let text = match incoming {
            Some(Ok(WsMessage::Text(text))) => text,
            Some(Ok(_)) => continue,
            other => anyhow::bail!("the watching agent's socket ended: {other:?}"),
        };
        let now = Instant::now();
        match salam_protocol::decode_server(text.as_str())? {
            ServerFrame::Message(message) => {
                report.bytes_by_phase[phases.get() as usize] += text.len() as u64;
                let previous = last.insert(message.conversation.clone(), message.seq);
                if previous.is_some_and(|previous| message.seq <= previous) {
                    report.disorder.push(format!(
                        "{} seq {} after {previous:?}",
                        message.conversation, message.seq
                    ));
                }
                if let Some(client_id) = message.client_id {
                    book.delivered(&client_id, now);
                    report.delivered.insert(client_id, message.seq);
                }
            }
            ServerFrame::Error { code, message, .. } => {
                report.errors.push(format!("{code}: {message}"));
            }
            _ => {}
        }
    }
    client.close().await;
    Ok(report)
}

/// Reads the watching agent's frames until each of `conversations` is assigned to it
/// (its `state` frame), so the senders start only once the agent follows them all. An
/// `ack` says the visitor's message is committed, not that routing has assigned the
/// conversation yet; a message published before that reaches the agent only through
/// the history (as the console reads it), not live, and the watcher reads live only.
pub async fn await_assigned(client: &mut Client, conversations: &[String]) -> Result<()> {
    let mut waiting: HashSet<&str> = conversations.iter().map(String::as_str).collect();
    while !waiting.is_empty() {
        if let ServerFrame::State {
            conversation,
            state: salam_protocol::ConversationState::Assigned,
            ..
        } = client.recv().await?
        {
            waiting.remove(conversation.as_str());
        }
    }
    Ok(())
}

/// The latency comparison of one case: the others' p99 while the fault lasts against
/// before and after it. A p99 is taken per 2.5 s window of sending time and the median
/// over the windows of each condition is compared, so one pause of the shared machine
/// spoils one window, not the verdict, while a degradation that lasts through the fault
/// still fails. Returns the printed summary and whether the fault's median p99 stayed
/// within `factor` times the baseline's plus `slack_ms`.
pub fn compare(book: &Book, factor: f64, slack_ms: f64) -> (String, bool) {
    let (ack, delivery) = book.samples();
    let mut ok = true;
    let mut lines = Vec::new();
    for (what, samples) in [("ack", &ack), ("delivery", &delivery)] {
        let (base, fault) = (
            windowed_p99(samples, &[BEFORE, AFTER]),
            windowed_p99(samples, &[DURING]),
        );
        let (base_p99, fault_p99) = (stats::quantile(&base, 0.5), stats::quantile(&fault, 0.5));
        let within = fault_p99 <= factor * base_p99 + slack_ms;
        ok &= within && base.len() >= 3 && fault.len() >= 3;
        lines.push(format!(
            "  {what:<8} without: {}\n  {what:<8} with:    {}\n  {what:<8} median of the p99s of {} s windows: {base_p99:.1} ms without ({} windows), \
             {fault_p99:.1} ms with ({} windows): ratio {:.2} (limit {factor}x + {slack_ms} ms: {})",
            stats::describe(&pooled(samples, &[BEFORE, AFTER])),
            stats::describe(&pooled(samples, &[DURING])),
            WINDOW.as_secs_f64(),
            base.len(),
            fault.len(),
            fault_p99 / base_p99.max(0.001),
            if within { "ok" } else { "EXCEEDED" }
        ));
    }
    (lines.join("\n"), ok)
}

/// Samples the hub's RSS and open files every 250 ms until [`STOP`]:
/// (seconds since start, phase, RSS KiB, fds).
pub async fn sample_memory(pid: u32, phases: Phases) -> Vec<(f64, u8, u64, u64)> {
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    while phases.get() != STOP {
        ticker.tick().await;
        if let Ok(sample) = salam_e2e::process::proc_sample(pid) {
            samples.push((
                started.elapsed().as_secs_f64(),
                phases.get(),
                sample.rss_kib,
                sample.fds,
            ));
        }
    }
    samples
}
