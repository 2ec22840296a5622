//! The webhook signature: `Salam-Signature: v1=<hex HMAC-SHA256(secret,
//! "{timestamp}.{body}")>`, over the raw bytes sent, with a second `v1=` (comma
//! separated) by the previous secret while a rotation's grace lasts. The key is the
//! secret string as given to the admin (`whsec_…`), as UTF-8 bytes.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// One `v1=` signature of `body` sent at `timestamp` (Unix seconds).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = HmacSha256::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(3 + digest.len() * 2);
    hex.push_str("v1=");
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// The `Salam-Signature` header value: the current secret's signature, then the
/// previous secret's while it is still valid.
pub fn header(secret: &str, previous: Option<&str>, timestamp: i64, body: &[u8]) -> String {
    let mut value = signature(secret, timestamp, body);
    if let Some(previous) = previous {
        value.push(',');
        value.push_str(&signature(previous, timestamp, body));
    }
    value
}

/// A new endpoint secret: `whsec_` and 32 random bytes (URL-safe base64).
pub fn new_secret() -> String {
    format!("whsec_{}", crate::auth::random_token(32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_known_hmac_sha256() {
        // The documented construction: HMAC-SHA256 of "{timestamp}.{body}", hex.
        let mut mac = HmacSha256::new_from_slice(b"Jefe").expect("key");
        mac.update(b"1700000000.{\"a\":1}");
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(
            signature("Jefe", 1_700_000_000, b"{\"a\":1}"),
            format!("v1={expected}")
        );
    }

    #[test]
    fn a_rotation_sends_both_signatures() {
        let value = header("new", Some("old"), 5, b"x");
        let parts: Vec<&str> = value.split(',').collect();
        assert_eq!(
            parts,
            [signature("new", 5, b"x"), signature("old", 5, b"x")]
        );
        assert_ne!(parts[0], parts[1]);
    }
}
