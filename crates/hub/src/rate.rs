//! Token buckets: frames per second with a burst, per connection, and shared by the
//! sockets of one visitor and by the visitors of one address.

use dashmap::DashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A token bucket (`rate` tokens a second, at most `burst`).
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: u32, burst: u32, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: burst as f64,
            rate: rate as f64,
            burst: burst as f64,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Whose bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BucketKey {
    /// A visitor, across all their sockets.
    Visitor(String),
    /// An address, across all its visitors.
    Ip(IpAddr),
    /// An address's trigger reports and trigger lists (issue 19, `crate::triggers`).
    Triggers(IpAddr),
}

/// Buckets that outlive one connection. Bounded: past [`SharedBuckets::MAX`] keys, the
/// buckets untouched for a minute (full again by then) are forgotten.
#[derive(Default)]
pub struct SharedBuckets {
    buckets: DashMap<BucketKey, TokenBucket>,
}

impl SharedBuckets {
    /// Keys remembered at most before idle ones are swept.
    pub const MAX: usize = 200_000;

    /// Takes one token from `key`'s bucket (created full).
    pub fn take(&self, key: BucketKey, rate: u32, burst: u32, now: Instant) -> bool {
        if self.buckets.len() >= Self::MAX && !self.buckets.contains_key(&key) {
            let idle = now.checked_sub(Duration::from_secs(60)).unwrap_or(now);
            self.buckets.retain(|_, bucket| bucket.last > idle);
        }
        self.buckets
            .entry(key)
            .or_insert_with(|| TokenBucket::new(rate, burst, now))
            .take(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_bucket_limits_every_socket_of_a_visitor_together() {
        let buckets = SharedBuckets::default();
        let now = Instant::now();
        let visitor = || BucketKey::Visitor("v_1".into());
        let allowed = (0..100)
            .filter(|_| buckets.take(visitor(), 10, 40, now))
            .count();
        assert_eq!(allowed, 40, "the burst, whatever the number of sockets");
        assert!(buckets.take(visitor(), 10, 40, now + Duration::from_millis(100)));
        assert!(buckets.take(BucketKey::Visitor("v_2".into()), 10, 40, now));
    }
}
