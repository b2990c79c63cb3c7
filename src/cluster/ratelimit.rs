//! Fixed-window counters in Redis, shared by every node. One MULTI per hit
//! (start the window if there is none, count, read its time left); the
//! rule itself is [`crate::ratelimit::decide`], as on a single node.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;

use crate::ratelimit::{Decision, MemoryRateLimiter, RateLimiter, decide};

pub struct RedisRateLimiter {
    conn: ConnectionManager,
    /// Counts locally while Redis is unreachable, rather than refusing all.
    fallback: MemoryRateLimiter,
}

impl RedisRateLimiter {
    pub fn new(conn: ConnectionManager) -> Self {
        RedisRateLimiter {
            conn,
            fallback: MemoryRateLimiter::default(),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> Decision {
        let rkey = format!("tandem:rl:{key}");
        let window_ms = window.as_millis().max(1) as u64;
        let res: Result<(u64, i64), _> = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(&rkey)
            .arg(0)
            .arg("PX")
            .arg(window_ms)
            .arg("NX")
            .ignore()
            .incr(&rkey, 1)
            .pttl(&rkey)
            .query_async(&mut self.conn.clone())
            .await;
        match res {
            Ok((n, ttl)) => decide(n, limit, Duration::from_millis(ttl.max(0) as u64)),
            Err(e) => {
                tracing::warn!(error = %e, "Redis rate limit unavailable; counting on this node");
                self.fallback.hit(key, limit, window).await
            }
        }
    }
}
