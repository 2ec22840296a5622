//! Real mail for the e-mail tests (issue 17): an `aiosmtpd` capture server
//! (tests/smtp/capture.py in the venv `.ci/run` makes at target/venv; without it the
//! tests fail, never skip), a raw SMTP client for the hub's listener, and captured
//! mails parsed as a mail client would (`mail-parser`).

use crate::process::{eventually, free_port};
use anyhow::{Context, Result, ensure};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The reply domain the tests configure.
pub const DOMAIN: &str = "reply.example.test";
/// The sender the tests configure.
pub const FROM: &str = "support@example.test";
/// Long enough for a loaded CI machine; every wait ends as soon as its condition holds.
pub const MAIL_WAIT: Duration = Duration::from_secs(30);

/// The `aiosmtpd` capture server: every message it receives, as a file.
pub struct Capture {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: tokio::process::Child,
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

impl Capture {
    /// Starts it; fails (never skips) when aiosmtpd is not installed.
    pub async fn start() -> Result<Capture> {
        let python = workspace().join("target/venv/bin/python");
        ensure!(
            python.exists(),
            "{} is missing: run .ci/run (it installs aiosmtpd into target/venv)",
            python.display()
        );
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let mut child = tokio::process::Command::new(&python)
            .arg(workspace().join("tests/smtp/capture.py"))
            .arg(port.to_string())
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("start the capture server")?;
        let stdout = child.stdout.take().context("capture stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(MAIL_WAIT, lines.next_line())
            .await
            .context("the capture server did not start")??;
        ensure!(
            ready.as_deref() == Some("ready"),
            "the capture server said {ready:?} (is aiosmtpd installed in target/venv?)"
        );
        Ok(Capture { port, dir, child })
    }

    /// Every captured message so far, in order of arrival.
    pub fn messages(&self) -> Result<Vec<Vec<u8>>> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
            .collect();
        names.sort();
        names.iter().map(|path| Ok(std::fs::read(path)?)).collect()
    }

    /// Waits until at least `n` messages arrived; returns all of them.
    pub async fn wait_for(&self, n: usize) -> Result<Vec<Vec<u8>>> {
        eventually(&format!("{n} captured mails"), MAIL_WAIT, || async {
            let messages = self.messages()?;
            Ok((messages.len() >= n).then_some(messages))
        })
        .await
    }
}

/// A raw SMTP session: every reply line the server sent, command by command.
pub struct Smtp {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Smtp {
    pub async fn connect(addr: SocketAddr) -> Result<Smtp> {
        let stream = TcpStream::connect(addr).await?;
        let (read, writer) = stream.into_split();
        let mut smtp = Smtp {
            reader: BufReader::new(read),
            writer,
        };
        let greeting = smtp.reply().await?;
        ensure!(greeting == 220, "greeting {greeting}");
        Ok(smtp)
    }

    /// The code of the next (possibly multi-line) reply.
    pub async fn reply(&mut self) -> Result<u16> {
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(MAIL_WAIT, self.reader.read_line(&mut line)).await??;
            ensure!(n > 0, "the server closed the connection");
            ensure!(line.len() >= 4, "short reply {line:?}");
            let code: u16 = line[..3].parse().context("reply code")?;
            if line.as_bytes()[3] == b' ' {
                return Ok(code);
            }
        }
    }

    /// Sends a line and returns the reply's code.
    pub async fn command(&mut self, line: &str) -> Result<u16> {
        self.writer.write_all(line.as_bytes()).await?;
        self.writer.write_all(b"\r\n").await?;
        self.reply().await
    }

    /// Sends raw bytes (a message body with its final `.` line) and reads the reply.
    pub async fn raw(&mut self, bytes: &[u8]) -> Result<u16> {
        self.writer.write_all(bytes).await?;
        self.reply().await
    }
}

/// Sends one message (`data` as the mail's text, `\n` line ends) and returns the reply
/// to its end of data (or the first refusal before it).
pub async fn send_mail(addr: SocketAddr, from: &str, to: &[&str], data: &str) -> Result<u16> {
    let mut smtp = Smtp::connect(addr).await?;
    ensure!(smtp.command("EHLO client.test").await? == 250);
    let code = smtp.command(&format!("MAIL FROM:<{from}>")).await?;
    if code != 250 {
        return Ok(code);
    }
    for rcpt in to {
        let code = smtp.command(&format!("RCPT TO:<{rcpt}>")).await?;
        if code != 250 {
            return Ok(code);
        }
    }
    ensure!(smtp.command("DATA").await? == 354);
    let mut body = String::new();
    for line in data.lines() {
        if line.starts_with('.') {
            body.push('.');
        }
        body.push_str(line);
        body.push_str("\r\n");
    }
    body.push_str(".\r\n");
    let code = smtp.raw(body.as_bytes()).await?;
    let _ = smtp.command("QUIT").await;
    Ok(code)
}

/// A captured mail, parsed.
pub struct Mail {
    pub raw: Vec<u8>,
}

impl Mail {
    pub fn parsed(&self) -> Result<mail_parser::Message<'_>> {
        mail_parser::MessageParser::default()
            .parse(&self.raw)
            .context("a captured mail does not parse")
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.parsed()
            .ok()?
            .header_raw(name)
            .map(|value| value.trim().to_owned())
    }

    pub fn message_id(&self) -> Result<String> {
        Ok(self
            .parsed()?
            .message_id()
            .context("no Message-ID")?
            .to_owned())
    }

    pub fn to(&self) -> Result<String> {
        Ok(self
            .parsed()?
            .to()
            .and_then(|to| to.first())
            .and_then(|to| to.address())
            .context("no To")?
            .to_owned())
    }

    pub fn reply_to(&self) -> Result<String> {
        Ok(self
            .parsed()?
            .reply_to()
            .and_then(|to| to.first())
            .and_then(|to| to.address())
            .context("no Reply-To")?
            .to_owned())
    }

    pub fn text(&self) -> Result<String> {
        Ok(self
            .parsed()?
            .body_text(0)
            .context("no text part")?
            .into_owned())
    }

    pub fn html(&self) -> Result<String> {
        Ok(self
            .parsed()?
            .body_html(0)
            .context("no HTML part")?
            .into_owned())
    }

    /// In-Reply-To and References, without brackets.
    pub fn in_reply_to(&self) -> Option<String> {
        self.header("In-Reply-To")
            .map(|value| value.trim_matches(['<', '>', ' ']).to_owned())
    }

    pub fn references(&self) -> Vec<String> {
        self.header("References")
            .unwrap_or_default()
            .split_whitespace()
            .map(|id| id.trim_matches(['<', '>']).to_owned())
            .collect()
    }

    /// Checks what every mail of the hub has: multipart/alternative with a text and an
    /// HTML part, a Message-ID, the configured sender.
    pub fn check_shape(&self) -> Result<()> {
        let content_type = self.header("Content-Type").context("no Content-Type")?;
        ensure!(
            content_type.starts_with("multipart/alternative"),
            "{content_type}"
        );
        self.message_id()?;
        self.text()?;
        self.html()?;
        let from = self.header("From").context("no From")?;
        ensure!(from.contains(FROM), "{from}");
        Ok(())
    }
}

pub fn mails(raw: Vec<Vec<u8>>) -> Vec<Mail> {
    raw.into_iter().map(|raw| Mail { raw }).collect()
}
