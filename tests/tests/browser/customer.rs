//! The customer in the bot's answers (issue 19), as a visitor sees them in the real
//! widget: the demo pack's greeting says `Hello {name|there}`, so an identified customer
//! (a signed token with a name) is greeted by name and an anonymous visitor gets the
//! fallback. The name is text: markup and braces in it are shown as written.

use crate::support::{Browser, Setup, with_browser};
use anyhow::{Context, Result, ensure};
use serde_json::json;

/// The stub that queues `Salam` calls made before the widget loads.
const STUB: &str = "window.Salam=window.Salam||{q:[]};'open close toggle send identify setLocale on'.split(' ')\
     .forEach(function(m){Salam[m]=Salam[m]||function(){Salam.q.push([m,[].slice.call(arguments)]);return Salam}});";

/// Says hello and returns the text of the bot's greeting.
async fn greeting(browser: &Browser, url: &str) -> Result<String> {
    browser.goto(url).await?;
    browser.open_widget().await?;
    browser.type_and_send("hello").await?;
    browser.wait_line("hello").await?;
    let text = browser
        .wait(
            "the bot's greeting",
            "const line = root && [...root.querySelectorAll('.lg2 > .m')].find(e => \
               e.querySelector('.av.bot') && e.querySelector('.b').textContent.startsWith('Hello ')); \
             return line ? line.querySelector('.b').textContent : null;",
        )
        .await?;
    Ok(text.as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn the_greeting_names_an_identified_customer_and_falls_back_for_an_anonymous_one()
-> Result<()> {
    let setup = Setup::new().await?;
    let site = setup
        .hub
        .state
        .store
        .site_by_key(&setup.site_key)
        .await?
        .context("no site")?;
    let name = "Mona <i>{store_name}</i>";
    let token = salam_hub::identity::sign(
        &site.identity_secret,
        &json!({"sub": "customer-19", "name": name,
                "exp": salam_hub::clock::now_ms() / 1000 + 3600}),
    );
    let identified = setup.page(
        "/identified",
        "",
        "",
        &format!("<script>{STUB}Salam.identify({{token: '{token}'}});</script>"),
    );
    let anonymous = setup.page("/anonymous", "", "", "");

    with_browser(async |browser| {
        let text = greeting(browser, &identified).await?;
        ensure!(
            text.starts_with(&format!("Hello {name}, and welcome to ")),
            "the identified customer's greeting: {text:?}"
        );
        // Shown as text: no element was made of the name's markup.
        let markup = browser
            .js("return [...root.querySelectorAll('.lg2 .b i')].length")
            .await?;
        ensure!(markup == json!(0), "the name became markup");
        Ok(())
    })
    .await?;

    with_browser(async |browser| {
        let text = greeting(browser, &anonymous).await?;
        ensure!(
            text.starts_with("Hello there, and welcome to "),
            "the anonymous visitor's greeting: {text:?}"
        );
        Ok(())
    })
    .await
}
