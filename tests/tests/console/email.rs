//! Issue 17 in the console, in a real Chromium against a real hub and a real SMTP
//! server that captures mail: "Reply by e-mail" on an offline request sends the answer
//! by e-mail, marks the request done, and the conversation shows its e-mail badge.

use super::*;
use salam_e2e::smtp::{Capture, mails};

#[tokio::test]
async fn an_offline_request_is_answered_by_email_from_the_console() -> Result<()> {
    let capture = Capture::start().await?;
    let port = capture.port;
    let inbound: SocketAddr = format!("127.0.0.1:{}", salam_e2e::process::free_port()?).parse()?;
    let hub = TestHub::start_with(|config| {
        config.smtp.url = Some(format!("smtp://127.0.0.1:{port}"));
        config.smtp.from = "Salam Support <support@example.test>".into();
        config.smtp_inbound.listen = Some(inbound);
        config.smtp_inbound.domain = "reply.example.test".into();
    })
    .await?;
    hub.set_site_settings(r#"{"bot": false}"#).await?;
    let (mut visitor, conversation) = hub.visitor_says("Please e-mail me about my order").await?;
    visitor
        .send_json(&json!({"type": "contact", "conversation": conversation, "name": "Layla", "email": "layla@example.com"}))
        .await?;
    let token = hub.admin_token().await?;
    let id = salam_e2e::process::eventually("the request", UI_WAIT, || async {
        let listed = hub.get_ok(&token, "/api/offline-requests").await?;
        Ok(listed["requests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|request| request["email"] == "layla@example.com")
            .and_then(|request| request["id"].as_i64()))
    })
    .await?;
    let row = format!("#offline-table tr[data-id='{id}']");
    with_browsers!(admin => {
        admin.sign_in(&hub, &hub.admin_email, &hub.admin_password).await?;
        admin.click("#nav button[data-view='admin']").await?;
        admin.click("#admin-tab-offline").await?;
        admin.click(&format!("{row} .reply-email")).await?;
        admin.type_into(&format!("{row} .email-reply-text"), "Your order left today.").await?;
        admin.click(&format!("{row} .email-reply button[type='submit']")).await?;
        let gone = serde_json::to_string(&row)?;
        admin.wait("the answered request to leave", &format!("return !document.querySelector({gone});")).await?;
        let sent = mails(capture.wait_for(1).await?);
        ensure!(sent[0].to()? == "layla@example.com");
        ensure!(sent[0].text()?.contains("Your order left today."));
        admin.click("#nav button[data-view='inbox']").await?;
        admin.click("#inbox-tabs button[data-tab='open']").await?;
        admin.find(&format!(".item[data-id='{conversation}'] .badge.channel-email")).await?;
        Ok(())
    })
}
