use salam_bot::{Lang, detect_language, normalize};

#[track_caller]
fn check(input: &str, expected: &str) {
    assert_eq!(normalize(input), expected, "normalize({input:?})");
}

#[test]
fn latin() {
    check("Hello, World!", "hello world");
    check("  spaces \t and\nlines  ", "spaces and lines");
    check("What's up?", "whats up");
    check("ＦＵＬＬ width", "full width");
    check("heyyy", "hey");
    check("soooo good", "so good");
    check("pleaseeee", "please");
    check("free all good", "free all good");
    check("order #48213", "order 48213");
    check("1000 USD", "1000 usd");
    check("Café", "café");
}

#[test]
fn arabic_letters_and_marks() {
    check("مَرْحَبًا", "مرحبا");
    check("مـــرحبا", "مرحبا");
    check("أهلا إلى آخر ٱسم", "اهلا الي اخر اسم");
    check("مدرسة", "مدرسه");
    check("على", "علي");
    check("سلااام", "سلام");
    check("ههههههه", "ه");
    check("كيف؟ تمام، شكرا؛", "كيف تمام شكرا");
    check("رقم ٤٨٢١٣", "رقم 48213");
    // Hamza seats and a lone hamza: written with or without them, one form.
    assert_eq!(normalize("سؤال"), normalize("سوال"));
    assert_eq!(normalize("مسئول"), normalize("مسيول"));
    assert_eq!(normalize("شيء"), normalize("شي"));
    check("رئيس المسؤولين", "رييس المسوولين");
}

#[test]
fn persian_letters_and_zwnj() {
    // Persian ی/ک and Arabic ي/ك meet in one form.
    assert_eq!(normalize("کی"), normalize("كي"));
    assert_eq!(normalize("یک"), normalize("يك"));
    check("شماره ۴۸۲۱۳", "شماره 48213");
    // ZWNJ, nothing, or a space: the same word.
    let joined = normalize("میخوام");
    assert_eq!(normalize("می\u{200C}خوام"), joined);
    assert_eq!(normalize("می خوام"), joined);
    assert_eq!(normalize("نمی خوام"), normalize("نمیخوام"));
    assert_eq!(normalize("جمعه ها"), normalize("جمعه\u{200C}ها"));
    check("خانهٔ", "خانه");
}

#[test]
fn controls_and_bidi_marks_vanish() {
    check("\u{202B}سلام\u{202C}", "سلام");
    check("he\u{200B}llo\u{FEFF}", "hello");
    check("a\u{0000}b\u{0007}c", "a b c");
    check("\u{200F}hi\u{200E}", "hi");
    check("😀🎉", "");
    check("", "");
}

#[test]
fn idempotent_on_examples() {
    for text in [
        "Hello there!",
        "مَرْحَبًا يا صديقي",
        "می‌خوام سفارشم رو لغو کنم",
        "ok 👍 thanks",
    ] {
        let once = normalize(text);
        assert_eq!(normalize(&once), once, "{text:?}");
    }
}

#[track_caller]
fn detect(input: &str, expected: Option<Lang>) {
    assert_eq!(
        detect_language(input),
        expected,
        "detect_language({input:?})"
    );
}

#[test]
fn language_detection() {
    detect("where is my order", Some(Lang::En));
    detect("أين طلبي؟", Some(Lang::Ar));
    detect("هل يمكنني الدفع عند الاستلام", Some(Lang::Ar));
    detect("سفارشم کجاست؟", Some(Lang::Fa));
    detect("پرداخت در محل دارید", Some(Lang::Fa));
    // Persian typed with Arabic ي/ك still reads as Persian thanks to its words.
    detect("ميخوام سفارشم رو لغو كنم", Some(Lang::Fa));
    detect("ممنون، خیلی لطف کردید", Some(Lang::Fa));
    detect("كم تكلفة الشحن؟", Some(Lang::Ar));
    detect("مرحبا hello everyone here", Some(Lang::En));
    detect("😀🎉", None);
    detect("12345 ٤٥٦", None);
    detect("", None);
    detect("?!", None);
}

#[test]
fn lang_codes() {
    assert_eq!(Lang::parse("ar-EG"), Some(Lang::Ar));
    assert_eq!(Lang::parse("fa_IR"), Some(Lang::Fa));
    assert_eq!(Lang::parse("en-US"), Some(Lang::En));
    assert_eq!(Lang::parse("EN"), Some(Lang::En));
    assert_eq!(Lang::parse("de"), None);
    assert_eq!(Lang::parse(""), None);
    for lang in Lang::ALL {
        assert_eq!(Lang::parse(lang.as_str()), Some(lang));
    }
}
