//! A preferred agent (a key account's owner, issue 19): tried first whenever free for
//! the chat, else the usual "which agent" rule; capacity and offers work as for anyone.

use salam_routing::{Effect, Router, RoutingError};

use crate::support::{
    SITE, accept_mode, add_online, assigned_to, assignments, config, pairs, queue_order, state,
};

#[test]
fn the_preferred_agent_gets_the_chat_although_another_is_less_busy() {
    let mut router = Router::new(config());
    // "idle" is idle longest and less loaded: the usual rule would pick them.
    add_online(&mut router, "idle", &[], Some(4), 0);
    add_online(&mut router, "owner", &[], Some(4), 5);
    router.start_bot_conversation("warmup", SITE);
    router
        .take("owner", "warmup", SITE, 6)
        .expect("owner is free");

    let effects = router
        .enqueue_preferring("key", SITE, "", 30, Some("owner"), 10)
        .expect("new conversation");

    assert_eq!(assignments(&effects), pairs(&[("key", "owner")]));
    // Without a preference the same moment goes to the idle one.
    let effects = router.enqueue("plain", SITE, "", 0, 11).expect("new");
    assert_eq!(assignments(&effects), pairs(&[("plain", "idle")]));
}

#[test]
fn a_busy_owner_means_normal_routing_and_an_unknown_one_is_ignored() {
    let mut router = Router::new(config());
    add_online(&mut router, "owner", &[], Some(1), 0);
    add_online(&mut router, "other", &[], Some(1), 1);
    router.start_bot_conversation("busy", SITE);
    router
        .take("owner", "busy", SITE, 2)
        .expect("owner is free");

    let effects = router
        .enqueue_preferring("key", SITE, "", 30, Some("owner"), 10)
        .expect("new conversation");
    assert_eq!(assignments(&effects), pairs(&[("key", "other")]));

    let effects = router
        .enqueue_preferring("ghost", SITE, "", 30, Some("nobody"), 11)
        .expect("an unknown preference is not an error");
    assert!(assignments(&effects).is_empty(), "everyone is at capacity");
    assert_eq!(queue_order(&router, ""), vec!["ghost".to_owned()]);
    // Capacity holds for the owner too: they never get more than one.
    assert_eq!(router.agent_chats("owner"), Some(vec!["busy".to_owned()]));
}

#[test]
fn a_waiting_key_account_goes_to_its_owner_when_they_come_online() {
    let mut router = Router::new(config());
    add_online(&mut router, "other", &[], Some(1), 0);
    router.start_bot_conversation("busy", SITE);
    router.take("other", "busy", SITE, 1).expect("free");
    router.upsert_agent(crate::support::spec("owner", &[], Some(2)), 2);
    router
        .enqueue("early", SITE, "", 0, 3)
        .expect("waits: nobody free");
    router
        .enqueue_preferring("key", SITE, "", 30, Some("owner"), 4)
        .expect("waits: owner offline");
    assert_eq!(
        queue_order(&router, ""),
        vec!["key".to_owned(), "early".to_owned()]
    );

    // The other agent frees a seat first: the key account is first in the queue, so it
    // is not kept for its owner; it goes to whoever is free.
    let effects = router.close("busy", 5).expect("open");
    assert_eq!(assignments(&effects), pairs(&[("key", "other")]));
    assert_eq!(state(&router, "early"), crate::support::queued_in(""));

    router.start_bot_conversation("key2", SITE);
    router
        .enqueue_preferring("key2", SITE, "", 30, Some("owner"), 6)
        .expect("waits");
    let effects = router
        .agent_connected("owner", crate::support::SOCKET, 7)
        .expect("known");
    assert_eq!(
        assignments(&effects),
        pairs(&[("key2", "owner"), ("early", "owner")])
    );
}

#[test]
fn a_lapsed_offer_skips_the_owner_like_anyone_and_a_transfer_drops_the_preference() {
    let mut router = Router::new(accept_mode(1_000));
    add_online(&mut router, "owner", &[], Some(2), 0);
    add_online(&mut router, "other", &["sales"], Some(2), 0);
    let effects = router
        .enqueue_preferring("key", SITE, "", 30, Some("owner"), 10)
        .expect("new");
    assert!(effects.contains(&Effect::Offered {
        conversation: "key".into(),
        agent: "owner".into(),
        deadline: 1_010,
    }));
    let effects = router.tick(1_010);
    assert!(effects.contains(&Effect::Offered {
        conversation: "key".into(),
        agent: "other".into(),
        deadline: 2_010,
    }));
    router
        .accept("other", "key", 1_500)
        .expect("offered to other");
    assert_eq!(state(&router, "key"), assigned_to("other"));
}

#[test]
fn an_owner_who_transfers_the_chat_away_does_not_get_it_back() {
    let mut router = Router::new(config());
    add_online(&mut router, "owner", &["sales"], Some(3), 0);
    add_online(&mut router, "other", &["sales"], Some(3), 1);
    let effects = router
        .enqueue_preferring("key", SITE, "", 30, Some("owner"), 10)
        .expect("new");
    assert_eq!(assignments(&effects), pairs(&[("key", "owner")]));

    let effects = router
        .transfer_to_department("key", SITE, "sales", 20)
        .expect("served");
    assert_eq!(assignments(&effects), pairs(&[("key", "other")]));
    assert_eq!(
        router.transfer_to_department("key", SITE, "billing", 30),
        Err(RoutingError::UnservedDepartment)
    );
}
