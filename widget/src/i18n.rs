//! Every string the widget shows, in English, Arabic and Persian.
//!
//! One table per locale, indexed by [`Key`]; a test checks that every key has a
//! non-empty translation in every locale, so no string is left in English by mistake.
//! Placeholders are `{n}` (a number) and `{name}`.

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

    /// The translation of `key` with `{n}` replaced by `n`.
    pub fn text_n(self, key: Key, n: u64) -> String {
        fill(self.text(key), "{n}", &n.to_string())
    }

    /// The translation of `key` with `{name}` replaced by `name`.
    pub fn text_name(self, key: Key, name: &str) -> String {
        fill(self.text(key), "{name}", name)
    }
}

/// `template` with its first `placeholder` replaced by `value` (split at `{` rather
/// than `str::replace`, whose substring searcher costs ~2 KB of WASM).
fn fill(template: &str, placeholder: &str, value: &str) -> String {
    let found = template
        .char_indices()
        .find(|(index, c)| *c == '{' && template[*index..].starts_with(placeholder));
    match found {
        Some((index, _)) => {
            let mut out = String::with_capacity(template.len() + value.len());
            out.push_str(&template[..index]);
            out.push_str(value);
            out.push_str(&template[index + placeholder.len()..]);
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
}

/// How many keys there are (the length of every table).
pub const N_KEYS: usize = Key::Dismiss as usize + 1;

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
    "Expected wait: about {n} min",
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
    "Send",
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
    "{n} unread messages",
    "Messages",
    "Not now",
];

const AR: [&str; N_KEYS] = [
    "تحدث معنا",
    "افتح المحادثة",
    "أغلق المحادثة",
    "اكتب رسالة…",
    "إرسال",
    // The bot's rules (bot-rules/handoff.toml) know these words as a request for a person.
    "التحدث مع شخص",
    "جارٍ الاتصال…",
    "متصل",
    "انقطع الاتصال، جارٍ إعادة المحاولة…",
    "المحادثة غير متاحة",
    "ترتيبك في قائمة الانتظار: {n}",
    "مدة الانتظار المتوقعة: {n} دقيقة تقريبًا",
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
    "إرسال",
    "شكرًا لك! سنتواصل معك قريبًا.",
    "أدخل البريد الإلكتروني أو رقم الهاتف",
    "كيف كانت المحادثة؟",
    "تقييم {n} من 5",
    "تعليق (اختياري)",
    "شكرًا على تقييمك!",
    "قبل أن نبدأ",
    "أخبرنا كيف نتواصل معك.",
    "ابدأ المحادثة",
    "انتهت المحادثة",
    "رسالة جديدة",
    "لا يوجد أحد متاح الآن",
    "اترك رسالة",
    "{n} رسائل غير مقروءة",
    "الرسائل",
    "ليس الآن",
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
    "زمان انتظار حدودی: {n} دقیقه",
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
    "ارسال",
    "ممنون! به‌زودی با شما تماس می‌گیریم.",
    "لطفاً ایمیل یا شماره تلفن را وارد کنید",
    "گفتگو چطور بود؟",
    "امتیاز {n} از 5",
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
                // Placeholders survive translation.
                for placeholder in ["{n}", "{name}"] {
                    assert_eq!(
                        Locale::En.text(*key).contains(placeholder),
                        text.contains(placeholder),
                        "{key:?} in {locale:?} lost {placeholder}"
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
            "نوبت شما در صف: 3"
        );
        assert_eq!(Locale::Ar.text_name(Key::Typing, "سارا"), "سارا يكتب…");
        assert_eq!(Locale::En.text_name(Key::Title, "x"), "Chat with us");
    }
}
