//! Threading: which conversation a reply belongs to, and what of it is new.
//!
//! The reply address of every mail is `reply+CONVERSATION.SIGNATURE@DOMAIN`, the
//! signature an HMAC of the conversation id under the hub's secret (hex, so a client
//! that lowercases the address does not break it; compared in constant time). It
//! survives clients that rewrite `In-Reply-To` or change the subject; the Message-IDs
//! are the second way (see `inbound`).

use crate::auth::Secret;

const PURPOSE: &str = "email-reply";
/// Bytes of the HMAC kept in the address (96 bits).
const SIGNATURE_BYTES: usize = 12;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).ok())
        .collect()
}

/// The local part of a conversation's reply address: `reply+ID.SIGNATURE`.
pub fn reply_local_part(secret: &Secret, conversation: &str) -> String {
    let signature = secret.sign(PURPOSE, conversation);
    format!(
        "reply+{conversation}.{}",
        hex(&signature[..SIGNATURE_BYTES])
    )
}

/// The reply address of a conversation.
pub fn reply_address(secret: &Secret, conversation: &str, domain: &str) -> String {
    format!("{}@{domain}", reply_local_part(secret, conversation))
}

/// What a recipient address of an incoming mail names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// A reply address whose signature verified.
    Conversation(String),
    /// `SITEKEY@DOMAIN`: a new mail to a site.
    Site(String),
}

/// Why a recipient is refused (550).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRecipient {
    /// Not an address of the reply domain.
    OtherDomain,
    /// `reply+…` with a wrong or missing signature.
    BadToken,
    /// Not a reply address nor a site key.
    Unknown,
}

/// Reads a recipient address (`local@domain`, case-insensitive domain).
pub fn recipient(secret: &Secret, domain: &str, address: &str) -> Result<Recipient, BadRecipient> {
    let (local, at_domain) = address.rsplit_once('@').ok_or(BadRecipient::OtherDomain)?;
    if !at_domain.eq_ignore_ascii_case(domain) {
        return Err(BadRecipient::OtherDomain);
    }
    let local = local.to_ascii_lowercase();
    if let Some(token) = local.strip_prefix("reply+") {
        let (conversation, signature) = token.rsplit_once('.').ok_or(BadRecipient::BadToken)?;
        let signature = unhex(signature).ok_or(BadRecipient::BadToken)?;
        let expected = secret.sign(PURPOSE, conversation);
        if !crate::auth::same(&signature, &expected[..SIGNATURE_BYTES]) {
            return Err(BadRecipient::BadToken);
        }
        return Ok(Recipient::Conversation(conversation.to_owned()));
    }
    if !local.is_empty()
        && local.len() <= 64
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Ok(Recipient::Site(local));
    }
    Err(BadRecipient::Unknown)
}

/// A line that introduces the quoted earlier mail ("On … wrote:", and the Arabic and
/// Persian forms mail clients write).
fn introduces_quote(line: &str) -> bool {
    let line = line
        .trim()
        .trim_matches(|c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'))
        .trim();
    let lower = line.to_lowercase();
    // "On … wrote:", "في … كتب …:", "در … نوشت:" (the name may come after the verb).
    let attribution = line.ends_with(':')
        && (lower.contains(" wrote")
            || line.contains("كتب")
            || line.contains("تمت كتابة")
            || line.contains("نوشت"));
    attribution
        || lower.starts_with("-----original message-----")
        || lower.starts_with("-------- original message --------")
        || line.starts_with("________________________________")
        || line == "--"
        || line == "-- "
}

/// The new part of a reply: quoted history (`>` lines, everything from an "On …
/// wrote:" line, a forwarded original, a signature) removed, blank ends trimmed.
pub fn strip_quoted(body: &str) -> String {
    let lines: Vec<&str> = body.lines().collect();
    let mut kept: Vec<&str> = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        if introduces_quote(line) {
            break;
        }
        // "On Mon, 7 Dec 2026 at 10:00, Support <x@y>" wrapped before "wrote:".
        if line.trim_start().starts_with("On ")
            && lines
                .get(index + 1)
                .is_some_and(|next| next.trim().to_lowercase().ends_with("wrote:"))
        {
            break;
        }
        if line.trim_start().starts_with('>') {
            continue;
        }
        kept.push(line.trim_end());
    }
    let text = kept.join("\n");
    text.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::from_stored(&Secret::generate_stored()).expect("secret")
    }

    #[test]
    fn reply_addresses_verify_and_refuse_forgeries() {
        let secret = secret();
        let address = reply_address(&secret, "c_abc123", "reply.example.test");
        assert_eq!(
            recipient(&secret, "reply.example.test", &address),
            Ok(Recipient::Conversation("c_abc123".into()))
        );
        // Case changes by clients do not matter.
        assert_eq!(
            recipient(&secret, "reply.example.test", &address.to_uppercase()),
            Ok(Recipient::Conversation("c_abc123".into()))
        );
        let forged = address.replace("c_abc123", "c_other1");
        assert_eq!(
            recipient(&secret, "reply.example.test", &forged),
            Err(BadRecipient::BadToken)
        );
        assert_eq!(
            recipient(
                &secret,
                "reply.example.test",
                "reply+c_abc123@reply.example.test"
            ),
            Err(BadRecipient::BadToken)
        );
        assert_eq!(
            recipient(&secret, "other.test", &address),
            Err(BadRecipient::OtherDomain)
        );
        assert_eq!(
            recipient(
                &secret,
                "reply.example.test",
                "SiteKey_1@reply.example.test"
            ),
            Ok(Recipient::Site("sitekey_1".into()))
        );
        assert_eq!(
            recipient(&secret, "reply.example.test", "a b@reply.example.test"),
            Err(BadRecipient::Unknown)
        );
    }

    #[test]
    fn quoted_history_is_removed() {
        let english = "Thanks, that works!\n\nOn Mon, 7 Dec 2026 at 10:00, Support <s@x> wrote:\n> Try again\n> please";
        assert_eq!(strip_quoted(english), "Thanks, that works!");
        let wrapped = "Yes\nOn Mon, 7 Dec 2026 at 10:00, Support\n<s@x> wrote:\n> old";
        assert_eq!(strip_quoted(wrapped), "Yes");
        let arabic = "شكراً جزيلاً\n\nفي الاثنين، 7 ديسمبر 2026، كتب الدعم <s@x>‏ كتب:\n> نص قديم";
        assert_eq!(strip_quoted(arabic), "شكراً جزيلاً");
        let arabic_name_last = "حسناً\nفي الاثنين، 7 ديسمبر 2026، كتب Salam Support:\n> قديم";
        assert_eq!(strip_quoted(arabic_name_last), "حسناً");
        let persian = "ممنون\n\nدر تاریخ دوشنبه ۷ دسامبر ۲۰۲۶ پشتیبانی نوشت:\n> متن قدیمی";
        assert_eq!(strip_quoted(persian), "ممنون");
        let inline = "> quoted\nmy answer\n> more quoted\nsecond line";
        assert_eq!(strip_quoted(inline), "my answer\nsecond line");
        let outlook = "Fine\n\n-----Original Message-----\nFrom: x";
        assert_eq!(strip_quoted(outlook), "Fine");
        let signature = "See you\n-- \nLayla";
        assert_eq!(strip_quoted(signature), "See you");
    }
}
