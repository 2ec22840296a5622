//! Chaos tests: the real `salam` binary, real WebSocket clients and a real SQLite file,
//! under faults — SIGKILL under load, a consumer that stops reading, a flooding client,
//! a full or read-only disk, and 500 agents reconnecting at once. The cases run one at
//! a time (see `support::serial`); `SALAM_CHAOS_SCALE` makes them longer and larger
//! (docs/chaos.md).

mod crash;
mod disk;
mod flood;
mod load;
mod slow;
mod storm;
mod support;
