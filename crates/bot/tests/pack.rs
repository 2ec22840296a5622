//! The default rule pack in `bot-rules/`.

use salam_bot::{
    Decision, HandoffReason, Identity, Lang, RuleSet, TriageContext, TriageInput, Via, eval,
};

use crate::util::{default_files, default_pack, join, rules_dir};

#[test]
fn every_example_and_counter_example_holds() {
    let errors = RuleSet::check(&default_files());
    assert!(
        errors.is_empty(),
        "{} problem(s):\n{}",
        errors.len(),
        join(&errors)
    );
}

#[test]
fn every_rule_has_examples_in_every_language() {
    let rules = default_pack();
    for rule in rules.rules() {
        for lang in Lang::ALL {
            let n_examples = rule
                .examples
                .iter()
                .filter(|example| example.lang == lang)
                .count();
            assert!(
                n_examples >= 2,
                "rule {} has {n_examples} {lang} example(s)",
                rule.id
            );
        }
    }
}

#[test]
fn every_intent_of_intents_md_is_covered() {
    let intents_md =
        std::fs::read_to_string(rules_dir().join("eval/intents.md")).expect("intents.md");
    let rules = default_pack();
    let mut n_intents = 0;
    for line in intents_md.lines() {
        let Some(intent) = line
            .strip_prefix("| ")
            .and_then(|rest| rest.split(' ').next())
        else {
            continue;
        };
        if intent == "id" || intent.starts_with('-') {
            continue;
        }
        n_intents += 1;
        let rule = rules
            .rules()
            .iter()
            .find(|rule| rule.intent == intent)
            .unwrap_or_else(|| panic!("intent {intent} has no rule"));
        let handoff = line.contains("hand off");
        assert_eq!(
            rule.action == salam_bot::Action::Handoff,
            handoff,
            "action of {intent}"
        );
    }
    assert_eq!(n_intents, 18);
}

#[test]
fn every_quick_reply_leads_somewhere_sensible() {
    let rules = default_pack();
    for lang in Lang::ALL {
        for rule in rules.rules() {
            for example in rule.examples.iter().filter(|example| example.lang == lang) {
                let decision = rules.triage(&TriageInput::new(&example.text, Some(lang)));
                let replies = match &decision {
                    Decision::Answer { quick_replies, .. }
                    | Decision::Fallback { quick_replies, .. } => quick_replies,
                    Decision::Clarify { options, .. } => options,
                    Decision::Handoff { .. } => continue,
                };
                let person = replies.last().expect("talk to a person");
                assert_eq!(person.label, rules.phrases(lang).talk_to_person);
                for reply in replies {
                    let followed = rules.triage(&TriageInput::new(&reply.payload, Some(lang)));
                    assert!(
                        matches!(followed.kind(), "answer" | "handoff"),
                        "{lang}: quick reply {reply:?} after {:?} leads to {followed:?}",
                        example.text
                    );
                }
            }
        }
        let fallback = rules.triage(&TriageInput::new("qwertz", Some(lang)));
        assert_eq!(fallback.kind(), "fallback");
        let Decision::Fallback { quick_replies, .. } = fallback else {
            unreachable!()
        };
        assert!(
            quick_replies.len() >= 2,
            "fallback offers topics and a person"
        );
        for reply in quick_replies {
            let followed = rules.triage(&TriageInput::new(&reply.payload, Some(lang)));
            assert!(
                matches!(followed.kind(), "answer" | "handoff"),
                "{reply:?} -> {followed:?}"
            );
        }
    }
}

#[test]
fn another_site_gets_its_own_name_links_and_contacts() {
    // Issue 16: every site used to get the demo store's bot. The default pack names the
    // store only through [identity] placeholders, so a site's identity replaces it all.
    let acme = Identity::new()
        .var("store_name", "Acme")
        .var_in(Lang::Ar, "store_name", "أكمي")
        .var_in(Lang::Fa, "store_name", "اکمی")
        .var("site_url", "https://acme.example")
        .var("email", "help@acme.example")
        .var("phone", "+44 20 0000 0000")
        .var("whatsapp", "+44 20 0000 0001")
        .var("social_handle", "@acme")
        .var("address", "1 High Street");
    let rules = RuleSet::load_with(&default_files(), &acme).expect("the pack loads for acme");
    assert!(RuleSet::check_with(&default_files(), &acme).is_empty());
    let demo = ["demo", "Demo", "ديمو", "دمو", "555 010", "Market Street"];
    for lang in Lang::ALL {
        let phrases = rules.phrases(lang);
        assert!(
            phrases
                .bot_name
                .contains(["Acme", "أكمي", "اکمی"][lang as usize])
        );
        for rule in rules.rules() {
            let answer = rule.answer.as_ref().map_or("", |answer| answer.get(lang));
            for text in [answer, rule.link.as_deref().unwrap_or("")] {
                assert!(
                    !demo.iter().any(|word| text.contains(word)),
                    "{lang} {}: {text}",
                    rule.id
                );
            }
        }
    }
    let Decision::Answer { text, link, .. } = rules.triage(&TriageInput::new(
        "what's your phone number?",
        Some(Lang::En),
    )) else {
        panic!("expected an answer");
    };
    assert!(
        text.starts_with("You can reach Acme by phone at +44 20 0000 0000"),
        "{text}"
    );
    assert_eq!(link.as_deref(), Some("https://acme.example/contact"));
    // The demo site keeps its own identity.
    assert_eq!(
        default_pack().phrases(Lang::En).bot_name,
        "Demo Store Assistant"
    );
}

#[test]
fn phrases_are_translated() {
    let rules = default_pack();
    let english = rules.phrases(Lang::En).clone();
    for lang in [Lang::Ar, Lang::Fa] {
        let phrases = rules.phrases(lang);
        assert_ne!(phrases.fallback, english.fallback);
        assert_ne!(phrases.talk_to_person, english.talk_to_person);
        assert!(phrases.offline.contains("{when}"));
    }
}

/// The quality bar of issue 16, in every language: at least `min_accuracy` right, at
/// most `max_wrong_rate` wrong answers, no missed handoff.
fn assert_quality(file: &str, min_accuracy: f64, max_wrong_rate: f64) {
    assert_quality_per_lang(file, [min_accuracy; 3], max_wrong_rate);
}

/// [`assert_quality`] with a minimum accuracy per language, in `Lang::ALL` order.
fn assert_quality_per_lang(file: &str, min_accuracy: [f64; 3], max_wrong_rate: f64) {
    let rules = default_pack();
    let tsv = std::fs::read_to_string(rules_dir().join("eval").join(file)).expect("eval file");
    let report = eval::run(&rules, &tsv);
    let summary = format!("{}{}", report.summary(), report.confusion_summary());
    eprintln!("{file}:\n{summary}");
    assert!(report.invalid_lines.is_empty(), "{summary}");
    assert!(report.total >= 30, "{summary}");
    for (entry, min_accuracy) in report.per_lang.iter().zip(min_accuracy) {
        let lang = entry.lang;
        assert!(entry.total >= 30, "{file}: few {lang} sentences\n{summary}");
        assert!(
            entry.accuracy() >= min_accuracy,
            "{file}: {lang} accuracy below {min_accuracy}\n{summary}"
        );
        assert!(
            entry.wrong_answer_rate() <= max_wrong_rate,
            "{file}: too many {lang} wrong answers\n{summary}"
        );
    }
    assert!(
        report.missed_handoffs.is_empty(),
        "{file}: missed handoffs\n{summary}"
    );
}

#[test]
fn quality_bar_on_dev_set() {
    assert_quality("dev.tsv", 0.95, 0.03);
}

#[test]
fn quality_bar_on_extra_set() {
    assert_quality("extra.tsv", 0.95, 0.03);
}

#[test]
fn quality_bar_on_tuning_set() {
    assert_quality("tune.tsv", 0.95, 0.03);
}

/// `heldout.tsv` was written before the first round of issue 16 and held out during it
/// (it ended at en 95.1 %, ar 92.3 %, fa 94.8 %). Its misses were then known, so the
/// second round tuned on it: it is a tuning set now, with the tuning sets' bar.
#[test]
fn quality_bar_on_first_held_out_set() {
    assert_quality("heldout.tsv", 0.95, 0.03);
}

/// `heldout2.tsv` was written for the second round of issue 16 before any tuning of that
/// round and held out through it (final score en 96.3 %, ar 91.0 %, fa 89.2 % right,
/// 7 missed handoffs). Its misses were then known, so the third round tuned on it, by
/// general mechanisms (Arabic-script typing slips, dialect words, lexicons): it is a
/// tuning set now, at 100 % in every language. The bars are the figures reached, less
/// one sentence per language; no missed handoff.
#[test]
fn quality_bar_on_second_held_out_set() {
    assert_quality_per_lang("heldout2.tsv", [0.99, 0.99, 0.99], 0.03);
}

#[test]
fn the_kinds_of_misses_issue_16_reports() {
    // The issue's own examples of each kind (the held-out sentences are elsewhere).
    let rules = default_pack();
    for (lang, text, intent, via) in [
        (
            Lang::En,
            "whens my parcel comming",
            "order_tracking",
            Via::Spelling,
        ),
        (Lang::En, "retrn polcy?", "return_policy", Via::Spelling),
        (
            Lang::En,
            "are you even a human? get me someone",
            "human_agent",
            Via::Signals,
        ),
        (
            Lang::Ar,
            "وصلني بأحد من الموظفين",
            "human_agent",
            Via::Signals,
        ),
        (
            Lang::En,
            "I'm so disappointed with you people",
            "complaint",
            Via::Signals,
        ),
        (
            Lang::Fa,
            "واقعا از برخوردتون دلخورم",
            "complaint",
            Via::Signals,
        ),
        (Lang::En, "you overcharged me", "complaint", Via::Signals),
    ] {
        let decision = rules.triage(&TriageInput::new(text, Some(lang)));
        assert_eq!(
            decision.predicted_intent(),
            intent,
            "{text:?} -> {decision:?}"
        );
        assert_eq!(decision.via(), Some(via), "{text:?} -> {decision:?}");
    }
}

#[test]
fn follow_ups_on_the_default_pack() {
    let rules = default_pack();
    for (lang, previous, text, intent) in [
        (
            Lang::En,
            "shipping_time",
            "and how much does it cost?",
            "shipping_cost",
        ),
        (
            Lang::En,
            "shipping_time",
            "what about express?",
            "shipping_time",
        ),
        (
            Lang::En,
            "shipping_cost",
            "and how long does it take?",
            "shipping_time",
        ),
        (
            Lang::En,
            "shipping_cost",
            "what about express?",
            "shipping_cost",
        ),
        (
            Lang::En,
            "opening_hours",
            "and on fridays?",
            "opening_hours",
        ),
        (Lang::Ar, "shipping_time", "وبكم؟", "shipping_cost"),
        (Lang::Ar, "shipping_cost", "وكم يوم ياخذ؟", "shipping_time"),
        (Lang::Fa, "shipping_time", "هزینه‌اش چقدره؟", "shipping_cost"),
        (
            Lang::Fa,
            "shipping_time",
            "برای اکسپرس چی؟",
            "shipping_time",
        ),
        (Lang::Fa, "opening_hours", "جمعه ها چی؟", "opening_hours"),
    ] {
        let decision = rules.triage_with_context(
            &TriageInput::new(text, Some(lang)),
            &TriageContext {
                previous_questions: &[],
                previous_intent: Some(previous),
            },
        );
        assert_eq!(
            (decision.predicted_intent(), decision.via()),
            (intent, Some(Via::FollowUp)),
            "{text:?} after {previous}: {decision:?}"
        );
    }
    // A follow-up that names its topic answers on its own.
    let decision = rules.triage_with_context(
        &TriageInput::new("and for returns?", Some(Lang::En)),
        &TriageContext {
            previous_questions: &[],
            previous_intent: Some("shipping_time"),
        },
    );
    assert_eq!(decision.predicted_intent(), "return_policy");
}

#[test]
fn a_question_asked_again_goes_to_a_person() {
    let rules = default_pack();
    let decision = rules.triage_with_context(
        &TriageInput::new("where is my order??", Some(Lang::En)),
        &TriageContext {
            previous_questions: &["where is my order"],
            previous_intent: Some("order_tracking"),
        },
    );
    let Decision::Handoff { reason, .. } = decision else {
        panic!("expected a handoff, got {decision:?}");
    };
    assert_eq!(reason, HandoffReason::Repeated);
}

#[test]
fn eval_output_lines() {
    let rules = default_pack();
    let report = eval::run(
        &rules,
        "# comment\n\nen\tgreeting\thi\nar\tnone\tكم عمرك\nxx\tnone\toops\nbroken line\n",
    );
    assert_eq!(
        report.lines,
        ["en\tgreeting\tgreeting\thi", "ar\tnone\tnone\tكم عمرك"]
    );
    assert_eq!(report.total, 2);
    assert_eq!(report.correct, 2);
    assert_eq!(report.invalid_lines.len(), 2);
    assert!(report.summary().contains("accuracy: 100.0%"));
    assert!(report.confusions.is_empty());
    assert_eq!(report.confusion_summary(), "");
}

#[test]
fn eval_counts_confusions_per_language() {
    let rules = default_pack();
    let report = eval::run(
        &rules,
        "en\tcancel_order\twhere is my order\n\
         en\tcancel_order\twhere is my package\n\
         en\tgreeting\twhat is your return policy\n\
         ar\tnone\tوين طلبي\n\
         fa\thuman_agent\tسلام\n",
    );
    let confusions: Vec<(Lang, &str, &str, usize)> = report
        .confusions
        .iter()
        .map(|c| (c.lang, c.expected.as_str(), c.predicted.as_str(), c.count))
        .collect();
    assert_eq!(
        confusions,
        [
            (Lang::En, "cancel_order", "order_tracking", 2),
            (Lang::En, "greeting", "return_policy", 1),
            (Lang::Ar, "none", "order_tracking", 1),
            (Lang::Fa, "human_agent", "greeting", 1),
        ]
    );
    let en = report.per_lang[0];
    assert_eq!(
        (en.total, en.correct, en.wrong, en.missed_handoffs),
        (3, 0, 3, 0)
    );
    assert_eq!(report.per_lang[2].missed_handoffs, 1);
    let summary = report.confusion_summary();
    assert!(
        summary.contains(
            "confusions (en): expected → predicted\n  cancel_order → order_tracking: 2\n"
        ),
        "{summary}"
    );
    assert!(summary.contains("confusions (fa)"), "{summary}");
}
