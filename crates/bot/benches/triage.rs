//! Triage latency and compile time, for the default pack and a generated 1,000-rule pack.
//!
//! `cargo bench -p salam-bot --bench triage -- --warm-up-time 1 --measurement-time 3`
//! Also prints p50/p99 of single triage calls on the default pack (criterion reports
//! means only): the 12 sentences measured since issue 3, then 12 that take the paths
//! added for issue 16 (typos, signals, second stage, follow-ups) within a conversation.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use salam_bot::{Lang, RuleFile, RuleSet, TriageContext, TriageInput};

const SENTENCES: &[(Lang, &str)] = &[
    (Lang::En, "hi, where is my order? it hasn't arrived yet"),
    (Lang::En, "how much is shipping to Cairo"),
    (Lang::En, "I want to talk to a real person"),
    (Lang::En, "write me a poem about cats"),
    (Lang::Ar, "متى يصل الطلب إذا طلبت اليوم؟"),
    (Lang::Ar, "هل يمكنني الدفع عند الاستلام"),
    (Lang::Ar, "أنا غاضب جدا، وصل الطلب مكسورا"),
    (Lang::Ar, "ههههههه"),
    (Lang::Fa, "میخوام سفارشم رو لغو کنم"),
    (Lang::Fa, "کد تخفیفم کار نمیکنه"),
    (Lang::Fa, "ساعت کاری شما چیه؟"),
    (Lang::Fa, "برنج چطوری بپزم"),
];

/// The paths added for issue 16: typos, chat spellings, the built-in signals, the
/// second stage, and (with [`CONTEXT`]) follow-ups and repeated questions.
const NEW_PATHS: &[(Lang, &str)] = &[
    (Lang::En, "whens my parcel comming"),
    (Lang::En, "retrn polcy?"),
    (Lang::En, "are you even a human? get me someone"),
    (Lang::En, "WHY IS NOBODY ANSWERING ME"),
    (Lang::En, "my parcle has not come yet"),
    (Lang::En, "and how much does it cost?"),
    (Lang::Ar, "كم مدة الظمان على الجوال"),
    (Lang::Ar, "خصمتوا مني مبلغ زيادة"),
    (Lang::Ar, "وبكم؟"),
    (Lang::Fa, "واقعا از برخوردتون دلخورم"),
    (Lang::Fa, "كارانتي داره؟"),
    (Lang::Fa, "هزینه‌اش چقدره؟"),
];

/// The conversation the [`NEW_PATHS`] sentences are triaged in.
const CONTEXT: TriageContext<'static> = TriageContext {
    previous_questions: &["how long does delivery take?", "hello"],
    previous_intent: Some("shipping_time"),
};

fn default_files() -> Vec<RuleFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bot-rules");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("bot-rules")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            RuleFile::new(name, std::fs::read_to_string(&path).expect("rule file"))
        })
        .collect()
}

/// 1,000 rules with 6 phrases each (en/ar/fa), one combination and one regex in ten.
fn generated_files() -> Vec<RuleFile> {
    let mut text = String::new();
    for rule_idx in 0..1000 {
        let word = |kind: usize| format!("w{}x{kind}", rule_idx * 7 + kind);
        text.push_str(&format!(
            "[[rule]]\nid = \"r{rule_idx}\"\nintent = \"intent{}\"\n\
             label = {{ en = \"topic {rule_idx}\", ar = \"موضوع {rule_idx}\", fa = \"موضوع {rule_idx}\" }}\n\
             answer = {{ en = \"answer\", ar = \"جواب\", fa = \"پاسخ\" }}\n\
             match.en = [\"{}\", \"{} {}\", \"{}*\"]\n\
             match.ar = [\"كلمه{rule_idx}\"]\n\
             match.fa = [\"واژه{rule_idx}\", \"عبارت {rule_idx}\"]\n\
             all.en = [[\"{}|{}\", \"{}\"]]\n",
            rule_idx / 2,
            word(0),
            word(1),
            word(2),
            word(3),
            word(4),
            word(5),
            word(6),
        ));
        if rule_idx % 10 == 0 {
            text.push_str(&format!("regex = ['\\bcode{rule_idx}-[0-9]{{3,6}}\\b']\n"));
        }
    }
    vec![RuleFile::new("generated.toml", text)]
}

fn generated_sentences() -> Vec<String> {
    (0..12)
        .map(|idx| match idx % 3 {
            0 => format!("hello I need w{}x0 please", idx * 70),
            1 => format!(
                "something about w{}x4 and w{}x6 today",
                idx * 63,
                idx * 63 + 2
            ),
            _ => "a sentence that matches nothing at all in this pack".to_string(),
        })
        .collect()
}

fn percentiles(rules: &RuleSet) {
    percentiles_of(rules, "default pack", SENTENCES, &TriageContext::default());
    percentiles_of(
        rules,
        "default pack, new paths in context",
        NEW_PATHS,
        &CONTEXT,
    );
}

fn percentiles_of(
    rules: &RuleSet,
    what: &str,
    sentences: &[(Lang, &str)],
    context: &TriageContext<'_>,
) {
    let n_calls = 20_000;
    let mut samples = Vec::with_capacity(n_calls);
    for call_idx in 0..n_calls {
        let (lang, text) = sentences[call_idx % sentences.len()];
        let started = Instant::now();
        black_box(rules.triage_with_context(
            &TriageInput::new(black_box(text), Some(lang)),
            black_box(context),
        ));
        samples.push(started.elapsed());
    }
    samples.sort();
    let at = |quantile: f64| {
        samples[((samples.len() as f64 * quantile) as usize).min(samples.len() - 1)]
    };
    let show = |duration: Duration| format!("{:.1} µs", duration.as_secs_f64() * 1e6);
    println!(
        "{what}, {n_calls} single triage calls: p50 {}  p99 {}  max {}",
        show(at(0.50)),
        show(at(0.99)),
        show(at(1.0))
    );
}

fn benches(criterion: &mut Criterion) {
    let default = default_files();
    let generated = generated_files();
    let default_rules = RuleSet::load(&default).expect("default pack");
    let generated_rules = RuleSet::load(&generated).expect("generated pack");
    percentiles(&default_rules);

    criterion.bench_function("triage/default_pack_12_sentences", |bencher| {
        bencher.iter(|| {
            for (lang, text) in SENTENCES {
                black_box(default_rules.triage(&TriageInput::new(black_box(text), Some(*lang))));
            }
        })
    });
    criterion.bench_function("triage/default_pack_12_new_paths_in_context", |bencher| {
        bencher.iter(|| {
            for (lang, text) in NEW_PATHS {
                black_box(default_rules.triage_with_context(
                    &TriageInput::new(black_box(text), Some(*lang)),
                    black_box(&CONTEXT),
                ));
            }
        })
    });
    let sentences = generated_sentences();
    criterion.bench_function("triage/generated_1000_rules_12_sentences", |bencher| {
        bencher.iter(|| {
            for text in &sentences {
                black_box(
                    generated_rules.triage(&TriageInput::new(black_box(text), Some(Lang::En))),
                );
            }
        })
    });
    let long_text = "where is my order ".repeat(220);
    criterion.bench_function("triage/default_pack_4000_chars", |bencher| {
        bencher.iter(|| {
            black_box(default_rules.triage(&TriageInput::new(black_box(&long_text), None)))
        })
    });
    // Unknown long words: the speller's worst case (bounded to 32 lookups a message).
    let long_typos = "xqzvwkplmr ".repeat(360);
    criterion.bench_function("triage/default_pack_4000_chars_unknown_words", |bencher| {
        bencher.iter(|| {
            black_box(default_rules.triage(&TriageInput::new(black_box(&long_typos), None)))
        })
    });
    criterion.bench_function("compile/default_pack", |bencher| {
        bencher.iter(|| black_box(RuleSet::load(black_box(&default)).is_ok()))
    });
    criterion.bench_function("compile/generated_1000_rules", |bencher| {
        bencher.iter(|| black_box(RuleSet::load(black_box(&generated)).is_ok()))
    });
}

criterion_group!(triage, benches);
criterion_main!(triage);
