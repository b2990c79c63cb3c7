//! Counting requests per key in fixed windows, behind a trait so a cluster
//! can count in Redis.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use async_trait::async_trait;
use tokio::time::Instant;

/// The outcome of one counted hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Time until the window resets.
    pub reset_in: Duration,
}

#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts one hit on `key`, allowing `limit` per `window`.
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> Decision;
}

struct Window {
    started: Instant,
    count: u32,
}

/// Single-node limiter. Expired windows are swept as the map grows.
#[derive(Default)]
pub struct MemoryRateLimiter {
    windows: Mutex<HashMap<String, Window>>,
}

impl MemoryRateLimiter {
    fn decide(&self, key: &str, limit: u32, window: Duration, now: Instant) -> Decision {
        let mut map = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= 10_000 && !map.contains_key(key) {
            map.retain(|_, w| now.duration_since(w.started) < window);
        }
        let w = map.entry(key.to_string()).or_insert(Window {
            started: now,
            count: 0,
        });
        if now.duration_since(w.started) >= window {
            *w = Window {
                started: now,
                count: 0,
            };
        }
        w.count = w.count.saturating_add(1);
        Decision {
            allowed: w.count <= limit,
            limit,
            remaining: limit.saturating_sub(w.count),
            reset_in: window.saturating_sub(now.duration_since(w.started)),
        }
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> Decision {
        self.decide(key, limit, window, Instant::now())
    }
}

/// Token buckets per key (a user): `burst` tokens, refilled at `per_minute`.
/// Local to a node.
pub struct TokenBuckets {
    buckets: Mutex<HashMap<String, Bucket>>,
    per_sec: f64,
    burst: f64,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

impl TokenBuckets {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        TokenBuckets {
            buckets: Mutex::new(HashMap::new()),
            per_sec: per_minute as f64 / 60.0,
            burst: burst.max(1) as f64,
        }
    }

    /// Takes a token, or says how long until one is available.
    pub fn take(&self, key: &str) -> Result<(), Duration> {
        self.take_at(key, Instant::now())
    }

    fn take_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = map.entry(key.to_string()).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_sec).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.per_sec))
        }
    }

    /// Drops the key's bucket (the user went offline).
    pub fn forget(&self, key: &str) {
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn buckets_allow_bursts_then_refill() {
        let b = TokenBuckets::new(60, 5);
        for _ in 0..5 {
            assert!(b.take("u").is_ok());
        }
        let wait = b.take("u").unwrap_err();
        assert!(wait <= Duration::from_secs(1));
        assert!(b.take("v").is_ok(), "per key");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(b.take("u").is_ok());
        assert!(b.take("u").is_ok());
        assert!(b.take("u").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn windows_reset() {
        let l = MemoryRateLimiter::default();
        let w = Duration::from_secs(60);
        for i in 0..3 {
            let d = l.hit("ip", 3, w).await;
            assert!(d.allowed);
            assert_eq!(d.remaining, 2 - i);
        }
        let d = l.hit("ip", 3, w).await;
        assert!(!d.allowed);
        assert_eq!(d.reset_in, w);
        assert!(l.hit("other", 3, w).await.allowed);
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(l.hit("ip", 3, w).await.allowed);
    }
}
