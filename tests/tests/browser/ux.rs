//! The widget as visitors live in it (issue 15), measured in the page at desktop
//! 1280×800 and phone 375×667, and on a right-to-left host page: the newest line in
//! view, the phone layout (full screen, 16 px input, the page behind locked), the
//! launcher staying in its corner, distinct labels for the two "Send" buttons, the
//! panel open again after a reload, one numbering in Persian, and axe-core finding no
//! serious or critical violation in the open panel.

use crate::support::{Browser, Setup, host_page, with_browser_at};
use anyhow::{Context, Result, ensure};
use serde_json::Value;
use std::path::Path;

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

/// Runs axe-core in the page and fails on serious or critical violations inside the
/// widget (axe includes open shadow roots).
async fn axe(browser: &Browser) -> Result<()> {
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("axe/node_modules/axe-core/axe.min.js"),
    )
    .context("axe-core is missing: npm ci --prefix tests/axe --ignore-scripts")?;
    browser.client.execute(&source, vec![]).await?;
    let result = browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1]; \
             axe.run(document.querySelector('salam-chat'), {resultTypes: ['violations']}) \
               .then(r => done(r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical') \
                 .map(v => v.id + ': ' + v.nodes.map(n => JSON.stringify(n.target)).join(' ')))) \
               .catch(e => done(['axe failed: ' + e]));",
            vec![],
        )
        .await?;
    ensure!(result == Value::Array(Vec::new()), "axe: {result}");
    Ok(())
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
