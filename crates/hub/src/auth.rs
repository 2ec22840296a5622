//! Identity: signed visitor tokens, agent passwords (argon2id) and sessions.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The server secret: signs visitor tokens. Generated on first start, kept in the
/// database, never sent to anyone.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Decodes the stored form (URL-safe base64).
    pub fn from_stored(text: &str) -> Option<Secret> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).ok()?;
        (bytes.len() >= 32).then_some(Secret(bytes))
    }

    /// A new random secret in its stored form.
    pub fn generate_stored() -> String {
        random_token(32)
    }

    fn mac(&self, parts: &[&str]) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac =
            <HmacSha256 as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable_mac());
        for part in parts {
            mac.update(part.as_bytes());
            mac.update(b"\0");
        }
        mac
    }

    /// An HMAC-SHA256 of `parts` under this secret, for other signed values (the
    /// e-mail reply address); `purpose` keeps each kind apart.
    pub fn sign(&self, purpose: &str, value: &str) -> Vec<u8> {
        self.mac(&[purpose, value]).finalize().into_bytes().to_vec()
    }

    /// Signs a visitor id for one site: `VISITOR_ID.SIGNATURE`.
    pub fn visitor_token(&self, site_id: &str, visitor_id: &str) -> String {
        let signature = self.mac(&["visitor", site_id, visitor_id]).finalize();
        format!(
            "{visitor_id}.{}",
            URL_SAFE_NO_PAD.encode(signature.into_bytes())
        )
    }

    /// The visitor id of a token this hub signed for `site_id`, or `None`.
    pub fn verify_visitor_token(&self, site_id: &str, token: &str) -> Option<String> {
        let (visitor_id, signature) = token.split_once('.')?;
        if !valid_id(visitor_id, "v_") {
            return None;
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        // `verify_slice` compares in constant time.
        self.mac(&["visitor", site_id, visitor_id])
            .verify_slice(&signature)
            .ok()
            .map(|()| visitor_id.to_owned())
    }
}

fn unreachable_mac() -> HmacSha256 {
    // Only reached if the hmac crate changed its contract; fail closed with a fixed key
    // that no token was signed with.
    <HmacSha256 as Mac>::new_from_slice(&[0u8; 32]).expect("a 32-byte HMAC key is valid")
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same(left: &[u8], right: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    left.len() == right.len() && bool::from(left.ct_eq(right))
}

/// Whether `id` looks like one of ours (`prefix` + lowercase letters and digits).
pub fn valid_id(id: &str, prefix: &str) -> bool {
    id.len() <= 64
        && id.starts_with(prefix)
        && id.len() > prefix.len()
        && id[prefix.len()..]
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit())
}

/// A new visitor id.
pub fn new_visitor_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 20];
    rand::thread_rng().fill_bytes(&mut bytes);
    let mut id = String::from("v_");
    id.extend(
        bytes
            .iter()
            .map(|byte| ALPHABET[*byte as usize % ALPHABET.len()] as char),
    );
    id
}

/// `n_bytes` of randomness, URL-safe base64.
pub fn random_token(n_bytes: usize) -> String {
    let mut bytes = vec![0u8; n_bytes];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the database keeps of a session token: its SHA-256, so a stolen database does
/// not hand out live sessions.
pub fn session_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// Hashes a password with argon2id and a random salt.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Checks a password against a stored argon2 hash.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A readable generated password (about 120 bits).
pub fn generate_password() -> String {
    random_token(15)
}

/// Passwords shorter than this (not counting spaces at the ends) are refused.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// What is wrong with a new password for the account `email`, if anything: fewer
/// than [`MIN_PASSWORD_CHARS`] characters besides spaces at the ends, or the e-mail
/// address itself (or its part before the `@`).
pub fn password_problem(password: &str, email: &str) -> Option<&'static str> {
    let trimmed = password.trim();
    if trimmed.chars().count() < MIN_PASSWORD_CHARS {
        return Some("the password needs at least 10 characters");
    }
    let email = email.trim();
    let local = email.split('@').next().unwrap_or_default();
    if trimmed.eq_ignore_ascii_case(email)
        || (!local.is_empty() && trimmed.eq_ignore_ascii_case(local))
    {
        return Some("the password cannot be the e-mail address");
    }
    None
}

/// Whether `email` looks like an address an agent can sign in with: one `@`, a
/// local part of 1–64 visible characters, and a domain of dot-separated labels of
/// letters, digits and hyphens (at least two labels); 254 characters at most.
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.chars().count() <= 64
        && !local.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '@' | '<' | '>' | '"' | ',' | ';')
        });
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    email.len() <= 254 && local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visitor_tokens_verify_only_for_their_site_and_secret() {
        let secret = Secret::from_stored(&Secret::generate_stored()).unwrap();
        let other = Secret::from_stored(&Secret::generate_stored()).unwrap();
        let visitor = new_visitor_id();
        let token = secret.visitor_token("s_1", &visitor);
        assert_eq!(
            secret.verify_visitor_token("s_1", &token),
            Some(visitor.clone())
        );
        assert_eq!(secret.verify_visitor_token("s_2", &token), None);
        assert_eq!(other.verify_visitor_token("s_1", &token), None);
        let forged = format!("v_attacker.{}", token.split_once('.').unwrap().1);
        assert_eq!(secret.verify_visitor_token("s_1", &forged), None);
        for junk in ["", ".", "v_x", "v_x.", "v_x.!!!", "a.b.c", "v_ABC.AAAA"] {
            assert_eq!(secret.verify_visitor_token("s_1", junk), None, "{junk}");
        }
    }

    #[test]
    fn passwords_hash_with_argon2id() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn the_password_policy_refuses_short_blank_and_email_passwords() {
        let email = "sara@shop.test";
        assert!(
            password_problem("        ", email).is_some(),
            "eight spaces"
        );
        assert!(
            password_problem("            ", email).is_some(),
            "twelve spaces"
        );
        assert!(password_problem("  short  ", email).is_some());
        assert!(password_problem("Sara@Shop.test", email).is_some());
        assert!(password_problem("sara@shop.test", email).is_some());
        assert!(password_problem("correct horse", email).is_none());
        assert!(password_problem("رمز عبور طولانی", email).is_none());
    }

    #[test]
    fn e_mail_addresses_are_checked() {
        for good in ["a@b.co", "sara.k+chat@shop.example", "مدیر@فروشگاه.ایران"] {
            assert!(valid_email(good), "{good}");
        }
        for bad in [
            "@", "a@", "@b.co", "a@b", "a b@c.de", "a@b..c", "a@-b.co", "a@@b.co", "<a>@b.co", "",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
        assert!(!valid_email(&format!("{}@b.co", "a".repeat(65))));
    }
}
