//! E-mail as a channel (issue 17; see docs/email.md).
//!
//! - `crate::mail_out` (a leaf module, so state and conversation can hold it): a
//!   bounded queue and one task that sends over SMTP with retries, so no connection
//!   and no routing decision ever waits for a mail server.
//! - [`templates`]: the mails, in English, Arabic and Persian, as plain text and HTML.
//! - [`smtp_server`]: a small, strict SMTP listener for replies (behind the MTA).
//! - [`inbound`]: what a received mail becomes: a visitor message in its conversation,
//!   or a recorded bounce or auto-reply that is never answered.
//! - [`thread`]: reply addresses with a signed conversation id, and quoted history.
//! - [`transcript`]: the transcript a visitor asked for (`transcript` frame), at close.
//! - [`missed`]: agents told of chats that waited with nobody answering, in one mail.
//! - [`hooks`]: where the rest of the hub tells e-mail what happened (an agent's
//!   message, the visitor's `seen`), the unseen-replies timer and the reply endpoint.
//!
//! Every message goes through the hub's own functions (`conversation::post_message`):
//! commit, then publish; e-mail never writes messages itself.

pub mod hooks;
pub mod inbound;
pub mod missed;
pub mod smtp_server;
pub mod templates;
pub mod thread;
pub mod transcript;

pub use hooks::{routes, spawn};
