//! Site settings: what a site owner configures (look, greeting, business hours,
//! routing targets). Stored as JSON with the site; every field has a default.

use serde::{Deserialize, Serialize};

/// The greeting per language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Greeting {
    pub en: String,
    pub ar: String,
    pub fa: String,
}

impl Default for Greeting {
    fn default() -> Greeting {
        Greeting {
            en: "Hi! How can we help you today?".into(),
            ar: "مرحبًا! كيف يمكننا مساعدتك اليوم؟".into(),
            fa: "سلام! امروز چطور می‌توانیم کمکتان کنیم؟".into(),
        }
    }
}

/// Opening hours in the site's local time: `utc_offset_minutes` (e.g. 210 for Tehran,
/// 180 for Riyadh) and, per weekday, `"HH:MM-HH:MM"` or absent when closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct BusinessHours {
    pub utc_offset_minutes: i32,
    /// Keys `mon`, `tue`, `wed`, `thu`, `fri`, `sat`, `sun`.
    pub open: std::collections::BTreeMap<String, String>,
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl BusinessHours {
    fn window(&self, weekday: usize) -> Option<(u32, u32)> {
        let text = self.open.get(WEEKDAYS[weekday])?;
        let (open, close) = text.split_once('-')?;
        let minutes = |hhmm: &str| -> Option<u32> {
            let (h, m) = hhmm.trim().split_once(':')?;
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (h <= 24 && m < 60).then_some(h * 60 + m)
        };
        let (open, close) = (minutes(open)?, minutes(close)?);
        (open < close).then_some((open, close))
    }

    /// Local weekday (0 = Monday) and minute of day at `now_ms`.
    fn local(&self, now_ms: i64) -> (usize, u32) {
        let local_minutes = now_ms.div_euclid(60_000) + self.utc_offset_minutes as i64;
        let day = local_minutes.div_euclid(1440);
        // 1970-01-01 was a Thursday (index 3).
        let weekday = (day + 3).rem_euclid(7) as usize;
        (weekday, local_minutes.rem_euclid(1440) as u32)
    }

    /// Whether the site is open at `now_ms`.
    pub fn is_open(&self, now_ms: i64) -> bool {
        let (weekday, minute) = self.local(now_ms);
        self.window(weekday)
            .is_some_and(|(open, close)| minute >= open && minute < close)
    }

    /// The next opening: (weekday index 0 = Monday, "HH:MM") within a week, if any.
    pub fn next_opening(&self, now_ms: i64) -> Option<(usize, String)> {
        let (weekday, minute) = self.local(now_ms);
        for offset in 0..8 {
            let day = (weekday + offset) % 7;
            if let Some((open, _)) = self.window(day)
                && (offset > 0 || minute < open)
            {
                return Some((day, format!("{:02}:{:02}", open / 60, open % 60)));
            }
        }
        None
    }
}

/// Everything a site owner can set. Unknown fields in stored JSON are ignored and
/// missing ones take their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SiteSettings {
    /// Brand colour of the launcher and header (`#rrggbb`).
    pub color: String,
    /// `right` or `left`.
    pub position: String,
    /// Force the widget's language (`en`, `ar`, `fa`); otherwise the browser's.
    pub locale: Option<String>,
    pub greeting: Greeting,
    /// URL of a logo shown in the panel header.
    pub logo: Option<String>,
    /// Opening hours; absent means always open.
    pub business_hours: Option<BusinessHours>,
    /// Ask for name and e-mail before the first message.
    pub prechat: bool,
    /// Whether the bot answers first.
    pub bot: bool,
    /// The site's user ids (from `identify`) that skip the bot and get raised priority.
    pub vip_user_ids: Vec<String>,
    /// The capacity given to an agent created for this site without one of their own
    /// (absent: the hub's `routing.default_capacity` applies). An agent's capacity is
    /// one number across all their sites.
    pub default_capacity: Option<u32>,
    /// First-response target in seconds (absent: the hub's, 60 by default).
    pub first_response_target_secs: Option<u32>,
    /// Agents must accept a chat within this many seconds or it passes to the next
    /// agent; 0 assigns directly (absent: the hub's `routing.accept_timeout_secs`).
    pub accept_timeout_secs: Option<u32>,
    /// Delete closed conversations (with their messages, ratings and callbacks) this
    /// many days after they closed, and visitors not seen for as long; absent: keep
    /// everything. Reports keep their figures (see `retention`).
    pub retention_days: Option<u32>,
}

impl Default for SiteSettings {
    fn default() -> SiteSettings {
        SiteSettings {
            color: "#0f766e".into(),
            position: "right".into(),
            locale: None,
            greeting: Greeting::default(),
            logo: None,
            business_hours: None,
            prechat: false,
            bot: true,
            vip_user_ids: Vec::new(),
            default_capacity: None,
            first_response_target_secs: None,
            accept_timeout_secs: None,
            retention_days: None,
        }
    }
}

impl SiteSettings {
    /// Parses stored settings; anything unreadable falls back to the defaults.
    pub fn parse(json: &str) -> SiteSettings {
        serde_json::from_str(json).unwrap_or_default()
    }

    /// The routing policy of the site: its own accept timeout and first-response
    /// target, else the hub's.
    pub fn routing_policy(&self, hub: &crate::config::RoutingConfig) -> salam_routing::SitePolicy {
        let target_secs = self
            .first_response_target_secs
            .unwrap_or(hub.first_response_target_secs);
        let accept_secs = self.accept_timeout_secs.unwrap_or(hub.accept_timeout_secs);
        salam_routing::SitePolicy {
            accept_timeout_ms: (accept_secs > 0).then_some(accept_secs as u64 * 1000),
            first_response_target_ms: (target_secs > 0).then_some(target_secs as u64 * 1000),
        }
    }

    /// Whether the site is open now (always, without business hours).
    pub fn is_open(&self, now_ms: i64) -> bool {
        self.business_hours
            .as_ref()
            .is_none_or(|hours| hours.is_open(now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours() -> BusinessHours {
        BusinessHours {
            utc_offset_minutes: 180,
            open: [("sat", "09:00-21:00"), ("mon", "09:00-17:30")]
                .into_iter()
                .map(|(day, window)| (day.to_owned(), window.to_owned()))
                .collect(),
        }
    }

    #[test]
    fn opening_hours_in_local_time() {
        // 2026-11-21 is a Saturday. 07:00 UTC = 10:00 local (+3).
        let saturday_10 = 1_795_244_400_000; // 2026-11-21T07:00:00Z
        assert!(hours().is_open(saturday_10));
        let saturday_22 = saturday_10 + 12 * 3_600_000;
        assert!(!hours().is_open(saturday_22));
        assert_eq!(hours().next_opening(saturday_22), Some((0, "09:00".into())));
        assert!(SiteSettings::default().is_open(saturday_22));
    }

    #[test]
    fn stored_settings_tolerate_junk() {
        assert_eq!(SiteSettings::parse("not json"), SiteSettings::default());
        let parsed = SiteSettings::parse(r##"{"color":"#123456","extra":1}"##);
        assert_eq!(parsed.color, "#123456");
        assert!(parsed.bot);
    }
}
