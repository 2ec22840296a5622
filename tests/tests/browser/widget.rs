//! The widget as a visitor uses it, against the hub as it is today (conversations start
//! `queued`; agents answer).

use crate::support::{Browser, HostPages, Setup, UI_WAIT, host_page, login, with_browser};
use anyhow::{Context, Result, ensure};
use salam_e2e::{Client, http_request};
use salam_hub::Hub;
use salam_hub::config::Config;
use salam_protocol::ServerFrame;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Waits until the agent receives a visitor message with `text`; returns its
/// conversation.
async fn agent_sees(agent: &mut Client, text: &str) -> Result<String> {
    Ok(agent.agent_sees(text).await?.conversation)
}

async fn agent_says(
    agent: &mut Client,
    conversation: &str,
    client_id: &str,
    text: &str,
) -> Result<()> {
    agent
        .send_json(&json!({"type": "send", "conversation": conversation, "client_id": client_id, "text": text}))
        .await
}

/// Counts the committed lines showing exactly `text`.
async fn count_lines(browser: &Browser, text: &str) -> Result<usize> {
    Ok(browser
        .lines()
        .await?
        .iter()
        .filter(|(_, shown)| shown == text)
        .count())
}

#[tokio::test]
async fn a_visitor_chats_with_an_agent_then_rates_the_chat() -> Result<()> {
    let setup = Setup::new().await?;
    let mut agent = setup.hub.admin_agent().await?;
    let url = setup.page("/", "", "", "");
    with_browser(async |browser| {
        browser.goto(&url).await?;
        browser.open_widget().await?;
        browser
            .wait("the connection", "return root.querySelector('.st.on, .st.aw')")
            .await?;
        browser.type_and_send("Where is my order #4521?").await?;
        let class = browser.wait_line("Where is my order #4521?").await?;
        ensure!(class.contains('o'), "own message should be on the visitor side: {class}");

        let conversation = agent_sees(&mut agent, "Where is my order #4521?").await?;
        agent
            .send_json(&json!({"type": "typing", "conversation": conversation, "typing": true}))
            .await?;
        browser
            .wait(
                "the typing indicator",
                "const y = root.querySelector('.Y'); return !y.hidden && y.textContent === 'Admin is typing…'",
            )
            .await?;
        agent_says(
            &mut agent,
            &conversation,
            "r-1",
            "It left our warehouse: https://track.example/4521 (javascript:alert(1) is not a link)",
        )
        .await?;
        let reply = "It left our warehouse: https://track.example/4521 (javascript:alert(1) is not a link)";
        let class = browser.wait_line(reply).await?;
        ensure!(class.contains('i'), "agent message should be incoming: {class}");
        // Sender, avatar initials and time are shown.
        let meta = browser
            .js("const m = [...root.querySelectorAll('.lg2 > .m.i')].find(m => m.textContent.includes('It left our warehouse')); \
                 return [m.querySelector('.n').textContent, m.querySelector('.av').textContent, m.querySelector('.t').textContent];")
            .await?;
        ensure!(meta[0] == "Admin" && meta[1] == "A", "sender: {meta}");
        ensure!(
            meta[2].as_str().is_some_and(|t| t.len() == 5 && t.as_bytes()[2] == b':'),
            "time: {meta}"
        );
        // Only the http(s) URL is a link, opening safely in a new tab.
        let links = browser
            .js("const m = [...root.querySelectorAll('.lg2 > .m.i')].find(m => m.textContent.includes('It left our warehouse')); \
                 return [...m.querySelectorAll('a')].map(a => [a.getAttribute('href'), a.rel, a.target]);")
            .await?;
        ensure!(
            links == json!([["https://track.example/4521", "noopener noreferrer", "_blank"]]),
            "links: {links}"
        );
        ensure!(
            browser.js("return root.querySelector('.lg2').getAttribute('aria-live')").await? == "polite",
            "the message list is not an aria-live region"
        );
        browser.screenshot("en-conversation").await?;

        // The agent closes the chat: the rating form shows; the visitor rates.
        agent
            .send_json(&json!({"type": "close", "conversation": conversation}))
            .await?;
        browser
            .wait("the rating form", "return root.querySelector('.F[data-form=rating]:not([hidden])')")
            .await?;
        browser.screenshot("en-rating").await?;
        browser.shadow(".F .S button[data-score='4']").await?.click().await?;
        browser
            .shadow(".F textarea")
            .await?
            .send_keys("Quick and kind")
            .await?;
        browser.shadow(".F .pb").await?.click().await?;
        browser
            .wait(
                "the thanks",
                "const p = root.querySelector('.F[data-form=rating-thanks] .ok'); return p && p.textContent",
            )
            .await?;
        let thanks = browser.js("return root.querySelector('.F .ok').textContent").await?;
        ensure!(thanks == "Thank you for your feedback!", "{thanks}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn arabic_and_persian_are_mirrored_and_translated() -> Result<()> {
    let setup = Setup::new().await?;
    let arabic = setup.page("/ar", "data-locale=\"ar\"", "", "");
    let persian = setup.page("/fa", "data-locale=\"fa\"", "", "");
    let english = setup.page("/en", "data-locale=\"en\"", "", "");
    with_browser(async |browser| {
        let check = async |url: &str, placeholder: &str, talk: &str, rtl: bool| -> Result<()> {
            browser.goto(url).await?;
            browser.open_widget().await?;
            let shown = browser
                .js("const p = root.querySelector('.P'); const l = root.querySelector('.L').getBoundingClientRect(); \
                     return [getComputedStyle(p).direction, p.getAttribute('dir'), \
                             root.querySelector('.C textarea').placeholder, root.querySelector('.A .sb').textContent, \
                             l.left < innerWidth / 2, root.querySelector('.L').getAttribute('aria-label')];")
                .await?;
            let direction = if rtl { "rtl" } else { "ltr" };
            ensure!(shown[0] == direction && shown[1] == direction, "{url}: {shown}");
            ensure!(shown[2] == placeholder && shown[3] == talk, "{url}: {shown}");
            // Mirrored: the launcher sits on the left in a right-to-left locale.
            ensure!(shown[4] == rtl, "{url}: launcher side {shown}");
            Ok(())
        };
        check(&arabic, "اكتب رسالة…", "التحدث مع موظف", true).await?;
        browser.type_and_send("مرحبا").await?;
        browser.wait_line("مرحبا").await?;
        let message_dir = browser
            .js("return root.querySelector('.lg2 .b').getAttribute('dir')")
            .await?;
        ensure!(message_dir == "auto", "message dir {message_dir}");
        browser.screenshot("ar-conversation").await?;
        check(&persian, "پیامی بنویسید…", "صحبت با پشتیبان", true).await?;
        browser.screenshot("fa-conversation").await?;
        check(&english, "Type a message…", "Talk to a person", false).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn markup_in_messages_and_names_is_shown_as_text() -> Result<()> {
    let setup = Setup::new().await?;
    let hostile_name = "<img src=x onerror=\"window.__pwned='name'\">";
    let (admin, _) = setup
        .hub
        .state
        .store
        .agent_by_email(&setup.hub.admin_email)
        .await?
        .context("no admin")?;
    setup
        .hub
        .state
        .store
        .update_agent(
            &admin.id,
            salam_store::AgentUpdate {
                name: Some(hostile_name.into()),
                ..Default::default()
            },
        )
        .await?;
    let mut agent = setup.hub.admin_agent().await?;
    let url = setup.page("/", "", "", "");
    let payloads = [
        "<img src=x onerror=\"window.__pwned='img'\">",
        "<script>window.__pwned='script'</script>",
        "<a href=\"javascript:window.__pwned='href'\">click</a> javascript:window.__pwned=1",
    ];
    with_browser(async |browser| {
        browser.goto(&url).await?;
        browser.open_widget().await?;
        browser.type_and_send("<b>bold?</b>").await?;
        browser.wait_line("<b>bold?</b>").await?;
        let conversation = agent_sees(&mut agent, "<b>bold?</b>").await?;
        for (index, payload) in payloads.iter().enumerate() {
            agent_says(&mut agent, &conversation, &format!("x-{index}"), payload).await?;
            browser.wait_line(payload).await?;
        }
        let checks = browser
            .js("return [window.__pwned === undefined, root.querySelectorAll('img:not(.lg), script, b, .lg2 a').length, \
                 [...root.querySelectorAll('.lg2 .m.i')].filter(m => !m.querySelector('.av.bot')) \
                   .map(m => m.querySelector('.n').textContent)];")
            .await?;
        ensure!(checks[0] == true, "a payload ran: {checks}");
        ensure!(checks[1] == 0, "markup became elements: {checks}");
        ensure!(
            checks[2].as_array().is_some_and(|names| names.iter().all(|n| n == hostile_name)),
            "names: {checks}"
        );
        // Give any deferred handler a moment to (not) fire.
        tokio::time::sleep(Duration::from_millis(300)).await;
        ensure!(browser.js("return window.__pwned === undefined").await? == true);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn hostile_host_css_neither_breaks_the_widget_nor_is_touched_by_it() -> Result<()> {
    let setup = Setup::new().await?;
    // The page measures its own elements before the widget loads, then loads it.
    let hostile = "<style>* { all: unset } div { display: none !important } \
                   p { color: rgb(1, 2, 3); font-size: 17px } button { background: rgb(9, 9, 9) }</style>";
    let measure = "function measure() { const p = document.getElementById('probe'), b = document.getElementById('probe-button'); \
                   const s = getComputedStyle(p), t = getComputedStyle(b); \
                   return [s.color, s.fontSize, s.display, s.fontFamily, t.backgroundColor, t.borderRadius, getComputedStyle(document.body).direction].join('|'); }";
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">{hostile}<script>{measure}</script></head><body>\
         <p id=\"probe\">Host text</p><button id=\"probe-button\">Host</button><div>hidden div</div>\
         <script>window.__before = measure(); const s = document.createElement('script'); \
         s.src = '{}/widget.js'; s.dataset.site = '{}'; document.body.appendChild(s);</script></body></html>",
        setup.hub.http(),
        setup.site_key
    );
    let url = setup.host.page("/hostile", html);
    let mut agent = setup.hub.admin_agent().await?;
    with_browser(async |browser| {
        browser.goto(&url).await?;
        browser.open_widget().await?;
        let launcher = browser
            .js("const r = root.querySelector('.L').getBoundingClientRect(); return [r.width, r.height, getComputedStyle(host).display];")
            .await?;
        ensure!(launcher[0] == 56 && launcher[1] == 56 && launcher[2] == "block", "launcher: {launcher}");
        browser.type_and_send("styled?").await?;
        browser.wait_line("styled?").await?;
        agent_sees(&mut agent, "styled?").await?;
        browser.screenshot("hostile-css").await?;
        let same = browser.js("return [window.__before, measure()];").await?;
        ensure!(same[0] == same[1], "the widget changed the host page's styles: {same}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn reloading_the_page_keeps_the_conversation() -> Result<()> {
    let setup = Setup::new().await?;
    let mut agent = setup.hub.admin_agent().await?;
    let url = setup.page("/", "", "", "");
    with_browser(async |browser| {
        browser.goto(&url).await?;
        browser.open_widget().await?;
        browser.type_and_send("first visit").await?;
        browser.wait_line("first visit").await?;
        let conversation = agent_sees(&mut agent, "first visit").await?;
        agent_says(&mut agent, &conversation, "r-1", "welcome back anytime").await?;
        browser.wait_line("welcome back anytime").await?;

        browser.client.refresh().await?;
        browser.open_widget().await?;
        browser.wait_line("welcome back anytime").await?;
        browser
            .wait(
                "the connection",
                "return root.querySelector('.st.on, .st.aw')",
            )
            .await?;
        browser.type_and_send("after reload").await?;
        browser.wait_line("after reload").await?;
        let again = agent_sees(&mut agent, "after reload").await?;
        ensure!(
            again == conversation,
            "a reload started another conversation"
        );
        for text in ["first visit", "welcome back anytime", "after reload"] {
            let n = count_lines(browser, text).await?;
            ensure!(n == 1, "{text:?} shown {n} times");
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn salam_calls_made_before_the_loader_take_effect() -> Result<()> {
    let setup = Setup::new().await?;
    let stub = "<script>window.Salam=window.Salam||{q:[]};'open close toggle send identify setLocale on'.split(' ')\
                .forEach(function(m){Salam[m]=Salam[m]||function(){Salam.q.push([m,[].slice.call(arguments)]);return Salam}});\
                Salam.on('ready', function(){ window.__ready = true; });\
                Salam.on('open', function(){ window.__opened = (window.__opened || 0) + 1; });\
                Salam.on('message', function(m){ window.__messages = (window.__messages || []).concat([m.text]); });\
                Salam.open(); Salam.send('sent through the API');</script>";
    let url = setup.page("/", "", "", stub);
    let mut agent = setup.hub.admin_agent().await?;
    with_browser(async |browser| {
        browser.goto(&url).await?;
        browser
            .wait("the ready event", "return window.__ready")
            .await?;
        browser.wait_panel_open().await?;
        browser
            .wait("the open event", "return window.__opened === 1")
            .await?;
        browser.wait_line("sent through the API").await?;
        let conversation = agent_sees(&mut agent, "sent through the API").await?;
        agent_says(&mut agent, &conversation, "r-1", "got it").await?;
        browser
            .wait(
                "the message event",
                "return (window.__messages || []).includes('got it')",
            )
            .await?;
        // After load the API acts at once; `on('ready')` registered late still fires.
        browser
            .js("Salam.close(); Salam.on('ready', function(){ window.__late = true; });")
            .await?;
        browser
            .wait(
                "close",
                "return root.querySelector('.P').hidden && window.__late",
            )
            .await?;
        browser.js("Salam.setLocale('fa'); Salam.open();").await?;
        browser
            .wait(
                "Persian",
                "return root.querySelector('.P').getAttribute('dir') === 'rtl'",
            )
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn keyboard_only_use_and_focus() -> Result<()> {
    let setup = Setup::new().await?;
    let url = setup.page("/", "", "", "");
    with_browser(async |browser| {
        browser.goto(&url).await?;
        browser
            .wait("the launcher", "return root && root.querySelector('.L')")
            .await?;
        // The launcher is a labelled button; Enter on it opens the panel.
        let launcher = browser.shadow(".L").await?;
        ensure!(launcher.attr("aria-label").await?.as_deref() == Some("Open chat"));
        browser.js("root.querySelector('.L').focus();").await?;
        launcher.send_keys("\u{E007}").await?;
        browser.wait_panel_open().await?;
        browser
            .wait("focus in the compose box", "return root.activeElement && root.activeElement.matches('.C textarea')")
            .await?;
        // Every button in the panel has a name.
        let unnamed = browser
            .js("return [...root.querySelectorAll('.P button')].filter(b => !(b.getAttribute('aria-label') || b.textContent.trim())).length")
            .await?;
        ensure!(unnamed == 0, "{unnamed} buttons without a label");
        // Escape closes and gives focus back to the launcher.
        browser.shadow(".C textarea").await?.send_keys("\u{E00C}").await?;
        browser
            .wait("the panel to close", "return root.querySelector('.P').hidden")
            .await?;
        browser
            .wait("focus on the launcher", "return root.activeElement && root.activeElement.matches('.L')")
            .await?;
        Ok(())
    })
    .await
}

/// A hub on a data directory and port that survive a restart.
struct RestartableHub {
    dir: tempfile::TempDir,
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    state: Option<salam_hub::state::AppState>,
    admin: (String, String),
}

impl RestartableHub {
    async fn open(dir: &Path, port: u16) -> Result<(Hub, TcpListener)> {
        let mut config = Config {
            data: dir.to_path_buf(),
            ..Config::default()
        };
        config.log.filter = "warn".into();
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        config.listen = listener.local_addr()?;
        Ok((Hub::open(config).await?, listener))
    }

    async fn start() -> Result<RestartableHub> {
        let dir = tempfile::tempdir()?;
        let (hub, listener) = RestartableHub::open(dir.path(), 0).await?;
        let admin = hub.first_start.admin.clone().context("no admin")?;
        let port = listener.local_addr()?.port();
        let mut this = RestartableHub {
            dir,
            port,
            stop: None,
            task: None,
            state: None,
            admin,
        };
        this.serve(hub, listener);
        Ok(this)
    }

    fn serve(&mut self, hub: Hub, listener: TcpListener) {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        self.state = Some(hub.state.clone());
        self.task = Some(tokio::spawn(hub.serve(listener, async move {
            let _ = stopped.await;
        })));
        self.stop = Some(stop);
    }

    async fn stop(&mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(15), task).await???;
        }
        self.state = None;
        Ok(())
    }

    async fn restart(&mut self) -> Result<()> {
        let (hub, listener) = RestartableHub::open(self.dir.path(), self.port).await?;
        self.serve(hub, listener);
        Ok(())
    }

    fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    async fn agent(&self) -> Result<Client> {
        let token = login(self.addr(), &self.admin.0, &self.admin.1).await?;
        let mut client = Client::connect_agent(self.addr(), &token).await?;
        client.send_json(&json!({"type": "hello", "v": 1})).await?;
        client
            .recv_until(|frame| matches!(frame, ServerFrame::Welcome { .. }))
            .await?;
        Ok(client)
    }
}

impl Drop for RestartableHub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[tokio::test]
async fn a_hub_restart_loses_and_duplicates_nothing() -> Result<()> {
    let mut hub = RestartableHub::start().await?;
    let host = HostPages::start().await?;
    let state = hub.state.as_ref().context("hub state")?;
    let site = state.store.create_site("Shop", &[host.origin()]).await?;
    salam_hub::admin::announce_site(state, &site).await?;
    let url = host.page(
        "/",
        host_page(&format!("http://{}", hub.addr()), &site.key, "", "", ""),
    );
    let mut agent = hub.agent().await?;
    with_browser(async |browser| {
        browser.goto(&url).await?;
        browser.open_widget().await?;
        browser.type_and_send("before the restart").await?;
        browser.wait_line("before the restart").await?;
        let conversation = agent_sees(&mut agent, "before the restart").await?;

        hub.stop().await?;
        browser
            .wait("the offline state", "return root.querySelector('.st.off')")
            .await?;
        browser.type_and_send("typed during the outage").await?;
        browser
            .wait(
                "the pending line",
                "return [...root.querySelectorAll('.lg2 > .m.p')].some(e => e.textContent.includes('typed during the outage'))",
            )
            .await?;
        browser.screenshot("en-offline").await?;

        hub.restart().await?;
        browser.wait_line("typed during the outage").await?;
        browser
            .wait("the connection", "return root.querySelector('.st.on, .st.aw')")
            .await?;
        // Stored exactly once, in the same conversation, after the first message.
        let token = login(hub.addr(), &hub.admin.0, &hub.admin.1).await?;
        let auth = format!("Bearer {token}");
        let started = Instant::now();
        let texts = loop {
            let response = http_request(
                hub.addr(),
                "GET",
                &format!("/api/conversations/{conversation}/messages?after=0&limit=100"),
                &[("authorization", &auth)],
                "",
            )
            .await?;
            ensure!(response.status == 200, "history: {} {}", response.status, response.body);
            let body: Value = serde_json::from_str(&response.body)?;
            let texts: Vec<String> = body["messages"]
                .as_array()
                .context("messages")?
                .iter()
                // The visitor's own lines (the bot may answer in between).
                .filter(|m| m["kind"] == "text" && m["author"]["kind"] == "visitor")
                .filter_map(|m| m["text"].as_str().map(str::to_owned))
                .collect();
            if texts.iter().any(|t| t == "typed during the outage") || started.elapsed() > UI_WAIT {
                break texts;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        ensure!(
            texts == ["before the restart", "typed during the outage"],
            "stored history: {texts:?}"
        );
        // A message after the restart still flows both ways, and nothing is doubled.
        let mut agent = hub.agent().await?;
        agent_says(&mut agent, &conversation, "r-2", "we are back").await?;
        browser.wait_line("we are back").await?;
        for text in ["before the restart", "typed during the outage", "we are back"] {
            let n = count_lines(browser, text).await?;
            ensure!(n == 1, "{text:?} shown {n} times");
        }
        Ok(())
    })
    .await?;
    hub.stop().await
}

#[tokio::test]
async fn site_settings_shape_the_widget() -> Result<()> {
    let setup = Setup::new().await?;
    let site = setup
        .hub
        .state
        .store
        .site_by_key(&setup.site_key)
        .await?
        .context("no site")?;
    // A light brand colour: the launcher must use black, not white, to stay readable.
    let settings = json!({
        "color": "#fde047", "position": "left", "prechat": true,
        "greeting": {"en": "Welcome to the shop!", "ar": "أهلا", "fa": "سلام"},
    });
    setup
        .hub
        .state
        .store
        .update_site_settings(&site.id, &settings.to_string())
        .await?;
    let url = setup.page("/", "", "", "");
    let mut agent = setup.hub.admin_agent().await?;
    with_browser(async |browser| {
        browser.goto(&url).await?;
        browser
            .wait(
                "the brand colour",
                "const l = root && root.querySelector('.L'); return l && getComputedStyle(l).backgroundColor === 'rgb(253, 224, 71)'",
            )
            .await?;
        let launcher = browser
            .js("const l = root.querySelector('.L'); return [getComputedStyle(l).color, l.getBoundingClientRect().left < innerWidth / 2];")
            .await?;
        ensure!(launcher == json!(["rgb(0, 0, 0)", true]), "launcher: {launcher}");
        browser.open_widget().await?;
        browser
            .wait("the pre-chat form", "return root.querySelector('.F[data-form=prechat]:not([hidden])')")
            .await?;
        let greeting = browser.js("return root.querySelector('.gr').textContent").await?;
        ensure!(greeting == "Welcome to the shop!", "greeting: {greeting}");
        browser.screenshot("en-prechat").await?;
        browser.shadow(".F [name=name]").await?.send_keys("Mona").await?;
        browser
            .shadow(".F [name=email]")
            .await?
            .send_keys("mona@example.com")
            .await?;
        browser.shadow(".F .pb").await?.click().await?;
        browser
            .wait("the form to go", "return root.querySelector('.F').hidden")
            .await?;
        browser.type_and_send("hello after the form").await?;
        let conversation = agent_sees(&mut agent, "hello after the form").await?;

        // A reply while the panel is closed: unread badge and title notice; opening
        // clears both.
        browser.js("Salam.close();").await?;
        agent_says(&mut agent, &conversation, "r-1", "are you there?").await?;
        browser
            .wait(
                "the unread badge",
                // The bot may answer the first message in between: count whatever came.
                "const b = root.querySelector('.B'); return !b.hidden && Number(b.textContent) > 0 \
                 && document.title.startsWith('(' + b.textContent + ') ') \
                 && [...root.querySelectorAll('.lg2 .b')].some(e => e.textContent === 'are you there?')",
            )
            .await?;
        browser.shadow(".L").await?.click().await?;
        browser
            .wait(
                "the badge and title to clear",
                "return root.querySelector('.B').hidden && document.title === 'Host shop'",
            )
            .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn identify_reaches_the_hub_signed_and_a_bad_signature_is_harmless() -> Result<()> {
    let setup = Setup::new().await?;
    let site = setup
        .hub
        .state
        .store
        .site_by_key(&setup.site_key)
        .await?
        .context("no site")?;
    let signed_token = salam_hub::identity::sign(
        &site.identity_secret,
        &serde_json::json!({"sub": "customer-42", "name": "Mona", "exp": salam_hub::clock::now_ms() / 1000 + 3600}),
    );
    let signed = format!(
        "<script>window.Salam=window.Salam||{{q:[]}};'open close toggle send identify setLocale on'.split(' ')\
         .forEach(function(m){{Salam[m]=Salam[m]||function(){{Salam.q.push([m,[].slice.call(arguments)]);return Salam}}}});\
         Salam.identify({{token: '{signed_token}', email: 'mona@example.com'}});</script>"
    );
    let url = setup.page("/", "", "", &signed);
    let mut agent = setup.hub.admin_agent().await?;
    let token = login(
        setup.hub.addr,
        &setup.hub.admin_email,
        &setup.hub.admin_password,
    )
    .await?;
    let details = async |conversation: &str| -> Result<Value> {
        let response = http_request(
            setup.hub.addr,
            "GET",
            &format!("/api/conversations/{conversation}"),
            &[("authorization", &format!("Bearer {token}"))],
            "",
        )
        .await?;
        ensure!(
            response.status == 200,
            "{} {}",
            response.status,
            response.body
        );
        Ok(serde_json::from_str(&response.body)?)
    };
    with_browser(async |browser| {
        browser.goto(&url).await?;
        browser.open_widget().await?;
        browser.type_and_send("I am logged in").await?;
        browser.wait_line("I am logged in").await?;
        let conversation = agent_sees(&mut agent, "I am logged in").await?;
        let body = details(&conversation).await?;
        ensure!(body["identified"] == true, "not identified: {body}");
        // The signed name is verified; the e-mail given beside the token is not.
        ensure!(
            body["visitor"]["verified"] == serde_json::json!(["name"]),
            "verified fields: {body}"
        );
        ensure!(body["visitor"]["email"] == "mona@example.com", "{body}");

        // A forged signature is refused by the hub; the chat goes on.
        browser
            .js("Salam.identify({token: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.AAAA'});")
            .await?;
        browser.type_and_send("still here").await?;
        browser.wait_line("still here").await?;
        ensure!(agent_sees(&mut agent, "still here").await? == conversation);
        ensure!(
            count_lines(browser, "I am logged in").await? == 1,
            "the forged identity cleared the conversation"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn reset_forgets_an_identified_visitor_and_the_next_message_is_a_new_visitors() -> Result<()>
{
    let setup = Setup::new().await?;
    let site = setup
        .hub
        .state
        .store
        .site_by_key(&setup.site_key)
        .await?
        .context("no site")?;
    let signed_token = salam_hub::identity::sign(
        &site.identity_secret,
        &serde_json::json!({"sub": "customer-42", "name": "Mona", "exp": salam_hub::clock::now_ms() / 1000 + 3600}),
    );
    let stub = "<script>window.Salam=window.Salam||{q:[]};'open close toggle send identify setLocale reset on'.split(' ')\
                .forEach(function(m){Salam[m]=Salam[m]||function(){Salam.q.push([m,[].slice.call(arguments)]);return Salam}});";
    let url = setup.page(
        "/",
        "",
        "",
        &format!("{stub}Salam.identify({{token: '{signed_token}'}});</script>"),
    );
    // The next page logs out before the loader has even run, with a message and an
    // identity queued for the visitor who is leaving.
    let logout_url = setup.page(
        "/logout",
        "",
        "",
        &format!(
            "{stub}Salam.send('queued before the reset'); Salam.identify({{token: '{signed_token}'}}); \
             Salam.reset();</script>"
        ),
    );
    let storage_key = json!(format!("salam:{}", setup.site_key));
    let mut agent = setup.hub.admin_agent().await?;
    let token = login(
        setup.hub.addr,
        &setup.hub.admin_email,
        &setup.hub.admin_password,
    )
    .await?;
    let get = async |path: &str| -> Result<Value> {
        let response = http_request(
            setup.hub.addr,
            "GET",
            path,
            &[("authorization", &format!("Bearer {token}"))],
            "",
        )
        .await?;
        ensure!(
            response.status == 200,
            "{} {}",
            response.status,
            response.body
        );
        Ok(serde_json::from_str(&response.body)?)
    };
    let stored_token = async |browser: &Browser| -> Result<Value> {
        browser
            .js(&format!(
                "const s = localStorage.getItem({storage_key}); return s && JSON.parse(s).token"
            ))
            .await
    };
    with_browser(async |browser| {
        // Mona, logged in on the site, chats.
        browser.goto(&url).await?;
        browser.open_widget().await?;
        browser.type_and_send("I am Mona").await?;
        browser.wait_line("I am Mona").await?;
        let mona = agent_sees(&mut agent, "I am Mona").await?;
        agent_says(&mut agent, &mona, "r-1", "Hello Mona").await?;
        browser.wait_line("Hello Mona").await?;
        let details = get(&format!("/api/conversations/{mona}")).await?;
        ensure!(details["identified"] == true, "not identified: {details}");
        let mona_id = details["visitor"]["id"].clone();
        let mona_token = stored_token(browser).await?;
        ensure!(mona_token.is_string(), "no visitor token stored: {mona_token}");
        // She has the shop open in a second tab too.
        let first_tab = browser.client.window().await?;
        let second_tab = browser.client.new_window(true).await?.handle;
        browser.client.switch_to_window(second_tab.clone()).await?;
        browser.goto(&url).await?;
        browser.open_widget().await?;
        browser.wait_line("Hello Mona").await?;
        browser.client.switch_to_window(first_tab.clone()).await?;

        // She logs out, the panel still open and a draft in the compose box.
        browser.shadow(".C textarea").await?.send_keys("a draft").await?;
        browser.js("Salam.reset();").await?;
        let shown = browser.lines().await?;
        ensure!(shown.is_empty(), "lines still shown after reset: {shown:?}");
        let draft = browser.js("return root.querySelector('.C textarea').value").await?;
        ensure!(draft == "", "the draft survived the reset: {draft}");
        let stored = stored_token(browser).await?;
        ensure!(stored != mona_token, "the old visitor token is still stored");
        // The other tab forgets her as well, and does not write her back.
        browser.client.switch_to_window(second_tab).await?;
        browser
            .wait(
                "the other tab to forget her",
                "return root.querySelectorAll('.lg2 > *').length === 0 && root.querySelector('.st.on, .st.aw')",
            )
            .await?;
        browser.client.switch_to_window(first_tab).await?;

        // Whoever chats next is a new, anonymous visitor in a new conversation.
        browser
            .wait("the new connection", "return root.querySelector('.st.on, .st.aw')")
            .await?;
        browser.type_and_send("Who am I now?").await?;
        browser.wait_line("Who am I now?").await?;
        let next = agent_sees(&mut agent, "Who am I now?").await?;
        ensure!(next != mona, "the message went to the old conversation");
        let details = get(&format!("/api/conversations/{next}")).await?;
        ensure!(details["identified"] == false, "still identified: {details}");
        let next_id = details["visitor"]["id"].clone();
        ensure!(
            next_id.is_string() && next_id != mona_id,
            "the same visitor: {next_id}"
        );
        for text in ["I am Mona", "Hello Mona"] {
            ensure!(count_lines(browser, text).await? == 0, "{text:?} came back");
        }
        let next_token = stored_token(browser).await?;
        ensure!(
            next_token.is_string() && next_token != mona_token,
            "stored token after reset: {next_token}"
        );

        // `Salam.reset()` before anything has loaded: the stored visitor is forgotten
        // at once, and what was queued for them is never sent.
        browser.goto(&logout_url).await?;
        let stored = stored_token(browser).await?;
        ensure!(stored != next_token, "the visitor token survived an early reset");
        browser.open_widget().await?;
        browser
            .wait("the connection", "return root.querySelector('.st.on, .st.aw')")
            .await?;
        let shown = browser.lines().await?;
        ensure!(shown.is_empty(), "lines shown after an early reset: {shown:?}");
        browser.type_and_send("A third visitor").await?;
        browser.wait_line("A third visitor").await?;
        let third = agent_sees(&mut agent, "A third visitor").await?;
        ensure!(third != next && third != mona, "an old conversation was reused");
        let details = get(&format!("/api/conversations/{third}")).await?;
        ensure!(details["identified"] == false, "identified: {details}");
        ensure!(
            details["visitor"]["id"] != next_id && details["visitor"]["id"] != mona_id,
            "an old visitor: {details}"
        );
        let history = get(&format!("/api/conversations/{third}/messages")).await?;
        let from_visitor: Vec<_> = history["messages"]
            .as_array()
            .context("no messages")?
            .iter()
            .filter(|message| message["author"]["kind"] == "visitor")
            .map(|message| message["text"].clone())
            .collect();
        ensure!(
            from_visitor == [json!("A third visitor")],
            "the visitor's messages: {from_visitor:?}"
        );
        Ok(())
    })
    .await
}
