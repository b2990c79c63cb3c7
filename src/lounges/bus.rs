//! How a room message gets its offset and reaches every member: one
//! process counts in memory and delivers to its own sockets; a cluster
//! counts with Redis INCR (atomic for the whole cluster) and delivers
//! through one Redis channel that every node reads, so every member, on
//! any node, sees a room's events in the same order.

use std::{collections::HashMap, sync::Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::store::{Author, RoomMessage};

/// What goes to a room's members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum BusEvent {
    Message {
        message: RoomMessage,
    },
    Deleted {
        room: String,
        id: String,
    },
    /// A moderator removed the user from the room.
    Removed {
        room: String,
        user: Author,
    },
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("lounges unavailable: {0}")]
pub struct BusError(pub String);

/// Gives each room message the next offset.
#[async_trait]
pub trait Sequencer: Send + Sync + 'static {
    /// The next offset of `room`, above `floor` (the highest offset the
    /// store has seen, in case the counter was lost).
    async fn next(&self, room: &str, floor: u64) -> Result<u64, BusError>;
}

/// One process's counters.
#[derive(Default)]
pub struct LocalSequencer(Mutex<HashMap<String, u64>>);

#[async_trait]
impl Sequencer for LocalSequencer {
    async fn next(&self, room: &str, floor: u64) -> Result<u64, BusError> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(room.to_string()).or_insert(0);
        *n = (*n).max(floor) + 1;
        Ok(*n)
    }
}

/// The next offset after a shared counter answered `got`: the counter may
/// have been lost (Redis restarted empty) while the store kept `floor`.
pub fn above_floor(got: u64, floor: u64) -> Option<u64> {
    (got <= floor).then(|| floor + 1 - got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn offsets_grow_per_room_and_respect_the_floor() {
        let s = LocalSequencer::default();
        assert_eq!(s.next("a", 0).await.unwrap(), 1);
        assert_eq!(s.next("a", 0).await.unwrap(), 2);
        assert_eq!(s.next("b", 0).await.unwrap(), 1);
        assert_eq!(s.next("a", 40).await.unwrap(), 41, "the store knew more");
        assert_eq!(s.next("a", 0).await.unwrap(), 42);
        assert_eq!(above_floor(1, 40), Some(40), "INCRBY 40 more: 41");
        assert_eq!(above_floor(41, 40), None);
    }

    #[test]
    fn events_cross_the_wire() {
        let ev = BusEvent::Deleted {
            room: "r".into(),
            id: "r.1".into(),
        };
        let json = serde_json::to_string(&ev).unwrap();
        assert_eq!(serde_json::from_str::<BusEvent>(&json).unwrap(), ev);
    }
}
