//! Issue 19 in the console: the admin's proactive triggers page in a real Chromium
//! against a real hub. A trigger is added with a page condition and an attribute
//! condition and saved into the site settings; a bad one is refused with the hub's
//! reason; the report shows how often each was shown; the page passes axe-core and reads
//! right to left in Persian.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_adds_a_trigger_and_reads_its_report() -> Result<()> {
    let hub = TestHub::start().await?;
    let (client, session) = salam_e2e::chromium::start("1280,800").await?;
    let admin = Browser {
        client,
        name: "triggers",
        _session: session,
    };
    let result = async {
        admin.sign_in(&hub, &hub.admin_email, &hub.admin_password).await?;
        admin.click("#nav button[data-view='admin']").await?;
        admin.click("#admin-tab-triggers").await?;
        admin.select("#triggers-site", &hub.site.id).await?;
        admin.find("#triggers-report-empty").await?;
        admin.click("#trigger-add").await?;
        admin.type_into("#triggers-list .trigger-id", "pricing").await?;
        admin
            .type_into("#triggers-list .trigger-message", "Questions about our plans?")
            .await?;
        admin
            .type_into("#triggers-list .trigger-value input", "/pricing*")
            .await?;
        admin.click("#triggers-list .trigger-add-attribute").await?;
        admin.type_into("#triggers-list .trigger-attribute", "plan").await?;
        admin
            .type_into("#triggers-list .trigger-attribute-value", "enterprise")
            .await?;
        admin.click("#triggers-save").await?;
        admin.wait_text("#triggers-report", "pricing").await?;
        let site = hub
            .state
            .store
            .site_by_id(&hub.site.id)
            .await?
            .context("the site")?;
        let settings: Value = serde_json::from_str(&site.settings)?;
        let saved = &settings["triggers"][0];
        ensure!(
            saved["id"] == "pricing"
                && saved["message"] == "Questions about our plans?"
                && saved["when"] == json!([{"kind": "url", "pattern": "/pricing*"}])
                && saved["attributes"]
                    == json!([{"attribute": "plan", "op": "eq", "value": "enterprise"}])
                && saved["from"] == "bot",
            "saved {saved}"
        );

        // A second trigger with the same id: the hub's reason, nothing saved.
        admin.click("#trigger-add").await?;
        admin
            .js("const ids = document.querySelectorAll('#triggers-list .trigger-id'); \
                 ids[1].value = 'pricing'; \
                 document.querySelectorAll('#triggers-list .trigger-message')[1].value = 'Again'; \
                 document.querySelectorAll('#triggers-list .trigger-value input')[1].value = '/x'; return 1;")
            .await?;
        admin.click("#triggers-save").await?;
        admin.wait_text("#toast", "ids must be unique").await?;

        admin.screenshot("triggers").await?;
        salam_e2e::axe::check(&admin.client, "document", "triggers page").await?;
        admin.language("fa").await?;
        admin.wait_text("#admin-tab-triggers", "پیام‌های پیشگامانه").await?;
        let dir = admin.js("return document.documentElement.dir;").await?;
        ensure!(dir == "rtl", "dir {dir}");
        let errors = admin.js("return window.salamErrors || [];").await?;
        ensure!(
            errors.as_array().is_none_or(|list| list.is_empty()),
            "uncaught errors in the console: {errors}"
        );
        Ok(())
    }
    .await;
    if result.is_err() {
        let _ = admin.screenshot("failure-triggers").await;
    }
    admin.close().await;
    result
}
