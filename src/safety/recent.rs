//! What a report needs from recent chats: each user's last partners and
//! each chat's last text messages (its evidence). Bounded by users present:
//! a user's partners are forgotten when they go offline (and a chat's
//! messages once no member who could report it remembers it), and every
//! entry expires [`RECENT_TTL`] after its last write. On one node the
//! maps are in memory; a cluster keeps them in Redis
//! (`cluster::recent::RedisRecent`), so a report made on any node finds
//! the chat.

use std::{collections::VecDeque, sync::Mutex, time::Duration};

use async_trait::async_trait;
use tokio::time::Instant;

use crate::{expiring::Expiring, store::Evidence};

/// How long a chat stays reportable after its last activity (while its
/// reporter stays online).
pub const RECENT_TTL: Duration = Duration::from_secs(15 * 60);
/// Partners remembered per user.
pub const PARTNERS_KEPT: usize = 3;
/// Text messages kept per chat.
pub const EVIDENCE_KEPT: usize = 20;

#[derive(Debug, thiserror::Error)]
#[error("recent chats unavailable: {0}")]
pub struct RecentError(pub String);

/// A user's partner and the chat they had.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Partner {
    pub user: String,
    pub room: String,
}

#[async_trait]
pub trait RecentChats: Send + Sync + 'static {
    /// Remembers each as the other's partner in `room`.
    async fn chat_started(&self, a: &str, b: &str, room: &str) -> Result<(), RecentError>;
    /// Keeps a text message of `room` (the last [`EVIDENCE_KEPT`]).
    async fn note(&self, room: &str, message: Evidence) -> Result<(), RecentError>;
    /// The user's last partners, newest first.
    async fn partners(&self, user: &str) -> Result<Vec<Partner>, RecentError>;
    /// The chat's last text messages, oldest first.
    async fn evidence(&self, room: &str) -> Result<Vec<Evidence>, RecentError>;
    /// The user went offline: they can no longer report, so their partners
    /// go (and the messages of chats nobody can report any more).
    async fn forget(&self, user: &str) -> Result<(), RecentError>;
}

/// Keeps the newest `keep` items, newest at the front; returns those
/// pushed out.
pub fn remember<T: PartialEq>(list: &mut VecDeque<T>, item: T, keep: usize) -> Vec<T> {
    list.retain(|x| *x != item);
    list.push_front(item);
    list.split_off(keep.min(list.len())).into()
}

/// Partners by user, evidence by chat.
type Maps = (Expiring<VecDeque<Partner>>, Expiring<VecDeque<Evidence>>);

/// The single node's recent chats.
pub struct MemoryRecent {
    inner: Mutex<Maps>,
}

impl Default for MemoryRecent {
    fn default() -> Self {
        MemoryRecent {
            inner: Mutex::new((Expiring::new(RECENT_TTL), Expiring::new(RECENT_TTL))),
        }
    }
}

impl MemoryRecent {
    fn lock(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Entries held (users, chats): for tests of the bound.
    pub fn sizes(&self) -> (usize, usize) {
        let g = self.lock();
        (g.0.len(), g.1.len())
    }

    fn started_at(&self, a: &str, b: &str, room: &str, now: Instant) {
        let mut g = self.lock();
        let mut dropped = Vec::new();
        for (me, other) in [(a, b), (b, a)] {
            let list = g.0.touch(me, now);
            for p in remember(
                list,
                Partner {
                    user: other.into(),
                    room: room.into(),
                },
                PARTNERS_KEPT,
            ) {
                dropped.push(p);
            }
        }
        for p in dropped {
            drop_unreferenced(&mut g, &p, now);
        }
    }

    fn forget_now(&self, user: &str, now: Instant) {
        let mut g = self.lock();
        if let Some(list) = g.0.remove(user) {
            for p in list {
                drop_unreferenced(&mut g, &p, now);
            }
        }
    }

    fn note_at(&self, room: &str, message: Evidence, now: Instant) {
        let mut g = self.lock();
        let list = g.1.touch(room, now);
        list.push_back(message);
        while list.len() > EVIDENCE_KEPT {
            list.pop_front();
        }
    }
}

/// Drops a chat's messages once its other member (`p.user`) no longer
/// remembers it either.
fn drop_unreferenced(g: &mut Maps, p: &Partner, now: Instant) {
    let still =
        g.0.get(&p.user, now)
            .is_some_and(|l| l.iter().any(|q| q.room == p.room));
    if !still {
        g.1.remove(&p.room);
    }
}

#[async_trait]
impl RecentChats for MemoryRecent {
    async fn forget(&self, user: &str) -> Result<(), RecentError> {
        self.forget_now(user, Instant::now());
        Ok(())
    }

    async fn chat_started(&self, a: &str, b: &str, room: &str) -> Result<(), RecentError> {
        self.started_at(a, b, room, Instant::now());
        Ok(())
    }

    async fn note(&self, room: &str, message: Evidence) -> Result<(), RecentError> {
        self.note_at(room, message, Instant::now());
        Ok(())
    }

    async fn partners(&self, user: &str) -> Result<Vec<Partner>, RecentError> {
        Ok(self
            .lock()
            .0
            .get(user, Instant::now())
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn evidence(&self, room: &str) -> Result<Vec<Evidence>, RecentError> {
        Ok(self
            .lock()
            .1
            .get(room, Instant::now())
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn said(n: usize) -> Evidence {
        Evidence {
            from: "a".into(),
            text: format!("m{n}"),
            at: Utc::now(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_three_partners_and_twenty_messages_expire() {
        let r = MemoryRecent::default();
        for (i, p) in ["b", "c", "d", "e"].iter().enumerate() {
            r.chat_started("a", p, &format!("r{i}")).await.unwrap();
        }
        let partners: Vec<_> = r
            .partners("a")
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.user)
            .collect();
        assert_eq!(partners, ["e", "d", "c"], "newest first, three kept");
        assert_eq!(r.partners("b").await.unwrap()[0].room, "r0");
        for n in 0..25 {
            r.note("r3", said(n)).await.unwrap();
        }
        let texts: Vec<_> = r
            .evidence("r3")
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.text)
            .collect();
        assert_eq!(texts.len(), 20);
        assert_eq!((texts[0].as_str(), texts[19].as_str()), ("m5", "m24"));
        tokio::time::advance(RECENT_TTL).await;
        assert!(r.partners("a").await.unwrap().is_empty());
        assert!(r.evidence("r3").await.unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn going_offline_forgets_partners_and_unreportable_chats() {
        let r = MemoryRecent::default();
        r.chat_started("a", "b", "r1").await.unwrap();
        r.note("r1", said(1)).await.unwrap();
        r.forget("a").await.unwrap();
        assert!(r.partners("a").await.unwrap().is_empty());
        assert_eq!(
            r.evidence("r1").await.unwrap().len(),
            1,
            "b may still report"
        );
        r.forget("b").await.unwrap();
        assert!(r.evidence("r1").await.unwrap().is_empty());
        assert_eq!(r.sizes(), (0, 0));
        // A chat pushed out of both members' last three goes too.
        r.chat_started("x", "y", "old").await.unwrap();
        r.note("old", said(2)).await.unwrap();
        for i in 0..3 {
            r.chat_started("x", &format!("p{i}"), &format!("n{i}"))
                .await
                .unwrap();
            r.chat_started("y", &format!("q{i}"), &format!("m{i}"))
                .await
                .unwrap();
        }
        assert!(r.evidence("old").await.unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_bounded_by_recent_activity() {
        let r = MemoryRecent::default();
        for i in 0..3000 {
            r.chat_started(&format!("u{i}"), &format!("v{i}"), &format!("r{i}"))
                .await
                .unwrap();
        }
        assert_eq!(r.sizes().0, 6000);
        tokio::time::advance(RECENT_TTL).await;
        for i in 0..10 {
            r.chat_started(&format!("x{i}"), &format!("y{i}"), "late")
                .await
                .unwrap();
        }
        assert!(r.sizes().0 <= 20, "expired users swept: {:?}", r.sizes());
    }
}
