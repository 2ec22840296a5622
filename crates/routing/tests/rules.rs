use salam_routing::{
    ConversationState, Effect, Presence, RequeueReason, Router, RouterConfig, RoutingError,
};

use crate::support::{add_online, assignments, config, pairs, queue_order, spec};

fn state(router: &Router, conversation: &str) -> Option<ConversationState> {
    router.conversation_state(conversation)
}

fn assigned_to(agent: &str) -> Option<ConversationState> {
    Some(ConversationState::Assigned {
        agent: agent.to_owned(),
    })
}

fn queued_in(department: &str) -> Option<ConversationState> {
    Some(ConversationState::Queued {
        department: department.to_owned(),
    })
}

#[test]
fn hand_off_goes_to_an_online_agent_of_the_department() {
    let mut router = Router::new(config());
    add_online(&mut router, "sales-agent", &["sales"], None, 0);
    add_online(&mut router, "billing-agent", &["billing"], None, 0);
    router.start_bot_conversation("c1");
    assert_eq!(state(&router, "c1"), Some(ConversationState::Bot));

    let effects = router
        .enqueue("c1", "billing", 0, 10)
        .expect("bot conversation");

    assert_eq!(assignments(&effects), pairs(&[("c1", "billing-agent")]));
    assert_eq!(state(&router, "c1"), assigned_to("billing-agent"));
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::Queued { .. })),
        "no Queued effect for a chat assigned at once: {effects:?}"
    );
}

#[test]
fn nobody_unavailable_gets_a_new_chat() {
    // (presence to set, disconnect?) for the only agent; the chat must stay queued.
    let cases: &[(Presence, bool)] = &[
        (Presence::Away, false),
        (Presence::Offline, false),
        (Presence::Online, true),
    ];
    for &(presence, disconnected) in cases {
        let mut router = Router::new(config());
        add_online(&mut router, "a", &["sales"], None, 0);
        router.set_presence("a", presence, 1).expect("known agent");
        if disconnected {
            router.agent_disconnected("a", 2).expect("known agent");
        }
        let effects = router
            .enqueue("c1", "sales", 0, 3)
            .expect("new conversation");
        assert!(
            assignments(&effects).is_empty(),
            "{presence:?}/{disconnected}: {effects:?}"
        );
        assert_eq!(state(&router, "c1"), queued_in("sales"));
        assert_eq!(
            effects[0],
            Effect::Queued {
                conversation: "c1".into(),
                department: "sales".into()
            }
        );
    }
}

#[test]
fn registered_agents_start_offline() {
    let mut router = Router::new(config());
    router.upsert_agent(spec("a", &["sales"], None), 0);
    router
        .enqueue("c1", "sales", 0, 1)
        .expect("new conversation");
    assert_eq!(state(&router, "c1"), queued_in("sales"));
}

#[test]
fn least_loaded_by_ratio_then_idle_longest() {
    let mut router = Router::new(config());
    // big: 10 seats; small: 2 seats. Both start idle; small has been idle longer.
    add_online(&mut router, "small", &["s"], Some(2), 0);
    add_online(&mut router, "big", &["s"], Some(10), 5);
    let mut assigned = Vec::new();
    for (index, now) in (10..16).enumerate() {
        let effects = router
            .enqueue(&format!("c{index}"), "s", 0, now)
            .expect("new conversation");
        assigned.extend(assignments(&effects));
    }
    // c0: both 0 % loaded, small idle longer. c1: small 50 %, big 0 %. c2..: big until
    // its ratio reaches 50 % (5 chats), which never happens before c5.
    assert_eq!(
        assigned,
        pairs(&[
            ("c0", "small"),
            ("c1", "big"),
            ("c2", "big"),
            ("c3", "big"),
            ("c4", "big"),
            ("c5", "big"),
        ])
    );
}

#[test]
fn equal_ratio_goes_to_the_agent_idle_longest() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &["s"], None, 0);
    add_online(&mut router, "b", &["s"], None, 0);
    // Same registration time: a wins on registration order, then b is idle longer.
    let first = router.enqueue("c1", "s", 0, 10).expect("new");
    let second = router.enqueue("c2", "s", 0, 11).expect("new");
    assert_eq!(assignments(&first), pairs(&[("c1", "a")]));
    assert_eq!(assignments(&second), pairs(&[("c2", "b")]));
    // Both at 1/2; a was assigned earlier (t=10) so idle longer.
    let third = router.enqueue("c3", "s", 0, 12).expect("new");
    assert_eq!(assignments(&third), pairs(&[("c3", "a")]));
}

#[test]
fn capacity_is_a_hard_limit_and_closing_drains_the_backlog_at_once() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &["s"], Some(1), 0);
    router.enqueue("c1", "s", 0, 1).expect("new");
    router.enqueue("c2", "s", 0, 2).expect("new");
    router.enqueue("c3", "s", 0, 3).expect("new");
    assert_eq!(router.agent_chats("a"), Some(vec!["c1".to_owned()]));
    assert_eq!(queue_order(&router, "s"), ["c2", "c3"]);

    let effects = router.close("c1", 4).expect("assigned");

    assert_eq!(assignments(&effects), pairs(&[("c2", "a")]));
    assert!(effects.contains(&Effect::QueueChanged {
        department: "s".into()
    }));
    assert_eq!(state(&router, "c1"), Some(ConversationState::Closed));
    assert_eq!(queue_order(&router, "s"), ["c3"]);
}

#[test]
fn backlog_drains_whenever_capacity_appears() {
    type Free = fn(&mut Router) -> Vec<Effect>;
    type Case<'a> = (&'a str, Free, &'a [(&'a str, &'a str)]);
    // Each case starts with agent "a" (capacity 1, holding c1) plus two queued chats,
    // and one event that should assign the waiting chats straight away.
    let cases: &[Case] = &[
        (
            "capacity raised",
            |router| router.upsert_agent(spec("a", &["s"], Some(3)), 10),
            &[("c2", "a"), ("c3", "a")],
        ),
        (
            "second agent online",
            |router| add_online(router, "b", &["s"], Some(1), 10),
            &[("c2", "b")],
        ),
        (
            "chat transferred away",
            |router| {
                router
                    .transfer_to_department("c1", "other", 10)
                    .expect("assigned")
            },
            &[("c2", "a")],
        ),
    ];
    for (name, event, expected) in cases {
        let mut router = Router::new(config());
        add_online(&mut router, "a", &["s"], Some(1), 0);
        for (index, conversation) in ["c1", "c2", "c3"].iter().enumerate() {
            router
                .enqueue(conversation, "s", 0, index as u64)
                .expect("new");
        }
        let effects = event(&mut router);
        assert_eq!(assignments(&effects), pairs(expected), "{name}");
    }
}

#[test]
fn coming_back_from_away_or_offline_drains_the_backlog() {
    for leave in [Presence::Away, Presence::Offline] {
        let mut router = Router::new(config());
        add_online(&mut router, "a", &["s"], None, 0);
        router.set_presence("a", leave, 1).expect("known");
        router.enqueue("c1", "s", 0, 2).expect("new");
        router.enqueue("c2", "s", 0, 3).expect("new");
        let effects = router
            .set_presence("a", Presence::Online, 4)
            .expect("known");
        assert_eq!(
            assignments(&effects),
            pairs(&[("c1", "a"), ("c2", "a")]),
            "{leave:?}"
        );
    }
}

#[test]
fn queue_order_is_priority_then_first_come_first_served() {
    let mut router = Router::new(config());
    // (conversation, priority, time)
    let arrivals = [
        ("low-early", 0, 1),
        ("high-late", 5, 4),
        ("low-late", 0, 2),
        ("high-early", 5, 3),
        ("mid", 2, 5),
    ];
    for (conversation, priority, now) in arrivals {
        router
            .enqueue(conversation, "s", priority, now)
            .expect("new");
    }
    assert_eq!(
        queue_order(&router, "s"),
        ["high-early", "high-late", "mid", "low-early", "low-late"]
    );
    let effects = add_online(&mut router, "a", &["s"], Some(5), 10);
    assert_eq!(
        assignments(&effects)
            .into_iter()
            .map(|(conversation, _)| conversation)
            .collect::<Vec<_>>(),
        ["high-early", "high-late", "mid", "low-early", "low-late"]
    );
}

#[test]
fn reconnecting_within_grace_changes_nothing() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &["s"], None, 0);
    router.enqueue("c1", "s", 0, 1).expect("new");
    router.agent_disconnected("a", 1_000).expect("known");
    // In grace: keeps c1, gets nothing new.
    router.enqueue("c2", "s", 0, 2_000).expect("new");
    assert_eq!(state(&router, "c2"), queued_in("s"));
    assert!(router.tick(60_999).is_empty());
    assert_eq!(state(&router, "c1"), assigned_to("a"));

    let effects = router.agent_reconnected("a", 61_000).expect("known");

    assert_eq!(assignments(&effects), pairs(&[("c2", "a")]));
    assert!(
        router
            .tick(200_000)
            .iter()
            .all(|e| !matches!(e, Effect::AgentOffline { .. }))
    );
    assert_eq!(state(&router, "c1"), assigned_to("a"));
}

#[test]
fn grace_expiry_returns_chats_to_the_front_and_reassigns_them() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &["s"], Some(1), 0);
    router.enqueue("held", "s", 0, 1).expect("new");
    router.enqueue("waiting", "s", 0, 2).expect("new");
    router.agent_disconnected("a", 10).expect("known");
    assert!(router.tick(60_009).is_empty());

    let effects = router.tick(60_010);

    assert!(effects.contains(&Effect::AgentOffline { agent: "a".into() }));
    assert!(effects.contains(&Effect::Requeued {
        conversation: "held".into(),
        department: "s".into(),
        from_agent: Some("a".into()),
        reason: RequeueReason::GraceExpired,
    }));
    // "held" went ahead of the older "waiting" chat of the same priority.
    assert_eq!(queue_order(&router, "s"), ["held", "waiting"]);
    let snapshot = router.queue_snapshot(Some("s"));
    assert!(snapshot[0].requeued_to_front);
    assert!(!snapshot[1].requeued_to_front);

    // A free agent gets the front chat first.
    let effects = add_online(&mut router, "b", &["s"], Some(1), 60_020);
    assert_eq!(assignments(&effects), pairs(&[("held", "b")]));
}

#[test]
fn grace_expiry_reassigns_at_once_when_someone_is_free() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &["s"], None, 0);
    router.enqueue("c1", "s", 0, 1).expect("new");
    add_online(&mut router, "b", &["s"], None, 2);
    router.agent_disconnected("a", 10).expect("known");
    let effects = router.tick(70_000);
    assert_eq!(assignments(&effects), pairs(&[("c1", "b")]));
    assert_eq!(router.agent_chats("a"), Some(Vec::new()));
}

#[test]
fn front_requeues_stay_behind_higher_priorities() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &["s"], Some(1), 0);
    router.enqueue("held", "s", 0, 1).expect("new");
    router.enqueue("urgent", "s", 9, 2).expect("new");
    router
        .set_presence("a", Presence::Offline, 3)
        .expect("known");
    assert_eq!(queue_order(&router, "s"), ["urgent", "held"]);
}

#[test]
fn setting_offline_requeues_every_chat() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &["s"], None, 0);
    router.enqueue("c1", "s", 0, 1).expect("new");
    router.enqueue("c2", "s", 0, 2).expect("new");
    let effects = router
        .set_presence("a", Presence::Offline, 3)
        .expect("known");
    assert!(effects.contains(&Effect::AgentOffline { agent: "a".into() }));
    assert_eq!(queue_order(&router, "s"), ["c1", "c2"]);
    assert_eq!(router.agent_chats("a"), Some(Vec::new()));
}

#[test]
fn away_agent_keeps_chats() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &["s"], None, 0);
    router.enqueue("c1", "s", 0, 1).expect("new");
    router.set_presence("a", Presence::Away, 2).expect("known");
    assert_eq!(state(&router, "c1"), assigned_to("a"));
}

#[test]
fn transfer_to_an_available_agent_assigns_directly() {
    let mut router = Router::new(RouterConfig {
        accept_timeout_ms: Some(5_000),
        ..config()
    });
    add_online(&mut router, "a", &["s"], None, 0);
    add_online(&mut router, "b", &["other"], None, 0);
    router.enqueue("c1", "s", 0, 1).expect("new");
    router.accept("a", "c1", 2).expect("offered to a");

    let effects = router.transfer_to_agent("c1", "b", 3).expect("b is free");

    assert_eq!(assignments(&effects), pairs(&[("c1", "b")]));
    assert_eq!(state(&router, "c1"), assigned_to("b"));
    assert_eq!(router.agent_chats("a"), Some(Vec::new()));
}

#[test]
fn transfer_to_an_unavailable_agent_is_refused_and_changes_nothing() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &["s"], None, 0);
    add_online(&mut router, "full", &["s"], Some(0), 0);
    add_online(&mut router, "away", &["s"], None, 0);
    router
        .set_presence("away", Presence::Away, 0)
        .expect("known");
    router.upsert_agent(spec("offline", &["s"], None), 0);
    router.enqueue("c1", "s", 0, 1).expect("new");
    let cases = [
        ("full", RoutingError::OverCapacity),
        ("away", RoutingError::NotAvailable),
        ("offline", RoutingError::NotAvailable),
        ("nobody", RoutingError::UnknownAgent),
    ];
    for (target, expected) in cases {
        assert_eq!(
            router.transfer_to_agent("c1", target, 2),
            Err(expected),
            "{target}"
        );
        assert_eq!(state(&router, "c1"), assigned_to("a"));
    }
    assert_eq!(router.transfer_to_agent("c1", "a", 2), Ok(Vec::new()));
}

#[test]
fn transfer_to_department_requeues_at_the_back_and_prefers_other_agents() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &["s", "billing"], Some(1), 0);
    router.enqueue("c1", "s", 0, 1).expect("new");
    router.enqueue("older", "billing", 0, 2).expect("new");
    add_online(&mut router, "b", &["billing"], Some(1), 3);
    assert_eq!(state(&router, "older"), assigned_to("b"));

    // a frees a seat by transferring c1 to billing; nobody else is free, so a gets
    // it back only as the fallback.
    let effects = router
        .transfer_to_department("c1", "billing", 10)
        .expect("assigned");
    assert!(effects.contains(&Effect::Requeued {
        conversation: "c1".into(),
        department: "billing".into(),
        from_agent: Some("a".into()),
        reason: RequeueReason::TransferredToDepartment,
    }));
    assert_eq!(assignments(&effects), pairs(&[("c1", "a")]));

    // With another billing agent free, the sender is passed over.
    router.upsert_agent(spec("b", &["billing"], Some(2)), 11);
    let effects = router
        .transfer_to_department("c1", "billing", 12)
        .expect("assigned");
    assert_eq!(assignments(&effects), pairs(&[("c1", "b")]));
}

#[test]
fn transfer_to_department_goes_behind_earlier_chats() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &["s"], Some(1), 0);
    router.enqueue("c1", "s", 0, 1).expect("new");
    router.enqueue("billing-1", "billing", 0, 2).expect("new");
    router
        .transfer_to_department("c1", "billing", 3)
        .expect("assigned");
    assert_eq!(queue_order(&router, "billing"), ["billing-1", "c1"]);
}

#[test]
fn take_picks_a_chat_out_of_order_from_any_department() {
    // An agent with free seats never sees a waiting chat of their own departments (the
    // drain would have assigned it), so a manual take is how chats of other, busy or
    // unstaffed departments get help.
    for accept_timeout_ms in [None, Some(5_000)] {
        let mut router = Router::new(RouterConfig {
            accept_timeout_ms,
            ..config()
        });
        router.enqueue("b1", "billing", 0, 1).expect("new");
        router.enqueue("b2", "billing", 0, 2).expect("new");
        add_online(&mut router, "sales-agent", &["sales"], None, 3);

        let effects = router.take("sales-agent", "b2", 4).expect("free seat");

        assert_eq!(assignments(&effects), pairs(&[("b2", "sales-agent")]));
        assert_eq!(state(&router, "b2"), assigned_to("sales-agent"));
        assert_eq!(queue_order(&router, "billing"), ["b1"]);
    }
}

#[test]
fn take_refusals() {
    let mut router = Router::new(config());
    router.enqueue("queued", "billing", 0, 1).expect("new");
    add_online(&mut router, "away", &[], None, 0);
    router
        .set_presence("away", Presence::Away, 0)
        .expect("known");
    add_online(&mut router, "gone", &[], None, 0);
    router.agent_disconnected("gone", 0).expect("known");
    router.upsert_agent(spec("offline", &[], None), 0);
    add_online(&mut router, "full", &[], Some(1), 0);
    router.enqueue("held", "", 0, 2).expect("new");
    assert_eq!(state(&router, "held"), assigned_to("full"));
    router.start_bot_conversation("with-bot");
    router.enqueue("closed", "billing", 0, 3).expect("new");
    router.close("closed", 4).expect("queued");

    let cases = [
        ("away", "queued", RoutingError::NotAvailable),
        ("gone", "queued", RoutingError::NotAvailable),
        ("offline", "queued", RoutingError::NotAvailable),
        ("full", "queued", RoutingError::OverCapacity),
        ("nobody", "queued", RoutingError::UnknownAgent),
        ("full", "held", RoutingError::NotQueued),
        ("full", "with-bot", RoutingError::NotQueued),
        ("full", "closed", RoutingError::AlreadyClosed),
        ("full", "nothing", RoutingError::UnknownConversation),
    ];
    for (agent, conversation, expected) in cases {
        assert_eq!(
            router.take(agent, conversation, 5),
            Err(expected),
            "{agent} takes {conversation}"
        );
    }
    assert_eq!(state(&router, "queued"), queued_in("billing"));
}

#[test]
fn general_department_is_served_by_everyone() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &["sales"], None, 0);
    let effects = router.enqueue("c1", "", 0, 1).expect("new");
    assert_eq!(assignments(&effects), pairs(&[("c1", "a")]));
}

#[test]
fn configured_general_department_name() {
    let mut router = Router::new(RouterConfig {
        general_department: "general".into(),
        ..config()
    });
    add_online(&mut router, "a", &["sales"], None, 0);
    let general = router.enqueue("c1", "general", 0, 1).expect("new");
    let unstaffed = router.enqueue("c2", "", 0, 2).expect("new");
    assert_eq!(assignments(&general), pairs(&[("c1", "a")]));
    assert!(assignments(&unstaffed).is_empty());
}

#[test]
fn agent_of_several_departments_gets_the_best_chat_across_them() {
    let mut router = Router::new(config());
    router.enqueue("sales-old", "sales", 0, 1).expect("new");
    router
        .enqueue("billing-urgent", "billing", 3, 5)
        .expect("new");
    router.enqueue("billing-old", "billing", 0, 0).expect("new");
    let effects = add_online(&mut router, "a", &["sales", "billing"], Some(2), 10);
    assert_eq!(
        assignments(&effects),
        pairs(&[("billing-urgent", "a"), ("billing-old", "a")])
    );
    assert_eq!(queue_order(&router, "sales"), ["sales-old"]);
}

#[test]
fn accept_mode_offers_then_assigns_on_accept() {
    let mut router = Router::new(RouterConfig {
        accept_timeout_ms: Some(5_000),
        ..config()
    });
    add_online(&mut router, "a", &["s"], Some(1), 0);
    let effects = router.enqueue("c1", "s", 0, 100).expect("new");
    assert!(effects.contains(&Effect::Offered {
        conversation: "c1".into(),
        agent: "a".into(),
        deadline: 5_100,
    }));
    // The offer counts against capacity.
    router.enqueue("c2", "s", 0, 101).expect("new");
    assert_eq!(state(&router, "c2"), queued_in("s"));
    assert_eq!(
        router.accept("b", "c1", 102),
        Err(RoutingError::UnknownAgent)
    );
    assert_eq!(router.accept("a", "c2", 102), Err(RoutingError::NotOffered));

    let effects = router.accept("a", "c1", 103).expect("offered to a");

    assert_eq!(assignments(&effects), pairs(&[("c1", "a")]));
    assert_eq!(state(&router, "c1"), assigned_to("a"));
    assert!(
        router.tick(10_000).is_empty(),
        "accepted offers do not expire"
    );
    assert_eq!(
        router.accept("a", "c1", 10_001),
        Err(RoutingError::NotOffered)
    );
}

#[test]
fn lapsed_offer_passes_to_the_next_agent_and_skips_the_first_for_a_round() {
    let mut router = Router::new(RouterConfig {
        accept_timeout_ms: Some(5_000),
        ..config()
    });
    add_online(&mut router, "a", &["s"], None, 0);
    router.enqueue("c1", "s", 0, 1).expect("new");
    assert!(matches!(
        state(&router, "c1"),
        Some(ConversationState::Offered { .. })
    ));
    assert!(router.tick(5_000).is_empty(), "deadline 5_001 not reached");

    // Only a is there: the chat waits one round rather than bouncing straight back.
    let effects = router.tick(5_001);
    assert!(effects.contains(&Effect::OfferExpired {
        conversation: "c1".into(),
        agent: "a".into(),
    }));
    assert_eq!(state(&router, "c1"), queued_in("s"));

    // Meanwhile a newer chat may go to a (it is not skipped for that one), and a
    // second agent gets c1 at once.
    let effects = router.enqueue("c2", "s", 0, 6_000).expect("new");
    assert_eq!(
        effects.iter().find(|e| matches!(e, Effect::Offered { .. })),
        Some(&Effect::Offered {
            conversation: "c2".into(),
            agent: "a".into(),
            deadline: 11_000,
        })
    );
    router.accept("a", "c2", 6_001).expect("offered");
    let effects = add_online(&mut router, "b", &["s"], None, 7_000);
    assert!(effects.contains(&Effect::Offered {
        conversation: "c1".into(),
        agent: "b".into(),
        deadline: 12_000,
    }));
    router.close("c2", 7_001).expect("assigned");

    // b lets it lapse too; a's skip ended at 10_001, so a gets it again.
    let effects = router.tick(12_000);
    assert!(effects.contains(&Effect::Offered {
        conversation: "c1".into(),
        agent: "a".into(),
        deadline: 17_000,
    }));
}

#[test]
fn skipped_chat_is_offered_again_after_one_round() {
    let mut router = Router::new(RouterConfig {
        accept_timeout_ms: Some(1_000),
        ..config()
    });
    add_online(&mut router, "a", &["s"], None, 0);
    router.enqueue("c1", "s", 0, 0).expect("new");
    router.tick(1_000);
    assert_eq!(state(&router, "c1"), queued_in("s"));
    assert!(router.tick(1_999).is_empty());
    let effects = router.tick(2_000);
    assert!(effects.contains(&Effect::Offered {
        conversation: "c1".into(),
        agent: "a".into(),
        deadline: 3_000,
    }));
}

#[test]
fn lapsed_offer_keeps_its_place_in_the_queue() {
    let mut router = Router::new(RouterConfig {
        accept_timeout_ms: Some(1_000),
        ..config()
    });
    add_online(&mut router, "a", &["s"], Some(1), 0);
    router.enqueue("first", "s", 0, 0).expect("new");
    router.enqueue("second", "s", 0, 1).expect("new");
    router.tick(1_000);
    // a is skipped for "first", so "second" is offered to a; "first" stays ahead.
    assert!(matches!(
        state(&router, "second"),
        Some(ConversationState::Offered { .. })
    ));
    assert_eq!(queue_order(&router, "s"), ["first"]);
    router.enqueue("third", "s", 0, 2).expect("new");
    assert_eq!(queue_order(&router, "s"), ["first", "third"]);
}

#[test]
fn going_away_or_disconnecting_withdraws_pending_offers() {
    for disconnect in [false, true] {
        let mut router = Router::new(RouterConfig {
            accept_timeout_ms: Some(5_000),
            ..config()
        });
        add_online(&mut router, "a", &["s"], None, 0);
        router.enqueue("c1", "s", 0, 1).expect("new");
        let effects = if disconnect {
            router.agent_disconnected("a", 2)
        } else {
            router.set_presence("a", Presence::Away, 2)
        }
        .expect("known");
        assert!(effects.contains(&Effect::Requeued {
            conversation: "c1".into(),
            department: "s".into(),
            from_agent: Some("a".into()),
            reason: RequeueReason::OfferWithdrawn,
        }));
        assert_eq!(state(&router, "c1"), queued_in("s"));
        assert_eq!(router.accept("a", "c1", 3), Err(RoutingError::NotOffered));
    }
}

#[test]
fn missed_first_response_raises_priority_once() {
    let mut router = Router::new(RouterConfig {
        first_response_target_ms: Some(60_000),
        sla_priority_boost: 10,
        ..config()
    });
    router.enqueue("late", "s", 0, 0).expect("new");
    router.enqueue("urgent", "s", 5, 1).expect("new");
    assert_eq!(queue_order(&router, "s"), ["urgent", "late"]);
    assert!(router.tick(59_999).is_empty());

    let effects = router.tick(60_000);

    assert!(effects.contains(&Effect::SlaBreached {
        conversation: "late".into(),
        priority: 10,
    }));
    assert!(!effects.iter().any(
        |e| matches!(e, Effect::SlaBreached { conversation, .. } if conversation == "urgent")
    ));
    assert_eq!(queue_order(&router, "s"), ["late", "urgent"]);
    let effects = router.tick(60_001);
    assert!(effects.contains(&Effect::SlaBreached {
        conversation: "urgent".into(),
        priority: 15,
    }));
    assert!(
        router.tick(1_000_000).is_empty(),
        "one breach per waiting period"
    );
}

#[test]
fn responding_in_time_prevents_the_breach() {
    let mut router = Router::new(RouterConfig {
        first_response_target_ms: Some(60_000),
        ..config()
    });
    add_online(&mut router, "a", &["s"], None, 0);
    router.enqueue("c1", "s", 0, 0).expect("new");
    router.agent_responded("c1", 30_000).expect("assigned");
    assert!(router.tick(120_000).is_empty());
    // A transfer restarts the clock.
    router
        .transfer_to_department("c1", "s", 120_000)
        .expect("assigned");
    let effects = router.tick(180_000);
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::SlaBreached { .. }))
    );
}

#[test]
fn raise_priority_moves_a_chat_up_and_never_down() {
    let mut router = Router::new(config());
    router.enqueue("c1", "s", 0, 0).expect("new");
    router.enqueue("c2", "s", 1, 1).expect("new");
    router.raise_priority("c1", 2, 2).expect("queued");
    assert_eq!(queue_order(&router, "s"), ["c1", "c2"]);
    router.raise_priority("c1", -5, 3).expect("queued");
    assert_eq!(router.queue_snapshot(Some("s"))[0].priority, 2);
}

#[test]
fn expected_wait_is_position_times_mean_handling_over_online_slots() {
    let mut router = Router::new(RouterConfig {
        default_handling_ms: 300_000,
        ..config()
    });
    for (index, conversation) in ["c1", "c2", "c3"].iter().enumerate() {
        router
            .enqueue(conversation, "s", 0, index as u64)
            .expect("new");
    }
    // No agents online: one slot assumed, default handling time.
    assert_eq!(router.queue_position("c1"), Some((1, 300_000)));
    assert_eq!(router.queue_position("c3"), Some((3, 900_000)));

    router.record_handled(100_000);
    router.record_handled(200_000);
    // Two agents of capacity 2, Online but full: 4 slots, mean 150_000.
    router.upsert_agent(spec("a", &["s"], Some(0)), 0);
    router.upsert_agent(spec("b", &["s"], Some(0)), 0);
    router
        .set_presence("a", Presence::Online, 0)
        .expect("known");
    router
        .set_presence("b", Presence::Online, 0)
        .expect("known");
    router.upsert_agent(spec("a", &["s"], Some(2)), 0);
    router.upsert_agent(spec("b", &["s"], Some(2)), 0);
    // 4 seats filled c1..c3, so enqueue two more to see positions.
    router.enqueue("c4", "s", 0, 10).expect("new");
    router.enqueue("c5", "s", 0, 11).expect("new");
    router.enqueue("c6", "s", 0, 12).expect("new");
    assert_eq!(queue_order(&router, "s"), ["c5", "c6"]);
    assert_eq!(router.queue_position("c5"), Some((1, 37_500)));
    assert_eq!(router.queue_position("c6"), Some((2, 75_000)));
    let snapshot = router.queue_snapshot(Some("s"));
    assert_eq!(snapshot[1].position, 2);
    assert_eq!(snapshot[1].expected_wait_ms, 75_000);
    assert_eq!(
        router.queue_position("c1"),
        None,
        "assigned chats have no position"
    );
    assert_eq!(router.queue_position("nothing"), None);
}

#[test]
fn handled_times_are_a_bounded_window() {
    let mut router = Router::new(RouterConfig {
        handled_window: 2,
        ..config()
    });
    router.enqueue("c1", "s", 0, 0).expect("new");
    for duration in [1_000_000, 10, 30] {
        router.record_handled(duration);
    }
    assert_eq!(router.queue_position("c1"), Some((1, 20)));
}

#[test]
fn queue_changed_is_emitted_once_per_department_at_the_end() {
    let mut router = Router::new(config());
    router.enqueue("s1", "s", 0, 0).expect("new");
    router.enqueue("s2", "s", 0, 1).expect("new");
    router.enqueue("b1", "b", 0, 2).expect("new");
    let effects = add_online(&mut router, "a", &["s", "b"], Some(3), 3);
    let queue_changes: Vec<&Effect> = effects
        .iter()
        .filter(|e| matches!(e, Effect::QueueChanged { .. }))
        .collect();
    assert_eq!(
        queue_changes,
        [
            &Effect::QueueChanged {
                department: "b".into()
            },
            &Effect::QueueChanged {
                department: "s".into()
            },
        ]
    );
    assert!(matches!(effects.last(), Some(Effect::QueueChanged { .. })));
}

#[test]
fn conversation_lifecycle_errors() {
    let mut router = Router::new(config());
    router.start_bot_conversation("c1");
    assert_eq!(
        router.transfer_to_department("c1", "s", 0),
        Err(RoutingError::NotRouted)
    );
    assert_eq!(
        router.transfer_to_agent("c1", "a", 0),
        Err(RoutingError::UnknownAgent)
    );
    router.enqueue("c1", "s", 0, 0).expect("bot conversation");
    assert_eq!(
        router.enqueue("c1", "s", 0, 1),
        Err(RoutingError::AlreadyRouted)
    );
    assert_eq!(router.forget_closed("c1"), Err(RoutingError::NotClosed));
    router.close("c1", 2).expect("queued");
    for result in [
        router.close("c1", 3),
        router.enqueue("c1", "s", 0, 3),
        router.raise_priority("c1", 9, 3),
        router.agent_responded("c1", 3),
        router.transfer_to_department("c1", "s", 3),
    ] {
        assert_eq!(result, Err(RoutingError::AlreadyClosed));
    }
    assert_eq!(router.forget_closed("c1"), Ok(()));
    assert_eq!(router.conversation_state("c1"), None);
    assert_eq!(
        router.close("c1", 4),
        Err(RoutingError::UnknownConversation)
    );
    assert_eq!(
        router.set_presence("x", Presence::Online, 4),
        Err(RoutingError::UnknownAgent)
    );
    assert_eq!(
        router.agent_disconnected("x", 4),
        Err(RoutingError::UnknownAgent)
    );
    assert_eq!(
        router.agent_reconnected("x", 4),
        Err(RoutingError::UnknownAgent)
    );
    assert_eq!(router.agent_chats("x"), None);
}

#[test]
fn lowering_capacity_keeps_chats_but_blocks_new_ones() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &["s"], Some(3), 0);
    for (index, conversation) in ["c1", "c2", "c3"].iter().enumerate() {
        router
            .enqueue(conversation, "s", 0, index as u64)
            .expect("new");
    }
    router.upsert_agent(spec("a", &["s"], Some(1)), 5);
    assert_eq!(router.agent_chats("a").map(|chats| chats.len()), Some(3));
    router.close("c1", 6).expect("assigned");
    router.enqueue("c4", "s", 0, 7).expect("new");
    assert_eq!(state(&router, "c4"), queued_in("s"));
    let view = &router.agents()[0];
    assert_eq!((view.load, view.capacity), (2, 1));
}

#[test]
fn agent_view_reports_presence_grace_and_load() {
    let mut router = Router::new(config());
    add_online(&mut router, "b", &["z", "a", "z"], None, 0);
    router.upsert_agent(spec("a", &[], Some(7)), 0);
    router.enqueue("c1", "", 0, 1).expect("new");
    router.agent_disconnected("b", 2).expect("known");
    let views = router.agents();
    assert_eq!(views[0].id, "a");
    assert_eq!(views[0].presence, Presence::Offline);
    assert_eq!(views[0].capacity, 7);
    assert_eq!(views[1].departments, ["a", "z"]);
    assert_eq!(views[1].disconnected_since, Some(2));
    assert_eq!(views[1].load, 1);
}

#[test]
fn reconfiguring_a_raised_default_capacity_drains_the_backlog() {
    let mut router = Router::new(config());
    add_online(&mut router, "sara", &[], None, 0);
    for (index, conversation) in ["c1", "c2", "c3", "c4"].iter().enumerate() {
        router
            .enqueue(conversation, "", 0, index as u64)
            .expect("new conversation");
    }
    // The default capacity of 2 leaves two chats waiting.
    assert_eq!(queue_order(&router, ""), ["c3", "c4"]);
    let effects = router.reconfigure(
        RouterConfig {
            default_capacity: 3,
            ..config()
        },
        10,
    );
    assert_eq!(assignments(&effects), pairs(&[("c3", "sara")]));
    assert_eq!(queue_order(&router, ""), ["c4"]);
    // A lowered capacity keeps the chats held and assigns nothing new.
    let effects = router.reconfigure(config(), 11);
    assert!(assignments(&effects).is_empty());
    assert_eq!(router.agent_chats("sara").map(|chats| chats.len()), Some(3));
}
