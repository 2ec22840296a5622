//! Every string the widget shows, in English, Arabic and Persian.
//!
//! One table per locale, indexed by [`Key`]; a test checks that every key has a
//! non-empty translation in every locale, so no string is left in English by mistake.
//! Placeholders are `{n}` (a number) and `{name}`.

use crate::text::sub;

/// A language the widget speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Locale {
    #[default]
    En,
    Ar,
    Fa,
}

impl Locale {
    /// Parses a language tag (`ar`, `fa-IR`, `en_US`, `AR`); `None` for any other language.
    pub fn parse(tag: &str) -> Option<Locale> {
        let primary = tag
            .trim()
            .split(['-', '_'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Locale::En),
            "ar" => Some(Locale::Ar),
            "fa" | "per" | "fas" => Some(Locale::Fa),
            _ => None,
        }
    }

    /// The locale to use: the script tag's `data-locale`, else the site setting, else
    /// the browser's language, else English. A candidate the widget does not speak is
    /// skipped, not taken as English, so `data-locale="de"` still falls back to the site.
    pub fn choose(
        data_locale: Option<&str>,
        site_locale: Option<&str>,
        navigator: Option<&str>,
    ) -> Locale {
        [data_locale, site_locale, navigator]
            .into_iter()
            .flatten()
            .find_map(Locale::parse)
            .unwrap_or_default()
    }

    /// The BCP 47 tag, for `lang` attributes.
    pub fn tag(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Ar => "ar",
            Locale::Fa => "fa",
        }
    }

    /// Whether the script runs right to left.
    pub fn rtl(self) -> bool {
        matches!(self, Locale::Ar | Locale::Fa)
    }

    /// `ltr` or `rtl`, for `dir` attributes.
    pub fn dir(self) -> &'static str {
        if self.rtl() { "rtl" } else { "ltr" }
    }

    /// The translation of `key`.
    pub fn text(self, key: Key) -> &'static str {
        let table = match self {
            Locale::En => &EN,
            Locale::Ar => &AR,
            Locale::Fa => &FA,
        };
        table[key as usize]
    }

    /// The CLDR plural category of the whole number `n`, as an index into a plural
    /// text's `|`-separated forms: en `one|other`; fa `one|other` (one: 0 and 1);
    /// ar `zero|one|two|few|many|other` (few: n % 100 in 3..=10, many: 11..=99).
    pub fn plural(self, n: u64) -> usize {
        match self {
            Locale::Ar => match (n, n % 100) {
                (0..=2, _) => n as usize,
                (_, 3..=10) => 3,
                (_, 11..=99) => 4,
                _ => 5,
            },
            Locale::En => usize::from(n != 1),
            Locale::Fa => usize::from(n > 1),
        }
    }

    /// `text` with its ASCII digits in the locale's digits: Arabic-Indic (`٠`–`٩`) in
    /// Arabic, Persian (`۰`–`۹`) in Persian, as they are in English. One numbering per
    /// language, never mixed.
    pub fn digits(self, text: &str) -> String {
        let zero = match self {
            Locale::En => return text.to_owned(),
            Locale::Ar => 0x660,
            Locale::Fa => 0x6F0,
        };
        text.chars()
            .map(|c| match c {
                '0'..='9' => char::from_u32(zero + c as u32 - 48).unwrap_or(c),
                _ => c,
            })
            .collect()
    }

    /// The translation of `key` in the plural form for `n`, with `{n}` replaced by `n`
    /// in the locale's digits. A text without `|` has one form for every number.
    pub fn text_n(self, key: Key, n: u64) -> String {
        // The form is picked by hand: `str::split` costs ~1 KB of WASM.
        let mut form = self.text(key);
        if form.contains('|') {
            for _ in 0..self.plural(n) {
                match form.char_indices().find(|(_, c)| *c == '|') {
                    Some((bar, _)) => form = sub(form, bar + 1, form.len()),
                    None => break,
                }
            }
            if let Some((bar, _)) = form.char_indices().find(|(_, c)| *c == '|') {
                form = sub(form, 0, bar);
            }
        }
        fill(form, "{n}", &self.digits(&n.to_string()))
    }

    /// The translation of `key` with `{n}` replaced by a text (a counted phrase).
    pub fn text_with(self, key: Key, n: &str) -> String {
        fill(self.text(key), "{n}", n)
    }

    /// A system line from its `event` code and parameters, in this language; `None`
    /// for a code this widget does not know (or a parameter it needs is missing): the
    /// line's English `text` is shown then.
    pub fn event(self, code: &str, params: &[(String, String)]) -> Option<String> {
        let param = |name: &str| {
            params
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let (_, key, name) = EVENTS.iter().find(|(known, _, _)| *known == code)?;
        if *key == Key::EvClosedIdle {
            let minutes = param("minutes")?.trim().parse().ok()?;
            return Some(self.text_with(*key, &self.text_n(Key::Minutes, minutes)));
        }
        let value = if name.is_empty() { "" } else { param(name)? };
        Some(self.text_name(*key, value))
    }

    /// The translation of `key` with `{name}` replaced by `name`.
    pub fn text_name(self, key: Key, name: &str) -> String {
        fill(self.text(key), "{name}", name)
    }
}

/// The system events a widget renders: code, text, and the parameter filling `{name}`.
const EVENTS: [(&str, Key, &str); 9] = [
    ("queued", Key::EvQueued, ""),
    ("joined", Key::EvJoined, "agent"),
    ("transferred_to_agent", Key::EvToAgent, "agent"),
    ("transferred_to_department", Key::EvToTeam, "department"),
    ("requeued", Key::EvRequeued, ""),
    ("closed_by_agent", Key::EvClosedByAgent, "agent"),
    ("closed_by_visitor", Key::EvClosedByVisitor, ""),
    ("closed_idle", Key::EvClosedIdle, "minutes"),
    ("closed_erased", Key::EvClosedErased, ""),
];

/// `template` with its first `placeholder` replaced by `value` (split at `{` rather
/// than `str::replace`, whose substring searcher costs ~2 KB of WASM).
fn fill(template: &str, placeholder: &str, value: &str) -> String {
    let found = template.char_indices().find(|(index, c)| {
        *c == '{' && sub(template, *index, template.len()).starts_with(placeholder)
    });
    match found {
        Some((index, _)) => {
            let mut out = String::with_capacity(template.len() + value.len());
            out.push_str(sub(template, 0, index));
            out.push_str(value);
            out.push_str(sub(template, index + placeholder.len(), template.len()));
            out
        }
        None => template.to_owned(),
    }
}

/// The UI strings. The discriminant indexes the tables below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Title,
    OpenChat,
    CloseChat,
    Placeholder,
    Send,
    TalkToPerson,
    Connecting,
    Online,
    Reconnecting,
    Unavailable,
    QueuePosition,
    QueueWait,
    Typing,
    SomeoneTyping,
    You,
    Bot,
    Agent,
    Sending,
    NotSent,
    ContactTitle,
    ContactIntro,
    Name,
    Email,
    Phone,
    Message,
    Submit,
    ContactThanks,
    NeedEmailOrPhone,
    RateTitle,
    RateStar,
    Comment,
    RateThanks,
    PrechatTitle,
    PrechatIntro,
    StartChat,
    ChatEnded,
    NewMessage,
    Away,
    LeaveMessage,
    Unread,
    Messages,
    Dismiss,
    SendMessage,
    Rate,
    Offline,
    NotHere,
    CallbackOffer,
    StartNew,
    Minutes,
    EvQueued,
    EvJoined,
    EvToAgent,
    EvToTeam,
    EvRequeued,
    EvClosedByAgent,
    EvClosedByVisitor,
    EvClosedIdle,
    EvClosedErased,
}

/// How many keys there are (the length of every table).
pub const N_KEYS: usize = Key::EvClosedErased as usize + 1;

/// Every key, for tests and for re-rendering after a locale change.
pub const ALL_KEYS: [Key; N_KEYS] = [
    Key::Title,
    Key::OpenChat,
    Key::CloseChat,
    Key::Placeholder,
    Key::Send,
    Key::TalkToPerson,
    Key::Connecting,
    Key::Online,
    Key::Reconnecting,
    Key::Unavailable,
    Key::QueuePosition,
    Key::QueueWait,
    Key::Typing,
    Key::SomeoneTyping,
    Key::You,
    Key::Bot,
    Key::Agent,
    Key::Sending,
    Key::NotSent,
    Key::ContactTitle,
    Key::ContactIntro,
    Key::Name,
    Key::Email,
    Key::Phone,
    Key::Message,
    Key::Submit,
    Key::ContactThanks,
    Key::NeedEmailOrPhone,
    Key::RateTitle,
    Key::RateStar,
    Key::Comment,
    Key::RateThanks,
    Key::PrechatTitle,
    Key::PrechatIntro,
    Key::StartChat,
    Key::ChatEnded,
    Key::NewMessage,
    Key::Away,
    Key::LeaveMessage,
    Key::Unread,
    Key::Messages,
    Key::Dismiss,
    Key::SendMessage,
    Key::Rate,
    Key::Offline,
    Key::NotHere,
    Key::CallbackOffer,
    Key::StartNew,
    Key::Minutes,
    Key::EvQueued,
    Key::EvJoined,
    Key::EvToAgent,
    Key::EvToTeam,
    Key::EvRequeued,
    Key::EvClosedByAgent,
    Key::EvClosedByVisitor,
    Key::EvClosedIdle,
    Key::EvClosedErased,
];

const EN: [&str; N_KEYS] = [
    "Chat with us",
    "Open chat",
    "Close chat",
    "Type a message…",
    "Send",
    "Talk to a person",
    "Connecting…",
    "Online",
    "Connection lost, reconnecting…",
    "Chat is unavailable",
    "You are number {n} in the queue",
    "Expected wait: about {n}",
    "{name} is typing…",
    "Someone is typing…",
    "You",
    "Assistant",
    "Agent",
    "Sending…",
    "Not sent",
    "Leave us a message",
    "No one is available right now. Leave your details and we will get back to you.",
    "Name",
    "Email",
    "Phone",
    "Message",
    "Send details",
    "Thank you! We will get back to you soon.",
    "Please enter an email or a phone number",
    "How was your chat?",
    "Rate {n} out of 5",
    "Comment (optional)",
    "Thank you for your feedback!",
    "Before we start",
    "Tell us how to reach you.",
    "Start chat",
    "The chat has ended",
    "New message",
    "No one is available right now",
    "Leave a message",
    "{n} unread message|{n} unread messages",
    "Messages",
    "Not now",
    "Send message",
    "Rate",
    "Offline",
    "Chat is not available on this page.",
    "Long wait? Leave your details and we will get back to you.",
    "Start a new conversation",
    "{n} minute|{n} minutes",
    "waiting for a person",
    "{name} joined the conversation",
    "transferred to {name}",
    "transferred to the {name} team",
    "back in the queue",
    "closed by {name}",
    "closed by you",
    "closed after {n} without activity",
    "closed: your data was erased",
];

const AR: [&str; N_KEYS] = [
    "تحدث معنا",
    "افتح المحادثة",
    "أغلق المحادثة",
    "اكتب رسالة…",
    "إرسال",
    // The bot's rules (bot-rules/handoff.toml) know these words as a request for a person.
    "التحدث مع موظف",
    "جارٍ الاتصال…",
    "متصل",
    "انقطع الاتصال، جارٍ إعادة المحاولة…",
    "المحادثة غير متاحة",
    "ترتيبك في قائمة الانتظار: {n}",
    "مدة الانتظار المتوقعة: نحو {n}",
    "{name} يكتب…",
    "أحدهم يكتب…",
    "أنت",
    "المساعد",
    "موظف الدعم",
    "جارٍ الإرسال…",
    "لم تُرسل",
    "اترك لنا رسالة",
    "لا يوجد أحد متاح الآن. اترك بياناتك وسنتواصل معك.",
    "الاسم",
    "البريد الإلكتروني",
    "رقم الهاتف",
    "الرسالة",
    "إرسال البيانات",
    "شكرًا لك! سنتواصل معك قريبًا.",
    "أدخل البريد الإلكتروني أو رقم الهاتف",
    "كيف كانت المحادثة؟",
    "تقييم {n} من ٥",
    "تعليق (اختياري)",
    "شكرًا على تقييمك!",
    "قبل أن نبدأ",
    "أخبرنا كيف نتواصل معك.",
    "ابدأ المحادثة",
    "انتهت المحادثة",
    "رسالة جديدة",
    "لا يوجد أحد متاح الآن",
    "اترك رسالة",
    "رسائل غير مقروءة: {n}",
    "الرسائل",
    "ليس الآن",
    "إرسال الرسالة",
    "إرسال التقييم",
    "غير متصل",
    "المحادثة غير متاحة في هذه الصفحة.",
    "الانتظار طويل؟ اترك بياناتك وسنتواصل معك.",
    "ابدأ محادثة جديدة",
    "{n} دقيقة|دقيقة واحدة|دقيقتين|{n} دقائق|{n} دقيقة|{n} دقيقة",
    "في انتظار موظف الدعم",
    "انضم {name} إلى المحادثة",
    "حُوّلت المحادثة إلى {name}",
    "حُوّلت المحادثة إلى فريق {name}",
    "عادت المحادثة إلى قائمة الانتظار",
    "أغلق {name} المحادثة",
    "أغلقتَ المحادثة",
    "أُغلقت المحادثة بعد {n} دون نشاط",
    "أُغلقت المحادثة: حُذفت بياناتك",
];

const FA: [&str; N_KEYS] = [
    "با ما گفتگو کنید",
    "باز کردن گفتگو",
    "بستن گفتگو",
    "پیامی بنویسید…",
    "ارسال",
    // The bot's rules (bot-rules/handoff.toml) know these words as a request for a person.
    "صحبت با پشتیبان",
    "در حال اتصال…",
    "متصل",
    "اتصال قطع شد، در حال تلاش دوباره…",
    "گفتگو در دسترس نیست",
    "نوبت شما در صف: {n}",
    "زمان انتظار حدودی: {n}",
    "{name} در حال نوشتن است…",
    "کسی در حال نوشتن است…",
    "شما",
    "دستیار",
    "پشتیبان",
    "در حال ارسال…",
    "ارسال نشد",
    "برای ما پیام بگذارید",
    "اکنون کسی در دسترس نیست. اطلاعات تماس خود را بگذارید تا با شما تماس بگیریم.",
    "نام",
    "ایمیل",
    "شماره تلفن",
    "پیام",
    "ارسال اطلاعات",
    "ممنون! به‌زودی با شما تماس می‌گیریم.",
    "لطفاً ایمیل یا شماره تلفن را وارد کنید",
    "گفتگو چطور بود؟",
    "امتیاز {n} از ۵",
    "نظر (اختیاری)",
    "از بازخورد شما سپاسگزاریم!",
    "پیش از شروع",
    "بگویید چطور با شما در تماس باشیم.",
    "شروع گفتگو",
    "گفتگو به پایان رسید",
    "پیام تازه",
    "اکنون کسی در دسترس نیست",
    "پیام بگذارید",
    "{n} پیام خوانده‌نشده",
    "پیام‌ها",
    "فعلاً نه",
    "ارسال پیام",
    "ثبت امتیاز",
    "آفلاین",
    "گفتگو در این صفحه در دسترس نیست.",
    "انتظار طولانی است؟ اطلاعات تماس خود را بگذارید.",
    "شروع گفتگوی تازه",
    "{n} دقیقه",
    "در انتظار پشتیبان",
    "{name} به گفتگو پیوست",
    "گفتگو به {name} منتقل شد",
    "گفتگو به تیم {name} منتقل شد",
    "گفتگو به صف برگشت",
    "{name} گفتگو را بست",
    "شما گفتگو را بستید",
    "گفتگو پس از {n} بی‌فعالیتی بسته شد",
    "گفتگو بسته شد: داده‌های شما پاک شد",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_translated_in_every_locale() {
        for (index, key) in ALL_KEYS.iter().enumerate() {
            assert_eq!(*key as usize, index, "ALL_KEYS is out of order at {key:?}");
            for locale in [Locale::En, Locale::Ar, Locale::Fa] {
                let text = locale.text(*key);
                assert!(!text.trim().is_empty(), "{key:?} is empty in {locale:?}");
                if locale != Locale::En {
                    assert_ne!(text, Locale::En.text(*key), "{key:?} untranslated");
                }
                // Placeholders survive translation (a plural form may spell the
                // number out: Arabic "رسالة واحدة").
                for placeholder in ["{n}", "{name}"] {
                    assert_eq!(
                        Locale::En.text(*key).contains(placeholder),
                        text.contains(placeholder),
                        "{key:?} in {locale:?} lost {placeholder}"
                    );
                }
                // A plural text has one form, or one per plural category.
                let forms = text.split('|').count();
                let categories = if locale == Locale::Ar { 6 } else { 2 };
                assert!(
                    forms == 1 || forms == categories,
                    "{key:?} in {locale:?} has {forms} plural forms"
                );
                // No Latin digit in Arabic or Persian text (they are filled in the
                // locale's digits).
                if locale != Locale::En {
                    assert!(
                        !text.chars().any(|c| c.is_ascii_digit()),
                        "{key:?} {locale:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn locale_choice_falls_through_unsupported_candidates() {
        let check = |data, site, nav, want| {
            assert_eq!(
                Locale::choose(data, site, nav),
                want,
                "{data:?} {site:?} {nav:?}"
            )
        };
        check(Some("ar"), Some("fa"), Some("en-US"), Locale::Ar);
        check(None, Some("fa"), Some("en-US"), Locale::Fa);
        check(None, None, Some("fa-IR"), Locale::Fa);
        check(Some("de"), None, Some("ar-EG"), Locale::Ar);
        check(Some(""), Some("xx"), Some("de-DE"), Locale::En);
        check(None, None, None, Locale::En);
        check(Some("AR_sa"), None, None, Locale::Ar);
    }

    #[test]
    fn direction_follows_the_script() {
        assert_eq!(Locale::Ar.dir(), "rtl");
        assert_eq!(Locale::Fa.dir(), "rtl");
        assert_eq!(Locale::En.dir(), "ltr");
        assert_eq!(
            Locale::Fa.text_n(Key::QueuePosition, 3),
            "نوبت شما در صف: ۳"
        );
        assert_eq!(Locale::Ar.text_name(Key::Typing, "سارا"), "سارا يكتب…");
        assert_eq!(Locale::En.text_name(Key::Title, "x"), "Chat with us");
    }

    #[test]
    fn plural_categories_follow_cldr() {
        let arabic: Vec<usize> = [0, 1, 2, 3, 10, 11, 99, 100, 101, 102, 103, 111, 1000]
            .map(|n| Locale::Ar.plural(n))
            .into();
        assert_eq!(arabic, [0, 1, 2, 3, 3, 4, 4, 5, 5, 5, 3, 4, 5]);
        assert_eq!([0, 1, 2, 5].map(|n| Locale::En.plural(n)), [1, 0, 1, 1]);
        assert_eq!([0, 1, 2, 5].map(|n| Locale::Fa.plural(n)), [0, 0, 1, 1]);
        // The example: ten minutes is "دقائق", not "دقيقة".
        assert_eq!(Locale::Ar.text_n(Key::Minutes, 10), "١٠ دقائق");
        assert_eq!(Locale::Ar.text_n(Key::Minutes, 11), "١١ دقيقة");
        assert_eq!(Locale::Ar.text_n(Key::Minutes, 2), "دقيقتين");
        assert_eq!(Locale::Ar.text_n(Key::Minutes, 1), "دقيقة واحدة");
        assert_eq!(Locale::Ar.text_n(Key::Minutes, 100), "١٠٠ دقيقة");
        assert_eq!(Locale::En.text_n(Key::Minutes, 1), "1 minute");
        assert_eq!(Locale::En.text_n(Key::Minutes, 5), "5 minutes");
        assert_eq!(Locale::Fa.text_n(Key::Minutes, 12), "۱۲ دقیقه");
        assert_eq!(Locale::En.text_n(Key::Unread, 1), "1 unread message");
        assert_eq!(Locale::Ar.text_n(Key::Unread, 12), "رسائل غير مقروءة: ١٢");
    }

    #[test]
    fn digits_are_one_numbering_per_language() {
        assert_eq!(
            Locale::Fa.digits("14:05 · 1234567890"),
            "۱۴:۰۵ · ۱۲۳۴۵۶۷۸۹۰"
        );
        assert_eq!(Locale::Ar.digits("14:05"), "١٤:٠٥");
        assert_eq!(Locale::En.digits("14:05"), "14:05");
        assert_eq!(Locale::Fa.text_n(Key::RateStar, 4), "امتیاز ۴ از ۵");
    }

    #[test]
    fn events_render_in_the_readers_language() {
        let params = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let sara = params(&[("agent", "Sara")]);
        assert_eq!(
            Locale::En.event("joined", &sara).as_deref(),
            Some("Sara joined the conversation")
        );
        assert_eq!(
            Locale::Ar.event("joined", &sara).as_deref(),
            Some("انضم Sara إلى المحادثة")
        );
        assert_eq!(
            Locale::Fa.event("closed_by_agent", &sara).as_deref(),
            Some("Sara گفتگو را بست")
        );
        assert_eq!(
            Locale::Ar
                .event(
                    "transferred_to_department",
                    &params(&[("department", "المبيعات")])
                )
                .as_deref(),
            Some("حُوّلت المحادثة إلى فريق المبيعات")
        );
        let ten = params(&[("minutes", "10")]);
        assert_eq!(
            Locale::Ar.event("closed_idle", &ten).as_deref(),
            Some("أُغلقت المحادثة بعد ١٠ دقائق دون نشاط")
        );
        assert_eq!(
            Locale::Fa.event("closed_idle", &ten).as_deref(),
            Some("گفتگو پس از ۱۰ دقیقه بی‌فعالیتی بسته شد")
        );
        assert_eq!(
            Locale::En
                .event("closed_idle", &params(&[("minutes", "1")]))
                .as_deref(),
            Some("closed after 1 minute without activity")
        );
        for code in ["queued", "requeued", "closed_by_visitor", "closed_erased"] {
            for locale in [Locale::En, Locale::Ar, Locale::Fa] {
                assert!(locale.event(code, &[]).is_some(), "{code} {locale:?}");
            }
        }
        // Unknown codes, and known ones missing a parameter, fall back to `text`.
        assert_eq!(Locale::Ar.event("snoozed", &sara), None);
        assert_eq!(Locale::Ar.event("joined", &[]), None);
        assert_eq!(
            Locale::Ar.event("closed_idle", &params(&[("minutes", "x")])),
            None
        );
    }
}
