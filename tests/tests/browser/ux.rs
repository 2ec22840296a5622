//! The widget as visitors live in it (issue 15), measured in the page at desktop
//! 1280×800 and phone 375×667, and on a right-to-left host page: the newest line in
//! view, the phone layout (full screen, 16 px input, the page behind locked), the
//! launcher staying in its corner, distinct labels for the two "Send" buttons, the
//! panel open again after a reload, one numbering in Persian, and axe-core finding no
//! serious or critical violation in the open panel.

use crate::support::{Browser, Setup, UI_WAIT, host_page, login, with_browser_at};
use anyhow::{Context, Result, ensure};
use salam_e2e::http_request;
use serde_json::Value;

const DESKTOP: &str = "1280,800";
const PHONE: &str = "375,667";

/// A tall host page (so that it can scroll) with `html_attrs` on `<html>`.
fn tall(setup: &Setup, path: &str, attrs: &str, html_attrs: &str) -> String {
    let body = host_page(
        &setup.hub.http(),
        &setup.site_key,
        attrs,
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <style>body{min-height:3000px}</style>",
        "",
    )
    .replacen("<html lang=\"en\">", &format!("<html {html_attrs}>"), 1);
    setup.host.page(path, body)
}

/// Runs axe-core on the widget (its host element; axe includes open shadow roots) and
/// fails on serious or critical violations.
async fn axe(browser: &Browser) -> Result<()> {
    salam_e2e::axe::check(
        &browser.client,
        "document.querySelector('salam-chat')",
        "the widget",
    )
    .await
}

/// The newest line's box lies within the log's visible box.
async fn newest_in_view(browser: &Browser) -> Result<()> {
    browser
        .wait(
            "the newest line in view",
            "const g = root.querySelector('.G').getBoundingClientRect(); \
             const lines = root.querySelectorAll('.lg2 > *'); \
             const last = lines[lines.length - 1]; if (!last) return false; \
             const r = last.getBoundingClientRect(); \
             return r.top >= g.top - 1 && r.bottom <= g.bottom + 1;",
        )
        .await?;
    Ok(())
}

async fn visitor_flow(window: &str, name: &str) -> Result<()> {
    let setup = Setup::new().await?;
    let url = tall(&setup, "/", "", "lang=\"en\"");
    with_browser_at(window, async |browser| {
        browser.goto(&url).await?;
        let phone = window == PHONE;
        let size = browser.js("return [innerWidth, innerHeight]").await?;
        let (width, height) = (size[0].as_f64().unwrap_or(0.0), size[1].as_f64().unwrap_or(0.0));
        ensure!(
            (width - if phone { 375.0 } else { 1280.0 }).abs() < 20.0,
            "viewport {size}"
        );
        browser.js("window.scrollTo(0, 200)").await?;
        browser.open_widget().await?;
        browser
            .wait("the connection", "return root.querySelector('.st.on, .st.aw')")
            .await?;
        for n in 1..=6 {
            browser.type_and_send(&format!("Question number {n}, with some more words")).await?;
        }
        browser.wait_line("Question number 6, with some more words").await?;
        newest_in_view(browser).await?;

        // The two "Send" buttons have distinct accessible names.
        let label = browser
            .js("return root.querySelector('.C .pb').getAttribute('aria-label')")
            .await?;
        ensure!(label == "Send message", "compose button: {label}");

        // The input never makes iOS zoom.
        let font = browser
            .js("return parseFloat(getComputedStyle(root.querySelector('.C textarea')).fontSize)")
            .await?;
        ensure!(font.as_f64().unwrap_or(0.0) >= 16.0, "input font {font}px");

        let panel = browser
            .js("const r = root.querySelector('.P').getBoundingClientRect(); return [r.left, r.top, r.width, r.height]")
            .await?;
        let p = |i: usize| panel[i].as_f64().unwrap_or(-1.0);
        if phone {
            // Full screen, and the page behind does not scroll.
            ensure!(
                p(0).abs() < 1.0 && p(1).abs() < 1.0 && (p(2) - width).abs() < 1.0 && (p(3) - height).abs() < 1.0,
                "panel {panel} in a {width}×{height} viewport"
            );
            let overflow = browser
                .js("return getComputedStyle(document.documentElement).overflow")
                .await?;
            ensure!(overflow == "hidden", "page scroll not locked: {overflow}");
        } else {
            ensure!(p(2) < width / 2.0 && p(3) > 300.0, "desktop panel {panel}");
        }
        axe(browser).await?;
        browser.screenshot(&format!("ux-{name}-open")).await?;

        // The panel is open again after a reload (this tab), and the page scrolls again
        // once it is closed.
        browser.client.refresh().await?;
        browser.wait_panel_open().await?;
        browser.wait_line("Question number 6, with some more words").await?;
        newest_in_view(browser).await?;
        browser.shadow(".X").await?.click().await?;
        browser
            .wait("the panel to close", "return root.querySelector('.P').hidden")
            .await?;
        let overflow = browser
            .js("return getComputedStyle(document.documentElement).overflow")
            .await?;
        ensure!(overflow == "visible", "page scroll not restored: {overflow}");
        browser.js("window.scrollTo(0, 400)").await?;
        let y = browser.js("return scrollY").await?;
        ensure!(y.as_f64().unwrap_or(0.0) > 300.0, "the page does not scroll: {y}");
        browser.client.refresh().await?;
        browser
            .wait("the launcher", "return root && root.querySelector('.L')")
            .await?;
        let open = browser
            .js("const p = root.querySelector('.P'); return !!p && !p.hidden")
            .await?;
        ensure!(open == false, "a closed panel opened after a reload");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn desktop_visitor_keeps_the_newest_line_in_view_and_the_panel_after_a_reload() -> Result<()>
{
    visitor_flow(DESKTOP, "desktop").await
}

#[tokio::test]
async fn phone_panel_is_full_screen_locks_the_page_and_does_not_zoom() -> Result<()> {
    visitor_flow(PHONE, "phone").await
}

/// On `<html dir="rtl" lang="ar">` the launcher stays in its corner when the panel opens,
/// and the Persian panel uses Persian digits only.
#[tokio::test]
async fn rtl_host_page_launcher_stays_and_persian_digits_only() -> Result<()> {
    let setup = Setup::new().await?;
    let arabic = tall(
        &setup,
        "/ar",
        "data-locale=\"ar\"",
        "dir=\"rtl\" lang=\"ar\"",
    );
    let persian = tall(
        &setup,
        "/fa",
        "data-locale=\"fa\"",
        "dir=\"rtl\" lang=\"fa\"",
    );
    with_browser_at(DESKTOP, async |browser| {
        browser.goto(&arabic).await?;
        browser
            .wait("the launcher", "return root && root.querySelector('.L')")
            .await?;
        let launcher = "const r = root.querySelector('.L').getBoundingClientRect(); return [Math.round(r.left), Math.round(r.top)]";
        let before = browser.js(launcher).await?;
        browser.open_widget().await?;
        let after = browser.js(launcher).await?;
        ensure!(before == after, "the launcher moved from {before} to {after}");
        let left = before[0].as_f64().unwrap_or(-1.0);
        ensure!(left < 100.0, "an Arabic launcher sits on the left: {before}");
        browser.type_and_send("مرحبا").await?;
        browser.wait_line("مرحبا").await?;
        axe(browser).await?;
        browser.screenshot("ux-rtl-ar-open").await?;

        // Another page of the site in the same tab: the panel is still open.
        browser.goto(&persian).await?;
        browser.wait_panel_open().await?;
        browser.type_and_send("سلام").await?;
        browser.wait_line("سلام").await?;
        // Every digit the widget itself writes (times, counts) is Persian.
        let latin = browser
            .js("const p = root.querySelector('.P'); const t = [...p.querySelectorAll('.t, .Q, .st, .B')].map(e => e.textContent).join(' '); \
                 return /[0-9]/.test(t) ? t : ''")
            .await?;
        ensure!(latin == "", "Latin digits in Persian: {latin}");
        let time = browser
            .js("return root.querySelector('.lg2 .m .t').textContent")
            .await?;
        ensure!(
            time.as_str().is_some_and(|t| t.chars().any(|c| ('۰'..='۹').contains(&c))),
            "time {time}"
        );
        browser.screenshot("ux-rtl-fa-open").await?;
        Ok(())
    })
    .await
}

/// Counts the WebSockets the page opens (put before the widget's script tag).
const COUNT_SOCKETS: &str = "<script>window.__ws = 0; const NativeWS = WebSocket; \
    window.WebSocket = function (url, protocols) { window.__ws++; return new NativeWS(url, protocols); }; \
    window.WebSocket.prototype = NativeWS.prototype;</script>";

/// Issue 15 point 1: a page on an origin the site does not allow says so plainly, in
/// the visitor's language, disables the composer and does not reconnect.
#[tokio::test]
async fn a_refused_origin_says_chat_is_not_available_and_stops() -> Result<()> {
    let setup = Setup::new().await?;
    let other = setup
        .hub
        .create_site("Elsewhere", &["https://elsewhere.example".to_owned()])
        .await?;
    for (window, locale, message, status) in [
        (
            DESKTOP,
            "en",
            "Chat is not available on this page.",
            "Chat is unavailable",
        ),
        (
            PHONE,
            "ar",
            "المحادثة غير متاحة في هذه الصفحة.",
            "المحادثة غير متاحة",
        ),
    ] {
        let html = host_page(
            &setup.hub.http(),
            &other.key,
            &format!("data-locale=\"{locale}\""),
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
            COUNT_SOCKETS,
        );
        let url = setup.host.page(&format!("/refused-{locale}"), html);
        with_browser_at(window, async |browser| {
            browser.goto(&url).await?;
            browser.open_widget().await?;
            let shown = browser
                .wait(
                    "the refusal",
                    "const n = root.querySelector('.N:not([hidden]) span'); return n && n.textContent",
                )
                .await?;
            ensure!(shown == message, "notice: {shown}");
            let state = browser
                .js("return [root.querySelector('.st').textContent, root.querySelector('.C textarea').disabled, \
                     root.querySelector('.C .pb').disabled, !!root.querySelector('.st.on'), \
                     root.querySelector('.gr').hidden]")
                .await?;
            ensure!(
                state == serde_json::json!([status, true, true, false, true]),
                "header and composer: {state}"
            );
            // No reconnect loop: a retry would come within 0.5 s (backoff); give it 3 s.
            browser
                .js("window.__refusedAt = performance.now()")
                .await?;
            browser
                .wait("3 s to pass", "return performance.now() - window.__refusedAt > 3000")
                .await?;
            let sockets = browser.js("return window.__ws").await?;
            ensure!(sockets == 1, "{sockets} sockets opened");
            axe(browser).await?;
            browser.screenshot(&format!("ux-refused-{locale}")).await?;
            Ok(())
        })
        .await?;
    }
    Ok(())
}

/// The texts a locale shows in [`a_conversation_in_the_readers_language`].
struct Texts {
    talk: &'static str,
    joined: &'static str,
    closed: &'static str,
    ended: &'static str,
    start_new: &'static str,
    rate: &'static str,
    latin_digits_allowed: bool,
}

const AR: Texts = Texts {
    talk: "التحدث مع موظف",
    joined: "انضم Admin إلى المحادثة",
    closed: "أغلق Admin المحادثة",
    ended: "انتهت المحادثة",
    start_new: "ابدأ محادثة جديدة",
    rate: "إرسال التقييم",
    latin_digits_allowed: false,
};

const FA: Texts = Texts {
    talk: "صحبت با پشتیبان",
    joined: "Admin به گفتگو پیوست",
    closed: "Admin گفتگو را بست",
    ended: "گفتگو به پایان رسید",
    start_new: "شروع گفتگوی تازه",
    rate: "ثبت امتیاز",
    latin_digits_allowed: false,
};

/// Points 2, 5 and 7: system lines in the reader's language, "talk to a person" once
/// and gone once an agent joined, the rating form leaving the last reply and "closed
/// by" in view, and after a reload the closed conversation read-only with "start a new
/// conversation".
async fn a_conversation_in_the_readers_language(
    window: &str,
    locale: &str,
    html_attrs: &str,
    texts: &Texts,
) -> Result<()> {
    let setup = Setup::new().await?;
    let mut agent = setup.hub.admin_agent().await?;
    let url = tall(
        &setup,
        "/",
        &format!("data-locale=\"{locale}\""),
        html_attrs,
    );
    with_browser_at(window, async |browser| {
        browser.goto(&url).await?;
        browser.open_widget().await?;
        browser
            .wait("the connection", "return root.querySelector('.st.on')")
            .await?;
        let talk_buttons = format!(
            "return [...root.querySelectorAll('.P button')].filter(b => b.offsetParent && b.textContent === {}).length",
            serde_json::json!(texts.talk)
        );
        let shown = browser.js(&talk_buttons).await?;
        ensure!(shown == 1, "{shown} \"talk to a person\" buttons before the handoff");
        browser.shadow(".P > .A .sb").await?.click().await?;
        browser.wait_line(texts.talk).await?;
        let conversation = agent.agent_sees(texts.talk).await?.conversation;
        let joined = format!(
            "return [...root.querySelectorAll('.lg2 > .e')].some(e => e.textContent === {})",
            serde_json::json!(texts.joined)
        );
        browser.wait("the joined line", &joined).await?;
        let shown = browser.js(&talk_buttons).await?;
        ensure!(shown == 0, "{shown} \"talk to a person\" buttons once an agent joined");
        let reply = "🙂 OK";
        agent
            .send_json(&serde_json::json!({"type": "send", "conversation": conversation, "client_id": "r-1", "text": reply}))
            .await?;
        browser.wait_line(reply).await?;
        agent
            .send_json(&serde_json::json!({"type": "close", "conversation": conversation}))
            .await?;
        browser
            .wait("the rating form", "return root.querySelector('.F[data-form=rating]:not([hidden])')")
            .await?;
        let rate = browser.js("return root.querySelector('.F .pb').textContent").await?;
        ensure!(rate == texts.rate, "the rating form's button: {rate}");
        // The agent's last reply and the "closed by" line stay in view above the form.
        let in_view = format!(
            "const g = root.querySelector('.G').getBoundingClientRect(); \
             const inside = e => {{ const r = e.getBoundingClientRect(); return r.height > 0 && r.top >= g.top - 1 && r.bottom <= g.bottom + 1; }}; \
             const reply = [...root.querySelectorAll('.lg2 > .m')].find(m => m.querySelector('.b').textContent === {}); \
             const closed = [...root.querySelectorAll('.lg2 > .e')].find(e => e.textContent === {}); \
             return !!reply && !!closed && inside(reply) && inside(closed);",
            serde_json::json!(reply),
            serde_json::json!(texts.closed)
        );
        browser.wait("the last reply and the closed line in view", &in_view).await?;
        if !texts.latin_digits_allowed {
            let latin = browser
                .js("return [...root.querySelectorAll('.t, .st, .Q, .N, .F')].map(e => e.textContent).join(' ').match(/[0-9]/g)")
                .await?;
            ensure!(latin.is_null(), "Latin digits: {latin}");
        }
        axe(browser).await?;
        browser.screenshot(&format!("ux-closed-{locale}")).await?;

        // A returning visitor: the closed conversation, read-only.
        browser.client.refresh().await?;
        browser.wait_panel_open().await?;
        browser.wait_line(reply).await?;
        let ended = format!(
            "const n = root.querySelector('.N:not([hidden])'); \
             return n && n.querySelector('span').textContent === {} && n.querySelector('button').textContent === {} \
               && root.querySelector('.C').hidden",
            serde_json::json!(texts.ended),
            serde_json::json!(texts.start_new)
        );
        browser.wait("the read-only closed conversation", &ended).await?;
        browser.screenshot(&format!("ux-returning-{locale}")).await?;
        browser.shadow(".N button").await?.click().await?;
        browser
            .wait(
                "a new conversation",
                "return root.querySelectorAll('.lg2 > *').length === 0 && !root.querySelector('.C').hidden \
                 && !root.querySelector('.C textarea').disabled",
            )
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn arabic_on_a_phone_rtl_page_reads_events_and_keeps_the_last_reply_in_view() -> Result<()> {
    a_conversation_in_the_readers_language(PHONE, "ar", "dir=\"rtl\" lang=\"ar\"", &AR).await
}

#[tokio::test]
async fn persian_on_the_desktop_reads_events_and_keeps_the_last_reply_in_view() -> Result<()> {
    a_conversation_in_the_readers_language(DESKTOP, "fa", "lang=\"en\"", &FA).await
}

/// Point 3 and 7: nobody online gives one truthful state (an "Offline" header, no queue
/// position, the contact form), which comes back after a reload; point 8: what the
/// visitor leaves reaches the conversation's visitor details.
#[tokio::test]
async fn nobody_online_is_one_truthful_state_and_the_contact_form_survives_a_reload() -> Result<()>
{
    for window in [DESKTOP, PHONE] {
        let setup = Setup::new().await?;
        let url = tall(&setup, "/", "", "lang=\"en\"");
        with_browser_at(window, async |browser| {
            browser.goto(&url).await?;
            browser.open_widget().await?;
            let header = browser
                .wait(
                    "the offline header",
                    "const s = root.querySelector('.st.aw'); return s && s.textContent",
                )
                .await?;
            ensure!(header == "Offline", "header: {header}");
            browser.shadow(".P > .A .sb").await?.click().await?;
            browser.wait_line("Talk to a person").await?;
            let form = "return root.querySelector('.F[data-form=contact]:not([hidden])')";
            browser.wait("the contact form", form).await?;
            let state = browser
                .js(
                    "return [!!root.querySelector('.st.on'), root.querySelector('.Q').hidden, \
                     root.querySelector('.P').textContent.includes('in the queue')]",
                )
                .await?;
            ensure!(
                state == serde_json::json!([false, true, false]),
                "not one state: {state}"
            );
            browser.client.refresh().await?;
            browser.wait_panel_open().await?;
            browser
                .wait("the contact form after a reload", form)
                .await?;
            for (name, value) in [
                ("name", "Mona Saberi"),
                ("email", "mona@example.com"),
                ("phone", "+98 912 000 0000"),
                ("message", "Please call back"),
            ] {
                browser
                    .shadow(&format!(".F [name={name}]"))
                    .await?
                    .send_keys(value)
                    .await?;
            }
            let label = browser
                .js("return root.querySelector('.F .pb').textContent")
                .await?;
            ensure!(label == "Send details", "the form's button: {label}");
            browser.shadow(".F .pb").await?.click().await?;
            browser
                .wait(
                    "the thanks",
                    "return root.querySelector('.F[data-form=contact-thanks] .ok')",
                )
                .await?;
            axe(browser).await?;
            browser.screenshot("ux-offline-contact").await?;
            // Point 8: the details reach the conversation's visitor record.
            let conversation = browser
                .js(&format!(
                    "return JSON.parse(localStorage.getItem('salam:{}')).conversation",
                    setup.site_key
                ))
                .await?;
            let conversation = conversation.as_str().context("no conversation")?;
            let token = login(
                setup.hub.addr,
                &setup.hub.admin_email,
                &setup.hub.admin_password,
            )
            .await?;
            let path = format!("/api/conversations/{conversation}");
            let started = std::time::Instant::now();
            loop {
                let response = http_request(
                    setup.hub.addr,
                    "GET",
                    &path,
                    &[("authorization", &format!("Bearer {token}"))],
                    "",
                )
                .await?;
                let body: Value = serde_json::from_str(&response.body).unwrap_or_default();
                if body["visitor"]["name"] == "Mona Saberi"
                    && response.body.contains("mona@example.com")
                    && response.body.contains("+98 912 000 0000")
                {
                    break;
                }
                ensure!(
                    started.elapsed() < UI_WAIT,
                    "{path} does not show the contact details: {}",
                    response.body
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Ok(())
        })
        .await?;
    }
    Ok(())
}

/// Point 3 and 7: agents online but a long wait: the queue banner with a callback offer,
/// "Online" in the header, and the banner back at once after a reload.
#[tokio::test]
async fn a_long_wait_offers_a_callback_and_the_queue_survives_a_reload() -> Result<()> {
    for window in [DESKTOP, PHONE] {
        let setup = Setup::new().await?;
        let store = &setup.hub.state.store;
        let site = store
            .site_by_key(&setup.site_key)
            .await?
            .context("the site")?;
        // Offer a callback from a one-second wait on.
        store
            .update_site_settings(&site.id, r#"{"callback_after_secs":1}"#)
            .await?;
        let site = store.site_by_id(&site.id).await?.context("the site")?;
        salam_hub::admin::announce_site(&setup.hub.state, &site).await?;
        // One agent who takes one chat at a time, busy with another visitor.
        let (admin, _) = store
            .agent_by_email(&setup.hub.admin_email)
            .await?
            .context("no admin")?;
        store
            .update_agent(
                &admin.id,
                salam_store::AgentUpdate {
                    capacity: Some(Some(1)),
                    ..Default::default()
                },
            )
            .await?;
        let mut agent = setup.hub.admin_agent().await?;
        let mut first =
            salam_e2e::Client::connect_visitor(setup.hub.addr, Some(&setup.host.origin())).await?;
        first
            .send_json(&serde_json::json!({"type": "hello", "v": 1, "site": setup.site_key}))
            .await?;
        first
            .send_json(&serde_json::json!({"type": "send", "client_id": "f-1", "text": "Talk to a person"}))
            .await?;
        agent.agent_sees("Talk to a person").await?;
        let url = tall(&setup, "/", "", "lang=\"en\"");
        with_browser_at(window, async |browser| {
            browser.goto(&url).await?;
            browser.open_widget().await?;
            browser
                .wait("the connection", "return root.querySelector('.st.on')")
                .await?;
            browser.shadow(".P > .A .sb").await?.click().await?;
            let banner = "const q = root.querySelector('.Q:not([hidden])'); const n = root.querySelector('.N:not([hidden]) span'); \
                 return q && n && root.querySelector('.st.on') && [q.textContent, n.textContent]";
            let shown = match browser.wait("the queue and the callback offer", banner).await {
                Ok(shown) => shown,
                Err(error) => {
                    let state = browser
                        .js("return [root.querySelector('.st').textContent, root.querySelector('.Q').hidden,                              root.querySelector('.Q').textContent, root.querySelector('.N').hidden,                              root.querySelector('.N').textContent]")
                        .await?;
                    return Err(error.context(format!("header, queue and notice: {state}")));
                }
            };
            ensure!(
                shown[0].as_str().is_some_and(|q| q.contains("number 1"))
                    && shown[1].as_str().is_some_and(|n| n.starts_with("Long wait?")),
                "banner: {shown}"
            );
            newest_in_view(browser).await?;
            browser.client.refresh().await?;
            browser.wait_panel_open().await?;
            browser.wait("the queue after a reload", banner).await?;
            browser.shadow(".N button").await?.click().await?;
            browser
                .wait("the contact form", "return root.querySelector('.F[data-form=contact]:not([hidden])')")
                .await?;
            axe(browser).await?;
            browser.screenshot("ux-queue-callback").await?;
            Ok(())
        })
        .await?;
    }
    Ok(())
}
