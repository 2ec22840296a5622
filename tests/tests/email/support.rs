//! The e-mail tests' hub: a hub process configured to send to the capture server and
//! to receive on its own SMTP listener (the real parts are in `salam_e2e::smtp`).

use anyhow::{Result, bail};
use salam_e2e::process::{Api, HubProcess, SiteInfo, eventually, free_port};
pub use salam_e2e::smtp::{Capture, DOMAIN, FROM, MAIL_WAIT, Smtp, mails, send_mail};
use salam_e2e::{Client, SHOP_ORIGIN};
use salam_protocol::ServerFrame;
use serde_json::{Value, json};
use std::net::SocketAddr;

/// A hub sending to `capture` and receiving on its own SMTP port.
pub struct MailHub {
    pub _data: tempfile::TempDir,
    pub hub: HubProcess,
    pub admin: Api,
    pub site: SiteInfo,
    pub inbound: SocketAddr,
}

impl MailHub {
    pub async fn start(capture: &Capture, unseen_after_secs: u32) -> Result<MailHub> {
        MailHub::start_with(capture, unseen_after_secs, 600).await
    }

    /// With the delay before agents are told of a missed chat.
    pub async fn start_with(
        capture: &Capture,
        unseen_after_secs: u32,
        missed_after_secs: u32,
    ) -> Result<MailHub> {
        let inbound: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let config = format!(
            "[routing]\nauto_close_secs = 0\n\
             [smtp]\nurl = \"smtp://127.0.0.1:{}\"\nfrom = \"Salam Support <{FROM}>\"\n\
             unseen_reply_after_secs = {unseen_after_secs}\nretry_ms = 100\n\
             missed_chat_after_secs = {missed_after_secs}\n\
             [smtp_inbound]\nlisten = \"{inbound}\"\ndomain = \"{DOMAIN}\"\n\
             max_message_bytes = 65536\n",
            capture.port
        );
        let data = tempfile::tempdir()?;
        let hub = HubProcess::start(data.path(), &config).await?;
        let admin = hub.admin().await?;
        let site = admin
            .create_site("Shop", SHOP_ORIGIN, json!({"bot": false}))
            .await?;
        Ok(MailHub {
            _data: data,
            hub,
            admin,
            site,
            inbound,
        })
    }

    /// A visitor (in `locale`) who writes and leaves their e-mail in the contact form:
    /// the visitor, their conversation and the request's id.
    pub async fn offline_request(
        &self,
        locale: &str,
        text: &str,
        email: &str,
    ) -> Result<(Client, String, i64)> {
        let mut visitor = Client::connect_visitor(self.hub.addr, Some(SHOP_ORIGIN)).await?;
        visitor
            .send_json(&json!({"type": "hello", "v": 1, "site": self.site.key, "locale": locale}))
            .await?;
        visitor
            .recv_until(|f| matches!(f, ServerFrame::Welcome { .. }))
            .await?;
        visitor
            .send_json(&json!({"type": "send", "client_id": "1", "text": text}))
            .await?;
        // With nobody online the widget shows the contact form; the details can be
        // given at any time, so the test gives them once the message is stored.
        let (ack, _) = visitor
            .recv_until(|f| matches!(f, ServerFrame::Ack { client_id, .. } if client_id == "1"))
            .await?;
        let ServerFrame::Ack { conversation, .. } = ack else {
            bail!("expected the ack");
        };
        visitor
            .send_json(&json!({"type": "contact", "conversation": conversation, "name": "Layla", "email": email, "message": text}))
            .await?;
        let id = eventually("the offline request", MAIL_WAIT, || async {
            let listed = self.admin.get("/api/offline-requests").await?;
            Ok(listed["requests"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|request| request["email"] == email)
                .and_then(|request| request["id"].as_i64()))
        })
        .await?;
        Ok((visitor, conversation, id))
    }

    /// `POST /api/offline-requests/{id}/reply`.
    pub async fn reply(&self, id: i64, text: &str) -> Result<Value> {
        self.admin
            .json(
                "POST",
                &format!("/api/offline-requests/{id}/reply"),
                Some(&json!({ "text": text })),
            )
            .await
    }

    /// Texts of a conversation's messages by visitors.
    pub async fn visitor_texts(&self, conversation: &str) -> Result<Vec<String>> {
        Ok(self
            .admin
            .history(conversation)
            .await?
            .iter()
            .filter(|m| m["author"]["kind"] == "visitor")
            .filter_map(|m| m["text"].as_str().map(str::to_owned))
            .collect())
    }
}
