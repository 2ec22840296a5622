//! The Salam chat widget: what a visitor sees on a site that embeds Salam.
//!
//! Key design decision: **a pure state machine under a thin web-sys view.**
//! [`state`] holds everything that decides what the visitor sees — the ordered,
//! de-duplicated message list, the outbox of unacknowledged messages, reconnect backoff,
//! forms, unread count — and is driven by a closed [`state::Msg`] enum, returning
//! [`state::Effect`]s. It does no I/O and reads no clock, so it is tested natively with
//! `cargo test -p salam-widget`. `view` (compiled for `wasm32` only) owns the DOM inside
//! the loader's Shadow DOM, the WebSocket, localStorage, timers and the `window.Salam`
//! bridge; it turns browser events into `Msg`s and performs the effects.
//!
//! The parts:
//! - `widget/loader/widget.js`: the hand-written loader (a few KB): draws the launcher
//!   at once in a Shadow DOM, queues `window.Salam` calls, loads this crate lazily;
//! - [`i18n`]: every UI string in en, ar and fa, locale choice, direction;
//! - [`text`]: link detection (http and https only), avatar initials, WCAG contrast;
//! - [`json`] and [`wire`]: a small JSON codec and the frames in the widget's view,
//!   checked against `salam-protocol`'s serde in tests;
//! - [`state`]: the state machine;
//! - `view`: the DOM and browser glue (wasm32 only).
//!
//! The protocol's enums (states, author kinds, error codes, forms) are the
//! `salam-protocol` types the hub uses, but frames are read and written by [`json`]
//! rather than serde_json: serde_json and the derived impls were about 170 KB of a
//! 370 KB WASM, more than the whole size budget allows (`scripts/check-widget-size.sh`).

pub mod i18n;
pub mod json;
pub mod state;
pub mod text;
pub mod wire;

#[cfg(target_arch = "wasm32")]
mod view;
