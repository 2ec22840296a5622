//! `nats://[user:pass@]host[:port]` → where to connect and with which credentials.

use crate::BusError;

/// The port NATS listens on unless told otherwise.
const DEFAULT_PORT: u16 = 4222;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerAddress {
    pub host: String,
    pub port: u16,
    pub credentials: Option<(String, String)>,
}

pub(crate) fn parse(url: &str) -> Result<ServerAddress, BusError> {
    let bad = |why: &str| BusError::Url(format!("{why} in {:?}", redact(url)));
    let rest = match url.split_once("://") {
        Some(("nats", rest)) => rest,
        Some((scheme, _)) => {
            return Err(bad(&format!(
                "unsupported scheme {scheme:?} (only nats://)"
            )));
        }
        None => url,
    };
    let rest = rest.trim_end_matches('/');
    let (credentials, host_port) = match rest.rsplit_once('@') {
        Some((userinfo, host_port)) => {
            let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let user = percent_decode(user).ok_or_else(|| bad("bad percent-encoding"))?;
            let pass = percent_decode(pass).ok_or_else(|| bad("bad percent-encoding"))?;
            (Some((user, pass)), host_port)
        }
        None => (None, rest),
    };
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| bad("unclosed '['"))?;
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return Err(bad("junk after ']'")),
        };
        (host, port)
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() || host.contains(['/', '?', '#', ' ']) {
        return Err(bad("bad host"));
    }
    let port = match port {
        Some(port) => port.parse().map_err(|_| bad("bad port"))?,
        None => DEFAULT_PORT,
    };
    Ok(ServerAddress {
        host: host.to_string(),
        port,
        credentials,
    })
}

/// The URL with any password replaced, for errors and logs.
pub(crate) fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (&url[..scheme.len() + 3], rest),
        None => ("", url),
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}{user}:***@{host}")
        }
        None => url.to_string(),
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(host: &str, port: u16, credentials: Option<(&str, &str)>) -> ServerAddress {
        ServerAddress {
            host: host.into(),
            port,
            credentials: credentials.map(|(user, pass)| (user.into(), pass.into())),
        }
    }

    #[test]
    fn parses_the_forms_we_document() {
        assert_eq!(
            parse("nats://127.0.0.1:4333").unwrap(),
            address("127.0.0.1", 4333, None)
        );
        assert_eq!(parse("nats://bus").unwrap(), address("bus", 4222, None));
        assert_eq!(parse("bus:1").unwrap(), address("bus", 1, None));
        assert_eq!(parse("nats://[::1]:5").unwrap(), address("::1", 5, None));
        assert_eq!(
            parse("nats://u:p%40ss@h:7").unwrap(),
            address("h", 7, Some(("u", "p@ss")))
        );
    }

    #[test]
    fn refuses_what_we_cannot_do() {
        for url in [
            "tls://h:1",
            "nats://",
            "nats://h:x",
            "nats://h:99999",
            "nats://u:%zz@h",
            "nats://[::1",
        ] {
            assert!(parse(url).is_err(), "{url}");
        }
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("nats://u:secret@h:1"), "nats://u:***@h:1");
        assert!(!redact("nats://u:secret@h:1").contains("secret"));
        assert_eq!(redact("nats://h:1"), "nats://h:1");
        let options = crate::Options {
            url: "nats://u:secret@h:1".to_string(),
            ..crate::Options::default()
        };
        assert!(!format!("{options:?}").contains("secret"));
    }
}
