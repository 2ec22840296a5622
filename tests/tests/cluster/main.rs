//! Several hubs (issue 13): real `salam` processes sharing a real PostgreSQL database.
//!
//! What is here so far: the shared database's first start (migrations under an
//! advisory lock, the demo site and the admin created once, one hub serving a
//! database until the hubs share a message bus) and `salam migrate` run by several
//! processes at once. The single-hub guarantees on
//! PostgreSQL (SIGKILL under load, a database outage) are chaos cases
//! (`tests/tests/chaos/crash.rs`, `disk.rs`); the store itself is checked on both
//! backends by `crates/store/tests/backends/`.

mod first_start;
