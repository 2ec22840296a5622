use super::*;
use crate::i18n::Key;
use crate::wire::Summary;

const CONV: &str = "c_1";

fn state() -> State {
    State::new(
        "pk_test".into(),
        Locale::En,
        SiteSettings::default(),
        Stored::default(),
    )
}

fn summary(id: &str, _last_seq: u64, updated_at: i64) -> Summary {
    Summary {
        id: id.into(),
        state: ConversationState::Assigned,
        updated_at,
    }
}

fn welcome(conversations: Vec<Summary>) -> Incoming {
    Incoming::Welcome {
        token: Some("v_1.sig".into()),
        conversations,
        max_text_chars: Some(4000),
        team: None,
    }
}

fn frame(state: &mut State, frame: Incoming) -> Vec<Effect> {
    state.update(Msg::Frame { frame, now: 1_000 })
}

fn agent_message(seq: u64, text: &str) -> Incoming {
    Incoming::Message(Line {
        conversation: CONV.into(),
        seq,
        kind: MessageKind::Text,
        author: AuthorKind::Agent,
        name: Some("Sara".into()),
        text: text.into(),
        at: 5,
        client_id: None,
        quick_replies: Vec::new(),
        event: None,
    })
}

fn visitor_message(seq: u64, client_id: &str, text: &str) -> Incoming {
    Incoming::Message(Line {
        conversation: CONV.into(),
        seq,
        kind: MessageKind::Text,
        author: AuthorKind::Visitor,
        name: None,
        text: text.into(),
        at: 5,
        client_id: Some(client_id.into()),
        quick_replies: Vec::new(),
        event: None,
    })
}

fn ack(client_id: &str, seq: u64) -> Incoming {
    Incoming::Ack {
        client_id: client_id.into(),
        conversation: CONV.into(),
        seq,
    }
}

fn online() -> State {
    let mut state = state();
    state.update(Msg::SocketOpen {
        page: Page::default(),
    });
    frame(&mut state, welcome(vec![summary(CONV, 0, 1)]));
    frame(&mut state, Incoming::Resumed { last_seq: 0 });
    state
}

fn texts(state: &State) -> Vec<(u64, String)> {
    state
        .lines
        .iter()
        .map(|line| (line.seq, line.text.clone()))
        .collect()
}

fn sends(effects: &[Effect]) -> Vec<(String, Option<String>)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Frame(Outgoing::Send {
                client_id,
                conversation,
                ..
            }) => Some((client_id.clone(), conversation.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn backoff_grows_caps_and_jitters() {
    assert_eq!(backoff_delay(0, 0.0), 250);
    assert_eq!(backoff_delay(0, 1.0), 500);
    assert_eq!(backoff_delay(3, 0.0), 2_000);
    assert_eq!(backoff_delay(3, 0.5), 3_000);
    assert_eq!(backoff_delay(20, 1.0), BACKOFF_CAP_MS);
    assert_eq!(backoff_delay(u32::MAX, 0.0), BACKOFF_CAP_MS / 2);
    // Out-of-range randomness is clamped, never a panic or an overflow.
    assert_eq!(backoff_delay(1, 7.0), 1_000);
    assert_eq!(backoff_delay(1, -1.0), 500);
}

#[test]
fn reconnects_back_off_and_reset_on_welcome() {
    let mut state = online();
    let delays: Vec<_> = (0..4)
        .flat_map(|_| state.update(Msg::SocketClosed { random: 1.0 }))
        .collect();
    assert_eq!(
        delays,
        [500, 1_000, 2_000, 4_000].map(|after_ms| Effect::Reconnect { after_ms })
    );
    assert_eq!(state.connection, Connection::Reconnecting);
    frame(&mut state, welcome(vec![summary(CONV, 0, 1)]));
    assert_eq!(state.connection, Connection::Online);
    assert_eq!(
        state.update(Msg::SocketClosed { random: 1.0 }),
        [Effect::Reconnect { after_ms: 500 }]
    );
}

#[test]
fn hello_carries_the_token_and_locale() {
    let mut state = State::new(
        "pk_test".into(),
        Locale::Fa,
        SiteSettings::default(),
        Stored {
            token: Some("v_9.sig".into()),
            ..Stored::default()
        },
    );
    let effects = state.update(Msg::SocketOpen {
        page: Page::default(),
    });
    assert_eq!(
        effects,
        [Effect::Frame(Outgoing::Hello {
            site: "pk_test".into(),
            token: Some("v_9.sig".into()),
            locale: "fa".into(),
            page: Page::default(),
        })]
    );
}

#[test]
fn lines_are_ordered_by_seq_and_deduplicated() {
    let mut state = online();
    for seq in [3, 1, 2, 3, 1] {
        frame(&mut state, agent_message(seq, &format!("m{seq}")));
    }
    assert_eq!(
        texts(&state),
        [(1, "m1".into()), (2, "m2".into()), (3, "m3".into())]
    );
    assert_eq!(state.last_seq, 3);
}

#[test]
fn own_message_is_pending_then_committed_once() {
    let mut state = online();
    let effects = state.update(Msg::Send {
        text: "  hello  ".into(),
        client_id: "k1".into(),
    });
    assert_eq!(sends(&effects), [("k1".into(), Some(CONV.into()))]);
    assert_eq!(state.outbox.len(), 1);
    assert_eq!(state.outbox[0].text, "hello");
    // The relayed message and the ack, in either order, make one line.
    frame(&mut state, visitor_message(1, "k1", "hello"));
    frame(&mut state, ack("k1", 1));
    assert!(state.outbox.is_empty());
    assert_eq!(texts(&state), [(1, "hello".into())]);

    let mut state = online();
    state.update(Msg::Send {
        text: "hi".into(),
        client_id: "k2".into(),
    });
    frame(&mut state, ack("k2", 4));
    frame(&mut state, visitor_message(4, "k2", "hi"));
    assert_eq!(texts(&state), [(4, "hi".into())]);
}

#[test]
fn empty_and_overlong_texts_are_not_sent() {
    let mut state = online();
    assert!(
        state
            .update(Msg::Send {
                text: " \n ".into(),
                client_id: "k".into()
            })
            .is_empty()
    );
    assert!(
        state
            .update(Msg::Send {
                text: "x".repeat(4001),
                client_id: "k".into()
            })
            .is_empty()
    );
    assert!(state.outbox.is_empty());
}

#[test]
fn offline_messages_wait_and_keep_their_client_id() {
    let mut state = online();
    state.update(Msg::SocketClosed { random: 0.0 });
    let effects = state.update(Msg::Send {
        text: "typed offline".into(),
        client_id: "k1".into(),
    });
    assert!(sends(&effects).is_empty());
    // It survives a reload.
    let stored = Stored::parse(&state.stored().to_text());
    assert_eq!(stored, state.stored());
    let mut state = State::new(
        "pk_test".into(),
        Locale::En,
        SiteSettings::default(),
        stored,
    );
    state.update(Msg::SocketOpen {
        page: Page::default(),
    });
    let effects = frame(&mut state, welcome(vec![summary(CONV, 0, 1)]));
    assert_eq!(sends(&effects), [("k1".into(), Some(CONV.into()))]);
    // Sent but not acknowledged when the socket drops: resent with the same id.
    state.update(Msg::SocketClosed { random: 0.0 });
    let effects = frame(&mut state, welcome(vec![summary(CONV, 0, 1)]));
    assert_eq!(sends(&effects), [("k1".into(), Some(CONV.into()))]);
    frame(
        &mut state,
        Incoming::Ack {
            client_id: "k1".into(),
            conversation: CONV.into(),
            seq: 1,
        },
    );
    assert!(state.outbox.is_empty());
    assert_eq!(texts(&state), [(1, "typed offline".into())]);
}

#[test]
fn welcome_resumes_after_the_last_seq_seen() {
    let mut state = online();
    frame(&mut state, agent_message(1, "a"));
    frame(&mut state, agent_message(2, "b"));
    state.update(Msg::SocketClosed { random: 0.0 });
    let effects = frame(&mut state, welcome(vec![summary(CONV, 5, 1)]));
    assert!(effects.contains(&Effect::Frame(Outgoing::Resume {
        conversation: CONV.into(),
        after: 2,
    })));
    // A replay that overlaps what we have adds only the new lines.
    for seq in 1..=4 {
        frame(&mut state, agent_message(seq, &format!("m{seq}")));
    }
    assert_eq!(
        texts(&state),
        [
            (1, "a".into()),
            (2, "b".into()),
            (3, "m3".into()),
            (4, "m4".into())
        ]
    );
}

#[test]
fn a_conversation_gone_from_welcome_is_dropped() {
    let mut state = online();
    frame(&mut state, agent_message(1, "a"));
    state.update(Msg::SocketClosed { random: 0.0 });
    let effects = frame(&mut state, welcome(vec![]));
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::Frame(Outgoing::Resume { .. })))
    );
    assert!(state.lines.is_empty());
    assert_eq!(state.conversation, None);
}

#[test]
fn another_tabs_conversation_is_adopted_from_the_start() {
    let mut state = state();
    state.update(Msg::SocketOpen {
        page: Page::default(),
    });
    let effects = frame(
        &mut state,
        welcome(vec![summary("c_old", 3, 1), summary("c_new", 2, 9)]),
    );
    assert!(effects.contains(&Effect::Frame(Outgoing::Resume {
        conversation: "c_new".into(),
        after: 0,
    })));
}

#[test]
fn closing_shows_the_rating_once() {
    let mut state = online();
    frame(
        &mut state,
        Incoming::State {
            conversation: CONV.into(),
            state: ConversationState::Closed,
        },
    );
    assert_eq!(state.visible_form(), Some(Form::Rating));
    let effects = state.update(Msg::SubmitRating {
        score: 9,
        comment: " great ".into(),
    });
    assert_eq!(
        effects,
        [Effect::Frame(Outgoing::Rate {
            conversation: CONV.into(),
            score: 5,
            comment: Some("great".into()),
        })]
    );
    assert_eq!(state.visible_form(), Some(Form::RatingThanks));
    frame(
        &mut state,
        Incoming::Form {
            conversation: CONV.into(),
            form: FormKind::Rating,
        },
    );
    assert_eq!(state.visible_form(), Some(Form::RatingThanks));
    // A new message after the close starts a new conversation.
    let effects = state.update(Msg::Send {
        text: "again".into(),
        client_id: "k9".into(),
    });
    assert_eq!(sends(&effects), [("k9".into(), None)]);
    assert_eq!(state.visible_form(), None);
}

#[test]
fn contact_form_needs_email_or_phone() {
    let mut state = online();
    frame(
        &mut state,
        Incoming::Form {
            conversation: CONV.into(),
            form: FormKind::Contact,
        },
    );
    assert_eq!(state.visible_form(), Some(Form::Contact));
    let none = state.update(Msg::SubmitContact {
        name: "Ali".into(),
        email: " ".into(),
        phone: String::new(),
        message: "call me".into(),
    });
    assert!(none.is_empty());
    assert!(state.form_error);
    let effects = state.update(Msg::SubmitContact {
        name: "Ali".into(),
        email: String::new(),
        phone: "+98 912".into(),
        message: "call me".into(),
    });
    assert_eq!(
        effects,
        [Effect::Frame(Outgoing::Contact {
            conversation: Some(CONV.into()),
            name: Some("Ali".into()),
            email: None,
            phone: Some("+98 912".into()),
            message: Some("call me".into()),
        })]
    );
    assert_eq!(state.visible_form(), Some(Form::ContactThanks));
}

#[test]
fn prechat_shows_until_submitted_and_identify_waits_for_a_connection() {
    let settings = SiteSettings {
        prechat: true,
        ..SiteSettings::default()
    };
    let mut state = State::new("pk".into(), Locale::Ar, settings, Stored::default());
    assert_eq!(state.visible_form(), Some(Form::Prechat));
    let queued = state.update(Msg::Identify {
        token: "a.b.c".into(),
        name: None,
        email: None,
    });
    assert!(queued.is_empty());
    state.update(Msg::SubmitPrechat {
        name: "Mona".into(),
        email: "m@example.com".into(),
    });
    assert_eq!(state.visible_form(), None);
    state.update(Msg::SocketOpen {
        page: Page::default(),
    });
    let effects = frame(&mut state, welcome(vec![]));
    assert!(matches!(
        effects.as_slice(),
        [
            Effect::Frame(Outgoing::Identify { .. }),
            Effect::Frame(Outgoing::Contact { .. })
        ]
    ));
}

#[test]
fn unread_counts_while_closed_and_clears_on_open() {
    let mut state = online();
    let effects = frame(&mut state, agent_message(1, "hi"));
    assert!(effects.contains(&Effect::Notify));
    assert!(effects.contains(&Effect::Emit(ApiEvent::Unread(1))));
    frame(&mut state, agent_message(2, "there"));
    assert_eq!(state.unread, 2);
    let effects = state.update(Msg::Open);
    assert_eq!(state.unread, 0);
    assert!(effects.contains(&Effect::FocusPanel));
    assert!(effects.contains(&Effect::Frame(Outgoing::Seen {
        conversation: CONV.into(),
        seq: 2
    })));
    let effects = frame(&mut state, agent_message(3, "open now"));
    assert!(!effects.contains(&Effect::Notify));
    assert_eq!(
        state.update(Msg::Close),
        [Effect::Emit(ApiEvent::Close), Effect::FocusLauncher]
    );
}

#[test]
fn queue_typing_and_quick_replies() {
    let mut state = online();
    frame(
        &mut state,
        Incoming::Queue {
            conversation: CONV.into(),
            position: 2,
            wait_secs: 90,
            agents_online: true,
            offer_callback: false,
        },
    );
    assert_eq!(state.queue, Some((2, 90)));
    frame(
        &mut state,
        Incoming::Typing {
            author: AuthorKind::Agent,
            name: Some("Sara".into()),
            typing: true,
        },
    );
    assert_eq!(state.typing_name(), Some("Sara"));
    state.update(Msg::Tick {
        now: 1_000 + TYPING_TTL_MS,
    });
    assert_eq!(state.typing_name(), None);
    frame(
        &mut state,
        Incoming::Message(Line {
            conversation: CONV.into(),
            seq: 1,
            kind: MessageKind::Text,
            author: AuthorKind::Bot,
            name: None,
            text: "Track it under My orders.".into(),
            at: 1,
            client_id: None,
            quick_replies: vec![crate::wire::QuickReply {
                label: "Talk to a person".into(),
                payload: "Talk to a person".into(),
            }],
            event: None,
        }),
    );
    assert_eq!(state.quick_replies().len(), 1);
    frame(
        &mut state,
        Incoming::State {
            conversation: CONV.into(),
            state: ConversationState::Assigned,
        },
    );
    assert_eq!(state.queue, None);
}

#[test]
fn rejected_messages_fail_and_rate_limited_ones_are_resent() {
    let mut state = online();
    state.update(Msg::Send {
        text: "a".into(),
        client_id: "k1".into(),
    });
    state.update(Msg::Send {
        text: "b".into(),
        client_id: "k2".into(),
    });
    let error = |code, client_id: &str| Incoming::Error {
        code: Some(code),
        client_id: Some(client_id.into()),
    };
    frame(&mut state, error(ErrorCode::TextTooLong, "k1"));
    frame(&mut state, error(ErrorCode::RateLimited, "k2"));
    assert!(state.outbox[0].failed);
    let effects = state.update(Msg::Tick {
        now: RESEND_AFTER_MS,
    });
    assert_eq!(sends(&effects), [("k2".into(), Some(CONV.into()))]);
}

#[test]
fn settings_mirror_the_side_for_rtl() {
    let mut settings = SiteSettings::default();
    assert!(!settings.left(Locale::En));
    assert!(settings.left(Locale::Ar));
    settings.position = Some("left".into());
    assert!(settings.left(Locale::En));
    assert!(!settings.left(Locale::Fa));
    settings.greeting.push(("en".into(), "Hi!".into()));
    settings.greeting.push(("ar".into(), "مرحبا".into()));
    assert_eq!(settings.greeting(Locale::Ar), Some("مرحبا"));
    assert_eq!(settings.greeting(Locale::Fa), Some("Hi!"));
    let parsed = SiteSettings::parse(
        r##"{"key":"pk_1","name":"Demo Store","color":"#0f766e","position":"left","locale":null,"greeting":{"en":"Hello"},"logo":null,"business_hours":{"timezone":"UTC","days":[]},"prechat":true,"agents_online":false}"##,
    );
    assert!(parsed.prechat && !parsed.agents_online);
    assert_eq!(parsed.greeting(Locale::Fa), Some("Hello"));
    assert_eq!(parsed.position.as_deref(), Some("left"));
    assert_eq!(SiteSettings::parse("garbage"), SiteSettings::default());
}

#[test]
fn only_a_refused_hello_drops_the_token() {
    let refused = Incoming::Error {
        code: Some(ErrorCode::Unauthorized),
        client_id: None,
    };
    // A badly signed `identify` after `welcome` changes nothing.
    let mut state = online();
    frame(&mut state, agent_message(1, "hi"));
    frame(&mut state, refused.clone());
    assert_eq!(state.token.as_deref(), Some("v_1.sig"));
    assert_eq!(texts(&state).len(), 1);
    // A token refused at `hello` is dropped: the next connection starts afresh.
    state.update(Msg::SocketClosed { random: 0.0 });
    state.update(Msg::SocketOpen {
        page: Page::default(),
    });
    frame(&mut state, refused);
    assert_eq!(state.token, None);
    assert!(state.lines.is_empty());
}

#[test]
fn history_replayed_from_the_start_is_not_unread() {
    let mut state = state();
    state.update(Msg::SocketOpen {
        page: Page::default(),
    });
    // A conversation this page has no lines of (started in another browser tab).
    frame(&mut state, welcome(vec![summary(CONV, 2, 1)]));
    let effects = frame(&mut state, agent_message(1, "old news"));
    assert!(!effects.contains(&Effect::Notify));
    frame(&mut state, Incoming::Resumed { last_seq: 1 });
    let effects = frame(&mut state, agent_message(2, "news"));
    assert!(effects.contains(&Effect::Notify));
    assert_eq!(state.unread, 1);
}

#[test]
fn reset_forgets_the_visitor_and_greets_as_a_new_one() {
    let settings = SiteSettings {
        prechat: true,
        ..SiteSettings::default()
    };
    let mut state = State::new("pk".into(), Locale::Ar, settings.clone(), Stored::default());
    state.update(Msg::SocketOpen {
        page: Page::default(),
    });
    frame(&mut state, welcome(vec![summary(CONV, 0, 1)]));
    frame(&mut state, Incoming::Resumed { last_seq: 0 });
    state.update(Msg::SubmitPrechat {
        name: "Mona".into(),
        email: String::new(),
    });
    frame(&mut state, agent_message(1, "hello Mona"));
    frame(&mut state, agent_message(2, "your order shipped"));
    frame(
        &mut state,
        Incoming::State {
            conversation: CONV.into(),
            state: ConversationState::Closed,
        },
    );
    // Offline, with a message and an identity waiting for the connection.
    state.update(Msg::SocketClosed { random: 0.0 });
    state.update(Msg::Send {
        text: "one more thing".into(),
        client_id: "w1".into(),
    });
    state.update(Msg::Identify {
        token: "a.b.c".into(),
        name: Some("Mona".into()),
        email: None,
    });
    assert_eq!(state.unread, 2);

    let effects = state.update(Msg::Reset);
    assert_eq!(
        effects,
        [Effect::Emit(ApiEvent::Unread(0)), Effect::Restart]
    );
    assert_eq!(state.stored(), Stored::default());
    assert_eq!(state.unread, 0);
    assert_eq!(state.connection, Connection::Connecting);
    assert_eq!(state.conversation_state, None);
    assert_eq!(state.form, None);
    // A new visitor is asked the pre-chat questions again; the page's choices stay.
    assert_eq!(state.visible_form(), Some(Form::Prechat));
    assert_eq!(
        (state.locale, state.settings.clone()),
        (Locale::Ar, settings)
    );

    // The next connection greets without a token and sends nothing of the old visitor.
    let effects = state.update(Msg::SocketOpen {
        page: Page::default(),
    });
    assert!(matches!(
        effects.as_slice(),
        [Effect::Frame(Outgoing::Hello { token: None, .. })]
    ));
    let effects = frame(
        &mut state,
        Incoming::Welcome {
            token: Some("v_2.sig".into()),
            conversations: Vec::new(),
            max_text_chars: Some(4000),
            team: None,
        },
    );
    assert!(effects.is_empty(), "{effects:?}");
    // Their first message starts a new conversation.
    let effects = state.update(Msg::Send {
        text: "hi".into(),
        client_id: "w2".into(),
    });
    assert_eq!(sends(&effects), [("w2".to_owned(), None)]);
    assert_eq!(state.token.as_deref(), Some("v_2.sig"));
}

#[test]
fn reset_keeps_the_panel_open_and_the_hubs_limit() {
    let mut state = online();
    frame(
        &mut state,
        Incoming::Welcome {
            token: None,
            conversations: vec![summary(CONV, 0, 1)],
            max_text_chars: Some(10),
            team: None,
        },
    );
    state.update(Msg::Open);
    // Nothing unread: no `unread` event, only the restart.
    assert_eq!(state.update(Msg::Reset), [Effect::Restart]);
    assert!(state.open);
    assert_eq!(state.token, None);
    let overlong = state.update(Msg::Send {
        text: "eleven char".into(),
        client_id: "w1".into(),
    });
    assert!(overlong.is_empty() && state.outbox.is_empty());
}

fn queue(position: u32, wait_secs: u64, agents_online: bool, offer_callback: bool) -> Incoming {
    Incoming::Queue {
        conversation: CONV.into(),
        position,
        wait_secs,
        agents_online,
        offer_callback,
    }
}

fn set_state(state: &mut State, to: ConversationState) {
    frame(
        state,
        Incoming::State {
            conversation: CONV.into(),
            state: to,
        },
    );
}

#[test]
fn origin_not_allowed_is_terminal() {
    let mut state = online();
    state.update(Msg::Send {
        text: "hello".into(),
        client_id: "k1".into(),
    });
    frame(&mut state, Incoming::OriginNotAllowed);
    assert_eq!(state.connection, Connection::NotAllowed);
    assert_eq!(state.banner(), Banner::NotHere);
    assert_eq!(state.status(), (Key::Unavailable, "st off"));
    assert!(!state.can_write() && !state.show_talk());
    // What was waiting says "Not sent" rather than "Sending…" forever.
    assert!(state.outbox[0].failed);
    // The hub closes the socket (1008): no reconnect loop.
    assert!(state.update(Msg::SocketClosed { random: 0.5 }).is_empty());
    assert_eq!(state.connection, Connection::NotAllowed);
}

#[test]
fn one_truthful_state_when_nobody_can_answer() {
    let mut state = online();
    set_state(&mut state, ConversationState::Queued);
    // Agents online: the queue, and the header says online.
    frame(&mut state, queue(1, 300, true, false));
    assert_eq!(
        state.banner(),
        Banner::Queue {
            position: 1,
            wait_secs: 300,
            callback: false
        }
    );
    assert_eq!(state.status().0, Key::Online);
    // A long wait: the hub offers a callback beside the queue.
    frame(&mut state, queue(4, 1_800, true, true));
    assert_eq!(
        state.banner(),
        Banner::Queue {
            position: 4,
            wait_secs: 1_800,
            callback: true
        }
    );
    // Nobody online: offline, no queue position, and never "Online" in the header.
    frame(&mut state, queue(1, 300, false, true));
    assert_eq!(state.banner(), Banner::Offline);
    assert_eq!(state.status(), (Key::Offline, "st aw"));
    // `welcome`'s team wins over the site settings fetched before it.
    let mut state = State::new(
        "pk_test".into(),
        Locale::En,
        SiteSettings::default(),
        Stored::default(),
    );
    assert!(state.team_online());
    frame(
        &mut state,
        Incoming::Welcome {
            token: None,
            conversations: Vec::new(),
            max_text_chars: None,
            team: Some(false),
        },
    );
    assert_eq!(state.banner(), Banner::Offline);
    assert_eq!(state.status().0, Key::Offline);
}

#[test]
fn talk_to_a_person_shows_once_and_only_before_the_handoff() {
    assert!(state().show_talk(), "before the first message");
    let mut state = online();
    set_state(&mut state, ConversationState::Bot);
    assert!(state.show_talk());
    // The bot offers the same as a quick reply: the panel's button steps aside.
    frame(
        &mut state,
        Incoming::Message(Line {
            conversation: CONV.into(),
            seq: 1,
            kind: MessageKind::Text,
            author: AuthorKind::Bot,
            name: None,
            text: "Can I help?".into(),
            at: 1,
            client_id: None,
            quick_replies: vec![crate::wire::QuickReply {
                label: "Talk to a person".into(),
                payload: "human".into(),
            }],
            event: None,
        }),
    );
    assert!(!state.show_talk());
    set_state(&mut state, ConversationState::Queued);
    frame(&mut state, agent_message(2, "next"));
    assert!(!state.show_talk(), "after the handoff");
    set_state(&mut state, ConversationState::Assigned);
    assert!(!state.show_talk(), "once an agent joined");
}

#[test]
fn a_returning_visitor_sees_the_closed_conversation_read_only() {
    let closed = |id: &str| Summary {
        id: id.into(),
        state: ConversationState::Closed,
        updated_at: 9,
    };
    let mut state = state();
    state.update(Msg::SocketOpen {
        page: Page::default(),
    });
    let effects = frame(&mut state, welcome(vec![closed(CONV)]));
    assert!(effects.contains(&Effect::Frame(Outgoing::Resume {
        conversation: CONV.into(),
        after: 0
    })));
    frame(&mut state, agent_message(1, "Bye!"));
    assert!(state.read_only && !state.can_write());
    assert_eq!(state.banner(), Banner::Ended);
    assert_eq!(texts(&state), [(1, "Bye!".to_owned())]);
    // "Start a new conversation": empty, writable, and the old one stays left.
    state.update(Msg::StartNew);
    assert!(state.lines.is_empty() && state.can_write());
    assert_eq!(state.banner(), Banner::None);
    let stored = Stored::parse(&state.stored().to_text());
    assert_eq!(stored.left.as_deref(), Some(CONV));
    assert_eq!(stored.conversation, None);
    let mut again = State::new(
        "pk_test".into(),
        Locale::En,
        SiteSettings::default(),
        stored,
    );
    again.update(Msg::SocketOpen {
        page: Page::default(),
    });
    let effects = frame(&mut again, welcome(vec![closed(CONV)]));
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::Frame(Outgoing::Resume { .. }))),
        "{effects:?}"
    );
    assert!(!again.read_only && again.conversation.is_none());
    // Sending from a read-only conversation (`Salam.send`) starts a new one.
    let mut fresh = self::state();
    fresh.update(Msg::SocketOpen {
        page: Page::default(),
    });
    frame(&mut fresh, welcome(vec![closed(CONV)]));
    let effects = fresh.update(Msg::Send {
        text: "again".into(),
        client_id: "k9".into(),
    });
    assert_eq!(sends(&effects), [("k9".into(), None)]);
    assert!(!fresh.read_only);
}

#[test]
fn event_lines_keep_their_code_in_storage() {
    let mut state = online();
    frame(
        &mut state,
        Incoming::Message(Line {
            conversation: CONV.into(),
            seq: 1,
            kind: MessageKind::Event,
            author: AuthorKind::System,
            name: None,
            text: "Sara joined the conversation".into(),
            at: 1,
            client_id: None,
            quick_replies: Vec::new(),
            event: Some(crate::wire::Event {
                code: "joined".into(),
                params: vec![("agent".into(), "Sara".into())],
            }),
        }),
    );
    let stored = Stored::parse(&state.stored().to_text());
    let event = stored.lines[0].event.as_ref().expect("event kept");
    assert_eq!(
        Locale::Ar.event(&event.code, &event.params).as_deref(),
        Some("انضم Sara إلى المحادثة")
    );
}
