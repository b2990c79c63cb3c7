//! Chats between two matched users: who is in which room, the files shared
//! there, who stepped away (session recovery) and last partners. (Blocks
//! live in the account store: they outlast sessions and processes.)
//!
//! Behind the [`ChatRooms`] trait so a cluster can keep it in Redis; this
//! module holds the in-memory single-node implementation.

use std::{
    collections::{BTreeSet, HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

pub mod order;
pub mod rules;
pub mod text;
pub mod typing;

pub use order::RoomOrder;
use rules::{Outcome, Write};

use rustc_hash::FxHashMap;

use crate::expiring::Expiring;

/// Messages kept for a member who dropped, delivered when they come back.
pub const RECOVERY_BUFFER: usize = 20;

/// How long a chat's partner is avoided by the matcher after it closed. It
/// only matters for the next match: it is also forgotten when the user goes
/// offline, so memory follows the users present, not every user ever seen.
pub const LAST_PARTNER_TTL: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Member {
    pub id: String,
    pub username: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Caller,
    Callee,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RoomInfo {
    pub id: String,
    pub caller: Member,
    pub callee: Member,
    pub common_interests: Vec<String>,
    pub created_at: DateTime<Utc>,
}

impl RoomInfo {
    /// The other member and this user's role, if the user is in the room.
    pub fn seen_by(&self, user_id: &str) -> Option<(&Member, Role)> {
        if self.caller.id == user_id {
            Some((&self.callee, Role::Caller))
        } else if self.callee.id == user_id {
            Some((&self.caller, Role::Callee))
        } else {
            None
        }
    }
}

/// Where an event for a room member goes (see [`ChatRooms::hold_if_away`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The member is away: the event was kept for their return.
    Kept,
    /// The member is present: emit it now.
    Deliver,
    /// The room is closed: nothing to deliver to.
    Gone,
}

/// A room that was closed, with the files that were shared in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    pub info: RoomInfo,
    pub files: Vec<String>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RoomsError {
    #[error("user {0} is already in a chat")]
    Busy(String),
    #[error("chat state unavailable: {0}")]
    Unavailable(String),
}

pub type RoomsResult<T> = Result<T, RoomsError>;

#[async_trait]
pub trait ChatRooms: Send + Sync + 'static {
    /// Opens a room; fails if either member is already in one (atomic).
    async fn open(&self, room: RoomInfo) -> RoomsResult<()>;
    async fn room_of(&self, user_id: &str) -> RoomsResult<Option<Arc<RoomInfo>>>;
    /// Closes the room (if still open) and records each member as the
    /// other's last partner.
    async fn close(&self, room_id: &str) -> RoomsResult<Option<Closed>>;
    async fn add_file(&self, room_id: &str, file_id: &str) -> RoomsResult<()>;
    /// Removes and returns the room's files (for `chat:clear`).
    async fn take_files(&self, room_id: &str) -> RoomsResult<Vec<String>>;
    async fn room_count(&self) -> RoomsResult<usize>;

    /// Marks a member as away (their last socket dropped) until `deadline`;
    /// returns a token that [`ChatRooms::expire_away`] must present. The
    /// deadline is shared state: whichever process (in a cluster, node)
    /// runs the grace driver honours it, so it survives the process that
    /// saw the disconnect.
    async fn mark_away(
        &self,
        room_id: &str,
        user_id: &str,
        deadline: DateTime<Utc>,
    ) -> RoomsResult<Option<u64>>;
    /// The earliest grace deadline, if any member is away.
    async fn next_grace(&self) -> RoomsResult<Option<DateTime<Utc>>>;
    /// Members whose grace ended at `now`: (room id, user id, token).
    async fn due_graces(&self, now: DateTime<Utc>) -> RoomsResult<Vec<(String, String, u64)>>;
    /// Notified when this process adds a grace deadline.
    fn graces_changed(&self) -> &tokio::sync::Notify;
    /// What to do with `event` for member `user_id`: keep it if they are
    /// away, deliver it now, or refuse it because the room is gone.
    /// `event` is made only if it is kept (most are delivered at once).
    async fn hold_if_away(
        &self,
        room_id: &str,
        user_id: &str,
        event: &(dyn Fn() -> Value + Send + Sync),
    ) -> RoomsResult<Hold>;
    /// The member came back: returns what was kept for them, or None if they
    /// were not away.
    async fn mark_back(&self, room_id: &str, user_id: &str) -> RoomsResult<Option<Vec<Value>>>;
    /// Closes the room if the member is still away since `token`.
    async fn expire_away(
        &self,
        room_id: &str,
        user_id: &str,
        token: u64,
    ) -> RoomsResult<Option<Closed>>;

    /// The user `user_id` must not be matched with next: the last partner.
    async fn avoid_set(&self, user_id: &str) -> RoomsResult<HashSet<String>>;
    /// The user went offline: what only mattered for their next match goes.
    async fn forget_user(&self, user_id: &str) -> RoomsResult<()>;
}

struct Inner {
    // Keys are ids the server made (rooms, users): Fx hashing, no SipHash.
    /// Shared with whoever asked [`ChatRooms::room_of`] (every message does).
    rooms: FxHashMap<String, Arc<RoomInfo>>,
    user_room: FxHashMap<String, String>,
    /// room → user → (token, deadline). Nested, so the per-message lookup
    /// borrows its keys instead of building them.
    away: FxHashMap<String, FxHashMap<String, (u64, DateTime<Utc>)>>,
    /// room → user → what is kept for them.
    kept: FxHashMap<String, FxHashMap<String, VecDeque<Value>>>,
    files: FxHashMap<String, Vec<String>>,
    /// The grace index: deadline, room, user.
    graces: BTreeSet<(DateTime<Utc>, String, String)>,
    last_partner: Expiring<String>,
    next_token: u64,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            rooms: FxHashMap::default(),
            user_room: FxHashMap::default(),
            away: FxHashMap::default(),
            kept: FxHashMap::default(),
            files: FxHashMap::default(),
            graces: BTreeSet::new(),
            last_partner: Expiring::new(LAST_PARTNER_TTL),
            next_token: 0,
        }
    }
}

/// Everything is at hand: the view never misses.
impl rules::View for Inner {
    fn room(&self, id: &str) -> rules::Read<Option<RoomInfo>> {
        Ok(self.rooms.get(id).map(|r| RoomInfo::clone(r)))
    }
    fn has_room(&self, id: &str) -> rules::Read<bool> {
        Ok(self.rooms.contains_key(id))
    }
    fn user_room(&self, user: &str) -> rules::Read<Option<String>> {
        Ok(self.user_room.get(user).cloned())
    }
    fn away(&self, room: &str, user: &str) -> rules::Read<Option<u64>> {
        Ok(self.away_of(room, user).map(|(t, _)| *t))
    }
    fn kept(&self, room: &str, user: &str) -> rules::Read<Vec<Value>> {
        Ok(self
            .kept
            .get(room)
            .and_then(|r| r.get(user))
            .map(|k| k.iter().cloned().collect())
            .unwrap_or_default())
    }
    fn files(&self, room: &str) -> rules::Read<Vec<String>> {
        Ok(self.files.get(room).cloned().unwrap_or_default())
    }
}

impl Inner {
    fn away_of(&self, room: &str, user: &str) -> Option<&(u64, DateTime<Utc>)> {
        self.away.get(room).and_then(|r| r.get(user))
    }

    fn apply(&mut self, writes: Vec<Write>) {
        for w in writes {
            match w {
                Write::PutRoom(room) => {
                    self.rooms.insert(room.id.clone(), Arc::new(room));
                }
                Write::DelRoom(id) => {
                    self.rooms.remove(&id);
                }
                Write::PutUserRoom { user, room } => {
                    self.user_room.insert(user, room);
                }
                Write::DelUserRoom(user) => {
                    self.user_room.remove(&user);
                }
                Write::PutAway {
                    room,
                    user,
                    token,
                    deadline,
                } => {
                    let members = self.away.entry(room.clone()).or_default();
                    if let Some((_, old)) = members.insert(user.clone(), (token, deadline)) {
                        self.graces.remove(&(old, room.clone(), user.clone()));
                    }
                    self.graces.insert((deadline, room, user));
                }
                Write::DelAway { room, user } => {
                    if let Some(members) = self.away.get_mut(&room) {
                        if let Some((_, old)) = members.remove(&user) {
                            self.graces.remove(&(old, room.clone(), user));
                        }
                        if members.is_empty() {
                            self.away.remove(&room);
                        }
                    }
                }
                Write::PushKept { room, user, event } => {
                    let kept = self.kept.entry(room).or_default().entry(user).or_default();
                    rules::push_kept(kept, event);
                }
                Write::DelKept { room, user } => {
                    if let Some(members) = self.kept.get_mut(&room) {
                        members.remove(&user);
                        if members.is_empty() {
                            self.kept.remove(&room);
                        }
                    }
                }
                Write::PushFile { room, file } => self.files.entry(room).or_default().push(file),
                Write::DelFiles(room) => {
                    self.files.remove(&room);
                }
                Write::SetLastPartner { user, partner } => {
                    self.last_partner.insert(&user, partner, Instant::now());
                }
            }
        }
        use crate::memory::shrink_sparse;
        shrink_sparse(&mut self.rooms);
        shrink_sparse(&mut self.user_room);
        shrink_sparse(&mut self.away);
        shrink_sparse(&mut self.kept);
        shrink_sparse(&mut self.files);
    }

    /// Runs a rule and applies its writes, under the one lock.
    fn run<T>(&mut self, rule: impl FnOnce(&Self) -> rules::Read<Outcome<T>>) -> T {
        match rule(self) {
            Ok(out) => {
                self.apply(out.writes);
                out.value
            }
            // Inner has every record: a rule cannot miss one.
            Err(rules::Missing(key)) => unreachable!("in-memory view missed {key:?}"),
        }
    }
}

/// The single node's chat state: the rules of [`rules`] over maps.
#[derive(Default)]
pub struct MemoryRooms {
    inner: Mutex<Inner>,
    graces: tokio::sync::Notify,
}

impl MemoryRooms {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ChatRooms for MemoryRooms {
    async fn open(&self, room: RoomInfo) -> RoomsResult<()> {
        self.lock().run(|v| rules::open(v, &room))
    }

    async fn room_of(&self, user_id: &str) -> RoomsResult<Option<Arc<RoomInfo>>> {
        let g = self.lock();
        Ok(g.user_room
            .get(user_id)
            .and_then(|r| g.rooms.get(r))
            .cloned())
    }

    async fn close(&self, room_id: &str) -> RoomsResult<Option<Closed>> {
        Ok(self.lock().run(|v| rules::close(v, room_id)))
    }

    async fn add_file(&self, room_id: &str, file_id: &str) -> RoomsResult<()> {
        self.lock().run(|v| rules::add_file(v, room_id, file_id));
        Ok(())
    }

    async fn take_files(&self, room_id: &str) -> RoomsResult<Vec<String>> {
        Ok(self.lock().run(|v| rules::take_files(v, room_id)))
    }

    async fn room_count(&self) -> RoomsResult<usize> {
        Ok(self.lock().rooms.len())
    }

    async fn mark_away(
        &self,
        room_id: &str,
        user_id: &str,
        deadline: DateTime<Utc>,
    ) -> RoomsResult<Option<u64>> {
        let mut g = self.lock();
        g.next_token += 1;
        let token = g.next_token;
        Ok(g.run(|v| rules::mark_away(v, room_id, user_id, deadline, token)))
    }

    async fn next_grace(&self) -> RoomsResult<Option<DateTime<Utc>>> {
        Ok(self.lock().graces.first().map(|(at, _, _)| *at))
    }

    fn graces_changed(&self) -> &tokio::sync::Notify {
        &self.graces
    }

    async fn due_graces(&self, now: DateTime<Utc>) -> RoomsResult<Vec<(String, String, u64)>> {
        let g = self.lock();
        Ok(g.graces
            .iter()
            .take_while(|(at, _, _)| *at <= now)
            .filter_map(|(_, room, user)| {
                let (token, _) = g.away_of(room, user)?;
                Some((room.clone(), user.clone(), *token))
            })
            .collect())
    }

    async fn hold_if_away(
        &self,
        room_id: &str,
        user_id: &str,
        event: &(dyn Fn() -> Value + Send + Sync),
    ) -> RoomsResult<Hold> {
        Ok(self.lock().run(|v| rules::hold(v, room_id, user_id, event)))
    }

    async fn mark_back(&self, room_id: &str, user_id: &str) -> RoomsResult<Option<Vec<Value>>> {
        Ok(self.lock().run(|v| rules::mark_back(v, room_id, user_id)))
    }

    async fn expire_away(
        &self,
        room_id: &str,
        user_id: &str,
        token: u64,
    ) -> RoomsResult<Option<Closed>> {
        Ok(self
            .lock()
            .run(|v| rules::expire_away(v, room_id, user_id, token)))
    }

    async fn avoid_set(&self, user_id: &str) -> RoomsResult<HashSet<String>> {
        let g = self.lock();
        Ok(g.last_partner
            .get(user_id, Instant::now())
            .cloned()
            .into_iter()
            .collect())
    }

    async fn forget_user(&self, user_id: &str) -> RoomsResult<()> {
        self.lock().last_partner.remove(user_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expiring::SWEEP_MIN;
    use serde_json::json;

    /// A room of `a` (caller) and `b` (callee); shared with `rules`' tests.
    pub(super) fn room(id: &str, a: &str, b: &str) -> RoomInfo {
        RoomInfo {
            id: id.into(),
            caller: Member {
                id: a.into(),
                username: a.into(),
            },
            callee: Member {
                id: b.into(),
                username: b.into(),
            },
            common_interests: vec![],
            created_at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn rooms_are_exclusive_and_close_records_partners() {
        let r = MemoryRooms::default();
        r.open(room("r1", "a", "b")).await.unwrap();
        assert_eq!(
            r.open(room("r2", "c", "b")).await,
            Err(RoomsError::Busy("b".into()))
        );
        assert_eq!(r.room_of("a").await.unwrap().unwrap().id, "r1");
        let (partner, role) = r
            .room_of("b")
            .await
            .unwrap()
            .unwrap()
            .seen_by("b")
            .map(|(m, ro)| (m.id.clone(), ro))
            .unwrap();
        assert_eq!((partner.as_str(), role), ("a", Role::Callee));
        r.add_file("r1", "f1").await.unwrap();
        let closed = r.close("r1").await.unwrap().unwrap();
        assert_eq!(closed.files, vec!["f1".to_string()]);
        assert!(r.close("r1").await.unwrap().is_none());
        assert!(r.room_of("a").await.unwrap().is_none());
        assert!(r.avoid_set("a").await.unwrap().contains("b"));
        r.forget_user("a").await.unwrap();
        assert!(r.avoid_set("a").await.unwrap().is_empty(), "gone offline");
        assert!(r.avoid_set("b").await.unwrap().contains("a"));
    }

    #[tokio::test]
    async fn grace_deadlines_come_due_at_their_time() {
        let r = MemoryRooms::default();
        r.open(room("r1", "a", "b")).await.unwrap();
        let t0 = Utc::now();
        let grace = chrono::Duration::seconds(30);
        assert_eq!(r.next_grace().await.unwrap(), None);
        let token = r.mark_away("r1", "b", t0 + grace).await.unwrap().unwrap();
        assert_eq!(r.next_grace().await.unwrap(), Some(t0 + grace));
        assert!(
            r.due_graces(t0 + grace - chrono::Duration::milliseconds(1))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            r.due_graces(t0 + grace).await.unwrap(),
            vec![("r1".to_string(), "b".to_string(), token)]
        );
        // Back in time: nothing is due any more.
        r.mark_back("r1", "b").await.unwrap();
        assert_eq!(r.next_grace().await.unwrap(), None);
        assert!(r.due_graces(t0 + grace * 2).await.unwrap().is_empty());
        // Away again, and expired: the room closes.
        let token = r.mark_away("r1", "b", t0 + grace).await.unwrap().unwrap();
        let (room_id, user, tok) = r.due_graces(t0 + grace).await.unwrap().remove(0);
        assert_eq!(tok, token);
        assert!(r.expire_away(&room_id, &user, tok).await.unwrap().is_some());
        assert!(r.due_graces(t0 + grace).await.unwrap().is_empty());
    }

    /// Guests who drop and never come back: their chats close when the
    /// grace ends, after they went offline, and leave nothing behind.
    #[tokio::test]
    async fn members_who_left_for_good_leave_nothing_behind() {
        let r = MemoryRooms::default();
        for i in 0..100 {
            let (id, a, b) = (format!("r{i}"), format!("a{i}"), format!("b{i}"));
            r.open(room(&id, &a, &b)).await.unwrap();
            // b drops: away, then offline (what `realtime::cleanup` does).
            let token = r.mark_away(&id, &b, Utc::now()).await.unwrap().unwrap();
            r.forget_user(&b).await.unwrap();
            assert!(r.expire_away(&id, &b, token).await.unwrap().is_some());
            assert!(r.avoid_set(&b).await.unwrap().is_empty());
            assert!(r.avoid_set(&a).await.unwrap().contains(&b), "a avoids b");
            r.forget_user(&a).await.unwrap();
        }
        let g = r.lock();
        assert_eq!(g.last_partner.len(), 0);
        assert!(g.rooms.is_empty() && g.user_room.is_empty());
        assert!(g.away.is_empty() && g.kept.is_empty() && g.graces.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn last_partners_expire_and_are_swept() {
        let r = MemoryRooms::default();
        r.open(room("r1", "a", "b")).await.unwrap();
        r.close("r1").await.unwrap();
        assert_eq!(r.avoid_set("a").await.unwrap().len(), 1);
        tokio::time::advance(LAST_PARTNER_TTL).await;
        assert!(
            r.avoid_set("a").await.unwrap().is_empty(),
            "the last partner is forgotten"
        );
        // Many one-off users: the maps are bounded by those seen lately.
        for i in 0..(3 * SWEEP_MIN) {
            let id = format!("r{i}");
            r.open(room(&id, &format!("x{i}"), &format!("y{i}")))
                .await
                .unwrap();
            r.close(&id).await.unwrap();
            if i % SWEEP_MIN == 0 {
                tokio::time::advance(LAST_PARTNER_TTL).await;
            }
        }
        let g = r.lock();
        assert!(
            g.last_partner.len() <= 2 * SWEEP_MIN + 2,
            "{}",
            g.last_partner.len()
        );
    }

    #[tokio::test]
    async fn away_members_keep_the_last_messages_and_expire_by_token() {
        let r = MemoryRooms::default();
        r.open(room("r1", "a", "b")).await.unwrap();
        assert_eq!(
            r.hold_if_away("r1", "b", &|| json!(0)).await.unwrap(),
            Hold::Deliver
        );
        assert_eq!(
            r.hold_if_away("r9", "b", &|| json!(0)).await.unwrap(),
            Hold::Gone
        );
        let t1 = r.mark_away("r1", "b", Utc::now()).await.unwrap().unwrap();
        for i in 0..25 {
            assert_eq!(
                r.hold_if_away("r1", "b", &|| json!(i)).await.unwrap(),
                Hold::Kept
            );
        }
        let kept = r.mark_back("r1", "b").await.unwrap().unwrap();
        assert_eq!(kept.len(), RECOVERY_BUFFER);
        assert_eq!(kept[0], json!(5));
        assert!(
            r.expire_away("r1", "b", t1).await.unwrap().is_none(),
            "came back in time"
        );
        let t2 = r.mark_away("r1", "b", Utc::now()).await.unwrap().unwrap();
        let t3 = r.mark_away("r1", "b", Utc::now()).await.unwrap().unwrap();
        assert!(
            r.expire_away("r1", "b", t2).await.unwrap().is_none(),
            "a newer drop wins"
        );
        assert!(r.expire_away("r1", "b", t3).await.unwrap().is_some());
        assert!(r.room_of("a").await.unwrap().is_none());
        assert_eq!(
            r.hold_if_away("r1", "a", &|| json!(0)).await.unwrap(),
            Hold::Gone
        );
        assert!(r.mark_away("r1", "zz", Utc::now()).await.unwrap().is_none());
    }
}
