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

/// The rule, for every backend: the `count`-th hit of a window is allowed
/// while it is within `limit`.
pub fn decide(count: u64, limit: u32, reset_in: Duration) -> Decision {
    Decision {
        allowed: count <= limit as u64,
        limit,
        remaining: (limit as u64).saturating_sub(count) as u32,
        reset_in,
    }
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
            crate::memory::shrink_sparse(&mut map);
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
        decide(
            w.count as u64,
            limit,
            window.saturating_sub(now.duration_since(w.started)),
        )
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
///
/// A bucket outlives the user's sockets: reconnecting must not refill it
/// (connect, spend, disconnect in a loop once got 40× the budget). A bucket
/// that has refilled to `burst` is the same as no bucket, so those are swept
/// whenever the map has doubled since the last sweep: memory is bounded by
/// the users who spent events in the last `burst / rate`, not by users ever
/// seen.
pub struct TokenBuckets {
    inner: Mutex<Buckets>,
    per_sec: f64,
    burst: f64,
}

struct Buckets {
    /// Keyed by user ids (the server's): Fx hashing.
    map: rustc_hash::FxHashMap<String, Bucket>,
    sweep_at: usize,
}

/// The map is swept of full buckets when it reaches this size (then twice
/// what the sweep left).
const SWEEP_MIN: usize = 1024;

struct Bucket {
    tokens: f64,
    last: Instant,
}

impl TokenBuckets {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        TokenBuckets {
            inner: Mutex::new(Buckets {
                map: Default::default(),
                sweep_at: SWEEP_MIN,
            }),
            per_sec: (per_minute.max(1)) as f64 / 60.0,
            burst: burst.max(1) as f64,
        }
    }

    /// Takes a token, or says how long until one is available.
    pub fn take(&self, key: &str) -> Result<(), Duration> {
        self.take_at(key, Instant::now())
    }

    fn take_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.map.len() >= g.sweep_at && !g.map.contains_key(key) {
            let (per_sec, burst) = (self.per_sec, self.burst);
            g.map.retain(|_, b| {
                b.tokens + now.duration_since(b.last).as_secs_f64() * per_sec < burst
            });
            g.sweep_at = (g.map.len() * 2).max(SWEEP_MIN);
            crate::memory::shrink_sparse(&mut g.map);
        }
        // The key is copied only for a new bucket (every event takes one).
        if !g.map.contains_key(key) {
            let full = Bucket {
                tokens: self.burst,
                last: now,
            };
            g.map.insert(key.to_string(), full);
        }
        let Some(b) = g.map.get_mut(key) else {
            unreachable!("inserted above")
        };
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

    /// Buckets held (for tests and stats).
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    async fn full_buckets_are_swept_and_spent_ones_kept() {
        let b = TokenBuckets::new(60, 5);
        // One user spends their whole burst; many others one token each.
        for _ in 0..5 {
            b.take("spender").unwrap();
        }
        for i in 0..SWEEP_MIN - 1 {
            b.take(&format!("u{i}")).unwrap();
        }
        assert_eq!(b.len(), SWEEP_MIN);
        // Two seconds on, the one-token users are full again; the spender
        // is not (2 of 5 tokens back).
        tokio::time::advance(Duration::from_secs(2)).await;
        b.take("newcomer").unwrap();
        assert_eq!(b.len(), 2, "only the spender and the newcomer remain");
        b.take("spender").unwrap();
        b.take("spender").unwrap();
        assert!(b.take("spender").is_err(), "sweeping did not refill it");
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
