//! Issue 19, point 3 ("key accounts first"): per-site priority rules on the customer's
//! attributes, through the real hub: the contact is set through the REST API v1, the
//! visitor identifies with a signed token, the rules are saved through the site
//! settings admin route.

use anyhow::{Context, Result, ensure};
use salam_e2e::{Client, TestHub};
use salam_protocol::{ConversationState, ServerFrame};
use serde_json::{Value, json};
use std::time::Duration;

/// How long a view may lag the store (generous: a loaded machine).
const WAIT: Duration = Duration::from_secs(30);

/// The rule of these tests: `plan in [enterprise]`, with what `extra` adds.
fn enterprise_rule(extra: Value) -> Value {
    let mut rule = json!({
        "name": "Enterprise",
        "conditions": [{"attribute": "plan", "op": "in", "value": ["enterprise"]}],
        "priority": 50,
    });
    if let Value::Object(extra) = extra {
        rule.as_object_mut().expect("an object").extend(extra);
    }
    rule
}

/// Saves the test site's settings through `PUT /api/sites/{id}/settings`; the status
/// and the answer.
async fn put_settings(hub: &TestHub, admin: &str, settings: Value) -> Result<(u16, Value)> {
    hub.rest(
        admin,
        "PUT",
        &format!("/api/sites/{}/settings", hub.site.id),
        settings,
    )
    .await
}

/// Creates the contact `external_id` with `attributes` through `/api/v1/contacts`, with
/// an API token of the site's `write` scope made through the console's endpoint.
async fn crm_contact(
    hub: &TestHub,
    admin: &str,
    external_id: &str,
    attributes: Value,
) -> Result<()> {
    let (status, created) = hub
        .rest(
            admin,
            "POST",
            &format!("/api/sites/{}/tokens", hub.site.id),
            json!({"name": "crm", "scope": "write"}),
        )
        .await?;
    ensure!(status == 201 || status == 200, "token: {status} {created}");
    let secret = created["secret"].as_str().context("token secret")?;
    let (status, contact) = hub
        .rest(
            secret,
            "POST",
            "/api/v1/contacts",
            json!({"external_id": external_id, "attributes": attributes}),
        )
        .await?;
    ensure!(status == 201, "contact: {status} {contact}");
    Ok(())
}

/// A visitor who identifies as `user_id` (signed by the site) if given, then says
/// `text`; returns the visitor and the conversation.
async fn visitor(hub: &TestHub, user_id: Option<&str>, text: &str) -> Result<(Client, String)> {
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
        .send_json(&json!({"type": "send", "client_id": "first", "text": text}))
        .await?;
    let (ack, skipped) = visitor
        .recv_until(|frame| matches!(frame, ServerFrame::Ack { .. }))
        .await?;
    ensure!(
        !skipped
            .iter()
            .any(|frame| matches!(frame, ServerFrame::Error { .. })),
        "refused: {skipped:?}"
    );
    let ServerFrame::Ack { conversation, .. } = ack else {
        unreachable!("only an ack is awaited")
    };
    Ok((visitor, conversation))
}

async fn queued(hub: &TestHub, conversation: &str) -> Result<salam_store::Conversation> {
    hub.wait_for(conversation, |c| c.state == ConversationState::Queued)
        .await
}

async fn assigned(hub: &TestHub, conversation: &str) -> Result<salam_store::Conversation> {
    hub.wait_for(conversation, |c| c.state == ConversationState::Assigned)
        .await
}

/// The queue positions of the test site, by conversation (`GET /api/queue`).
async fn positions(hub: &TestHub, token: &str) -> Result<Vec<(String, u64)>> {
    let queue = hub.get_ok(token, "/api/queue").await?;
    let mut entries: Vec<(String, u64)> = queue["sites"][&hub.site.id]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|entry| {
            (
                entry["conversation"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                entry["position"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    entries.sort_by_key(|(_, position)| *position);
    Ok(entries)
}

/// The done-when of point 3: an attribute-based priority puts a key account ahead of
/// earlier visitors in the queue, and the agent who comes online gets it first. The
/// first responses land in the report's key-account part and the rest's apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_account_waits_ahead_of_earlier_visitors_and_is_served_first() -> Result<()> {
    let hub = TestHub::start().await?;
    let admin = hub.admin_token().await?;
    let (_, agent_token) = hub.add_agent("Nadia", Some(1), &[]).await?;
    let (status, answer) = put_settings(
        &hub,
        &admin,
        json!({"bot": false, "key_accounts": [enterprise_rule(json!({}))]}),
    )
    .await?;
    ensure!(status == 200, "settings: {status} {answer}");
    crm_contact(&hub, &admin, "acme-1", json!({"plan": "enterprise"})).await?;

    // Nobody is online: two anonymous visitors wait, then the key account comes.
    let (_early, early_chat) = visitor(&hub, None, "hello, anyone?").await?;
    queued(&hub, &early_chat).await?;
    let (_later, later_chat) = visitor(&hub, None, "I need help too").await?;
    queued(&hub, &later_chat).await?;
    let (mut key, key_chat) = visitor(&hub, Some("acme-1"), "our invoices are wrong").await?;
    let stored = queued(&hub, &key_chat).await?;
    ensure!(stored.priority == 50, "raised priority: {stored:?}");
    ensure!(
        hub.state
            .store
            .conversation(&early_chat)
            .await?
            .map(|c| c.priority)
            == Some(0),
        "an anonymous visitor keeps priority 0"
    );
    // The store says `queued` before routing has the hand-off (its view lags by a
    // message): wait for all three in the view, then check the order.
    let order = salam_e2e::process::eventually("three in the queue", WAIT, || async {
        let order = positions(&hub, &agent_token).await?;
        Ok((order.len() == 3).then_some(order))
    })
    .await?;
    ensure!(
        order
            == vec![
                (key_chat.clone(), 1),
                (early_chat.clone(), 2),
                (later_chat.clone(), 3)
            ],
        "the key account is first in the queue: {order:?}"
    );
    // The widget says so too.
    key.recv_until(|frame| {
        matches!(frame, ServerFrame::Queue { conversation, position: 1, .. } if *conversation == key_chat)
    })
    .await?;

    // An agent comes online with one free seat: the key account is theirs.
    let mut nadia = hub.agent(&agent_token).await?;
    let found = assigned(&hub, &key_chat).await?;
    let nadia_id = found.agent_id.clone().context("an agent")?;
    ensure!(
        hub.state
            .store
            .conversation(&early_chat)
            .await?
            .map(|c| c.state)
            == Some(ConversationState::Queued),
        "the earlier visitor still waits"
    );

    // The agent answers; the report gives key accounts' first responses apart.
    nadia
        .send_json(&json!({"type": "send", "conversation": key_chat, "client_id": "r1", "text": "Hello, I am on it."}))
        .await?;
    nadia
        .recv_until(|frame| matches!(frame, ServerFrame::Ack { .. }))
        .await?;
    nadia
        .send_json(&json!({"type": "close", "conversation": key_chat}))
        .await?;
    let next = assigned(&hub, &early_chat).await?;
    ensure!(
        next.agent_id.as_deref() == Some(nadia_id.as_str()),
        "{next:?}"
    );
    nadia
        .send_json(
            &json!({"type": "send", "conversation": early_chat, "client_id": "r2", "text": "Hi!"}),
        )
        .await?;
    nadia
        .recv_until(|frame| matches!(frame, ServerFrame::Ack { .. }))
        .await?;
    let report = hub.get_ok(&admin, "/api/reports").await?;
    let split = &report["key_accounts"];
    ensure!(
        split["first_response_ms"]["count"] == 1 && split["others_first_response_ms"]["count"] == 1,
        "first responses split: {split}"
    );
    ensure!(
        report["first_response_ms"]["count"] == 2,
        "the overall figure counts both: {report}"
    );
    Ok(())
}

/// `owner`: the account owner gets the chat first when online with a free seat, although
/// the usual rule would pick the other agent (idle longer); others route as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_owner_is_offered_the_key_account_first() -> Result<()> {
    let hub = TestHub::start().await?;
    let admin = hub.admin_token().await?;
    let (_, other_token) = hub.add_agent("Omid", Some(3), &[]).await?;
    let (owner_id, owner_token) = hub.add_agent("Sara", Some(3), &[]).await?;
    let (status, answer) = put_settings(
        &hub,
        &admin,
        json!({"bot": false, "key_accounts": [enterprise_rule(json!({"owner": "sara@shop.test"}))]}),
    )
    .await?;
    ensure!(status == 200, "settings: {status} {answer}");
    crm_contact(&hub, &admin, "acme-2", json!({"plan": "enterprise"})).await?;
    // Omid is online first, so idle longest: the usual rule picks him.
    let _omid = hub.agent(&other_token).await?;
    let _sara = hub.agent(&owner_token).await?;

    let (_key, key_chat) = visitor(&hub, Some("acme-2"), "hello").await?;
    let found = assigned(&hub, &key_chat).await?;
    ensure!(
        found.agent_id.as_deref() == Some(owner_id.as_str()),
        "the owner got the key account: {found:?}"
    );
    let (_plain, plain_chat) = visitor(&hub, None, "hello").await?;
    let found = assigned(&hub, &plain_chat).await?;
    ensure!(
        found.agent_id.as_deref() != Some(owner_id.as_str()),
        "others follow the usual rule: {found:?}"
    );
    Ok(())
}

/// `skip_bot` sends a key account straight to people (hand-off reason `key_account`);
/// without it the bot answers first and its hand-off still carries the priority. Bad
/// rules are refused with a clear message through the settings route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_bot_and_the_rules_are_validated() -> Result<()> {
    let hub = TestHub::start().await?;
    let admin = hub.admin_token().await?;
    crm_contact(
        &hub,
        &admin,
        "acme-3",
        json!({"plan": "enterprise", "lifetime_value": 7200}),
    )
    .await?;

    // Refused: each names what is wrong.
    for (rule, says) in [
        (enterprise_rule(json!({"priority": 0})), "priority"),
        (enterprise_rule(json!({"conditions": []})), "conditions"),
        (
            enterprise_rule(
                json!({"conditions": [{"attribute": "lifetime_value", "op": "gt", "value": "lots"}]}),
            ),
            "number",
        ),
        (
            enterprise_rule(json!({"department": "vip-desk"})),
            "department",
        ),
        (
            enterprise_rule(json!({"owner": "nobody@shop.test"})),
            "owner",
        ),
    ] {
        let (status, answer) =
            put_settings(&hub, &admin, json!({"bot": true, "key_accounts": [rule]})).await?;
        ensure!(
            status == 400 && answer.to_string().contains(says),
            "expected a refusal naming {says}: {status} {answer}"
        );
    }
    let (status, _) = put_settings(
        &hub,
        &admin,
        json!({"bot": true, "key_accounts": [{"name": "x", "priority": 5, "conditions": [], "colour": "red"}]}),
    )
    .await?;
    ensure!(
        status == 400 || status == 422,
        "an unknown field is refused: {status}"
    );

    // skip_bot: straight to people.
    let (status, answer) = put_settings(
        &hub,
        &admin,
        json!({"bot": true, "key_accounts": [
            {"name": "Big spender", "priority": 30, "skip_bot": true,
             "conditions": [{"attribute": "lifetime_value", "op": "gt", "value": 5000}]},
        ]}),
    )
    .await?;
    ensure!(status == 200, "settings: {status} {answer}");
    let (_key, key_chat) = visitor(&hub, Some("acme-3"), "what are your opening hours?").await?;
    let found = queued(&hub, &key_chat).await?;
    ensure!(found.priority == 30, "{found:?}");
    ensure!(
        hub.state
            .store
            .recent_bot_turns(&key_chat, 5)
            .await?
            .is_empty(),
        "the bot never ran for the key account"
    );
    let report = hub.get_ok(&admin, "/api/reports").await?;
    ensure!(
        report["handoffs_by_reason"]
            .to_string()
            .contains("key_account"),
        "{report}"
    );

    // Without skip_bot the bot answers first; an anonymous visitor is the bot's too.
    let (status, _) = put_settings(
        &hub,
        &admin,
        json!({"bot": true, "key_accounts": [enterprise_rule(json!({}))]}),
    )
    .await?;
    ensure!(status == 200);
    let (_bot_first, bot_chat) =
        visitor(&hub, Some("acme-3"), "what are your opening hours?").await?;
    let (_anonymous, anonymous_chat) = visitor(&hub, None, "what are your opening hours?").await?;
    for chat in [&bot_chat, &anonymous_chat] {
        let mut turns = Vec::new();
        for _ in 0..300 {
            turns = hub.state.store.recent_bot_turns(chat, 5).await?;
            if !turns.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        }
        ensure!(!turns.is_empty(), "the bot answered {chat}");
    }
    Ok(())
}

/// `department`: the key account waits in (and is given from) the site's department,
/// although the agent of the general queue is idle longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_account_goes_to_its_department() -> Result<()> {
    let hub = TestHub::start().await?;
    let admin = hub.admin_token().await?;
    let (status, added) = hub
        .rest(
            &admin,
            "POST",
            "/api/departments",
            json!({"site_id": hub.site.id, "name": "accounts"}),
        )
        .await?;
    ensure!(status == 201, "department: {status} {added}");
    let (_, general_token) = hub.add_agent("Omid", Some(3), &[]).await?;
    let (desk_id, desk_token) = hub.add_agent("Lina", Some(3), &["accounts"]).await?;
    let (status, answer) = put_settings(
        &hub,
        &admin,
        json!({"bot": false, "key_accounts": [enterprise_rule(json!({"department": "accounts"}))]}),
    )
    .await?;
    ensure!(status == 200, "settings: {status} {answer}");
    crm_contact(&hub, &admin, "acme-4", json!({"plan": "enterprise"})).await?;
    let _omid = hub.agent(&general_token).await?;
    let _lina = hub.agent(&desk_token).await?;

    let (_key, key_chat) = visitor(&hub, Some("acme-4"), "hello").await?;
    let found = assigned(&hub, &key_chat).await?;
    ensure!(
        found.department == "accounts" && found.agent_id.as_deref() == Some(desk_id.as_str()),
        "the key account went to its department: {found:?}"
    );
    let (_plain, plain_chat) = visitor(&hub, None, "hello").await?;
    let found = assigned(&hub, &plain_chat).await?;
    ensure!(
        found.department.is_empty() && found.agent_id.as_deref() != Some(desk_id.as_str()),
        "others stay in the general queue: {found:?}"
    );
    Ok(())
}
