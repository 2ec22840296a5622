//! Talking to the hub: WebSocket connections, agent login and the handshakes.
//!
//! Clients use the same 4 KiB read and write buffers as the hub, so ten thousand idle
//! connections cost the load generator tens, not thousands, of megabytes.
//!
//! Connections to a loopback server come from eight loopback source addresses in turn
//! (127.0.0.1 to 127.0.0.8). With one source address, Linux's `connect` slows down
//! several times once about half of the ephemeral port range is in use (it tries the
//! even ports first, and 14,000 of the 28,000 ports are even), which a 19,000-connection
//! step reaches: the load generator, not the server, then sets the connection rate.

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use salam_protocol::{AgentFrame, PROTOCOL_VERSION, ServerFrame, VisitorFrame, decode_server};
use serde::Serialize;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

/// A client WebSocket over plain TCP.
pub type Socket = WebSocketStream<TcpStream>;

/// How long a handshake (TCP, upgrade, `hello` → `welcome`) or a login may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// The largest HTTP response that is read (the rest is dropped).
const MAX_HTTP_RESPONSE: u64 = 1 << 20;

/// The WebSocket configuration of both the echo server and the clients: the hub's
/// default 4 KiB read and write buffers.
pub fn small_buffers() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(4096)
}

/// How many loopback source addresses client connections are spread over.
const LOOPBACK_SOURCES: u8 = 8;

/// The next loopback source address to use.
static NEXT_SOURCE: AtomicU8 = AtomicU8::new(0);

/// Opens a TCP connection to `addr`; from the next of [`LOOPBACK_SOURCES`] source
/// addresses when `addr` is an IPv4 loopback address.
pub async fn tcp_connect(addr: &str) -> Result<TcpStream> {
    let server = match addr.parse::<SocketAddr>() {
        Ok(SocketAddr::V4(server)) if server.ip().is_loopback() => server,
        _ => {
            return TcpStream::connect(addr)
                .await
                .with_context(|| format!("connecting to {addr}"));
        }
    };
    let n = NEXT_SOURCE.fetch_add(1, Ordering::Relaxed) % LOOPBACK_SOURCES;
    let source = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 1 + n), 0));
    let socket = TcpSocket::new_v4().context("creating a socket")?;
    socket
        .bind(source)
        .with_context(|| format!("binding to {source}"))?;
    socket
        .connect(SocketAddr::V4(server))
        .await
        .with_context(|| format!("connecting to {addr} from {}", source.ip()))
}

/// Opens `ws://ADDR/PATH` with extra request headers.
pub async fn connect(addr: &str, path: &str, headers: &[(&'static str, String)]) -> Result<Socket> {
    let stream = tcp_connect(addr).await?;
    stream.set_nodelay(true).context("setting TCP_NODELAY")?;
    let mut request = format!("ws://{addr}{path}")
        .into_client_request()
        .context("building the upgrade request")?;
    for (name, value) in headers {
        let value = HeaderValue::from_str(value)
            .with_context(|| format!("header {name} has an invalid value"))?;
        request.headers_mut().insert(*name, value);
    }
    let (socket, _response) = client_async_with_config(request, stream, Some(small_buffers()))
        .await
        .with_context(|| format!("upgrading ws://{addr}{path}"))?;
    Ok(socket)
}

/// One thing read from the server. (A frame is matched and dropped at once, never kept
/// in bulk, so its size does not earn a box.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Incoming {
    Frame(ServerFrame),
    /// A text frame that is not a protocol v1 server frame (counted, not fatal).
    Undecodable(String),
    /// The server closed the connection.
    Closed,
}

/// Reads the next text frame (pings are answered by tungstenite itself).
pub async fn next_frame(socket: &mut Socket) -> Result<Incoming> {
    loop {
        match socket.next().await {
            None | Some(Ok(Message::Close(_))) => return Ok(Incoming::Closed),
            Some(Err(err)) => return Err(anyhow!(err).context("reading from the server")),
            Some(Ok(Message::Text(text))) => {
                return Ok(match decode_server(text.as_str()) {
                    Ok(frame) => Incoming::Frame(frame),
                    Err(err) => Incoming::Undecodable(format!("{err:?}")),
                });
            }
            Some(Ok(Message::Binary(_))) => {
                return Ok(Incoming::Undecodable("a binary frame".into()));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
        }
    }
}

/// Sends one frame as JSON text.
pub async fn send_json(socket: &mut Socket, frame: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string(frame).context("encoding a frame")?;
    send_text(socket, text.into()).await
}

/// Sends one text frame.
pub async fn send_text(socket: &mut Socket, text: Utf8Bytes) -> Result<()> {
    socket
        .send(Message::Text(text))
        .await
        .context("writing to the server")
}

/// Reads frames until `welcome`; an `error` frame or a close ends the handshake.
async fn await_welcome(socket: &mut Socket) -> Result<Option<String>> {
    loop {
        match next_frame(socket).await? {
            Incoming::Frame(ServerFrame::Welcome { token, .. }) => return Ok(token),
            Incoming::Frame(ServerFrame::Error { code, message, .. }) => {
                bail!("the hub refused hello: {code:?}: {message}")
            }
            Incoming::Frame(_) | Incoming::Undecodable(_) => continue,
            Incoming::Closed => bail!("the hub closed the connection before welcome"),
        }
    }
}

/// Connects a new visitor of `site` (no token: the hub issues a new visitor) and waits
/// for `welcome`.
pub async fn visitor_hello(addr: &str, site: &str, origin: &str) -> Result<Socket> {
    let handshake = async {
        let mut socket = connect(addr, "/ws/visitor", &[("origin", origin.to_owned())]).await?;
        let hello = VisitorFrame::Hello {
            v: PROTOCOL_VERSION,
            site: site.to_owned(),
            token: None,
            locale: None,
            page: None,
        };
        send_json(&mut socket, &hello).await?;
        await_welcome(&mut socket).await?;
        Ok(socket)
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .context("visitor handshake timed out")?
}

/// Connects an agent with a bearer token from [`login`] and waits for `welcome`.
pub async fn agent_hello(addr: &str, token: &str) -> Result<Socket> {
    let handshake = async {
        let authorization = format!("Bearer {token}");
        let mut socket = connect(addr, "/ws/agent", &[("authorization", authorization)]).await?;
        send_json(
            &mut socket,
            &AgentFrame::Hello {
                v: PROTOCOL_VERSION,
            },
        )
        .await?;
        await_welcome(&mut socket).await?;
        Ok(socket)
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .context("agent handshake timed out")?
}

/// Signs an agent in with `POST /api/login` and returns the bearer token.
pub async fn login(addr: &str, email: &str, password: &str) -> Result<String> {
    let body = serde_json::json!({ "email": email, "password": password }).to_string();
    let response = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        http_exchange(addr, "POST", "/api/login", &[], Some(&body)),
    )
    .await
    .context("login timed out")?
    .context("logging in")?;
    login_token(&response).context("logging in")
}

/// Takes the token out of the raw HTTP response to `POST /api/login`.
pub fn parse_login_response(response: &str) -> Result<String> {
    login_token(&HttpResponse::parse(response)?)
}

fn login_token(response: &HttpResponse) -> Result<String> {
    if response.status != 200 {
        bail!(
            "login failed with HTTP {}: {}",
            response.status,
            response.body.trim()
        );
    }
    let value: serde_json::Value =
        serde_json::from_str(&response.body).context("login response is not JSON")?;
    value
        .get("token")
        .and_then(|token| token.as_str())
        .map(str::to_owned)
        .context("login response has no token")
}

/// What the server answered to one HTTP request.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    /// The header lines, without the status line.
    headers: String,
    pub body: String,
}

impl HttpResponse {
    /// Parses a whole raw response (status line, headers, blank line, body).
    pub fn parse(raw: &str) -> Result<HttpResponse> {
        let (head, body) = raw
            .split_once("\r\n\r\n")
            .context("malformed HTTP response")?;
        let (status_line, headers) = head.split_once("\r\n").unwrap_or((head, ""));
        let status = status_line
            .split_whitespace()
            .nth(1)
            .context("no HTTP status line")?
            .parse()
            .context("the HTTP status is not a number")?;
        Ok(HttpResponse {
            status,
            headers: headers.to_owned(),
            body: body.to_owned(),
        })
    }

    /// The value of the first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then_some(value.trim())
        })
    }
}

/// One HTTP/1.0 request over a fresh connection to `addr`, read to its end (the first
/// [`MAX_HTTP_RESPONSE`] bytes of it); `json_body` is sent as `application/json`.
///
/// Hand-written: a few small requests do not earn an HTTP client dependency, and
/// HTTP/1.0 makes the server end the body by closing the connection, so there is no
/// chunked encoding to undo. No timeout: callers bound it.
pub async fn http_exchange(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    json_body: Option<&str>,
) -> Result<HttpResponse> {
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = json_body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(json_body.unwrap_or_default());
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream
        .take(MAX_HTTP_RESPONSE)
        .read_to_end(&mut response)
        .await?;
    HttpResponse::parse(&String::from_utf8_lossy(&response))
}

/// `GET path` over a fresh connection, with a bearer token if given; returns the status.
pub async fn http_get(addr: &str, path: &str, token: Option<&str>) -> Result<u16> {
    let authorization = token.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = authorization
        .iter()
        .map(|value| ("Authorization", value.as_str()))
        .collect();
    Ok(http_exchange(addr, "GET", path, &headers, None)
        .await?
        .status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(response: &str, expected: Result<&str, &str>) {
        let got = parse_login_response(response).map_err(|err| format!("{err:#}"));
        match (got, expected) {
            (Ok(token), Ok(want)) => assert_eq!(token, want),
            (Err(err), Err(want)) => assert!(err.contains(want), "{err}"),
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn login_responses() {
        check(
            "HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{\"token\":\"abc\",\"agent\":{}}",
            Ok("abc"),
        );
        check(
            "HTTP/1.0 401 Unauthorized\r\n\r\n{\"code\":\"unauthorized\"}",
            Err("HTTP 401"),
        );
        check("HTTP/1.0 200 OK\r\n\r\n{\"nope\":1}", Err("no token"));
        check("HTTP/1.0 200 OK\r\n\r\nnot json", Err("not JSON"));
        check("garbage", Err("malformed"));
        check("HTTP/1.0 abc\r\n\r\n", Err("not a number"));
    }

    #[test]
    fn response_headers() {
        let response = HttpResponse::parse(
            "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
             Retry-After:  7 \r\n\r\n{}",
        )
        .expect("parses");
        assert_eq!(response.status, 429);
        assert_eq!(response.header("retry-after"), Some("7"));
        assert_eq!(response.header("Content-Type"), Some("application/json"));
        assert_eq!(response.header("x-missing"), None);
        assert_eq!(response.body, "{}");
    }

    /// A server that breaks the protocol must not make the load generator panic.
    #[tokio::test]
    async fn bad_server_frames_are_reported_not_fatal() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr").to_string();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let mut socket = tokio_tungstenite::accept_async(stream)
                .await
                .expect("upgrade");
            for message in [
                Message::text("not json"),
                Message::text(r#"{"type":"from_the_future","x":1}"#),
                Message::binary(vec![0xff, 0x00]),
                Message::text(r#"{"type":"pong","nonce":7}"#),
            ] {
                socket.send(message).await.expect("send");
            }
            let _ = socket.close(None).await;
        });
        let mut socket = connect(&addr, "/", &[]).await.expect("connect");
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(match next_frame(&mut socket).await {
                Ok(Incoming::Frame(ServerFrame::Pong { nonce })) => format!("pong {nonce:?}"),
                Ok(Incoming::Frame(frame)) => format!("frame {frame:?}"),
                Ok(Incoming::Undecodable(_)) => "undecodable".to_owned(),
                Ok(Incoming::Closed) => "closed".to_owned(),
                Err(err) => format!("error {err:#}"),
            });
        }
        assert_eq!(
            seen,
            [
                "undecodable",
                "undecodable",
                "undecodable",
                "pong Some(7)",
                "closed"
            ]
        );
        server.await.expect("server task");
    }
}
