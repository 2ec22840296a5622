//! Throttling of repeated failures (wrong logins), per account and per address.
//!
//! Each key may fail a number of times for free; after that every further failure
//! blocks it for twice as long as the last (1 s, 2 s, 4 s, … up to 15 minutes), and a
//! blocked key is refused with HTTP 429 and `Retry-After` before any password is
//! hashed. A success clears the account's key (not the address's: a valid account of
//! one's own must not reset the count for guessing others'); failures are forgotten
//! [`FORGET_AFTER`] after the last one. The table is bounded: past [`MAX_KEYS`] keys,
//! those no longer blocked are forgotten, then (under a wide attack) the oldest half.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys remembered at most.
pub const MAX_KEYS: usize = 100_000;
/// The longest block.
pub const MAX_BLOCK: Duration = Duration::from_secs(15 * 60);
/// A key's failures are forgotten this long after its last one (so a shared office
/// address that mistypes now and then never ends up blocked).
pub const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);

/// What failed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// An account, by its e-mail in lower case.
    Account(String),
    /// A client address.
    Ip(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    blocked_until: Instant,
    last: Instant,
}

/// See the module docs. A std `Mutex` is fine: it is held for a map lookup, never
/// across an `.await`.
#[derive(Default)]
pub struct Throttle {
    entries: Mutex<HashMap<Key, Entry>>,
}

impl Throttle {
    /// `Err(wait)` while `key` is blocked.
    pub fn check(&self, key: &Key, now: Instant) -> Result<(), Duration> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(key) {
            Some(entry) if entry.blocked_until > now => Err(entry.blocked_until - now),
            _ => Ok(()),
        }
    }

    /// Records a failure of `key`, which may fail `free` times before being blocked.
    pub fn failed(&self, key: Key, free: u32, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_KEYS && !entries.contains_key(&key) {
            entries.retain(|_, entry| entry.blocked_until > now);
            if entries.len() >= MAX_KEYS {
                let mut lasts: Vec<Instant> = entries.values().map(|entry| entry.last).collect();
                lasts.sort_unstable();
                let cut = lasts[lasts.len() / 2];
                entries.retain(|_, entry| entry.last > cut);
            }
        }
        let entry = entries.entry(key).or_insert(Entry {
            failures: 0,
            blocked_until: now,
            last: now,
        });
        if now.saturating_duration_since(entry.last) > FORGET_AFTER {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last = now;
        if entry.failures > free {
            let doublings = (entry.failures - free - 1).min(20);
            let block = Duration::from_secs(1u64 << doublings).min(MAX_BLOCK);
            entry.blocked_until = now + block;
        }
    }

    /// Clears `key` (a successful login).
    pub fn succeeded(&self, key: &Key) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_past_the_free_ones_block_for_doubling_times() {
        let throttle = Throttle::default();
        let key = Key::Account("sara@shop.test".into());
        let start = Instant::now();
        for _ in 0..3 {
            throttle.failed(key.clone(), 3, start);
            assert_eq!(throttle.check(&key, start), Ok(()));
        }
        throttle.failed(key.clone(), 3, start);
        assert_eq!(throttle.check(&key, start), Err(Duration::from_secs(1)));
        let later = start + Duration::from_secs(1);
        assert_eq!(throttle.check(&key, later), Ok(()));
        throttle.failed(key.clone(), 3, later);
        assert_eq!(throttle.check(&key, later), Err(Duration::from_secs(2)));
        for _ in 0..30 {
            throttle.failed(key.clone(), 3, later);
        }
        assert_eq!(throttle.check(&key, later), Err(MAX_BLOCK));
        throttle.succeeded(&key);
        assert_eq!(throttle.check(&key, later), Ok(()));
        // An hour of quiet forgets the count: the next failure is a free one again.
        let quiet = Key::Ip(IpAddr::from([10, 0, 0, 9]));
        for _ in 0..4 {
            throttle.failed(quiet.clone(), 3, start);
        }
        let hour = start + FORGET_AFTER + Duration::from_secs(1);
        throttle.failed(quiet.clone(), 3, hour);
        assert_eq!(throttle.check(&quiet, hour), Ok(()));
        // Another key is not touched.
        assert_eq!(
            throttle.check(&Key::Ip(IpAddr::from([10, 0, 0, 1])), later),
            Ok(())
        );
    }

    #[test]
    fn the_table_stays_bounded() {
        let throttle = Throttle::default();
        let now = Instant::now();
        for index in 0..(MAX_KEYS as u32 + 10) {
            throttle.failed(Key::Ip(IpAddr::from(index.to_be_bytes())), 5, now);
        }
        let size = throttle.entries.lock().unwrap().len();
        assert!(size <= MAX_KEYS, "{size}");
    }
}
