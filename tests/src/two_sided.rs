//! Clients that send continuously from both sides and reconnect on their own (the
//! chaos crash test and the cluster's failover tests): each [`Party`] tracks what it
//! sent, what was acknowledged and which sequences it saw, so a test can check that
//! nothing acknowledged was lost, moved, repeated or delivered out of order.

use crate::Client;
use crate::process::{ORIGIN, agent_session, eventually, visitor_session};
use anyhow::Result;
use futures_util::StreamExt;
use salam_protocol::{ConversationState, ServerFrame};
use serde_json::json;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Messages each client sends per second at most (moderate: the machine is shared).
pub const SEND_RATE: f64 = 25.0;
/// Sends a client may have waiting for their ack.
pub const WINDOW: usize = 4;

/// What the clients are told to do.
#[derive(Clone)]
pub enum Phase {
    Run,
    /// Stop sending new messages; finish what is in flight.
    Stop,
    /// Read until every conversation is seen up to these sequences, then return.
    Drain(Arc<HashMap<String, u64>>),
}

pub enum Role {
    Visitor { site_key: String, token: String },
    Agent { id: String, token: String },
}

/// What one client knows of one conversation.
#[derive(Default)]
pub struct Track {
    /// Every sequence seen: `message` frames, and for own messages their `ack`.
    pub seen: BTreeSet<u64>,
    /// Highest `message` sequence on the current connection (starts at the resume
    /// point): anything not above it is out of order or a duplicate.
    pub last_on_connection: u64,
}

impl Track {
    /// The highest `n` such that 1..=n were all seen.
    pub fn contiguous(&self) -> u64 {
        let mut n = 0;
        for &seq in &self.seen {
            if seq == n + 1 {
                n = seq;
            } else if seq > n + 1 {
                break;
            }
        }
        n
    }
}

/// One visitor or agent sending continuously and reconnecting on its own.
pub struct Party {
    pub name: String,
    pub role: Role,
    pub conversations: Vec<String>,
    pub tracks: HashMap<String, Track>,
    /// client id → (conversation, sequence) of every ack.
    pub acked: HashMap<String, (String, u64)>,
    /// Sent and not yet acknowledged: (client id, conversation), in sending order.
    pub pending: VecDeque<(String, String)>,
    pub next: u64,
    pub connections: u32,
    pub violations: Vec<String>,
    pub acks: Arc<AtomicU64>,
    pub quiet: Arc<AtomicBool>,
    /// Where the first connection goes (then every reconnection goes to `run`'s
    /// address): a client of one hub of a cluster that reconnects through nginx.
    pub first_addr: Option<SocketAddr>,
}

impl Party {
    pub fn new(name: String, role: Role, conversations: Vec<String>) -> Party {
        let tracks = conversations
            .iter()
            .map(|c| (c.clone(), Track::default()))
            .collect();
        Party {
            name,
            role,
            conversations,
            tracks,
            acked: HashMap::new(),
            pending: VecDeque::new(),
            next: 1,
            connections: 0,
            violations: Vec::new(),
            acks: Arc::new(AtomicU64::new(0)),
            quiet: Arc::new(AtomicBool::new(false)),
            first_addr: None,
        }
    }

    fn violation(&mut self, text: String) {
        if self.violations.len() < 20 {
            self.violations.push(format!(
                "{} (connection {}): {text}",
                self.name, self.connections
            ));
        }
    }

    /// Connects (retrying while the hub is down) and greets.
    async fn connect(&self, addr: SocketAddr) -> Result<Client> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let attempt = match &self.role {
                Role::Visitor { site_key, token } => {
                    visitor_session(addr, ORIGIN, site_key, Some(token)).await
                }
                Role::Agent { token, .. } => agent_session(addr, token).await,
            };
            match attempt {
                Ok(client) => return Ok(client),
                Err(err) if Instant::now() >= deadline => {
                    return Err(err.context("could not reconnect within 120 s"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(150)).await,
            }
        }
    }

    /// The welcome must list each of this client's conversations, open, with at least
    /// every acknowledged sequence, and (agents) still assigned to this agent.
    fn check_welcome(&mut self, client: &Client) {
        let Some(ServerFrame::Welcome { conversations, .. }) = &client.welcome else {
            return self.violation("no welcome".into());
        };
        let listed: HashMap<&str, &salam_protocol::ConversationSummary> =
            conversations.iter().map(|c| (c.id.as_str(), c)).collect();
        let mut problems = Vec::new();
        for conversation in &self.conversations {
            let acked_max = self
                .acked
                .values()
                .filter(|(c, _)| c == conversation)
                .map(|(_, seq)| *seq)
                .max()
                .unwrap_or(0);
            match listed.get(conversation.as_str()) {
                None => problems.push(format!("welcome does not list {conversation}")),
                Some(summary) => {
                    if summary.last_seq < acked_max {
                        problems.push(format!(
                            "welcome lists {conversation} at last_seq {} below the acknowledged {acked_max}",
                            summary.last_seq
                        ));
                    }
                    if let Role::Agent { id, .. } = &self.role {
                        let agent = summary.agent.as_ref().and_then(|a| a.id.as_deref());
                        if summary.state != ConversationState::Assigned || agent != Some(id) {
                            problems.push(format!(
                                "{conversation} is {:?} with agent {agent:?} after the restart, not assigned to {id}",
                                summary.state
                            ));
                        }
                    }
                }
            }
        }
        for problem in problems {
            self.violation(problem);
        }
    }

    fn on_frame(&mut self, frame: ServerFrame) {
        match frame {
            ServerFrame::Message(message) => {
                let Some(track) = self.tracks.get_mut(&message.conversation) else {
                    return;
                };
                let previous = track.last_on_connection;
                track.last_on_connection = previous.max(message.seq);
                track.seen.insert(message.seq);
                if message.seq <= previous {
                    self.violation(format!(
                        "{} seq {} arrived after seq {previous} (out of order or repeated on one connection)",
                        message.conversation, message.seq
                    ));
                }
                if let Some(client_id) = &message.client_id
                    && let Some((_, seq)) = self.acked.get(client_id)
                    && *seq != message.seq
                {
                    let seq = *seq;
                    self.violation(format!(
                        "{client_id} was acknowledged as seq {seq} but delivered as {}",
                        message.seq
                    ));
                }
            }
            ServerFrame::Ack {
                client_id,
                conversation,
                seq,
                ..
            } => {
                if let Some(position) = self.pending.iter().position(|(id, _)| *id == client_id) {
                    self.pending.remove(position);
                }
                if let Some(track) = self.tracks.get_mut(&conversation) {
                    track.seen.insert(seq);
                }
                let previous = self
                    .acked
                    .insert(client_id.clone(), (conversation.clone(), seq));
                if let Some(previous) = previous
                    && previous != (conversation.clone(), seq)
                {
                    self.violation(format!(
                        "{client_id} acknowledged as {previous:?}, then as ({conversation}, {seq})"
                    ));
                }
                self.acks.fetch_add(1, Ordering::Relaxed);
            }
            ServerFrame::Error {
                code,
                message,
                client_id,
            } => self.violation(format!("error {code} for {client_id:?}: {message}")),
            ServerFrame::State {
                conversation,
                state,
                reason,
            } if self.tracks.contains_key(&conversation)
                && state != ConversationState::Assigned =>
            {
                self.violation(format!("{conversation} moved to {state:?} ({reason:?})"));
            }
            _ => {}
        }
    }

    fn send_frame(&self, client_id: &str, conversation: &str) -> serde_json::Value {
        json!({
            "type": "send",
            "conversation": conversation,
            "client_id": client_id,
            "text": format!("{} says {client_id}", self.name),
        })
    }

    /// Runs until told to drain and caught up; returns itself with what it saw.
    pub async fn run(mut self, addr: SocketAddr, mut phase: watch::Receiver<Phase>) -> Party {
        let every = Duration::from_secs_f64(1.0 / SEND_RATE);
        let mut round = 0usize;
        'connection: loop {
            let target = match self.first_addr {
                Some(first) if self.connections == 0 => first,
                _ => addr,
            };
            let mut client = match self.connect(target).await {
                Ok(client) => client,
                Err(err) => {
                    self.violation(format!("{err:#}"));
                    return self;
                }
            };
            self.connections += 1;
            self.check_welcome(&client);
            // Resume each conversation after what was seen without a gap, then resend
            // what was never acknowledged, with the same client ids.
            for conversation in self.conversations.clone() {
                let track = self.tracks.entry(conversation.clone()).or_default();
                let after = track.contiguous();
                track.last_on_connection = after;
                let resume =
                    json!({"type": "resume", "conversation": conversation, "after": after});
                if client.send_json(&resume).await.is_err() {
                    continue 'connection;
                }
            }
            for (client_id, conversation) in self.pending.clone() {
                let frame = self.send_frame(&client_id, &conversation);
                if client.send_json(&frame).await.is_err() {
                    continue 'connection;
                }
            }
            let mut next_send = Instant::now();
            let mut last_heard = Instant::now();
            loop {
                let current = phase.borrow_and_update().clone();
                match &current {
                    Phase::Run => self.quiet.store(false, Ordering::Relaxed),
                    Phase::Stop | Phase::Drain(_) => {
                        self.quiet.store(self.pending.is_empty(), Ordering::Relaxed)
                    }
                }
                if let Phase::Drain(targets) = &current
                    && self.pending.is_empty()
                    && self.conversations.iter().all(|c| {
                        self.tracks.get(c).map_or(0, Track::contiguous)
                            >= targets.get(c).copied().unwrap_or(0)
                    })
                {
                    client.close().await;
                    return self;
                }
                let now = Instant::now();
                if matches!(current, Phase::Run)
                    && self.pending.len() < WINDOW
                    && now >= next_send
                    && !self.conversations.is_empty()
                {
                    let conversation = self.conversations[round % self.conversations.len()].clone();
                    round += 1;
                    let client_id = format!("{}-{}", self.name, self.next);
                    self.next += 1;
                    let frame = self.send_frame(&client_id, &conversation);
                    self.pending.push_back((client_id, conversation));
                    next_send = now + every;
                    if client.send_json(&frame).await.is_err() {
                        continue 'connection;
                    }
                    continue;
                }
                if !self.pending.is_empty() && last_heard.elapsed() > Duration::from_secs(30) {
                    self.violation(format!(
                        "no frame for 30 s while {} sends wait for their ack",
                        self.pending.len()
                    ));
                    return self;
                }
                let wait = next_send
                    .saturating_duration_since(now)
                    .clamp(Duration::from_millis(5), Duration::from_millis(100));
                let incoming = tokio::select! {
                    incoming = client.socket.next() => incoming,
                    _ = tokio::time::sleep(wait) => continue,
                    _ = phase.changed() => continue,
                };
                match incoming {
                    Some(Ok(WsMessage::Text(text))) => {
                        last_heard = Instant::now();
                        match salam_protocol::decode_server(text.as_str()) {
                            Ok(frame) => self.on_frame(frame),
                            Err(err) => self.violation(format!("undecodable frame {text}: {err}")),
                        }
                    }
                    Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => continue 'connection,
                    Some(Ok(_)) => last_heard = Instant::now(),
                }
            }
        }
    }
}

/// Waits until every client with conversations has had `n` more acks than in `marks`.
pub async fn progress(parties: &[(Arc<AtomicU64>, usize)], n: u64, what: &str) -> Result<()> {
    let marks: Vec<u64> = parties
        .iter()
        .map(|(acks, _)| acks.load(Ordering::Relaxed))
        .collect();
    eventually(what, Duration::from_secs(120), || {
        let done = parties
            .iter()
            .zip(&marks)
            .all(|((acks, n_conversations), mark)| {
                *n_conversations == 0 || acks.load(Ordering::Relaxed) >= mark + n
            });
        async move { Ok(done.then_some(())) }
    })
    .await
}

/// A new visitor of `site_key` at `addr` says hello; the party that goes on as them
/// (named `name`, the hello acknowledged).
pub async fn visitor_party(addr: SocketAddr, site_key: &str, name: &str) -> Result<Party> {
    use anyhow::Context;
    let mut visitor = visitor_session(addr, ORIGIN, site_key, None).await?;
    let client_id = format!("{name}-0");
    visitor
        .send_json(&json!({"type": "send", "client_id": client_id, "text": "hello"}))
        .await?;
    let (ack, _) = visitor
        .recv_until(|f| matches!(f, ServerFrame::Ack { .. }))
        .await?;
    let ServerFrame::Ack {
        conversation, seq, ..
    } = ack
    else {
        unreachable!("recv_until returned the ack")
    };
    let token = visitor.token.clone().context("visitor token")?;
    let mut party = Party::new(
        name.to_owned(),
        Role::Visitor {
            site_key: site_key.to_owned(),
            token,
        },
        vec![conversation.clone()],
    );
    party.acked.insert(client_id, (conversation, seq));
    visitor.close().await;
    Ok(party)
}

/// Waits until `n` open conversations of the site are assigned; conversation → agent.
pub async fn all_assigned(
    admin: &crate::process::Api,
    site_id: &str,
    n: usize,
) -> Result<HashMap<String, String>> {
    eventually(
        "every conversation assigned",
        Duration::from_secs(60),
        || {
            let admin = admin.clone();
            let site_id = site_id.to_owned();
            async move {
                let open = admin.open_conversations(&site_id).await?;
                let assigned: HashMap<String, String> = open
                    .iter()
                    .filter(|c| c["state"] == "assigned")
                    .filter_map(|c| {
                        Some((
                            c["id"].as_str()?.to_owned(),
                            c["agent"]["id"].as_str()?.to_owned(),
                        ))
                    })
                    .collect();
                Ok((assigned.len() == n).then_some(assigned))
            }
        },
    )
    .await
}

/// The party of agent number `index`, sending into the conversations assigned to it.
pub fn agent_party(
    index: usize,
    agent: &crate::process::AgentAccount,
    assigned: &HashMap<String, String>,
) -> Party {
    let mut mine: Vec<String> = assigned
        .iter()
        .filter(|(_, owner)| **owner == agent.id)
        .map(|(conversation, _)| conversation.clone())
        .collect();
    mine.sort();
    Party::new(
        format!("a{index}"),
        Role::Agent {
            id: agent.id.clone(),
            token: agent.token.clone(),
        },
        mine,
    )
}

/// What the parties saw against what is stored.
pub struct Outcome {
    pub finished: Vec<Party>,
    /// Conversation → its stored length.
    pub targets: HashMap<String, u64>,
    pub problems: Vec<String>,
    pub total_acked: usize,
}

/// Stops the load, waits until every send is acknowledged, reads the stored truth of
/// `conversations`, lets every party catch up to it, and checks: each party's own
/// violations, every acknowledged message stored at its sequence, and every sequence
/// of its conversations seen.
pub async fn stop_and_check(
    admin: &crate::process::Api,
    conversations: impl Iterator<Item = &String>,
    phase: &watch::Sender<Phase>,
    quiet: &[Arc<AtomicBool>],
    handles: Vec<tokio::task::JoinHandle<Party>>,
) -> Result<Outcome> {
    use anyhow::Context;
    phase.send_replace(Phase::Stop);
    eventually("every send acknowledged", Duration::from_secs(60), || {
        let all = quiet.iter().all(|q| q.load(Ordering::Relaxed));
        async move { Ok(all.then_some(())) }
    })
    .await?;
    let mut stored: HashMap<String, HashMap<String, u64>> = HashMap::new();
    let mut targets = HashMap::new();
    for conversation in conversations {
        let history = admin.history(conversation).await?;
        stored.insert(
            conversation.clone(),
            crate::process::check_history(conversation, &history)?,
        );
        targets.insert(conversation.clone(), history.len() as u64);
    }
    phase.send_replace(Phase::Drain(Arc::new(targets.clone())));
    let mut finished = Vec::new();
    for handle in handles {
        finished.push(
            tokio::time::timeout(Duration::from_secs(90), handle)
                .await
                .context("a client never caught up")??,
        );
    }
    let mut problems: Vec<String> = Vec::new();
    let mut total_acked = 0;
    for party in &finished {
        problems.extend(party.violations.iter().cloned());
        for (client_id, (conversation, seq)) in &party.acked {
            total_acked += 1;
            match stored.get(conversation).and_then(|s| s.get(client_id)) {
                Some(stored_seq) if stored_seq == seq => {}
                other => problems.push(format!(
                    "{client_id} acknowledged as {conversation} seq {seq}, stored as {other:?}"
                )),
            }
        }
        for conversation in &party.conversations {
            let last = targets[conversation];
            let seen = &party.tracks[conversation].seen;
            let missing: Vec<u64> = (1..=last).filter(|seq| !seen.contains(seq)).collect();
            if !missing.is_empty() || seen.iter().any(|seq| *seq > last) {
                problems.push(format!(
                    "{} saw {conversation} with a gap: missing {missing:?} of 1..={last}",
                    party.name
                ));
            }
        }
    }
    Ok(Outcome {
        finished,
        targets,
        problems,
        total_acked,
    })
}
