//! The hub's mails in English, Arabic and Persian, each as plain text and HTML.
//!
//! The language follows the reader (the visitor's locale, or the agent's); Arabic and
//! Persian HTML is `dir="rtl"` with its `lang`. Every text that came from a person
//! (messages, names, the site's name) is escaped in the HTML.

use salam_bot::Lang;

/// A rendered mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// `en`, `ar` or `fa` (the `Content-Language`).
    pub lang: &'static str,
}

/// One line of a conversation in a mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub author: String,
    pub text: String,
}

/// A missed chat in the agents' notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missed {
    pub visitor: String,
    pub preview: String,
}

/// The language of a locale such as `ar-EG` (English unless Arabic or Persian).
pub fn lang_of(locale: Option<&str>) -> Lang {
    let locale = locale.unwrap_or("").to_ascii_lowercase();
    if locale.starts_with("ar") {
        Lang::Ar
    } else if locale.starts_with("fa") || locale.starts_with("per") {
        Lang::Fa
    } else {
        Lang::En
    }
}

fn code(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "en",
        Lang::Ar => "ar",
        Lang::Fa => "fa",
    }
}

/// Escapes text for HTML (element content and quoted attributes).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The words of one language.
struct Words {
    reply_subject: &'static str,
    reply_intro: &'static str,
    unseen_subject: &'static str,
    unseen_intro: &'static str,
    transcript_subject: &'static str,
    transcript_intro: &'static str,
    missed_subject: &'static str,
    missed_intro: &'static str,
    answer_hint: &'static str,
    automatic: &'static str,
}

fn words(lang: Lang) -> Words {
    match lang {
        Lang::En => Words {
            reply_subject: "Your message to",
            reply_intro: "You have an answer to your message.",
            unseen_subject: "New replies from",
            unseen_intro: "You left before you could read these replies.",
            transcript_subject: "Your conversation with",
            transcript_intro: "Here is the transcript of your conversation.",
            missed_subject: "Missed chats on",
            missed_intro: "These visitors waited and nobody answered:",
            answer_hint: "Reply to this e-mail to answer; your reply goes to the same conversation.",
            automatic: "This message was sent automatically.",
        },
        Lang::Ar => Words {
            reply_subject: "رسالتك إلى",
            reply_intro: "وصلك رد على رسالتك.",
            unseen_subject: "ردود جديدة من",
            unseen_intro: "غادرت قبل أن تقرأ هذه الردود.",
            transcript_subject: "محادثتك مع",
            transcript_intro: "إليك نص محادثتك.",
            missed_subject: "محادثات فائتة في",
            missed_intro: "انتظر هؤلاء الزوار ولم يرد عليهم أحد:",
            answer_hint: "للرد، أجب على هذه الرسالة؛ يصل ردك إلى المحادثة نفسها.",
            automatic: "أُرسلت هذه الرسالة تلقائياً.",
        },
        Lang::Fa => Words {
            reply_subject: "پیام شما به",
            reply_intro: "به پیام شما پاسخ داده شد.",
            unseen_subject: "پاسخ‌های تازه از",
            unseen_intro: "پیش از خواندن این پاسخ‌ها رفته بودید.",
            transcript_subject: "گفتگوی شما با",
            transcript_intro: "متن گفتگوی شما اینجاست.",
            missed_subject: "گفتگوهای از دست رفته در",
            missed_intro: "این بازدیدکنندگان منتظر ماندند و کسی پاسخ نداد:",
            answer_hint: "برای پاسخ، به همین ایمیل جواب دهید؛ پاسخ شما به همان گفتگو می‌رسد.",
            automatic: "این پیام خودکار فرستاده شده است.",
        },
    }
}

fn page(lang: Lang, title: &str, body: &str) -> String {
    let dir = match lang {
        Lang::En => "ltr",
        Lang::Ar | Lang::Fa => "rtl",
    };
    let align = if dir == "rtl" { "right" } else { "left" };
    format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\" dir=\"{dir}\">\n<head><meta charset=\"utf-8\">\
         <title>{title}</title></head>\n<body style=\"font-family:sans-serif;text-align:{align}\">\n\
         {body}</body>\n</html>\n",
        lang = code(lang),
        title = escape(title),
    )
}

fn lines_text(lines: &[Line]) -> String {
    lines
        .iter()
        .map(|line| format!("{}:\n{}\n", line.author, line.text))
        .collect::<Vec<_>>()
        .join("\n")
}

fn lines_html(lines: &[Line]) -> String {
    lines
        .iter()
        .map(|line| {
            format!(
                "<p><strong>{}</strong><br>\n{}</p>\n",
                escape(&line.author),
                escape(&line.text).replace('\n', "<br>\n")
            )
        })
        .collect()
}

fn conversation_mail(
    lang: Lang,
    subject: String,
    intro: &str,
    lines: &[Line],
    hint: &str,
) -> Rendered {
    let text = format!("{intro}\n\n{}\n--\n{hint}\n", lines_text(lines));
    let html = page(
        lang,
        &subject,
        &format!(
            "<p>{}</p>\n{}<hr>\n<p><small>{}</small></p>\n",
            escape(intro),
            lines_html(lines),
            escape(hint)
        ),
    );
    Rendered {
        subject,
        text,
        html,
        lang: code(lang),
    }
}

/// (a) An agent's answer to an offline request, a callback or an e-mail conversation.
pub fn agent_reply(lang: Lang, site: &str, lines: &[Line]) -> Rendered {
    let w = words(lang);
    conversation_mail(
        lang,
        format!("{} {site}", w.reply_subject),
        w.reply_intro,
        lines,
        w.answer_hint,
    )
}

/// (d) The agent replies a visitor left before seeing, in one mail.
pub fn unseen_replies(lang: Lang, site: &str, lines: &[Line]) -> Rendered {
    let w = words(lang);
    conversation_mail(
        lang,
        format!("{} {site}", w.unseen_subject),
        w.unseen_intro,
        lines,
        w.answer_hint,
    )
}

/// (b) The transcript of a conversation.
pub fn transcript(lang: Lang, site: &str, lines: &[Line]) -> Rendered {
    let w = words(lang);
    conversation_mail(
        lang,
        format!("{} {site}", w.transcript_subject),
        w.transcript_intro,
        lines,
        w.automatic,
    )
}

/// (c) Agents told of missed chats.
pub fn missed_chats(lang: Lang, site: &str, missed: &[Missed]) -> Rendered {
    let w = words(lang);
    let subject = format!("{} {site}", w.missed_subject);
    let text = format!(
        "{}\n\n{}\n--\n{}\n",
        w.missed_intro,
        missed
            .iter()
            .map(|item| format!("- {}: {}", item.visitor, item.preview))
            .collect::<Vec<_>>()
            .join("\n"),
        w.automatic
    );
    let items: String = missed
        .iter()
        .map(|item| {
            format!(
                "<li><strong>{}</strong>: {}</li>\n",
                escape(&item.visitor),
                escape(&item.preview)
            )
        })
        .collect();
    let html = page(
        lang,
        &subject,
        &format!(
            "<p>{}</p>\n<ul>\n{items}</ul>\n<hr>\n<p><small>{}</small></p>\n",
            escape(w.missed_intro),
            escape(w.automatic)
        ),
    );
    Rendered {
        subject,
        text,
        html,
        lang: code(lang),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_is_escaped_and_rtl_languages_say_so() {
        let lines = [Line {
            author: "<b>Eve</b>".into(),
            text: "<script>alert(1)</script> & \"x\"".into(),
        }];
        let mail = agent_reply(Lang::Ar, "Shop <1>", &lines);
        assert!(mail.html.contains("<html lang=\"ar\" dir=\"rtl\">"));
        assert!(!mail.html.contains("<script>"));
        assert!(
            mail.html
                .contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot;")
        );
        assert!(mail.html.contains("&lt;b&gt;Eve&lt;/b&gt;"));
        assert!(
            mail.text.contains("<script>alert(1)</script>"),
            "plain text stays as written"
        );
        assert_eq!(mail.lang, "ar");
        let persian = transcript(Lang::Fa, "Shop", &lines);
        assert!(persian.html.contains("lang=\"fa\" dir=\"rtl\""));
        let english = missed_chats(
            Lang::En,
            "Shop",
            &[Missed {
                visitor: "a<b".into(),
                preview: "hi".into(),
            }],
        );
        assert!(english.html.contains("lang=\"en\" dir=\"ltr\""));
        assert!(english.html.contains("a&lt;b"));
    }

    #[test]
    fn locales_choose_the_language() {
        assert_eq!(lang_of(Some("ar-EG")), Lang::Ar);
        assert_eq!(lang_of(Some("fa")), Lang::Fa);
        assert_eq!(lang_of(Some("de")), Lang::En);
        assert_eq!(lang_of(None), Lang::En);
    }
}
