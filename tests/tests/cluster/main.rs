//! Several hubs (issue 13): real `salam` processes sharing a real PostgreSQL database.
//!
//! What is here so far: the shared database's first start (migrations under an
//! advisory lock, the demo site and the admin created once, one hub serving a
//! database until the hubs share a message bus) and `salam migrate` run by several
//! processes at once. The single-hub guarantees on
//! PostgreSQL (SIGKILL under load, a database outage) are chaos cases
//! (`tests/tests/chaos/crash.rs`, `disk.rs`); the store itself is checked on both
//! backends by `crates/store/tests/backends/`.
//!
//! `across` runs three hubs on one database and one NATS server behind nginx: a chat
//! between a visitor on hub1 and an agent on hub2 with the visitor's second tab on
//! hub3; the routing owner SIGKILLed (another hub routes within 10 s, nobody assigned
//! twice or over capacity); a visitors' hub SIGKILLed under two-sided load (nothing
//! acknowledged lost or repeated).
//!
//! `once` checks what the routing owner does for the whole cluster: a SIGKILLed hub's
//! agent sockets count as closed (the grace period runs, the chat goes to an agent on
//! another hub), and webhook events are delivered once, not once per hub.
//!
//! `harness` checks the cluster harness (tests/src/cluster.rs): a NATS server of the
//! test's own, nginx running deploy/nginx/salam-cluster.conf in front of several hubs
//! (and skipping a dead one), and hubs sharing one database and one bus.
//!
//! `outage` is the three-hub database outage: the cluster's PostgreSQL server (one of
//! the test's own) stops for 10 s under load through nginx; every hub refuses sends
//! with `store_unavailable` and acknowledges nothing, reports the database unavailable
//! on `/healthz`, and recovers by itself once the server is back (one hub owns routing
//! again, the refused sends are stored once, a new conversation reaches an online
//! agent).
//!
//! `scale` holds 50,000 idle visitor connections across three hubs (issue 13's "Done
//! when"), every process limited to 20,000 open files: the visitors connect to the
//! hubs directly (nginx would need two descriptors per connection, 100,000 in all),
//! from six `salam-loadgen idle` processes of about 8,300 connections each, and a
//! visitor on hub1 still reaches an agent on hub2 while they are held. It prints each
//! hub's resident memory (docs/benchmarks.md, "Several hubs: 50,000 idle
//! connections").

mod across;
mod first_start;
mod harness;
mod once;
mod outage;
mod scale;
