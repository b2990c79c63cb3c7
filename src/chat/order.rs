//! Orders a chat's deliveries against its close.
//!
//! A message is checked against its room and then emitted; a close removes
//! the room and then tells the members. Without an order between the two, a
//! message checked just before the close could reach the partner just after
//! they were told the chat ended (the soak counted 2 such in 805,415).
//! Deliveries hold their room's lock shared, a close holds it exclusively:
//! a message is either delivered before the close's events or refused with
//! `not_in_chat`, and deliveries never wait for each other.
//!
//! The locks are striped (a fixed set indexed by a hash of the room id), so
//! memory does not grow with rooms; a close only waits for the deliveries
//! in flight in its stripe. Holders never take a second stripe, so there is
//! no lock order to get wrong. Per process: across a cluster the partner's
//! node orders the Redis adapter's messages itself.

use std::hash::BuildHasher;

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

const STRIPES: usize = 256;

pub struct RoomOrder {
    stripes: Box<[RwLock<()>]>,
    /// Room ids are the server's: Fx hashing (one per message).
    hasher: rustc_hash::FxBuildHasher,
}

impl Default for RoomOrder {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| RwLock::new(())).collect(),
            hasher: Default::default(),
        }
    }
}

impl RoomOrder {
    fn stripe(&self, room_id: &str) -> &RwLock<()> {
        &self.stripes[(self.hasher.hash_one(room_id) as usize) % self.stripes.len()]
    }

    /// Held while a message is checked and emitted.
    pub async fn delivering(&self, room_id: &str) -> RwLockReadGuard<'_, ()> {
        self.stripe(room_id).read().await
    }

    /// Held while a room is closed and its end is told.
    pub async fn closing(&self, room_id: &str) -> RwLockWriteGuard<'_, ()> {
        self.stripe(room_id).write().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn deliveries_share_a_room_and_a_close_waits_for_them() {
        let order = RoomOrder::default();
        let d1 = order.delivering("r1").await;
        // Deliveries do not wait for each other.
        let d2 = tokio::time::timeout(Duration::ZERO, order.delivering("r1"))
            .await
            .expect("a second delivery goes at once");
        // A close waits for both.
        assert!(
            tokio::time::timeout(Duration::ZERO, order.closing("r1"))
                .await
                .is_err()
        );
        drop((d1, d2));
        let c = order.closing("r1").await;
        // While closing, deliveries wait.
        assert!(
            tokio::time::timeout(Duration::ZERO, order.delivering("r1"))
                .await
                .is_err()
        );
        drop(c);
        // A room in another stripe is never held up.
        let other = (0..1000)
            .map(|i| format!("room{i}"))
            .find(|r| !std::ptr::eq(order.stripe(r), order.stripe("r1")))
            .unwrap();
        let _c = order.closing("r1").await;
        assert!(
            tokio::time::timeout(Duration::ZERO, order.delivering(&other))
                .await
                .is_ok()
        );
    }
}
