//! A small, strict SMTP server (RFC 5321 subset) for the replies the MTA relays.
//!
//! Commands: `EHLO`/`HELO`, `MAIL FROM`, `RCPT TO`, `DATA` (with dot-unstuffing),
//! `RSET`, `NOOP`, `VRFY` (252), `QUIT`. No relaying, no authentication, no TLS: it
//! listens on loopback or a private network behind the MTA. Everything is bounded: a
//! line (1000 bytes), a message (`smtp_inbound.max_message_bytes`, 552), recipients
//! (`max_recipients`, 452), connections (`max_connections`, 421), errors per
//! connection (10, then 421), and the time a client may stay silent (`timeout_secs`,
//! 421). Recipients are checked as they come (550 for an unknown one).

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

/// The longest line (RFC 5321: 1000 octets with CRLF).
pub const MAX_LINE: usize = 1000;
const MAX_ERRORS: u32 = 10;

/// An SMTP reply: code and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            text: text.into(),
        }
    }

    /// The reply on the wire; a text of several lines (`\n`) is a multi-line reply.
    fn wire(&self) -> String {
        let lines: Vec<&str> = self.text.split('\n').collect();
        let mut out = String::new();
        for (index, line) in lines.iter().enumerate() {
            let separator = if index + 1 == lines.len() { ' ' } else { '-' };
            out.push_str(&format!("{}{separator}{line}\r\n", self.code));
        }
        out
    }
}

/// A received message.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The reverse path (`""` for `MAIL FROM:<>`, a bounce).
    pub from: String,
    pub recipients: Vec<String>,
    pub data: Vec<u8>,
}

/// What the server asks of the hub.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Whether mail to this address is accepted (`Err`: the 5xx reply).
    async fn recipient(&self, address: &str) -> Result<(), Reply>;
    /// Takes a message; the reply goes to the client.
    async fn deliver(&self, envelope: Envelope) -> Reply;
}

/// The server's limits.
#[derive(Debug, Clone)]
pub struct Limits {
    pub domain: String,
    pub max_message_bytes: usize,
    pub max_recipients: usize,
    pub max_connections: usize,
    pub timeout: Duration,
}

/// Accepts connections until `shutdown` flips.
pub async fn serve(
    listener: TcpListener,
    handler: Arc<dyn Handler>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let limits = Arc::new(limits);
    loop {
        let (mut stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "smtp accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            let _ = stream
                .write_all(b"421 4.3.2 too many connections, try again later\r\n")
                .await;
            continue;
        };
        let handler = handler.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            if let Err(err) = session(stream, &*handler, &limits).await {
                tracing::debug!(%peer, error = %err, "smtp session ended");
            }
            drop(permit);
        });
    }
}

/// Why reading a line failed.
#[derive(Debug)]
enum LineError {
    /// Longer than [`MAX_LINE`] (the rest of it was read and dropped).
    TooLong,
    Io(std::io::Error),
}

/// Reads one line (without its CRLF or LF); `None` at the end of the stream.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> Result<Option<()>, LineError> {
    line.clear();
    let mut too_long = false;
    loop {
        let buffer = reader.fill_buf().await.map_err(LineError::Io)?;
        if buffer.is_empty() {
            return if line.is_empty() && !too_long {
                Ok(None)
            } else {
                Err(LineError::Io(std::io::ErrorKind::UnexpectedEof.into()))
            };
        }
        let (chunk, done) = match buffer.iter().position(|&byte| byte == b'\n') {
            Some(at) => (&buffer[..=at], true),
            None => (buffer, false),
        };
        let n = chunk.len();
        if !too_long {
            if line.len() + n > MAX_LINE + 1 {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        reader.consume(n);
        if done {
            if too_long {
                return Err(LineError::TooLong);
            }
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            return Ok(Some(()));
        }
    }
}

/// `<address>` of `MAIL FROM:`/`RCPT TO:` and the parameters after it.
fn path(argument: &str) -> Option<(String, &str)> {
    let argument = argument.trim_start();
    let rest = argument.strip_prefix('<')?;
    let end = rest.find('>')?;
    let address = &rest[..end];
    if address.len() > 254 || address.chars().any(|c| c.is_control() || c == ' ') {
        return None;
    }
    Some((address.to_owned(), rest[end + 1..].trim()))
}

async fn session(stream: TcpStream, handler: &dyn Handler, limits: &Limits) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::with_capacity(4096, read);
    write
        .write_all(format!("220 {} Salam ESMTP ready\r\n", limits.domain).as_bytes())
        .await?;
    let mut greeted = false;
    let mut from: Option<String> = None;
    let mut recipients: Vec<String> = Vec::new();
    let mut errors = 0u32;
    let mut line = Vec::new();
    loop {
        let read = tokio::time::timeout(limits.timeout, read_line(&mut reader, &mut line)).await;
        let reply = match read {
            Err(_) => {
                write.write_all(b"421 4.4.2 timeout, closing\r\n").await?;
                return Ok(());
            }
            Ok(Err(LineError::Io(err))) => return Err(err),
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(LineError::TooLong)) => Reply::new(500, "5.5.2 line too long"),
            Ok(Ok(Some(()))) => {
                let text = String::from_utf8_lossy(&line).into_owned();
                let (verb, argument) = match text.split_once(' ') {
                    Some((verb, argument)) => (verb.to_ascii_uppercase(), argument),
                    None => (text.to_ascii_uppercase(), ""),
                };
                match verb.as_str() {
                    "EHLO" | "HELO" if argument.trim().is_empty() => {
                        Reply::new(501, "5.5.4 a domain is required")
                    }
                    "EHLO" => {
                        greeted = true;
                        from = None;
                        recipients.clear();
                        Reply::new(
                            250,
                            format!(
                                "{}\nSIZE {}\n8BITMIME",
                                limits.domain, limits.max_message_bytes
                            ),
                        )
                    }
                    "HELO" => {
                        greeted = true;
                        from = None;
                        recipients.clear();
                        Reply::new(250, limits.domain.clone())
                    }
                    "MAIL" if !greeted => Reply::new(503, "5.5.1 say EHLO first"),
                    "MAIL" if from.is_some() => Reply::new(503, "5.5.1 nested MAIL command"),
                    "MAIL" => match argument
                        .get(..5)
                        .filter(|prefix| prefix.eq_ignore_ascii_case("FROM:"))
                        .and_then(|_| path(&argument[5..]))
                    {
                        None => Reply::new(501, "5.5.4 syntax: MAIL FROM:<address>"),
                        Some((address, parameters)) => {
                            let size = parameters
                                .split_whitespace()
                                .find_map(|p| {
                                    p.get(..5)
                                        .filter(|k| k.eq_ignore_ascii_case("SIZE="))
                                        .map(|_| p[5..].parse::<usize>().unwrap_or(usize::MAX))
                                })
                                .unwrap_or(0);
                            if size > limits.max_message_bytes {
                                Reply::new(552, "5.3.4 message too big")
                            } else {
                                from = Some(address);
                                Reply::new(250, "2.1.0 ok")
                            }
                        }
                    },
                    "RCPT" if from.is_none() => Reply::new(503, "5.5.1 need MAIL first"),
                    "RCPT" => match argument
                        .get(..3)
                        .filter(|prefix| prefix.eq_ignore_ascii_case("TO:"))
                        .and_then(|_| path(&argument[3..]))
                    {
                        None => Reply::new(501, "5.5.4 syntax: RCPT TO:<address>"),
                        Some(_) if recipients.len() >= limits.max_recipients => {
                            Reply::new(452, "4.5.3 too many recipients")
                        }
                        Some((address, _)) => match handler.recipient(&address).await {
                            Ok(()) => {
                                recipients.push(address);
                                Reply::new(250, "2.1.5 ok")
                            }
                            Err(reply) => reply,
                        },
                    },
                    "DATA" if !argument.trim().is_empty() => {
                        Reply::new(501, "5.5.4 DATA takes no argument")
                    }
                    "DATA" if from.is_none() || recipients.is_empty() => {
                        Reply::new(503, "5.5.1 need MAIL and RCPT first")
                    }
                    "DATA" => {
                        write
                            .write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                            .await?;
                        let reply = match read_data(&mut reader, limits).await? {
                            Ok(data) => {
                                handler
                                    .deliver(Envelope {
                                        from: from.take().unwrap_or_default(),
                                        recipients: std::mem::take(&mut recipients),
                                        data,
                                    })
                                    .await
                            }
                            Err(reply) => reply,
                        };
                        from = None;
                        recipients.clear();
                        reply
                    }
                    "RSET" => {
                        from = None;
                        recipients.clear();
                        Reply::new(250, "2.0.0 ok")
                    }
                    "NOOP" => Reply::new(250, "2.0.0 ok"),
                    "VRFY" => Reply::new(252, "2.1.5 cannot verify, send it"),
                    "QUIT" => {
                        write.write_all(b"221 2.0.0 bye\r\n").await?;
                        return Ok(());
                    }
                    _ => Reply::new(500, "5.5.1 command not recognised"),
                }
            }
        };
        if reply.code >= 400 {
            errors += 1;
            if errors > MAX_ERRORS {
                write.write_all(b"421 4.7.0 too many errors\r\n").await?;
                return Ok(());
            }
        }
        write.write_all(reply.wire().as_bytes()).await?;
    }
}

/// Reads a message up to its lone `.` line, dot-unstuffed. A message over the size
/// limit or with an overlong line is read to its end and refused.
async fn read_data<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    limits: &Limits,
) -> std::io::Result<Result<Vec<u8>, Reply>> {
    let mut data = Vec::new();
    let mut refused: Option<Reply> = None;
    let mut line = Vec::new();
    loop {
        let read = tokio::time::timeout(limits.timeout, read_line(reader, &mut line))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?;
        match read {
            Ok(None) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Err(LineError::Io(err)) => return Err(err),
            Err(LineError::TooLong) => {
                refused.get_or_insert(Reply::new(500, "5.5.6 a line is over 1000 bytes"));
            }
            Ok(Some(())) => {
                if line == b"." {
                    return Ok(match refused {
                        Some(reply) => Err(reply),
                        None => Ok(data),
                    });
                }
                if refused.is_some() {
                    continue;
                }
                let content = line.strip_prefix(b".").unwrap_or(&line);
                if data.len() + content.len() + 2 > limits.max_message_bytes {
                    refused = Some(Reply::new(552, "5.3.4 message too big"));
                    data = Vec::new();
                    continue;
                }
                data.extend_from_slice(content);
                data.extend_from_slice(b"\r\n");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_bounded() {
        let long = format!("{}\r\nnext\r\n", "x".repeat(MAX_LINE + 10));
        let mut reader = BufReader::with_capacity(64, long.as_bytes());
        let mut line = Vec::new();
        assert!(matches!(
            read_line(&mut reader, &mut line).await,
            Err(LineError::TooLong)
        ));
        assert!(matches!(
            read_line(&mut reader, &mut line).await,
            Ok(Some(()))
        ));
        assert_eq!(line, b"next");
        assert!(matches!(read_line(&mut reader, &mut line).await, Ok(None)));
    }

    #[test]
    fn paths() {
        assert_eq!(
            path("<a@b.test> SIZE=10"),
            Some(("a@b.test".into(), "SIZE=10"))
        );
        assert_eq!(path("<>"), Some((String::new(), "")));
        assert_eq!(path("a@b.test"), None);
        assert_eq!(path("<a b@c>"), None);
    }
}
