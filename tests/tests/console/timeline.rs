//! Issue 19, the customer timeline in the console: the same identified customer in two
//! browsers with separate profiles (a phone, then a laptop: two visitor ids), and the
//! agent's "Customer history" of the laptop's conversation shows the phone's earlier
//! one, which opens from there; at a phone's size (375×667) and right to left too.

use super::*;
use salam_e2e::host_pages::HostPages;
use salam_e2e::{AccountSetup, sign_identity};

/// The shop's pages (another origin than the hub's).
struct ShopPages(HostPages);

impl ShopPages {
    async fn start() -> Result<ShopPages> {
        Ok(ShopPages(HostPages::start().await?))
    }

    fn origin(&self) -> String {
        self.0.origin()
    }

    /// Serves a page titled `title` embedding the widget, whose visitor the site
    /// identifies with `identity` (a signed token); returns its URL.
    fn page(&self, path: &str, title: &str, hub: &str, site_key: &str, identity: &str) -> String {
        let html = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
             <body><h1>{title}</h1>\
             <script>window.Salam=window.Salam||{{q:[]}};'open close toggle send identify setLocale on'.split(' ')\
             .forEach(function(m){{Salam[m]=Salam[m]||function(){{Salam.q.push([m,[].slice.call(arguments)]);return Salam}}}});\
             Salam.identify({{token: '{identity}'}});</script>\
             <script src=\"{hub}/widget.js\" data-site=\"{site_key}\" async></script></body></html>"
        );
        self.0.page(path, html)
    }
}

/// In the shop's page: opens the widget, sends `text` and waits until it is committed.
async fn customer_says(browser: &Browser, url: &str, text: &str) -> Result<()> {
    browser.client.goto(url).await?;
    let root =
        "const host = document.querySelector('salam-chat'); const root = host && host.shadowRoot;";
    browser
        .wait(
            "the launcher",
            &format!("{root} return !!(root && root.querySelector('.L'));"),
        )
        .await?;
    browser
        .js(&format!(
            "{root} root.querySelector('.L').click(); return true;"
        ))
        .await?;
    browser
        .wait(
            "the panel",
            &format!("{root} const p = root.querySelector('.P'); return !!p && !p.hidden;"),
        )
        .await?;
    let host = browser.client.find(Locator::Css("salam-chat")).await?;
    let input = host
        .shadow_root()
        .await?
        .find(Locator::Css(".C textarea"))
        .await?;
    input.send_keys(text).await?;
    input.send_keys("\u{E007}").await?;
    let want = serde_json::to_string(text)?;
    browser
        .wait(
            "the committed line",
            &format!(
                "{root} return [...root.querySelectorAll('.lg2 > .m')].some(e => \
                 e.querySelector('.b').textContent === {want} && !e.classList.contains('p'));"
            ),
        )
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_shows_a_returning_customers_chat_from_another_browser() -> Result<()> {
    let hub = TestHub::start().await?;
    let shop = ShopPages::start().await?;
    let site = hub.create_site("Shop", &[shop.origin()]).await?;
    hub.state
        .store
        .update_site_settings(&site.id, r#"{"bot": false}"#)
        .await?;
    let site = hub
        .state
        .store
        .site_by_id(&site.id)
        .await?
        .context("the shop's site")?;
    salam_hub::admin::announce_site(&hub.state, &site).await?;
    let exp = salam_hub::clock::now_ms() / 1000 + 3600;
    let identity = sign_identity(
        &site.identity_secret,
        &json!({"sub": "customer-42", "name": "Layla", "exp": exp}),
    );
    let orders = shop.page("/orders", "Order 42", &hub.http(), &site.key, &identity);
    let pricing = shop.page(
        "/pricing",
        "Pricing plans",
        &hub.http(),
        &site.key,
        &identity,
    );
    let (_, _sara_token) = hub
        .add_account(AccountSetup {
            name: "Sara",
            ..AccountSetup::agent_of(&[site.id.as_str()])
        })
        .await?;
    let mut watcher = hub.admin_agent().await?;

    // Monday, on the phone (its own browser profile).
    let mut first = String::new();
    with_browsers!(phone => {
        customer_says(&phone, &orders, "Where is order 42?").await?;
        first = watcher.agent_sees("Where is order 42?").await?.conversation;
        Ok(())
    })?;

    // Today, on the laptop (another profile: nothing of the phone's storage), and the
    // agent's console.
    with_browsers!(laptop, sara => {
        customer_says(&laptop, &pricing, "Hello again, about order 42").await?;
        let second = watcher.agent_sees("Hello again, about order 42").await?.conversation;
        ensure!(second != first, "the laptop wrote into the phone's conversation");

        sara.sign_in(&hub, "sara@shop.test", AGENT_PASSWORD).await?;
        sara.js(&format!("location.hash = '#inbox/{second}'; return true;")).await?;
        sara.find("#chat-header #timeline-button").await?;
        sara.wait_text("#chat-visitor-name", "Layla").await?;
        sara.click("#timeline-button").await?;
        sara.find("#timeline-dialog[open] #timeline-list .tl-entry").await?;
        // The earlier conversation, from the other browser, is in the list; so are this
        // one and the page of the current session.
        let earlier = format!("#timeline-list .tl-open[data-conversation='{first}']");
        sara.find(&earlier).await?;
        sara.wait_text("#timeline-list .tl-conversation", "Where is order 42?").await?;
        sara.wait_text("#timeline-list .tl-current", "this conversation").await?;
        sara.wait_text("#timeline-list .tl-page_view .tl-title", "Pricing plans").await?;
        sara.wait_text("#timeline-linked", "2 browsers or devices").await?;
        ensure!(
            sara.js("return window.__xss === undefined;").await? == true,
            "markup ran"
        );
        sara.screenshot("timeline").await?;

        // It opens from there (read-only history).
        sara.click(&earlier).await?;
        sara.wait(
            "the dialog to close",
            "return !document.getElementById('timeline-dialog').open;",
        )
        .await?;
        sara.wait_text("#messages .msg.author-visitor", "Where is order 42?").await?;

        // A phone's size, right to left: the history still fits and reads.
        sara.language("ar").await?;
        super::inbox::viewport(&sara, 375, 667).await?;
        sara.click("#timeline-button").await?;
        sara.find("#timeline-dialog[open] #timeline-list .tl-entry").await?;
        sara.wait_text("#timeline-title", "سجل العميل").await?;
        let fits = sara
            .js("const d = document.getElementById('timeline-dialog').getBoundingClientRect(); \
                 return d.left >= 0 && d.right <= window.innerWidth && \
                 document.documentElement.scrollWidth <= window.innerWidth;")
            .await?;
        ensure!(fits == true, "the timeline overflows a phone's width");
        salam_e2e::axe::check(
            &sara.client,
            "document.getElementById('timeline-dialog')",
            "the timeline dialog",
        ).await?;
        sara.screenshot("timeline-phone-ar").await?;
        Ok(())
    })
}
