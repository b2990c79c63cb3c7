//! Recent chats (for reports) in Redis: `tandem:partners:<user>` (list,
//! newest first, at most 3; deleted when the user goes offline) and
//! `tandem:evidence:<room>` (list, at most 20 text messages), each expiring
//! `RECENT_TTL` after its last write.

use async_trait::async_trait;
use redis::{AsyncCommands, aio::ConnectionManager};
use serde::de::DeserializeOwned;

use crate::{
    safety::recent::{EVIDENCE_KEPT, PARTNERS_KEPT, Partner, RECENT_TTL, RecentChats, RecentError},
    store::Evidence,
};

fn err(e: impl std::fmt::Display) -> RecentError {
    RecentError(e.to_string())
}

pub struct RedisRecent {
    conn: ConnectionManager,
}

impl RedisRecent {
    pub fn new(conn: ConnectionManager) -> Self {
        RedisRecent { conn }
    }

    /// A list of JSON records (unreadable ones skipped).
    async fn list<T: DeserializeOwned>(&self, key: String) -> Result<Vec<T>, RecentError> {
        let raw: Vec<String> = self.conn.clone().lrange(key, 0, -1).await.map_err(err)?;
        Ok(raw
            .iter()
            .filter_map(|r| serde_json::from_str(r).ok())
            .collect())
    }
}

const TTL: i64 = RECENT_TTL.as_secs() as i64;

#[async_trait]
impl RecentChats for RedisRecent {
    async fn chat_started(&self, a: &str, b: &str, room: &str) -> Result<(), RecentError> {
        let mut pipe = redis::pipe();
        for (me, other) in [(a, b), (b, a)] {
            let key = format!("tandem:partners:{me}");
            let json = serde_json::to_string(&Partner {
                user: other.into(),
                room: room.into(),
            })
            .map_err(err)?;
            pipe.lrem(&key, 0, &json)
                .ignore()
                .lpush(&key, &json)
                .ignore()
                .ltrim(&key, 0, PARTNERS_KEPT as isize - 1)
                .ignore()
                .expire(&key, TTL)
                .ignore();
        }
        pipe.query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(err)
    }

    async fn note(&self, room: &str, message: Evidence) -> Result<(), RecentError> {
        let key = format!("tandem:evidence:{room}");
        let json = serde_json::to_string(&message).map_err(err)?;
        redis::pipe()
            .rpush(&key, json)
            .ignore()
            .ltrim(&key, -(EVIDENCE_KEPT as isize), -1)
            .ignore()
            .expire(&key, TTL)
            .ignore()
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(err)
    }

    async fn partners(&self, user: &str) -> Result<Vec<Partner>, RecentError> {
        self.list(format!("tandem:partners:{user}")).await
    }

    async fn forget(&self, user: &str) -> Result<(), RecentError> {
        self.conn
            .clone()
            .del::<_, ()>(format!("tandem:partners:{user}"))
            .await
            .map_err(err)
    }

    async fn evidence(&self, room: &str) -> Result<Vec<Evidence>, RecentError> {
        self.list(format!("tandem:evidence:{room}")).await
    }
}
