//! Random 1-to-1 matching: the rules live in [`queue::MatchQueue`]; the
//! [`Matcher`] trait is what the rest of the server uses, so a cluster can
//! keep the queue in Redis.

use std::sync::Mutex;

use async_trait::async_trait;
use tokio::time::Instant;

pub mod queue;

pub use queue::{Joined, MatchQueue, Mode, Pairing, Ticket};

#[derive(Debug, Clone, thiserror::Error)]
#[error("matching unavailable: {0}")]
pub struct MatchError(pub String);

#[async_trait]
pub trait Matcher: Send + Sync + 'static {
    /// Queues the ticket or pairs it at once; atomic.
    async fn join(&self, ticket: Ticket) -> Result<Joined, MatchError>;
    /// Leaves the queue; true if the user was queued.
    async fn leave(&self, user_id: &str) -> Result<bool, MatchError>;
    /// Pairs whoever has waited past the fallback.
    async fn poll(&self) -> Result<Vec<Pairing>, MatchError>;
    async fn is_queued(&self, user_id: &str) -> Result<bool, MatchError>;
    async fn queued(&self) -> Result<usize, MatchError>;
}

/// The single-node matcher: the queue behind a mutex.
pub struct LocalMatcher {
    queue: Mutex<MatchQueue>,
}

impl LocalMatcher {
    pub fn new(fallback: std::time::Duration) -> Self {
        LocalMatcher {
            queue: Mutex::new(MatchQueue::new(fallback)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MatchQueue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Matcher for LocalMatcher {
    async fn join(&self, ticket: Ticket) -> Result<Joined, MatchError> {
        Ok(self.lock().join(ticket, Instant::now()))
    }

    async fn leave(&self, user_id: &str) -> Result<bool, MatchError> {
        Ok(self.lock().leave(user_id))
    }

    async fn poll(&self) -> Result<Vec<Pairing>, MatchError> {
        Ok(self.lock().poll(Instant::now()))
    }

    async fn is_queued(&self, user_id: &str) -> Result<bool, MatchError> {
        Ok(self.lock().contains(user_id))
    }

    async fn queued(&self) -> Result<usize, MatchError> {
        Ok(self.lock().len())
    }
}
