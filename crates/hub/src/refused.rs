//! Origins refused for a site: the last few per site, kept in memory for the site's
//! admins (`GET /api/sites/{id}/refused-origins`), and the rate-limited warning in the
//! log. Both are bounded: at most [`MAX_SITES`] sites are tracked (the least recently
//! refused one is forgotten first) and [`PER_SITE`] origins per site. Only known sites
//! get here (an unknown site key is refused before), so a flood of made-up keys records
//! nothing.

use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;

/// Origins kept per site.
pub const PER_SITE: usize = 20;
/// Sites tracked at most.
pub const MAX_SITES: usize = 1_000;
/// One warning per site and origin in this time at most.
pub const WARN_EVERY_MS: i64 = 10 * 60 * 1000;

/// One refused origin of a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusedOrigin {
    pub origin: String,
    /// Refusals since it was first seen (while it stayed in the list).
    pub count: u64,
    /// Milliseconds since the Unix epoch.
    pub first_seen: i64,
    pub last_seen: i64,
    #[serde(skip)]
    warned_at: i64,
}

#[derive(Default)]
struct SiteRefusals {
    origins: Vec<RefusedOrigin>,
    last_seen: i64,
}

/// The refused origins of every tracked site.
#[derive(Default)]
pub struct RefusedOrigins {
    sites: Mutex<HashMap<String, SiteRefusals>>,
}

impl RefusedOrigins {
    /// Records a refusal of `origin` (`"null"` or `""` when the page sent none) for
    /// `site_id` at `now`; returns whether it should be logged (the first time, or the
    /// first time in [`WARN_EVERY_MS`]).
    pub fn record(&self, site_id: &str, origin: &str, now: i64) -> bool {
        let origin: String = origin.chars().take(200).collect();
        let mut sites = self
            .sites
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if !sites.contains_key(site_id)
            && sites.len() >= MAX_SITES
            && let Some(oldest) = sites
                .iter()
                .min_by_key(|(_, refusals)| refusals.last_seen)
                .map(|(id, _)| id.clone())
        {
            sites.remove(&oldest);
        }
        let refusals = sites.entry(site_id.to_owned()).or_default();
        refusals.last_seen = now;
        if let Some(found) = refusals.origins.iter_mut().find(|o| o.origin == origin) {
            found.count += 1;
            found.last_seen = now;
            let warn = now - found.warned_at >= WARN_EVERY_MS;
            if warn {
                found.warned_at = now;
            }
            return warn;
        }
        if refusals.origins.len() >= PER_SITE
            && let Some(oldest) = refusals
                .origins
                .iter()
                .enumerate()
                .min_by_key(|(_, o)| o.last_seen)
                .map(|(index, _)| index)
        {
            refusals.origins.swap_remove(oldest);
        }
        refusals.origins.push(RefusedOrigin {
            origin,
            count: 1,
            first_seen: now,
            last_seen: now,
            warned_at: now,
        });
        true
    }

    /// The site's refused origins, newest first, leaving out those `still_refused`
    /// says are allowed now (and forgetting them).
    pub fn list(&self, site_id: &str, still_refused: impl Fn(&str) -> bool) -> Vec<RefusedOrigin> {
        let mut sites = self
            .sites
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let Some(refusals) = sites.get_mut(site_id) else {
            return Vec::new();
        };
        refusals.origins.retain(|o| still_refused(&o.origin));
        let mut list = refusals.origins.clone();
        list.sort_by_key(|o| std::cmp::Reverse(o.last_seen));
        list
    }

    /// Sites tracked now.
    pub fn sites(&self) -> usize {
        self.sites.lock().map_or(0, |sites| sites.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_origins_per_site_and_warns_once_per_window() {
        let refused = RefusedOrigins::default();
        assert!(refused.record("s1", "http://a.example", 1));
        assert!(!refused.record("s1", "http://a.example", 2));
        assert!(refused.record("s1", "http://a.example", 1 + WARN_EVERY_MS));
        for i in 0..30 {
            refused.record("s1", &format!("http://{i}.example"), 2 * WARN_EVERY_MS + i);
        }
        let list = refused.list("s1", |_| true);
        assert_eq!(list.len(), PER_SITE);
        assert_eq!(list[0].origin, "http://29.example", "newest first");
        // The oldest went: the first ones, and `a` (seen before all of them).
        assert!(list.iter().all(|o| o.origin != "http://a.example"));
        assert!(!list.iter().any(|o| o.origin == "http://9.example"));
        assert_eq!(list[PER_SITE - 1].origin, "http://10.example");
        // An origin allowed since drops out.
        let list = refused.list("s1", |origin| origin != "http://29.example");
        assert_eq!(list[0].origin, "http://28.example");
        assert!(refused.list("s2", |_| true).is_empty());
        // Counts add up while an origin stays in the list.
        refused.record("s1", "http://28.example", 3 * WARN_EVERY_MS);
        let list = refused.list("s1", |_| true);
        assert_eq!(
            (list[0].origin.as_str(), list[0].count),
            ("http://28.example", 2)
        );
    }

    #[test]
    fn tracks_a_bounded_number_of_sites() {
        let refused = RefusedOrigins::default();
        for i in 0..(MAX_SITES as i64 + 50) {
            refused.record(&format!("s{i}"), "http://x.example", i);
        }
        assert_eq!(refused.sites(), MAX_SITES);
        assert!(
            refused.list("s0", |_| true).is_empty(),
            "the oldest is forgotten"
        );
        assert_eq!(
            refused
                .list(&format!("s{}", MAX_SITES + 49), |_| true)
                .len(),
            1
        );
    }
}
