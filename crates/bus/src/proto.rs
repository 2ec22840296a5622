//! The wire: decoding what the server sends into [`ServerOp`], and encoding what the client
//! sends. Pure — no I/O — so the parser is unit-tested on byte strings.
//!
//! The parser works on a [`BytesMut`] that the reader fills: [`parse`] either takes one
//! whole operation off its front, says that more bytes are needed (a frame may arrive split
//! across any number of reads), or fails with a [`ProtocolError`] on anything malformed.
//! Sizes are checked before anything is buffered for them, so a hostile length cannot make
//! the client allocate without bound.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Deserialize;

/// The longest control line (everything up to CRLF) accepted from the server. INFO lines
/// carry the cluster's URLs and can be long; anything longer than this is an attack or a
/// bug.
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// Room for headers on top of the server's `max_payload` when checking an `HMSG` size.
const HEADER_SLACK: usize = 64 * 1024;

/// What the server said, decoded.
#[derive(Debug, PartialEq)]
pub(crate) enum ServerOp {
    Info(ServerInfo),
    Msg(Delivery),
    Ping,
    Pong,
    Ok,
    Err(String),
}

/// A `MSG` or `HMSG`.
#[derive(Debug, PartialEq)]
pub(crate) struct Delivery {
    pub sid: u64,
    pub subject: String,
    pub reply: Option<String>,
    /// The status code of an `HMSG`'s header block (`NATS/1.0 503` → 503), if any.
    pub status: Option<u16>,
    pub payload: Bytes,
}

/// The fields of `INFO` the client uses; the rest are ignored.
#[derive(Debug, Default, PartialEq, Deserialize)]
pub(crate) struct ServerInfo {
    #[serde(default)]
    pub max_payload: Option<usize>,
    #[serde(default)]
    pub headers: bool,
    #[serde(default)]
    pub tls_required: bool,
    #[serde(default)]
    pub server_id: String,
}

/// The server sent something that is not the NATS protocol (or exceeds our limits).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ProtocolError(pub String);

/// The result of one [`parse`] step.
#[derive(Debug, PartialEq)]
pub(crate) enum Parsed {
    /// One operation, removed from the buffer.
    Op(ServerOp),
    /// The buffer holds only part of an operation; at least this many bytes in total are
    /// needed (a hint for `reserve`).
    NeedMore(usize),
}

fn error(text: impl Into<String>) -> ProtocolError {
    ProtocolError(text.into())
}

/// Take one operation off the front of `buffer`. `max_payload` bounds the size of a
/// message the server may announce.
pub(crate) fn parse(buffer: &mut BytesMut, max_payload: usize) -> Result<Parsed, ProtocolError> {
    let Some(newline) = buffer.iter().position(|&byte| byte == b'\n') else {
        if buffer.len() > MAX_LINE {
            return Err(error("control line too long"));
        }
        return Ok(Parsed::NeedMore(buffer.len() + 1));
    };
    if newline > MAX_LINE {
        return Err(error("control line too long"));
    }
    if newline == 0 || buffer[newline - 1] != b'\r' {
        return Err(error("control line not ended by CRLF"));
    }
    let line_len = newline + 1;
    let line = std::str::from_utf8(&buffer[..newline - 1])
        .map_err(|_| error("control line is not UTF-8"))?;
    let (name, rest) = match line.find([' ', '\t']) {
        Some(at) => (&line[..at], line[at..].trim_start_matches([' ', '\t'])),
        None => (line, ""),
    };
    // Operation names are case-insensitive and at most four bytes: upper-case them on the
    // stack (this runs once per message).
    let mut upper = [0u8; 4];
    let name_upper: &[u8] = if name.len() <= upper.len() {
        for (slot, byte) in upper.iter_mut().zip(name.bytes()) {
            *slot = byte.to_ascii_uppercase();
        }
        &upper[..name.len()]
    } else {
        b""
    };
    let op = match name_upper {
        b"MSG" => {
            let header = parse_msg_line(rest, max_payload, false)?;
            return take_msg(buffer, line_len, header);
        }
        b"HMSG" => {
            let header = parse_msg_line(rest, max_payload, true)?;
            return take_msg(buffer, line_len, header);
        }
        b"PING" => ServerOp::Ping,
        b"PONG" => ServerOp::Pong,
        b"+OK" => ServerOp::Ok,
        b"-ERR" => ServerOp::Err(rest.trim().trim_matches('\'').to_string()),
        b"INFO" => {
            let info: ServerInfo =
                serde_json::from_str(rest).map_err(|cause| error(format!("bad INFO: {cause}")))?;
            ServerOp::Info(info)
        }
        _ => {
            let shown: String = name.chars().take(32).collect();
            return Err(error(format!("unknown operation {shown:?}")));
        }
    };
    buffer.advance(line_len);
    Ok(Parsed::Op(op))
}

fn parse_size(text: &str) -> Result<usize, ProtocolError> {
    if text.is_empty() || text.len() > 12 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(error(format!(
            "bad size {:?}",
            text.chars().take(32).collect::<String>()
        )));
    }
    text.parse().map_err(|_| error("bad size"))
}

/// The control line of a `MSG` or `HMSG`, checked.
struct MsgLine {
    sid: u64,
    subject: String,
    reply: Option<String>,
    /// `Some(header bytes)` for an `HMSG`.
    header_len: Option<usize>,
    total: usize,
}

/// `MSG <subject> <sid> [reply-to] <#bytes>` or
/// `HMSG <subject> <sid> [reply-to] <#header bytes> <#total bytes>`.
fn parse_msg_line(
    arguments: &str,
    max_payload: usize,
    with_headers: bool,
) -> Result<MsgLine, ProtocolError> {
    let mut slots = [""; 5];
    let mut n_fields = 0;
    for field in arguments.split_ascii_whitespace() {
        let Some(slot) = slots.get_mut(n_fields) else {
            return Err(error("too many MSG arguments"));
        };
        *slot = field;
        n_fields += 1;
    }
    let fields = &slots[..n_fields];
    let n_sizes = if with_headers { 2 } else { 1 };
    if fields.len() != 2 + n_sizes && fields.len() != 3 + n_sizes {
        return Err(error("wrong number of MSG arguments"));
    }
    let subject = fields[0].to_string();
    let sid: u64 = fields[1].parse().map_err(|_| error("bad sid"))?;
    let reply = (fields.len() == 3 + n_sizes).then(|| fields[2].to_string());
    let total = parse_size(fields[fields.len() - 1])?;
    let header_len = if with_headers {
        Some(parse_size(fields[fields.len() - 2])?)
    } else {
        None
    };
    if header_len.is_some_and(|header_len| header_len > total) {
        return Err(error("header size larger than message size"));
    }
    let limit = max_payload.saturating_add(if with_headers { HEADER_SLACK } else { 0 });
    if total > limit {
        return Err(error(format!(
            "message of {total} bytes exceeds the limit of {limit}"
        )));
    }
    Ok(MsgLine {
        sid,
        subject,
        reply,
        header_len,
        total,
    })
}

/// The payload (and CRLF) after a message's control line of `line_len` bytes.
fn take_msg(
    buffer: &mut BytesMut,
    line_len: usize,
    line: MsgLine,
) -> Result<Parsed, ProtocolError> {
    let MsgLine {
        sid,
        subject,
        reply,
        header_len,
        total,
    } = line;
    let frame_len = line_len + total + 2;
    if buffer.len() < frame_len {
        return Ok(Parsed::NeedMore(frame_len));
    }
    if &buffer[line_len + total..frame_len] != b"\r\n" {
        return Err(error("message payload not ended by CRLF"));
    }
    buffer.advance(line_len);
    let mut body = buffer.split_to(total).freeze();
    buffer.advance(2);
    let status = match header_len {
        Some(header_len) => header_status(&body.split_to(header_len))?,
        None => None,
    };
    Ok(Parsed::Op(ServerOp::Msg(Delivery {
        sid,
        subject,
        reply,
        status,
        payload: body,
    })))
}

/// The status code on the first line of a header block: `NATS/1.0 503 No Responders`.
fn header_status(headers: &[u8]) -> Result<Option<u16>, ProtocolError> {
    let first_line_end = headers
        .iter()
        .position(|&byte| byte == b'\r')
        .unwrap_or(headers.len());
    let first_line = std::str::from_utf8(&headers[..first_line_end])
        .map_err(|_| error("header line is not UTF-8"))?;
    let Some(rest) = first_line.strip_prefix("NATS/1.0") else {
        return Err(error("header block does not start with NATS/1.0"));
    };
    match rest.split_ascii_whitespace().next() {
        None => Ok(None),
        Some(code) => code
            .parse()
            .map(Some)
            .map_err(|_| error("bad header status")),
    }
}

/// Append `PUB <subject> [reply] <#bytes>\r\n<payload>\r\n`.
pub(crate) fn encode_pub(out: &mut BytesMut, subject: &str, reply: Option<&str>, payload: &[u8]) {
    out.reserve(subject.len() + reply.map_or(0, str::len) + payload.len() + 32);
    out.put_slice(b"PUB ");
    out.put_slice(subject.as_bytes());
    if let Some(reply) = reply {
        out.put_u8(b' ');
        out.put_slice(reply.as_bytes());
    }
    out.put_u8(b' ');
    out.put_slice(payload.len().to_string().as_bytes());
    out.put_slice(b"\r\n");
    out.put_slice(payload);
    out.put_slice(b"\r\n");
}

/// Append `SUB <subject> <sid>\r\n`.
pub(crate) fn encode_sub(out: &mut BytesMut, subject: &str, sid: u64) {
    out.put_slice(format!("SUB {subject} {sid}\r\n").as_bytes());
}

/// Append `UNSUB <sid>\r\n`.
pub(crate) fn encode_unsub(out: &mut BytesMut, sid: u64) {
    out.put_slice(format!("UNSUB {sid}\r\n").as_bytes());
}

/// The `CONNECT` line. Echo is off: a client never receives its own publishes.
pub(crate) fn encode_connect(out: &mut BytesMut, name: &str, credentials: Option<(&str, &str)>) {
    let mut fields = serde_json::json!({
        "verbose": false,
        "pedantic": false,
        "echo": false,
        "headers": true,
        "no_responders": true,
        "name": name,
        "lang": "rust",
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": 1,
    });
    if let Some((user, pass)) = credentials {
        fields["user"] = user.into();
        fields["pass"] = pass.into();
    }
    out.put_slice(b"CONNECT ");
    out.put_slice(fields.to_string().as_bytes());
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1024 * 1024;

    fn parse_all(input: &[u8]) -> Result<Vec<ServerOp>, ProtocolError> {
        let mut buffer = BytesMut::from(input);
        let mut ops = Vec::new();
        while !buffer.is_empty() {
            match parse(&mut buffer, LIMIT)? {
                Parsed::Op(op) => ops.push(op),
                Parsed::NeedMore(_) => break,
            }
        }
        Ok(ops)
    }

    fn delivery(subject: &str, sid: u64, reply: Option<&str>, payload: &str) -> ServerOp {
        ServerOp::Msg(Delivery {
            sid,
            subject: subject.into(),
            reply: reply.map(Into::into),
            status: None,
            payload: Bytes::copy_from_slice(payload.as_bytes()),
        })
    }

    #[test]
    fn control_operations() {
        let ops =
            parse_all(b"PING\r\npong\r\n+OK\r\n-ERR 'Unknown Protocol Operation'\r\n").unwrap();
        assert_eq!(
            ops,
            vec![
                ServerOp::Ping,
                ServerOp::Pong,
                ServerOp::Ok,
                ServerOp::Err("Unknown Protocol Operation".into())
            ]
        );
    }

    #[test]
    fn info_keeps_max_payload_and_ignores_other_fields() {
        let ops = parse_all(
            b"INFO {\"server_id\":\"X\",\"max_payload\":2048,\"headers\":true,\"connect_urls\":[\"a\"]}\r\n",
        )
        .unwrap();
        assert_eq!(
            ops,
            vec![ServerOp::Info(ServerInfo {
                max_payload: Some(2048),
                headers: true,
                tls_required: false,
                server_id: "X".into()
            })]
        );
    }

    #[test]
    fn msg_with_and_without_reply() {
        let ops = parse_all(b"MSG a.b 7 5\r\nhello\r\nMSG a.c 8 _INBOX.x.1 0\r\n\r\n").unwrap();
        assert_eq!(
            ops,
            vec![
                delivery("a.b", 7, None, "hello"),
                delivery("a.c", 8, Some("_INBOX.x.1"), "")
            ]
        );
    }

    #[test]
    fn payload_may_contain_crlf() {
        let ops = parse_all(b"MSG a 1 6\r\nx\r\ny\r\n\r\n").unwrap();
        assert_eq!(ops, vec![delivery("a", 1, None, "x\r\ny\r\n")]);
    }

    #[test]
    fn frames_split_at_every_byte_are_reassembled() {
        let input: &[u8] =
            b"MSG a.b 7 r 5\r\nhello\r\nPING\r\nHMSG c 2 12 14\r\nNATS/1.0\r\n\r\nhi\r\n";
        for cut in 0..input.len() {
            let mut buffer = BytesMut::new();
            let mut ops = Vec::new();
            for chunk in [&input[..cut], &input[cut..]] {
                buffer.extend_from_slice(chunk);
                while let Parsed::Op(op) = parse(&mut buffer, LIMIT).unwrap() {
                    ops.push(op);
                }
            }
            assert_eq!(ops.len(), 3, "cut at {cut}");
            assert_eq!(ops[0], delivery("a.b", 7, Some("r"), "hello"));
            assert_eq!(ops[1], ServerOp::Ping);
            assert_eq!(ops[2], delivery("c", 2, None, "hi"));
            assert!(buffer.is_empty());
        }
    }

    #[test]
    fn need_more_names_the_whole_frame() {
        let mut buffer = BytesMut::from(&b"MSG a 1 100\r\nabc"[..]);
        assert_eq!(
            parse(&mut buffer, LIMIT).unwrap(),
            Parsed::NeedMore(13 + 100 + 2)
        );
        assert_eq!(buffer.len(), 16, "nothing consumed");
    }

    #[test]
    fn hmsg_status_503_is_no_responders() {
        let ops = parse_all(b"HMSG _INBOX.a.1 3 16 16\r\nNATS/1.0 503\r\n\r\n\r\n").unwrap();
        let ServerOp::Msg(delivery) = &ops[0] else {
            panic!("not a message: {ops:?}")
        };
        assert_eq!(delivery.status, Some(503));
        assert!(delivery.payload.is_empty());
    }

    #[test]
    fn hmsg_headers_are_stripped_from_the_payload() {
        let ops = parse_all(b"HMSG s 1 rep 18 22\r\nNATS/1.0\r\nA: b\r\n\r\nbody\r\n").unwrap();
        let ServerOp::Msg(delivery) = &ops[0] else {
            panic!("not a message: {ops:?}")
        };
        assert_eq!(delivery.status, None);
        assert_eq!(delivery.reply.as_deref(), Some("rep"));
        assert_eq!(&delivery.payload[..], b"body");
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        let cases: &[&[u8]] = &[
            b"GARBAGE\r\n",
            b"MSG a 1 99999999999999999999\r\n",
            b"MSG a 1 2000000\r\n",
            b"MSG a 1 -1\r\n",
            b"MSG a 1\r\n",
            b"MSG a 1 r 2 3\r\n",
            b"MSGX a 1 2\r\n",
            b"MSG a x 1\r\nx\r\n",
            b"MSG a 1 2\r\nabXY",
            b"HMSG a 1 10 5\r\n",
            b"HMSG a 1 4 4\r\nabcd\r\n",
            b"INFO {not json\r\n",
            b"PING\n",
            b"\r\n",
            b"\xff\xfe\r\n",
        ];
        for case in cases {
            assert!(
                parse_all(case).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(case)
            );
        }
        let endless = vec![b'a'; MAX_LINE + 2];
        assert!(parse_all(&endless).is_err());
    }

    /// Mutated frames (bytes flipped, digits changed, cut anywhere) never panic the parser:
    /// each ends as operations, a need for more bytes, or an error.
    #[test]
    fn mutated_frames_never_panic() {
        let valid: &[u8] = b"INFO {\"max_payload\":64}\r\nMSG a.b 7 r 5\r\nhello\r\nPING\r\n\
            HMSG c 2 16 18\r\nNATS/1.0 503\r\n\r\nhi\r\n-ERR 'x'\r\n";
        let alphabet = b" \r\n0123456789.MSGHPINOKaz{}\"'-+\xff";
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut random = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut input = valid.to_vec();
            for _ in 0..1 + random() % 4 {
                let at = (random() as usize) % input.len();
                input[at] = alphabet[(random() as usize) % alphabet.len()];
            }
            input.truncate((random() as usize) % (input.len() + 1));
            let mut buffer = BytesMut::from(&input[..]);
            while let Ok(Parsed::Op(_)) = parse(&mut buffer, 64) {}
        }
    }

    #[test]
    fn encodings() {
        let mut out = BytesMut::new();
        encode_pub(&mut out, "a.b", None, b"hi");
        encode_pub(&mut out, "a.b", Some("r.1"), b"");
        encode_sub(&mut out, "a.*", 4);
        encode_unsub(&mut out, 4);
        assert_eq!(
            &out[..],
            b"PUB a.b 2\r\nhi\r\nPUB a.b r.1 0\r\n\r\nSUB a.* 4\r\nUNSUB 4\r\n"
        );
    }

    #[test]
    fn connect_turns_echo_off_and_escapes_credentials() {
        let mut out = BytesMut::new();
        encode_connect(&mut out, "hub\"1", Some(("u", "p\"w")));
        let line = std::str::from_utf8(&out).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(line.strip_prefix("CONNECT ").unwrap().trim_end()).unwrap();
        assert_eq!(json["echo"], false);
        assert_eq!(json["verbose"], false);
        assert_eq!(json["headers"], true);
        assert_eq!(json["no_responders"], true);
        assert_eq!(json["name"], "hub\"1");
        assert_eq!(json["pass"], "p\"w");
    }
}
