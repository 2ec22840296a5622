//! The pages a visitor opens (issue 19): each `hello` that names its page records a
//! `page_view` visitor event (url and title, cleaned like everything a visitor sends
//! and cut to [`MAX_URL_CHARS`] and [`MAX_TITLE_CHARS`]), which the customer timeline
//! shows as the pages of the current session ([`crate::timeline`]).
//!
//! The widget names its page only in `hello`, so one page load is one event. A socket
//! that reconnects (a network blip, a restart of the hub) greets again from the same
//! page: when the visitor's newest page view is that same page, seen within the
//! session gap, nothing is recorded, so reconnects and reloads do not repeat a page.

use crate::clock::now_ms;
use crate::state::AppState;
use salam_protocol::PageInfo;
use salam_store::{NewVisitorEvent, VisitorEventKind};
use serde_json::json;

/// Characters of a page's address kept.
pub const MAX_URL_CHARS: usize = 2000;
/// Characters of a page's title kept.
pub const MAX_TITLE_CHARS: usize = 300;

/// The url and title of a page as recorded; `None` without a url.
pub fn cleaned(page: &PageInfo) -> Option<(String, Option<String>)> {
    let url = crate::text::clean_field(page.url.clone(), MAX_URL_CHARS)?;
    let title = crate::text::clean_field(page.title.clone(), MAX_TITLE_CHARS);
    Some((url, title))
}

/// Records the page of a `hello`, unless it repeats the visitor's newest page view.
/// Failures are logged: a page view is a convenience for agents, never a reason to
/// refuse the visitor.
pub async fn record(state: &AppState, site_id: &str, visitor_id: &str, page: Option<&PageInfo>) {
    let Some((url, title)) = page.and_then(cleaned) else {
        return;
    };
    let now = now_ms();
    let recent = state
        .store
        .visitor_events(vec![visitor_id.to_owned()], 20)
        .await
        .unwrap_or_default();
    let repeated = recent
        .iter()
        .find(|event| event.kind == VisitorEventKind::PageView)
        .is_some_and(|last| {
            last.data["url"] == url.as_str()
                && now - last.at <= salam_store::timeline::SESSION_GAP_MS
        });
    if repeated {
        return;
    }
    let event = NewVisitorEvent {
        site_id: site_id.to_owned(),
        visitor_id: visitor_id.to_owned(),
        kind: VisitorEventKind::PageView,
        data: json!({ "url": url, "title": title }),
        at: now,
    };
    if let Err(err) = state.store.record_visitor_event(event).await {
        tracing::warn!(visitor = visitor_id, error = %err, "page view not recorded");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_cleaned_and_cut() {
        let page = PageInfo {
            url: Some(format!(" https://shop.test/{}\u{202E} ", "a".repeat(3000))),
            title: Some("Pricing\u{202E}\nplans".into()),
            referrer: None,
        };
        let (url, title) = cleaned(&page).unwrap();
        assert_eq!(url.chars().count(), MAX_URL_CHARS);
        assert!(url.starts_with("https://shop.test/aaa"));
        assert_eq!(title.as_deref(), Some("Pricing plans"));
        let blank = PageInfo {
            url: Some("\u{200B} ".into()),
            title: Some("x".into()),
            referrer: None,
        };
        assert_eq!(cleaned(&blank), None);
        assert_eq!(cleaned(&PageInfo::default()), None);
    }
}
