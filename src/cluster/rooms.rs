//! Chat state in Redis, so a chat survives its members moving between
//! nodes. The rules are the single node's ([`crate::chat::rules`]); this
//! module only runs them against Redis under optimistic transactions:
//!
//! 1. on a connection of its own, WATCH and read the keys the rule is known
//!    to need (one round trip), run the rule on that snapshot;
//! 2. if the rule asks for a key the snapshot lacks, WATCH and read it too
//!    and run the rule again;
//! 3. a rule that writes nothing is done (the common case: a message to a
//!    member who is present); otherwise its writes go in one MULTI/EXEC,
//!    which Redis refuses if any watched key changed since it was read —
//!    then everything runs again from step 1, at most [`ATTEMPTS`] times.
//!
//! Key layout (prefix `tandem:`): `room:<id>` (JSON), `rooms` (sorted set of
//! open rooms by expiry, ms), `userroom:<user>`, `away:<room>:<user>` (grace token),
//! `graces` (sorted set `room|user` by deadline, ms), `kept:<room>:<user>`
//! (list of JSON events), `roomfiles:<room>` (list), `lastpartner:<user>`
//! (expires), `awaytoken` (counter).
//!
//! Every key of a chat expires [`CHAT_TTL`] after it was last written or
//! refreshed; each node refreshes the chats its connected users are in
//! ([`RedisRooms::refresh`]), so a chat whose nodes all died leaves nothing
//! behind.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::{AsyncCommands, aio::ConnectionManager, aio::MultiplexedConnection};
use serde_json::Value;

use crate::chat::{
    ChatRooms, Closed, Hold, LAST_PARTNER_TTL, RECOVERY_BUFFER, RoomInfo, RoomsError, RoomsResult,
    rules::{self, Key, Missing, Outcome, Read, View, Write},
};

const P: &str = "tandem:";
const ROOMS: &str = "tandem:rooms";
const GRACES: &str = "tandem:graces";
const TOKENS: &str = "tandem:awaytoken";
/// Transactions tried before giving up with `unavailable` (each retry means
/// another node changed the same chat in between).
pub const ATTEMPTS: usize = 16;
/// Dedicated connections kept for transactions (WATCH is per connection).
const POOL: usize = 32;
/// How long a chat's keys live without a refresh.
pub const CHAT_TTL: std::time::Duration = std::time::Duration::from_secs(120);
const TTL_S: u64 = CHAT_TTL.as_secs();

fn expires_ms() -> u64 {
    super::now_ms() + CHAT_TTL.as_millis() as u64
}

fn unavailable(e: impl std::fmt::Display) -> RoomsError {
    RoomsError::Unavailable(e.to_string())
}

fn redis_key(key: &Key) -> String {
    match key {
        Key::Room(id) => format!("{P}room:{id}"),
        Key::UserRoom(u) => format!("{P}userroom:{u}"),
        Key::Away { room, user } => format!("{P}away:{room}:{user}"),
        Key::Kept { room, user } => format!("{P}kept:{room}:{user}"),
        Key::Files(room) => format!("{P}roomfiles:{room}"),
    }
}

fn is_list(key: &Key) -> bool {
    matches!(key, Key::Kept { .. } | Key::Files(_))
}

fn grace_member(room: &str, user: &str) -> String {
    format!("{room}|{user}")
}

/// What a transaction has read so far.
#[derive(Default)]
struct Snapshot {
    strings: HashMap<Key, Option<String>>,
    lists: HashMap<Key, Vec<String>>,
}

impl Snapshot {
    fn string(&self, key: Key) -> Read<Option<&String>> {
        match self.strings.get(&key) {
            Some(v) => Ok(v.as_ref()),
            None => Err(Missing(key)),
        }
    }

    fn list(&self, key: Key) -> Read<&Vec<String>> {
        self.lists.get(&key).ok_or(Missing(key))
    }
}

/// Records that do not parse are treated as absent: a rule never acts on
/// half-understood state.
impl View for Snapshot {
    fn room(&self, id: &str) -> Read<Option<RoomInfo>> {
        Ok(self
            .string(Key::Room(id.into()))?
            .and_then(|raw| serde_json::from_str(raw).ok()))
    }
    fn has_room(&self, id: &str) -> Read<bool> {
        Ok(self.string(Key::Room(id.into()))?.is_some())
    }
    fn user_room(&self, user: &str) -> Read<Option<String>> {
        Ok(self.string(Key::UserRoom(user.into()))?.cloned())
    }
    fn away(&self, room: &str, user: &str) -> Read<Option<u64>> {
        Ok(self
            .string(Key::Away {
                room: room.into(),
                user: user.into(),
            })?
            .and_then(|t| t.parse().ok()))
    }
    fn kept(&self, room: &str, user: &str) -> Read<Vec<Value>> {
        Ok(self
            .list(Key::Kept {
                room: room.into(),
                user: user.into(),
            })?
            .iter()
            .filter_map(|e| serde_json::from_str(e).ok())
            .collect())
    }
    fn files(&self, room: &str) -> Read<Vec<String>> {
        Ok(self.list(Key::Files(room.into()))?.clone())
    }
}

/// Adds the commands that carry out `w` to a MULTI pipeline.
fn add_write(pipe: &mut redis::Pipeline, w: Write) -> RoomsResult<()> {
    match w {
        Write::PutRoom(room) => {
            let json = serde_json::to_string(&room).map_err(unavailable)?;
            pipe.set_ex(redis_key(&Key::Room(room.id.clone())), json, TTL_S)
                .ignore()
                .zadd(ROOMS, &room.id, expires_ms())
                .ignore();
        }
        Write::DelRoom(id) => {
            pipe.del(redis_key(&Key::Room(id.clone())))
                .ignore()
                .zrem(ROOMS, id)
                .ignore();
        }
        Write::PutUserRoom { user, room } => {
            pipe.set_ex(redis_key(&Key::UserRoom(user)), room, TTL_S)
                .ignore();
        }
        Write::DelUserRoom(user) => {
            pipe.del(redis_key(&Key::UserRoom(user))).ignore();
        }
        Write::PutAway {
            room,
            user,
            token,
            deadline,
        } => {
            let member = grace_member(&room, &user);
            pipe.set_ex(redis_key(&Key::Away { room, user }), token, TTL_S)
                .ignore()
                .zadd(GRACES, member, deadline.timestamp_millis())
                .ignore();
        }
        Write::DelAway { room, user } => {
            let member = grace_member(&room, &user);
            pipe.del(redis_key(&Key::Away { room, user }))
                .ignore()
                .zrem(GRACES, member)
                .ignore();
        }
        Write::PushKept { room, user, event } => {
            let key = redis_key(&Key::Kept { room, user });
            pipe.rpush(&key, event.to_string())
                .ignore()
                .ltrim(&key, -(RECOVERY_BUFFER as isize), -1)
                .ignore()
                .expire(&key, TTL_S as i64)
                .ignore();
        }
        Write::DelKept { room, user } => {
            pipe.del(redis_key(&Key::Kept { room, user })).ignore();
        }
        Write::PushFile { room, file } => {
            let key = redis_key(&Key::Files(room));
            pipe.rpush(&key, file)
                .ignore()
                .expire(&key, TTL_S as i64)
                .ignore();
        }
        Write::DelFiles(room) => {
            pipe.del(redis_key(&Key::Files(room))).ignore();
        }
        Write::SetLastPartner { user, partner } => {
            pipe.set_ex(
                format!("{P}lastpartner:{user}"),
                partner,
                LAST_PARTNER_TTL.as_secs(),
            )
            .ignore();
        }
    }
    Ok(())
}

/// Connections used by one transaction at a time.
struct Pool {
    client: redis::Client,
    idle: std::sync::Mutex<Vec<MultiplexedConnection>>,
    permits: tokio::sync::Semaphore,
}

impl Pool {
    async fn take(&self) -> RoomsResult<(tokio::sync::SemaphorePermit<'_>, MultiplexedConnection)> {
        let permit = self.permits.acquire().await.map_err(unavailable)?;
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(c) => c,
            None => self
                .client
                .get_multiplexed_async_connection()
                .await
                .map_err(unavailable)?,
        };
        Ok((permit, conn))
    }

    /// Only a connection whose transaction ended cleanly comes back.
    fn give_back(&self, conn: MultiplexedConnection) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
    }
}

pub struct RedisRooms {
    conn: ConnectionManager,
    pool: Pool,
    graces: tokio::sync::Notify,
}

impl RedisRooms {
    pub fn new(client: redis::Client, conn: ConnectionManager) -> Self {
        RedisRooms {
            conn,
            pool: Pool {
                client,
                idle: Default::default(),
                permits: tokio::sync::Semaphore::new(POOL),
            },
            graces: tokio::sync::Notify::new(),
        }
    }

    fn c(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Extends the life of the chats `users` are in (this node's connected
    /// users): every key of each chat, both members' included, so a member
    /// inside the reconnect grace is kept alive by the partner's node.
    /// Three round trips whatever the number of users; rooms past their
    /// expiry leave the `rooms` index.
    pub async fn refresh(&self, users: &[String]) -> RoomsResult<()> {
        let mut c = self.c();
        let mut pipe = redis::pipe();
        for u in users {
            pipe.get(redis_key(&Key::UserRoom(u.clone())));
        }
        let rooms: Vec<Option<String>> = if users.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut c).await.map_err(unavailable)?
        };
        let rooms: Vec<String> = rooms
            .into_iter()
            .flatten()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut pipe = redis::pipe();
        for r in &rooms {
            pipe.get(redis_key(&Key::Room(r.clone())));
        }
        let infos: Vec<Option<String>> = if rooms.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut c).await.map_err(unavailable)?
        };
        let mut pipe = redis::pipe();
        let ttl = TTL_S as i64;
        for raw in infos.into_iter().flatten() {
            let Ok(room) = serde_json::from_str::<RoomInfo>(&raw) else {
                continue;
            };
            let id = room.id.clone();
            pipe.expire(redis_key(&Key::Room(id.clone())), ttl)
                .ignore()
                .expire(redis_key(&Key::Files(id.clone())), ttl)
                .ignore()
                .cmd("ZADD")
                .arg(ROOMS)
                .arg("XX") // a room closed meanwhile stays out
                .arg(expires_ms())
                .arg(&id)
                .ignore();
            for m in [&room.caller.id, &room.callee.id] {
                pipe.expire(redis_key(&Key::UserRoom(m.clone())), ttl)
                    .ignore()
                    .expire(
                        redis_key(&Key::Away {
                            room: id.clone(),
                            user: m.clone(),
                        }),
                        ttl,
                    )
                    .ignore()
                    .expire(
                        redis_key(&Key::Kept {
                            room: id.clone(),
                            user: m.clone(),
                        }),
                        ttl,
                    )
                    .ignore();
            }
        }
        pipe.zrembyscore(ROOMS, "-inf", super::now_ms()).ignore();
        let _: () = pipe.query_async(&mut c).await.map_err(unavailable)?;
        Ok(())
    }

    /// Runs `rule` as a transaction; `prefetch` are keys it surely reads.
    async fn run<T>(
        &self,
        prefetch: &[Key],
        rule: impl Fn(&Snapshot) -> Read<Outcome<T>>,
    ) -> RoomsResult<T> {
        let (_permit, mut conn) = self.pool.take().await?;
        let out = self.attempts(&mut conn, prefetch, rule).await;
        if out.is_ok() {
            self.pool.give_back(conn);
        }
        out
    }

    async fn attempts<T>(
        &self,
        conn: &mut MultiplexedConnection,
        prefetch: &[Key],
        rule: impl Fn(&Snapshot) -> Read<Outcome<T>>,
    ) -> RoomsResult<T> {
        for _ in 0..ATTEMPTS {
            let mut snap = Snapshot::default();
            // A previous read-only run may have left keys watched.
            load(conn, &mut snap, prefetch, true).await?;
            let out = loop {
                match rule(&snap) {
                    Ok(out) => break out,
                    Err(Missing(key)) => load(conn, &mut snap, &[key], false).await?,
                }
            };
            if out.writes.is_empty() {
                return Ok(out.value);
            }
            let mut pipe = redis::pipe();
            pipe.atomic();
            for w in out.writes {
                add_write(&mut pipe, w)?;
            }
            // EXEC answers nil when a watched key changed.
            let done: Option<redis::Value> = pipe.query_async(conn).await.map_err(unavailable)?;
            if done.is_some() {
                return Ok(out.value);
            }
        }
        Err(RoomsError::Unavailable(format!(
            "chat state changed under {ATTEMPTS} attempts in a row"
        )))
    }
}

/// WATCHes and reads `keys` into the snapshot, in one round trip.
async fn load(
    conn: &mut MultiplexedConnection,
    snap: &mut Snapshot,
    keys: &[Key],
    unwatch_first: bool,
) -> RoomsResult<()> {
    let mut pipe = redis::pipe();
    if unwatch_first {
        pipe.cmd("UNWATCH").ignore();
    }
    if keys.is_empty() {
        if unwatch_first {
            let _: () = pipe.query_async(conn).await.map_err(unavailable)?;
        }
        return Ok(());
    }
    let names: Vec<String> = keys.iter().map(redis_key).collect();
    pipe.cmd("WATCH").arg(&names).ignore();
    for (key, name) in keys.iter().zip(&names) {
        if is_list(key) {
            pipe.lrange(name, 0, -1);
        } else {
            pipe.get(name);
        }
    }
    let values: Vec<redis::Value> = pipe.query_async(conn).await.map_err(unavailable)?;
    for (key, value) in keys.iter().zip(values) {
        if is_list(key) {
            let list: Vec<String> = redis::from_redis_value(value).map_err(unavailable)?;
            snap.lists.insert(key.clone(), list);
        } else {
            let s: Option<String> = redis::from_redis_value(value).map_err(unavailable)?;
            snap.strings.insert(key.clone(), s);
        }
    }
    Ok(())
}

fn room_key(id: &str) -> Key {
    Key::Room(id.to_string())
}

fn away_key(room: &str, user: &str) -> Key {
    Key::Away {
        room: room.to_string(),
        user: user.to_string(),
    }
}

#[async_trait]
impl ChatRooms for RedisRooms {
    async fn open(&self, room: RoomInfo) -> RoomsResult<()> {
        let keys = [
            Key::UserRoom(room.caller.id.clone()),
            Key::UserRoom(room.callee.id.clone()),
        ];
        self.run(&keys, |v| rules::open(v, &room)).await?
    }

    async fn room_of(&self, user_id: &str) -> RoomsResult<Option<std::sync::Arc<RoomInfo>>> {
        let mut c = self.c();
        let Some(room_id): Option<String> = c
            .get(redis_key(&Key::UserRoom(user_id.into())))
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let raw: Option<String> = c
            .get(redis_key(&room_key(&room_id)))
            .await
            .map_err(unavailable)?;
        Ok(raw
            .and_then(|r| serde_json::from_str::<RoomInfo>(&r).ok())
            .map(std::sync::Arc::new))
    }

    async fn close(&self, room_id: &str) -> RoomsResult<Option<Closed>> {
        let keys = [room_key(room_id), Key::Files(room_id.into())];
        self.run(&keys, |v| rules::close(v, room_id)).await
    }

    async fn add_file(&self, room_id: &str, file_id: &str) -> RoomsResult<()> {
        self.run(&[room_key(room_id)], |v| {
            rules::add_file(v, room_id, file_id)
        })
        .await
    }

    async fn take_files(&self, room_id: &str) -> RoomsResult<Vec<String>> {
        self.run(&[Key::Files(room_id.into())], |v| {
            rules::take_files(v, room_id)
        })
        .await
    }

    async fn room_count(&self) -> RoomsResult<usize> {
        self.c()
            .zcount(ROOMS, super::now_ms(), "+inf")
            .await
            .map_err(unavailable)
    }

    async fn mark_away(
        &self,
        room_id: &str,
        user_id: &str,
        deadline: DateTime<Utc>,
    ) -> RoomsResult<Option<u64>> {
        let token: u64 = self.c().incr(TOKENS, 1).await.map_err(unavailable)?;
        self.run(&[room_key(room_id)], |v| {
            rules::mark_away(v, room_id, user_id, deadline, token)
        })
        .await
    }

    async fn next_grace(&self) -> RoomsResult<Option<DateTime<Utc>>> {
        let first: Vec<(String, f64)> = self
            .c()
            .zrange_withscores(GRACES, 0, 0)
            .await
            .map_err(unavailable)?;
        Ok(first
            .first()
            .and_then(|(_, ms)| DateTime::from_timestamp_millis(*ms as i64)))
    }

    fn graces_changed(&self) -> &tokio::sync::Notify {
        &self.graces
    }

    async fn due_graces(&self, now: DateTime<Utc>) -> RoomsResult<Vec<(String, String, u64)>> {
        let mut c = self.c();
        let due: Vec<String> = c
            .zrangebyscore_limit(GRACES, "-inf", now.timestamp_millis(), 0, 100)
            .await
            .map_err(unavailable)?;
        let pairs: Vec<(String, String)> = due
            .iter()
            .filter_map(|m| {
                let (room, user) = m.split_once('|')?;
                Some((room.to_string(), user.to_string()))
            })
            .collect();
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = pairs
            .iter()
            .map(|(r, u)| redis_key(&away_key(r, u)))
            .collect();
        let tokens: Vec<Option<u64>> = redis::cmd("MGET")
            .arg(&names)
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        let mut out = Vec::new();
        let mut stale = Vec::new();
        for ((room, user), token) in pairs.into_iter().zip(tokens) {
            match token {
                Some(t) => out.push((room, user, t)),
                None => stale.push(grace_member(&room, &user)),
            }
        }
        if !stale.is_empty() {
            // A member no longer away (left by an older version, or a key
            // lost): nothing to expire.
            let _: () = c.zrem(GRACES, stale).await.map_err(unavailable)?;
        }
        Ok(out)
    }

    async fn hold_if_away(
        &self,
        room_id: &str,
        user_id: &str,
        event: &(dyn Fn() -> Value + Send + Sync),
    ) -> RoomsResult<Hold> {
        let keys = [room_key(room_id), away_key(room_id, user_id)];
        self.run(&keys, |v| rules::hold(v, room_id, user_id, event))
            .await
    }

    async fn mark_back(&self, room_id: &str, user_id: &str) -> RoomsResult<Option<Vec<Value>>> {
        let keys = [
            away_key(room_id, user_id),
            Key::Kept {
                room: room_id.into(),
                user: user_id.into(),
            },
        ];
        self.run(&keys, |v| rules::mark_back(v, room_id, user_id))
            .await
    }

    async fn expire_away(
        &self,
        room_id: &str,
        user_id: &str,
        token: u64,
    ) -> RoomsResult<Option<Closed>> {
        let keys = [
            away_key(room_id, user_id),
            room_key(room_id),
            Key::Files(room_id.into()),
        ];
        self.run(&keys, |v| rules::expire_away(v, room_id, user_id, token))
            .await
    }

    async fn avoid_set(&self, user_id: &str) -> RoomsResult<HashSet<String>> {
        let last: Option<String> = self
            .c()
            .get(format!("{P}lastpartner:{user_id}"))
            .await
            .map_err(unavailable)?;
        Ok(last.into_iter().collect())
    }

    async fn forget_user(&self, user_id: &str) -> RoomsResult<()> {
        let _: () = self
            .c()
            .del(format!("{P}lastpartner:{user_id}"))
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
