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

#[cfg(test)]
mod tests {
    use super::*;

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
