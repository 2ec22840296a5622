//! The handle the hub uses ([`Client`]), its subscriptions, and the state they share with
//! the connection task.

use crate::proto::Delivery;
use crate::subject::{self, Use};
use crate::url::{self, ServerAddress};
use crate::{BusError, Message, Options, Stats, connection};
use bytes::Bytes;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::{mpsc, oneshot};

/// What the writer sends, in queue order.
#[derive(Debug)]
pub(crate) enum Command {
    Publish {
        subject: String,
        reply: Option<String>,
        payload: Bytes,
    },
    /// `SUB` for this subscription, unless the current connection already has it (a
    /// reconnection subscribes every live subscription itself).
    Subscribe {
        sid: u64,
    },
    Unsubscribe {
        sid: u64,
    },
    /// `PING`; the waiter is told when its `PONG` arrives.
    Ping(oneshot::Sender<()>),
}

/// Where the messages of one subscription go.
pub(crate) enum Sink {
    Channel(mpsc::Sender<Message>),
    /// The request inbox: replies go to the waiting [`Client::request`].
    Inbox,
}

pub(crate) struct SubscriptionEntry {
    pub subject: String,
    pub sink: Sink,
    /// The connection (see [`Shared::generation`]) that has been sent this `SUB`.
    pub sent_generation: u64,
}

/// The sid of the request inbox's subscription; user subscriptions count from 2.
const INBOX_SID: u64 = 1;

/// The server's limit until its `INFO` says otherwise (the NATS default).
const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;

/// NATS servers refuse a `max_payload` above 64 MB; we believe no more than that.
const MAX_PAYLOAD_CEILING: usize = 64 * 1024 * 1024;

type ReplyWaiter = oneshot::Sender<Result<Message, BusError>>;

#[derive(Default)]
pub(crate) struct Counters {
    pub published: AtomicU64,
    pub dropped_outbound: AtomicU64,
    pub received: AtomicU64,
    pub dropped_inbound: AtomicU64,
    pub reconnects: AtomicU64,
}

/// State shared by the handles and the connection task. The std mutexes are fine: they
/// guard map operations only and are never held across an `.await`.
pub(crate) struct Shared {
    pub options: Options,
    pub address: ServerAddress,
    pub outbound: mpsc::Sender<Command>,
    pub connected: AtomicBool,
    /// Counts connections made; a subscription records the one it was sent on.
    pub generation: AtomicU64,
    pub max_payload: AtomicUsize,
    pub subscriptions: Mutex<HashMap<u64, SubscriptionEntry>>,
    /// Requests waiting for a reply, by the token that ends their reply subject.
    requests: Mutex<HashMap<String, ReplyWaiter>>,
    /// `_INBOX.<random>.`: a request's reply subject is this and a token.
    inbox_prefix: String,
    next_sid: AtomicU64,
    next_request: AtomicU64,
    pub counters: Counters,
}

/// Lock without panicking: the maps stay consistent even if a holder panicked.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Hand a delivered message to its subscription or waiting request, never waiting.
    pub(crate) fn dispatch(&self, delivery: Delivery) {
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        let Delivery {
            sid,
            subject,
            reply,
            status,
            payload,
        } = delivery;
        let message = Message {
            subject,
            reply,
            payload,
        };
        let subscriptions = lock(&self.subscriptions);
        let Some(entry) = subscriptions.get(&sid) else {
            // Unsubscribed; the server had sent it before our UNSUB arrived.
            return;
        };
        match &entry.sink {
            Sink::Channel(sender) => match sender.try_send(message) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.counters
                        .dropped_inbound
                        .fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            },
            Sink::Inbox => {
                drop(subscriptions);
                let Some(token) = message.subject.strip_prefix(&self.inbox_prefix) else {
                    return;
                };
                let Some(waiter) = lock(&self.requests).remove(token) else {
                    // Late (after its timeout) or a second reply: at most one is kept.
                    return;
                };
                let result = if status == Some(503) {
                    Err(BusError::NoResponders)
                } else {
                    Ok(message)
                };
                let _ = waiter.send(result);
            }
        }
    }

    /// Keep the server's `max_payload`, but never above [`MAX_PAYLOAD_CEILING`]: a hostile
    /// server must not be able to announce a size that makes the reader buffer gigabytes.
    pub(crate) fn set_max_payload(&self, max_payload: usize) {
        self.max_payload
            .store(max_payload.min(MAX_PAYLOAD_CEILING), Ordering::Relaxed);
    }

    fn enqueue(&self, command: Command) -> Result<(), BusError> {
        self.outbound
            .try_send(command)
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => BusError::Full,
                mpsc::error::TrySendError::Closed(_) => BusError::Disconnected,
            })
    }

    fn publish(&self, subject: &str, reply: Option<&str>, payload: Bytes) -> Result<(), BusError> {
        subject::validate(subject, Use::Publish)?;
        if let Some(reply) = reply {
            subject::validate(reply, Use::Publish)?;
        }
        let max = self.max_payload.load(Ordering::Relaxed);
        if payload.len() > max {
            return Err(BusError::TooLarge {
                size: payload.len(),
                max,
            });
        }
        let queued = if self.connected.load(Ordering::Acquire) {
            self.enqueue(Command::Publish {
                subject: subject.to_string(),
                reply: reply.map(str::to_string),
                payload,
            })
        } else {
            Err(BusError::Disconnected)
        };
        let counter = match queued {
            Ok(()) => &self.counters.published,
            Err(_) => &self.counters.dropped_outbound,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        queued
    }

    async fn flush(&self) -> Result<(), BusError> {
        if !self.connected.load(Ordering::Acquire) {
            return Err(BusError::Disconnected);
        }
        let (sender, receiver) = oneshot::channel();
        self.enqueue(Command::Ping(sender))?;
        match tokio::time::timeout(self.options.request_timeout, receiver).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(BusError::Disconnected),
            Err(_) => Err(BusError::Timeout),
        }
    }
}

/// A connection to a NATS server; cheap to clone (all clones share one connection). When
/// the last clone is dropped the connection closes and every [`Subscription`] ends.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    shared: Arc<Shared>,
    task: tokio::task::AbortHandle,
}

impl Drop for ClientInner {
    fn drop(&mut self) {
        self.task.abort();
        self.shared.connected.store(false, Ordering::Release);
        lock(&self.shared.subscriptions).clear();
        lock(&self.shared.requests).clear();
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Client")
            .field("url", &url::redact(&self.inner.shared.options.url))
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl Client {
    /// Connect: TCP, `INFO`, `CONNECT`, then a `PING`/`PONG` round trip, all within
    /// [`Options::request_timeout`]. Fails if that first connection fails (a wrong password
    /// is [`BusError::Protocol`]); afterwards a background task reconnects forever.
    pub async fn connect(options: Options) -> Result<Client, BusError> {
        let address = url::parse(&options.url)?;
        let (outbound, receiver) = mpsc::channel(options.outbound_capacity.max(1));
        let mut subscriptions = HashMap::new();
        subscriptions.insert(
            INBOX_SID,
            SubscriptionEntry {
                subject: String::new(),
                sink: Sink::Inbox,
                sent_generation: 0,
            },
        );
        let inbox_prefix = format!("_INBOX.{}.", random_token());
        if let Some(entry) = subscriptions.get_mut(&INBOX_SID) {
            entry.subject = format!("{inbox_prefix}*");
        }
        let shared = Arc::new(Shared {
            options,
            address,
            outbound,
            connected: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            max_payload: AtomicUsize::new(DEFAULT_MAX_PAYLOAD),
            subscriptions: Mutex::new(subscriptions),
            requests: Mutex::new(HashMap::new()),
            inbox_prefix,
            next_sid: AtomicU64::new(INBOX_SID + 1),
            next_request: AtomicU64::new(1),
            counters: Counters::default(),
        });
        let connection = connection::establish(&shared).await?;
        shared.connected.store(true, Ordering::Release);
        let task = tokio::spawn(connection::run(shared.clone(), receiver, connection));
        Ok(Client {
            inner: Arc::new(ClientInner {
                shared,
                task: task.abort_handle(),
            }),
        })
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// Queue a message for `subject` without waiting. At most once: refused with
    /// [`BusError::Full`] or [`BusError::Disconnected`] (and counted) rather than wait.
    pub fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        self.shared().publish(subject, None, payload)
    }

    /// [`Client::publish`] with a reply subject for the receiver to answer on.
    pub fn publish_with_reply(
        &self,
        subject: &str,
        reply: &str,
        payload: Bytes,
    ) -> Result<(), BusError> {
        self.shared().publish(subject, Some(reply), payload)
    }

    /// Answer a message on its reply subject; [`BusError::InvalidSubject`] if it has none.
    pub fn respond(&self, message: &Message, payload: Bytes) -> Result<(), BusError> {
        let Some(reply) = message.reply.as_deref() else {
            return Err(BusError::InvalidSubject(format!(
                "{:?} has no reply subject",
                message.subject
            )));
        };
        self.publish(reply, payload)
    }

    /// Subscribe to `subject` (`*` matches one token, `>` the rest). Returns once the server
    /// has the subscription (after a `PING`/`PONG` round trip), so a message another client
    /// publishes afterwards is received.
    pub async fn subscribe(&self, subject: &str) -> Result<Subscription, BusError> {
        subject::validate(subject, Use::Subscribe)?;
        let shared = self.shared();
        if !shared.connected.load(Ordering::Acquire) {
            return Err(BusError::Disconnected);
        }
        let sid = shared.next_sid.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = mpsc::channel(shared.options.subscription_capacity.max(1));
        lock(&shared.subscriptions).insert(
            sid,
            SubscriptionEntry {
                subject: subject.to_string(),
                sink: Sink::Channel(sender),
                sent_generation: 0,
            },
        );
        // From here on, dropping `subscription` (also on error) unsubscribes.
        let subscription = Subscription {
            shared: shared.clone(),
            sid,
            subject: subject.to_string(),
            receiver,
        };
        shared.enqueue(Command::Subscribe { sid })?;
        shared.flush().await?;
        Ok(subscription)
    }

    /// Send a request and wait up to [`Options::request_timeout`] for the first reply.
    /// [`BusError::NoResponders`] when nobody is subscribed to `subject`.
    pub async fn request(&self, subject: &str, payload: Bytes) -> Result<Message, BusError> {
        let shared = self.shared();
        let token = shared
            .next_request
            .fetch_add(1, Ordering::Relaxed)
            .to_string();
        let (sender, receiver) = oneshot::channel();
        lock(&shared.requests).insert(token.clone(), sender);
        // Removes the waiter however this ends (reply, error, timeout or cancellation).
        let _pending = PendingRequest {
            shared,
            token: &token,
        };
        let reply = format!("{}{token}", shared.inbox_prefix);
        shared.publish(subject, Some(&reply), payload)?;
        match tokio::time::timeout(shared.options.request_timeout, receiver).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(BusError::Disconnected),
            Err(_) => Err(BusError::Timeout),
        }
    }

    /// Wait until the server has processed everything queued before this call (a
    /// `PING`/`PONG` round trip), up to [`Options::request_timeout`].
    pub async fn flush(&self) -> Result<(), BusError> {
        self.shared().flush().await
    }

    /// Whether the client has a working connection now.
    pub fn is_connected(&self) -> bool {
        self.shared().connected.load(Ordering::Acquire)
    }

    /// The counters since connect.
    pub fn stats(&self) -> Stats {
        let counters = &self.shared().counters;
        Stats {
            published: counters.published.load(Ordering::Relaxed),
            dropped_outbound: counters.dropped_outbound.load(Ordering::Relaxed),
            received: counters.received.load(Ordering::Relaxed),
            dropped_inbound: counters.dropped_inbound.load(Ordering::Relaxed),
            reconnects: counters.reconnects.load(Ordering::Relaxed),
        }
    }

    /// The largest payload the server accepts (its `INFO`'s `max_payload`).
    pub fn server_max_payload(&self) -> usize {
        self.shared().max_payload.load(Ordering::Relaxed)
    }
}

struct PendingRequest<'a> {
    shared: &'a Shared,
    token: &'a str,
}

impl Drop for PendingRequest<'_> {
    fn drop(&mut self) {
        lock(&self.shared.requests).remove(self.token);
    }
}

/// Messages on one subject (pattern). Dropping it unsubscribes (an `UNSUB` is queued, not
/// awaited).
pub struct Subscription {
    shared: Arc<Shared>,
    sid: u64,
    subject: String,
    receiver: mpsc::Receiver<Message>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Subscription")
            .field("subject", &self.subject)
            .field("sid", &self.sid)
            .finish()
    }
}

impl Subscription {
    /// The next message; `None` once the client is gone.
    pub async fn next(&mut self) -> Option<Message> {
        self.receiver.recv().await
    }

    /// The subject (pattern) subscribed to.
    pub fn subject(&self) -> &str {
        &self.subject
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        lock(&self.shared.subscriptions).remove(&self.sid);
        // If the queue is full the UNSUB is lost; the server's messages for this sid are
        // then ignored, and the next reconnection does not subscribe it again.
        let _ = self
            .shared
            .outbound
            .try_send(Command::Unsubscribe { sid: self.sid });
    }
}

/// 32 random hex digits for the inbox, from the standard library's per-process random
/// hash keys (no random-number crate needed for a name that only has to be unique).
fn random_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    (0..2u8)
        .map(|round| {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u128(nanos);
            hasher.write_u32(std::process::id());
            hasher.write_u8(round);
            format!("{:016x}", hasher.finish())
        })
        .collect()
}

/// Many subscriptions, one receiver: for a hub that subscribes to a subject per topic
/// its connections follow (thousands), without a queue and a task per subject.
impl Client {
    /// Subscribe to `subject`, delivering into `sender` (shared by many subscriptions;
    /// a full `sender` drops and counts, like a full [`Subscription`]). Unlike
    /// [`Client::subscribe`] it does not wait for the server: call [`Client::flush`]
    /// after a batch of these to know the server has them all.
    pub fn subscribe_into(
        &self,
        subject: &str,
        sender: mpsc::Sender<Message>,
    ) -> Result<SubscriptionHandle, BusError> {
        subject::validate(subject, Use::Subscribe)?;
        let shared = self.shared();
        let sid = shared.next_sid.fetch_add(1, Ordering::Relaxed);
        lock(&shared.subscriptions).insert(
            sid,
            SubscriptionEntry {
                subject: subject.to_string(),
                sink: Sink::Channel(sender),
                sent_generation: 0,
            },
        );
        let handle = SubscriptionHandle {
            shared: shared.clone(),
            sid,
        };
        // Disconnected: the reconnection subscribes every live entry, this one too.
        match shared.enqueue(Command::Subscribe { sid }) {
            Ok(()) | Err(BusError::Disconnected) => Ok(handle),
            Err(err) => Err(err),
        }
    }
}

/// A subscription made with [`Client::subscribe_into`]. Dropping it unsubscribes (an
/// `UNSUB` is queued, not awaited).
pub struct SubscriptionHandle {
    shared: Arc<Shared>,
    sid: u64,
}

impl std::fmt::Debug for SubscriptionHandle {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SubscriptionHandle")
            .field("sid", &self.sid)
            .finish()
    }
}

impl Drop for SubscriptionHandle {
    fn drop(&mut self) {
        lock(&self.shared.subscriptions).remove(&self.sid);
        let _ = self
            .shared
            .outbound
            .try_send(Command::Unsubscribe { sid: self.sid });
    }
}
