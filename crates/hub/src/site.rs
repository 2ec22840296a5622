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
    /// Who the bot speaks for: the values of the rule pack's `{placeholders}`
    /// (`store_name`, `site_url`, `email`, `phone`, `whatsapp`, `social_handle`,
    /// `address`, …), one text or one per language. With it, the site's name and first
    /// origin fill `store_name` and `site_url` unless set, and the pack's own values
    /// (the demo store's) are never used. Absent: the pack as written (the demo site).
    pub bot_identity: Option<std::collections::BTreeMap<String, IdentityText>>,
    /// Delete closed conversations (with their messages, ratings and callbacks) this
    /// many days after they closed, and visitors not seen for as long; absent: keep
    /// everything. Reports keep their figures (see `retention`).
    pub retention_days: Option<u32>,
    /// Offer a visitor waiting in the queue to leave contact details for a call or
    /// e-mail back once the expected wait is at least this many seconds (0: only when
    /// nobody is online, which always offers it). At most a day.
    pub callback_after_secs: u32,
    // --- key accounts (issue 19) ---
    /// Priority rules on the customer's attributes, first match applies (see
    /// [`crate::key_accounts`]); next to `vip_user_ids`, which keeps working.
    #[serde(default)]
    pub key_accounts: Vec<crate::key_accounts::KeyAccountRule>,
    // --- proactive triggers (issue 19) ---
    /// Proactive messages shown above the launcher when the page meets their
    /// conditions (`crate::trigger_rules`, `crate::triggers`); at most 20.
    #[serde(default)]
    pub triggers: Vec<crate::trigger_rules::Trigger>,
}

/// A value of the bot's identity: one text for every language, or one per language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IdentityText {
    All(String),
    PerLanguage {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        en: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ar: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fa: Option<String>,
    },
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
            bot_identity: None,
            retention_days: None,
            callback_after_secs: 600,
            key_accounts: Vec::new(),
            triggers: Vec::new(),
        }
    }
}

impl SiteSettings {
    /// The settings of a site created through the API or the CLI: the bot speaks for
    /// the site itself (its name and origin), never for the demo store.
    pub fn for_new_site() -> SiteSettings {
        SiteSettings {
            bot_identity: Some(std::collections::BTreeMap::new()),
            ..SiteSettings::default()
        }
    }

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

    /// Checks settings before they are stored (`PUT /api/sites/{id}/settings`): what
    /// the widget draws must be what the owner meant, and nothing a page could be
    /// attacked with. Texts are cleaned of spanning bidi controls in place.
    pub fn validate(&mut self) -> Result<(), &'static str> {
        let hex = |c: char| c.is_ascii_hexdigit();
        if !(self.color.len() == 7
            && self.color.starts_with('#')
            && self.color[1..].chars().all(hex))
        {
            return Err("color must look like #0f766e");
        }
        if !matches!(self.position.as_str(), "left" | "right") {
            return Err("position must be left or right");
        }
        if self
            .locale
            .as_deref()
            .is_some_and(|locale| !matches!(locale, "en" | "ar" | "fa"))
        {
            return Err("locale must be en, ar or fa");
        }
        if let Some(logo) = &self.logo
            && !valid_logo(logo)
        {
            return Err("logo must be an https:// address of at most 500 characters");
        }
        for text in [
            &mut self.greeting.en,
            &mut self.greeting.ar,
            &mut self.greeting.fa,
        ] {
            *text = crate::text::clean_text(text);
            if text.chars().count() > 500 {
                return Err("a greeting has at most 500 characters");
            }
        }
        if let Some(hours) = &self.business_hours {
            if hours.utc_offset_minutes.abs() > 14 * 60 {
                return Err("business_hours.utc_offset_minutes must be within ±840");
            }
            for (day, window) in &hours.open {
                let Some(index) = WEEKDAYS.iter().position(|weekday| weekday == day) else {
                    return Err("business_hours.open keys are mon, tue, wed, thu, fri, sat, sun");
                };
                if hours.window(index).is_none() || window.len() > 20 {
                    return Err("business_hours.open values look like 09:00-17:30");
                }
            }
        }
        if self.vip_user_ids.len() > 1000 || self.vip_user_ids.iter().any(|id| id.len() > 200) {
            return Err("vip_user_ids: at most 1000 ids of at most 200 characters");
        }
        if self
            .default_capacity
            .is_some_and(|capacity| !(1..=100).contains(&capacity))
        {
            return Err("default_capacity must be 1 to 100");
        }
        if self
            .first_response_target_secs
            .is_some_and(|secs| secs > 7 * 24 * 3600)
            || self.accept_timeout_secs.is_some_and(|secs| secs > 3600)
        {
            return Err(
                "first_response_target_secs at most a week, accept_timeout_secs at most an hour",
            );
        }
        if self.callback_after_secs > 24 * 3600 {
            return Err("callback_after_secs at most a day (86400)");
        }
        crate::key_accounts::validate(&mut self.key_accounts)?;
        if let Some(identity) = &mut self.bot_identity {
            if identity.len() > 50 || identity.keys().any(|key| key.len() > 60) {
                return Err("bot_identity: at most 50 values");
            }
            for value in identity.values_mut() {
                let texts: Vec<&mut String> = match value {
                    IdentityText::All(text) => vec![text],
                    IdentityText::PerLanguage { en, ar, fa } => [en, ar, fa]
                        .into_iter()
                        .filter_map(Option::as_mut)
                        .collect(),
                };
                for text in texts {
                    *text = crate::text::clean_text(text);
                    if text.chars().count() > 500 {
                        return Err("a bot_identity value has at most 500 characters");
                    }
                }
            }
        }
        crate::trigger_rules::validate(&mut self.triggers)?;
        Ok(())
    }

    /// Whether the site is open now (always, without business hours).
    pub fn is_open(&self, now_ms: i64) -> bool {
        self.business_hours
            .as_ref()
            .is_none_or(|hours| hours.is_open(now_ms))
    }
}

/// An `https://` address with a host and nothing that could leave an attribute.
fn valid_logo(logo: &str) -> bool {
    logo.len() <= 500
        && logo
            .strip_prefix("https://")
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
        && !logo.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '<' | '>' | '\\')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_validated_on_write() {
        let mut good = SiteSettings {
            logo: Some("https://cdn.shop.example/logo.png".into()),
            locale: Some("fa".into()),
            ..SiteSettings::default()
        };
        good.greeting.en = "Hi\u{202E}!".into();
        assert_eq!(good.validate(), Ok(()));
        assert_eq!(good.greeting.en, "Hi!", "bidi controls are stripped");
        let bad = [
            SiteSettings {
                color: "red".into(),
                ..SiteSettings::default()
            },
            SiteSettings {
                color: "#12345g".into(),
                ..SiteSettings::default()
            },
            SiteSettings {
                color: "#123456;background:url(x)".into(),
                ..SiteSettings::default()
            },
            SiteSettings {
                position: "center".into(),
                ..SiteSettings::default()
            },
            SiteSettings {
                locale: Some("de".into()),
                ..SiteSettings::default()
            },
            SiteSettings {
                logo: Some("http://shop.example/l.png".into()),
                ..SiteSettings::default()
            },
            SiteSettings {
                logo: Some("javascript:alert(1)".into()),
                ..SiteSettings::default()
            },
            SiteSettings {
                logo: Some("https://x\" onerror=\"alert(1)".into()),
                ..SiteSettings::default()
            },
            SiteSettings {
                default_capacity: Some(0),
                ..SiteSettings::default()
            },
        ];
        for mut settings in bad {
            assert!(settings.validate().is_err(), "{settings:?}");
        }
    }

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
