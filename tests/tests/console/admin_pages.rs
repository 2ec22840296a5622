//! Issue 15 in the console's admin pages and reports, at desktop size (1280×800), in
//! a real Chromium against a real hub: the site settings list origins the widget was
//! refused on, with one click to allow one (point 1), and edit the callback threshold
//! (point 3); alerts and reports speak the reader's language, with plural rules, link
//! to the conversation, count only settled bot conversations as settled, and list the
//! typo that made the bot hand off (point 10). axe-core runs in each of those pages and
//! fails the test on a serious or critical violation.

use super::*;

/// The widget's tests' host page server: pages on another origin than the hub.
#[path = "../browser/support.rs"]
#[allow(dead_code)]
mod host;

/// A browser at desktop size whose page raised no uncaught error, closed (and
/// photographed on failure) whatever happens.
async fn at_desktop(
    name: &'static str,
    test: impl AsyncFnOnce(&Browser) -> Result<()>,
) -> Result<()> {
    let (client, session) = salam_e2e::chromium::start("1280,800").await?;
    let browser = Browser {
        client,
        name,
        _session: session,
    };
    let mut result = test(&browser).await;
    if result.is_ok() {
        let errors = browser.js("return window.salamErrors || [];").await?;
        if errors.as_array().is_some_and(|list| !list.is_empty()) {
            result = Err(anyhow::anyhow!(
                "{name}: uncaught errors in the console: {errors}"
            ));
        }
    }
    if result.is_err() {
        let _ = browser.screenshot(&format!("failure-{name}")).await;
    }
    browser.close().await;
    result
}

/// Runs axe-core (pinned in `tests/axe`) on the page; fails on any serious or critical
/// violation.
async fn accessible(browser: &Browser, page: &str) -> Result<()> {
    salam_e2e::axe::check(
        &browser.client,
        "document",
        &format!("{}: {page}", browser.name),
    )
    .await
}

/// The text of the element matching `css` ("" when there is none).
async fn text_of(browser: &Browser, css: &str) -> Result<String> {
    let css = serde_json::to_string(css)?;
    let value = browser
        .js(&format!(
            "const e = document.querySelector({css}); return e ? e.textContent : '';"
        ))
        .await?;
    Ok(value.as_str().unwrap_or_default().to_owned())
}

/// Waits until the bot has said something in the conversation.
async fn bot_replied(visitor: &mut WsClient) -> Result<()> {
    visitor
        .recv_until(|frame| {
            matches!(frame, ServerFrame::Message(m) if m.author.kind == salam_protocol::AuthorKind::Bot)
        })
        .await?;
    Ok(())
}

/// Point 10: four bot conversations (one the bot answered and the visitor closed; one
/// it answered that is still open; one whose visitor asked for a person, closed and
/// rated it 1 with a comment; one whose typos the bot missed twice, so it handed off),
/// then the reports and the alerts in English, Arabic and Persian.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_and_reports_speak_the_readers_language() -> Result<()> {
    let hub = TestHub::start().await?;
    hub.set_site_settings(r#"{"bot": true}"#).await?;
    // Settled by the bot: answered, then closed by the visitor.
    let (mut settled, settled_id) = hub.visitor_says("where is my order").await?;
    bot_replied(&mut settled).await?;
    settled
        .send_json(&json!({"type": "close", "conversation": settled_id}))
        .await?;
    hub.wait_for(&settled_id, |c| c.state == ConversationState::Closed)
        .await?;
    // Answered, and the visitor is still there: not settled yet.
    let (mut open, open_id) = hub.visitor_says("where is my order").await?;
    bot_replied(&mut open).await?;
    ensure!(
        hub.state
            .store
            .conversation(&open_id)
            .await?
            .map(|c| c.state)
            == Some(ConversationState::Bot),
        "the answered conversation should still be with the bot"
    );
    // Asked for a person, gave up waiting, rated it 1 with a comment.
    let comment = "Nobody came";
    let (mut unhappy, unhappy_id) = hub
        .visitor_says("I want to talk to a person please")
        .await?;
    hub.wait_for(&unhappy_id, |c| c.state == ConversationState::Queued)
        .await?;
    unhappy
        .send_json(&json!({"type": "close", "conversation": unhappy_id}))
        .await?;
    hub.wait_for(&unhappy_id, |c| c.state == ConversationState::Closed)
        .await?;
    unhappy
        .send_json(
            &json!({"type": "rate", "conversation": unhappy_id, "score": 1, "comment": comment}),
        )
        .await?;
    // Two typos the bot cannot read: the second one makes it hand off.
    let first_typo = "do yu hav zebra stripez";
    let handoff_typo = "waht abuot the blnder i bougt";
    let (mut typist, typist_id) = hub.visitor_says(first_typo).await?;
    bot_replied(&mut typist).await?;
    typist
        .send_json(&json!({"type": "send", "client_id": "second", "text": handoff_typo}))
        .await?;
    hub.wait_for(&typist_id, |c| c.state == ConversationState::Queued)
        .await?;
    let admin_token = hub.admin_token().await?;
    let started = Instant::now();
    while rest(hub.addr, &admin_token, "GET", "/api/alerts", Value::Null).await?["alerts"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        ensure!(
            started.elapsed() < UI_WAIT,
            "the low rating raised no alert"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    at_desktop("admin", async |admin| {
        admin
            .sign_in(&hub, &hub.admin_email, &hub.admin_password)
            .await?;

        // Reports, in English.
        admin.click("#nav button[data-view='reports']").await?;
        admin.find("#r-handoffs li[data-reason='misses']").await?;
        ensure!(
            text_of(admin, "#r-conversations").await? == "4",
            "conversations"
        );
        let cards = text_of(admin, ".cards").await?;
        ensure!(cards.contains("4 with the bot"), "{cards}");
        // The open conversation the bot answered is not settled: 1 of 4.
        ensure!(text_of(admin, "#r-deflection").await? == "25%", "{cards}");
        ensure!(cards.contains("1 settled by the bot"), "{cards}");
        ensure!(
            cards.contains("average 1 of 5 (1 rating)"),
            "one rating, singular: {cards}"
        );
        let reasons = text_of(admin, "#r-handoffs").await?;
        ensure!(
            reasons.contains("Bot did not understand")
                && reasons.contains("Visitor asked for a person"),
            "{reasons}"
        );
        ensure!(
            !reasons.contains("misses") && !reasons.contains("requested"),
            "raw codes: {reasons}"
        );
        // The typo that made the bot give up is there, with the first one.
        let unanswered = admin.texts("#r-unanswered .cluster").await?;
        for typo in [first_typo, handoff_typo] {
            ensure!(
                unanswered
                    .iter()
                    .any(|row| row.contains(typo) && row.contains("asked once")),
                "{typo:?} is not among the unanswered questions: {unanswered:?}"
            );
        }
        let page = text_of(admin, "#view-reports").await?;
        ensure!(
            !page.contains("1 times") && !page.contains("1 ratings"),
            "{page}"
        );
        admin.screenshot("report-reasons-en").await?;
        accessible(admin, "the reports").await?;

        // In Arabic: the reasons and the plural forms (one, two, few) are Arabic.
        admin.language("ar").await?;
        admin.wait_text("#r-handoffs", "لم يفهم الروبوت").await?;
        let cards = text_of(admin, ".cards").await?;
        ensure!(cards.contains("محادثة واحدة حلّها الروبوت"), "{cards}");
        ensure!(cards.contains("(تقييم واحد)"), "{cards}");
        let reasons = text_of(admin, "#r-handoffs").await?;
        ensure!(reasons.contains("طلب الزائر التحدث إلى شخص"), "{reasons}");
        ensure!(
            !reasons.contains("misses")
                && !reasons.contains("requested")
                && !reasons.contains("Bot"),
            "{reasons}"
        );
        let unanswered = text_of(admin, "#r-unanswered").await?;
        ensure!(
            unanswered.contains("سُئل مرة واحدة") && !unanswered.contains("times"),
            "{unanswered}"
        );
        admin.screenshot("report-reasons-ar").await?;
        accessible(admin, "the reports in Arabic").await?;

        // In Persian: Persian words and Persian digits.
        admin.language("fa").await?;
        admin.wait_text("#r-handoffs", "ربات متوجه نشد").await?;
        ensure!(
            text_of(admin, "#r-conversations").await? == "۴",
            "Persian digits"
        );
        let cards = text_of(admin, ".cards").await?;
        ensure!(cards.contains("۱ گفتگو را ربات حل کرد"), "{cards}");
        ensure!(
            text_of(admin, "#r-unanswered")
                .await?
                .contains("۱ بار پرسیده شد"),
            "Persian count"
        );

        // Alerts: words, not codes, in the reader's language, and a link to the chat.
        admin.language("en").await?;
        admin.click("#nav button[data-view='admin']").await?;
        admin.click("#admin-tab-alerts").await?;
        admin
            .find("#alerts-table tr[data-kind='low_rating']")
            .await?;
        let shown = text_of(admin, "#alerts-table").await?;
        ensure!(
            shown.contains("Low rating")
                && shown.contains("Rated 1 of 5")
                && shown.contains(comment),
            "{shown}"
        );
        ensure!(
            !shown.contains("low_rating") && !shown.contains("rated 1/5"),
            "raw: {shown}"
        );
        accessible(admin, "the alerts").await?;
        admin.language("ar").await?;
        admin.wait_text("#alerts-table", "تقييم منخفض").await?;
        let shown = text_of(admin, "#alerts-table").await?;
        ensure!(
            shown.contains("التقييم") && !shown.contains("low_rating"),
            "{shown}"
        );
        admin.screenshot("alerts-ar").await?;
        accessible(admin, "the alerts in Arabic").await?;
        admin.language("en").await?;
        admin.wait_text("#alerts-table", "Low rating").await?;
        // A new low rating pops up live, in words too.
        settled
            .send_json(&json!({"type": "rate", "conversation": settled_id, "score": 2}))
            .await?;
        admin
            .wait_text("#toast", "Low rating · Rated 2 of 5")
            .await?;
        ensure!(
            !text_of(admin, "#toast").await?.contains("low_rating"),
            "raw code in the toast"
        );
        let link = format!("#alerts-table a.alert-conversation[data-conversation='{unhappy_id}']");
        ensure!(
            admin
                .js(&format!(
                    "return document.querySelector(\"{link}\").getAttribute('href');"
                ))
                .await?
                == format!("#inbox/{unhappy_id}"),
            "the conversation is a link into the inbox"
        );
        admin.click(&link).await?;
        admin
            .wait(
                "the inbox",
                "return !document.getElementById('view-inbox').hidden;",
            )
            .await?;
        admin.find("#chat-state[data-state='closed']").await?;
        admin
            .wait_text("#messages", "talk to a person please")
            .await?;
        admin.screenshot("alert-opens-conversation").await?;
        Ok(())
    })
    .await?;
    drop((open, typist, settled));
    Ok(())
}

/// Points 1 and 3 in the site settings. A page on an origin the site does not allow
/// loads the widget; the site's settings list that origin; one click allows it, and
/// the widget on that page then connects. The callback threshold is edited there, and
/// a value the hub refuses shows the hub's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_settings_allow_a_refused_origin_and_edit_the_callback_threshold() -> Result<()> {
    let hub = TestHub::start().await?;
    let pages = host::HostPages::start().await?;
    let foreign = pages.origin();
    let url = pages.page(
        "/shop.html",
        host::host_page(&hub.http(), &hub.site.key, "", "", ""),
    );
    let admin_token = hub.admin_token().await?;
    let refused_path = format!("/api/sites/{}/refused-origins", hub.site.id);
    let card = format!("section.site[data-id='{}']", hub.site.id);

    at_desktop("owner", async |owner| {
        // A visitor on the foreign page opens the chat: the hub refuses the origin.
        owner.client.goto(&url).await?;
        open_widget(owner).await?;
        let started = Instant::now();
        loop {
            let refused = rest(hub.addr, &admin_token, "GET", &refused_path, Value::Null).await?;
            if refused["origins"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|entry| entry["origin"] == foreign.as_str())
            {
                break;
            }
            ensure!(started.elapsed() < UI_WAIT, "the hub never listed {foreign}: {refused}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // The owner sees it in the site's settings, and allows it with one click.
        owner.sign_in(&hub, &hub.admin_email, &hub.admin_password).await?;
        owner.click("#nav button[data-view='admin']").await?;
        owner.click("#admin-tab-sites").await?;
        let entry = format!("{card} .refused-list li[data-origin='{foreign}']");
        owner.find(&entry).await?;
        // How often depends on the widget's attempts: once, or a few times.
        owner.wait_text(&entry, "refused").await?;
        owner.wait_text(&entry, ", last ").await?;
        scroll_to(owner, &entry).await?;
        owner.screenshot("settings-refused-origin").await?;
        accessible(owner, "the site settings").await?;
        // The same in Arabic (right to left), then back.
        owner.language("ar").await?;
        owner.wait_text(&entry, "رُفض").await?;
        owner.wait_text(&entry, "آخرها").await?;
        owner.wait_text(&format!("{entry} .refused-allow"), "السماح").await?;
        scroll_to(owner, &entry).await?;
        owner.screenshot("settings-refused-origin-ar").await?;
        accessible(owner, "the site settings in Arabic").await?;
        owner.language("en").await?;
        owner.find(&format!("{entry} .refused-allow")).await?;
        owner.click(&format!("{entry} .refused-allow")).await?;
        owner.find(&format!("{card} .refused-none")).await?;
        let origins = owner
            .js(&format!("return document.querySelector(\"{card} textarea\").value;"))
            .await?;
        ensure!(
            origins.as_str().is_some_and(|text| text.lines().any(|line| line == foreign)),
            "the origins field shows the allowed origin: {origins}"
        );
        let sites = rest(hub.addr, &admin_token, "GET", "/api/sites", Value::Null).await?;
        let site = sites["sites"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|site| site["id"] == hub.site.id.as_str())
            .context("the site is listed")?;
        ensure!(
            site["origins"].as_array().is_some_and(|list| list.iter().any(|o| o == foreign.as_str())),
            "the hub allows {foreign} now: {site}"
        );

        // The callback threshold: refused with the hub's reason, then saved.
        let field = format!("{card} .site-callback-after");
        owner.clear(&field).await?;
        owner.type_into(&field, "-5").await?;
        owner.click(&format!("{card} .site-save")).await?;
        owner.wait_text(&format!("{card} .site-error"), "callback_after_secs").await?;
        scroll_to(owner, &field).await?;
        owner.screenshot("settings-callback-refused").await?;
        // Longer than a day: the hub's own rule, in its words.
        owner.clear(&field).await?;
        owner.type_into(&field, "100000").await?;
        owner.click(&format!("{card} .site-save")).await?;
        owner.wait_text(&format!("{card} .site-error"), "at most a day").await?;
        owner.clear(&field).await?;
        owner.type_into(&field, "120").await?;
        owner.click(&format!("{card} .site-save")).await?;
        let started = Instant::now();
        loop {
            let sites = rest(hub.addr, &admin_token, "GET", "/api/sites", Value::Null).await?;
            let saved = sites["sites"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|site| site["id"] == hub.site.id.as_str())
                .map(|site| site["settings"]["callback_after_secs"].clone());
            if saved == Some(json!(120)) {
                break;
            }
            ensure!(started.elapsed() < UI_WAIT, "callback_after_secs was not saved: {saved:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ensure!(
            text_of(owner, &format!("{card} .site-error")).await?.is_empty(),
            "the error went away once saved"
        );
        accessible(owner, "the site settings after saving").await?;

        // Back on the page: the widget connects now, and a message gets through.
        owner.client.goto(&url).await?;
        open_widget(owner).await?;
        let text = "Hello from a page that is allowed now";
        let input = widget_element(owner, ".C textarea").await?;
        input.send_keys(text).await?;
        input.send_keys(&Key::Enter.to_string()).await?;
        owner
            .wait(
                "the message to be delivered",
                &format!(
                    "const root = document.querySelector('salam-chat')?.shadowRoot; if (!root) return false; \
                     return [...root.querySelectorAll('.lg2 > .m')].some(e => \
                       e.querySelector('.b')?.textContent === {} && !e.classList.contains('p'));",
                    serde_json::to_string(text)?
                ),
            )
            .await?;
        let stored = hub
            .state
            .store
            .find_conversations(
                std::slice::from_ref(&hub.site.id),
                salam_store::ConversationFilter {
                    limit: 10,
                    ..Default::default()
                },
            )
            .await?;
        ensure!(!stored.is_empty(), "the hub has the visitor's conversation");
        Ok(())
    })
    .await
}

/// Scrolls the element matching `css` to the middle of the window (for a screenshot).
async fn scroll_to(browser: &Browser, css: &str) -> Result<()> {
    let css = serde_json::to_string(css)?;
    browser
        .js(&format!(
            "document.querySelector({css}).scrollIntoView({{block: 'center'}}); return true;"
        ))
        .await?;
    Ok(())
}

/// An element inside the widget's shadow root.
async fn widget_element(browser: &Browser, css: &str) -> Result<Element> {
    let host = browser.client.find(Locator::Css("salam-chat")).await?;
    let root = host.shadow_root().await?;
    root.find(Locator::Css(css))
        .await
        .with_context(|| format!("no {css} in the widget"))
}

/// Waits for the widget, opens its panel with `Salam.open()` (which leaves an open panel
/// open: a widget may come back open after a reload) and waits for it.
async fn open_widget(browser: &Browser) -> Result<()> {
    browser
        .wait(
            "the widget's launcher",
            "const root = document.querySelector('salam-chat')?.shadowRoot; \
             return !!(root && root.querySelector('.L') && window.Salam);",
        )
        .await?;
    browser.js("window.Salam.open(); return true;").await?;
    browser
        .wait(
            "the widget's panel",
            "const p = document.querySelector('salam-chat')?.shadowRoot?.querySelector('.P'); \
             return !!p && !p.hidden && p.getBoundingClientRect().height > 100;",
        )
        .await?;
    Ok(())
}

/// The admin pages on a phone (375×667): the site settings (with a refused origin
/// listed), the alerts (with one) and the reports fit the screen's width, with nothing
/// to scroll sideways, in English and Arabic, and axe-core finds nothing serious there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_pages_fit_a_phone() -> Result<()> {
    let hub = TestHub::start().await?;
    // Something on each page: an alert (a rating of 1) and a refused origin.
    let (mut unhappy, unhappy_id) = hub.visitor_says("I want to talk to a person").await?;
    unhappy
        .send_json(&json!({"type": "close", "conversation": unhappy_id}))
        .await?;
    hub.wait_for(&unhappy_id, |c| c.state == ConversationState::Closed)
        .await?;
    unhappy
        .send_json(
            &json!({"type": "rate", "conversation": unhappy_id, "score": 1, "comment": "slow"}),
        )
        .await?;
    let pages = host::HostPages::start().await?;
    let url = pages.page(
        "/phone.html",
        host::host_page(&hub.http(), &hub.site.key, "", "", ""),
    );
    let (client, session) = salam_e2e::chromium::start("1280,800").await?;
    let phone = Browser {
        client,
        name: "phone",
        _session: session,
    };
    let result = async {
        super::inbox::viewport(&phone, 375, 667).await?;
        phone.client.goto(&url).await?;
        open_widget(&phone).await?;
        phone
            .sign_in(&hub, &hub.admin_email, &hub.admin_password)
            .await?;
        let width = phone.js("return window.innerWidth;").await?;
        ensure!(
            width.as_u64() == Some(375),
            "not a phone-sized window: {width}"
        );
        let pages: [(&str, Option<&str>, &str); 3] = [
            ("admin", Some("#admin-tab-sites"), ".refused-list li"),
            (
                "admin",
                Some("#admin-tab-alerts"),
                "#alerts-table a.alert-conversation",
            ),
            ("reports", None, "#view-reports"),
        ];
        for lang in ["en", "ar"] {
            phone.language(lang).await?;
            for (view, tab, shown) in pages {
                // The navigation may wrap on a phone, but every button stays reachable.
                phone
                    .js(&format!(
                        "document.querySelector(\"#nav button[data-view='{view}']\").click();"
                    ))
                    .await?;
                if let Some(tab) = tab {
                    phone
                        .js(&format!("document.querySelector('{tab}').click();"))
                        .await?;
                }
                phone.find(shown).await?;
                let overflow = phone
                    .js("return [document.documentElement.scrollWidth, window.innerWidth];")
                    .await?;
                ensure!(
                    overflow[0].as_u64() <= overflow[1].as_u64(),
                    "{lang} {view} {tab:?}: the page scrolls sideways on a phone \
                     (scrollWidth, innerWidth) = {overflow}"
                );
                let name = format!(
                    "phone-{view}-{}-{lang}",
                    tab.unwrap_or("").trim_start_matches("#admin-tab-")
                );
                phone.screenshot(&name).await?;
                accessible(&phone, &name).await?;
            }
        }
        Ok(())
    }
    .await;
    if result.is_err() {
        let _ = phone.screenshot("failure-phone").await;
    }
    phone.close().await;
    drop(unhappy);
    result
}
