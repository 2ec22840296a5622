//! Messages both ways, resends, resume, notes.

use salam_e2e::TestHub;
use salam_protocol::{AuthorKind, MessageKind, ServerFrame};
use serde_json::json;
use std::time::Duration;

fn is_message(frame: &ServerFrame) -> bool {
    matches!(frame, ServerFrame::Message(_))
}

fn is_ack(frame: &ServerFrame) -> bool {
    matches!(frame, ServerFrame::Ack { .. })
}

fn ack_seq(frame: &ServerFrame) -> u64 {
    match frame {
        ServerFrame::Ack { seq, .. } => *seq,
        _ => 0,
    }
}

#[tokio::test]
async fn visitor_to_agent_to_visitor() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let mut agent = hub.admin_agent().await?;
    let mut visitor = hub.visitor(None).await?;
    visitor
        .send_json(&json!({"type": "send", "client_id": "m1", "text": "مرحبا، where is my order?"}))
        .await?;
    let ack = visitor.recv().await?;
    let ServerFrame::Ack {
        conversation,
        seq,
        duplicate,
        ..
    } = ack
    else {
        panic!("expected ack, got {ack:?}");
    };
    assert_eq!((seq, duplicate), (1, false));
    // The sender's own connection has the ack; it is not sent the message again.
    // The agent (assigned, and watching) gets the message.
    agent.watch(&conversation, 0).await?;
    let (frame, _) = agent
        .recv_until(
            |f| matches!(f, ServerFrame::Message(m) if m.author.kind == AuthorKind::Visitor),
        )
        .await?;
    let ServerFrame::Message(received) = frame else {
        unreachable!()
    };
    assert_eq!(received.conversation, conversation);
    assert_eq!(received.text, "مرحبا، where is my order?");
    assert_eq!(received.author.kind, AuthorKind::Visitor);

    // A note never reaches the visitor; the reply does, right after the note's seq.
    let own_echo = |frames: &[ServerFrame]| {
        frames
            .iter()
            .any(|f| matches!(f, ServerFrame::Message(m) if m.client_id.as_deref() == Some("m1")))
    };
    agent
        .send_json(&json!({"type": "send", "conversation": conversation, "client_id": "n1", "text": "VIP customer", "note": true}))
        .await?;
    let (note_ack, _) = agent
        .recv_until(|f| matches!(f, ServerFrame::Ack { client_id, .. } if client_id == "n1"))
        .await?;
    let note_seq = ack_seq(&note_ack);
    agent
        .send_json(&json!({"type": "send", "conversation": conversation, "client_id": "r1", "text": "It ships today."}))
        .await?;
    let (frame, before) = visitor
        .recv_until(|f| matches!(f, ServerFrame::Message(m) if m.author.kind == AuthorKind::Agent))
        .await?;
    let ServerFrame::Message(reply) = frame else {
        unreachable!()
    };
    assert_eq!(reply.text, "It ships today.");
    assert!(reply.seq > note_seq);
    assert!(
        !before
            .iter()
            .any(|f| matches!(f, ServerFrame::Message(m) if m.kind == MessageKind::Note)),
        "the visitor received a note"
    );
    assert!(!own_echo(&before), "the sender got its own message back");
    // The agent's other console gets the note (replayed when it opens the
    // conversation); the sending connection had only the ack.
    let mut other_tab = hub.admin_agent().await?;
    other_tab.watch(&conversation, 0).await?;
    let (frame, _) = other_tab
        .recv_until(|f| matches!(f, ServerFrame::Message(m) if m.seq == note_seq))
        .await?;
    assert!(matches!(frame, ServerFrame::Message(m) if m.kind == MessageKind::Note));

    // Typing reaches the other side.
    visitor
        .send_json(&json!({"type": "typing", "conversation": conversation, "typing": true}))
        .await?;
    let (typing, _) = agent
        .recv_until(|f| matches!(f, ServerFrame::Typing { .. }))
        .await?;
    assert!(matches!(typing, ServerFrame::Typing { typing: true, .. }));
    Ok(())
}

#[tokio::test]
async fn a_resend_returns_the_original_ack_and_is_not_delivered_twice() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let mut agent = hub.admin_agent().await?;
    let mut visitor = hub.visitor(None).await?;
    let send = json!({"type": "send", "client_id": "same", "text": "hello"});
    visitor.send_json(&send).await?;
    let first = visitor.recv().await?;
    visitor.send_json(&send).await?;
    let (second, _) = visitor.recv_until(is_ack).await?;
    let (
        ServerFrame::Ack {
            conversation,
            seq: seq1,
            duplicate: d1,
            ..
        },
        ServerFrame::Ack {
            seq: seq2,
            duplicate: d2,
            ..
        },
    ) = (first, second)
    else {
        panic!("expected two acks");
    };
    assert_eq!((seq1, d1, seq2, d2), (1, false, 1, true));
    agent.watch(&conversation, 0).await?;
    let (frame, _) = agent
        .recv_until(|f| matches!(f, ServerFrame::Message(m) if m.seq == 1))
        .await?;
    assert!(matches!(frame, ServerFrame::Message(m) if m.client_id.as_deref() == Some("same")));
    // Over the next moments the agent never gets the resent message again.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Ok(frame) = tokio::time::timeout_at(deadline, agent.recv()).await {
        if let ServerFrame::Message(m) = frame? {
            assert_ne!(m.client_id.as_deref(), Some("same"), "delivered twice");
        }
    }
    let stored = hub
        .state
        .store
        .messages_after(&conversation, 0, 100)
        .await?;
    let copies = stored
        .iter()
        .filter(|m| m.client_id.as_deref() == Some("same"))
        .count();
    assert_eq!(copies, 1, "the resend stored nothing");
    Ok(())
}

#[tokio::test]
async fn resume_after_a_dropped_socket_has_no_gap_and_no_duplicate() -> anyhow::Result<()> {
    let hub = TestHub::start().await?;
    let mut agent = hub.admin_agent().await?;
    let mut visitor = hub.visitor(None).await?;
    let token = visitor.token.clone().expect("token");
    visitor
        .send_json(&json!({"type": "send", "client_id": "a", "text": "one"}))
        .await?;
    let first_ack = visitor.recv().await?;
    let ServerFrame::Ack {
        conversation,
        seq: first,
        ..
    } = first_ack
    else {
        panic!("no ack")
    };
    visitor.recv_until(is_message).await?;
    // The socket drops; the agent writes twice meanwhile.
    drop(visitor);
    let mut last = 0;
    for (index, text) in ["two", "three"].iter().enumerate() {
        agent
            .send_json(&json!({"type": "send", "conversation": conversation, "client_id": format!("r{index}"), "text": text}))
            .await?;
        let (ack, _) = agent.recv_until(is_ack).await?;
        last = ack_seq(&ack);
    }

    let mut visitor = hub.visitor(Some(&token)).await?;
    let Some(ServerFrame::Welcome { conversations, .. }) = &visitor.welcome else {
        panic!()
    };
    assert_eq!(conversations.len(), 1, "the open conversation is listed");
    assert_eq!(conversations[0].last_seq, last);
    visitor
        .send_json(&json!({"type": "resume", "conversation": conversation, "after": first}))
        .await?;
    let (resumed, replayed) = visitor
        .recv_until(|f| matches!(f, ServerFrame::Resumed { .. }))
        .await?;
    let replayed: Vec<(u64, String)> = replayed
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Message(m) => Some((m.seq, m.text.clone())),
            _ => None,
        })
        .collect();
    let seqs: Vec<u64> = replayed.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(
        seqs,
        (first + 1..=last).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    let texts: Vec<&str> = replayed
        .iter()
        .map(|(_, text)| text.as_str())
        .filter(|text| ["two", "three"].contains(text))
        .collect();
    assert_eq!(texts, ["two", "three"]);
    assert!(matches!(resumed, ServerFrame::Resumed { last_seq, .. } if last_seq == last));
    // Then the live stream continues right after.
    agent
        .send_json(&json!({"type": "send", "conversation": conversation, "client_id": "r9", "text": "four"}))
        .await?;
    let (frame, _) = visitor.recv_until(is_message).await?;
    assert!(matches!(frame, ServerFrame::Message(m) if m.seq == last + 1 && m.text == "four"));
    Ok(())
}

#[tokio::test]
async fn concurrent_senders_get_a_gap_free_sequence() -> anyhow::Result<()> {
    let hub = TestHub::start_with(|config| {
        config.limits.rate_per_sec = 10_000;
        config.limits.burst = 10_000;
        config.limits.visitor_rate_per_sec = 10_000;
        config.limits.visitor_burst = 10_000;
    })
    .await?;
    let mut agent = hub.admin_agent().await?;
    let mut visitor = hub.visitor(None).await?;
    visitor
        .send_json(&json!({"type": "send", "client_id": "first", "text": "start"}))
        .await?;
    let ServerFrame::Ack { conversation, .. } = visitor.recv().await? else {
        panic!()
    };
    agent.watch(&conversation, 0).await?;
    // Visitor and agent write at once; both see every sequence once, in order.
    let n_each = 60;
    for index in 0..n_each {
        visitor
            .send_json(&json!({"type": "send", "client_id": format!("v{index}"), "text": "v"}))
            .await?;
        agent
            .send_json(&json!({"type": "send", "conversation": conversation, "client_id": format!("a{index}"), "text": "a"}))
            .await?;
    }
    // The visitor sees every sequence once: the agent's as messages (in order), its own
    // as acks.
    let mut last = 0;
    let mut visitor_messages = Vec::new();
    let mut visitor_acks = Vec::new();
    while visitor_acks.len() < n_each {
        match visitor.recv().await? {
            ServerFrame::Ack { seq, .. } => visitor_acks.push(seq),
            ServerFrame::Message(m) => visitor_messages.push(m.seq),
            _ => {}
        }
    }
    // The agent sees every sequence once: the visitor's (and the system's) as messages,
    // in order, its own as acks (an agent is not sent its own messages back).
    let mut agent_seqs = Vec::new();
    let mut agent_ack_seqs = Vec::new();
    let covered = |messages: &Vec<u64>, acks: &Vec<u64>, last: u64| {
        let all: std::collections::BTreeSet<u64> = messages.iter().chain(acks).copied().collect();
        (1..=last).all(|seq| all.contains(&seq))
    };
    // It has seen everything once its own acks are in, the visitor's messages have all
    // arrived (its last may come after the agent's last ack) and nothing is missing.
    let mut from_visitor = 0;
    while agent_ack_seqs.len() < n_each
        || from_visitor < n_each
        || !covered(&agent_seqs, &agent_ack_seqs, last)
    {
        match agent.recv().await? {
            ServerFrame::Ack { seq, .. } => {
                last = last.max(seq);
                agent_ack_seqs.push(seq);
            }
            ServerFrame::Message(m) => {
                last = last.max(m.seq);
                if m.author.kind == AuthorKind::Visitor && m.seq > 1 {
                    from_visitor += 1;
                }
                agent_seqs.push(m.seq);
            }
            _ => {}
        }
    }
    // Its own message may also come as a message (when it fills a gap before its ack):
    // never twice as a message, and together the two cover every sequence.
    let seen = |visitor_messages: &Vec<u64>, visitor_acks: &Vec<u64>| {
        let all: std::collections::BTreeSet<u64> = visitor_messages
            .iter()
            .chain(visitor_acks)
            .copied()
            .collect();
        all.into_iter().collect::<Vec<u64>>()
    };
    while seen(&visitor_messages, &visitor_acks).len() < last as usize - 1 {
        if let ServerFrame::Message(m) = visitor.recv().await? {
            visitor_messages.push(m.seq);
        }
    }
    assert!(last > 2 * n_each as u64);
    let mut agent_all: Vec<u64> = agent_seqs.iter().chain(&agent_ack_seqs).copied().collect();
    agent_all.sort_unstable();
    agent_all.dedup();
    assert_eq!(agent_all, (1..=last).collect::<Vec<u64>>());
    // Never twice (an own message comes as a message only when it fills a gap before
    // its ack; what came live before the agent opened the conversation is not replayed
    // again).
    let distinct: std::collections::BTreeSet<u64> = agent_seqs.iter().copied().collect();
    assert_eq!(distinct.len(), agent_seqs.len(), "{agent_seqs:?}");
    assert!(visitor_messages.windows(2).all(|pair| pair[0] < pair[1]));
    // Sequence 1 (the first message) was acknowledged before this count started.
    assert_eq!(
        seen(&visitor_messages, &visitor_acks),
        (2..=last).collect::<Vec<u64>>()
    );
    Ok(())
}
