//! `identify`: a logged-in customer, signed by the site's backend (HMAC-SHA256 of the
//! id with the site's identity secret).

use super::{Session, clean};
use crate::conversation;
use crate::ws::{Flow, Link};
use salam_protocol::ErrorCode;

pub(super) async fn handle(
    session: &mut Session,
    link: &mut Link,
    id: String,
    name: Option<String>,
    email: Option<String>,
    hash: String,
) -> Flow {
    identify(session, link, id, name, email, hash).await;
    Flow::Continue
}

pub fn identity_hash(identity_secret: &str, id: &str) -> String {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(identity_secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
async fn identify(
    session: &mut Session,
    link: &Link,
    id: String,
    name: Option<String>,
    email: Option<String>,
    hash: String,
) {
    let expected = identity_hash(&session.site.identity_secret, &id);
    let matches = expected.len() == hash.len()
        && expected
            .bytes()
            .zip(hash.to_ascii_lowercase().bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if id.is_empty() || id.len() > 200 || !matches {
        return link
            .error(
                ErrorCode::Unauthorized,
                "the identity is not signed by the site",
                None,
            )
            .await;
    }
    let (name, email) = (clean(name, 100), clean(email, 254));
    if let Err(err) = link
        .state
        .store
        .identify_visitor(&session.visitor_id, &id, name.as_deref(), email.as_deref())
        .await
    {
        return link
            .error(
                conversation::store_code(&err),
                conversation::store_message(&err),
                None,
            )
            .await;
    }
    session.vip = session.settings.vip_user_ids.contains(&id);
}
