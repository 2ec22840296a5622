//! Load generator and baseline for benchmarking the Salam hub, and for comparing it
//! with what people deploy otherwise (a Socket.IO relay, Soketi).
//!
//! Key design decision: **every figure is measured against the server's own CPU time
//! over exactly the measured window**, not against wall-clock time. The machine that
//! runs the benchmark is small and shared, so "messages per second" moves with the
//! neighbours; "messages per server CPU-second" and its ratio to a bare echo server
//! measured in the same run move much less. Given `--server-pid`, the load generator
//! reads the server's `utime + stime` from `/proc/PID/stat` when the window opens and
//! when it closes (see [`probe`]).
//!
//! The parts:
//!
//! - [`wire`]: connecting WebSockets with the hub's 4 KiB buffers, agent login and
//!   one-off requests over plain HTTP/1.0, the `hello`/`welcome` handshakes, and
//!   reading frames without panicking on whatever the server sends.
//! - [`echo`]: the bare tokio-tungstenite echo server (the ceiling, binary
//!   `salam-echo`) and the closed-loop client that measures it.
//! - [`client`]: one connection to the server under test, whatever its protocol
//!   (`--protocol salam|socketio|pusher|echo`), so that every server gets the same
//!   workload; [`socketio`] and [`pusher`] are the framing of the two peers.
//! - [`relay`]: visitors sending messages through the server to agents, closed-loop (a
//!   window of messages in flight per visitor) or open-loop (a fixed total rate), with
//!   visitor→agent latency in an HDR histogram, optionally with thousands of idle
//!   visitors connected at the same time.
//! - [`idle`]: many idle visitor connections, for the server's memory per connection
//!   and the connection set-up rate.
//! - [`bot`]: visitors asking the hub's bot questions, for question → answer latency.
//! - [`handoff`]: a storm of hand-offs at once, for routing throughput and the
//!   latency of the routing views (`/api/widget/{key}`, `/api/agents`) meanwhile.
//! - [`login_flood`]: many wrong-password logins at once, for the hub's memory, its
//!   answers (401 or 429) and the latency of `/healthz` meanwhile.
//! - [`probe`]: server CPU time and resident memory from `/proc`.
//! - [`report`]: latency summaries and the measured window shared by the runs.
//!
//! Each run of the `salam-loadgen` binary prints one JSON line of results on stdout and
//! human-readable progress on stderr; `scripts/bench.sh` turns the JSON into the table
//! in `docs/benchmarks.md`.
//!
//! Deliberately absent: TLS, reconnection and resume. A connection that fails during a
//! run is counted as an error and the run goes on with the others.

pub mod bot;
pub mod client;
pub mod echo;
pub mod handoff;
pub mod idle;
pub mod login_flood;
pub mod probe;
pub mod pusher;
pub mod relay;
pub mod report;
pub mod socketio;
pub mod spread;
pub mod wire;
