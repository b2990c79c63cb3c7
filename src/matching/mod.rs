//! Random 1-to-1 matching: the rules live in [`queue::MatchQueue`]; the
//! [`Matcher`] trait is what the rest of the server uses, so a cluster can
//! keep the queue in Redis.

use std::sync::Mutex;

use async_trait::async_trait;
use tokio::{sync::Notify, time::Instant};

pub mod queue;

pub use queue::{Joined, MatchQueue, Mode, Pairing, Ticket, TicketStanding};

/// The queue's size by mode: `text`, `video`, or `any` (no mode asked).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Waiting {
    pub total: usize,
    pub by_mode: std::collections::BTreeMap<String, usize>,
}

impl Waiting {
    pub fn count(modes: impl IntoIterator<Item = Option<Mode>>) -> Self {
        let mut w = Waiting::default();
        for m in modes {
            w.total += 1;
            *w.by_mode.entry(Mode::label(m).to_string()).or_default() += 1;
        }
        w
    }
}

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
    /// How many wait, by the mode they asked for (the cluster's, when clustered).
    async fn waiting(&self) -> Result<Waiting, MatchError>;
    /// When [`Matcher::poll`] next has something to do (a waiter reaches
    /// the fallback); None: nothing until someone joins.
    async fn next_wakeup(&self) -> Option<Instant>;
    /// Notified when someone joins and waits (their fallback is a new deadline).
    fn joins(&self) -> &Notify;
}

/// Sleeps until `wake` (forever if None); false if `notified` came first.
/// The deadline drivers' one way of waiting: a deadline, or news of a new one.
pub async fn sleep_or_notified(
    wake: Option<Instant>,
    notified: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
) -> bool {
    let due = async {
        match wake {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = due => true,
        () = notified => false,
    }
}

/// Pairs waiters whose fallback has come, for as long as it runs: sleeps
/// until the matcher's next deadline or until someone joins (no polling
/// while nobody waits). `on_pair` starts each chat.
pub async fn drive<F, Fut>(matcher: &dyn Matcher, mut on_pair: F)
where
    F: FnMut(Pairing) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        let joined = matcher.joins().notified();
        tokio::pin!(joined);
        joined.as_mut().enable();
        let wake = matcher.next_wakeup().await;
        if !sleep_or_notified(wake, joined).await {
            continue;
        }
        match matcher.poll().await {
            Ok(pairs) => {
                for p in pairs {
                    on_pair(p).await;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "match poll failed");
                // Back off a little so a failing backend is not hammered.
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
    }
}

/// The single-node matcher: the queue behind a mutex.
pub struct LocalMatcher {
    queue: Mutex<MatchQueue>,
    joins: Notify,
}

impl LocalMatcher {
    pub fn new(fallback: std::time::Duration) -> Self {
        LocalMatcher {
            queue: Mutex::new(MatchQueue::new(fallback)),
            joins: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MatchQueue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Matcher for LocalMatcher {
    async fn join(&self, ticket: Ticket) -> Result<Joined, MatchError> {
        let now = Instant::now();
        let (joined, wake) = {
            let mut q = self.lock();
            let joined = q.join(ticket, now);
            let wake = matches!(joined, Joined::Waiting) && q.wake_for_newcomer(now);
            (joined, wake)
        };
        // The driver runs elsewhere: a wake-up for every waiter of a match
        // storm cost it ~30 % of its CPU (BENCHMARKS.md, nineteenth session).
        if wake {
            self.joins.notify_one();
        }
        Ok(joined)
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

    async fn waiting(&self) -> Result<Waiting, MatchError> {
        Ok(Waiting::count(self.lock().modes()))
    }

    async fn next_wakeup(&self) -> Option<Instant> {
        self.lock().arm(Instant::now())
    }

    fn joins(&self) -> &Notify {
        &self.joins
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ticket(id: &str, mode: Mode) -> Ticket {
        Ticket {
            user_id: id.into(),
            username: id.into(),
            interests: vec![],
            language: None,
            mode: Some(mode),
            avoid: Default::default(),
            standing: Default::default(),
        }
    }

    /// The driver sleeps until the fallback deadline, not on a poll, and
    /// pairs at it: on simulated time.
    #[tokio::test(start_paused = true)]
    async fn the_driver_wakes_at_the_fallback_deadline() {
        let fallback = Duration::from_secs(5);
        let m = std::sync::Arc::new(LocalMatcher::new(fallback));
        let paired = std::sync::Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let driver = {
            let (m, paired) = (m.clone(), paired.clone());
            tokio::spawn(async move {
                drive(m.as_ref(), |p| {
                    paired.lock().unwrap().push((p, Instant::now()));
                    async {}
                })
                .await
            })
        };
        tokio::task::yield_now().await;
        // Incompatible modes: they wait for the fallback. Paused time
        // advances by itself to the next timer when every task is idle.
        assert!(matches!(
            m.join(ticket("a", Mode::Text)).await.unwrap(),
            Joined::Waiting
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(matches!(
            m.join(ticket("b", Mode::Video)).await.unwrap(),
            Joined::Waiting
        ));
        tokio::time::sleep(Duration::from_millis(3_900)).await;
        assert!(paired.lock().unwrap().is_empty(), "not before a's fallback");
        tokio::time::sleep(Duration::from_secs(10)).await;
        let got = paired.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].1.duration_since(start),
            fallback,
            "woken exactly at a's deadline"
        );
        drop(got);
        driver.abort();
    }
}
