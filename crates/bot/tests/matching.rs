use salam_bot::{Decision, HandoffReason, Lang, TriageInput};

use crate::util::pack;

const SMALL_PACK: &str = r#"
[settings]
max_misses = 3

[[rule]]
id = "greeting"
intent = "greeting"
background = true
label = { en = "Hello", ar = "مرحبا", fa = "سلام" }
answer = { en = "Hello!", ar = "مرحبا!", fa = "سلام!" }
match.en = ["hi", "=hey"]

[[rule]]
id = "shipping"
intent = "shipping_time"
label = { en = "Shipping time", ar = "مدة الشحن", fa = "زمان ارسال" }
answer = { en = "3-5 days", ar = "3-5 أيام", fa = "۳ تا ۵ روز" }
follow_ups = ["orders"]
match.en = ["ship*", "delivery time"]
match.ar = ["شحن"]
match.fa = ["ارسال"]

[[rule]]
id = "orders"
intent = "orders"
label = { en = "My order", ar = "طلبي", fa = "سفارش من" }
answer = { en = "See My orders", ar = "انظر طلباتي", fa = "سفارش‌های من" }
match.en = ["order"]
match.ar = ["طلب"]
match.fa = ["سفارش"]
hint.en = ["package"]
all.en = [["where|status", "parcel|box"]]

[[rule]]
id = "human"
intent = "human_agent"
action = "handoff"
label = { en = "A person", ar = "موظف", fa = "اپراتور" }
match.en = ["human", "a person", "talk to a person"]
match.ar = ["موظف"]
match.fa = ["اپراتور", "صحبت با پشتیبان"]

[[rule]]
id = "angry"
intent = "complaint"
action = "handoff"
priority = 10
label = { en = "Complaint", ar = "شكوى", fa = "شکایت" }
match.en = ["complaint", "angry"]
match.ar = ["شكوى"]
match.fa = ["شکایت"]
"#;

fn triage(text: &str, lang: Option<Lang>) -> Decision {
    pack(SMALL_PACK).triage(&TriageInput::new(text, lang))
}

#[track_caller]
fn check(text: &str, expected_intent: &str) {
    let decision = triage(text, Some(Lang::En));
    assert_eq!(
        decision.predicted_intent(),
        expected_intent,
        "{text:?} -> {decision:?}"
    );
}

#[test]
fn short_keywords_respect_word_boundaries() {
    check("hi", "greeting");
    check("hi!", "greeting");
    check("this", "none");
    check("shipping", "shipping_time");
    check("chips", "none");
    check("hey", "greeting");
    // `=hey` takes no plural suffix; `hi` is too short for affixes.
    check("heys", "none");
    check("his", "none");
}

#[test]
fn stems_and_affixes() {
    check("when do you ship", "shipping_time");
    check("is it shipped", "shipping_time");
    check("shipment", "shipping_time");
    let ar = |text: &str| triage(text, Some(Lang::Ar)).predicted_intent().to_string();
    // Clitic prefixes (و، ب، ال …) and pronoun suffixes on Arabic words.
    assert_eq!(ar("وطلبي"), "orders");
    assert_eq!(ar("الشحن"), "shipping_time");
    assert_eq!(ar("بالشحن"), "shipping_time");
    let fa = |text: &str| triage(text, Some(Lang::Fa)).predicted_intent().to_string();
    assert_eq!(fa("سفارشم"), "orders");
    assert_eq!(fa("سفارش‌هام"), "orders");
    // Persian text typed with Arabic letters and digits.
    assert_eq!(fa("ارسال سفارش ۴۲"), "clarify");
}

#[test]
fn hints_and_combinations() {
    // A hint alone is not enough.
    check("package", "none");
    check("package for my order", "orders");
    check("where is the parcel", "orders");
    check("parcel", "none");
}

#[test]
fn small_talk_gives_way() {
    check("hi, what is the delivery time?", "shipping_time");
}

#[test]
fn close_intents_clarify_with_both_as_options() {
    let decision = triage("shipping of my order", Some(Lang::En));
    let Decision::Clarify {
        options,
        candidates,
        ..
    } = &decision
    else {
        panic!("expected clarify, got {decision:?}");
    };
    let intents: Vec<&str> = candidates
        .iter()
        .map(|(intent, _)| intent.as_str())
        .collect();
    assert!(
        intents.contains(&"shipping_time") && intents.contains(&"orders"),
        "{candidates:?}"
    );
    assert_eq!(options.len(), 3, "two intents and talk to a person");
    for option in &options[..2] {
        let followed = triage(&option.payload, Some(Lang::En));
        assert_eq!(followed.kind(), "answer", "{option:?}");
    }
}

#[test]
fn handoffs_win_and_complaints_first() {
    let decision = triage("I want a human about shipping my order", Some(Lang::En));
    assert_eq!(decision.kind(), "handoff");
    let decision = triage("angry! I want a human", Some(Lang::En));
    match decision {
        Decision::Handoff {
            reason,
            priority,
            intent,
            ..
        } => {
            assert_eq!(reason, HandoffReason::Complaint);
            assert_eq!(priority, 10);
            assert_eq!(intent, "complaint");
        }
        other => panic!("expected handoff, got {other:?}"),
    }
    let Decision::Handoff { reason, text, .. } = triage("human", Some(Lang::Ar)) else {
        panic!("expected handoff");
    };
    assert_eq!(reason, HandoffReason::Requested);
    assert!(!text.is_empty());
}

#[test]
fn misses_lead_to_a_person() {
    let rules = pack(SMALL_PACK);
    let input = |misses| TriageInput {
        text: "tell me a joke",
        locale: Some(Lang::En),
        consecutive_misses: misses,
    };
    assert_eq!(rules.triage(&input(0)).kind(), "fallback");
    assert_eq!(rules.triage(&input(1)).kind(), "fallback");
    match rules.triage(&input(2)) {
        Decision::Handoff {
            reason, rule_id, ..
        } => {
            assert_eq!(reason, HandoffReason::Misses);
            assert_eq!(rule_id, None);
        }
        other => panic!("expected handoff after misses, got {other:?}"),
    }
    // An answer is never turned into a handoff.
    let answer = rules.triage(&TriageInput {
        text: "delivery time",
        locale: Some(Lang::En),
        consecutive_misses: 10,
    });
    assert_eq!(answer.kind(), "answer");
}

#[test]
fn answers_and_fallbacks_offer_a_person() {
    let rules = pack(SMALL_PACK);
    for lang in Lang::ALL {
        for text in ["delivery time", "qwerty"] {
            let decision = rules.triage(&TriageInput::new(text, Some(lang)));
            let replies = match &decision {
                Decision::Answer { quick_replies, .. }
                | Decision::Fallback { quick_replies, .. } => quick_replies,
                other => panic!("unexpected {other:?}"),
            };
            let person = replies.last().expect("a quick reply");
            assert_eq!(person.label, rules.phrases(lang).talk_to_person);
            let followed = rules.triage(&TriageInput::new(&person.payload, Some(lang)));
            assert_eq!(
                followed.kind(),
                "handoff",
                "{lang}: {person:?} -> {followed:?}"
            );
        }
    }
}

#[test]
fn language_of_the_reply() {
    // Locale wins; without it the text decides; without letters, English.
    assert_eq!(triage("delivery time", Some(Lang::Fa)).lang(), Lang::Fa);
    assert_eq!(triage("الشحن", None).lang(), Lang::Ar);
    assert_eq!(triage("ارسال چقدر طول می‌کشه", None).lang(), Lang::Fa);
    assert_eq!(triage("👍", None).lang(), Lang::En);
    let Decision::Answer {
        text,
        quick_replies,
        ..
    } = triage("delivery time", Some(Lang::Ar))
    else {
        panic!("expected answer");
    };
    assert_eq!(text, "3-5 أيام");
    assert_eq!(
        quick_replies[0].label, "طلبي",
        "follow-up label in the reply language"
    );
}

#[test]
fn decision_accessors() {
    let decision = triage("delivery time", Some(Lang::En));
    assert_eq!(decision.kind(), "answer");
    assert_eq!(decision.predicted_intent(), "shipping_time");
    assert_eq!(decision.rule_id(), Some("shipping"));
    assert!(decision.score() >= 1.0);
    let fallback = triage("nothing", Some(Lang::En));
    assert_eq!(
        (fallback.kind(), fallback.predicted_intent()),
        ("fallback", "none")
    );
    assert!(fallback.is_miss());
    for (reason, text) in [
        (HandoffReason::Requested, "requested"),
        (HandoffReason::Complaint, "complaint"),
        (HandoffReason::Misses, "misses"),
        (HandoffReason::RuleAction, "rule_action"),
    ] {
        assert_eq!(reason.as_str(), text);
    }
}

#[test]
fn rule_set_is_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<salam_bot::RuleSet>();
    let rules = pack(SMALL_PACK);
    assert_eq!(rules.rules().len(), 5);
    assert_eq!(rules.settings().max_misses, 3);
    assert!(
        rules
            .phrases(Lang::Fa)
            .offline_text("فردا")
            .contains("فردا")
    );
}

#[test]
fn final_heh_before_a_suffix() {
    let rules = pack(
        r#"
[[rule]]
id = "parcel"
intent = "order_tracking"
label = { en = "Parcel", ar = "شحنة", fa = "بسته" }
answer = { en = "Tracking.", ar = "التتبع.", fa = "رهگیری." }
match.ar = ["شحنه"]
match.fa = ["بسته"]
match.any = ["طلبيه"]

[[rule]]
id = "hours"
intent = "opening_hours"
label = { en = "Hours", ar = "الساعات", fa = "ساعت" }
answer = { en = "9-5.", ar = "9-5.", fa = "۹ تا ۵." }
match.fa = ["بازه"]
"#,
    );
    let intent = |text: &str, lang: Lang| {
        rules
            .triage(&TriageInput::new(text, Some(lang)))
            .predicted_intent()
            .to_string()
    };
    // Arabic: ة is written ت before a pronoun suffix.
    assert_eq!(intent("وين شحنتي", Lang::Ar), "order_tracking");
    assert_eq!(intent("شحنتكم", Lang::Ar), "order_tracking");
    assert_eq!(intent("طلبيتي وصلت؟", Lang::Ar), "order_tracking");
    // … and only then: a bare `شحنت` is another word.
    assert_eq!(intent("شحنت", Lang::Ar), "none");
    // Colloquial Persian drops the ه before a clitic: بسته‌ام → بستم.
    assert_eq!(intent("بستم کجاست", Lang::Fa), "order_tracking");
    assert_eq!(intent("بستتون", Lang::Fa), "order_tracking");
    assert_eq!(intent("بستمو پیدا کنید", Lang::Fa), "order_tracking");
    assert_eq!(intent("بست", Lang::Fa), "none");
    // Each form in its own language: a Persian pattern takes no ت.
    assert_eq!(intent("بستتي", Lang::Ar), "none");
    // A verb keeps its ه: `بازم` is "again", not "is open".
    assert_eq!(intent("بازه", Lang::Fa), "opening_hours");
    assert_eq!(intent("بازم", Lang::Fa), "none");
}
