//! The send task of a connection: owns the socket's write half, keeps each
//! conversation's messages in sequence order (filling any gap from the store), pings
//! idle clients and closes the socket on shutdown, kick or request.

use super::close_code;
use crate::fanout::{Outbound, Side};
use crate::state::AppState;
use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use salam_protocol::{ErrorCode, MessageKind, ServerFrame};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// Owns the write half: ordered delivery, heartbeats, shutdown.
pub(super) async fn send_loop(
    state: AppState,
    mut sink: SplitSink<WebSocket, WsMessage>,
    mut receiver: mpsc::Receiver<Box<Outbound>>,
    kick: Arc<Notify>,
    side: Side,
    last_heard: Arc<AtomicI64>,
    mut close_rx: tokio::sync::oneshot::Receiver<(u16, &'static str)>,
) {
    let mut shutdown = state.shutdown.clone();
    let heartbeat = Duration::from_secs(state.config.websocket.heartbeat_secs.max(1) as u64);
    let idle_ms = state.config.websocket.idle_timeout_secs as i64 * 1000;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    let mut order = Order {
        side,
        delivered: HashMap::new(),
        from: HashMap::new(),
        own: HashMap::new(),
        held: HashMap::new(),
        hold_until: None,
    };
    let close = |code: u16, reason: &'static str| {
        WsMessage::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        }))
    };
    loop {
        let item = tokio::select! {
            biased;
            _ = shutdown.changed() => {
                let _ = sink.send(close(close_code::RECONNECT, "hub restarting; reconnect")).await;
                return;
            }
            requested = &mut close_rx => {
                if let Ok((code, reason)) = requested {
                    // Drain what the handler queued before asking to close (the error).
                    while let Ok(item) = receiver.try_recv() {
                        if order.write(&state, &mut sink, *item).await.is_err() {
                            return;
                        }
                    }
                    let _ = sink.send(close(code, reason)).await;
                }
                return;
            }
            _ = kick.notified() => {
                let frame = ServerFrame::error(
                    ErrorCode::Resync,
                    "you fell behind; reconnect and resume from the last sequence you saw",
                );
                let _ = sink.feed(WsMessage::Text(frame.to_json().into())).await;
                let _ = sink.send(close(close_code::RESYNC, "too slow; resync")).await;
                return;
            }
            _ = ticker.tick() => {
                if crate::clock::now_ms() - last_heard.load(Ordering::Relaxed) > idle_ms {
                    let _ = sink.send(close(close_code::IDLE, "idle timeout")).await;
                    return;
                }
                let ping = sink.send(WsMessage::Ping(Default::default()));
                if !matches!(tokio::time::timeout(WRITE_DEADLINE, ping).await, Ok(Ok(()))) {
                    return;
                }
                continue;
            }
            () = hold_expired(order.hold_until) => {
                // No `resume` came: go on from the positions `welcome` listed.
                let written = async {
                    order.release(&state, &mut sink).await?;
                    sink.flush().await
                };
                if !matches!(tokio::time::timeout(WRITE_DEADLINE, written).await, Ok(Ok(()))) {
                    return;
                }
                continue;
            }
            item = receiver.recv() => item,
        };
        let Some(item) = item else { return };
        // Write this and whatever else is already queued, then flush once. A client
        // that stops reading leaves the write pending on a full socket: it is dropped
        // when the mailbox overflows (kick) or the write makes no progress for
        // `WRITE_DEADLINE`, so its socket and queue are not held for as long as it
        // stays silent.
        let written = async {
            order.write(&state, &mut sink, *item).await?;
            while let Ok(item) = receiver.try_recv() {
                order.write(&state, &mut sink, *item).await?;
            }
            sink.flush().await
        };
        tokio::select! {
            result = tokio::time::timeout(WRITE_DEADLINE, written) => {
                if !matches!(result, Ok(Ok(()))) {
                    return;
                }
            }
            _ = kick.notified() => return,
        }
    }
}

/// How long one batch of writes to a client may take before it is dropped.
const WRITE_DEADLINE: Duration = Duration::from_secs(10);
/// How long live messages of the conversations listed in `welcome` wait for `resume`.
const HOLD_FOR_RESUME: Duration = Duration::from_secs(2);

/// Resolves when the hold set by `welcome` ends (never without one).
async fn hold_expired(until: Option<tokio::time::Instant>) {
    match until {
        Some(until) => tokio::time::sleep_until(until).await,
        None => std::future::pending().await,
    }
}

/// Keeps per-conversation order for one connection.
struct Order {
    side: Side,
    /// The highest sequence written to this client, per conversation.
    delivered: HashMap<String, u64>,
    /// The lowest sequence from which the client has every one up to `delivered`: the
    /// first one written live, or 1 once a `resume` or `welcome` covered the start.
    from: HashMap<String, u64>,
    /// Sequences of this client's own messages acknowledged ahead of the ones before
    /// them: they count as delivered once those arrive.
    own: HashMap<String, std::collections::BTreeSet<u64>>,
    /// Conversations listed in `welcome` whose `resume` has not come yet, with the
    /// listed `last_seq`: their live messages are not written (they are committed, so
    /// the resume's replay includes them).
    held: HashMap<String, u64>,
    hold_until: Option<tokio::time::Instant>,
}

type SendResult = Result<(), axum::Error>;

impl Order {
    fn visible(&self, kind: MessageKind) -> bool {
        self.side == Side::Agent || kind != MessageKind::Note
    }

    /// Moves `delivered` past own messages that are next in line.
    fn advance(&mut self, conversation: &str) {
        let Some(own) = self.own.get_mut(conversation) else {
            return;
        };
        if let Some(last) = self.delivered.get_mut(conversation) {
            while own.remove(&(*last + 1)) {
                *last += 1;
            }
        }
        if own.is_empty() {
            self.own.remove(conversation);
        }
    }

    /// Records an acknowledged own message as delivered (or pending its predecessors).
    fn note_own(&mut self, conversation: &str, seq: u64) {
        match self.delivered.get(conversation).copied() {
            None => {
                self.delivered.insert(conversation.to_owned(), seq);
                self.from.entry(conversation.to_owned()).or_insert(seq);
            }
            Some(last) if seq <= last => {}
            Some(last) if seq == last + 1 => {
                self.delivered.insert(conversation.to_owned(), seq);
                self.advance(conversation);
            }
            Some(_) => {
                self.own
                    .entry(conversation.to_owned())
                    .or_default()
                    .insert(seq);
            }
        }
    }

    async fn write(
        &mut self,
        state: &AppState,
        sink: &mut SplitSink<WebSocket, WsMessage>,
        item: Outbound,
    ) -> SendResult {
        match item {
            Outbound::Frame(json) => sink.feed(WsMessage::Text(json)).await,
            Outbound::Ack(ack) => {
                let crate::fanout::OwnAck {
                    conversation,
                    seq,
                    json,
                } = *ack;
                self.note_own(&conversation, seq);
                sink.feed(WsMessage::Text(json)).await
            }
            Outbound::Hold(listed) => {
                self.held.extend(*listed);
                self.hold_until =
                    (!self.held.is_empty()).then(|| tokio::time::Instant::now() + HOLD_FOR_RESUME);
                Ok(())
            }
            Outbound::Message(message, _) if self.held.contains_key(&message.conversation) => {
                Ok(())
            }
            Outbound::Message(message, json) => {
                self.advance(&message.conversation);
                let last = self.delivered.get(&message.conversation).copied();
                match last {
                    Some(last) if message.seq <= last => Ok(()),
                    Some(last) if message.seq > last + 1 => {
                        // A later sequence overtook an earlier one between commit and
                        // delivery: what is missing is committed, so read it.
                        // Boxed (rare): keeps the send task's future small.
                        Box::pin(self.replay(
                            state,
                            sink,
                            &message.conversation,
                            last,
                            Some(message.seq - 1),
                            true,
                        ))
                        .await?;
                        self.write_message(sink, &message, json).await
                    }
                    _ => self.write_message(sink, &message, json).await,
                }
            }
            Outbound::Catchup(conversation) => {
                // Held: the client's resume reads everything. Never delivered: the
                // connection's own hello or resume reads from the store.
                match self.delivered.get(&*conversation).copied() {
                    Some(last) if !self.held.contains_key(&*conversation) => {
                        Box::pin(self.replay(state, sink, &conversation, last, None, true))
                            .await
                            .map(|_| ())
                    }
                    _ => Ok(()),
                }
            }
            Outbound::Resume(resume) => {
                let (conversation, after) = *resume;
                if self.held.remove(&conversation).is_some() && self.held.is_empty() {
                    self.hold_until = None;
                }
                // What this connection already wrote live is not written again: the
                // client lacks only (after, from) and what comes after `delivered`.
                let written = self.delivered.get(&conversation).copied().map(|last| {
                    let from = self.from.get(&conversation).copied().unwrap_or(1);
                    (from, last)
                });
                let last_seq = match written {
                    Some((from, last)) if after < last => {
                        if from > after + 1 {
                            Box::pin(self.replay(
                                state,
                                sink,
                                &conversation,
                                after,
                                Some(from - 1),
                                false,
                            ))
                            .await?;
                            self.delivered.insert(conversation.clone(), last);
                        }
                        Box::pin(self.replay(state, sink, &conversation, last, None, false)).await?
                    }
                    _ => {
                        Box::pin(self.replay(state, sink, &conversation, after, None, false))
                            .await?
                    }
                };
                self.from.insert(conversation.clone(), 1);
                let frame = ServerFrame::Resumed {
                    conversation,
                    last_seq,
                };
                sink.feed(WsMessage::Text(frame.to_json().into())).await
            }
        }
    }

    async fn write_message(
        &mut self,
        sink: &mut SplitSink<WebSocket, WsMessage>,
        message: &salam_protocol::Message,
        json: Utf8Bytes,
    ) -> SendResult {
        self.delivered
            .insert(message.conversation.clone(), message.seq);
        self.from
            .entry(message.conversation.clone())
            .or_insert(message.seq);
        if self.visible(message.kind) {
            sink.feed(WsMessage::Text(json)).await?;
        }
        Ok(())
    }

    /// Ends the hold: each held conversation goes on from the `last_seq` `welcome`
    /// listed, with what was committed since read from the store.
    async fn release(
        &mut self,
        state: &AppState,
        sink: &mut SplitSink<WebSocket, WsMessage>,
    ) -> SendResult {
        self.hold_until = None;
        for (conversation, listed) in std::mem::take(&mut self.held) {
            // Nothing up to `listed` was written here: a later `resume` still gets it.
            self.delivered.insert(conversation.clone(), listed);
            self.from.insert(conversation.clone(), listed + 1);
            Box::pin(self.replay(state, sink, &conversation, listed, None, false)).await?;
        }
        Ok(())
    }

    /// Writes the committed messages after `after` (up to `until`), returning the last
    /// sequence written. Filling a gap (`skip_own`) skips this client's own
    /// acknowledged messages; a `resume` sends everything asked for.
    async fn replay(
        &mut self,
        state: &AppState,
        sink: &mut SplitSink<WebSocket, WsMessage>,
        conversation: &str,
        after: u64,
        until: Option<u64>,
        skip_own: bool,
    ) -> Result<u64, axum::Error> {
        const PAGE: u32 = 500;
        let mut last = after;
        self.from
            .entry(conversation.to_owned())
            .or_insert(after + 1);
        loop {
            let page = match state.store.messages_after(conversation, last, PAGE).await {
                Ok(page) => page,
                Err(err) => {
                    tracing::warn!(%conversation, error = %err, "replay read failed");
                    let frame = ServerFrame::error(
                        ErrorCode::StoreUnavailable,
                        "could not read the history; resume again",
                    );
                    sink.feed(WsMessage::Text(frame.to_json().into())).await?;
                    return Ok(last);
                }
            };
            let n_read = page.len();
            for message in page {
                if until.is_some_and(|until| message.seq > until) {
                    return Ok(last);
                }
                last = message.seq;
                self.delivered.insert(conversation.to_owned(), last);
                let own = self
                    .own
                    .get_mut(conversation)
                    .is_some_and(|own| own.remove(&message.seq));
                if own && skip_own {
                    continue;
                }
                if self.visible(message.kind) {
                    let json = ServerFrame::Message(message).to_json();
                    sink.feed(WsMessage::Text(json.into())).await?;
                }
            }
            if n_read < PAGE as usize {
                self.delivered.insert(conversation.to_owned(), last);
                return Ok(last);
            }
        }
    }
}
