//! One test (or data table) per routing rule of the crate docs. Where a rule changed on
//! purpose with the multi-site router, the test says so in a comment.

use salam_routing::{
    AgentSpec, ConversationState, Effect, Presence, RequeueReason, Restore, RestoredConversation,
    Router, RouterConfig, RoutingError, SitePolicy, Sites,
};

use crate::support::{
    QUIET, SITE, SOCKET, accept_mode, add_online, assigned_to, assignments, config, connect, pairs,
    presence_changes, queue_order, queued_in, register_offline, requeues, site_queue_order, sla,
    spec, spec_on, state,
};

// ----- who gets a chat ------------------------------------------------------------------

#[test]
fn hand_off_goes_to_an_online_agent_of_the_department() {
    let mut router = Router::new(config());
    add_online(&mut router, "sales-agent", &["sales"], None, 0);
    add_online(&mut router, "billing-agent", &["billing"], None, 0);
    router.start_bot_conversation("c1", SITE);
    assert_eq!(state(&router, "c1"), Some(ConversationState::Bot));
    assert_eq!(router.conversation_site("c1"), Some(SITE));

    let effects = router
        .enqueue("c1", SITE, "billing", 0, 10)
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
    type Setup = fn(&mut Router);
    // (what happened to the only agent, who serves "sales"; where the chat then waits).
    let cases: &[(&str, Setup, &str)] = &[
        (
            "away",
            |router| {
                add_online(router, "a", &["sales"], None, 0);
                router.set_presence("a", Presence::Away, 1).expect("known");
            },
            "sales",
        ),
        (
            "offline by choice, socket still open",
            |router| {
                add_online(router, "a", &["sales"], None, 0);
                router
                    .set_presence("a", Presence::Offline, 1)
                    .expect("known");
            },
            "sales",
        ),
        (
            "last socket closed (grace period)",
            |router| {
                add_online(router, "a", &["sales"], None, 0);
                router.agent_disconnected("a", SOCKET, 2).expect("known");
            },
            "sales",
        ),
        (
            // New rule: an agent with no socket is not eligible, whatever they chose.
            "chose Online but never connected",
            |router| {
                router.upsert_agent(spec("a", &["sales"], None), 0);
                router
                    .set_presence("a", Presence::Online, 1)
                    .expect("known");
            },
            "sales",
        ),
        (
            // A retired agent serves nothing, so "sales" has no agent left on the site
            // and the hand-off waits in the general queue.
            "retired",
            |router| {
                add_online(router, "a", &["sales"], None, 0);
                router.retire_agent("a", 1).expect("known");
            },
            "",
        ),
    ];
    for (name, setup, waits_in) in cases {
        let mut router = Router::new(config());
        setup(&mut router);
        let effects = router
            .enqueue("c1", SITE, "sales", 0, 3)
            .expect("new conversation");
        assert!(assignments(&effects).is_empty(), "{name}: {effects:?}");
        assert_eq!(state(&router, "c1"), queued_in(waits_in), "{name}");
        assert_eq!(
            effects[0],
            Effect::Queued {
                conversation: "c1".into(),
                department: (*waits_in).into()
            },
            "{name}"
        );
        let view = router.agent("a").expect("registered");
        assert!(!view.can_take_new_chat(), "{name}: {view:?}");
    }
}

#[test]
fn registered_agents_start_offline_without_a_socket() {
    let mut router = Router::new(config());
    let effects = router.upsert_agent(spec("a", &["sales"], None), 0);
    assert!(effects.is_empty(), "{effects:?}");
    let view = router.agent("a").expect("registered");
    assert_eq!((view.presence, view.sockets), (Presence::Offline, 0));
    router
        .enqueue("c1", SITE, "sales", 0, 1)
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
            .enqueue(&format!("c{index}"), SITE, "s", 0, now)
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
    let first = router.enqueue("c1", SITE, "s", 0, 10).expect("new");
    let second = router.enqueue("c2", SITE, "s", 0, 11).expect("new");
    assert_eq!(assignments(&first), pairs(&[("c1", "a")]));
    assert_eq!(assignments(&second), pairs(&[("c2", "b")]));
    // Both at 1/2; a was assigned earlier (t=10) so idle longer.
    let third = router.enqueue("c3", SITE, "s", 0, 12).expect("new");
    assert_eq!(assignments(&third), pairs(&[("c3", "a")]));
}

#[test]
fn capacity_is_a_hard_limit_and_closing_drains_the_backlog_at_once() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &["s"], Some(1), 0);
    router.enqueue("c1", SITE, "s", 0, 1).expect("new");
    router.enqueue("c2", SITE, "s", 0, 2).expect("new");
    router.enqueue("c3", SITE, "s", 0, 3).expect("new");
    assert_eq!(router.agent_chats("a"), Some(vec!["c1".to_owned()]));
    assert_eq!(queue_order(&router, "s"), ["c2", "c3"]);

    let effects = router.close("c1", 4).expect("assigned");

    assert_eq!(assignments(&effects), pairs(&[("c2", "a")]));
    assert!(effects.contains(&Effect::QueueChanged {
        site: SITE.into(),
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
            "second agent's first socket",
            |router| add_online(router, "b", &["s"], Some(1), 10),
            &[("c2", "b")],
        ),
        (
            "away agent back online",
            |router| {
                // b chose Away before connecting, so the first socket brings them Away.
                router.upsert_agent(spec("b", &["s"], Some(1)), 10);
                router.set_presence("b", Presence::Away, 10).expect("known");
                router.agent_connected("b", SOCKET, 10).expect("known");
                router
                    .set_presence("b", Presence::Online, 10)
                    .expect("known")
            },
            &[("c2", "b")],
        ),
        (
            // Changed with the unserved-department rule: "other" must have an agent
            // (here an offline one) or the transfer is refused.
            "chat transferred away",
            |router| {
                register_offline(router, "other-agent", &["other"]);
                router
                    .transfer_to_department("c1", SITE, "other", 10)
                    .expect("assigned")
            },
            &[("c2", "a")],
        ),
        (
            "chat taken over by another agent",
            |router| {
                add_online(router, "b", &["elsewhere"], Some(1), 10);
                router.take("b", "c1", SITE, 10).expect("b is free")
            },
            &[("c1", "b"), ("c2", "a")],
        ),
    ];
    for (name, event, expected) in cases {
        let mut router = Router::new(config());
        add_online(&mut router, "a", &["s"], Some(1), 0);
        for (index, conversation) in ["c1", "c2", "c3"].iter().enumerate() {
            router
                .enqueue(conversation, SITE, "s", 0, index as u64)
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
        router.enqueue("c1", SITE, "s", 0, 2).expect("new");
        router.enqueue("c2", SITE, "s", 0, 3).expect("new");
        let effects = router
            .set_presence("a", Presence::Online, 4)
            .expect("known");
        assert_eq!(
            assignments(&effects),
            pairs(&[("c1", "a"), ("c2", "a")]),
            "{leave:?}"
        );
        assert_eq!(
            presence_changes(&effects),
            [("a".to_owned(), Presence::Online)],
            "{leave:?}"
        );
    }
}

#[test]
fn queue_order_is_priority_then_first_come_first_served() {
    let mut router = Router::new(config());
    register_offline(&mut router, "s-agent", &["s"]);
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
            .enqueue(conversation, SITE, "s", priority, now)
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

// ----- presence, sockets and grace --------------------------------------------------------

#[test]
fn reconnecting_within_grace_changes_nothing() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &["s"], None, 0);
    router.enqueue("c1", SITE, "s", 0, 1).expect("new");
    let effects = router
        .agent_disconnected("a", SOCKET, 1_000)
        .expect("known");
    assert!(presence_changes(&effects).is_empty(), "{effects:?}");
    // In grace: keeps c1, gets nothing new.
    router.enqueue("c2", SITE, "s", 0, 2_000).expect("new");
    assert_eq!(state(&router, "c2"), queued_in("s"));
    assert!(router.tick(60_999).is_empty());
    assert_eq!(state(&router, "c1"), assigned_to("a"));

    // A new socket (another connection id) ends the grace period.
    let effects = router.agent_connected("a", 2, 61_000).expect("known");

    assert_eq!(assignments(&effects), pairs(&[("c2", "a")]));
    assert!(presence_changes(&effects).is_empty(), "{effects:?}");
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
    router.enqueue("held", SITE, "s", 0, 1).expect("new");
    router.enqueue("waiting", SITE, "s", 0, 2).expect("new");
    router.agent_disconnected("a", SOCKET, 10).expect("known");
    assert!(router.tick(60_009).is_empty());

    let effects = router.tick(60_010);

    assert!(effects.contains(&Effect::AgentOffline { agent: "a".into() }));
    assert_eq!(
        presence_changes(&effects),
        [("a".to_owned(), Presence::Offline)]
    );
    assert!(effects.contains(&Effect::Requeued {
        conversation: "held".into(),
        department: "s".into(),
        from_agent: Some("a".into()),
        reason: RequeueReason::GraceExpired,
    }));
    // "held" went ahead of the older "waiting" chat of the same priority.
    assert_eq!(queue_order(&router, "s"), ["held", "waiting"]);
    let snapshot = router.queue_snapshot(Some(SITE));
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
    router.enqueue("c1", SITE, "s", 0, 1).expect("new");
    add_online(&mut router, "b", &["s"], None, 2);
    router.agent_disconnected("a", SOCKET, 10).expect("known");
    let effects = router.tick(70_000);
    assert_eq!(assignments(&effects), pairs(&[("c1", "b")]));
    assert_eq!(router.agent_chats("a"), Some(Vec::new()));
}

#[test]
fn front_requeues_stay_behind_higher_priorities() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &["s"], Some(1), 0);
    router.enqueue("held", SITE, "s", 0, 1).expect("new");
    router.enqueue("urgent", SITE, "s", 9, 2).expect("new");
    router
        .set_presence("a", Presence::Offline, 3)
        .expect("known");
    assert_eq!(queue_order(&router, "s"), ["urgent", "held"]);
}

#[test]
fn setting_offline_requeues_every_chat() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &["s"], None, 0);
    router.enqueue("c1", SITE, "s", 0, 1).expect("new");
    router.enqueue("c2", SITE, "s", 0, 2).expect("new");
    let effects = router
        .set_presence("a", Presence::Offline, 3)
        .expect("known");
    assert!(effects.contains(&Effect::AgentOffline { agent: "a".into() }));
    assert_eq!(
        requeues(&effects),
        [
            (
                "c1".to_owned(),
                Some("a".to_owned()),
                RequeueReason::AgentWentOffline
            ),
            (
                "c2".to_owned(),
                Some("a".to_owned()),
                RequeueReason::AgentWentOffline
            ),
        ]
    );
    assert_eq!(queue_order(&router, "s"), ["c1", "c2"]);
    assert_eq!(router.agent_chats("a"), Some(Vec::new()));
}

#[test]
fn away_agent_keeps_chats() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &["s"], None, 0);
    router.enqueue("c1", SITE, "s", 0, 1).expect("new");
    let effects = router.set_presence("a", Presence::Away, 2).expect("known");
    assert_eq!(
        presence_changes(&effects),
        [("a".to_owned(), Presence::Away)]
    );
    assert_eq!(state(&router, "c1"), assigned_to("a"));
}

#[test]
fn first_socket_brings_the_agent_back_as_they_last_chose() {
    let mut router = Router::new(config());
    router.upsert_agent(spec("a", &[], None), 0);
    // Without a socket, a chosen status is only remembered.
    let effects = router.set_presence("a", Presence::Away, 1).expect("known");
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(
        router.agent("a").map(|view| view.presence),
        Some(Presence::Offline)
    );

    let effects = router.agent_connected("a", 7, 2).expect("known");
    assert_eq!(
        presence_changes(&effects),
        [("a".to_owned(), Presence::Away)]
    );

    // A second socket changes nothing; the agent counts both.
    let effects = router.agent_connected("a", 8, 3).expect("known");
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(router.agent("a").map(|view| view.sockets), Some(2));

    let effects = router
        .set_presence("a", Presence::Online, 4)
        .expect("known");
    assert_eq!(
        presence_changes(&effects),
        [("a".to_owned(), Presence::Online)]
    );
    // Setting what is already shown is no change.
    let effects = router
        .set_presence("a", Presence::Online, 5)
        .expect("known");
    assert!(effects.is_empty(), "{effects:?}");
}

#[test]
fn away_survives_a_disconnect_and_reconnect() {
    // (reconnect after the grace period ran out?)
    for after_grace in [false, true] {
        let mut router = Router::new(config());
        add_online(&mut router, "a", &[], None, 0);
        router.set_presence("a", Presence::Away, 1).expect("known");
        let effects = router.agent_disconnected("a", SOCKET, 10).expect("known");
        assert!(presence_changes(&effects).is_empty(), "{effects:?}");
        let view = router.agent("a").expect("registered");
        assert_eq!(
            (view.presence, view.disconnected_since),
            (Presence::Away, Some(10))
        );
        if after_grace {
            let effects = router.tick(60_010);
            assert_eq!(
                presence_changes(&effects),
                [("a".to_owned(), Presence::Offline)]
            );
        }

        let effects = router.agent_connected("a", 2, 70_000).expect("known");

        let expected: &[(String, Presence)] = if after_grace {
            &[("a".to_owned(), Presence::Away)]
        } else {
            &[]
        };
        assert_eq!(presence_changes(&effects), expected, "{after_grace}");
        let view = router.agent("a").expect("registered");
        assert_eq!(
            (view.presence, view.disconnected_since, view.sockets),
            (Presence::Away, None, 1),
            "{after_grace}"
        );
    }
}

#[test]
fn only_the_last_socket_closing_starts_grace() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &[], Some(3), 0);
    router.agent_connected("a", 2, 0).expect("known");
    router.enqueue("c1", SITE, "", 0, 1).expect("new");

    // One of two sockets closes: nothing changes, new chats still come.
    let effects = router.agent_disconnected("a", SOCKET, 5).expect("known");
    assert!(effects.is_empty(), "{effects:?}");
    let view = router.agent("a").expect("registered");
    assert_eq!((view.sockets, view.disconnected_since), (1, None));
    let effects = router.enqueue("c2", SITE, "", 0, 6).expect("new");
    assert_eq!(assignments(&effects), pairs(&[("c2", "a")]));

    // The last one: grace starts, chats are kept, nothing new comes.
    let effects = router.agent_disconnected("a", 2, 10).expect("known");
    assert!(presence_changes(&effects).is_empty(), "{effects:?}");
    assert_eq!(
        router.agent("a").map(|view| view.disconnected_since),
        Some(Some(10))
    );
    router.enqueue("c3", SITE, "", 0, 11).expect("new");
    assert_eq!(state(&router, "c3"), queued_in(""));

    // A connection id the router does not know (or no longer knows) is a no-op.
    for connection in [2, SOCKET, 99] {
        assert_eq!(
            router.agent_disconnected("a", connection, 12),
            Ok(Vec::new())
        );
    }

    let effects = router.tick(60_010);
    assert_eq!(
        presence_changes(&effects),
        [("a".to_owned(), Presence::Offline)]
    );
    assert!(effects.contains(&Effect::AgentOffline { agent: "a".into() }));
    assert_eq!(
        requeues(&effects),
        [
            (
                "c1".to_owned(),
                Some("a".to_owned()),
                RequeueReason::GraceExpired
            ),
            (
                "c2".to_owned(),
                Some("a".to_owned()),
                RequeueReason::GraceExpired
            ),
        ]
    );
}

#[test]
fn offline_by_choice_stays_offline_while_connected() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &[], None, 0);
    router
        .set_presence("a", Presence::Offline, 1)
        .expect("known");
    // Another socket is not a first socket: still Offline.
    let effects = router.agent_connected("a", 2, 2).expect("known");
    assert!(effects.is_empty(), "{effects:?}");
    // Closing every socket of an Offline agent starts no grace period.
    router.agent_disconnected("a", SOCKET, 3).expect("known");
    router.agent_disconnected("a", 2, 3).expect("known");
    let view = router.agent("a").expect("registered");
    assert_eq!(
        (view.presence, view.sockets, view.disconnected_since),
        (Presence::Offline, 0, None)
    );
    // Offline is not remembered: the next first socket brings back the last Online or
    // Away they chose.
    let effects = router.agent_connected("a", 3, 4).expect("known");
    assert_eq!(
        presence_changes(&effects),
        [("a".to_owned(), Presence::Online)]
    );
}

// ----- transfers and takes ------------------------------------------------------------

#[test]
fn transfer_to_an_available_agent_assigns_directly() {
    let mut router = Router::new(accept_mode(5_000));
    add_online(&mut router, "a", &["s"], None, 0);
    add_online(&mut router, "b", &["other"], None, 0);
    router.enqueue("c1", SITE, "s", 0, 1).expect("new");
    router.accept("a", "c1", 2).expect("offered to a");

    let effects = router
        .transfer_to_agent("c1", SITE, "b", 3)
        .expect("b is free");

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
    add_online(&mut router, "gone", &["s"], None, 0);
    router.agent_disconnected("gone", SOCKET, 0).expect("known");
    add_online(&mut router, "retired", &["s"], None, 0);
    router.retire_agent("retired", 0).expect("known");
    router.upsert_agent(spec("offline", &["s"], None), 0);
    connect(
        &mut router,
        spec_on("elsewhere", &["shop"], &["s"], None),
        0,
    );
    router.enqueue("c1", SITE, "s", 0, 1).expect("new");
    assert_eq!(state(&router, "c1"), assigned_to("a"));
    let cases = [
        ("full", RoutingError::OverCapacity),
        ("away", RoutingError::NotAvailable),
        ("gone", RoutingError::NotAvailable),
        ("retired", RoutingError::NotAvailable),
        ("offline", RoutingError::NotAvailable),
        ("elsewhere", RoutingError::NotOnSite),
        ("nobody", RoutingError::UnknownAgent),
    ];
    for (target, expected) in cases {
        assert_eq!(
            router.transfer_to_agent("c1", SITE, target, 2),
            Err(expected),
            "{target}"
        );
        assert_eq!(state(&router, "c1"), assigned_to("a"));
    }
    assert_eq!(router.transfer_to_agent("c1", SITE, "a", 2), Ok(Vec::new()));
}

#[test]
fn transfer_to_department_requeues_at_the_back_and_prefers_other_agents() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &["s", "billing"], Some(1), 0);
    router.enqueue("c1", SITE, "s", 0, 1).expect("new");
    router.enqueue("older", SITE, "billing", 0, 2).expect("new");
    add_online(&mut router, "b", &["billing"], Some(1), 3);
    assert_eq!(state(&router, "older"), assigned_to("b"));

    // a frees a seat by transferring c1 to billing; nobody else is free, so a gets
    // it back only as the fallback.
    let effects = router
        .transfer_to_department("c1", SITE, "billing", 10)
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
        .transfer_to_department("c1", SITE, "billing", 12)
        .expect("assigned");
    assert_eq!(assignments(&effects), pairs(&[("c1", "b")]));
}

#[test]
fn transfer_to_department_goes_behind_earlier_chats() {
    let mut router = Router::new(config());
    // Changed with the unserved-department rule: billing needs an agent (an offline
    // one will do) for "billing-1" to wait there rather than in the general queue.
    register_offline(&mut router, "billing-agent", &["billing"]);
    add_online(&mut router, "a", &["s"], Some(1), 0);
    router.enqueue("c1", SITE, "s", 0, 1).expect("new");
    router
        .enqueue("billing-1", SITE, "billing", 0, 2)
        .expect("new");
    router
        .transfer_to_department("c1", SITE, "billing", 3)
        .expect("assigned");
    assert_eq!(queue_order(&router, "billing"), ["billing-1", "c1"]);
}

#[test]
fn transfer_to_an_unserved_department_is_refused_and_changes_nothing() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &["sales"], Some(1), 0);
    // "billing" is served, but only on another site.
    connect(
        &mut router,
        spec_on("shop-agent", &["shop"], &["billing"], None),
        0,
    );
    router.start_bot_conversation("with-bot", SITE);
    router.enqueue("held", SITE, "sales", 0, 1).expect("new");
    router.enqueue("queued", SITE, "sales", 0, 2).expect("new");
    let sites = router.sites();
    for conversation in ["with-bot", "held", "queued", "unknown"] {
        let before = state(&router, conversation);
        for department in ["billing", "nobody-here"] {
            assert_eq!(
                router.transfer_to_department(conversation, SITE, department, 3),
                Err(RoutingError::UnservedDepartment),
                "{conversation} to {department}"
            );
            assert_eq!(state(&router, conversation), before, "{conversation}");
        }
    }
    assert_eq!(queue_order(&router, "sales"), ["queued"]);
    assert_eq!(router.sites(), sites);
    // The general department is always served.
    router
        .transfer_to_department("held", SITE, "", 4)
        .expect("general is served");
}

#[test]
fn take_picks_a_chat_out_of_order_from_any_department() {
    // An agent with free seats never sees a waiting chat of their own departments (the
    // drain would have assigned it), so a manual take is how chats of other, busy or
    // unstaffed departments get help.
    for configuration in [config(), accept_mode(5_000)] {
        let mut router = Router::new(configuration);
        // Changed with the unserved-department rule: an (offline) billing agent keeps
        // the chats in billing rather than in the general queue the sales agent serves.
        register_offline(&mut router, "billing-agent", &["billing"]);
        router.enqueue("b1", SITE, "billing", 0, 1).expect("new");
        router.enqueue("b2", SITE, "billing", 0, 2).expect("new");
        add_online(&mut router, "sales-agent", &["sales"], None, 3);

        let effects = router
            .take("sales-agent", "b2", SITE, 4)
            .expect("free seat");

        assert_eq!(assignments(&effects), pairs(&[("b2", "sales-agent")]));
        assert_eq!(state(&router, "b2"), assigned_to("sales-agent"));
        assert_eq!(queue_order(&router, "billing"), ["b1"]);
    }
}

#[test]
fn take_and_transfer_work_from_every_open_state() {
    // New rule: both work from the bot's state too (an unknown conversation is recorded
    // as being with the bot), and take can take over another agent's chat. Both assign
    // directly, even in accept mode.
    type Setup = fn(&mut Router);
    let cases: &[(&str, Setup)] = &[
        ("unknown", |_| {}),
        ("with the bot", |router| {
            router.start_bot_conversation("c1", SITE);
        }),
        ("queued", |router| {
            router
                .set_presence("holder", Presence::Away, 1)
                .expect("known");
            router.enqueue("c1", SITE, "billing", 0, 1).expect("new");
        }),
        ("offered to another agent", |router| {
            router.enqueue("c1", SITE, "billing", 0, 1).expect("new");
        }),
        ("assigned to another agent", |router| {
            router.enqueue("c1", SITE, "billing", 0, 1).expect("new");
            router.accept("holder", "c1", 1).expect("offered");
        }),
    ];
    for take in [true, false] {
        for (name, setup) in cases {
            let mut router = Router::new(accept_mode(5_000));
            add_online(&mut router, "holder", &["billing"], Some(1), 0);
            add_online(&mut router, "taker", &["sales"], None, 0);
            setup(&mut router);

            let effects = if take {
                router.take("taker", "c1", SITE, 2)
            } else {
                router.transfer_to_agent("c1", SITE, "taker", 2)
            }
            .unwrap_or_else(|error| panic!("{name} (take: {take}): {error}"));

            assert_eq!(
                assignments(&effects),
                pairs(&[("c1", "taker")]),
                "{name} (take: {take})"
            );
            assert!(
                !effects.iter().any(|e| matches!(e, Effect::Offered { .. })),
                "{name} (take: {take}): {effects:?}"
            );
            assert_eq!(state(&router, "c1"), assigned_to("taker"));
            assert_eq!(router.conversation_site("c1"), Some(SITE));
            assert_eq!(router.agent_chats("holder"), Some(Vec::new()), "{name}");
            assert!(router.queue_snapshot(None).is_empty(), "{name}");
        }
    }
}

#[test]
fn taking_or_transferring_to_ones_own_chat_is_a_no_op() {
    // Regression: taking one's own pending offer used to be refused with OverCapacity
    // when the offer filled the last seat (and turned into an assignment otherwise),
    // although the docs say taking one's own chat is a no-op.
    let mut router = Router::new(accept_mode(5_000));
    add_online(&mut router, "a", &[], Some(1), 0);
    router.enqueue("offered", SITE, "", 0, 1).expect("new");
    let offered = state(&router, "offered");
    assert!(matches!(offered, Some(ConversationState::Offered { .. })));
    assert_eq!(router.take("a", "offered", SITE, 2), Ok(Vec::new()));
    assert_eq!(
        router.transfer_to_agent("offered", SITE, "a", 2),
        Ok(Vec::new())
    );
    assert_eq!(state(&router, "offered"), offered);
    router.accept("a", "offered", 3).expect("still offered");
    assert_eq!(router.take("a", "offered", SITE, 4), Ok(Vec::new()));
    assert_eq!(state(&router, "offered"), assigned_to("a"));
}

#[test]
fn take_refusals() {
    let mut router = Router::new(config());
    register_offline(&mut router, "billing-agent", &["billing"]);
    router
        .enqueue("queued", SITE, "billing", 0, 1)
        .expect("new");
    add_online(&mut router, "away", &[], None, 0);
    router
        .set_presence("away", Presence::Away, 0)
        .expect("known");
    add_online(&mut router, "gone", &[], None, 0);
    router.agent_disconnected("gone", SOCKET, 0).expect("known");
    router.upsert_agent(spec("offline", &[], None), 0);
    add_online(&mut router, "retired", &[], None, 0);
    router.retire_agent("retired", 0).expect("known");
    connect(&mut router, spec_on("elsewhere", &["shop"], &[], None), 0);
    add_online(&mut router, "full", &[], Some(1), 0);
    router.enqueue("held", SITE, "", 0, 2).expect("new");
    assert_eq!(state(&router, "held"), assigned_to("full"));
    router
        .enqueue("closed", SITE, "billing", 0, 3)
        .expect("new");
    router.close("closed", 4).expect("queued");

    // Changed: taking a chat held by another agent or with the bot is no longer refused
    // (see take_and_transfer_work_from_every_open_state), and an unknown conversation
    // is recorded as with the bot, so only the agent can make such a take fail.
    let cases = [
        ("away", "queued", SITE, RoutingError::NotAvailable),
        ("gone", "queued", SITE, RoutingError::NotAvailable),
        ("offline", "queued", SITE, RoutingError::NotAvailable),
        ("retired", "queued", SITE, RoutingError::NotAvailable),
        ("elsewhere", "queued", SITE, RoutingError::NotOnSite),
        ("full", "queued", SITE, RoutingError::OverCapacity),
        ("nobody", "queued", SITE, RoutingError::UnknownAgent),
        ("full", "queued", "shop", RoutingError::WrongSite),
        ("full", "closed", SITE, RoutingError::AlreadyClosed),
        ("full", "nothing", SITE, RoutingError::OverCapacity),
        (
            "away",
            "nothing",
            "brand-new-site",
            RoutingError::NotAvailable,
        ),
    ];
    let sites = router.sites();
    for (agent, conversation, site, expected) in cases {
        assert_eq!(
            router.take(agent, conversation, site, 5),
            Err(expected),
            "{agent} takes {conversation} of {site}"
        );
    }
    assert_eq!(state(&router, "queued"), queued_in("billing"));
    // Regression: a refused take of an unknown conversation used to record it (and
    // its site) anyway.
    assert_eq!(state(&router, "nothing"), None);
    assert_eq!(router.sites(), sites);
    assert_eq!(
        router.transfer_to_agent("nothing", SITE, "full", 5),
        Err(RoutingError::OverCapacity)
    );
    assert_eq!(state(&router, "nothing"), None);
}

// ----- departments ----------------------------------------------------------------------

#[test]
fn general_department_is_served_by_everyone() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &["sales"], None, 0);
    let effects = router.enqueue("c1", SITE, "", 0, 1).expect("new");
    assert_eq!(assignments(&effects), pairs(&[("c1", "a")]));
}

#[test]
fn configured_general_department_name() {
    let mut router = Router::new(RouterConfig {
        general_department: "general".into(),
        ..config()
    });
    add_online(&mut router, "a", &["sales"], Some(1), 0);
    let general = router.enqueue("c1", SITE, "general", 0, 1).expect("new");
    assert_eq!(assignments(&general), pairs(&[("c1", "a")]));
    // Changed with the unserved-department rule: "" is an ordinary department here,
    // which nobody serves, so the hand-off waits in the configured general queue (it
    // used to wait in "" forever).
    let unstaffed = router.enqueue("c2", SITE, "", 0, 2).expect("new");
    assert!(assignments(&unstaffed).is_empty());
    assert_eq!(state(&router, "c2"), queued_in("general"));
    assert_eq!(
        router.transfer_to_department("c1", SITE, "", 3),
        Err(RoutingError::UnservedDepartment)
    );
}

#[test]
fn a_hand_off_to_an_unserved_department_waits_in_the_general_queue() {
    type Setup = fn(&mut Router);
    // (who serves "sales" on the site; where the hand-off ends up). A free general
    // agent "g" is online in every case.
    let cases: &[(&str, Setup, Option<ConversationState>)] = &[
        ("nobody", |_| {}, assigned_to("g")),
        (
            "an agent of another site only",
            |router| {
                connect(
                    router,
                    spec_on("shop-agent", &["shop"], &["sales"], None),
                    0,
                );
            },
            assigned_to("g"),
        ),
        (
            "a retired agent",
            |router| {
                add_online(router, "s", &["sales"], Some(0), 0);
                router.retire_agent("s", 0).expect("known");
            },
            assigned_to("g"),
        ),
        (
            "an agent who is away",
            |router| {
                add_online(router, "s", &["sales"], None, 0);
                router.set_presence("s", Presence::Away, 0).expect("known");
            },
            queued_in("sales"),
        ),
        (
            "an agent who never connected",
            |router| register_offline(router, "s", &["sales"]),
            queued_in("sales"),
        ),
        (
            "an agent who is full",
            |router| {
                add_online(router, "s", &["sales"], Some(0), 0);
            },
            queued_in("sales"),
        ),
    ];
    for (name, setup, expected) in cases {
        let mut router = Router::new(config());
        setup(&mut router);
        add_online(&mut router, "g", &[], None, 0);
        let effects = router.enqueue("c1", SITE, "sales", 0, 1).expect("new");
        assert_eq!(&state(&router, "c1"), expected, "{name}: {effects:?}");
    }
}

#[test]
fn agent_of_several_departments_gets_the_best_chat_across_them() {
    let mut router = Router::new(config());
    // Registered (offline) first, so the departments are served and the chats wait in
    // them rather than in the general queue.
    router.upsert_agent(spec("a", &["sales", "billing"], Some(2)), 0);
    router
        .enqueue("sales-old", SITE, "sales", 0, 1)
        .expect("new");
    router
        .enqueue("billing-urgent", SITE, "billing", 3, 5)
        .expect("new");
    router
        .enqueue("billing-old", SITE, "billing", 0, 0)
        .expect("new");
    let effects = router.agent_connected("a", SOCKET, 10).expect("known");
    assert_eq!(
        assignments(&effects),
        pairs(&[("billing-urgent", "a"), ("billing-old", "a")])
    );
    assert_eq!(queue_order(&router, "sales"), ["sales-old"]);
}

// ----- accept mode ----------------------------------------------------------------------

#[test]
fn accept_mode_offers_then_assigns_on_accept() {
    let mut router = Router::new(accept_mode(5_000));
    add_online(&mut router, "a", &["s"], Some(1), 0);
    let effects = router.enqueue("c1", SITE, "s", 0, 100).expect("new");
    assert!(effects.contains(&Effect::Offered {
        conversation: "c1".into(),
        agent: "a".into(),
        deadline: 5_100,
    }));
    // The offer counts against capacity.
    router.enqueue("c2", SITE, "s", 0, 101).expect("new");
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
    let mut router = Router::new(accept_mode(5_000));
    add_online(&mut router, "a", &["s"], None, 0);
    router.enqueue("c1", SITE, "s", 0, 1).expect("new");
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
    let effects = router.enqueue("c2", SITE, "s", 0, 6_000).expect("new");
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
    let mut router = Router::new(accept_mode(1_000));
    add_online(&mut router, "a", &["s"], None, 0);
    router.enqueue("c1", SITE, "s", 0, 0).expect("new");
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
    let mut router = Router::new(accept_mode(1_000));
    add_online(&mut router, "a", &["s"], Some(1), 0);
    router.enqueue("first", SITE, "s", 0, 0).expect("new");
    router.enqueue("second", SITE, "s", 0, 1).expect("new");
    router.tick(1_000);
    // a is skipped for "first", so "second" is offered to a; "first" stays ahead.
    assert!(matches!(
        state(&router, "second"),
        Some(ConversationState::Offered { .. })
    ));
    assert_eq!(queue_order(&router, "s"), ["first"]);
    router.enqueue("third", SITE, "s", 0, 2).expect("new");
    assert_eq!(queue_order(&router, "s"), ["first", "third"]);
}

#[test]
fn going_away_or_disconnecting_withdraws_pending_offers() {
    for disconnect in [false, true] {
        let mut router = Router::new(accept_mode(5_000));
        add_online(&mut router, "a", &["s"], None, 0);
        router.enqueue("c1", SITE, "s", 0, 1).expect("new");
        let effects = if disconnect {
            router.agent_disconnected("a", SOCKET, 2)
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

// ----- first-response SLA ---------------------------------------------------------------

#[test]
fn missed_first_response_raises_priority_once() {
    let mut router = Router::new(RouterConfig {
        sla_priority_boost: 10,
        ..sla(60_000)
    });
    router.enqueue("late", SITE, "", 0, 0).expect("new");
    router.enqueue("urgent", SITE, "", 5, 1).expect("new");
    assert_eq!(queue_order(&router, ""), ["urgent", "late"]);
    assert!(router.tick(59_999).is_empty());

    let effects = router.tick(60_000);

    assert!(effects.contains(&Effect::SlaBreached {
        conversation: "late".into(),
        priority: 10,
    }));
    assert!(!effects.iter().any(
        |e| matches!(e, Effect::SlaBreached { conversation, .. } if conversation == "urgent")
    ));
    assert_eq!(queue_order(&router, ""), ["late", "urgent"]);
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
    let mut router = Router::new(sla(60_000));
    add_online(&mut router, "a", &["s"], None, 0);
    router.enqueue("c1", SITE, "s", 0, 0).expect("new");
    router.agent_responded("c1", 30_000).expect("assigned");
    assert!(router.tick(120_000).is_empty());
    // A transfer restarts the clock.
    router
        .transfer_to_department("c1", SITE, "s", 120_000)
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
    router.enqueue("c1", SITE, "", 0, 0).expect("new");
    router.enqueue("c2", SITE, "", 1, 1).expect("new");
    router.raise_priority("c1", 2, 2).expect("queued");
    assert_eq!(queue_order(&router, ""), ["c1", "c2"]);
    router.raise_priority("c1", -5, 3).expect("queued");
    assert_eq!(router.queue_snapshot(Some(SITE))[0].priority, 2);
}

// ----- expected wait ----------------------------------------------------------------------

/// Has `agent` (Online, capacity 1, nothing else to do) handle one chat per duration on
/// `site`, one after the other from `start`; returns when the last one closed. Handling
/// times are recorded on close (there is no `record_handled` any more).
fn handle(router: &mut Router, site: &str, agent: &str, durations: &[u64], start: u64) -> u64 {
    let mut now = start;
    for (index, duration) in durations.iter().enumerate() {
        let conversation = format!("handled-{site}-{start}-{index}");
        let effects = router
            .enqueue(&conversation, site, "", 0, now)
            .expect("new");
        assert_eq!(
            assignments(&effects),
            pairs(&[(&conversation, agent)]),
            "the handling agent must be free"
        );
        now += duration;
        router.close(&conversation, now).expect("assigned");
    }
    now
}

#[test]
fn expected_wait_is_position_times_mean_handling_over_online_slots() {
    let mut router = Router::new(RouterConfig {
        default_handling_ms: 300_000,
        ..config()
    });
    for (index, conversation) in ["x1", "x2", "x3"].iter().enumerate() {
        router
            .enqueue(conversation, SITE, "", 0, index as u64)
            .expect("new");
    }
    // No agents online: one slot assumed, default handling time.
    assert_eq!(router.queue_position("x1"), Some((1, 300_000)));
    assert_eq!(router.queue_position("x3"), Some((3, 900_000)));
    // Closing chats that nobody handled records no handling time.
    for conversation in ["x1", "x2", "x3"] {
        router.close(conversation, 10).expect("queued");
    }

    add_online(&mut router, "h", &[], Some(1), 10);
    let now = handle(&mut router, SITE, "h", &[100_000, 200_000], 10);
    router
        .set_presence("h", Presence::Offline, now)
        .expect("known");
    // Two agents of capacity 2: four slots, mean 150_000.
    add_online(&mut router, "a", &[], Some(2), now);
    add_online(&mut router, "b", &[], Some(2), now);
    for (index, conversation) in ["c1", "c2", "c3", "c4", "c5", "c6"].iter().enumerate() {
        router
            .enqueue(conversation, SITE, "", 0, now + index as u64)
            .expect("new");
    }
    assert_eq!(queue_order(&router, ""), ["c5", "c6"]);
    assert_eq!(router.queue_position("c5"), Some((1, 37_500)));
    assert_eq!(router.queue_position("c6"), Some((2, 75_000)));
    let snapshot = router.queue_snapshot(Some(SITE));
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
    add_online(&mut router, "a", &[], Some(1), 0);
    let now = handle(&mut router, SITE, "a", &[1_000_000, 10, 30], 0);
    router
        .set_presence("a", Presence::Away, now)
        .expect("known");
    router.enqueue("c1", SITE, "", 0, now).expect("new");
    assert_eq!(router.queue_position("c1"), Some((1, 20)));
}

#[test]
fn handling_time_runs_from_the_last_assignment_to_close() {
    // An accepted offer counts from the accept; a chat taken over counts from the take.
    let mut router = Router::new(accept_mode(5_000));
    add_online(&mut router, "a", &[], Some(1), 0);
    add_online(&mut router, "b", &["other"], Some(1), 0);
    router.enqueue("c1", SITE, "", 0, 0).expect("new");
    router.accept("a", "c1", 1_000).expect("offered");
    router.take("b", "c1", SITE, 5_000).expect("b is free");
    router.close("c1", 8_000).expect("assigned");
    router
        .set_presence("a", Presence::Away, 8_000)
        .expect("known");
    router
        .set_presence("b", Presence::Away, 8_000)
        .expect("known");
    router.enqueue("c2", SITE, "", 0, 8_000).expect("new");
    assert_eq!(router.queue_position("c2"), Some((1, 3_000)));
}

#[test]
fn expected_wait_uses_each_sites_own_handling_times() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &[], Some(1), 0);
    let now = handle(&mut router, "north", "a", &[10_000, 30_000], 0);
    let now = handle(&mut router, "south", "a", &[90_000], now);
    router.set_site("east", QUIET, now);
    router
        .set_presence("a", Presence::Away, now)
        .expect("known");
    for site in ["north", "south", "east"] {
        router
            .enqueue(&format!("waiting-{site}"), site, "", 0, now)
            .expect("new");
    }
    // Slots: a is Away, so one slot is assumed on every site.
    assert_eq!(router.queue_position("waiting-north"), Some((1, 20_000)));
    assert_eq!(router.queue_position("waiting-south"), Some((1, 90_000)));
    assert_eq!(
        router.queue_position("waiting-east"),
        Some((1, RouterConfig::default().default_handling_ms))
    );
}

// ----- effects and errors -----------------------------------------------------------------

#[test]
fn queue_changed_is_emitted_once_per_queue_at_the_end() {
    let mut router = Router::new(config());
    router.upsert_agent(spec("a", &["s", "b"], Some(4)), 0);
    router.enqueue("s1", SITE, "s", 0, 0).expect("new");
    router.enqueue("s2", SITE, "s", 0, 1).expect("new");
    router.enqueue("b1", SITE, "b", 0, 2).expect("new");
    router.enqueue("x1", "shop", "s", 0, 3).expect("new");
    let effects = router.agent_connected("a", SOCKET, 4).expect("known");
    assert_eq!(assignments(&effects).len(), 4);
    let queue_changes: Vec<&Effect> = effects
        .iter()
        .filter(|e| matches!(e, Effect::QueueChanged { .. }))
        .collect();
    assert_eq!(
        queue_changes,
        [
            &Effect::QueueChanged {
                site: "shop".into(),
                department: "s".into()
            },
            &Effect::QueueChanged {
                site: SITE.into(),
                department: "b".into()
            },
            &Effect::QueueChanged {
                site: SITE.into(),
                department: "s".into()
            },
        ]
    );
    assert!(matches!(effects.last(), Some(Effect::QueueChanged { .. })));
}

#[test]
fn conversation_lifecycle_errors() {
    let mut router = Router::new(config());
    router.start_bot_conversation("c1", SITE);
    // Changed: transfers of a conversation with the bot are allowed now (they used to
    // be refused with NotRouted); these fail for other reasons.
    assert_eq!(
        router.transfer_to_department("c1", SITE, "s", 0),
        Err(RoutingError::UnservedDepartment)
    );
    assert_eq!(
        router.transfer_to_agent("c1", SITE, "a", 0),
        Err(RoutingError::UnknownAgent)
    );
    router.upsert_agent(spec("a", &[], None), 0);
    router
        .enqueue("c1", SITE, "", 0, 0)
        .expect("bot conversation");
    assert_eq!(
        router.enqueue("c1", SITE, "", 0, 1),
        Err(RoutingError::AlreadyRouted)
    );
    assert_eq!(router.forget_closed("c1"), Err(RoutingError::NotClosed));
    router.close("c1", 2).expect("queued");
    for result in [
        router.close("c1", 3),
        router.enqueue("c1", SITE, "", 0, 3),
        router.raise_priority("c1", 9, 3),
        router.agent_responded("c1", 3),
        router.transfer_to_department("c1", SITE, "", 3),
        router.transfer_to_agent("c1", SITE, "a", 3),
        router.take("a", "c1", SITE, 3),
        router.accept("a", "c1", 3),
    ] {
        assert_eq!(result, Err(RoutingError::AlreadyClosed));
    }
    assert_eq!(router.forget_closed("c1"), Ok(()));
    assert_eq!(router.conversation_state("c1"), None);
    assert_eq!(router.conversation_site("c1"), None);
    for result in [
        router.close("c1", 4),
        router.raise_priority("c1", 9, 4),
        router.agent_responded("c1", 4),
        router.accept("a", "c1", 4),
    ] {
        assert_eq!(result, Err(RoutingError::UnknownConversation));
    }
    assert_eq!(
        router.forget_closed("c1"),
        Err(RoutingError::UnknownConversation)
    );
    // A forgotten id may start again, on any site.
    router.start_bot_conversation("c1", "shop");
    assert_eq!(router.conversation_site("c1"), Some("shop"));
    assert_eq!(
        router.set_presence("x", Presence::Online, 4),
        Err(RoutingError::UnknownAgent)
    );
    assert_eq!(
        router.agent_connected("x", 1, 4),
        Err(RoutingError::UnknownAgent)
    );
    assert_eq!(
        router.agent_disconnected("x", 1, 4),
        Err(RoutingError::UnknownAgent)
    );
    assert_eq!(router.retire_agent("x", 4), Err(RoutingError::UnknownAgent));
    assert_eq!(router.agent_chats("x"), None);
    assert_eq!(router.agent("x"), None);
}

#[test]
fn a_conversation_of_another_site_is_refused_and_nothing_changes() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &[], Some(1), 0);
    router.enqueue("held", "north", "", 0, 0).expect("new");
    router.enqueue("queued", "north", "", 0, 1).expect("new");
    router.start_bot_conversation("with-bot", "north");
    let sites = router.sites();
    assert_eq!(sites, ["north"]);
    for conversation in ["held", "queued", "with-bot"] {
        let before = state(&router, conversation);
        let results = [
            router.enqueue(conversation, "south", "", 0, 2),
            router.take("a", conversation, "south", 2),
            router.transfer_to_agent(conversation, "south", "a", 2),
            router.transfer_to_department(conversation, "south", "", 2),
        ];
        for result in results {
            assert_eq!(result, Err(RoutingError::WrongSite), "{conversation}");
        }
        assert_eq!(state(&router, conversation), before, "{conversation}");
        assert_eq!(router.conversation_site(conversation), Some("north"));
    }
    // Regression: a refused enqueue used to register the other site anyway.
    assert_eq!(router.sites(), sites);
    // start_bot_conversation of a known conversation changes nothing, whatever the site.
    router.start_bot_conversation("queued", "south");
    assert_eq!(router.conversation_site("queued"), Some("north"));
    assert_eq!(router.sites(), sites);
}

#[test]
fn lowering_capacity_keeps_chats_but_blocks_new_ones() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &["s"], Some(3), 0);
    for (index, conversation) in ["c1", "c2", "c3"].iter().enumerate() {
        router
            .enqueue(conversation, SITE, "s", 0, index as u64)
            .expect("new");
    }
    router.upsert_agent(spec("a", &["s"], Some(1)), 5);
    assert_eq!(router.agent_chats("a").map(|chats| chats.len()), Some(3));
    router.close("c1", 6).expect("assigned");
    router.enqueue("c4", SITE, "s", 0, 7).expect("new");
    assert_eq!(state(&router, "c4"), queued_in("s"));
    let view = &router.agents()[0];
    assert_eq!((view.load, view.capacity), (2, 1));
}

#[test]
fn agent_view_reports_presence_grace_sockets_sites_and_load() {
    let mut router = Router::new(config());
    add_online(&mut router, "b", &["z", "a", "z"], None, 0);
    router.agent_connected("b", 2, 0).expect("known");
    router.upsert_agent(spec("a", &[], Some(7)), 0);
    router.upsert_agent(spec_on("c", &["w2", "w1", "w2"], &[], None), 0);
    router.retire_agent("c", 0).expect("known");
    router.enqueue("c1", SITE, "", 0, 1).expect("new");
    router.agent_disconnected("b", SOCKET, 2).expect("known");
    let view = router.agent("b").expect("registered");
    assert_eq!((view.sockets, view.disconnected_since), (1, None));
    router.agent_disconnected("b", 2, 3).expect("known");

    let views = router.agents();
    assert_eq!(
        views
            .iter()
            .map(|view| view.id.as_str())
            .collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert_eq!(views[0].presence, Presence::Offline);
    assert_eq!(views[0].capacity, 7);
    assert_eq!(views[0].sites, Sites::All);
    assert_eq!(views[1].departments, ["a", "z"]);
    // In grace, the shown presence is still the chosen one.
    assert_eq!(views[1].presence, Presence::Online);
    assert_eq!(views[1].disconnected_since, Some(3));
    assert_eq!((views[1].sockets, views[1].load), (0, 1));
    assert!(!views[1].can_take_new_chat());
    assert_eq!(views[2].sites, Sites::Only(vec!["w1".into(), "w2".into()]));
    assert!(views[2].retired);
    assert_eq!(router.sites(), ["w1", "w2", SITE]);
    // site_agents lists the active agents of a site.
    let of_w1: Vec<String> = router
        .site_agents("w1")
        .into_iter()
        .map(|view| view.id)
        .collect();
    assert_eq!(of_w1, ["a", "b"]);
}

#[test]
fn reconfiguring_a_raised_default_capacity_drains_the_backlog() {
    let mut router = Router::new(config());
    add_online(&mut router, "sara", &[], None, 0);
    for (index, conversation) in ["c1", "c2", "c3", "c4"].iter().enumerate() {
        router
            .enqueue(conversation, SITE, "", 0, index as u64)
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

#[test]
fn a_running_grace_period_keeps_its_deadline_across_reconfigure() {
    // Regression: the grace timer was looked up with the *current* grace_ms, so after a
    // reconfigure it was never removed: tick looped forever on it, and an agent who came
    // back in time was still taken Offline at the old deadline.
    for reconnect in [false, true] {
        let mut router = Router::new(config());
        add_online(&mut router, "a", &[], None, 0);
        router.enqueue("c1", SITE, "", 0, 0).expect("new");
        router.agent_disconnected("a", SOCKET, 0).expect("known");
        router.reconfigure(
            RouterConfig {
                grace_ms: 1_000,
                ..config()
            },
            1,
        );
        assert!(router.tick(1_000).is_empty(), "the old deadline holds");
        if reconnect {
            router.agent_connected("a", 2, 30_000).expect("known");
        }
        let effects = router.tick(60_000);
        let went_offline = effects.contains(&Effect::AgentOffline { agent: "a".into() });
        assert_eq!(went_offline, !reconnect, "{effects:?}");
        let expected = if reconnect {
            assigned_to("a")
        } else {
            queued_in("")
        };
        assert_eq!(state(&router, "c1"), expected);
        assert!(router.tick(120_000).is_empty());
    }
}

// ----- sites ------------------------------------------------------------------------------

#[test]
fn capacity_is_counted_across_all_sites_of_the_agent() {
    // (the agent's sites, the sites the chats arrive on, one each in turn)
    let cases: &[(&[&str], &[&str])] = &[
        (&["north", "south"], &["north", "south", "north", "south"]),
        (&[], &["north", "south", "east", "west"]),
    ];
    for (sites, arrivals) in cases {
        let mut router = Router::new(config());
        let agent = if sites.is_empty() {
            spec("a", &[], Some(2))
        } else {
            spec_on("a", sites, &[], Some(2))
        };
        connect(&mut router, agent, 0);
        for (index, site) in arrivals.iter().enumerate() {
            router
                .enqueue(&format!("c{index}"), site, "", 0, index as u64)
                .expect("new");
        }
        assert_eq!(
            router.agent_chats("a"),
            Some(vec!["c0".to_owned(), "c1".to_owned()]),
            "{sites:?}"
        );
        assert_eq!(
            router.take("a", "c3", arrivals[3], 10),
            Err(RoutingError::OverCapacity)
        );
        assert_eq!(
            router.transfer_to_agent("c3", arrivals[3], "a", 10),
            Err(RoutingError::OverCapacity)
        );
        // A freed seat goes to the chat that waited longest, whatever its site.
        let effects = router.close("c1", 11).expect("assigned");
        assert_eq!(assignments(&effects), pairs(&[("c2", "a")]), "{sites:?}");
        assert_eq!(router.agent("a").map(|view| view.load), Some(2));
    }
}

#[test]
fn a_chat_goes_only_to_an_agent_of_its_site() {
    type Register = fn(&mut Router);
    // (the agent's sites; how the chat's site comes to exist; the chat's site;
    // whether the agent gets it)
    let cases: &[(&str, Sites, Register, &str, bool)] = &[
        (
            "own site",
            Sites::Only(vec!["north".into()]),
            |_| {},
            "north",
            true,
        ),
        (
            "another site",
            Sites::Only(vec!["north".into()]),
            |_| {},
            "south",
            false,
        ),
        (
            "one of several",
            Sites::Only(vec!["north".into(), "south".into()]),
            |_| {},
            "south",
            true,
        ),
        (
            "every site, registered later with set_site",
            Sites::All,
            |router| {
                router.set_site("later", QUIET, 5);
            },
            "later",
            true,
        ),
        (
            "every site, registered by the first conversation",
            Sites::All,
            |_| {},
            "first-seen",
            true,
        ),
        (
            "every site, registered by a bot conversation",
            Sites::All,
            |router| {
                router.start_bot_conversation("c1", "bot-site");
            },
            "bot-site",
            true,
        ),
    ];
    for (name, sites, register, site, gets_it) in cases {
        let mut router = Router::new(config());
        connect(
            &mut router,
            AgentSpec {
                sites: sites.clone(),
                ..spec("a", &[], None)
            },
            0,
        );
        register(&mut router);
        let effects = router.enqueue("c1", site, "", 0, 10).expect("new");
        let expected = if *gets_it {
            pairs(&[("c1", "a")])
        } else {
            Vec::new()
        };
        assert_eq!(assignments(&effects), expected, "{name}");
        if !gets_it {
            assert_eq!(state(&router, "c1"), queued_in(""), "{name}");
            assert_eq!(
                router.take("a", "c1", site, 11),
                Err(RoutingError::NotOnSite),
                "{name}"
            );
            assert_eq!(
                router.transfer_to_agent("c1", site, "a", 11),
                Err(RoutingError::NotOnSite),
                "{name}"
            );
            assert!(router.site_agents(site).is_empty(), "{name}");
        }
    }
}

#[test]
fn widening_an_agents_sites_drains_the_new_sites_backlog() {
    let mut router = Router::new(config());
    connect(&mut router, spec_on("a", &["north"], &[], None), 0);
    router.enqueue("s1", "south", "", 0, 1).expect("new");
    assert_eq!(site_queue_order(&router, "south", ""), ["s1"]);
    let effects = router.upsert_agent(spec("a", &[], None), 2);
    assert_eq!(assignments(&effects), pairs(&[("s1", "a")]));
}

#[test]
fn losing_a_site_requeues_its_chats_to_the_front() {
    let mut router = Router::new(config());
    connect(
        &mut router,
        spec_on("a", &["north", "south"], &[], Some(2)),
        0,
    );
    router.enqueue("n1", "north", "", 0, 1).expect("new");
    router.enqueue("s1", "south", "", 0, 2).expect("new");
    router.enqueue("s2", "south", "", 0, 3).expect("new");
    assert_eq!(site_queue_order(&router, "south", ""), ["s2"]);

    let effects = router.upsert_agent(spec_on("a", &["north"], &[], Some(2)), 4);

    assert_eq!(
        requeues(&effects),
        [(
            "s1".to_owned(),
            Some("a".to_owned()),
            RequeueReason::AccessRevoked
        )]
    );
    assert!(effects.contains(&Effect::QueueChanged {
        site: "south".into(),
        department: "".into()
    }));
    // Ahead of the older s2, and not back with a, who has a free seat but not the site.
    assert_eq!(site_queue_order(&router, "south", ""), ["s1", "s2"]);
    assert!(router.queue_snapshot(Some("south"))[0].requeued_to_front);
    assert_eq!(router.agent_chats("a"), Some(vec!["n1".to_owned()]));
    let effects = connect(&mut router, spec_on("b", &["south"], &[], Some(1)), 5);
    assert_eq!(assignments(&effects), pairs(&[("s1", "b")]));
}

#[test]
fn losing_a_site_requeues_pending_offers_too() {
    let mut router = Router::new(accept_mode(5_000));
    connect(&mut router, spec_on("a", &["north", "south"], &[], None), 0);
    router.enqueue("s1", "south", "", 0, 1).expect("new");
    assert!(matches!(
        state(&router, "s1"),
        Some(ConversationState::Offered { .. })
    ));
    let effects = router.upsert_agent(spec_on("a", &["north"], &[], None), 2);
    assert_eq!(
        requeues(&effects),
        [(
            "s1".to_owned(),
            Some("a".to_owned()),
            RequeueReason::AccessRevoked
        )]
    );
    assert_eq!(state(&router, "s1"), queued_in(""));
    assert_eq!(router.accept("a", "s1", 3), Err(RoutingError::NotOffered));
    assert!(router.tick(10_000).is_empty(), "the offer timer is gone");
}

#[test]
fn retiring_an_agent_requeues_their_chats_and_refuses_them_until_registered_again() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &["sales"], Some(2), 0);
    router.enqueue("c1", SITE, "sales", 0, 1).expect("new");
    router.enqueue("c2", SITE, "sales", 0, 2).expect("new");

    let effects = router.retire_agent("a", 3).expect("known");

    assert_eq!(
        presence_changes(&effects),
        [("a".to_owned(), Presence::Offline)]
    );
    assert!(effects.contains(&Effect::AgentOffline { agent: "a".into() }));
    assert_eq!(
        requeues(&effects),
        [
            (
                "c1".to_owned(),
                Some("a".to_owned()),
                RequeueReason::AccessRevoked
            ),
            (
                "c2".to_owned(),
                Some("a".to_owned()),
                RequeueReason::AccessRevoked
            ),
        ]
    );
    let view = router.agent("a").expect("still known");
    assert!(view.retired);
    assert_eq!(
        (view.presence, view.sockets, view.load),
        (Presence::Offline, 0, 0)
    );
    assert!(router.site_agents(SITE).is_empty());
    assert_eq!(
        router.agent_connected("a", 2, 4),
        Err(RoutingError::NotAvailable)
    );
    assert_eq!(
        router.set_presence("a", Presence::Online, 4),
        Ok(Vec::new())
    );
    // The socket open before the retirement is forgotten.
    assert_eq!(router.agent_disconnected("a", SOCKET, 4), Ok(Vec::new()));
    assert_eq!(
        router.take("a", "c1", SITE, 4),
        Err(RoutingError::NotAvailable)
    );
    assert_eq!(router.retire_agent("a", 4), Ok(Vec::new()));
    // Nobody serves sales any more: a new hand-off waits in the general queue.
    router.enqueue("c3", SITE, "sales", 0, 5).expect("new");
    assert_eq!(state(&router, "c3"), queued_in(""));

    // Registered again: active, still Offline until a socket opens.
    let effects = router.upsert_agent(spec("a", &["sales"], Some(2)), 6);
    assert!(assignments(&effects).is_empty());
    assert!(!router.agent("a").expect("known").retired);
    let effects = router.agent_connected("a", 2, 7).expect("active again");
    assert_eq!(
        presence_changes(&effects),
        [("a".to_owned(), Presence::Online)]
    );
    assert_eq!(assignments(&effects), pairs(&[("c1", "a"), ("c2", "a")]));
}

#[test]
fn retiring_an_agent_in_grace_ends_the_grace_period() {
    let mut router = Router::new(config());
    add_online(&mut router, "a", &[], None, 0);
    router.enqueue("c1", SITE, "", 0, 0).expect("new");
    router.agent_disconnected("a", SOCKET, 1).expect("known");
    let effects = router.retire_agent("a", 2).expect("known");
    assert!(effects.contains(&Effect::AgentOffline { agent: "a".into() }));
    assert_eq!(state(&router, "c1"), queued_in(""));
    assert_eq!(
        router.agent("a").map(|view| view.disconnected_since),
        Some(None)
    );
    assert!(router.tick(1_000_000).is_empty());
}

// ----- per-site policies ------------------------------------------------------------------

#[test]
fn accept_mode_is_a_site_policy() {
    let mut router = Router::new(config());
    router.set_site(
        "north",
        SitePolicy {
            accept_timeout_ms: Some(5_000),
            ..QUIET
        },
        0,
    );
    add_online(&mut router, "a", &[], Some(4), 0);
    let north = router.enqueue("n1", "north", "", 0, 10).expect("new");
    let south = router.enqueue("s1", "south", "", 0, 10).expect("new");
    assert!(north.contains(&Effect::Offered {
        conversation: "n1".into(),
        agent: "a".into(),
        deadline: 5_010,
    }));
    assert_eq!(assignments(&south), pairs(&[("s1", "a")]));
    // Turning accept mode off applies to later assignments; the pending offer stands.
    router.set_site("north", QUIET, 20);
    let north = router.enqueue("n2", "north", "", 0, 30).expect("new");
    assert_eq!(assignments(&north), pairs(&[("n2", "a")]));
    assert!(matches!(
        state(&router, "n1"),
        Some(ConversationState::Offered { .. })
    ));
}

#[test]
fn first_response_targets_are_site_policies() {
    let mut router = Router::new(config());
    let target = |ms| SitePolicy {
        first_response_target_ms: Some(ms),
        ..QUIET
    };
    router.set_site("north", target(10_000), 0);
    router.set_site("south", target(60_000), 0);
    router.enqueue("n1", "north", "", 0, 0).expect("new");
    router.enqueue("s1", "south", "", 0, 0).expect("new");
    router.enqueue("e1", "east", "", 0, 0).expect("new");
    // A policy change applies to clocks started from then on.
    router.set_site("north", target(100_000), 1);
    router.enqueue("n2", "north", "", 0, 1).expect("new");
    assert!(router.tick(9_999).is_empty());
    let breached = |effects: Vec<Effect>| -> Vec<String> {
        effects
            .into_iter()
            .filter_map(|effect| match effect {
                Effect::SlaBreached { conversation, .. } => Some(conversation),
                _ => None,
            })
            .collect()
    };
    assert_eq!(breached(router.tick(10_000)), ["n1"]);
    assert_eq!(breached(router.tick(60_000)), ["s1"]);
    assert_eq!(breached(router.tick(100_001)), ["n2"]);
    assert!(
        breached(router.tick(10_000_000)).is_empty(),
        "east has none"
    );
}

#[test]
fn the_default_policy_applies_to_every_site_without_its_own() {
    // Regression: a site registered implicitly (by a conversation or an agent's sites)
    // kept a copy of the default policy of the time, so `reconfigure` with a new
    // `default_policy` did not reach it.
    let mut router = Router::new(config());
    router.set_site("own-policy", QUIET, 0);
    router.start_bot_conversation("early", "implicit");
    router.reconfigure(accept_mode(5_000), 1);
    add_online(&mut router, "a", &[], Some(4), 2);
    for site in ["implicit", "brand-new", "own-policy"] {
        router
            .enqueue(&format!("c-{site}"), site, "", 0, 3)
            .expect("new");
    }
    assert!(matches!(
        state(&router, "c-implicit"),
        Some(ConversationState::Offered { .. })
    ));
    assert!(matches!(
        state(&router, "c-brand-new"),
        Some(ConversationState::Offered { .. })
    ));
    assert_eq!(state(&router, "c-own-policy"), assigned_to("a"));
}

#[test]
fn a_transfer_to_a_department_of_a_site_not_yet_seen_counts_agents_of_every_site() {
    // Regression: an agent of every site serves the site's departments before the site
    // is registered, but a transfer of a new conversation there was refused with
    // UnservedDepartment.
    let mut router = Router::new(config());
    add_online(&mut router, "a", &["sales"], None, 0);
    let effects = router
        .transfer_to_department("c1", "new-site", "sales", 1)
        .expect("a of every site serves sales");
    assert_eq!(assignments(&effects), pairs(&[("c1", "a")]));
    assert_eq!(router.conversation_site("c1"), Some("new-site"));
    // An agent of listed sites does not serve an unknown one.
    let mut router = Router::new(config());
    connect(&mut router, spec_on("b", &["north"], &["sales"], None), 0);
    assert_eq!(
        router.transfer_to_department("c1", "new-site", "sales", 1),
        Err(RoutingError::UnservedDepartment)
    );
    assert_eq!(router.sites(), ["north"]);
}

// ----- restore ----------------------------------------------------------------------------

fn restored(
    id: &str,
    department: &str,
    priority: i32,
    since: u64,
    agent: Option<&str>,
) -> RestoredConversation {
    RestoredConversation {
        id: id.to_owned(),
        site: SITE.to_owned(),
        department: department.to_owned(),
        priority,
        since,
        agent: agent.map(str::to_owned),
    }
}

/// A router after a restart: "a" (Online) holds held-a, "b" (chose Away) holds held-b,
/// "c" works on another site only, "r" was retired before the restore, "ghost" is not
/// registered at all. Restored at 1_000, first-response target 30 s, grace 60 s.
fn restored_router() -> (Router, Vec<Effect>) {
    let mut router = Router::new(sla(30_000));
    router.upsert_agent(spec("r", &[], None), 0);
    router.retire_agent("r", 0).expect("known");
    let restore = Restore {
        agents: vec![
            (spec("a", &["sales"], Some(2)), Presence::Online),
            (spec("b", &[], None), Presence::Away),
            (spec_on("c", &["shop"], &[], None), Presence::Online),
            (spec("idle", &["sales"], None), Presence::Online),
        ],
        conversations: vec![
            restored("q2", "sales", 0, 20, None),
            restored("q1", "sales", 0, 10, None),
            restored("q-high", "sales", 5, 30, None),
            restored("held-a", "sales", 0, 5, Some("a")),
            restored("held-b", "", 0, 6, Some("b")),
            restored("of-ghost", "", 0, 7, Some("ghost")),
            restored("of-retired", "", 0, 8, Some("r")),
            restored("off-site", "", 0, 9, Some("c")),
        ],
    };
    let effects = router.restore(restore, 1_000);
    (router, effects)
}

#[test]
fn restore_gives_held_chats_back_to_their_agents_in_grace() {
    let (router, effects) = restored_router();
    assert!(assignments(&effects).is_empty(), "{effects:?}");
    assert_eq!(state(&router, "held-a"), assigned_to("a"));
    assert_eq!(state(&router, "held-b"), assigned_to("b"));
    let a = router.agent("a").expect("restored");
    assert_eq!(
        (a.presence, a.disconnected_since, a.sockets, a.load),
        (Presence::Online, Some(1_000), 0, 1)
    );
    let b = router.agent("b").expect("restored");
    assert_eq!(
        (b.presence, b.disconnected_since, b.load),
        (Presence::Away, Some(1_000), 1)
    );
    // Agents without chats stay Offline, with no grace period.
    let idle = router.agent("idle").expect("restored");
    assert_eq!(
        (idle.presence, idle.disconnected_since),
        (Presence::Offline, None)
    );
    let mut changes = presence_changes(&effects);
    changes.sort_by(|left, right| left.0.cmp(&right.0));
    assert_eq!(
        changes,
        [
            ("a".to_owned(), Presence::Online),
            ("b".to_owned(), Presence::Away)
        ]
    );
}

#[test]
fn restore_queues_the_rest_in_the_order_they_joined() {
    let (router, _) = restored_router();
    assert_eq!(queue_order(&router, "sales"), ["q-high", "q1", "q2"]);
    // Chats of an unknown, a retired and an off-site agent wait in their queue.
    assert_eq!(
        queue_order(&router, ""),
        ["of-ghost", "of-retired", "off-site"]
    );
    let since: Vec<u64> = router
        .queue_snapshot(Some(SITE))
        .iter()
        .map(|chat| chat.waiting_since)
        .collect();
    // Queues in department order: "" first, then "sales".
    assert_eq!(since, [7, 8, 9, 30, 10, 20]);
    assert!(
        router
            .queue_snapshot(None)
            .iter()
            .all(|chat| !chat.requeued_to_front)
    );
}

#[test]
fn restore_starts_response_clocks_of_queued_chats_only() {
    let (mut router, _) = restored_router();
    assert!(router.tick(30_999).is_empty());
    let mut breached: Vec<String> = router
        .tick(31_000)
        .into_iter()
        .filter_map(|effect| match effect {
            Effect::SlaBreached { conversation, .. } => Some(conversation),
            _ => None,
        })
        .collect();
    breached.sort();
    assert_eq!(
        breached,
        ["of-ghost", "of-retired", "off-site", "q-high", "q1", "q2"]
    );
}

#[test]
fn after_restore_agents_keep_their_chats_only_if_they_come_back_in_time() {
    let (mut router, _) = restored_router();
    // a comes back: keeps held-a and gets the best waiting sales chat for the free seat.
    let effects = router.agent_connected("a", SOCKET, 40_000).expect("known");
    assert!(presence_changes(&effects).is_empty(), "{effects:?}");
    assert_eq!(assignments(&effects), pairs(&[("q-high", "a")]));
    assert_eq!(state(&router, "held-a"), assigned_to("a"));
    // b does not: held-b goes to the front of its queue when the grace period ends.
    let effects = router.tick(61_000);
    assert!(effects.contains(&Effect::AgentOffline { agent: "b".into() }));
    assert_eq!(
        requeues(&effects),
        [(
            "held-b".to_owned(),
            Some("b".to_owned()),
            RequeueReason::GraceExpired
        )]
    );
    // Front of its priority class: the chats that waited since the restore breached
    // their response target at 31_000 and went up by the boost.
    assert_eq!(
        queue_order(&router, ""),
        ["of-ghost", "of-retired", "off-site", "held-b"]
    );
    assert!(router.queue_snapshot(Some(SITE))[3].requeued_to_front);
}

#[test]
fn restore_skips_conversations_already_known() {
    let mut router = Router::new(config());
    router.start_bot_conversation("c1", SITE);
    router.restore(
        Restore {
            agents: Vec::new(),
            conversations: vec![restored("c1", "", 0, 0, None)],
        },
        10,
    );
    assert_eq!(state(&router, "c1"), Some(ConversationState::Bot));
}
