//! Subject validation, before anything reaches the wire: a bad subject is the caller's
//! error ([`BusError::InvalidSubject`]), never a `-ERR` from the server that may close the
//! connection for every other user of the client.

use crate::BusError;

/// Longer subjects are refused: the server's control line is limited (4 KiB by default)
/// and a subject and a reply share one line.
pub const MAX_SUBJECT_LEN: usize = 1024;

/// What a subject is for: publishing (and reply subjects) takes no wildcards; subscribing
/// takes `*` as any token and `>` as the last token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    Publish,
    Subscribe,
}

pub(crate) fn validate(subject: &str, use_: Use) -> Result<(), BusError> {
    let invalid = |why: &str| Err(BusError::InvalidSubject(format!("{subject:?}: {why}")));
    if subject.is_empty() {
        return invalid("empty");
    }
    if subject.len() > MAX_SUBJECT_LEN {
        return invalid("too long");
    }
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid("contains whitespace or a control character");
    }
    let n_tokens = subject.split('.').count();
    for (index, token) in subject.split('.').enumerate() {
        if token.is_empty() {
            return invalid("empty token");
        }
        match (token, use_) {
            ("*" | ">", Use::Publish) => return invalid("wildcards are for subscriptions"),
            (">", Use::Subscribe) if index + 1 != n_tokens => {
                return invalid("'>' must be the last token");
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_and_wildcard_subjects() {
        for subject in ["a", "a.b.c", "hub1.conv-42", "_INBOX.x.1"] {
            assert!(validate(subject, Use::Publish).is_ok(), "{subject}");
        }
        for subject in ["a.*", "*.b", ">", "a.>", "a.*.>"] {
            assert!(validate(subject, Use::Subscribe).is_ok(), "{subject}");
        }
    }

    #[test]
    fn refuses_bad_subjects() {
        for subject in [
            "",
            "a b",
            "a\r\nPUB x 1",
            "a..b",
            ".a",
            "a.",
            "a\tb",
            "a.*",
            "a.>",
        ] {
            assert!(validate(subject, Use::Publish).is_err(), "{subject:?}");
        }
        for subject in ["a.>.b", "a..b", "a b"] {
            assert!(validate(subject, Use::Subscribe).is_err(), "{subject:?}");
        }
        assert!(validate(&"a".repeat(MAX_SUBJECT_LEN + 1), Use::Publish).is_err());
    }
}
