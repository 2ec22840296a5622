//! `identify`: a logged-in customer, vouched for by the site's backend with a signed
//! token (identity v2, [`crate::identity`]). What the token carries is verified;
//! `name` and `email` sent beside it are kept as the visitor's own, unverified.

use super::{Session, clean};
use crate::clock::now_ms;
use crate::conversation;
use crate::identity::{self, Secrets};
use crate::ws::{Flow, Link};
use salam_protocol::ErrorCode;
use salam_store::IdentityUpdate;

pub(super) async fn handle(
    session: &mut Session,
    link: &mut Link,
    token: String,
    name: Option<String>,
    email: Option<String>,
) -> Flow {
    identify(session, link, token, name, email).await;
    Flow::Continue
}

/// The site's secrets now: the previous one only within its grace period.
fn secrets<'a>(site: &'a salam_store::Site, grace_hours: u32, now: i64) -> Secrets<'a> {
    let grace_ms = i64::from(grace_hours) * 3_600_000;
    Secrets {
        current: &site.identity_secret,
        previous: site
            .previous_identity_secret
            .as_deref()
            .filter(|_| site.identity_secret_rotated_at.unwrap_or(0) + grace_ms > now),
    }
}

async fn identify(
    session: &mut Session,
    link: &Link,
    token: String,
    name: Option<String>,
    email: Option<String>,
) {
    let now = now_ms();
    // The secrets in force now, not those of `hello`: a page open across a rotation
    // verifies with the new secret, and the old one stops once its grace is over.
    let site = match link.state.store.site_by_id(&session.site.id).await {
        Ok(Some(site)) => site,
        Ok(None) => {
            return link
                .error(ErrorCode::NotFound, "the site no longer exists", None)
                .await;
        }
        Err(err) => {
            tracing::error!(%err, "reading the site's identity secrets failed");
            return link
                .error(ErrorCode::Internal, "could not check the identity", None)
                .await;
        }
    };
    let secrets = secrets(
        &site,
        link.state.config.auth.identity_secret_grace_hours,
        now,
    );
    let verified = match identity::verify(&token, secrets, now / 1000) {
        Ok(verified) => verified,
        Err(err) => {
            tracing::info!(site = %session.site.id, reason = %err, "identity refused");
            let message = if token.is_empty() {
                "identify needs a signed token (identity v2, see the docs)".to_owned()
            } else {
                format!("the identity is not signed by the site: {err}")
            };
            return link.error(ErrorCode::Unauthorized, &message, None).await;
        }
    };
    let signed_name = clean(verified.name, 100);
    let signed_email = clean(verified.email, 254);
    let mut checked = Vec::new();
    if signed_name.is_some() {
        checked.push("name".to_owned());
    }
    if signed_email.is_some() {
        checked.push("email".to_owned());
    }
    // What the token signed goes onto the site's contact too (issue 19).
    let signed = crate::signed_contact::Signed {
        external_id: verified.user_id.clone(),
        name: signed_name.clone(),
        email: signed_email.clone(),
        attributes: verified.attributes.clone(),
    };
    let update = IdentityUpdate {
        external_id: verified.user_id.clone(),
        name: signed_name.or_else(|| clean(name, 100)),
        email: signed_email.or_else(|| clean(email, 254)),
        verified: checked,
        attributes: verified.attributes,
    };
    if let Err(err) = link
        .state
        .store
        .identify_visitor(&session.visitor_id, update)
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
    crate::signed_contact::record(&link.state, &session.site.id, signed).await;
    session.vip = session.settings.vip_user_ids.contains(&verified.user_id);
}
