//! The structural handoff signal (issue 16, fifth round) on the default pack: messages
//! that nothing answers confidently, read by families of cue words and by structure.

use salam_bot::{Decision, HandoffReason, Lang, RuleFile, RuleSet, TriageInput, Via};

use crate::util::{default_files, default_pack};

fn triage(rules: &RuleSet, lang: Lang, text: &str) -> Decision {
    rules.triage(&TriageInput::new(text, Some(lang)))
}

#[test]
fn frustration_requests_and_reports_hand_off_by_structure() {
    let rules = default_pack();
    for (lang, text, reason) in [
        // A negation of service, blame in the second person, a challenge (no lexicon phrase).
        (
            Lang::En,
            "why does nobody at your company ever follow through",
            HandoffReason::Complaint,
        ),
        (Lang::En, "r u guys even trying??", HandoffReason::Complaint),
        (Lang::Ar, "يا ريت ما طلبت منكم", HandoffReason::Complaint),
        (Lang::Ar, "بقالي شهر بجري وراكم", HandoffReason::Complaint),
        (
            Lang::Fa,
            "ببخشیدا ولی این کارتون خیلی زشت بود",
            HandoffReason::Complaint,
        ),
        (
            Lang::Fa,
            "هیچکس اینجا کارشو بلد نیست",
            HandoffReason::Complaint,
        ),
        // A report of what happened, about the store's world.
        (
            Lang::En,
            "the delivery guy threw my box over the fence",
            HandoffReason::Complaint,
        ),
        // "Who" beside "talk".
        (
            Lang::En,
            "who exactly am i chatting with right now",
            HandoffReason::Requested,
        ),
        (Lang::Ar, "في حدا بيحكي معي هون؟", HandoffReason::Requested),
        (
            Lang::Fa,
            "الان دارم با کی چت میکنم؟",
            HandoffReason::Requested,
        ),
    ] {
        let decision = triage(&rules, lang, text);
        let Decision::Handoff {
            reason: got, via, ..
        } = &decision
        else {
            panic!("{text:?}: expected a handoff, got {decision:?}");
        };
        assert_eq!((*got, *via), (reason, Via::Affect), "{text:?}");
    }
}

#[test]
fn small_talk_and_irony_do_not_keep_a_visitor_from_a_person() {
    let rules = default_pack();
    // Greetings ("hellooo") answered before; a request for a person now.
    let decision = triage(&rules, Lang::En, "hellooo is any1 there or just a bot");
    assert_eq!(
        (decision.predicted_intent(), decision.via()),
        ("human_agent", Some(Via::Affect)),
        "{decision:?}"
    );
    // Sarcastic thanks that a topic also matched.
    let decision = triage(
        &rules,
        Lang::En,
        "thanks for charging my card and then cancelling my order without telling me",
    );
    assert_eq!(decision.predicted_intent(), "complaint", "{decision:?}");
}

#[test]
fn neutral_questions_and_topics_said_with_feeling_are_not_handed_off() {
    let rules = default_pack();
    for (lang, text, intent) in [
        (Lang::En, "are you married?", "none"),
        (Lang::En, "never mind", "none"),
        (Lang::En, "do you really ship to oman??", "none"),
        (
            Lang::En,
            "i ordered 10 days ago and still nothing",
            "order_tracking",
        ),
        (Lang::Ar, "شو رأيك بالسياسة", "none"),
        (Lang::Ar, "لسه ما وصلني الطلب، رقمه 4410", "order_tracking"),
        (Lang::Fa, "نظرت درباره هوش مصنوعی چیه؟", "none"),
        (
            Lang::Fa,
            "مرجوعی رو فرستادم ولی هنوز پولم برنگشته",
            "refund_status",
        ),
    ] {
        let decision = triage(&rules, lang, text);
        assert_ne!(decision.kind(), "handoff", "{text:?}: {decision:?}");
        if intent != "none" {
            assert_eq!(decision.predicted_intent(), intent, "{text:?}");
        }
    }
}

#[test]
fn the_signal_explains_itself_and_can_be_turned_off() {
    let rules = default_pack();
    let signals = rules.signals_in("why does nobody at your company ever follow through", None);
    for family in ["affect:absence", "affect:blame", "affect:challenge"] {
        assert!(signals.contains(&family), "{signals:?}");
    }
    assert!(
        rules
            .signals_in("who exactly am i chatting with", Some(Lang::En))
            .contains(&"affect:person")
    );
    // `[settings] signals = false` turns it off with the other built-in signals.
    let files: Vec<RuleFile> = default_files()
        .into_iter()
        .map(|file| {
            if file.name == "_settings.toml" {
                let text = file
                    .text
                    .replacen("[settings]", "[settings]\nsignals = false", 1);
                RuleFile::new(file.name, text)
            } else {
                file
            }
        })
        .collect();
    let quiet = RuleSet::load(&files).expect("the pack loads");
    let decision = triage(&quiet, Lang::En, "r u guys even trying??");
    assert_eq!(decision.kind(), "fallback", "{decision:?}");
    assert!(quiet.signals_in("r u guys even trying??", None).is_empty());
}
