//! Who is online, and whether they are idle, queued or in a chat.
//!
//! Behind a trait so a cluster can keep it in Redis; this module holds the
//! in-memory single-node implementation.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    Idle,
    Queued,
    InChat,
}

/// The identity a connected socket carries (from its access token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    pub id: String,
    pub username: String,
    pub is_guest: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OnlineUser {
    pub id: String,
    pub username: String,
    pub is_guest: bool,
    pub status: Status,
    pub online_since: DateTime<Utc>,
    /// Open sockets (tabs, devices) of this user.
    pub sockets: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceCounts {
    pub online_users: usize,
    pub available_users: usize,
    pub queued_users: usize,
    pub in_chat_users: usize,
    pub sockets: usize,
}

impl PresenceCounts {
    /// Counts users from their (status, open sockets).
    pub fn tally(users: impl Iterator<Item = (Status, usize)>) -> Self {
        let mut c = PresenceCounts::default();
        for (status, sockets) in users {
            c.online_users += 1;
            c.sockets += sockets;
            match status {
                Status::Idle => c.available_users += 1,
                Status::Queued => {
                    c.available_users += 1;
                    c.queued_users += 1;
                }
                Status::InChat => c.in_chat_users += 1,
            }
        }
        c
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("presence unavailable: {0}")]
pub struct PresenceError(pub String);

pub type PresenceResult<T> = Result<T, PresenceError>;

#[async_trait]
pub trait Presence: Send + Sync + 'static {
    /// Records a socket of `user`; returns true when it is the user's first
    /// (the user just came online).
    async fn connect(&self, user: &SessionUser, socket_id: &str) -> PresenceResult<bool>;
    /// Forgets a socket; returns true when it was the user's last.
    async fn disconnect(&self, user_id: &str, socket_id: &str) -> PresenceResult<bool>;
    async fn set_status(&self, user_id: &str, status: Status) -> PresenceResult<()>;
    async fn get(&self, user_id: &str) -> PresenceResult<Option<OnlineUser>>;
    /// Online users, oldest first; `available_only` keeps those not in a chat.
    async fn list(&self, available_only: bool, limit: usize) -> PresenceResult<Vec<OnlineUser>>;
    async fn counts(&self) -> PresenceResult<PresenceCounts>;
}

struct Entry {
    username: String,
    is_guest: bool,
    status: Status,
    since: DateTime<Utc>,
    sockets: HashSet<String>,
}

impl Entry {
    fn view(&self, id: &str) -> OnlineUser {
        OnlineUser {
            id: id.to_string(),
            username: self.username.clone(),
            is_guest: self.is_guest,
            status: self.status,
            online_since: self.since,
            sockets: self.sockets.len(),
        }
    }
}

/// Single-node presence.
#[derive(Default)]
pub struct MemoryPresence {
    users: Mutex<HashMap<String, Entry>>,
}

impl MemoryPresence {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Presence for MemoryPresence {
    async fn connect(&self, user: &SessionUser, socket_id: &str) -> PresenceResult<bool> {
        let mut users = self.lock();
        let entry = users.entry(user.id.clone()).or_insert_with(|| Entry {
            username: user.username.clone(),
            is_guest: user.is_guest,
            status: Status::Idle,
            since: Utc::now(),
            sockets: HashSet::new(),
        });
        entry.sockets.insert(socket_id.to_string());
        Ok(entry.sockets.len() == 1)
    }

    async fn disconnect(&self, user_id: &str, socket_id: &str) -> PresenceResult<bool> {
        let mut users = self.lock();
        let Some(entry) = users.get_mut(user_id) else {
            return Ok(false);
        };
        entry.sockets.remove(socket_id);
        if entry.sockets.is_empty() {
            users.remove(user_id);
            crate::memory::shrink_sparse(&mut users);
            return Ok(true);
        }
        Ok(false)
    }

    async fn set_status(&self, user_id: &str, status: Status) -> PresenceResult<()> {
        if let Some(e) = self.lock().get_mut(user_id) {
            e.status = status;
        }
        Ok(())
    }

    async fn get(&self, user_id: &str) -> PresenceResult<Option<OnlineUser>> {
        Ok(self.lock().get(user_id).map(|e| e.view(user_id)))
    }

    async fn list(&self, available_only: bool, limit: usize) -> PresenceResult<Vec<OnlineUser>> {
        let users = self.lock();
        let mut out: Vec<OnlineUser> = users
            .iter()
            .filter(|(_, e)| !available_only || e.status != Status::InChat)
            .map(|(id, e)| e.view(id))
            .collect();
        drop(users);
        out.sort_by(|a, b| a.online_since.cmp(&b.online_since).then(a.id.cmp(&b.id)));
        out.truncate(limit);
        Ok(out)
    }

    async fn counts(&self) -> PresenceResult<PresenceCounts> {
        let users = self.lock();
        Ok(PresenceCounts::tally(
            users.values().map(|e| (e.status, e.sockets.len())),
        ))
    }
}

// Behaviour (sockets, statuses, counts, lists) is tested for this and the
// Redis backend alike by `tests/engine_suite.rs`.
