//! Identity v2: the signed token a site's backend gives its logged-in customers, which
//! the widget passes on in `identify`.
//!
//! The token is a JWT (RFC 7519) signed with HS256 and the site's identity secret:
//!
//! ```text
//! base64url({"alg":"HS256","typ":"JWT"}) . base64url(claims) . base64url(HMAC-SHA256)
//! ```
//!
//! with the claims `sub` (the site's user id, 1–200 characters, required), `exp`
//! (seconds since the epoch, required, at most [`MAX_LIFETIME_SECS`] ahead), and
//! optionally `iat`, `name`, `email` and `attributes` (an object of at most
//! [`MAX_ATTRIBUTES`] string, number or boolean values). Every claim is covered by
//! the signature, so everything in it is *verified*; `name` and `email` sent beside
//! the token are kept but marked unverified.
//!
//! A rotated secret still verifies for a grace period (`auth.identity_secret_grace_hours`)
//! so that pages already open keep working. Pure: the caller passes the time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use serde_json::{Map, Value};

/// The furthest ahead `exp` may be: a token is for a session, not for ever.
pub const MAX_LIFETIME_SECS: i64 = 30 * 24 * 3600;
/// Clock difference allowed between the site's backend and the hub.
pub const LEEWAY_SECS: i64 = 60;
/// Custom attributes at most, and their size as JSON.
pub const MAX_ATTRIBUTES: usize = 30;
pub const MAX_ATTRIBUTES_BYTES: usize = 4096;
/// A token longer than this is refused unread.
pub const MAX_TOKEN_BYTES: usize = 8192;

/// Why a token was refused. The visitor is told only that the identity is not
/// signed by the site; the reason is logged for the site's developers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityError {
    /// Not three base64url parts of JSON, or too long.
    Malformed,
    /// The header names another algorithm than HS256 (`none` included).
    Algorithm,
    /// The signature matches neither the secret nor (within the grace period) the
    /// previous one.
    Signature,
    /// `exp` is missing, passed, or too far ahead.
    Expiry,
    /// `sub` is missing or not 1–200 characters; or a claim has the wrong type.
    Claims,
}

impl std::fmt::Display for IdentityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IdentityError::Malformed => "the token is not a JWT",
            IdentityError::Algorithm => "the token is not signed with HS256",
            IdentityError::Signature => "the signature does not match the site's secret",
            IdentityError::Expiry => "the token has no valid exp (required, at most 30 days)",
            IdentityError::Claims => "the claims are not valid (sub is required)",
        })
    }
}

impl std::error::Error for IdentityError {}

/// What a valid token vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub user_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub attributes: Option<Value>,
    /// Seconds since the epoch.
    pub expires_at: i64,
}

/// The secrets a token may be signed with now.
#[derive(Debug, Clone, Copy)]
pub struct Secrets<'a> {
    pub current: &'a str,
    /// The previous secret while it is still within its grace period.
    pub previous: Option<&'a str>,
}

fn mac(secret: &str, signed: &[u8]) -> Vec<u8> {
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(signed);
    mac.finalize().into_bytes().to_vec()
}

fn part(text: &str) -> Result<Vec<u8>, IdentityError> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| IdentityError::Malformed)
}

fn string_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<String>, IdentityError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        Some(_) => Err(IdentityError::Claims),
    }
}

/// Verifies `token` at `now_secs`.
pub fn verify(token: &str, secrets: Secrets<'_>, now_secs: i64) -> Result<Verified, IdentityError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(IdentityError::Malformed);
    }
    let token = token.trim();
    let (signed, signature) = token.rsplit_once('.').ok_or(IdentityError::Malformed)?;
    let (header, payload) = signed.split_once('.').ok_or(IdentityError::Malformed)?;
    if payload.contains('.') {
        return Err(IdentityError::Malformed);
    }
    let header: Value =
        serde_json::from_slice(&part(header)?).map_err(|_| IdentityError::Malformed)?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(IdentityError::Algorithm);
    }
    let signature = part(signature)?;
    let matches = |secret: &str| crate::auth::same(&mac(secret, signed.as_bytes()), &signature);
    if !(matches(secrets.current) || secrets.previous.is_some_and(matches)) {
        return Err(IdentityError::Signature);
    }
    let claims: Value =
        serde_json::from_slice(&part(payload)?).map_err(|_| IdentityError::Malformed)?;
    let Value::Object(claims) = claims else {
        return Err(IdentityError::Claims);
    };
    let expires_at = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(IdentityError::Expiry)?;
    if expires_at < now_secs.saturating_sub(LEEWAY_SECS)
        || expires_at > now_secs.saturating_add(MAX_LIFETIME_SECS)
    {
        return Err(IdentityError::Expiry);
    }
    let user_id = string_claim(&claims, "sub")?
        .filter(|sub| !sub.is_empty() && sub.chars().count() <= 200)
        .ok_or(IdentityError::Claims)?;
    let attributes = match claims.get("attributes") {
        None | Some(Value::Null) => None,
        Some(Value::Object(attributes))
            if attributes.len() <= MAX_ATTRIBUTES
                && attributes.values().all(|value| {
                    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
                })
                && serde_json::to_string(attributes).map_or(0, |json| json.len())
                    <= MAX_ATTRIBUTES_BYTES =>
        {
            Some(Value::Object(attributes.clone()))
        }
        Some(_) => return Err(IdentityError::Claims),
    };
    Ok(Verified {
        user_id,
        name: string_claim(&claims, "name")?,
        email: string_claim(&claims, "email")?,
        attributes,
        expires_at,
    })
}

/// Signs `claims` as a site's backend would (tests, the docs' example, and the
/// console's "try it" token).
pub fn sign(secret: &str, claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{header}.{payload}");
    let signature = URL_SAFE_NO_PAD.encode(mac(secret, signed.as_bytes()));
    format!("{signed}.{signature}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn only(secret: &str) -> Secrets<'_> {
        Secrets {
            current: secret,
            previous: None,
        }
    }

    #[test]
    fn a_signed_token_verifies_every_claim() {
        let token = sign(
            "s3cret",
            &json!({"sub": "42", "name": "Mona", "email": "mona@shop.example",
                    "exp": NOW + 3600, "attributes": {"plan": "pro", "seats": 3}}),
        );
        let verified = verify(&token, only("s3cret"), NOW).unwrap();
        assert_eq!(verified.user_id, "42");
        assert_eq!(verified.name.as_deref(), Some("Mona"));
        assert_eq!(verified.email.as_deref(), Some("mona@shop.example"));
        assert_eq!(
            verified.attributes,
            Some(json!({"plan": "pro", "seats": 3}))
        );
    }

    #[test]
    fn a_changed_claim_breaks_the_signature() {
        let token = sign(
            "s3cret",
            &json!({"sub": "42", "name": "Mona", "exp": NOW + 60}),
        );
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = URL_SAFE_NO_PAD
            .encode(json!({"sub": "42", "name": "Eve", "exp": NOW + 60}).to_string());
        assert_eq!(
            verify(&parts.join("."), only("s3cret"), NOW),
            Err(IdentityError::Signature)
        );
        assert_eq!(
            verify(&token, only("other"), NOW),
            Err(IdentityError::Signature)
        );
    }

    #[test]
    fn expiry_is_required_and_bounded() {
        let expired = sign("k", &json!({"sub": "1", "exp": NOW - 3600}));
        assert_eq!(verify(&expired, only("k"), NOW), Err(IdentityError::Expiry));
        let endless = sign("k", &json!({"sub": "1"}));
        assert_eq!(verify(&endless, only("k"), NOW), Err(IdentityError::Expiry));
        let far = sign(
            "k",
            &json!({"sub": "1", "exp": NOW + MAX_LIFETIME_SECS + 10}),
        );
        assert_eq!(verify(&far, only("k"), NOW), Err(IdentityError::Expiry));
        // A minute of clock difference is forgiven.
        let just = sign("k", &json!({"sub": "1", "exp": NOW - 30}));
        assert!(verify(&just, only("k"), NOW).is_ok());
    }

    #[test]
    fn other_algorithms_are_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let payload = URL_SAFE_NO_PAD.encode(json!({"sub": "1", "exp": NOW + 60}).to_string());
        assert_eq!(
            verify(&format!("{header}.{payload}."), only("k"), NOW),
            Err(IdentityError::Algorithm)
        );
    }

    #[test]
    fn the_previous_secret_verifies_only_when_given() {
        let token = sign("old", &json!({"sub": "1", "exp": NOW + 60}));
        let both = Secrets {
            current: "new",
            previous: Some("old"),
        };
        assert!(verify(&token, both, NOW).is_ok());
        assert_eq!(
            verify(&token, only("new"), NOW),
            Err(IdentityError::Signature)
        );
    }

    #[test]
    fn malformed_tokens_are_refused_without_panicking() {
        for token in ["", ".", "..", "a.b.c", "a.b.c.d", "ééé.ééé.ééé", "eyJ.eyJ."] {
            assert!(verify(token, only("k"), NOW).is_err(), "{token}");
        }
        let bad_sub = sign("k", &json!({"sub": 5, "exp": NOW + 60}));
        assert_eq!(verify(&bad_sub, only("k"), NOW), Err(IdentityError::Claims));
        let nested = sign(
            "k",
            &json!({"sub": "1", "exp": NOW + 60, "attributes": {"a": {"b": 1}}}),
        );
        assert_eq!(verify(&nested, only("k"), NOW), Err(IdentityError::Claims));
        assert_eq!(
            verify(&"a".repeat(MAX_TOKEN_BYTES + 1), only("k"), NOW),
            Err(IdentityError::Malformed)
        );
    }
}
