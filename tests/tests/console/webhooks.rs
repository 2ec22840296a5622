//! Issue 17 in the console: the admin's webhooks page in a real Chromium against a real
//! hub and a real receiver (the webhook tests' own, which checks every signature). An
//! endpoint is added (its secret shown once), a visitor's message is delivered and shows
//! in the delivery log, Redeliver sends the same event again, Rotate shows a new secret,
//! and the page passes axe-core and reads right to left in Arabic.

use super::*;

use salam_e2e::webhook_receiver as receiver;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_adds_a_webhook_reads_its_log_and_redelivers() -> Result<()> {
    let hub = TestHub::start_with(|config| {
        config.webhooks.poll_ms = 100;
        config.webhooks.retry_base_ms = 200;
        config.webhooks.retry_max_ms = 800;
    })
    .await?;
    let receiver = receiver::Receiver::start().await?;
    let (client, session) = salam_e2e::chromium::start("1280,800").await?;
    let admin = Browser {
        client,
        name: "webhooks",
        _session: session,
    };
    let result = async {
        admin.sign_in(&hub, &hub.admin_email, &hub.admin_password).await?;
        admin.click("#nav button[data-view='admin']").await?;
        admin.click("#admin-tab-webhooks").await?;
        admin.find("#webhooks-site").await?;
        admin.select("#webhooks-site", &hub.site.id).await?;
        admin.find("#webhooks-empty").await?;
        admin.type_into("#new-webhook-url", &receiver.url()).await?;
        admin.click("#new-webhook-submit").await?;
        admin.find("#webhook-secret-box").await?;
        let secret = admin
            .js("return document.getElementById('webhook-secret').value;")
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned();
        ensure!(secret.starts_with("whsec_"), "secret shown: {secret:?}");
        receiver.set_secrets(&[&secret]);
        admin.wait_text("#webhooks-table", &receiver.url()).await?;

        let (_visitor, _) = hub.visitor_says("hello from the console test").await?;
        let started = Instant::now();
        let first = loop {
            if let Some(found) = receiver.delivered().into_iter().find(|r| {
                r.body["data"]["message"]["text"] == "hello from the console test"
            }) {
                break found;
            }
            ensure!(started.elapsed() < UI_WAIT, "the message was not delivered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        ensure!(first.verified == [0], "the signature did not verify");

        admin.click("#webhooks-table .webhook-log-open").await?;
        admin.wait_text("#webhook-deliveries", &first.id).await?;
        admin.wait_text("#webhook-deliveries", "Delivered").await?;
        admin.screenshot("webhooks").await?;
        salam_e2e::axe::check(&admin.client, "document", "webhooks page").await?;

        let row = "#webhook-deliveries tr[data-status='delivered']";
        let rows = admin.texts(row).await?;
        let index = rows
            .iter()
            .position(|text| text.contains(&first.id))
            .context("the delivery's row")?;
        admin
            .js(&format!(
                "document.querySelectorAll({})[{index}].querySelector('.webhook-redeliver').click(); return true;",
                serde_json::to_string(row)?
            ))
            .await?;
        admin.wait_text("#toast", "Queued to be sent again").await?;
        let started = Instant::now();
        while receiver.delivered().iter().filter(|r| r.id == first.id).count() < 2 {
            ensure!(started.elapsed() < UI_WAIT, "the redelivery did not arrive");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // Rotation: a new secret, shown once.
        admin.click("#webhooks-table .webhook-rotate").await?;
        let old = serde_json::to_string(&secret)?;
        admin
            .wait(
                "the new secret",
                &format!(
                    "const e = document.getElementById('webhook-secret'); \
                     return e && e.value.startsWith('whsec_') && e.value !== {old} ? e.value : null;"
                ),
            )
            .await?;

        admin.language("ar").await?;
        admin.wait_text("#admin-tab-webhooks", "خطافات الويب").await?;
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
        let _ = admin.screenshot("failure-webhooks").await;
    }
    admin.close().await;
    result
}
