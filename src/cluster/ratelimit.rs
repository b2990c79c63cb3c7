//! Fixed-window counters in Redis, shared by every node.

use std::time::Duration;

use async_trait::async_trait;
use redis::{Script, aio::ConnectionManager};

use crate::ratelimit::{Decision, MemoryRateLimiter, RateLimiter};

const HIT: &str = r#"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
"#;

pub struct RedisRateLimiter {
    conn: ConnectionManager,
    script: Script,
    /// Counts locally while Redis is unreachable, rather than refusing all.
    fallback: MemoryRateLimiter,
}

impl RedisRateLimiter {
    pub fn new(conn: ConnectionManager) -> Self {
        RedisRateLimiter {
            conn,
            script: Script::new(HIT),
            fallback: MemoryRateLimiter::default(),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> Decision {
        let res: Result<(u64, i64), _> = self
            .script
            .key(format!("tandem:rl:{key}"))
            .arg(window.as_millis() as u64)
            .invoke_async(&mut self.conn.clone())
            .await;
        match res {
            Ok((n, ttl)) => Decision {
                allowed: n <= limit as u64,
                limit,
                remaining: (limit as u64).saturating_sub(n) as u32,
                reset_in: Duration::from_millis(ttl.max(0) as u64),
            },
            Err(e) => {
                tracing::warn!(error = %e, "Redis rate limit unavailable; counting on this node");
                self.fallback.hit(key, limit, window).await
            }
        }
    }
}
