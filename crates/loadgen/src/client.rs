//! One client connection to whichever server is under test: the Salam hub, a Socket.IO
//! relay, a Pusher-protocol server (Soketi) or the bare echo server.
//!
//! Key design decision: **the benchmark loops are written once, against [`Conn`] and
//! [`Event`]**, and each protocol only supplies its handshakes, how a visitor sends a
//! message and how an incoming frame maps to an event. So every server gets exactly
//! the same workload, schedule, clock and latency accounting; the adapters differ only
//! where the protocols do:
//!
//! | | Salam | Socket.IO | Pusher (Soketi) |
//! |---|---|---|---|
//! | visitor joins | `hello` → `welcome` | open → `40` → `40{sid}` | `connection_established`, subscribe to `private-chat-N` |
//! | agent joins | login, `hello` → `welcome` | `40{"agent":"aJ"}` | subscribe to its visitors' channels |
//! | visitor sends | `send` | `42ID["chat",{to,id,text}]` | `client-message` on its channel |
//! | the server answers | `ack` (after the commit) | `43ID["ok"]` | nothing |
//! | agent receives | `message` | `42["chat",{from,id,text}]` | `client-message` |
//! | keep-alive | WebSocket ping (answered by tungstenite) | `2` → `3` | client `pusher:ping` every 30 s |
//!
//! A message is identified by the load generator's `lg-<hex>` id in every protocol
//! (Salam's `client_id`; a field of the payload otherwise), and for Socket.IO the same
//! number is the ack id.
//!
//! Writes that answer the server (Engine.IO pongs, Pusher pongs) are queued and
//! written at the start of the next read, so [`Conn::next_event`] stays safe to use in
//! a `select!` that may drop it half-way: a queued answer is forgotten only once it is
//! in the WebSocket's write buffer, and flushed on the next read or send.

use crate::pusher;
use crate::relay::{client_id, parse_client_id};
use crate::socketio::{self, EioPacket, SioPacket};
use crate::wire::{self, Socket};
use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use salam_protocol::{ServerFrame, VisitorFrame, decode_server};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// Which protocol the server under test speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// The Salam hub (protocol v1).
    Salam,
    /// Socket.IO v4 (Engine.IO v4) over a plain WebSocket, e.g.
    /// `bench/peers/socketio-relay.js`.
    Socketio,
    /// The Pusher Channels protocol v7, e.g. Soketi.
    Pusher,
    /// The bare echo server (connections only: no relay).
    Echo,
}

/// The server under test and what its protocol needs to know.
#[derive(Debug, Clone)]
pub enum Server {
    Salam {
        /// Site public key (`pk_...`).
        site: String,
        /// `Origin` header of visitors.
        origin: String,
        /// Agent e-mail and password, when the run has agents.
        email: Option<String>,
        password: Option<String>,
    },
    SocketIo,
    Pusher {
        /// The app's public key and its secret (to sign private-channel auth).
        key: String,
        secret: String,
    },
    Echo,
}

/// Where the server is and how to talk to it.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: String,
    pub server: Server,
}

/// What an agent connection needs that is the same for all agents of a run.
#[derive(Debug, Clone)]
pub enum AgentCredentials {
    /// Salam: the bearer token from `POST /api/login`.
    Token(String),
    None,
}

/// The id of idle visitor `n` (channel names and the like), far from the active ones.
pub const IDLE_BASE: u64 = 1 << 40;

impl Target {
    pub fn protocol(&self) -> Protocol {
        match self.server {
            Server::Salam { .. } => Protocol::Salam,
            Server::SocketIo => Protocol::Socketio,
            Server::Pusher { .. } => Protocol::Pusher,
            Server::Echo => Protocol::Echo,
        }
    }

    /// Whether the server answers each message (Salam's `ack`, Socket.IO's ack);
    /// without acks a closed loop waits for the agent to receive the message instead.
    pub fn has_acks(&self) -> bool {
        matches!(self.server, Server::Salam { .. } | Server::SocketIo)
    }

    /// Signs agents in once per run (Salam); nothing to do for the others.
    pub async fn agent_credentials(&self) -> Result<AgentCredentials> {
        match &self.server {
            Server::Salam {
                email, password, ..
            } => {
                let (Some(email), Some(password)) = (email, password) else {
                    bail!("agents on the Salam hub need --email and --password");
                };
                Ok(AgentCredentials::Token(
                    wire::login(&self.addr, email, password).await?,
                ))
            }
            _ => Ok(AgentCredentials::None),
        }
    }
}

/// The id of the agent that visitor `visitor` talks to, when there are `agents`.
pub fn agent_of(visitor: u64, agents: usize) -> u64 {
    visitor % (agents.max(1) as u64)
}

/// Something read from the server, in protocol-neutral terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The server accepted message `id` (Salam: committed; Socket.IO: the relay's ack).
    /// `id` is `None` when the answer names no message of this load generator.
    Ack { id: Option<u64> },
    /// The server refused a message (`id` when it says which) or reported an error.
    Rejected { id: Option<u64> },
    /// A relayed message arrived (on an agent connection).
    Delivered { id: u64 },
    /// Anything else that is well-formed.
    Other,
    /// A frame the adapter could not make sense of (counted, not fatal).
    Undecodable,
    /// The server closed the connection.
    Closed,
}

/// Per-protocol state of a connection.
#[derive(Debug)]
enum Role {
    Salam,
    /// `to`: the agent a visitor's messages go to.
    SocketIo {
        to: String,
    },
    /// `channel`: the visitor's own channel (empty for agents).
    Pusher {
        channel: String,
    },
    Echo,
}

/// One connection to the server under test.
pub struct Conn {
    socket: Socket,
    role: Role,
    /// An answer to the server waiting to be written (a pong).
    reply: Option<String>,
    /// Something was fed to the socket and may not be flushed yet.
    unflushed: bool,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("role", &self.role).finish()
    }
}

/// Pusher's activity timeout: a client with nothing to say pings this often.
pub const PUSHER_KEEPALIVE: Duration = Duration::from_secs(30);

impl Conn {
    /// Connects visitor number `index` (whose messages go to agent `agent`) and
    /// completes the protocol's handshake.
    pub async fn visitor(target: &Target, index: u64, agent: u64) -> Result<Conn> {
        let handshake = async {
            match &target.server {
                Server::Salam { site, origin, .. } => Ok(Conn::new(
                    wire::visitor_hello(&target.addr, site, origin).await?,
                    Role::Salam,
                )),
                Server::SocketIo => {
                    let socket = socketio_join(&target.addr, None).await?;
                    Ok(Conn::new(
                        socket,
                        Role::SocketIo {
                            to: format!("a{agent}"),
                        },
                    ))
                }
                Server::Pusher { key, secret } => {
                    let channel = pusher::visitor_channel(index);
                    let socket =
                        pusher_join(&target.addr, key, secret, std::slice::from_ref(&channel))
                            .await?;
                    Ok(Conn::new(socket, Role::Pusher { channel }))
                }
                Server::Echo => Ok(Conn::new(
                    wire::connect(&target.addr, "/", &[]).await?,
                    Role::Echo,
                )),
            }
        };
        tokio::time::timeout(wire::HANDSHAKE_TIMEOUT, handshake)
            .await
            .context("visitor handshake timed out")?
    }

    /// Connects agent number `index`, which receives the messages of `visitors`.
    pub async fn agent(
        target: &Target,
        credentials: &AgentCredentials,
        index: u64,
        visitors: &[u64],
    ) -> Result<Conn> {
        match &target.server {
            Server::Salam { .. } => {
                let AgentCredentials::Token(token) = credentials else {
                    bail!("a Salam agent needs a login token");
                };
                Ok(Conn::new(
                    wire::agent_hello(&target.addr, token).await?,
                    Role::Salam,
                ))
            }
            Server::SocketIo => {
                let auth = json!({ "agent": format!("a{index}") });
                let connect = socketio_join(&target.addr, Some(&auth));
                let socket = tokio::time::timeout(wire::HANDSHAKE_TIMEOUT, connect)
                    .await
                    .context("agent handshake timed out")??;
                Ok(Conn::new(socket, Role::SocketIo { to: String::new() }))
            }
            Server::Pusher { key, secret } => {
                let channels: Vec<String> = visitors
                    .iter()
                    .map(|visitor| pusher::visitor_channel(*visitor))
                    .collect();
                // Subscriptions are pipelined; allow for many of them.
                let timeout =
                    wire::HANDSHAKE_TIMEOUT + Duration::from_millis(channels.len() as u64);
                let connect = pusher_join(&target.addr, key, secret, &channels);
                let socket = tokio::time::timeout(timeout, connect)
                    .await
                    .context("agent handshake timed out")??;
                Ok(Conn::new(
                    socket,
                    Role::Pusher {
                        channel: String::new(),
                    },
                ))
            }
            Server::Echo => bail!("the echo server has no agents"),
        }
    }

    fn new(socket: Socket, role: Role) -> Conn {
        Conn {
            socket,
            role,
            reply: None,
            unflushed: false,
        }
    }

    /// Sends message `id` with `text` from a visitor.
    pub async fn send_message(&mut self, id: u64, text: &str) -> Result<()> {
        let frame = match &self.role {
            Role::Salam => serde_json::to_string(&VisitorFrame::Send {
                client_id: client_id(id),
                text: text.to_owned(),
                conversation: None,
            })
            .context("encoding a send frame")?,
            Role::SocketIo { to } => {
                if id > socketio::MAX_ACK_ID {
                    bail!("message id {id} is too large for a Socket.IO ack id");
                }
                socketio::event(
                    "chat",
                    &[json!({ "to": to, "id": client_id(id), "text": text })],
                    Some(id),
                )
            }
            Role::Pusher { channel } => pusher::client_event(
                channel,
                pusher::MESSAGE_EVENT,
                &json!({ "id": client_id(id), "text": text }),
            ),
            Role::Echo => text.to_owned(),
        };
        self.send_raw(frame).await
    }

    /// How often this connection must say something when it has nothing to say.
    pub fn keepalive_interval(&self) -> Option<Duration> {
        match self.role {
            Role::Pusher { .. } => Some(PUSHER_KEEPALIVE),
            _ => None,
        }
    }

    /// Sends the protocol's client-side keep-alive, if it has one.
    pub async fn keepalive(&mut self) -> Result<()> {
        match self.role {
            Role::Pusher { .. } => self.send_raw(pusher::ping()).await,
            _ => Ok(()),
        }
    }

    async fn send_raw(&mut self, text: String) -> Result<()> {
        self.socket
            .send(Message::text(text))
            .await
            .context("writing to the server")?;
        self.unflushed = false;
        Ok(())
    }

    /// Writes a queued answer and flushes; safe to cancel at any await.
    async fn write_pending(&mut self) -> Result<()> {
        if let Some(reply) = &self.reply {
            self.socket
                .feed(Message::text(reply.clone()))
                .await
                .context("writing to the server")?;
            // Fed: it is in the write buffer now.
            self.reply = None;
            self.unflushed = true;
        }
        if self.unflushed {
            self.socket.flush().await.context("writing to the server")?;
            self.unflushed = false;
        }
        Ok(())
    }

    /// Reads until something the benchmark cares about arrives; answers the server's
    /// heartbeats on the way.
    pub async fn next_event(&mut self) -> Result<Event> {
        loop {
            self.write_pending().await?;
            let text = match self.socket.next().await {
                None | Some(Ok(Message::Close(_))) => return Ok(Event::Closed),
                Some(Err(err)) => return Err(anyhow!(err).context("reading from the server")),
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Binary(_))) => return Ok(Event::Undecodable),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            };
            let (event, reply) = match self.role {
                Role::Salam => (salam_event(text.as_str()), None),
                Role::SocketIo { .. } => socketio_event(text.as_str()),
                Role::Pusher { .. } => pusher_event(text.as_str()),
                Role::Echo => (Some(Event::Other), None),
            };
            if reply.is_some() {
                self.reply = reply;
            }
            if let Some(event) = event {
                return Ok(event);
            }
        }
    }
}

/// What a Salam frame means to the benchmark.
pub fn salam_event(text: &str) -> Option<Event> {
    Some(match decode_server(text) {
        Ok(ServerFrame::Ack { client_id, .. }) => Event::Ack {
            id: parse_client_id(&client_id),
        },
        Ok(ServerFrame::Error { client_id, .. }) => Event::Rejected {
            id: client_id.as_deref().and_then(parse_client_id),
        },
        Ok(ServerFrame::Message(message)) => {
            match message.client_id.as_deref().and_then(parse_client_id) {
                Some(id) => Event::Delivered { id },
                None => Event::Other,
            }
        }
        Ok(_) => Event::Other,
        Err(_) => Event::Undecodable,
    })
}

/// What an Engine.IO packet means to the benchmark, and the answer it needs. `None`
/// for heartbeats, which are answered and not reported.
pub fn socketio_event(text: &str) -> (Option<Event>, Option<String>) {
    let packet = match socketio::decode_eio(text) {
        Ok(packet) => packet,
        Err(_) => return (Some(Event::Undecodable), None),
    };
    match packet {
        EioPacket::Ping(payload) => (None, Some(socketio::pong(payload))),
        EioPacket::Close => (Some(Event::Closed), None),
        EioPacket::Message(payload) => {
            let event = match socketio::decode_sio(payload) {
                Ok(sio) => match sio.packet {
                    SioPacket::Ack { id, args } => {
                        if args.first().and_then(Value::as_str) == Some("ok") {
                            Event::Ack { id: Some(id) }
                        } else {
                            Event::Rejected { id: Some(id) }
                        }
                    }
                    SioPacket::Event { ref args, .. }
                        if sio.packet.event_name() == Some("chat") =>
                    {
                        match args
                            .get(1)
                            .and_then(|payload| payload.get("id"))
                            .and_then(Value::as_str)
                            .and_then(parse_client_id)
                        {
                            Some(id) => Event::Delivered { id },
                            None => Event::Undecodable,
                        }
                    }
                    SioPacket::Disconnect => Event::Closed,
                    SioPacket::ConnectError(_) => Event::Rejected { id: None },
                    SioPacket::Connect(_) | SioPacket::Event { .. } => Event::Other,
                },
                Err(_) => Event::Undecodable,
            };
            (Some(event), None)
        }
        EioPacket::Open(_) | EioPacket::Pong(_) | EioPacket::Upgrade | EioPacket::Noop => {
            (Some(Event::Other), None)
        }
    }
}

/// What a Pusher frame means to the benchmark, and the answer it needs.
pub fn pusher_event(text: &str) -> (Option<Event>, Option<String>) {
    let frame = match pusher::decode(text) {
        Ok(frame) => frame,
        Err(_) => return (Some(Event::Undecodable), None),
    };
    match frame.event.as_str() {
        pusher::MESSAGE_EVENT => {
            let id = frame
                .data_value()
                .get("id")
                .and_then(Value::as_str)
                .and_then(parse_client_id);
            match id {
                Some(id) => (Some(Event::Delivered { id }), None),
                None => (Some(Event::Undecodable), None),
            }
        }
        "pusher:ping" => (None, Some(pusher::pong())),
        "pusher:error" => (Some(Event::Rejected { id: None }), None),
        _ => (Some(Event::Other), None),
    }
}

/// Reads the next text frame during a handshake (`None`: the server closed).
async fn read_text(socket: &mut Socket) -> Result<Option<String>> {
    loop {
        match socket.next().await {
            None | Some(Ok(Message::Close(_))) => return Ok(None),
            Some(Err(err)) => return Err(anyhow!(err).context("reading from the server")),
            Some(Ok(Message::Text(text))) => return Ok(Some(text.as_str().to_owned())),
            Some(Ok(Message::Binary(_))) => bail!("a binary frame during the handshake"),
            Some(Ok(_)) => continue,
        }
    }
}

/// Opens an Engine.IO session and connects to the default namespace (with `auth`).
async fn socketio_join(addr: &str, auth: Option<&Value>) -> Result<Socket> {
    let mut socket = wire::connect(addr, socketio::CONNECT_PATH, &[]).await?;
    let open = read_text(&mut socket)
        .await?
        .context("the server closed the connection before the Engine.IO handshake")?;
    match socketio::decode_eio(&open)? {
        EioPacket::Open(payload) => {
            socketio::parse_handshake(payload)?;
        }
        other => bail!("expected the Engine.IO open packet, got {other:?}"),
    }
    wire::send_text(&mut socket, socketio::connect(auth).into()).await?;
    loop {
        let text = read_text(&mut socket)
            .await?
            .context("the server closed the connection before the Socket.IO connect")?;
        match socketio::decode_eio(&text)? {
            EioPacket::Ping(payload) => {
                wire::send_text(&mut socket, socketio::pong(payload).into()).await?;
            }
            EioPacket::Message(payload) => match socketio::decode_sio(payload)?.packet {
                SioPacket::Connect(_) => return Ok(socket),
                SioPacket::ConnectError(error) => {
                    bail!("Socket.IO refused the connection: {error}")
                }
                _ => continue,
            },
            EioPacket::Close => bail!("the server closed the Engine.IO session"),
            _ => continue,
        }
    }
}

/// Opens a Pusher connection to app `key` and subscribes to the private `channels`.
async fn pusher_join(addr: &str, key: &str, secret: &str, channels: &[String]) -> Result<Socket> {
    let mut socket = wire::connect(addr, &pusher::connect_path(key), &[]).await?;
    let socket_id = loop {
        let text = read_text(&mut socket)
            .await?
            .context("the server closed the connection before connection_established")?;
        let frame = pusher::decode(&text)?;
        if frame.event == "pusher:ping" {
            wire::send_text(&mut socket, pusher::pong().into()).await?;
            continue;
        }
        break pusher::socket_id(&frame)?;
    };
    for channel in channels {
        let auth = pusher::auth_signature(key, secret, &socket_id, channel);
        socket
            .feed(Message::text(pusher::subscribe(channel, &auth)))
            .await
            .context("writing to the server")?;
    }
    socket.flush().await.context("writing to the server")?;
    let mut waiting: HashSet<&str> = channels.iter().map(String::as_str).collect();
    while !waiting.is_empty() {
        let text = read_text(&mut socket)
            .await?
            .context("the server closed the connection before the subscriptions")?;
        let frame = pusher::decode(&text)?;
        match pusher::subscription_result(&frame) {
            Some(pusher::Subscription::Succeeded(channel)) => {
                waiting.remove(channel.as_str());
            }
            Some(pusher::Subscription::Failed { channel, error }) => {
                bail!("subscribing to {channel} failed: {error}")
            }
            None if frame.event == "pusher:error" => {
                bail!("the server refused: {}", frame.data_value())
            }
            None if frame.event == "pusher:ping" => {
                wire::send_text(&mut socket, pusher::pong().into()).await?;
            }
            None => {}
        }
    }
    Ok(socket)
}
