//! End-to-end tests of the hub through its real interfaces (one test binary).

mod admin;
mod auth;
mod bad_input;
mod bot;
mod control;
mod crash;
mod delivery;
mod lifecycle;
mod operations;
mod routing;

// Issue 12 ("edges"): one hostile test per finding of the review.
mod hygiene;
mod identity;
mod login;
mod slots;
mod spam;
mod wire;

// Issue 14 ("hot path"): the widget, the console and the API on the wire.
mod compression;

// Issue 15: states after reloads, refusals and hand-offs.
mod states;

// Issue 19: the customer timeline.
mod timeline;
// Issue 19: key accounts first (attribute-based priority, owner first, reports split).
mod key_accounts;
// Issue 19: proactive triggers.
mod triggers;
