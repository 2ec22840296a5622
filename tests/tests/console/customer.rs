//! Issue 19: the customer card beside a conversation shows an attribute a CRM set
//! through the REST API and one the site signed in the identity token, each with its
//! source; values are text, and a long one is cut with the whole of it in its title.
//! The Customers page finds the customer by `key=value` and by name.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_customer_card_shows_rest_and_signed_attributes_and_search_finds_them() -> Result<()> {
    let hub = TestHub::start().await?;
    let admin_token = hub.admin_token().await?;
    let created = rest(
        hub.addr,
        &admin_token,
        "POST",
        &format!("/api/sites/{}/tokens", hub.site.id),
        json!({"name": "crm", "scope": "write"}),
    )
    .await?;
    let api_token = created["secret"].as_str().context("secret")?.to_owned();
    let long_note = format!("<b>VIP</b> {}", "x".repeat(200));
    rest(
        hub.addr,
        &api_token,
        "POST",
        "/api/v1/contacts",
        json!({"external_id": "crm-5", "attributes": {"order_status": "packed", "note": long_note}}),
    )
    .await?;

    let token = salam_hub::identity::sign(
        &hub.site.identity_secret,
        &json!({
            "sub": "crm-5", "name": "Mona", "exp": salam_hub::clock::now_ms() / 1000 + 600,
            "attributes": {"plan": "gold"},
        }),
    );
    let mut visitor = hub.visitor(None).await?;
    visitor
        .send_json(&json!({"type": "identify", "token": token}))
        .await?;
    visitor
        .send_json(&json!({"type": "send", "client_id": "c-1", "text": "Where is my parcel?"}))
        .await?;
    let (ack, skipped) = visitor
        .recv_until(|frame| matches!(frame, ServerFrame::Ack { .. }))
        .await?;
    ensure!(
        !skipped
            .iter()
            .any(|frame| matches!(frame, ServerFrame::Error { .. })),
        "the identity was refused: {skipped:?}"
    );
    let ServerFrame::Ack { conversation, .. } = ack else {
        unreachable!()
    };

    with_browsers!(admin => {
        admin.sign_in(&hub, &hub.admin_email, &hub.admin_password).await?;
        admin.click("#inbox-tabs button[data-tab='open']").await?;
        admin.click(&format!("#conversation-list li[data-id='{conversation}']")).await?;
        admin.wait_text("#customer-card .customer-name", "Mona").await?;
        admin.wait_text("#customer-card .detail[data-field='name'] .badge.source[data-source='signed']", "signed").await?;
        admin.wait_text("#customer-card .customer-external-id", "crm-5").await?;
        admin.wait_text("#customer-attributes .attribute[data-key='plan'][data-source='signed'] .attribute-value", "gold").await?;
        admin.wait_text("#customer-attributes .attribute[data-key='order_status'][data-source='contact'] .attribute-value", "packed").await?;
        // The long value: cut, whole in the title, and its markup is text.
        let note = admin
            .js("const v = document.querySelector(\"#customer-attributes .attribute[data-key='note'] .attribute-value\"); \
                 return v && [v.textContent, v.title, !!document.querySelector('#customer-card b')];")
            .await?;
        ensure!(note[1] == long_note.as_str(), "the title is not the whole value: {note}");
        let cut = note[0].as_str().unwrap_or_default();
        ensure!(cut.ends_with('…') && cut.starts_with("<b>VIP</b> x") && cut.chars().count() < 100, "not cut: {cut:?}");
        ensure!(note[2] == false, "the value became markup");
        admin.screenshot("customer-card").await?;
        salam_e2e::axe::check(&admin.client, "document", "the conversation with its customer card").await?;

        // The Customers page: by an attribute, then by name.
        admin.click("#nav button[data-view='customers']").await?;
        admin.type_into("#customer-search", "plan=gold").await?;
        admin.click("#customer-search-submit").await?;
        admin.wait_text("#customer-list .customer-result .customer-result-name", "Mona").await?;
        admin.wait_text("#customer-list .customer-result .customer-result-external", "crm-5").await?;
        admin.clear("#customer-search").await?;
        admin.type_into("#customer-search", "plan=silver").await?;
        admin.click("#customer-search-submit").await?;
        admin.find("#customer-none").await?;
        admin.clear("#customer-search").await?;
        admin.type_into("#customer-search", "mon").await?;
        admin.click("#customer-search-submit").await?;
        admin.wait_text("#customer-list .customer-result .customer-result-name", "Mona").await?;
        admin.screenshot("customers-search").await?;
        salam_e2e::axe::check(&admin.client, "document", "the Customers page with results").await?;
        admin.language("ar").await?;
        admin.wait_text("#view-customers h2", "العملاء").await?;
        admin.wait_text("#customer-list .customer-result .customer-result-name", "Mona").await?;
        admin.language("en").await?;
        Ok(())
    })
}
