//! Issue 17: the admin area's API tokens (`console/tokens.js`) in a real Chromium
//! against a real hub: an admin creates a token, sees its secret once and copies it,
//! the secret works on `/api/v1`, the list shows it in Arabic too, and revoking it
//! makes the API refuse it at once. axe-core checks the page. The API's documentation
//! page (`/api/docs`) renders the generated document.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_creates_copies_and_revokes_an_api_token() -> Result<()> {
    let hub = TestHub::start().await?;
    let admin = Browser::start("tokens").await?;
    let result = async {
        admin
            .sign_in(&hub, &hub.admin_email, &hub.admin_password)
            .await?;
        admin.click("#nav button[data-view='admin']").await?;
        admin.click("#admin-tab-tokens").await?;
        admin.find("#token-form").await?;
        admin.type_into("#token-name", "CRM sync").await?;
        admin.select("#token-scope", "write").await?;
        admin.click("#token-create").await?;
        admin.find("#token-secret-value").await?;
        let secret = admin
            .js("return document.getElementById('token-secret-value').textContent;")
            .await?;
        let secret = secret.as_str().context("the secret")?.to_owned();
        ensure!(secret.starts_with("salam_"), "{secret}");
        admin.wait_text("#tokens-table td", "CRM sync").await?;
        admin.click("#token-copy").await?;
        admin.wait_text("#token-copy", "Copied").await?;
        salam_e2e::axe::check(&admin.client, "document", "tokens: created").await?;

        let bearer = format!("Bearer {secret}");
        let site = http_request(
            hub.addr,
            "GET",
            "/api/v1/site",
            &[("authorization", &bearer)],
            "",
        )
        .await?;
        ensure!(site.status == 200, "{} {}", site.status, site.body);
        let site: Value = serde_json::from_str(&site.body)?;
        ensure!(
            site["scope"] == "write" && site["token_name"] == "CRM sync",
            "{site}"
        );

        // The secret is shown once: after a re-render it is gone, the row stays.
        admin.click("#admin-tab-agents").await?;
        admin.click("#admin-tab-tokens").await?;
        admin.wait_text("#tokens-table td", "CRM sync").await?;
        ensure!(
            admin
                .js("return !document.getElementById('token-secret-value');")
                .await?
                == json!(true),
            "the secret is still shown"
        );
        admin.language("ar").await?;
        admin
            .wait_text("#admin-tab-tokens", "رموز الواجهة البرمجية")
            .await?;
        admin.wait_text("#tokens-table td", "قراءة وكتابة").await?;

        admin.click(".token-revoke").await?;
        admin.click(".confirm-yes").await?;
        admin.wait_text("#tokens-table td", "أُلغي").await?;
        let refused = http_request(
            hub.addr,
            "GET",
            "/api/v1/site",
            &[("authorization", &bearer)],
            "",
        )
        .await?;
        ensure!(refused.status == 401, "{} {}", refused.status, refused.body);
        let errors = admin.js("return window.salamErrors || [];").await?;
        ensure!(
            errors.as_array().is_none_or(|list| list.is_empty()),
            "uncaught errors: {errors}"
        );
        // The console links to the API's documentation page, which renders the
        // generated document by itself (no CDN).
        admin
            .client
            .goto(&format!("{}/api/docs", hub.http()))
            .await?;
        admin
            .wait(
                "the documentation page",
                "return document.querySelectorAll('.op').length > 10;",
            )
            .await?;
        admin
            .wait_text("code", "/api/v1/conversations/{id}/messages")
            .await?;
        admin.wait_text("h3", "SendMessage").await?;
        Ok(())
    }
    .await;
    if result.is_err() {
        let _ = admin.screenshot("failure-tokens").await;
    }
    admin.close().await;
    result
}
