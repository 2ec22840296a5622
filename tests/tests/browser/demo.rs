//! The demo page at `/`, as a new user sees it after `cargo run --release`: the hub's own
//! page, under its own Content-Security-Policy, with the embedded widget and the bot.

use crate::support::with_browser;
use anyhow::{Result, ensure};
use salam_e2e::TestHub;

#[tokio::test]
async fn the_demo_page_serves_a_working_widget() -> Result<()> {
    let hub = TestHub::start().await?;
    // The demo site allows the hub's own origin; the test hub listens on a random port.
    let sites = hub.state.store.list_sites().await?;
    let demo = sites
        .first()
        .expect("the first start created the demo site");
    ensure!(demo.name == "Demo Store");
    let origin = format!("http://127.0.0.1:{}", hub.addr.port());
    hub.state
        .store
        .update_site(&demo.id, None, Some(std::slice::from_ref(&origin)))
        .await?;
    with_browser(async |browser| {
        browser.goto(&format!("{origin}/")).await?;
        browser.open_widget().await?;
        browser.type_and_send("how much is shipping?").await?;
        browser.wait_line("how much is shipping?").await?;
        browser
            .wait(
                "the bot's answer on the demo page",
                "return root.querySelector('.lg2 .m.i .av.bot')",
            )
            .await?;
        browser.screenshot("demo-page").await?;
        Ok(())
    })
    .await
}
