//! Orders a chat's deliveries against its close.
//!
//! A message is checked against its room and then emitted; a close removes
//! the room and then tells the members. Without an order between the two, a
//! message checked just before the close could reach the partner just after
//! they were told the chat ended (the soak counted 2 such in 805,415). Both
//! take the room's lock for check-and-emit, so a message is either delivered
//! before the close's events or refused with `not_in_chat`.
//!
//! The locks are striped (a fixed set indexed by a hash of the room id), so
//! memory does not grow with rooms; two rooms sharing a stripe only wait on
//! each other for the length of one emit. Holders never take a second
//! stripe, so there is no lock order to get wrong. Per process: across a
//! cluster the partner's node orders the Redis adapter's messages itself.

use std::hash::BuildHasher;

use tokio::sync::{Mutex, MutexGuard};

const STRIPES: usize = 256;

pub struct RoomOrder {
    stripes: Box<[Mutex<()>]>,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for RoomOrder {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: Default::default(),
        }
    }
}

impl RoomOrder {
    fn stripe(&self, room_id: &str) -> usize {
        (self.hasher.hash_one(room_id) as usize) % self.stripes.len()
    }

    /// Held while a room's state is checked and its events are emitted.
    pub async fn lock(&self, room_id: &str) -> MutexGuard<'_, ()> {
        self.stripes[self.stripe(room_id)].lock().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_room_is_serialized_and_others_are_not_blocked_for_good() {
        let order = RoomOrder::default();
        let g = order.lock("r1").await;
        // Same room: must wait.
        assert!(
            tokio::time::timeout(std::time::Duration::ZERO, order.lock("r1"))
                .await
                .is_err()
        );
        drop(g);
        let _g = order.lock("r1").await;
        // A room in another stripe is free.
        let other = (0..1000)
            .map(|i| format!("room{i}"))
            .find(|r| order.stripe(r) != order.stripe("r1"))
            .unwrap();
        assert!(
            tokio::time::timeout(std::time::Duration::ZERO, order.lock(&other))
                .await
                .is_ok()
        );
    }
}
