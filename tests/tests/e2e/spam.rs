//! Hostile review, issue 12 ("edges"), spam: shared rate limits per visitor and per
//! address, one open offline request per visitor, one alert per conversation, and the
//! lists that page. Each test pins a finding of the review and fails on the code
//! before the fix.

use salam_e2e::{Client, TestHub};
use salam_hub::config::Limits;
use salam_protocol::{AuthorKind, ErrorCode, FormKind, ServerFrame};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How a socket answered the sends it made.
#[derive(Debug, Default)]
struct Answers {
    acked: BTreeSet<String>,
    limited: BTreeSet<String>,
    conversations: BTreeSet<String>,
}

/// Reads until every one of `sent` is answered, by an `ack` or a `rate_limited` error
/// naming it; anything else that names one of them fails the test.
async fn answers(client: &mut Client, sent: &BTreeSet<String>) -> anyhow::Result<Answers> {
    let mut got = Answers::default();
    while got.acked.len() + got.limited.len() < sent.len() {
        match client.recv().await? {
            ServerFrame::Ack {
                client_id,
                conversation,
                ..
            } => {
                anyhow::ensure!(sent.contains(&client_id), "ack for {client_id}");
                anyhow::ensure!(
                    got.acked.insert(client_id.clone()),
                    "{client_id} acked twice"
                );
                got.conversations.insert(conversation);
            }
            ServerFrame::Error {
                code: ErrorCode::RateLimited,
                client_id,
                ..
            } => {
                let client_id =
                    client_id.ok_or_else(|| anyhow::anyhow!("a refused send is not named"))?;
                anyhow::ensure!(sent.contains(&client_id), "refusal for {client_id}");
                anyhow::ensure!(
                    got.limited.insert(client_id.clone()),
                    "{client_id} refused twice"
                );
            }
            ServerFrame::Error {
                code, client_id, ..
            } => anyhow::bail!("unexpected error {code} for {client_id:?}"),
            _ => {}
        }
    }
    anyhow::ensure!(
        got.acked.is_disjoint(&got.limited),
        "a send was both acked and refused"
    );
    Ok(got)
}

/// Tokens a bucket of `rate` a second and `burst` can have given in `elapsed`.
fn budget(rate: u32, burst: u32, elapsed: Duration) -> usize {
    burst as usize + rate as usize * elapsed.as_secs_f64().ceil() as usize
}

/// Frames the token buckets may let through beyond their budget: none, but the clock
/// the hub reads and the one the test reads are not read at the same instants.
const SLACK: usize = 2;

/// Finding: "10 sockets sharing one visitor token put 400 messages into one
/// conversation in 3 s." Every socket of a visitor now draws on one bucket.
#[tokio::test]
async fn ten_sockets_of_one_visitor_share_one_bucket() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let limits = Limits::default();
    let mut first = hub.visitor(None).await?;
    let token = first.token.clone().expect("a visitor token");
    let started = Instant::now();
    first
        .send_json(&json!({"type": "send", "client_id": "opening", "text": "hello"}))
        .await?;
    let opening = answers(&mut first, &BTreeSet::from(["opening".to_owned()])).await?;
    let conversation = opening
        .conversations
        .first()
        .cloned()
        .expect("the opening message is acked");
    let mut sockets = vec![first];
    for _ in 1..10 {
        sockets.push(hub.visitor(Some(&token)).await?);
    }
    // 400 sends, as fast as the sockets take them, all into the one conversation.
    let mut sent: Vec<BTreeSet<String>> = vec![BTreeSet::new(); sockets.len()];
    for index in 0..40 {
        for (socket, client) in sockets.iter_mut().enumerate() {
            let client_id = format!("s{socket}-{index}");
            client
                .send_json(
                    &json!({"type": "send", "client_id": client_id, "text": "spam",
                                   "conversation": conversation}),
                )
                .await?;
            sent[socket].insert(client_id);
        }
    }
    let mut n_accepted = opening.acked.len();
    let mut n_limited = 0;
    for (client, sent) in sockets.iter_mut().zip(&sent) {
        let got = answers(client, sent).await?;
        n_accepted += got.acked.len();
        n_limited += got.limited.len();
        assert!(
            got.conversations.iter().all(|c| *c == conversation),
            "{:?}",
            got.conversations
        );
    }
    let elapsed = started.elapsed();
    let allowed = budget(limits.visitor_rate_per_sec, limits.visitor_burst, elapsed);
    assert!(
        n_accepted <= allowed + SLACK,
        "{n_accepted} messages accepted in {elapsed:?} from one visitor; at most {allowed}"
    );
    assert!(n_limited > 0);
    assert_eq!(n_accepted + n_limited, 401, "every send was answered");
    // What was accepted is what is stored: nothing more, nothing lost.
    let stored = hub
        .state
        .store
        .messages_after(&conversation, 0, 1000)
        .await?
        .iter()
        .filter(|message| message.author.kind == AuthorKind::Visitor)
        .count();
    assert_eq!(stored, n_accepted);
    Ok(())
}

/// Finding, the same by address: many visitors behind one address share its bucket,
/// and another address is not affected.
#[tokio::test]
async fn many_visitors_of_one_address_share_its_bucket() -> anyhow::Result<()> {
    let hub = TestHub::start_with(|config| config.limits = Limits::default()).await?;
    let limits = Limits::default();
    // Each visitor stays within their own bucket (and their socket's, which `hello`
    // took one from): only the address's can refuse.
    let (n_visitors, per_visitor) = (20, 39);
    let (n_accepted, elapsed) =
        crowd_says(&hub, |_| "10.0.0.7".to_owned(), n_visitors, per_visitor).await?;
    let allowed = budget(limits.ip_rate_per_sec, limits.ip_burst, elapsed);
    assert!(
        n_accepted <= allowed + SLACK,
        "{n_accepted} of {} messages accepted in {elapsed:?} from one address; at most {allowed}",
        per_visitor * n_visitors
    );
    assert!(
        n_accepted >= limits.ip_burst as usize,
        "the address's burst is honoured: {n_accepted}"
    );
    // Another address has its own bucket, full.
    let mut neighbour = hub.visitor_from("10.0.0.8", None).await?;
    let sent: BTreeSet<String> = (0..30).map(|index| format!("n{index}")).collect();
    for client_id in &sent {
        neighbour
            .send_json(&json!({"type": "send", "client_id": client_id, "text": "hello"}))
            .await?;
    }
    let got = answers(&mut neighbour, &sent).await?;
    assert_eq!(got.acked, sent, "the other address was limited too");
    Ok(())
}

/// Visitors, one socket each, each sending `per_visitor` messages from the addresses
/// `forwarded_for` names; how many were accepted, and how long sending and hearing
/// back took.
async fn crowd_says(
    hub: &TestHub,
    forwarded_for: impl Fn(usize) -> String,
    n_visitors: usize,
    per_visitor: usize,
) -> anyhow::Result<(usize, Duration)> {
    let mut crowd = Vec::new();
    for visitor in 0..n_visitors {
        crowd.push(hub.visitor_from(&forwarded_for(visitor), None).await?);
    }
    let started = Instant::now();
    let mut sent: Vec<BTreeSet<String>> = vec![BTreeSet::new(); crowd.len()];
    for index in 0..per_visitor {
        for (visitor, client) in crowd.iter_mut().enumerate() {
            let client_id = format!("v{visitor}-{index}");
            client
                .send_json(&json!({"type": "send", "client_id": client_id, "text": "spam"}))
                .await?;
            sent[visitor].insert(client_id);
        }
    }
    let mut n_accepted = 0;
    for (client, sent) in crowd.iter_mut().zip(&sent) {
        n_accepted += answers(client, sent).await?.acked.len();
    }
    Ok((n_accepted, started.elapsed()))
}

/// The address is the peer's unless the peer is a trusted proxy, and behind one it is
/// the address the proxy added (the last): a spammer cannot escape the address's
/// bucket by writing `X-Forwarded-For` themselves.
#[tokio::test]
async fn a_forged_forwarded_for_does_not_escape_the_address_bucket() -> anyhow::Result<()> {
    let limits = Limits::default();
    // Straight to the hub, which trusts no proxy: the header is ignored.
    let hub = TestHub::start_with(|config| {
        config.limits = Limits::default();
        config.auth.trusted_proxies.clear();
    })
    .await?;
    let (n_accepted, elapsed) =
        crowd_says(&hub, |visitor| format!("10.1.0.{visitor}"), 20, 39).await?;
    let allowed = budget(limits.ip_rate_per_sec, limits.ip_burst, elapsed);
    assert!(
        n_accepted <= allowed + SLACK,
        "{n_accepted} accepted in {elapsed:?} with invented addresses; at most {allowed}"
    );
    // Behind the proxy (the loopback), entries the client put before the proxy's own
    // do not count.
    let hub = TestHub::start_with(|config| config.limits = Limits::default()).await?;
    let (n_accepted, elapsed) = crowd_says(
        &hub,
        |visitor| format!("10.1.0.{visitor}, 10.0.0.7"),
        20,
        39,
    )
    .await?;
    let allowed = budget(limits.ip_rate_per_sec, limits.ip_burst, elapsed);
    assert!(
        n_accepted <= allowed + SLACK,
        "{n_accepted} accepted in {elapsed:?} with invented addresses; at most {allowed}"
    );
    Ok(())
}

/// Sends `contact` frames on a socket (at most 30: the socket's own bucket holds 40,
/// one went on `hello`, one goes on the round trip) and returns how many were refused
/// for the rate.
async fn contacts(client: &mut Client, frames: &[Value]) -> anyhow::Result<usize> {
    assert!(frames.len() <= 30);
    for frame in frames {
        client.send_json(frame).await?;
    }
    let mut n_limited = 0;
    for frame in client.round_trip().await? {
        match frame {
            ServerFrame::Error {
                code: ErrorCode::RateLimited,
                ..
            } => n_limited += 1,
            ServerFrame::Error { code, message, .. } => {
                anyhow::bail!("contact refused: {code} {message}")
            }
            _ => {}
        }
    }
    Ok(n_limited)
}

/// Every item of a paginated list (`?limit=` and `next_before`), page by page;
/// fails when a page repeats an item.
async fn every_page(
    hub: &TestHub,
    token: &str,
    path: &str,
    name: &str,
    limit: usize,
) -> anyhow::Result<Vec<Value>> {
    let mut items: Vec<Value> = Vec::new();
    let mut before: Option<i64> = None;
    for _ in 0..1000 {
        let query = match before {
            Some(before) => format!("{path}?limit={limit}&before={before}"),
            None => format!("{path}?limit={limit}"),
        };
        let page = hub.get_ok(token, &query).await?;
        let listed = page[name].as_array().cloned().unwrap_or_default();
        anyhow::ensure!(listed.len() <= limit, "{query}: {} items", listed.len());
        for item in listed {
            anyhow::ensure!(
                !items.iter().any(|seen| seen["id"] == item["id"]),
                "{query}: {} listed twice",
                item["id"]
            );
            items.push(item);
        }
        match page["next_before"].as_i64() {
            Some(next) => before = Some(next),
            None => return Ok(items),
        }
    }
    anyhow::bail!("{path} never ended")
}

/// Finding: "40 contact frames per socket pushed genuine offline requests out of the
/// list, which is truncated at 500." A visitor now has one open request (a second
/// `contact` updates it and appends a new message), and the list pages.
#[tokio::test]
async fn contact_spam_keeps_one_request_per_visitor_and_the_list_pages() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let mut genuine = hub.visitor(None).await?;
    let genuine_frame = json!({"type": "contact", "name": "Layla", "email": "layla@example.com",
                               "message": "Please call me about order 4521"});
    assert_eq!(contacts(&mut genuine, &[genuine_frame]).await?, 0);
    // One spammer on three sockets, and two more spammers: 80 contact frames, each
    // with a new message.
    let spam = |index: usize| {
        json!({"type": "contact", "name": format!("Spammer {index}"),
               "email": format!("spam{index}@example.com"),
               "message": format!("buy now, offer #{index:03}")})
    };
    let mut spammer = hub.visitor(None).await?;
    let spammer_token = spammer.token.clone().expect("a visitor token");
    let mut n_sent = 0;
    let mut n_limited = 0;
    let frames: Vec<Value> = (0..30).map(spam).collect();
    n_limited += contacts(&mut spammer, &frames).await?;
    n_sent += frames.len();
    for socket in 1..3 {
        let mut again = hub.visitor(Some(&spammer_token)).await?;
        let frames: Vec<Value> = (socket * 30..socket * 30 + 5).map(spam).collect();
        n_limited += contacts(&mut again, &frames).await?;
        n_sent += frames.len();
    }
    let mut others = Vec::new();
    for offset in [100, 200] {
        let mut other = hub.visitor(None).await?;
        let frames: Vec<Value> = (offset..offset + 20).map(spam).collect();
        assert_eq!(contacts(&mut other, &frames).await?, 0);
        n_sent += frames.len();
        others.push((other.you().expect("a visitor id"), frames));
    }
    assert!(
        n_sent - n_limited >= 40,
        "the spam got through: {n_sent} sent, {n_limited} limited"
    );

    let admin = hub.admin_token().await?;
    let listed = hub
        .get_ok(&admin, "/api/offline-requests?limit=500")
        .await?;
    let requests = listed["requests"].as_array().cloned().unwrap_or_default();
    let mut open_per_visitor: BTreeMap<String, usize> = BTreeMap::new();
    for request in requests.iter().filter(|r| r["done_at"].is_null()) {
        *open_per_visitor
            .entry(
                request["visitor_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
            .or_default() += 1;
    }
    assert_eq!(
        open_per_visitor.len(),
        4,
        "one request per visitor: {open_per_visitor:?}"
    );
    assert!(
        open_per_visitor.values().all(|n| *n == 1),
        "{open_per_visitor:?}"
    );
    let layla = requests
        .iter()
        .find(|r| r["email"] == "layla@example.com")
        .expect("the genuine request is listed");
    assert_eq!(layla["name"], "Layla");
    assert_eq!(layla["message"], "Please call me about order 4521");
    // A spammer's later messages were added to their one request, each once.
    let theirs = requests
        .iter()
        .find(|r| r["visitor_id"] == others[0].0.as_str())
        .expect("the spammer's request");
    let message = theirs["message"].as_str().unwrap_or_default();
    for frame in &others[0].1 {
        let text = frame["message"].as_str().unwrap_or_default();
        assert_eq!(message.matches(text).count(), 1, "{text} in {message:?}");
    }

    // Paging visits every request exactly once, in any page size.
    let all_ids: BTreeSet<i64> = requests.iter().filter_map(|r| r["id"].as_i64()).collect();
    for limit in [1, 3] {
        let paged = every_page(&hub, &admin, "/api/offline-requests", "requests", limit).await?;
        let paged_ids: BTreeSet<i64> = paged.iter().filter_map(|r| r["id"].as_i64()).collect();
        assert_eq!(paged.len(), all_ids.len(), "limit {limit}");
        assert_eq!(paged_ids, all_ids, "limit {limit}");
    }
    Ok(())
}

/// A new visitor says something, closes the conversation and is asked for a rating;
/// returns the visitor and the conversation.
async fn closed_conversation(hub: &TestHub) -> anyhow::Result<(Client, String)> {
    let (mut visitor, conversation) = hub.visitor_says("where is my parcel?").await?;
    visitor
        .send_json(&json!({"type": "close", "conversation": conversation}))
        .await?;
    visitor
        .recv_until(|f| {
            matches!(
                f,
                ServerFrame::Form {
                    form: FormKind::Rating,
                    ..
                }
            )
        })
        .await?;
    Ok((visitor, conversation))
}

/// Finding: "15 rate frames with a score of 1 created 15 alerts." Now one alert per
/// conversation and kind; and the list of alerts pages.
#[tokio::test]
async fn fifteen_low_ratings_make_one_alert_and_alerts_page() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let (mut visitor, conversation) = closed_conversation(&hub).await?;
    for index in 0..15 {
        visitor
            .send_json(
                &json!({"type": "rate", "conversation": conversation, "score": 1,
                               "comment": format!("awful #{index}")}),
            )
            .await?;
    }
    let before_pong = visitor.round_trip().await?;
    assert!(
        !before_pong
            .iter()
            .any(|f| salam_e2e::error_code(f).is_some()),
        "{before_pong:?}"
    );
    let admin = hub.admin_token().await?;
    let listed = hub.get_ok(&admin, "/api/alerts?limit=500").await?;
    let alerts = listed["alerts"].as_array().cloned().unwrap_or_default();
    let of_this: Vec<&Value> = alerts
        .iter()
        .filter(|alert| alert["conversation"] == conversation.as_str())
        .collect();
    assert_eq!(of_this.len(), 1, "{alerts:?}");
    assert_eq!(of_this[0]["kind"], "low_rating");
    // The rating itself follows the last frame.
    assert_eq!(
        hub.state.store.rating(&conversation).await?,
        Some((1, Some("awful #14".into())))
    );

    // Two more conversations rated low: three alerts, each listed once whatever the
    // page size.
    for _ in 0..2 {
        let (mut other, other_conversation) = closed_conversation(&hub).await?;
        other
            .send_json(&json!({"type": "rate", "conversation": other_conversation, "score": 2}))
            .await?;
        other.round_trip().await?;
    }
    for limit in [1, 2] {
        let paged = every_page(&hub, &admin, "/api/alerts", "alerts", limit).await?;
        let conversations: BTreeSet<&str> = paged
            .iter()
            .filter_map(|alert| alert["conversation"].as_str())
            .collect();
        assert_eq!(paged.len(), 3, "limit {limit}: {paged:?}");
        assert_eq!(conversations.len(), 3, "limit {limit}: {paged:?}");
    }
    Ok(())
}

/// The bot lines stored in a conversation.
async fn bot_lines(hub: &TestHub, conversation: &str) -> anyhow::Result<Vec<String>> {
    Ok(hub
        .state
        .store
        .messages_after(conversation, 0, 1000)
        .await?
        .into_iter()
        .filter(|message| message.author.kind == AuthorKind::Bot)
        .map(|message| message.text)
        .collect())
}

/// The offline requests of one visitor, as the admin lists them.
async fn requests_of(hub: &TestHub, admin: &str, visitor: &str) -> anyhow::Result<Vec<Value>> {
    let listed = hub.get_ok(admin, "/api/offline-requests?limit=500").await?;
    Ok(listed["requests"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|request| request["visitor_id"] == visitor)
        .collect())
}

/// Finding: "Every contact frame made a new offline request and a new confirmation
/// line in the conversation." A visitor's second and third `contact` update their one
/// open request: the same message is not added twice, a new one is appended, details
/// left out are kept, and the conversation is told "we will get back to you" once.
/// Once the request is done, the next `contact` opens a new one and is confirmed again.
#[tokio::test]
async fn a_repeated_contact_updates_one_request_and_is_confirmed_once() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let admin = hub.admin_token().await?;
    // An agent takes the chat: from then on, nothing else makes the bot speak.
    let (_, sara_token) = hub.add_agent("Sara", Some(5), &[]).await?;
    let _sara = hub.agent(&sara_token).await?;
    let (mut visitor, conversation) = hub.visitor_says("hello").await?;
    hub.wait_for(&conversation, |c| c.agent_id.is_some())
        .await?;
    let visitor_id = visitor.you().expect("a visitor id");
    let bot_before = bot_lines(&hub, &conversation).await?;

    let first = json!({"type": "contact", "conversation": conversation, "name": "Layla",
                       "email": "layla@example.com", "message": "Please call me about order 4521"});
    assert_eq!(
        contacts(&mut visitor, std::slice::from_ref(&first)).await?,
        0
    );
    let bot_after_first = bot_lines(&hub, &conversation).await?;
    assert_eq!(
        bot_after_first.len(),
        bot_before.len() + 1,
        "the first contact is confirmed once: {bot_after_first:?}"
    );
    let confirmation = bot_after_first.last().cloned().unwrap_or_default();
    assert!(!confirmation.is_empty());

    // The same form again, and a second message with a phone number and no name.
    let second = json!({"type": "contact", "conversation": conversation,
                        "phone": "+98 912 555 0101", "message": "Or after 6 pm"});
    assert_eq!(
        contacts(&mut visitor, &[first.clone(), first.clone(), second]).await?,
        0
    );
    let requests = requests_of(&hub, &admin, &visitor_id).await?;
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = &requests[0];
    assert!(request["done_at"].is_null(), "{request}");
    assert_eq!(request["name"], "Layla", "{request}");
    assert_eq!(request["email"], "layla@example.com", "{request}");
    assert_eq!(request["phone"], "+98 912 555 0101", "{request}");
    assert_eq!(
        request["message"], "Please call me about order 4521\n\nOr after 6 pm",
        "{request}"
    );
    assert_eq!(
        bot_lines(&hub, &conversation).await?,
        bot_after_first,
        "a repeated contact was confirmed again"
    );

    // Done: the next contact is a new request, confirmed again.
    let id = request["id"].as_i64().expect("an id");
    let (status, body) = hub
        .rest(
            &admin,
            "POST",
            &format!("/api/offline-requests/{id}/done"),
            Value::Null,
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let third = json!({"type": "contact", "conversation": conversation,
                       "email": "layla@example.com", "message": "Still waiting"});
    assert_eq!(contacts(&mut visitor, &[third]).await?, 0);
    let requests = requests_of(&hub, &admin, &visitor_id).await?;
    assert_eq!(requests.len(), 2, "{requests:?}");
    let open: Vec<&Value> = requests.iter().filter(|r| r["done_at"].is_null()).collect();
    assert_eq!(open.len(), 1, "{requests:?}");
    assert_eq!(open[0]["message"], "Still waiting");
    let bot_now = bot_lines(&hub, &conversation).await?;
    assert_eq!(bot_now.len(), bot_after_first.len() + 1, "{bot_now:?}");
    assert_eq!(bot_now.last(), Some(&confirmation));
    Ok(())
}
