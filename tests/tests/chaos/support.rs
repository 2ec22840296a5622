//! What only the chaos cases need on top of the harness's process tools: the scale
//! knob and the lock that runs the cases one at a time.

pub use salam_e2e::process::{AgentAccount, ORIGIN, World, add_agents, eventually};

/// `SALAM_CHAOS_SCALE` (default 1): multiplies load durations and client counts for
/// the long variants (see docs/chaos.md).
pub fn scale() -> u32 {
    std::env::var("SALAM_CHAOS_SCALE")
        .ok()
        .and_then(|value| value.trim().parse::<u32>().ok())
        .unwrap_or(1)
        .clamp(1, 1000)
}

/// The cases run one at a time: each one loads the machine on purpose, and two of
/// them compare latencies, which another case running alongside would distort.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}
