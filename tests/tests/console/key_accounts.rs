//! Issue 19, point 3 ("key accounts first"), as an admin sees it in a real Chromium
//! against a real hub: the admin adds a rule `plan in [enterprise]` in the admin area
//! (`console/key_accounts.js`), a CRM sets the contact's plan through the REST API v1,
//! and the key account who writes last shows first in the inbox's queue, ahead of two
//! earlier visitors, with "#1 in queue". The reports page shows key accounts' first
//! responses apart, in Arabic too. axe-core checks the admin page.

use super::*;

/// A visitor who identifies as `user_id` (signed by the site) if given and asks for
/// help; returns the visitor (kept open) and the conversation.
async fn asking(hub: &TestHub, user_id: Option<&str>, text: &str) -> Result<(WsClient, String)> {
    let mut visitor = hub.visitor(None).await?;
    if let Some(user_id) = user_id {
        let token = salam_hub::identity::sign(
            &hub.site.identity_secret,
            &json!({"sub": user_id, "exp": salam_hub::clock::now_ms() / 1000 + 600}),
        );
        visitor
            .send_json(&json!({"type": "identify", "token": token}))
            .await?;
    }
    visitor
        .send_json(&json!({"type": "send", "client_id": "ask", "text": text}))
        .await?;
    let (ack, _) = visitor
        .recv_until(|frame| matches!(frame, ServerFrame::Ack { .. }))
        .await?;
    let ServerFrame::Ack { conversation, .. } = ack else {
        unreachable!("only an ack is awaited")
    };
    hub.wait_for(&conversation, |c| c.state == ConversationState::Queued)
        .await?;
    Ok((visitor, conversation))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_account_shows_ahead_of_earlier_visitors_in_the_queue() -> Result<()> {
    let hub = TestHub::start().await?;
    let admin_token = hub.admin_token().await?;
    let (admin_agent, _) = hub
        .state
        .store
        .agent_by_email(&hub.admin_email)
        .await?
        .context("the admin")?;
    with_browsers!(admin => {
        admin.sign_in(&hub, &hub.admin_email, &hub.admin_password).await?;
        // Away, so that routing leaves the chats in the queue.
        admin.select("#presence", "away").await?;
        wait_presence(&hub, &admin_token, &admin_agent.id, "away").await?;

        // The rule, made in the admin area.
        admin.click("#nav button[data-view='admin']").await?;
        admin.click("#admin-tab-key_accounts").await?;
        admin.find("#ka-form").await?;
        // The hub's first start made a demo site too: choose the test shop.
        admin.select("#ka-site", &hub.site.id).await?;
        admin.find(&format!("#ka-form[data-site='{}']", hub.site.id)).await?;
        admin.find("#ka-empty").await?;
        admin.type_into("#ka-name", "Enterprise").await?;
        admin.type_into("#ka-conditions .ka-attribute", "plan").await?;
        admin.select("#ka-conditions .ka-op", "in").await?;
        admin.type_into("#ka-conditions .ka-value", "enterprise, business").await?;
        admin.clear("#ka-priority").await?;
        admin.type_into("#ka-priority", "50").await?;
        admin.click("#ka-save").await?;
        admin.wait_text("#ka-table .ka-rule-name", "Enterprise").await?;
        admin.wait_text("#ka-table td", "plan is one of enterprise, business").await?;
        salam_e2e::axe::check(&admin.client, "document", "key accounts: a rule").await?;
        let stored = hub.state.store.site_by_id(&hub.site.id).await?.context("the site")?;
        let settings: Value = serde_json::from_str(&stored.settings)?;
        ensure!(
            settings["key_accounts"][0]["conditions"][0]
                == json!({"attribute": "plan", "op": "in", "value": ["enterprise", "business"]})
                && settings["key_accounts"][0]["priority"] == 50
                && settings["bot"] == false,
            "stored with the rest of the settings kept: {settings}"
        );
        // A rule the hub refuses says why, where the admin is looking.
        admin.type_into("#ka-name", "Broken").await?;
        admin.type_into("#ka-conditions .ka-attribute", "lifetime_value").await?;
        admin.select("#ka-conditions .ka-op", "gt").await?;
        admin.type_into("#ka-conditions .ka-value", "lots").await?;
        admin.click("#ka-save").await?;
        admin.wait_text("#ka-error", "number").await?;
        admin.screenshot("key-accounts-admin").await?;

        // The CRM marks the customer as enterprise.
        let (status, created) = hub
            .rest(&admin_token, "POST", &format!("/api/sites/{}/tokens", hub.site.id),
                json!({"name": "crm", "scope": "write"}))
            .await?;
        ensure!(status == 201 || status == 200, "{status} {created}");
        let secret = created["secret"].as_str().context("secret")?;
        let (status, contact) = hub
            .rest(secret, "POST", "/api/v1/contacts",
                json!({"external_id": "acme-9", "attributes": {"plan": "enterprise"}}))
            .await?;
        ensure!(status == 201, "{status} {contact}");

        // Two visitors wait, then the key account writes.
        let (_early, early_chat) = asking(&hub, None, "Is anyone there?").await?;
        let (_later, later_chat) = asking(&hub, None, "I have a question").await?;
        let (_key, key_chat) = asking(&hub, Some("acme-9"), "Our invoices are wrong").await?;

        admin.click("#nav button[data-view='inbox']").await?;
        admin.click("#inbox-tabs button[data-tab='queue']").await?;
        let row = |chat: &str| format!("#conversation-list li[data-id='{chat}']");
        for chat in [&early_chat, &later_chat, &key_chat] {
            admin.find(&row(chat)).await?;
        }
        admin.wait_text(&format!("{} .item-facts", row(&key_chat)), "#1 in queue").await?;
        admin.wait_text(&format!("{} .item-facts", row(&early_chat)), "#2 in queue").await?;
        let order = admin
            .js("return [...document.querySelectorAll('#conversation-list li')].map((li) => li.dataset.id);")
            .await?;
        ensure!(
            order == json!([key_chat, early_chat, later_chat]),
            "the key account is listed first: {order}"
        );
        admin.screenshot("key-accounts-queue").await?;

        // The reports page has the key accounts' part.
        admin.click("#nav button[data-view='reports']").await?;
        admin.wait_text("#r-key-accounts h3", "key accounts").await?;
        admin.find("#r-key-accounts-first").await?;
        admin.find("#r-others-first").await?;
        // In Arabic, the admin page and the report read right to left in their words.
        admin.language("ar").await?;
        admin.wait_text("#r-key-accounts h3", "الحسابات الرئيسية").await?;
        admin.click("#nav button[data-view='admin']").await?;
        admin.click("#admin-tab-key_accounts").await?;
        admin.wait_text("#ka-table td", "أحد").await?;
        admin.screenshot("key-accounts-admin-ar").await?;
        admin.language("en").await?;
        Ok(())
    })
}
