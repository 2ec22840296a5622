//! `transcript`: the visitor asks for the conversation's transcript by e-mail (issue
//! 17); e-mail sends it when the conversation closes (at once if it is closed).

use super::{Session, clean, owns, refuse};
use crate::ws::{Flow, Link};
use salam_protocol::ErrorCode;

pub(super) async fn handle(
    session: &mut Session,
    link: &mut Link,
    conversation: String,
    email: String,
) -> Flow {
    if !owns(session, link, &conversation).await {
        return refuse(link, None).await;
    }
    let email = clean(Some(email), 254).filter(|email| {
        email
            .split_once('@')
            .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
            && !email.contains([' ', '<', '>', ',', ';'])
    });
    let Some(email) = email else {
        link.error(ErrorCode::BadField, "leave a valid e-mail address", None)
            .await;
        return Flow::Continue;
    };
    let lang = crate::email::templates::lang_of(session.locale.as_deref());
    if let Err(err) =
        crate::email::transcript::request(&link.state, &conversation, &email, lang).await
    {
        link.error(err.0, err.1, None).await;
    }
    Flow::Continue
}
