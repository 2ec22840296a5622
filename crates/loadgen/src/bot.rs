//! Visitors asking the hub's bot questions: question → answer latency.
//!
//! Key design decision: **an answer is matched to a question by sequence number, not by
//! timing**. The bot's line carries no `client_id`, so each visitor keeps its questions
//! in order with the `seq` its `ack` gave them; a bot `message` answers the oldest
//! acknowledged question with a smaller `seq` (a conversation's sequence is gap-free
//! and the bot answers in order). A bot line that matches no question (a greeting, a
//! second line) is counted as `unmatched` rather than taken for an answer, so a
//! change in how the bot talks shows up in the counts instead of skewing the latency.
//!
//! The questions are the in-scope sentences of a rule-pack evaluation file
//! (`lang<TAB>expected<TAB>text`, e.g. `bot-rules/eval/dev.tsv`): rows the bot must not
//! answer (`none`) and rows that hand off to a person (`human_agent`, `complaint`) are
//! left out, because after a handoff the bot stays quiet in that conversation. The load
//! is open loop at a fixed total rate, with the *scheduled* send time as the start of
//! each measurement (no coordinated omission), as in [`crate::relay`]. The hub must
//! have the bot on for the site and a per-connection rate limit above the per-visitor
//! rate.

use crate::echo::join_all;
use crate::probe::ServerProbe;
use crate::relay::{client_id, parse_client_id};
use crate::report::{LatencySummary, Window, latency_histogram, record};
use crate::wire::{self, Incoming, Socket};
use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use salam_protocol::{AuthorKind, ConversationState, ServerFrame, VisitorFrame};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

/// Options of `salam-loadgen bot`.
#[derive(Debug, Clone)]
pub struct BotOptions {
    pub addr: String,
    pub site: String,
    pub origin: String,
    pub questions: Vec<String>,
    pub visitors: usize,
    /// Questions per second in total.
    pub rate: f64,
    pub warmup: Duration,
    pub seconds: Duration,
    pub drain: Duration,
    pub connect_concurrency: usize,
    pub probe: Option<ServerProbe>,
}

/// Expected intents whose sentences are not used: the bot must not answer `none`, and
/// a handoff silences the bot for the rest of the conversation.
const LEFT_OUT: [&str; 3] = ["none", "human_agent", "complaint"];

/// The questions of an evaluation file (`lang<TAB>expected<TAB>text`, `#` comments).
pub fn parse_questions(tsv: &str) -> Vec<String> {
    tsv.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| {
            let mut fields = line.splitn(3, '\t');
            let (_lang, expected, text) = (fields.next()?, fields.next()?, fields.next()?);
            let text = text.trim();
            (!LEFT_OUT.contains(&expected.trim()) && !text.is_empty()).then(|| text.to_owned())
        })
        .collect()
}

/// Reads and filters an evaluation file.
pub fn load_questions(path: &str) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let questions = parse_questions(&text);
    if questions.is_empty() {
        bail!("{path} has no questions the bot should answer");
    }
    Ok(questions)
}

/// Where the run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Run,
    Drain,
    Stop,
}

struct Shared {
    base: Instant,
    measure_from_ns: AtomicU64,
    measure_until_ns: AtomicU64,
    sent: AtomicU64,
    answered: AtomicU64,
    unmatched: AtomicU64,
    handoffs: AtomicU64,
    rejected: AtomicU64,
    undecodable: AtomicU64,
    /// Questions scheduled in the window and never answered.
    unanswered_in_window: AtomicU64,
}

impl Shared {
    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    fn in_window(&self, at: Instant) -> bool {
        let at = self.nanos(at);
        at >= self.measure_from_ns.load(Ordering::Relaxed)
            && at < self.measure_until_ns.load(Ordering::Relaxed)
    }
}

/// One question awaiting its answer.
#[derive(Debug, Clone, Copy)]
struct Asked {
    id: u64,
    scheduled: Instant,
    /// From the `ack`.
    seq: Option<u64>,
}

/// A visitor's questions in the order asked.
#[derive(Debug, Default)]
pub struct Questions {
    asked: VecDeque<Asked>,
}

impl Questions {
    fn ask(&mut self, id: u64, scheduled: Instant) {
        self.asked.push_back(Asked {
            id,
            scheduled,
            seq: None,
        });
    }

    fn acked(&mut self, id: u64, seq: u64) {
        if let Some(asked) = self.asked.iter_mut().find(|asked| asked.id == id) {
            asked.seq = Some(seq);
        }
    }

    fn forget(&mut self, id: u64) {
        self.asked.retain(|asked| asked.id != id);
    }

    /// The question a bot line with `seq` answers: the oldest acknowledged one before
    /// it. Returns its scheduled send time.
    fn answer(&mut self, seq: u64) -> Option<Instant> {
        let at = self
            .asked
            .iter()
            .position(|asked| asked.seq.is_some_and(|asked_seq| asked_seq < seq))?;
        self.asked.remove(at).map(|asked| asked.scheduled)
    }
}

/// Runs the bot benchmark; returns the JSON result.
pub async fn run(options: BotOptions) -> Result<serde_json::Value> {
    if options.visitors == 0 || options.visitors > crate::relay::MAX_VISITORS {
        bail!(
            "--visitors must be from 1 to {}",
            crate::relay::MAX_VISITORS
        );
    }
    if !(options.rate.is_finite() && options.rate > 0.0) {
        bail!("--rate must be a positive number of questions per second");
    }
    if options.questions.is_empty() {
        bail!("no questions");
    }
    let shared = Arc::new(Shared {
        base: Instant::now(),
        measure_from_ns: AtomicU64::new(u64::MAX),
        measure_until_ns: AtomicU64::new(u64::MAX),
        sent: AtomicU64::new(0),
        answered: AtomicU64::new(0),
        unmatched: AtomicU64::new(0),
        handoffs: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        undecodable: AtomicU64::new(0),
        unanswered_in_window: AtomicU64::new(0),
    });
    eprintln!(
        "bot: connecting {} visitors; {} questions",
        options.visitors,
        options.questions.len()
    );
    let connected: Vec<Result<Socket>> = futures_util::stream::iter(0..options.visitors)
        .map(|_| wire::visitor_hello(&options.addr, &options.site, &options.origin))
        .buffer_unordered(options.connect_concurrency.max(1))
        .collect()
        .await;
    let (sockets, connect_errors, first_connect_error) =
        crate::report::split_connected(connected, "visitor")?;
    let n_visitors = sockets.len();
    let questions: Arc<[String]> = options.questions.clone().into();
    let (phase_sender, phase) = watch::channel(Phase::Run);
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let interval = Duration::from_secs_f64(n_visitors as f64 / options.rate);
    let mut tasks = JoinSet::new();
    for (visitor_idx, socket) in sockets.into_iter().enumerate() {
        let first = start + interval.mul_f64(visitor_idx as f64 / n_visitors as f64);
        tasks.spawn(visitor(
            socket,
            visitor_idx as u64,
            first,
            interval,
            questions.clone(),
            shared.clone(),
            phase.clone(),
        ));
    }

    eprintln!("bot: warming up for {:?}", options.warmup);
    tokio::time::sleep_until(start).await;
    tokio::time::sleep(options.warmup).await;
    let window = Window::open(options.probe.as_ref());
    shared
        .measure_from_ns
        .store(shared.nanos(window.started()), Ordering::Relaxed);
    let sent_start = shared.sent.load(Ordering::Relaxed);
    let answered_start = shared.answered.load(Ordering::Relaxed);
    tokio::time::sleep(options.seconds).await;
    let sent = shared.sent.load(Ordering::Relaxed) - sent_start;
    let answered = shared.answered.load(Ordering::Relaxed) - answered_start;
    shared
        .measure_until_ns
        .store(shared.nanos(Instant::now()), Ordering::Relaxed);
    let measured = window.close();
    let _ = phase_sender.send(Phase::Drain);
    tokio::time::sleep(options.drain).await;
    let _ = phase_sender.send(Phase::Stop);
    let (histograms, errors, first_error) = join_all(&mut tasks).await;
    let mut latency = latency_histogram();
    for histogram in &histograms {
        let _ = latency.add(histogram);
    }
    let latency = LatencySummary::of(&latency);
    eprintln!(
        "bot: {answered} answers in {:.2} s; question → answer p50 {:.2} ms p99 {:.2} ms \
         p99.9 {:.2} ms",
        measured.seconds, latency.p50_ms, latency.p99_ms, latency.p999_ms
    );
    Ok(serde_json::json!({
        "test": "bot",
        "addr": options.addr,
        "visitors": n_visitors,
        "rate": options.rate,
        "questions": options.questions.len(),
        "seconds": measured.seconds,
        "sent": sent,
        "answered": answered,
        "answered_per_sec": measured.per_second(answered),
        "server_cpu_seconds": measured.server_cpu_seconds,
        "server_cpu_share": measured.server_cpu_share(),
        "loadgen_cpu_share": measured.loadgen_cpu_share,
        "answered_per_server_cpu_sec": measured.per_server_cpu_second(answered),
        "latency": latency,
        "unanswered_in_window": shared.unanswered_in_window.load(Ordering::Relaxed),
        "unmatched": shared.unmatched.load(Ordering::Relaxed),
        "handoffs": shared.handoffs.load(Ordering::Relaxed),
        "rejected": shared.rejected.load(Ordering::Relaxed),
        "undecodable": shared.undecodable.load(Ordering::Relaxed),
        "connect_errors": connect_errors,
        "first_connect_error": first_connect_error,
        "errors": errors,
        "first_error": first_error,
    }))
}

/// One visitor: asks a question every `interval`, matches the bot's answers.
async fn visitor(
    mut socket: Socket,
    visitor_idx: u64,
    first: tokio::time::Instant,
    interval: Duration,
    questions: Arc<[String]>,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
) -> Result<Histogram<u64>> {
    let mut latency = latency_histogram();
    let mut asked = Questions::default();
    let mut ticker = tokio::time::interval_at(first, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut next = 0u64;
    let mut sending = true;
    loop {
        tokio::select! {
            changed = phase.changed() => {
                let now = match changed {
                    Ok(()) => *phase.borrow_and_update(),
                    Err(_) => Phase::Stop,
                };
                match now {
                    Phase::Run => {}
                    Phase::Drain => sending = false,
                    Phase::Stop => {
                        let unanswered = asked
                            .asked
                            .iter()
                            .filter(|question| shared.in_window(question.scheduled))
                            .count();
                        shared
                            .unanswered_in_window
                            .fetch_add(unanswered as u64, Ordering::Relaxed);
                        return Ok(latency);
                    }
                }
            }
            scheduled = ticker.tick(), if sending => {
                let id = (visitor_idx << 32) | (next & 0xffff_ffff);
                // Each visitor walks the list from its own place.
                let at = (visitor_idx as usize).wrapping_mul(7).wrapping_add(next as usize);
                let text = questions[at % questions.len()].clone();
                next += 1;
                asked.ask(id, scheduled.into_std());
                shared.sent.fetch_add(1, Ordering::Relaxed);
                let frame = VisitorFrame::Send {
                    client_id: client_id(id),
                    text,
                    conversation: None,
                };
                wire::send_json(&mut socket, &frame).await?;
            }
            incoming = wire::next_frame(&mut socket) => match incoming? {
                Incoming::Frame(ServerFrame::Ack { client_id, seq, .. }) => {
                    if let Some(id) = parse_client_id(&client_id) {
                        asked.acked(id, seq);
                    }
                }
                Incoming::Frame(ServerFrame::Message(message))
                    if message.author.kind == AuthorKind::Bot =>
                {
                    let received = Instant::now();
                    match asked.answer(message.seq) {
                        Some(scheduled) => {
                            shared.answered.fetch_add(1, Ordering::Relaxed);
                            if shared.in_window(scheduled) {
                                record(&mut latency, received.saturating_duration_since(scheduled));
                            }
                        }
                        None => {
                            shared.unmatched.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Incoming::Frame(ServerFrame::State { state: ConversationState::Queued, .. }) => {
                    shared.handoffs.fetch_add(1, Ordering::Relaxed);
                }
                Incoming::Frame(ServerFrame::Error { client_id, .. }) => {
                    shared.rejected.fetch_add(1, Ordering::Relaxed);
                    if let Some(id) = client_id.as_deref().and_then(parse_client_id) {
                        asked.forget(id);
                    }
                }
                Incoming::Frame(_) => {}
                Incoming::Undecodable(_) => {
                    shared.undecodable.fetch_add(1, Ordering::Relaxed);
                }
                Incoming::Closed => bail!("the hub closed a visitor connection"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_leave_out_unanswerable_and_handoffs() {
        let tsv = "# comment\nen\tgreeting\thi\nen\tnone\tweather?\nen\thuman_agent\ta person\n\
                   en\tcomplaint\tbad\nfa\torder_tracking\tسفارشم کجاست؟\nbroken line\n";
        assert_eq!(parse_questions(tsv), ["hi", "سفارشم کجاست؟"]);
    }

    #[test]
    fn answers_match_the_oldest_acked_question_before_them() {
        let base = Instant::now();
        let at = |ms| base + Duration::from_millis(ms);
        let mut questions = Questions::default();
        questions.ask(1, at(0));
        questions.ask(2, at(10));
        // A bot line before any ack (a greeting) answers nothing.
        assert_eq!(questions.answer(1), None);
        questions.acked(1, 2);
        questions.acked(2, 3);
        assert_eq!(questions.answer(4), Some(at(0)));
        assert_eq!(questions.answer(5), Some(at(10)));
        assert_eq!(questions.answer(6), None);
        questions.ask(3, at(20));
        questions.acked(3, 7);
        // A line older than the question is not its answer.
        assert_eq!(questions.answer(7), None);
        questions.forget(3);
        assert_eq!(questions.answer(8), None);
    }
}
