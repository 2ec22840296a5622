//! Typo tolerance, the built-in signals, the second stage over the examples, context
//! (repeated questions, follow-ups) and per-pack identity, on small packs.

use salam_bot::{
    Decision, HandoffReason, Identity, Lang, PhraseKey, RuleFile, RuleSet, TriageContext,
    TriageInput, Via,
};

use crate::util::pack;

/// Handoff rules, an answer rule per topic, and examples for the second stage that the
/// patterns do not reach.
const PACK: &str = r#"
[[rule]]
id = "greeting"
intent = "greeting"
background = true
label = { en = "Hello", ar = "مرحبا", fa = "سلام" }
answer = { en = "Hello!", ar = "مرحبا!", fa = "سلام!" }
match.en = ["=hi", "hello"]
match.ar = ["مرحبا"]
match.fa = ["سلام"]

[[rule]]
id = "thanks"
intent = "thanks_bye"
background = true
label = { en = "Thanks", ar = "شكرا", fa = "ممنون" }
answer = { en = "You're welcome!", ar = "العفو!", fa = "خواهش می‌کنم!" }
match.en = ["thank*"]
match.ar = ["شكرا"]
match.fa = ["ممنون"]

[[rule]]
id = "returns"
intent = "return_policy"
label = { en = "Returns", ar = "الإرجاع", fa = "مرجوعی" }
answer = { en = "30 days.", ar = "30 يومًا.", fa = "۳۰ روز." }
match.en = ["return policy", "send it back"]
match.ar = ["ارجاع"]
match.fa = ["مرجوعی"]
examples.en = ["can I give back a jacket that is too small", "I would like to give back these jeans"]

[[rule]]
id = "tracking"
intent = "order_tracking"
label = { en = "Track my order", ar = "تتبع طلبي", fa = "پیگیری سفارش" }
answer = { en = "See My orders.", ar = "انظر طلباتي.", fa = "سفارش‌های من." }
match.en = ["where is my order", "tracking"]
match.ar = ["وين طلبي"]
match.fa = ["سفارشم کجاست"]
examples.en = ["my parcel has still not come", "has my parcel left the warehouse yet"]

[[rule]]
id = "shipping_time"
intent = "shipping_time"
label = { en = "Delivery time", ar = "مدة التوصيل", fa = "زمان ارسال" }
answer = { en = "3-5 days.", ar = "3-5 أيام.", fa = "۳ تا ۵ روز." }
match.en = ["delivery time", "express delivery"]
all.en = [["how long|when", "deliver*|arrive"]]
match.ar = ["مده التوصيل"]
match.fa = ["زمان ارسال"]
not.en = ["how much", "cost"]

[[rule]]
id = "shipping_cost"
intent = "shipping_cost"
label = { en = "Delivery fees", ar = "رسوم التوصيل", fa = "هزینه ارسال" }
answer = { en = "5 USD.", ar = "5 دولارات.", fa = "۵ دلار." }
match.en = ["delivery fee"]
all.en = [["how much|cost|price", "delivery|shipping"]]
all.ar = [["بكم|كم سعر|رسوم", "التوصيل|الشحن"]]
all.fa = [["هزینه|چقدر", "ارسال|پست"]]
not.en = ["how long"]

[[rule]]
id = "warranty"
intent = "warranty_repair"
label = { en = "Warranty", ar = "الضمان", fa = "گارانتی" }
answer = { en = "Two years.", ar = "سنتان.", fa = "دو سال." }
match.en = ["warranty"]
match.ar = ["ضمان"]
match.fa = ["گارانتی"]

[[rule]]
id = "human"
intent = "human_agent"
action = "handoff"
department = "support"
label = { en = "Talk to a person", ar = "التحدث مع موظف", fa = "صحبت با پشتیبان" }
match.en = ["talk to a person"]
match.ar = ["التحدث مع موظف"]
match.fa = ["صحبت با پشتیبان"]

[[rule]]
id = "complaint"
intent = "complaint"
action = "handoff"
department = "care"
priority = 10
label = { en = "Complaint", ar = "شكوى", fa = "شکایت" }
match.en = ["complaint"]
match.ar = ["شكوي"]
match.fa = ["شکایت"]
"#;

fn rules() -> RuleSet {
    pack(PACK)
}

fn triage(rules: &RuleSet, text: &str, lang: Lang) -> Decision {
    rules.triage(&TriageInput::new(text, Some(lang)))
}

#[track_caller]
fn check(rules: &RuleSet, lang: Lang, text: &str, intent: &str, via: Option<Via>) {
    let decision = triage(rules, text, lang);
    assert_eq!(
        decision.predicted_intent(),
        intent,
        "{text:?} -> {decision:?}"
    );
    assert_eq!(decision.via(), via, "{text:?} -> {decision:?}");
}

#[test]
fn typos_are_corrected_towards_the_packs_words() {
    let rules = rules();
    check(
        &rules,
        Lang::En,
        "retrn polcy?",
        "return_policy",
        Some(Via::Spelling),
    );
    check(
        &rules,
        Lang::En,
        "whre is my ordr",
        "order_tracking",
        Some(Via::Spelling),
    );
    // A run of three letters collapses (`warrranty` → `waranty`), then the speller.
    check(
        &rules,
        Lang::En,
        "warrranty",
        "warranty_repair",
        Some(Via::Spelling),
    );
    check(
        &rules,
        Lang::En,
        "waranty",
        "warranty_repair",
        Some(Via::Spelling),
    );
    check(
        &rules,
        Lang::En,
        "how long is delivry",
        "shipping_time",
        Some(Via::Spelling),
    );
    // Chat spellings.
    check(
        &rules,
        Lang::En,
        "wen will it arrive",
        "shipping_time",
        Some(Via::Spelling),
    );
    // Real words near a pack word stay what they are; short words are not touched.
    check(&rules, Lang::En, "tracing paper", "none", None);
    check(&rules, Lang::En, "whee", "none", None);
    // Arabic: ظ typed for ض, with a clitic. Persian on an Arabic keyboard (no گ, and ي
    // ك for ی ک): ك typed for گ. On a Persian keyboard ک was meant.
    check(
        &rules,
        Lang::Ar,
        "كم مدة الظمان",
        "warranty_repair",
        Some(Via::Spelling),
    );
    check(
        &rules,
        Lang::Fa,
        "كارانتي داره؟",
        "warranty_repair",
        Some(Via::Spelling),
    );
    check(&rules, Lang::Fa, "کارانتی داره؟", "none", None);
}

#[test]
fn short_words_and_dialect_words() {
    let rules = rules();
    // Three letters: the one missing letter is restored when a single pack word fits.
    check(
        &rules,
        Lang::En,
        "delivry tme?",
        "shipping_time",
        Some(Via::Spelling),
    );
    // Real three-letter words and abbreviations stay.
    check(&rules, Lang::En, "the usd", "none", None);
    // Maghrebi `شحال` ("how much"), behind the clitic `ب`, is the pack's `كم`; Persian
    // `چقد` is `چقدر`.
    check(
        &rules,
        Lang::Ar,
        "بشحال التوصيل؟",
        "shipping_cost",
        Some(Via::Spelling),
    );
    check(
        &rules,
        Lang::Fa,
        "ارسال چقد میشه",
        "shipping_cost",
        Some(Via::Spelling),
    );
    assert_eq!(
        rules
            .spelling_correction("بشحال التوصيل؟", Some(Lang::Ar))
            .as_deref(),
        Some("بكم التوصيل")
    );
    // Dialect folding is part of spelling.
    let off = pack(&format!("[settings]\nspelling = false\n{PACK}"));
    check(&off, Lang::Ar, "بشحال التوصيل؟", "none", None);
}

#[test]
fn spelling_can_be_turned_off() {
    let rules = pack(&format!("[settings]\nspelling = false\n{PACK}"));
    check(&rules, Lang::En, "waranty", "none", None);
}

#[test]
fn second_stage_answers_from_examples_with_a_clear_margin() {
    let rules = rules();
    // No pattern matches; the sentence is close to the examples of one rule.
    check(
        &rules,
        Lang::En,
        "can i give back a jacket that's too big",
        "return_policy",
        Some(Via::Examples),
    );
    check(
        &rules,
        Lang::En,
        "my parcel has not come",
        "order_tracking",
        Some(Via::Examples),
    );
    // Far from every example: a fallback.
    check(&rules, Lang::En, "write me a poem about cats", "none", None);
    let Decision::Answer { score, .. } = triage(&rules, "my parcel has not come", Lang::En) else {
        panic!("expected an answer");
    };
    assert!(
        (0.5..1.0).contains(&score),
        "the score is the similarity: {score}"
    );
}

#[test]
fn second_stage_clarifies_when_the_top_two_are_close() {
    let rules = rules();
    // About as close to an example of returns as to one of tracking.
    let text = "I would like to give back jeans, my parcel has still not come";
    let close = triage(&rules, text, Lang::En);
    let Decision::Clarify {
        candidates, via, ..
    } = &close
    else {
        panic!("expected clarify for {text:?}, got {close:?}");
    };
    assert_eq!(*via, Via::Examples);
    let intents: Vec<&str> = candidates
        .iter()
        .map(|(intent, _)| intent.as_str())
        .collect();
    assert!(
        intents.contains(&"return_policy") && intents.contains(&"order_tracking"),
        "{candidates:?}"
    );
    assert!(close.is_miss());
}

#[test]
fn second_stage_can_be_turned_off() {
    let rules = pack(&format!("[settings]\nsimilarity_threshold = 0.0\n{PACK}"));
    check(&rules, Lang::En, "my parcel has not come", "none", None);
}

#[test]
fn an_example_is_not_its_own_nearest_example() {
    // Reached by its sibling: passes. Alone and unlike anything: fails.
    let good = "[[rule]]\nid = \"r\"\nintent = \"r\"\nlabel = { en = \"Topic\", ar = \"موضوع\", fa = \"موضوع\" }\n\
                answer = { en = \"A\", ar = \"ج\", fa = \"پ\" }\nmatch.any = [\"topic\", \"موضوع\"]\n\
                examples.en = [\"my parcel has still not come\", \"my parcel has still not come yet\"]\n";
    assert!(RuleSet::check(&[RuleFile::new("good.toml", good)]).is_empty());
    let lonely = good.replace(
        "\"my parcel has still not come yet\"",
        "\"the sky is blue\"",
    );
    let errors = RuleSet::check(&[RuleFile::new("lonely.toml", lonely.as_str())]);
    assert!(
        errors
            .iter()
            .any(|error| error.reason.contains("the sky is blue")),
        "{errors:?}"
    );
}

#[track_caller]
fn check_handoff(rules: &RuleSet, lang: Lang, text: &str, reason: HandoffReason) {
    let decision = triage(rules, text, lang);
    match &decision {
        Decision::Handoff {
            reason: actual,
            via,
            ..
        } => {
            assert_eq!(*actual, reason, "{text:?} -> {decision:?}");
            assert_eq!(*via, Via::Signals, "{text:?} -> {decision:?}");
        }
        other => panic!("{text:?} ({lang}) should hand off, got {other:?}"),
    }
}

#[test]
fn frustration_lexicons_hand_off_in_every_language() {
    let rules = rules();
    use HandoffReason::Complaint;
    for (lang, text) in [
        // Anger, disappointment, overcharging, threats to leave.
        (Lang::En, "I'm so disappointed with you people"),
        (Lang::En, "you overcharged me"),
        (Lang::En, "this is ridiculous"),
        (Lang::En, "i'll take my business elsewhere"),
        (Lang::Ar, "انا متضايق جدا من تعاملكم"),
        (Lang::Ar, "خيبتوا ظني"),
        (Lang::Ar, "خصمتوا مني مبلغ زيادة"),
        (Lang::Ar, "ما راح اشتري منكم مرة ثانية"),
        // Gulf, Egyptian and Levantine.
        (Lang::Ar, "والله طفشت منكم"),
        (Lang::Ar, "محدش بيرد خالص"),
        (Lang::Ar, "ما حدا يرد علي"),
        (Lang::Fa, "واقعا از برخوردتون دلخورم"),
        (Lang::Fa, "خیلی ازتون ناامید شدم"),
        (Lang::Fa, "پول اضافه ازم کم کردید"),
        (Lang::Fa, "دیگه ازتون خرید نمیکنم"),
    ] {
        check_handoff(&rules, lang, text, Complaint);
    }
}

#[test]
fn third_round_lexicons_hand_off_in_dialects() {
    let rules = rules();
    use HandoffReason::{Complaint, Requested};
    for (lang, text, reason) in [
        (Lang::En, "your customer service sucks", Complaint),
        (Lang::En, "why does nobody answer me", Complaint),
        (Lang::En, "i will never shop with you again", Complaint),
        (Lang::Ar, "خدمتكم زبالة", Complaint),
        (Lang::Ar, "ليش محد يرد علي", Complaint),
        (Lang::Ar, "ما عاد بشتري منكم", Complaint),
        (Lang::Ar, "ما بقيتش نشري منكم", Complaint),
        (Lang::Fa, "حالم ازتون بهم میخوره", Complaint),
        (Lang::Fa, "اعصابمو خورد کردین", Complaint),
        (Lang::Fa, "چرا هیچکی جواب نمیده", Complaint),
        (Lang::Ar, "وصلني بالدعم الفني", Requested),
        (Lang::En, "i don't want to talk to a machine", Requested),
        (
            Lang::Fa,
            "با کی میتونم صحبت کنم که مشکلمو حل کنه",
            Requested,
        ),
    ] {
        check_handoff(&rules, lang, text, reason);
    }
}

#[test]
fn fourth_round_lexicons_hand_off_in_dialects() {
    let rules = rules();
    use HandoffReason::{Complaint, Requested};
    for (lang, text, reason) in [
        (Lang::En, "i got billed 2x", Complaint),
        (Lang::En, "cheers for nothing", Complaint),
        (Lang::En, "im gonna post about this on twitter", Complaint),
        (Lang::En, "its been a month. a MONTH.", Complaint),
        (Lang::Ar, "غادي نكتب عليكم فالفيسبوك", Complaint),
        (Lang::Ar, "شكرا على التأخير الرائع", Complaint),
        (Lang::Ar, "ما عندكم ذمة", Complaint),
        (Lang::Ar, "خدمة تحفة بجد، اسبوعين ومفيش رد", Complaint),
        (Lang::Fa, "دوبار پول دو برابر ازم گرفتین", Complaint),
        (Lang::Fa, "دارم دیوونه میشم از دستتون", Complaint),
        (Lang::Ar, "عيط ليا شي واحد من الخدمة", Requested),
        (Lang::Ar, "واش كاين شي بنادم يجاوبني", Requested),
        (Lang::Fa, "میخوام زنگ بزنید بهم", Requested),
        (Lang::En, "im not talking to a computer", Requested),
    ] {
        check_handoff(&rules, lang, text, reason);
    }
}

#[test]
fn wanting_one_is_not_wanting_someone() {
    // `واحد` ("one") is `و` + `احد` ("someone"): the person lexicon must not hear it.
    let rules = rules();
    for text in ["ابغى واحد احمر", "بدي واحد بس"] {
        let decision = triage(&rules, text, Lang::Ar);
        assert!(
            !matches!(decision, Decision::Handoff { .. }),
            "{text:?} -> {decision:?}"
        );
    }
    check_handoff(&rules, Lang::Ar, "ابغى اكلم احد", HandoffReason::Requested);
}

#[test]
fn a_complaint_rule_outranks_a_stronger_request_for_a_person() {
    // The request for a person scores far higher (its rule and the person signal), but
    // between handoff rules the priority decides: the complaint jumps the queue.
    let rules = rules();
    let text = "let me talk to a person, a real human being, I have a complaint";
    match triage(&rules, text, Lang::En) {
        Decision::Handoff { reason, .. } => {
            assert_eq!(reason, HandoffReason::Complaint, "{text:?}");
        }
        other => panic!("{text:?} should hand off, got {other:?}"),
    }
}

#[test]
fn a_frustration_hint_hands_off_only_what_nothing_answers() {
    let rules = rules();
    // One hint (0.5) on a message that no rule answers: hand off rather than fall back.
    check_handoff(
        &rules,
        Lang::En,
        "ugh, what is going on",
        HandoffReason::Complaint,
    );
    // The same hint beside a topic: the topic answers.
    check(
        &rules,
        Lang::En,
        "ugh, what is your return policy",
        "return_policy",
        Some(Via::Rules),
    );
    // A person hint alone (`bot`) is small talk, not a request.
    let decision = triage(&rules, "كيف حالك يا بوت", Lang::Ar);
    assert!(
        !matches!(decision, Decision::Handoff { .. }),
        "{decision:?}"
    );
}

#[test]
fn requests_for_a_person_hand_off_in_every_language() {
    let rules = rules();
    use HandoffReason::Requested;
    for (lang, text) in [
        (Lang::En, "are you a bot?"),
        (Lang::En, "I need a real person"),
        (Lang::En, "get me a representative"),
        (Lang::En, "operator please"),
        (Lang::Ar, "انت روبوت؟"),
        (Lang::Ar, "وصلني بأحد من الموظفين"),
        (Lang::Ar, "عايز اكلم حد حقيقي"),
        (Lang::Fa, "شما ربات هستید؟"),
        (Lang::Fa, "با یه آدم واقعی حرف بزنم"),
        (Lang::Fa, "اپراتور لطفا"),
    ] {
        check_handoff(&rules, lang, text, Requested);
    }
    // Naming the service is not asking for a person.
    check(
        &rules,
        Lang::En,
        "what are your support hours",
        "none",
        None,
    );
}

#[test]
fn an_angry_visitor_is_handed_off_even_when_a_topic_matches() {
    let rules = rules();
    let decision = triage(&rules, "this is ridiculous, where is my order?", Lang::En);
    assert_eq!(decision.predicted_intent(), "complaint", "{decision:?}");
    let Decision::Handoff { priority, .. } = decision else {
        unreachable!()
    };
    assert_eq!(priority, 10, "complaints keep their queue priority");
    // Not angry: the topic answers.
    check(
        &rules,
        Lang::En,
        "where is my order?",
        "order_tracking",
        Some(Via::Rules),
    );
}

#[test]
fn shouting_and_exclamation_marks() {
    let rules = rules();
    check_handoff(
        &rules,
        Lang::En,
        "WHERE IS MY ORDER",
        HandoffReason::Complaint,
    );
    check_handoff(
        &rules,
        Lang::En,
        "WHY IS NOBODY ANSWERING",
        HandoffReason::Complaint,
    );
    // Small talk in capitals is not a shout.
    check(
        &rules,
        Lang::En,
        "THANK YOU SO MUCH",
        "thanks_bye",
        Some(Via::Rules),
    );
    // One or two `!` are enthusiasm; three add to other frustration but are not enough
    // on their own.
    check(
        &rules,
        Lang::En,
        "where is my order!!!",
        "order_tracking",
        Some(Via::Rules),
    );
    check(&rules, Lang::En, "hello!!!", "greeting", Some(Via::Rules));
}

#[test]
fn signals_can_be_turned_off() {
    let rules = pack(&format!("[settings]\nsignals = false\n{PACK}"));
    check(&rules, Lang::En, "are you a bot?", "none", None);
    check(
        &rules,
        Lang::En,
        "WHERE IS MY ORDER",
        "order_tracking",
        Some(Via::Rules),
    );
}

fn in_context(
    rules: &RuleSet,
    lang: Lang,
    text: &str,
    previous_questions: &[&str],
    previous_intent: Option<&str>,
) -> Decision {
    rules.triage_with_context(
        &TriageInput::new(text, Some(lang)),
        &TriageContext {
            previous_questions,
            previous_intent,
        },
    )
}

#[test]
fn the_same_question_asked_twice_hands_off() {
    let rules = rules();
    let previous = ["hello", "Where is my order?"];
    let decision = in_context(&rules, Lang::En, "where is my order", &previous, None);
    let Decision::Handoff {
        reason,
        intent,
        department,
        via,
        ..
    } = &decision
    else {
        panic!("expected a handoff, got {decision:?}");
    };
    assert_eq!(*reason, HandoffReason::Repeated);
    assert_eq!(*via, Via::Signals);
    assert_eq!(intent, "human_agent");
    assert_eq!(department.as_deref(), Some("support"));
    assert_eq!(reason.as_str(), "repeated");
    // Retyped with a typo, in Arabic: the same question.
    let decision = in_context(&rules, Lang::Ar, "وين طلبي؟", &["وين طلبيي"], None);
    assert_eq!(decision.kind(), "handoff", "{decision:?}");
    // A different question, or small talk repeated: no handoff.
    let decision = in_context(
        &rules,
        Lang::En,
        "what is your return policy",
        &previous,
        None,
    );
    assert_eq!(decision.predicted_intent(), "return_policy");
    let decision = in_context(&rules, Lang::En, "hello", &["hello"], None);
    assert_eq!(decision.predicted_intent(), "greeting");
    // Without context, the same text answers.
    check(
        &rules,
        Lang::En,
        "where is my order",
        "order_tracking",
        Some(Via::Rules),
    );
}

#[test]
fn follow_ups_resolve_against_the_previous_intent() {
    let rules = rules();
    let follow = |lang: Lang, text: &str, previous: &str| {
        in_context(&rules, lang, text, &[], Some(previous))
    };
    for (lang, text, previous, expected) in [
        // Cost after delivery time, and the reverse: the topic's words veto nothing.
        (
            Lang::En,
            "and how much does it cost?",
            "shipping_time",
            "shipping_cost",
        ),
        (Lang::En, "how much?", "shipping_time", "shipping_cost"),
        (
            Lang::En,
            "and how long does it take?",
            "shipping_cost",
            "shipping_time",
        ),
        // An elliptical follow-up stays on the topic.
        (
            Lang::En,
            "what about express?",
            "shipping_time",
            "shipping_time",
        ),
        (Lang::Ar, "وبكم؟", "shipping_time", "shipping_cost"),
        (Lang::Fa, "هزینه‌اش چقدره؟", "shipping_time", "shipping_cost"),
    ] {
        let decision = follow(lang, text, previous);
        assert_eq!(
            decision.predicted_intent(),
            expected,
            "{text:?} after {previous} -> {decision:?}"
        );
        assert_eq!(
            decision.via(),
            Some(Via::FollowUp),
            "{text:?} -> {decision:?}"
        );
    }
    // A follow-up that names its own topic needs no context.
    let decision = follow(Lang::En, "and the return policy?", "shipping_time");
    assert_eq!(decision.predicted_intent(), "return_policy");
    assert_eq!(decision.via(), Some(Via::Rules));
    // Something unrelated stays a miss; without context, so does the follow-up.
    assert_eq!(
        follow(Lang::En, "tell me a joke", "shipping_time").kind(),
        "fallback"
    );
    check(&rules, Lang::En, "and how much does it cost?", "none", None);
    // An unknown previous intent is ignored.
    assert_eq!(
        follow(Lang::En, "how much?", "no_such_intent").kind(),
        "fallback"
    );
}

const IDENTITY_PACK: &str = r#"
[identity]
store_name = { en = "Demo Store", ar = "متجر ديمو", fa = "فروشگاه دمو" }
site_url = "https://demo.store"

[phrases.en]
bot_name = "{store_name} Assistant"

[phrases.ar]
bot_name = "مساعد {store_name}"

[[rule]]
id = "hello"
intent = "greeting"
label = { en = "Hello", ar = "مرحبا", fa = "سلام" }
answer = { en = "Welcome to {store_name}!", ar = "أهلا بك في {store_name}!", fa = "به {store_name} خوش آمدید!" }
link = "{site_url}/help"
match.en = ["hello"]
match.ar = ["مرحبا"]
match.fa = ["سلام"]
"#;

fn answer_and_link(rules: &RuleSet, lang: Lang) -> (String, Option<String>) {
    match triage(rules, ["hello", "مرحبا", "سلام"][lang as usize], lang) {
        Decision::Answer { text, link, .. } => (text, link),
        other => panic!("expected an answer, got {other:?}"),
    }
}

#[test]
fn identity_placeholders_come_from_the_pack() {
    let rules = pack(IDENTITY_PACK);
    let (text, link) = answer_and_link(&rules, Lang::En);
    assert_eq!(text, "Welcome to Demo Store!");
    assert_eq!(link.as_deref(), Some("https://demo.store/help"));
    assert_eq!(
        answer_and_link(&rules, Lang::Fa).0,
        "به فروشگاه دمو خوش آمدید!"
    );
    assert_eq!(rules.phrases(Lang::En).bot_name, "Demo Store Assistant");
    assert_eq!(rules.phrases(Lang::Ar).bot_name, "مساعد متجر ديمو");
}

#[test]
fn each_site_gets_its_own_identity() {
    let files = [RuleFile::new("pack.toml", IDENTITY_PACK)];
    let acme = Identity::new()
        .var("store_name", "Acme")
        .var_in(Lang::Ar, "store_name", "أكمي")
        .var("site_url", "https://acme.example")
        .phrase(Lang::Fa, PhraseKey::BotName, "دستیار {store_name}");
    let demo = RuleSet::load(&files).expect("demo");
    let acme = RuleSet::load_with(&files, &acme).expect("acme");
    // Two packs compiled side by side, each with its own name and links.
    assert_eq!(answer_and_link(&demo, Lang::En).0, "Welcome to Demo Store!");
    let (text, link) = answer_and_link(&acme, Lang::En);
    assert_eq!(text, "Welcome to Acme!");
    assert_eq!(link.as_deref(), Some("https://acme.example/help"));
    assert_eq!(answer_and_link(&acme, Lang::Ar).0, "أهلا بك في أكمي!");
    assert_eq!(acme.phrases(Lang::En).bot_name, "Acme Assistant");
    assert_eq!(acme.phrases(Lang::Fa).bot_name, "دستیار Acme");
    assert!(RuleSet::check_with(&files, &Identity::new()).is_empty());
}

#[test]
fn identity_errors_are_located() {
    let unknown = IDENTITY_PACK.replace("Welcome to {store_name}!", "Call {phone}!");
    let errors = RuleSet::load(&[RuleFile::new("p.toml", unknown.as_str())]).unwrap_err();
    assert!(
        errors.iter().any(|error| error.file == "p.toml"
            && error.line == 13
            && error.reason.contains("{phone}")),
        "{errors:?}"
    );
    // An identity may supply what the pack leaves out.
    let acme = Identity::new().var("phone", "+1 555 0100");
    assert!(RuleSet::load_with(&[RuleFile::new("p.toml", unknown.as_str())], &acme).is_ok());
    let partial = IDENTITY_PACK.replace(", fa = \"فروشگاه دمو\"", "");
    let errors = RuleSet::load(&[RuleFile::new("p.toml", partial.as_str())]).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|error| error.line == 2 && error.reason.contains("needs en, ar and fa")),
        "{errors:?}"
    );
    // `{when}` is filled at run time, never by the identity.
    let offline = "[phrases.en]\noffline = \"Back {when}, {store_name}\"\n[identity]\nstore_name = \"Acme\"\n";
    let rules = RuleSet::load(&[RuleFile::new("o.toml", offline)]).expect("loads");
    assert_eq!(rules.phrases(Lang::En).offline, "Back {when}, Acme");
}
