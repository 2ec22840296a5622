//! E-mail as a channel (issue 17), end to end: a real `aiosmtpd` server captures what
//! the hub sends, each mail is parsed and checked (headers, threading, languages), and
//! replies go back into the hub's own SMTP listener over a real socket.

mod support;

use anyhow::{Result, ensure};
use salam_e2e::process::{agent_session, eventually};
use salam_protocol::ServerFrame;
use serde_json::json;
use support::{Capture, DOMAIN, MAIL_WAIT, MailHub, Smtp, mails, send_mail};

fn no_panic(hub: &MailHub) -> Result<()> {
    let log = hub.hub.log_tail(100_000);
    ensure!(
        !log.contains("panicked"),
        "the hub panicked:\n{}",
        hub.hub.log_tail(60)
    );
    Ok(())
}

/// The issue's round trip: an offline request → an agent answers it → the answer goes
/// by e-mail → the visitor replies by e-mail → the reply is a visitor message of the
/// same conversation, live to the agent → the agent answers in the console → that goes
/// by e-mail, threaded under the visitor's reply.
#[tokio::test]
async fn an_offline_request_answered_by_email_comes_back_into_the_same_conversation() -> Result<()>
{
    let capture = Capture::start().await?;
    let hub = MailHub::start(&capture, 300).await?;
    let (visitor, conversation, id) = hub
        .offline_request("en", "Where is my order 42?", "layla@example.com")
        .await?;
    visitor.close().await;
    let mut agent = agent_session(hub.hub.addr, &hub.admin.token).await?;

    let answered = hub
        .reply(id, "It ships <tomorrow> & arrives Friday.")
        .await?;
    ensure!(
        answered["conversation"] == conversation.as_str(),
        "{answered}"
    );
    let sent = mails(capture.wait_for(1).await?);
    let first = &sent[0];
    first.check_shape()?;
    ensure!(first.to()? == "layla@example.com");
    let reply_to = first.reply_to()?;
    ensure!(
        reply_to.starts_with(&format!("reply+{conversation}.")) && reply_to.ends_with(DOMAIN),
        "{reply_to}"
    );
    ensure!(
        first
            .text()?
            .contains("It ships <tomorrow> & arrives Friday.")
    );
    let html = first.html()?;
    ensure!(
        html.contains("It ships &lt;tomorrow&gt; &amp; arrives Friday."),
        "{html}"
    );
    ensure!(html.contains(r#"lang="en" dir="ltr""#), "{html}");
    ensure!(
        first.header("Auto-Submitted").is_none(),
        "a person's answer"
    );
    ensure!(first.header("Content-Language").as_deref() == Some("en"));
    // The conversation shows its channel.
    let found = hub
        .admin
        .get(&format!("/api/conversations/{conversation}"))
        .await?;
    ensure!(found["conversation"]["channel"] == "email", "{found}");

    // The visitor answers from their mail client, quoting the mail.
    let first_id = first.message_id()?;
    let reply = format!(
        "From: Layla <layla@example.com>\nTo: {reply_to}\nSubject: Re: Your message\n\
         Message-ID: <r1@mail.example.com>\nIn-Reply-To: <{first_id}>\nReferences: <{first_id}>\n\
         Content-Type: text/plain; charset=utf-8\n\nThanks! What time?\n\n\
         On Mon, 7 Dec 2026 at 10:00, Salam Support <support@example.test> wrote:\n\
         > It ships tomorrow.\n"
    );
    ensure!(send_mail(hub.inbound, "layla@example.com", &[&reply_to], &reply).await? == 250);
    let seen = agent.agent_sees("Thanks! What time?").await?;
    ensure!(seen.conversation == conversation);
    ensure!(
        hub.visitor_texts(&conversation)
            .await?
            .last()
            .map(String::as_str)
            == Some("Thanks! What time?")
    );

    // The agent answers in the console, as in any conversation: it goes by e-mail.
    agent
        .send_json(&json!({"type": "send", "conversation": conversation, "client_id": "a1", "text": "Around noon."}))
        .await?;
    agent
        .recv_until(|f| matches!(f, ServerFrame::Ack { client_id, .. } if client_id == "a1"))
        .await?;
    let sent = mails(capture.wait_for(2).await?);
    let second = &sent[1];
    second.check_shape()?;
    ensure!(second.text()?.contains("Around noon."));
    ensure!(second.in_reply_to().as_deref() == Some("r1@mail.example.com"));
    let references = second.references();
    ensure!(
        references.contains(&first_id) && references.contains(&"r1@mail.example.com".to_owned()),
        "{references:?}"
    );
    ensure!(second.reply_to()? == reply_to);
    ensure!(second.message_id()? != first_id);
    no_panic(&hub)
}

/// Threading survives a client that changes the subject and drops `In-Reply-To`: the
/// signed reply address is enough. Without it, the Message-ID threads; with neither, a
/// mail to the site starts a new e-mail conversation. Arabic and Persian mails are
/// right-to-left in their language.
#[tokio::test]
async fn replies_thread_by_the_signed_address_then_by_message_id() -> Result<()> {
    let capture = Capture::start().await?;
    let hub = MailHub::start(&capture, 300).await?;
    let (visitor, conversation, id) = hub
        .offline_request("ar", "أين طلبي؟", "mona@example.com")
        .await?;
    visitor.close().await;
    hub.reply(id, "سيصل طلبك غداً").await?;
    let sent = mails(capture.wait_for(1).await?);
    let arabic = &sent[0];
    arabic.check_shape()?;
    let html = arabic.html()?;
    ensure!(html.contains(r#"<html lang="ar" dir="rtl">"#), "{html}");
    ensure!(html.contains("سيصل طلبك غداً"));
    ensure!(arabic.header("Content-Language").as_deref() == Some("ar"));
    let reply_to = arabic.reply_to()?;

    // A new subject, no In-Reply-To, no References: the address threads it.
    let changed = format!(
        "From: Mona <mona@example.com>\nTo: {reply_to}\nSubject: something else entirely\n\
         Message-ID: <m2@mail.example.com>\nContent-Type: text/plain; charset=utf-8\n\n\
         شكراً جزيلاً\n\nفي الاثنين، 7 ديسمبر 2026، كتب Salam Support:\n> سيصل طلبك غداً\n"
    );
    ensure!(send_mail(hub.inbound, "mona@example.com", &[&reply_to], &changed).await? == 250);
    ensure!(
        hub.visitor_texts(&conversation)
            .await?
            .last()
            .map(String::as_str)
            == Some("شكراً جزيلاً")
    );

    // To the site's address with only In-Reply-To: the stored Message-ID threads it.
    let site_address = format!("{}@{DOMAIN}", hub.site.key);
    let by_id = format!(
        "From: Mona <mona@example.com>\nTo: {site_address}\nSubject: again\n\
         In-Reply-To: <{}>\nContent-Type: text/plain; charset=utf-8\n\nOne more thing\n",
        arabic.message_id()?
    );
    ensure!(send_mail(hub.inbound, "mona@example.com", &[&site_address], &by_id).await? == 250);
    ensure!(
        hub.visitor_texts(&conversation)
            .await?
            .last()
            .map(String::as_str)
            == Some("One more thing")
    );

    // Someone else quoting the same Message-ID (a forward) is not merged into it.
    let forwarded = format!(
        "From: Omar <omar@example.org>\nTo: {site_address}\nSubject: Fwd: again\n\
         In-Reply-To: <{}>\nContent-Type: text/plain; charset=utf-8\n\nForwarded question\n",
        arabic.message_id()?
    );
    ensure!(
        send_mail(
            hub.inbound,
            "omar@example.org",
            &[&site_address],
            &forwarded
        )
        .await?
            == 250
    );
    ensure!(
        !hub.visitor_texts(&conversation)
            .await?
            .contains(&"Forwarded question".to_owned())
    );

    // Neither: a new e-mail conversation from that sender.
    let fresh = "From: Sam <sam@example.net>\nSubject: Hello\n\
                 Content-Type: text/plain; charset=utf-8\n\nDo you ship to Oman?\n";
    let fresh = format!("To: {site_address}\n{fresh}");
    ensure!(send_mail(hub.inbound, "sam@example.net", &[&site_address], &fresh).await? == 250);
    let open = hub.admin.open_conversations(&hub.site.id).await?;
    let new = open
        .iter()
        .find(|c| c["visitor_email"] == "sam@example.net")
        .ok_or_else(|| anyhow::anyhow!("no conversation from sam: {open:?}"))?;
    ensure!(new["channel"] == "email", "{new}");
    let new_id = new["id"].as_str().unwrap_or_default().to_owned();
    ensure!(new_id != conversation);
    ensure!(hub.visitor_texts(&new_id).await? == vec!["Do you ship to Oman?".to_owned()]);

    // Persian is right-to-left too.
    let (visitor, _, id) = hub
        .offline_request("fa", "سفارش من کجاست؟", "sara@example.com")
        .await?;
    visitor.close().await;
    hub.reply(id, "فردا می‌رسد").await?;
    let sent = mails(capture.wait_for(2).await?);
    let persian = &sent[1];
    persian.check_shape()?;
    ensure!(persian.to()? == "sara@example.com");
    ensure!(persian.html()?.contains(r#"<html lang="fa" dir="rtl">"#));
    ensure!(persian.header("Content-Language").as_deref() == Some("fa"));
    no_panic(&hub)
}

/// Bounces and automatic answers are recorded, never appended, never answered; an
/// address that bounced gets no more mail.
#[tokio::test]
async fn bounces_and_auto_replies_never_loop() -> Result<()> {
    let capture = Capture::start().await?;
    let hub = MailHub::start(&capture, 300).await?;
    let (visitor, conversation, id) = hub
        .offline_request("en", "Call me", "gone@example.com")
        .await?;
    visitor.close().await;
    let mut agent = agent_session(hub.hub.addr, &hub.admin.token).await?;
    hub.reply(id, "We tried to call.").await?;
    let sent = mails(capture.wait_for(1).await?);
    let reply_to = sent[0].reply_to()?;
    let before = hub.visitor_texts(&conversation).await?;

    let automatic = [
        ("gone@example.com", "Auto-Submitted: auto-replied\n"),
        ("gone@example.com", "X-Autoreply: yes\n"),
        ("gone@example.com", "Precedence: bulk\n"),
        ("noreply@example.com", ""),
    ];
    for (from, header) in automatic {
        let mail = format!(
            "From: <{from}>\nTo: {reply_to}\nSubject: Out of office\n{header}\
             Content-Type: text/plain\n\nI am away until Monday.\n"
        );
        ensure!(
            send_mail(hub.inbound, from, &[&reply_to], &mail).await? == 250,
            "{header}"
        );
    }
    let bounce = format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\nTo: {reply_to}\n\
         Subject: Undelivered Mail Returned to Sender\nX-Failed-Recipients: gone@example.com\n\
         Content-Type: text/plain\n\nThe mail could not be delivered.\n"
    );
    ensure!(send_mail(hub.inbound, "", &[&reply_to], &bounce).await? == 250);
    ensure!(
        hub.visitor_texts(&conversation).await? == before,
        "nothing appended"
    );

    let status = hub.admin.get("/api/email/status").await?;
    let events = status["events"].as_array().cloned().unwrap_or_default();
    ensure!(
        events
            .iter()
            .any(|e| e["kind"] == "bounce" && e["address"] == "gone@example.com"),
        "{status}"
    );
    ensure!(
        events.iter().filter(|e| e["kind"] == "auto_reply").count() == 4,
        "{status}"
    );

    // The agent answers again: the address bounced, so no mail goes. A later mail to
    // someone else (queued after it, sent in order) arrives alone.
    agent
        .send_json(&json!({"type": "send", "conversation": conversation, "client_id": "b1", "text": "Are you there?"}))
        .await?;
    agent
        .recv_until(|f| matches!(f, ServerFrame::Ack { client_id, .. } if client_id == "b1"))
        .await?;
    let (visitor, _, id) = hub
        .offline_request("en", "Hello", "fine@example.com")
        .await?;
    visitor.close().await;
    hub.reply(id, "Hello to you").await?;
    let sent = mails(capture.wait_for(2).await?);
    ensure!(sent[1].to()? == "fine@example.com");
    ensure!(
        capture.messages()?.len() == 2,
        "no mail answered a bounce or an auto-reply, none went to the bounced address"
    );

    // Erasing the visitor erases what the hub kept of their address too.
    agent
        .send_json(&json!({"type": "close", "conversation": conversation}))
        .await?;
    eventually("the conversation closed", MAIL_WAIT, || async {
        let found = hub
            .admin
            .get(&format!("/api/conversations/{conversation}"))
            .await?;
        Ok((found["conversation"]["state"] == "closed").then_some(()))
    })
    .await?;
    hub.admin
        .json(
            "POST",
            "/api/admin/visitors/erase",
            Some(&json!({"email": "gone@example.com"})),
        )
        .await?;
    let status = hub.admin.get("/api/email/status").await?;
    ensure!(
        !status.to_string().contains("gone@example.com"),
        "erased: {status}"
    );
    no_panic(&hub)
}

/// A visitor who left before the agent answered gets the unseen replies in one mail,
/// once; a visitor who saw them gets none.
#[tokio::test]
async fn unseen_replies_are_mailed_once_and_not_when_seen() -> Result<()> {
    let capture = Capture::start().await?;
    let hub = MailHub::start(&capture, 3).await?;
    let mut agent = agent_session(hub.hub.addr, &hub.admin.token).await?;
    let say = async |agent: &mut salam_e2e::Client,
                     conversation: &str,
                     id: &str,
                     text: &str|
           -> Result<()> {
        agent
            .send_json(&json!({"type": "send", "conversation": conversation, "client_id": id, "text": text}))
            .await?;
        agent
            .recv_until(|f| matches!(f, ServerFrame::Ack { client_id, .. } if client_id == id))
            .await?;
        Ok(())
    };

    // A leaves before any answer.
    let (away, away_conversation, _) = hub
        .offline_request("en", "Anyone?", "away@example.com")
        .await?;
    away.close().await;
    say(&mut agent, &away_conversation, "1", "First answer").await?;
    say(&mut agent, &away_conversation, "2", "Second answer").await?;

    // B stays and sees the answer.
    let (mut here, here_conversation, _) = hub
        .offline_request("en", "Still here", "here@example.com")
        .await?;
    say(&mut agent, &here_conversation, "3", "Seen answer").await?;
    let (frame, _) = here
        .recv_until(|f| matches!(f, ServerFrame::Message(m) if m.text == "Seen answer"))
        .await?;
    let ServerFrame::Message(message) = frame else {
        anyhow::bail!("expected the message");
    };
    here.send_json(&json!({"type": "seen", "conversation": here_conversation, "seq": message.seq}))
        .await?;

    // C leaves too; its mail is due after A's and B's.
    let (later, later_conversation, _) = hub
        .offline_request("en", "Later", "later@example.com")
        .await?;
    later.close().await;
    say(&mut agent, &later_conversation, "4", "Late answer").await?;

    let all = eventually("the mail to later@example.com", MAIL_WAIT, || async {
        let all = mails(capture.messages()?);
        let found = all
            .iter()
            .any(|mail| mail.to().is_ok_and(|to| to == "later@example.com"));
        Ok(found.then_some(all))
    })
    .await?;
    // Due mails are taken oldest first and sent in order: had the visitor who saw the
    // answer been mailed, that mail would have come before the later one.
    let to: Vec<String> = all.iter().filter_map(|mail| mail.to().ok()).collect();
    ensure!(
        to == vec![
            "away@example.com".to_owned(),
            "later@example.com".to_owned()
        ],
        "one mail to the visitor who left, none to the one who saw: {to:?}"
    );
    let away_mail = &all[0];
    away_mail.check_shape()?;
    let text = away_mail.text()?;
    ensure!(
        text.contains("First answer") && text.contains("Second answer"),
        "{text}"
    );
    ensure!(away_mail.header("Auto-Submitted").as_deref() == Some("auto-generated"));
    ensure!(
        away_mail
            .reply_to()?
            .starts_with(&format!("reply+{away_conversation}."))
    );
    here.close().await;
    no_panic(&hub)
}

/// Malformed SMTP and MIME get SMTP errors (never a panic, never a message).
#[tokio::test]
async fn malformed_smtp_and_mime_get_smtp_errors() -> Result<()> {
    let capture = Capture::start().await?;
    let hub = MailHub::start(&capture, 300).await?;
    let site_address = format!("{}@{DOMAIN}", hub.site.key);
    let mut smtp = Smtp::connect(hub.inbound).await?;
    ensure!(
        smtp.command("MAIL FROM:<a@b.test>").await? == 503,
        "EHLO first"
    );
    ensure!(smtp.command("HELLO there").await? == 500);
    ensure!(smtp.command("EHLO").await? == 501);
    ensure!(smtp.command("EHLO client.test").await? == 250);
    ensure!(smtp.command(&format!("RCPT TO:<{site_address}>")).await? == 503);
    ensure!(smtp.command("MAIL FROM:a@b.test").await? == 501);
    ensure!(smtp.command("MAIL FROM:<a@b.test> SIZE=99999999").await? == 552);
    ensure!(smtp.command("MAIL FROM:<a@b.test>").await? == 250);
    ensure!(smtp.command("DATA").await? == 503, "no recipient yet");
    ensure!(smtp.command("RCPT TO:<someone@elsewhere.test>").await? == 550);
    ensure!(
        smtp.command(&format!(
            "RCPT TO:<reply+c_forged.00ff00ff00ff00ff00ff00ff@{DOMAIN}>"
        ))
        .await?
            == 550
    );
    ensure!(
        smtp.command(&format!("RCPT TO:<pk_nosuchsite@{DOMAIN}>"))
            .await?
            == 550
    );
    // Ten errors so far: the next one closes the session.
    ensure!(smtp.command(&"X".repeat(5000)).await? == 421);
    let mut smtp = Smtp::connect(hub.inbound).await?;
    ensure!(
        smtp.command(&"X".repeat(5000)).await? == 500,
        "an overlong line"
    );
    ensure!(smtp.command("EHLO client.test").await? == 250);
    ensure!(smtp.command("MAIL FROM:<a@b.test>").await? == 250);
    ensure!(smtp.command(&format!("RCPT TO:<{site_address}>")).await? == 250);
    ensure!(smtp.command("DATA").await? == 354);
    // No headers at all, binary noise: refused.
    ensure!(smtp.raw(b"\x00\xff\xfe not a mail\r\n.\r\n").await? == 550);
    // Too big: refused after the end of data.
    ensure!(smtp.command("MAIL FROM:<a@b.test>").await? == 250);
    ensure!(smtp.command(&format!("RCPT TO:<{site_address}>")).await? == 250);
    ensure!(smtp.command("DATA").await? == 354);
    let mut big = String::from("From: a@b.test\r\nSubject: big\r\n\r\n");
    for _ in 0..2000 {
        big.push_str(&"y".repeat(60));
        big.push_str("\r\n");
    }
    big.push_str(".\r\n");
    ensure!(smtp.raw(big.as_bytes()).await? == 552);
    ensure!(smtp.command("RSET").await? == 250);
    ensure!(smtp.command("NOOP").await? == 250);
    ensure!(smtp.command("QUIT").await? == 221);

    // A broken multipart from a real sender: an answer, not a crash.
    let broken = format!(
        "From: Eve <eve@example.com>\nTo: {site_address}\nSubject: broken\n\
         Content-Type: multipart/mixed; boundary=\"zz\"\n\n--zz\nContent-Type: text/plain\n\n\
         half a part\n--z"
    );
    let code = send_mail(hub.inbound, "eve@example.com", &[&site_address], &broken).await?;
    ensure!(code == 250 || code == 550, "{code}");
    // The hub still serves, and has not panicked.
    hub.admin.get("/api/email/status").await?;
    ensure!(capture.messages()?.is_empty(), "nothing was mailed");
    no_panic(&hub)
}

/// The transcript a visitor asks for goes at close, in their language; asked for after
/// the close, it goes at once. A bad address is refused.
#[tokio::test]
async fn the_transcript_goes_at_close_in_the_visitors_language() -> Result<()> {
    let capture = Capture::start().await?;
    let hub = MailHub::start(&capture, 300).await?;
    let mut agent = agent_session(hub.hub.addr, &hub.admin.token).await?;
    let mut visitor =
        salam_e2e::Client::connect_visitor(hub.hub.addr, Some(salam_e2e::SHOP_ORIGIN)).await?;
    visitor
        .send_json(&json!({"type": "hello", "v": 1, "site": hub.site.key, "locale": "fa"}))
        .await?;
    visitor
        .send_json(&json!({"type": "send", "client_id": "1", "text": "سفارش من کجاست؟"}))
        .await?;
    let (ack, _) = visitor
        .recv_until(|f| matches!(f, ServerFrame::Ack { .. }))
        .await?;
    let ServerFrame::Ack { conversation, .. } = ack else {
        anyhow::bail!("expected the ack");
    };
    agent.agent_sees("سفارش من کجاست؟").await?;
    agent
        .send_json(&json!({"type": "send", "conversation": conversation, "client_id": "a1", "text": "<b>در راه است</b>"}))
        .await?;
    visitor
        .recv_until(|f| matches!(f, ServerFrame::Message(m) if m.text == "<b>در راه است</b>"))
        .await?;
    visitor
        .send_json(
            &json!({"type": "transcript", "conversation": conversation, "email": "not an address"}),
        )
        .await?;
    visitor
        .recv_until(|f| matches!(f, ServerFrame::Error { .. }))
        .await?;
    visitor
        .send_json(&json!({"type": "transcript", "conversation": conversation, "email": "sara@example.com"}))
        .await?;
    visitor
        .send_json(&json!({"type": "close", "conversation": conversation}))
        .await?;
    let sent = mails(capture.wait_for(1).await?);
    let transcript = &sent[0];
    transcript.check_shape()?;
    ensure!(transcript.to()? == "sara@example.com");
    let html = transcript.html()?;
    ensure!(html.contains(r#"<html lang="fa" dir="rtl">"#), "{html}");
    ensure!(html.contains("سفارش من کجاست؟"), "{html}");
    ensure!(html.contains("&lt;b&gt;در راه است&lt;/b&gt;"), "{html}");
    ensure!(!html.contains("<b>در"), "escaped");
    ensure!(transcript.text()?.contains("<b>در راه است</b>"));
    ensure!(transcript.header("Auto-Submitted").as_deref() == Some("auto-generated"));
    ensure!(transcript.header("Content-Language").as_deref() == Some("fa"));

    // Asked for after the close: at once.
    visitor
        .send_json(&json!({"type": "transcript", "conversation": conversation, "email": "again@example.com"}))
        .await?;
    let sent = mails(capture.wait_for(2).await?);
    ensure!(sent[1].to()? == "again@example.com");
    ensure!(sent[1].html()?.contains("سفارش من کجاست؟"));
    no_panic(&hub)
}

/// Agents are told of chats that waited with nobody answering, in one mail per agent,
/// each chat once.
#[tokio::test]
async fn agents_are_told_of_missed_chats_once() -> Result<()> {
    let capture = Capture::start().await?;
    let hub = MailHub::start_with(&capture, 300, 1).await?;
    hub.admin
        .create_agent(
            "ana@shop.test",
            "correct horse battery staple",
            std::slice::from_ref(&hub.site.id),
            None,
        )
        .await?;
    let (first, _, _) = hub
        .offline_request("en", "Is anyone there?", "q1@example.com")
        .await?;
    let told = eventually("the missed-chat mail to ana", MAIL_WAIT, || async {
        let all = mails(capture.messages()?);
        let found = all
            .into_iter()
            .find(|mail| mail.to().is_ok_and(|to| to == "ana@shop.test"));
        Ok(found)
    })
    .await?;
    told.check_shape()?;
    ensure!(
        told.text()?.contains("Is anyone there?"),
        "{}",
        told.text()?
    );
    ensure!(told.header("Auto-Submitted").as_deref() == Some("auto-generated"));
    first.close().await;

    // A second missed chat: its mail lists only the new one.
    let (second, _, _) = hub
        .offline_request("en", "Hello again?", "q2@example.com")
        .await?;
    let again = eventually("the second missed-chat mail", MAIL_WAIT, || async {
        let all = mails(capture.messages()?);
        Ok(all.into_iter().find(|mail| {
            mail.to().is_ok_and(|to| to == "ana@shop.test")
                && mail.text().is_ok_and(|text| text.contains("Hello again?"))
        }))
    })
    .await?;
    ensure!(!again.text()?.contains("Is anyone there?"), "told once");
    let to_ana = mails(capture.messages()?)
        .iter()
        .filter(|mail| mail.to().is_ok_and(|to| to == "ana@shop.test"))
        .count();
    ensure!(to_ana == 2, "{to_ana} mails to ana");
    second.close().await;
    no_panic(&hub)
}
