//! Proactive triggers (issue 19) in a real Chromium: the hub's signed rules evaluated by
//! the widget's trigger module on a host page of another origin. A trigger fires on its
//! condition and not otherwise, respects its frequency cap across reloads, and
//! `Salam.track` fires one; what fired is reported to the hub as the visitor's event.

use crate::support::{Browser, Setup, with_browser};
use anyhow::{Context, Result, ensure};
use salam_protocol::{AuthorKind, MessageKind};
use salam_store::VisitorEventKind;
use serde_json::{Value, json};

/// Sets the test site's triggers.
async fn set_triggers(setup: &Setup, triggers: Value) -> Result<()> {
    let site = setup
        .hub
        .state
        .store
        .site_by_key(&setup.site_key)
        .await?
        .context("no site")?;
    setup
        .hub
        .state
        .store
        .update_site_settings(&site.id, &json!({ "triggers": triggers }).to_string())
        .await?;
    Ok(())
}

/// Waits until the trigger module has loaded and evaluated the page once (it adds its
/// stylesheet, then evaluates at once), and returns the bubble's text, if one shows.
async fn bubble_after_first_look(browser: &Browser) -> Result<Value> {
    browser
        .wait(
            "the trigger module",
            "return root && [...root.querySelectorAll('style')].some(s => s.textContent.includes('.tb{'))",
        )
        .await?;
    browser
        .js("const b = root.querySelector('.tb'); return b && b.textContent")
        .await
}

async fn wait_bubble(browser: &Browser, text: &str) -> Result<()> {
    browser
        .wait(
            &format!("the bubble {text:?}"),
            &format!(
                "const b = root && root.querySelector('.tb .tm'); return b && b.textContent === {}",
                json!(text)
            ),
        )
        .await?;
    Ok(())
}

/// The hub's recorded trigger events of the page's visitor, as `(kind, trigger id)`.
async fn recorded(setup: &Setup, browser: &Browser) -> Result<Vec<(VisitorEventKind, String)>> {
    let token = browser
        .js(&format!(
            "try {{ return JSON.parse(localStorage.getItem('salam:{}')).token }} catch (e) {{ return null }}",
            setup.site_key
        ))
        .await?;
    let Some(visitor) = token.as_str().and_then(|t| t.split('.').next()) else {
        return Ok(Vec::new());
    };
    let events = setup
        .hub
        .state
        .store
        .visitor_events(vec![visitor.to_owned()], 100)
        .await?;
    Ok(events
        .into_iter()
        .filter(|e| e.kind != VisitorEventKind::PageView)
        .map(|e| (e.kind, e.data["trigger"].as_str().unwrap_or("").to_owned()))
        .collect())
}

/// The conversation of the page's visitor's `trigger_converted` event.
async fn converted_conversation(setup: &Setup, browser: &Browser) -> Result<String> {
    let token = browser
        .js(&format!(
            "return JSON.parse(localStorage.getItem('salam:{}')).token",
            setup.site_key
        ))
        .await?;
    let visitor = token
        .as_str()
        .and_then(|t| t.split('.').next())
        .context("no visitor token")?;
    let events = setup
        .hub
        .state
        .store
        .visitor_events(vec![visitor.to_owned()], 100)
        .await?;
    events
        .iter()
        .find(|e| e.kind == VisitorEventKind::TriggerConverted)
        .and_then(|e| e.data["conversation"].as_str())
        .map(str::to_owned)
        .context("no converted event")
}

async fn wait_recorded(
    setup: &Setup,
    browser: &Browser,
    want: &[(VisitorEventKind, &str)],
) -> Result<()> {
    let want: Vec<(VisitorEventKind, String)> =
        want.iter().map(|(k, id)| (*k, id.to_string())).collect();
    let mut got = Vec::new();
    for _ in 0..150 {
        got = recorded(setup, browser).await?;
        got.sort_by_key(|(kind, id)| (kind.as_str(), id.clone()));
        if got == want {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("recorded trigger events {got:?}, want {want:?}")
}

#[tokio::test]
async fn a_url_trigger_fires_on_its_page_only_and_once_per_visitor() -> Result<()> {
    let setup = Setup::new().await?;
    set_triggers(
        &setup,
        json!([{"id": "pricing", "when": [{"kind": "url", "pattern": "/pricing*"}],
                "message": "Questions about our plans?"}]),
    )
    .await?;
    let other = setup.page("/about", "", "", "");
    let pricing = setup.page("/pricing/team", "", "", "");
    with_browser(async |browser| {
        browser.goto(&other).await?;
        let shown = bubble_after_first_look(browser).await?;
        ensure!(shown.is_null(), "a bubble on /about: {shown}");

        browser.goto(&pricing).await?;
        bubble_after_first_look(browser).await?;
        wait_bubble(browser, "Questions about our plans?").await?;
        let bubble = browser
            .js("const b = root.querySelector('.tb'); return [b.getAttribute('role'), b.getAttribute('aria-live'), \
                 b.querySelector('.tx').getAttribute('aria-label'), \
                 b.getBoundingClientRect().bottom <= root.querySelector('.L').getBoundingClientRect().top]")
            .await?;
        ensure!(bubble == json!(["status", "polite", "Close", true]), "{bubble}");
        browser.screenshot("trigger-bubble").await?;
        wait_recorded(&setup, browser, &[(VisitorEventKind::TriggerShown, "pricing")]).await?;

        // Its cap (once per visitor by default): not again after a reload, nor in a
        // new tab session of the same browser.
        browser.goto(&pricing).await?;
        let again = bubble_after_first_look(browser).await?;
        ensure!(again.is_null(), "shown again after a reload: {again}");
        browser.js("sessionStorage.clear(); return 1").await?;
        browser.goto(&pricing).await?;
        let again = bubble_after_first_look(browser).await?;
        ensure!(again.is_null(), "shown again in a new session: {again}");
        wait_recorded(&setup, browser, &[(VisitorEventKind::TriggerShown, "pricing")]).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_time_on_page_trigger_waits_for_its_time_and_a_reply_starts_with_its_message()
-> Result<()> {
    let setup = Setup::new().await?;
    set_triggers(
        &setup,
        json!([{"id": "linger", "when": [{"kind": "time_on_page", "seconds": 4}],
                "message": "Still looking? We are here."}]),
    )
    .await?;
    let url = setup.page("/", "", "", "");
    with_browser(async |browser| {
        browser.goto(&url).await?;
        // Note when the bubble appears, in the page's own clock.
        browser
            .wait(
                "the shadow root",
                "if (!root) return false; if (root.querySelector('.tb')) return 'too late'; \
                 new MutationObserver(() => { if (root.querySelector('.tb') && !window.__tbAt) \
                 window.__tbAt = performance.now(); }).observe(root, {childList: true, subtree: true}); return true",
            )
            .await
            .and_then(|v| {
                ensure!(v == true, "the bubble was there before 4 s: {v}");
                Ok(())
            })?;
        wait_bubble(browser, "Still looking? We are here.").await?;
        let at = browser.js("return window.__tbAt").await?;
        ensure!(at.as_f64().is_some_and(|ms| ms >= 4000.0), "shown at {at} ms");

        browser.shadow(".tb .tm").await?.click().await?;
        browser.wait_panel_open().await?;
        let gone = browser.js("return !root.querySelector('.tb')").await?;
        ensure!(gone == true, "the bubble stays over the open panel");
        wait_recorded(
            &setup,
            browser,
            &[
                (VisitorEventKind::TriggerOpened, "linger"),
                (VisitorEventKind::TriggerShown, "linger"),
            ],
        )
        .await?;

        // The reply starts a conversation whose first line is the trigger's message,
        // from the bot (the hub's signed text, not the page's), then the visitor's.
        browser.type_and_send("Yes, about the team plan").await?;
        browser.wait_line("Yes, about the team plan").await?;
        let class = browser.wait_line("Still looking? We are here.").await?;
        ensure!(!class.split(' ').any(|c| c == "o"), "shown as the visitor's: {class}");
        wait_recorded(
            &setup,
            browser,
            &[
                (VisitorEventKind::TriggerConverted, "linger"),
                (VisitorEventKind::TriggerOpened, "linger"),
                (VisitorEventKind::TriggerReplied, "linger"),
                (VisitorEventKind::TriggerShown, "linger"),
            ],
        )
        .await?;
        let conversation = converted_conversation(&setup, browser).await?;
        let messages = setup
            .hub
            .state
            .store
            .messages_after(&conversation, 0, 50)
            .await?;
        let texts: Vec<(AuthorKind, &str)> = messages
            .iter()
            .filter(|m| m.kind == MessageKind::Text)
            .map(|m| (m.author.kind, m.text.as_str()))
            .take(2)
            .collect();
        ensure!(
            texts
                == [
                    (AuthorKind::Bot, "Still looking? We are here."),
                    (AuthorKind::Visitor, "Yes, about the team plan")
                ],
            "{texts:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn salam_track_fires_its_trigger_and_nothing_else_does() -> Result<()> {
    let setup = Setup::new().await?;
    set_triggers(
        &setup,
        json!([{"id": "checkout", "when": [{"kind": "event", "name": "checkout_failed"}],
                "message": "Payment trouble? Let us help.", "per_visitor": 0, "per_session": 0}]),
    )
    .await?;
    let url = setup.page("/cart", "", "", "");
    with_browser(async |browser| {
        browser.goto(&url).await?;
        let shown = bubble_after_first_look(browser).await?;
        ensure!(shown.is_null(), "a bubble before the event: {shown}");
        browser
            .js("Salam.track('checkout_started', {step: 2}); return 1")
            .await?;
        let shown = browser
            .js("const b = root.querySelector('.tb'); return b && b.textContent")
            .await?;
        ensure!(shown.is_null(), "another event fired it: {shown}");
        // Not over the open panel: it waits until the panel is closed.
        browser.js("Salam.open(); return 1").await?;
        browser.wait_panel_open().await?;
        browser
            .js("Salam.track('checkout_failed', {code: 'card_declined'}); return 1")
            .await?;
        let shown = browser
            .js("const b = root.querySelector('.tb'); return b && b.textContent")
            .await?;
        ensure!(shown.is_null(), "a bubble over the open panel: {shown}");
        browser.js("Salam.close(); return 1").await?;
        wait_bubble(browser, "Payment trouble? Let us help.").await?;
        // The close button takes it away without opening the chat again.
        browser.shadow(".tb .tx").await?.click().await?;
        let state = browser
            .js("const p = root.querySelector('.P'); return [!root.querySelector('.tb'), !p || p.hidden]")
            .await?;
        ensure!(state == json!([true, true]), "{state}");
        wait_recorded(&setup, browser, &[(VisitorEventKind::TriggerShown, "checkout")]).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn scroll_exit_intent_language_and_returning_visitors() -> Result<()> {
    let setup = Setup::new().await?;
    set_triggers(
        &setup,
        json!([
            {"id": "deep", "when": [{"kind": "scroll", "percent": 60}], "message": "Deep reader?"},
            {"id": "leaving", "when": [{"kind": "exit_intent"}, {"kind": "language", "is": "en"}],
             "message": "پیش از رفتن، سؤالی دارید؟"},
            {"id": "back", "when": [{"kind": "visitor", "is": "returning"},
                                    {"kind": "url", "pattern": "/back"}],
             "message": "Welcome back!"},
            {"id": "never", "when": [{"kind": "language", "is": "xx"}], "message": "Never"}
        ]),
    )
    .await?;
    let tall = "<div style=\"height:4000px\">tall</div>";
    let long = setup.page("/long", "data-locale=\"fa\"", "", tall);
    let back = setup.page("/back", "", "", "");
    with_browser(async |browser| {
        browser.goto(&long).await?;
        let shown = bubble_after_first_look(browser).await?;
        ensure!(shown.is_null(), "a bubble before scrolling: {shown}");
        browser
            .js("scrollTo(0, (document.documentElement.scrollHeight - innerHeight) * 0.3); return 1")
            .await?;
        // The scroll handler runs on the next frame; the module's tick every second.
        browser
            .wait("a tick after the scroll", "return new Promise(r => setTimeout(() => r(1), 1200))")
            .await?;
        let shown = browser
            .js("const b = root.querySelector('.tb'); return b && b.textContent")
            .await?;
        ensure!(shown.is_null(), "a bubble at 30%: {shown}");
        browser
            .js("scrollTo(0, document.documentElement.scrollHeight); return 1")
            .await?;
        wait_bubble(browser, "Deep reader?").await?;
        browser.shadow(".tb .tx").await?.click().await?;

        // The mouse leaving through the top edge.
        browser
            .js("document.dispatchEvent(new MouseEvent('mouseout', {clientX: 300, clientY: -2, bubbles: true})); return 1")
            .await?;
        wait_bubble(browser, "پیش از رفتن، سؤالی دارید؟").await?;
        let bubble = browser
            .js("const b = root.querySelector('.tb'); return [b.dir, b.querySelector('.tx').getAttribute('aria-label')]")
            .await?;
        ensure!(bubble == json!(["rtl", "بستن"]), "{bubble}");
        browser.screenshot("trigger-bubble-fa").await?;

        // The first visit: not returning yet. A later visit (a new tab session): returning.
        browser.goto(&back).await?;
        let shown = bubble_after_first_look(browser).await?;
        ensure!(shown.is_null(), "returning on the first visit: {shown}");
        browser.js("sessionStorage.clear(); return 1").await?;
        browser.goto(&back).await?;
        bubble_after_first_look(browser).await?;
        wait_bubble(browser, "Welcome back!").await?;
        Ok(())
    })
    .await
}
