//! Token buckets, per replica: one per token for the Public API (headers on
//! every authenticated response: X-RateLimit-Consumed, -Remaining, -Reset,
//! seconds until full), and one per client address for failed
//! authentications.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct RateLimitStatus {
    pub allowed: bool,
    pub consumed: u32,
    pub remaining: u32,
    pub reset_secs: u64,
}

pub struct RateLimiter {
    burst: f64,
    per_second: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    pub fn new(burst: u32, per_second: f64) -> RateLimiter {
        RateLimiter {
            burst: burst as f64,
            per_second,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `key`'s bucket, if it has one.
    pub fn take(&self, key: &str) -> RateLimitStatus {
        self.update(key, true)
    }

    /// Whether `key`'s bucket has a request left, without taking it.
    pub fn peek(&self, key: &str) -> RateLimitStatus {
        self.update(key, false)
    }

    fn update(&self, key: &str, take: bool) -> RateLimitStatus {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if buckets.len() > 100_000 {
            // Forget buckets that have refilled: they are equivalent to new.
            let full_after = self.burst / self.per_second;
            buckets.retain(|_, b| now.duration_since(b.updated).as_secs_f64() < full_after);
        }
        if !take && !buckets.contains_key(key) {
            return RateLimitStatus {
                allowed: true,
                consumed: 0,
                remaining: self.burst as u32,
                reset_secs: 0,
            };
        }
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.updated = now;
        let allowed = bucket.tokens >= 1.0;
        if allowed && take {
            bucket.tokens -= 1.0;
        }
        let remaining = bucket.tokens.floor() as u32;
        let reset_secs = if allowed {
            ((self.burst - bucket.tokens) / self.per_second).ceil() as u64
        } else {
            ((1.0 - bucket.tokens) / self.per_second).ceil() as u64
        };
        RateLimitStatus {
            allowed,
            consumed: (self.burst - bucket.tokens).ceil() as u32,
            remaining,
            reset_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_empties_and_blocks() {
        let limiter = RateLimiter::new(3, 0.001);
        let statuses: Vec<_> = (0..4).map(|_| limiter.take("t")).collect();
        assert!(statuses[..3].iter().all(|s| s.allowed));
        assert_eq!(statuses[2].remaining, 0);
        assert!(!statuses[3].allowed);
        assert!(statuses[3].reset_secs >= 1);
        assert!(limiter.take("other").allowed, "buckets are per token");
    }

    #[test]
    fn peeking_takes_nothing() {
        let limiter = RateLimiter::new(1, 0.001);
        assert!(limiter.peek("t").allowed);
        assert!(limiter.peek("t").allowed);
        assert!(limiter.take("t").allowed);
        assert!(!limiter.peek("t").allowed);
        assert!(!limiter.take("t").allowed);
    }
}
