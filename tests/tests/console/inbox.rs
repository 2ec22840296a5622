//! Issue 15, the console's part: the inbox and the chat pane as an agent lives in them,
//! in a real Chromium against a real hub, at desktop (1280×800) and phone (375×667)
//! sizes, with axe-core run in the page.
//!
//! - the list names visitors by name, e-mail or locale (not "Visitor c06ue"), shows the
//!   last message, and a new message redraws only its own row (and adds only its own
//!   line in the open chat);
//! - the chat pane has a placeholder when nothing is open; on a phone one pane shows at
//!   a time, with a way back;
//! - search looks in every tab, closed conversations included;
//! - a take at capacity says so in plain words; system lines follow the agent's
//!   language (from the event code); the Arabic composer placeholder reads right to
//!   left;
//! - accept mode: an offer with a countdown, Accept, and Let it pass;
//! - the transfer form lists the site's departments and those its chats carry;
//! - the contact details a visitor left show in the conversation's details.

use super::*;

/// Resizes the window so that the page's viewport is `width`×`height`.
pub(crate) async fn viewport(browser: &Browser, width: u32, height: u32) -> Result<()> {
    browser.client.set_window_size(width, height).await?;
    let inner = browser
        .js("return [window.innerWidth, window.innerHeight];")
        .await?;
    let (inner_width, inner_height) = (
        inner[0].as_u64().unwrap_or(0),
        inner[1].as_u64().unwrap_or(0),
    );
    if inner_width != u64::from(width) || inner_height != u64::from(height) {
        // A window frame takes some room: grow the window by the difference.
        let grown_width = width + (width - inner_width.min(u64::from(width)) as u32);
        let grown_height = height + (height - inner_height.min(u64::from(height)) as u32);
        browser
            .client
            .set_window_size(grown_width, grown_height)
            .await?;
    }
    let inner = browser
        .js("return [window.innerWidth, window.innerHeight];")
        .await?;
    ensure!(
        inner[0].as_u64() == Some(u64::from(width)) && inner[1].as_u64() == Some(u64::from(height)),
        "the viewport is {inner}, not {width}×{height}"
    );
    Ok(())
}

/// Runs axe-core in the page; fails on any serious or critical violation.
async fn axe(browser: &Browser, what: &str) -> Result<()> {
    salam_e2e::axe::check(
        &browser.client,
        "document",
        &format!("{}: {what}", browser.name),
    )
    .await
}

/// A visitor who greets with `hello` (and a locale), identifies with `claims` if any,
/// and asks for a person; returns the visitor and the conversation.
async fn visitor_asking(
    hub: &TestHub,
    locale: Option<&str>,
    claims: Option<Value>,
    text: &str,
) -> Result<(WsClient, String)> {
    let mut visitor = WsClient::connect_visitor(hub.addr, Some(salam_e2e::SHOP_ORIGIN)).await?;
    let mut hello = json!({"type": "hello", "v": 1, "site": hub.site.key});
    if let Some(locale) = locale {
        hello["locale"] = json!(locale);
    }
    visitor.send_json(&hello).await?;
    visitor
        .recv_until(|frame| matches!(frame, ServerFrame::Welcome { .. }))
        .await?;
    if let Some(mut claims) = claims {
        claims["exp"] = json!(salam_hub::clock::now_ms() / 1000 + 600);
        let token = salam_hub::identity::sign(&hub.site.identity_secret, &claims);
        visitor
            .send_json(&json!({"type": "identify", "token": token}))
            .await?;
    }
    visitor
        .send_json(&json!({"type": "send", "client_id": "ask-1", "text": text}))
        .await?;
    let (ack, skipped) = visitor
        .recv_until(|frame| matches!(frame, ServerFrame::Ack { .. }))
        .await?;
    ensure!(
        !skipped
            .iter()
            .any(|frame| matches!(frame, ServerFrame::Error { .. })),
        "the visitor was refused: {skipped:?}"
    );
    let ServerFrame::Ack { conversation, .. } = ack else {
        unreachable!("only an ack is awaited")
    };
    Ok((visitor, conversation))
}

/// The visitor says `text` in `conversation` and waits for its ack.
async fn say(
    visitor: &mut WsClient,
    conversation: &str,
    client_id: &str,
    text: &str,
) -> Result<()> {
    visitor
        .send_json(&json!({"type": "send", "conversation": conversation, "client_id": client_id, "text": text}))
        .await?;
    visitor
        .recv_until(|frame| matches!(frame, ServerFrame::Ack { .. }))
        .await?;
    Ok(())
}

fn row(conversation: &str) -> String {
    format!("#conversation-list li[data-id='{conversation}']")
}

/// Issue 15, points 9 and 12: names, previews, the placeholder, search in every tab,
/// rows and lines redrawn only where something changed, the phone layout, axe-core.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_names_visitors_previews_and_redraws_only_what_changed() -> Result<()> {
    let hub = TestHub::start().await?;
    let (sara_id, sara_token) = hub.add_agent("Sara", Some(3), &["support"]).await?;

    with_browsers!(sara => {
        viewport(&sara, 1280, 800).await?;
        sara.sign_in(&hub, "sara@shop.test", AGENT_PASSWORD).await?;
        // Nothing open yet: the chat pane says what to do.
        sara.wait_text("#chat-placeholder", "No conversation open").await?;
        sara.wait_text("#details", "visitor's details").await?;
        // Away, so that routing leaves the chats in the queue.
        sara.select("#presence", "away").await?;
        wait_presence(&hub, &sara_token, &sara_id, "away").await?;

        let (mut named, named_chat) = visitor_asking(
            &hub, None, Some(json!({"sub": "u-layla", "name": "Layla"})),
            "I want to talk to a person about zebra stripes",
        ).await?;
        let (mut mailed, mailed_chat) = visitor_asking(
            &hub, None, Some(json!({"sub": "u-omid", "email": "omid@example.com"})),
            "I want to talk to a person please",
        ).await?;
        let (_persian, persian_chat) = visitor_asking(
            &hub, Some("fa"), None, "I want to talk to a person",
        ).await?;
        // A conversation the visitor closed, which only a search across tabs finds.
        let (mut closer, closed_chat) = visitor_asking(&hub, None, None, "I want to talk to a person about a zebra").await?;
        hub.wait_for(&closed_chat, |c| c.state == ConversationState::Queued).await?;
        sara.find(&row(&closed_chat)).await?;
        closer.send_json(&json!({"type": "close", "conversation": closed_chat})).await?;
        hub.wait_for(&closed_chat, |c| c.state == ConversationState::Closed).await?;

        for chat in [&named_chat, &mailed_chat, &persian_chat] {
            hub.wait_for(chat, |c| c.state == ConversationState::Queued).await?;
            sara.find(&row(chat)).await?;
        }
        sara.wait_text(&format!("{} .item-name", row(&named_chat)), "Layla").await?;
        sara.wait_text(&format!("{} .item-name", row(&mailed_chat)), "omid@example.com").await?;
        sara.wait_text(&format!("{} .item-name", row(&persian_chat)), "Visitor (Persian)").await?;
        // The closed one leaves the queue.
        sara.wait("the closed chat to leave the queue", &format!("return !document.querySelector(\"{}\");", row(&closed_chat))).await?;

        // The last message shows under each name.
        say(&mut named, &named_chat, "n-2", "Order 4521 has not arrived").await?;
        sara.wait_text(&format!("{} .item-preview", row(&named_chat)), "Order 4521 has not arrived").await?;

        // A new message redraws its own row only: the other rows keep their nodes.
        // (First the queue positions, which arrive over REST and change every row.)
        for chat in [&named_chat, &mailed_chat, &persian_chat] {
            sara.wait_text(&format!("{} .item-facts", row(chat)), "in queue").await?;
        }
        sara.js(
            "for (const li of document.querySelectorAll('#conversation-list li')) li.salamMark = li.dataset.id; \
             return document.querySelectorAll('#conversation-list li').length;",
        ).await?;
        let rows_before = sara.js("return document.querySelectorAll('#conversation-list li').length;").await?;
        say(&mut mailed, &mailed_chat, "m-2", "Parcel 777 is missing").await?;
        sara.wait_text(&format!("{} .item-preview", row(&mailed_chat)), "Parcel 777 is missing").await?;
        let kept = sara.js(&format!(
            "return [document.querySelector(\"{named}\").salamMark, document.querySelector(\"{persian}\").salamMark, \
             document.querySelector(\"{mailed}\").salamMark || null, document.querySelectorAll('#conversation-list li').length];",
            named = row(&named_chat), persian = row(&persian_chat), mailed = row(&mailed_chat),
        )).await?;
        ensure!(
            kept[0] == named_chat.as_str() && kept[1] == persian_chat.as_str() && kept[2].is_null() && kept[3] == rows_before,
            "rows other than the changed one were rebuilt (or the changed one was not): {kept}"
        );

        // Open a chat; a new message adds one line and keeps the others.
        sara.click(&row(&named_chat)).await?;
        sara.wait_text("#messages .msg.author-visitor", "Order 4521").await?;
        ensure!(sara.js("return !document.getElementById('chat-placeholder');").await? == true, "the placeholder stayed");
        sara.wait_text("#details .visitor-name", "Layla").await?;
        sara.js("for (const m of document.querySelectorAll('#messages .msg')) m.salamMark = m.dataset.seq; return true;").await?;
        let lines_before = sara.js("return document.querySelectorAll('#messages .msg').length;").await?;
        say(&mut named, &named_chat, "n-3", "It was due last Monday").await?;
        sara.wait_text("#messages .msg.author-visitor", "due last Monday").await?;
        let lines = sara.js(
            "const all = [...document.querySelectorAll('#messages .msg')]; \
             return [all.length, all.filter((m) => m.salamMark === m.dataset.seq).length];",
        ).await?;
        ensure!(
            lines[0].as_u64() == lines_before.as_u64().map(|n| n + 1) && lines[1] == lines_before,
            "the chat was rebuilt instead of one line added: before {lines_before}, after {lines}"
        );
        sara.wait_text("#chat-visitor-name", "Layla").await?;
        axe(&sara, "the inbox with a chat open (desktop)").await?;
        sara.screenshot("inbox-15-desktop").await?;

        // Search looks in every tab: from "Mine", the queued chat and the closed one.
        sara.click("#inbox-tabs button[data-tab='mine']").await?;
        sara.type_into("#search", "zebra").await?;
        sara.find(&row(&closed_chat)).await?;
        sara.find(&row(&named_chat)).await?;
        sara.wait_text("#search-scope", "every tab").await?;
        ensure!(
            sara.js(&format!("return !document.querySelector(\"{}\");", row(&mailed_chat))).await? == true,
            "a chat without the word is in the results"
        );
        sara.screenshot("inbox-15-search").await?;
        sara.clear("#search").await?;
        sara.type_into("#search", " ").await?;
        sara.click("#inbox-tabs button[data-tab='queue']").await?;
        sara.find(&row(&mailed_chat)).await?;

        // A phone: one pane at a time, with a way back to the list.
        viewport(&sara, 375, 667).await?;
        sara.wait_text("#chat-visitor-name", "Layla").await?;
        let layout = sara.js(
            "const shown = (s) => getComputedStyle(document.querySelector(s)).display !== 'none'; \
             return [shown('.list-pane'), shown('.chat-pane'), shown('#back-to-list'), \
                     document.documentElement.scrollWidth <= window.innerWidth];",
        ).await?;
        ensure!(layout == json!([false, true, true, true]), "phone layout with a chat open: {layout}");
        axe(&sara, "the inbox with a chat open (phone)").await?;
        sara.screenshot("inbox-15-phone-chat").await?;
        sara.click("#back-to-list").await?;
        sara.wait(
            "the list on a phone",
            "return getComputedStyle(document.querySelector('.list-pane')).display !== 'none' \
             && getComputedStyle(document.querySelector('.chat-pane')).display === 'none';",
        ).await?;
        sara.find(&row(&persian_chat)).await?;
        sara.screenshot("inbox-15-phone-list").await?;
        sara.click(&row(&mailed_chat)).await?;
        sara.wait_text("#chat-visitor-name", "omid@example.com").await?;
        ensure!(
            sara.js("return getComputedStyle(document.querySelector('.list-pane')).display;").await? == "none",
            "the list stayed beside the chat on a phone"
        );
        Ok(())
    })
}

/// Issue 15, points 11 and 5: a take at capacity says so plainly; system lines follow
/// the agent's language from their event code; the Arabic composer placeholder reads
/// right to left; the contact details a visitor left show in the details (point 8).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_system_lines_and_the_arabic_composer() -> Result<()> {
    let hub = TestHub::start().await?;
    let (sara_id, sara_token) = hub.add_agent("Sara", Some(1), &["support"]).await?;

    with_browsers!(sara => {
        viewport(&sara, 1280, 800).await?;
        sara.sign_in(&hub, "sara@shop.test", AGENT_PASSWORD).await?;
        wait_presence(&hub, &sara_token, &sara_id, "online").await?;

        // The first chat is Sara's at once (capacity 1); the second waits.
        let (mut first, first_chat) = visitor_asking(&hub, None, None, "I want to talk to a person").await?;
        hub.wait_for(&first_chat, |c| c.state == ConversationState::Assigned).await?;
        let (_second, second_chat) = visitor_asking(&hub, None, None, "I want to talk to a person too").await?;
        hub.wait_for(&second_chat, |c| c.state == ConversationState::Queued).await?;

        // Taking the second by hand: refused, and the console says why in plain words.
        sara.click("#inbox-tabs button[data-tab='queue']").await?;
        sara.click(&row(&second_chat)).await?;
        sara.click("#take-button").await?;
        sara.wait_text("#toast", "as many chats as your capacity allows").await?;
        let toast = sara.texts("#toast").await?.concat();
        ensure!(!toast.contains("Something went wrong") && !toast.contains("agent is at capacity"), "toast: {toast}");
        sara.screenshot("take-at-capacity").await?;

        // The contact form, left in the first chat, shows in its details.
        first
            .send_json(&json!({"type": "contact", "conversation": first_chat, "name": "Reza Karimi",
                "email": "reza@example.com", "phone": "+98 912 555 0101", "message": "Call me after 5 pm"}))
            .await?;
        sara.click("#inbox-tabs button[data-tab='mine']").await?;
        sara.click(&row(&first_chat)).await?;
        sara.wait_text("#contact-left .contact-message", "Call me after 5 pm").await?;
        sara.wait_text("#contact-left .contact-email", "reza@example.com").await?;
        sara.wait_text("#contact-left .contact-phone", "+98 912 555 0101").await?;
        sara.wait_text("#details .visitor-name", "Reza Karimi").await?;
        sara.wait_text("#chat-visitor-name", "Reza Karimi").await?;
        sara.wait_text(&format!("{} .item-name", row(&first_chat)), "Reza Karimi").await?;

        // System lines, from their codes, in the agent's language.
        let joined = "#messages .msg.kind-event[data-event='joined'] .text";
        let queued = "#messages .msg.kind-event[data-event='queued'] .text";
        sara.wait_text(joined, "Sara joined the conversation").await?;
        sara.wait_text(queued, "waiting for a person").await?;
        sara.language("ar").await?;
        sara.wait_text(joined, "انضم Sara إلى المحادثة").await?;
        sara.wait_text(queued, "بانتظار موظف").await?;

        // The Arabic composer: right to left while empty, its key names isolated.
        let composer = sara.js(
            "const c = document.getElementById('composer'); \
             return [c.dir, getComputedStyle(c).direction, c.placeholder];",
        ).await?;
        ensure!(composer[0] == "rtl" && composer[1] == "rtl", "the Arabic composer: {composer}");
        let placeholder = composer[2].as_str().unwrap_or_default();
        ensure!(
            placeholder.contains("\u{2068}Shift+Enter\u{2069}") && placeholder.starts_with("اكتب"),
            "the Latin key names are not isolated: {placeholder:?}"
        );
        axe(&sara, "the Arabic console with a chat open").await?;
        sara.screenshot("composer-ar").await?;
        sara.type_into("#composer", "hello").await?;
        sara.wait("the composer following the text", "return document.getElementById('composer').dir === 'auto';").await?;
        sara.clear("#composer").await?;

        sara.language("fa").await?;
        sara.wait_text(joined, "Sara به گفتگو پیوست").await?;
        sara.wait_text(queued, "در انتظار یک کارشناس").await?;
        sara.screenshot("events-fa").await?;
        sara.language("en").await?;
        Ok(())
    })
}

/// Issue 15, point 11: accept mode offers a chat with a countdown, Accept and Let it
/// pass; the transfer form lists the site's departments and those its chats carry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_mode_offers_with_a_countdown_and_transfer_lists_departments() -> Result<()> {
    let hub = TestHub::start_with(|config| config.routing.accept_timeout_secs = 30).await?;
    let admin_token = hub.admin_token().await?;
    let (sara_id, sara_token) = hub.add_agent("Sara", Some(3), &["support"]).await?;
    let (omar_id, omar_token) = hub.add_agent("Omar", Some(3), &["returns"]).await?;
    for department in ["returns", "sales", "support"] {
        rest(
            hub.addr,
            &admin_token,
            "POST",
            "/api/departments",
            json!({"site_id": hub.site.id, "name": department}),
        )
        .await?;
    }

    with_browsers!(sara => {
        viewport(&sara, 1280, 800).await?;
        sara.sign_in(&hub, "sara@shop.test", AGENT_PASSWORD).await?;
        wait_presence(&hub, &sara_token, &sara_id, "online").await?;

        // A chat is offered: a card with a countdown that ticks down.
        let (_visitor, chat) = visitor_asking(&hub, None, None, "I want to talk to a person").await?;
        let card = format!("#offers .offer[data-id='{chat}']");
        sara.find(&card).await?;
        let countdown = format!("{card} .offer-countdown");
        sara.wait_text(&countdown, "seconds left to accept").await?;
        let seconds = |text: &str| -> Option<u64> { text.split_whitespace().next()?.parse().ok() };
        let first = sara.texts(&countdown).await?.concat();
        let first_seconds = seconds(&first).context("no number in the countdown")?;
        ensure!((1..=30).contains(&first_seconds), "countdown {first:?}");
        let countdown_json = serde_json::to_string(&countdown)?;
        sara.wait(
            "the countdown to tick",
            &format!(
                "const n = parseInt(document.querySelector({countdown_json})?.textContent, 10); \
                 return n < {first_seconds};"
            ),
        ).await?;
        ensure!(sara.js("return document.title.startsWith('(1)');").await? == true, "the offer is not in the title");
        axe(&sara, "the inbox with an offer").await?;
        sara.screenshot("offer").await?;

        // Accept: the chat is Sara's and opens; the card goes.
        sara.click(&format!("{card} .offer-accept")).await?;
        hub.wait_for(&chat, |c| c.state == ConversationState::Assigned && c.agent_id.as_deref() == Some(sara_id.as_str())).await?;
        sara.find("#chat-state[data-state='assigned']").await?;
        sara.wait("the offer card to go", &format!("return !document.querySelector(\"{card}\");")).await?;

        // Another offer, let pass: the card goes at once, the chat is not Sara's.
        let (_other, other_chat) = visitor_asking(&hub, None, None, "I want to talk to a person now").await?;
        let other_card = format!("#offers .offer[data-id='{other_chat}']");
        sara.find(&other_card).await?;
        sara.click(&format!("{other_card} .offer-decline")).await?;
        sara.wait("the declined card to go", &format!("return !document.querySelector(\"{other_card}\");")).await?;
        let stored = hub.state.store.conversation(&other_chat).await?.context("the other chat")?;
        ensure!(stored.state == ConversationState::Queued, "the chat let pass is {:?}", stored.state);

        // The accepted chat goes to the returns team (Omar serves it), which the site
        // then drops: the chat still carries it.
        // (Omar comes online only now, so that the offers above were Sara's.)
        let _omar = hub.agent(&omar_token).await?;
        wait_presence(&hub, &sara_token, &omar_id, "online").await?;
        sara.click("#transfer-button").await?;
        sara.find("#transfer-department option[value='returns']").await?;
        sara.select("#transfer-department", "returns").await?;
        sara.click("#transfer-submit").await?;
        hub.wait_for(&chat, |c| c.department == "returns").await?;
        rest(hub.addr, &admin_token, "DELETE", &format!("/api/departments/returns?site={}", hub.site.id), Value::Null).await?;
        sara.wait_text("#chat-header", "returns").await?;

        // The transfer form: the site's departments ("support", which Sara serves;
        // "sales", which nobody serves) and the one the chat carries, which the site no
        // longer lists; each that cannot be picked says why.
        sara.click("#transfer-button").await?;
        let expected = json!([
            ["returns", true, "returns (not a department of this site: an admin can add it)"],
            ["sales", true, "sales (no agent serves it)"],
            ["support", false, "support"],
        ]);
        let options_js = "return [...document.querySelectorAll('#transfer-department option')].filter((o) => o.value) \
             .map((o) => [o.value, o.disabled, o.textContent]);";
        let waited = sara
            .wait(
                "the transfer departments",
                &format!("return JSON.stringify((() => {{ {options_js} }})()) === {:?};", expected.to_string()),
            )
            .await;
        if let Err(err) = waited {
            let options = sara.js(options_js).await?;
            bail!("{err:#}: transfer departments {options}");
        }
        sara.screenshot("transfer-departments").await?;
        Ok(())
    })
}
