//! Visitors that keep sending through a store outage (a full or read-only disk, the
//! PostgreSQL server stopping) and resend what was refused: the chaos disk cases
//! (tests/tests/chaos/disk.rs) and the cluster's database outage
//! (tests/tests/cluster/outage.rs).
//!
//! A [`Writer`] sends into its own conversation every 50 ms (at most two unanswered),
//! keeps each `store_unavailable` refusal to resend it with the same client id once
//! the test says the fault is over ([`Phase::Recover`]), reconnects on its own, and
//! records every ack (sequence, when it arrived) and anything the protocol forbids
//! (an unexpected error, a refusal before the fault, a send unanswered for 30 s, one
//! client id acknowledged with two sequences).

use crate::Client;
use crate::process::{ORIGIN, visitor_session};
use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use salam_protocol::{ErrorCode, ServerFrame};
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// What the writers are told: before the fault, during it, after it (resend what was
/// refused), stop (finish resending, then return).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    Before,
    Fault,
    Recover,
    Stop,
}

/// A visitor writing continuously, keeping what was refused to resend it.
pub struct Writer {
    pub name: String,
    pub site_key: String,
    pub token: String,
    pub conversation: String,
    pub acked: HashMap<String, u64>,
    pub acked_in: HashMap<&'static str, usize>,
    /// Refused with `store_unavailable`, to resend (oldest first).
    pub refused: Vec<String>,
    /// Sent, not answered yet (with when).
    pub outstanding: Vec<(String, Instant)>,
    pub next: u64,
    pub violations: Vec<String>,
    pub refusals: Arc<AtomicU64>,
    pub recovered_acks: Arc<AtomicU64>,
    pub backlog: Arc<AtomicU64>,
    /// When each client id was first sent.
    pub first_sent: HashMap<String, Instant>,
    /// When each client id's first `ack` arrived.
    pub acked_at: HashMap<String, Instant>,
}

impl Writer {
    /// A new visitor on `site_key` through `addr`: its first message (`NAME-0`, "hi")
    /// opens its conversation and must be acknowledged. Refusals and acknowledgements
    /// after the fault are counted in the shared `refusals` and `recovered_acks`.
    pub async fn open(
        addr: SocketAddr,
        name: &str,
        site_key: &str,
        refusals: Arc<AtomicU64>,
        recovered_acks: Arc<AtomicU64>,
    ) -> Result<Writer> {
        let mut client = visitor_session(addr, ORIGIN, site_key, None).await?;
        let first = format!("{name}-0");
        client
            .send_json(&json!({"type": "send", "client_id": first, "text": "hi"}))
            .await?;
        let (ack, _) = client
            .recv_until(|f| matches!(f, ServerFrame::Ack { .. }))
            .await?;
        let ServerFrame::Ack {
            conversation, seq, ..
        } = ack
        else {
            bail!("{name}: expected an ack, got {ack:?}");
        };
        let token = client.token.clone().context("visitor token")?;
        client.close().await;
        Ok(Writer {
            acked: HashMap::from([(first, seq)]),
            name: name.to_owned(),
            site_key: site_key.to_owned(),
            token,
            conversation,
            acked_in: HashMap::new(),
            refused: Vec::new(),
            outstanding: Vec::new(),
            next: 1,
            violations: Vec::new(),
            refusals,
            recovered_acks,
            backlog: Arc::new(AtomicU64::new(0)),
            first_sent: HashMap::new(),
            acked_at: HashMap::new(),
        })
    }

    fn frame(&self, client_id: &str) -> serde_json::Value {
        json!({
            "type": "send",
            "conversation": self.conversation,
            "client_id": client_id,
            "text": format!("{client_id}: {}", "x".repeat(1000)),
        })
    }

    async fn connect(&self, addr: SocketAddr) -> Result<Client> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match visitor_session(addr, ORIGIN, &self.site_key, Some(&self.token)).await {
                Ok(client) => return Ok(client),
                Err(err) if Instant::now() >= deadline => {
                    return Err(err.context("could not reconnect within 120 s"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    fn on_frame(&mut self, frame: ServerFrame, phase: Phase) {
        match frame {
            ServerFrame::Ack { client_id, seq, .. } => {
                self.outstanding.retain(|(id, _)| *id != client_id);
                self.acked_at
                    .entry(client_id.clone())
                    .or_insert_with(Instant::now);
                if let Some(earlier) = self.acked.insert(client_id.clone(), seq)
                    && earlier != seq
                {
                    self.violations
                        .push(format!("{client_id} acknowledged as {earlier}, then {seq}"));
                }
                let label = match phase {
                    Phase::Before => "before",
                    Phase::Fault => "fault",
                    Phase::Recover | Phase::Stop => "after",
                };
                *self.acked_in.entry(label).or_default() += 1;
                if matches!(phase, Phase::Recover | Phase::Stop) {
                    self.recovered_acks.fetch_add(1, Ordering::Relaxed);
                }
            }
            ServerFrame::Error {
                code: ErrorCode::StoreUnavailable,
                client_id: Some(client_id),
                ..
            } => {
                self.outstanding.retain(|(id, _)| *id != client_id);
                self.refusals.fetch_add(1, Ordering::Relaxed);
                if phase == Phase::Before {
                    self.violations
                        .push(format!("{client_id} refused before any fault"));
                }
                if !self.refused.contains(&client_id) {
                    self.refused.push(client_id);
                }
            }
            ServerFrame::Error {
                code,
                message,
                client_id,
            } => self.violations.push(format!(
                "unexpected error {code} for {client_id:?}: {message}"
            )),
            _ => {}
        }
    }

    pub async fn run(mut self, addr: SocketAddr, mut phase: watch::Receiver<Phase>) -> Writer {
        let every = Duration::from_millis(50);
        let mut next_send = Instant::now();
        let mut last_resend = Instant::now();
        let mut stop_deadline = None;
        'connection: loop {
            let mut client = match self.connect(addr).await {
                Ok(client) => client,
                Err(err) => {
                    self.violations.push(format!("{err:#}"));
                    return self;
                }
            };
            // Whatever was in flight when the connection broke is resent as is.
            for (client_id, sent) in self.outstanding.iter_mut() {
                *sent = Instant::now();
                let frame = json!({
                    "type": "send",
                    "conversation": self.conversation,
                    "client_id": client_id,
                    "text": format!("{client_id}: {}", "x".repeat(1000)),
                });
                if client.send_json(&frame).await.is_err() {
                    continue 'connection;
                }
            }
            loop {
                let current = *phase.borrow_and_update();
                self.backlog.store(
                    (self.refused.len() + self.outstanding.len()) as u64,
                    Ordering::Relaxed,
                );
                if current == Phase::Stop {
                    if self.refused.is_empty() && self.outstanding.is_empty() {
                        client.close().await;
                        return self;
                    }
                    let deadline = *stop_deadline
                        .get_or_insert_with(|| Instant::now() + Duration::from_secs(60));
                    if Instant::now() >= deadline {
                        self.violations.push(format!(
                            "still {} refused and {} unanswered 60 s after recovery",
                            self.refused.len(),
                            self.outstanding.len()
                        ));
                        return self;
                    }
                }
                if let Some((client_id, sent)) = self.outstanding.first()
                    && sent.elapsed() > Duration::from_secs(30)
                {
                    self.violations.push(format!(
                        "no answer to {client_id} for 30 s in phase {current:?}: the hub hangs"
                    ));
                    return self;
                }
                let now = Instant::now();
                if matches!(current, Phase::Recover | Phase::Stop)
                    && !self.refused.is_empty()
                    && self.outstanding.len() < 2
                    && now.duration_since(last_resend) > Duration::from_millis(200)
                {
                    let client_id = self.refused.remove(0);
                    last_resend = now;
                    let frame = self.frame(&client_id);
                    self.outstanding.push((client_id, now));
                    if client.send_json(&frame).await.is_err() {
                        continue 'connection;
                    }
                    continue;
                }
                if current != Phase::Stop && self.outstanding.len() < 2 && now >= next_send {
                    let client_id = format!("{}-{}", self.name, self.next);
                    self.next += 1;
                    next_send = now + every;
                    self.first_sent.insert(client_id.clone(), now);
                    let frame = self.frame(&client_id);
                    self.outstanding.push((client_id, now));
                    if client.send_json(&frame).await.is_err() {
                        continue 'connection;
                    }
                    continue;
                }
                let incoming = tokio::select! {
                    incoming = client.socket.next() => incoming,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => continue,
                    _ = phase.changed() => continue,
                };
                match incoming {
                    Some(Ok(WsMessage::Text(text))) => {
                        match salam_protocol::decode_server(text.as_str()) {
                            Ok(frame) => self.on_frame(frame, current),
                            Err(err) => self.violations.push(format!("undecodable {text}: {err}")),
                        }
                    }
                    Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => continue 'connection,
                    Some(Ok(_)) => {}
                }
            }
        }
    }
}
