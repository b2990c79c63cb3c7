//! Chat state in Redis, so a chat survives its members moving between
//! nodes: rooms, who is in which, shared files, away members with their
//! kept messages and last partners. Multi-key changes are Lua
//! scripts, hence atomic.

use std::collections::HashSet;

use async_trait::async_trait;
use redis::{AsyncCommands, Script, aio::ConnectionManager};
use serde_json::Value;

use crate::chat::{ChatRooms, Closed, Hold, RECOVERY_BUFFER, RoomInfo, RoomsError, RoomsResult};

const P: &str = "tandem:";
const ROOMS: &str = "tandem:rooms";

fn err(e: redis::RedisError) -> RoomsError {
    RoomsError::Unavailable(e.to_string())
}

/// Closing a room, shared by `close` and `expire_away`.
/// KEYS[1] = room key. ARGV[1] = room id, ARGV[2] = key prefix.
/// [`CLOSE_FN`] with the last-partner TTL the single node uses.
fn close_fn() -> String {
    CLOSE_FN.replace(
        "LAST_PARTNER_TTL",
        &crate::chat::LAST_PARTNER_TTL.as_secs().to_string(),
    )
}

const CLOSE_FN: &str = r#"
local function close_room(room_id, prefix)
  local raw = redis.call('GET', prefix .. 'room:' .. room_id)
  if not raw then return false end
  local room = cjson.decode(raw)
  local a, b = room.caller.id, room.callee.id
  redis.call('DEL', prefix .. 'room:' .. room_id)
  redis.call('SREM', prefix .. 'rooms', room_id)
  for _, u in ipairs({a, b}) do
    if redis.call('GET', prefix .. 'userroom:' .. u) == room_id then
      redis.call('DEL', prefix .. 'userroom:' .. u)
    end
    redis.call('DEL', prefix .. 'away:' .. room_id .. ':' .. u, prefix .. 'kept:' .. room_id .. ':' .. u)
    redis.call('ZREM', prefix .. 'graces', room_id .. '|' .. u)
  end
  redis.call('SET', prefix .. 'lastpartner:' .. a, b, 'EX', LAST_PARTNER_TTL)
  redis.call('SET', prefix .. 'lastpartner:' .. b, a, 'EX', LAST_PARTNER_TTL)
  local files = redis.call('LRANGE', prefix .. 'roomfiles:' .. room_id, 0, -1)
  redis.call('DEL', prefix .. 'roomfiles:' .. room_id)
  local out = {raw}
  for _, f in ipairs(files) do table.insert(out, f) end
  return out
end
"#;

const OPEN: &str = r#"
local room = cjson.decode(ARGV[1])
local prefix = ARGV[2]
for _, u in ipairs({room.caller.id, room.callee.id}) do
  if redis.call('EXISTS', prefix .. 'userroom:' .. u) == 1 then return u end
end
redis.call('SET', prefix .. 'room:' .. room.id, ARGV[1])
redis.call('SET', prefix .. 'userroom:' .. room.caller.id, room.id)
redis.call('SET', prefix .. 'userroom:' .. room.callee.id, room.id)
redis.call('SADD', prefix .. 'rooms', room.id)
return false
"#;

/// ARGV: room id, prefix.
const CLOSE: &str = "return close_room(ARGV[1], ARGV[2])";

/// ARGV: room id, user id, prefix, deadline (unix ms). The deadline goes
/// into the `graces` sorted set that every node's grace driver reads.
const MARK_AWAY: &str = r#"
local raw = redis.call('GET', ARGV[3] .. 'room:' .. ARGV[1])
if not raw then return false end
local room = cjson.decode(raw)
if room.caller.id ~= ARGV[2] and room.callee.id ~= ARGV[2] then return false end
local token = redis.call('INCR', ARGV[3] .. 'awaytoken')
redis.call('SET', ARGV[3] .. 'away:' .. ARGV[1] .. ':' .. ARGV[2], token)
redis.call('ZADD', ARGV[3] .. 'graces', ARGV[4], ARGV[1] .. '|' .. ARGV[2])
return token
"#;

/// ARGV: prefix, now (unix ms), limit. Returns {room, user, token, ...} of
/// the graces that ended; entries whose member is no longer away go.
const DUE: &str = r#"
local due = redis.call('ZRANGEBYSCORE', ARGV[1] .. 'graces', '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, m in ipairs(due) do
  local sep = string.find(m, '|', 1, true)
  local room, user = string.sub(m, 1, sep - 1), string.sub(m, sep + 1)
  local token = redis.call('GET', ARGV[1] .. 'away:' .. room .. ':' .. user)
  if token then
    table.insert(out, room); table.insert(out, user); table.insert(out, token)
  else
    redis.call('ZREM', ARGV[1] .. 'graces', m)
  end
end
return out
"#;

/// ARGV: room id, user id, prefix, event json, buffer size.
/// Returns 2 if the room is gone, 1 if kept, 0 to deliver now.
const KEEP: &str = r#"
if redis.call('EXISTS', ARGV[3] .. 'room:' .. ARGV[1]) == 0 then return 2 end
if redis.call('EXISTS', ARGV[3] .. 'away:' .. ARGV[1] .. ':' .. ARGV[2]) == 0 then return 0 end
local k = ARGV[3] .. 'kept:' .. ARGV[1] .. ':' .. ARGV[2]
redis.call('RPUSH', k, ARGV[4])
redis.call('LTRIM', k, -tonumber(ARGV[5]), -1)
return 1
"#;

/// ARGV: room id, user id, prefix. Returns false, or {1, kept...}.
const BACK: &str = r#"
local away = ARGV[3] .. 'away:' .. ARGV[1] .. ':' .. ARGV[2]
if redis.call('DEL', away) == 0 then return false end
redis.call('ZREM', ARGV[3] .. 'graces', ARGV[1] .. '|' .. ARGV[2])
local k = ARGV[3] .. 'kept:' .. ARGV[1] .. ':' .. ARGV[2]
local kept = redis.call('LRANGE', k, 0, -1)
redis.call('DEL', k)
local out = {'1'}
for _, m in ipairs(kept) do table.insert(out, m) end
return out
"#;

/// ARGV: room id, user id, prefix, token.
const EXPIRE: &str = r#"
if redis.call('GET', ARGV[3] .. 'away:' .. ARGV[1] .. ':' .. ARGV[2]) ~= ARGV[4] then return false end
return close_room(ARGV[1], ARGV[3])
"#;

pub struct RedisRooms {
    conn: ConnectionManager,
    open: Script,
    close: Script,
    mark_away: Script,
    keep: Script,
    back: Script,
    expire: Script,
    due: Script,
    graces: tokio::sync::Notify,
}

fn closed(out: Option<Vec<String>>) -> RoomsResult<Option<Closed>> {
    let Some(mut items) = out else {
        return Ok(None);
    };
    if items.is_empty() {
        return Ok(None);
    }
    let files = items.split_off(1);
    let info: RoomInfo =
        serde_json::from_str(&items[0]).map_err(|e| RoomsError::Unavailable(e.to_string()))?;
    Ok(Some(Closed { info, files }))
}

impl RedisRooms {
    pub fn new(conn: ConnectionManager) -> Self {
        RedisRooms {
            conn,
            open: Script::new(OPEN),
            close: Script::new(&format!("{}{CLOSE}", close_fn())),
            mark_away: Script::new(MARK_AWAY),
            keep: Script::new(KEEP),
            back: Script::new(BACK),
            expire: Script::new(&format!("{}{EXPIRE}", close_fn())),
            due: Script::new(DUE),
            graces: tokio::sync::Notify::new(),
        }
    }

    fn c(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

#[async_trait]
impl ChatRooms for RedisRooms {
    async fn open(&self, room: RoomInfo) -> RoomsResult<()> {
        let json =
            serde_json::to_string(&room).map_err(|e| RoomsError::Unavailable(e.to_string()))?;
        let busy: Option<String> = self
            .open
            .arg(json)
            .arg(P)
            .invoke_async(&mut self.c())
            .await
            .map_err(err)?;
        match busy {
            Some(u) => Err(RoomsError::Busy(u)),
            None => Ok(()),
        }
    }

    async fn room_of(&self, user_id: &str) -> RoomsResult<Option<RoomInfo>> {
        let mut c = self.c();
        let Some(room_id): Option<String> =
            c.get(format!("{P}userroom:{user_id}")).await.map_err(err)?
        else {
            return Ok(None);
        };
        let raw: Option<String> = c.get(format!("{P}room:{room_id}")).await.map_err(err)?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    async fn close(&self, room_id: &str) -> RoomsResult<Option<Closed>> {
        let out: Option<Vec<String>> = self
            .close
            .arg(room_id)
            .arg(P)
            .invoke_async(&mut self.c())
            .await
            .map_err(err)?;
        closed(out)
    }

    async fn add_file(&self, room_id: &str, file_id: &str) -> RoomsResult<()> {
        let _: () = self
            .c()
            .rpush(format!("{P}roomfiles:{room_id}"), file_id)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn take_files(&self, room_id: &str) -> RoomsResult<Vec<String>> {
        let key = format!("{P}roomfiles:{room_id}");
        let (files, _): (Vec<String>, u32) = redis::pipe()
            .atomic()
            .lrange(&key, 0, -1)
            .del(&key)
            .query_async(&mut self.c())
            .await
            .map_err(err)?;
        Ok(files)
    }

    async fn room_count(&self) -> RoomsResult<usize> {
        self.c().scard(ROOMS).await.map_err(err)
    }

    async fn mark_away(
        &self,
        room_id: &str,
        user_id: &str,
        deadline: chrono::DateTime<chrono::Utc>,
    ) -> RoomsResult<Option<u64>> {
        self.mark_away
            .arg(room_id)
            .arg(user_id)
            .arg(P)
            .arg(deadline.timestamp_millis())
            .invoke_async(&mut self.c())
            .await
            .map_err(err)
    }

    async fn next_grace(&self) -> RoomsResult<Option<chrono::DateTime<chrono::Utc>>> {
        let first: Vec<(String, f64)> = self
            .c()
            .zrange_withscores(format!("{P}graces"), 0, 0)
            .await
            .map_err(err)?;
        Ok(first
            .first()
            .and_then(|(_, ms)| chrono::DateTime::from_timestamp_millis(*ms as i64)))
    }

    fn graces_changed(&self) -> &tokio::sync::Notify {
        &self.graces
    }

    async fn due_graces(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> RoomsResult<Vec<(String, String, u64)>> {
        let flat: Vec<String> = self
            .due
            .arg(P)
            .arg(now.timestamp_millis())
            .arg(100)
            .invoke_async(&mut self.c())
            .await
            .map_err(err)?;
        Ok(flat
            .chunks(3)
            .filter_map(|c| match c {
                [room, user, token] => Some((room.clone(), user.clone(), token.parse().ok()?)),
                _ => None,
            })
            .collect())
    }

    async fn hold_if_away(&self, room_id: &str, user_id: &str, event: &Value) -> RoomsResult<Hold> {
        let kept: u32 = self
            .keep
            .arg(room_id)
            .arg(user_id)
            .arg(P)
            .arg(event.to_string())
            .arg(RECOVERY_BUFFER)
            .invoke_async(&mut self.c())
            .await
            .map_err(err)?;
        Ok(match kept {
            1 => Hold::Kept,
            2 => Hold::Gone,
            _ => Hold::Deliver,
        })
    }

    async fn mark_back(&self, room_id: &str, user_id: &str) -> RoomsResult<Option<Vec<Value>>> {
        let out: Option<Vec<String>> = self
            .back
            .arg(room_id)
            .arg(user_id)
            .arg(P)
            .invoke_async(&mut self.c())
            .await
            .map_err(err)?;
        Ok(out.map(|items| {
            items
                .iter()
                .skip(1)
                .filter_map(|m| serde_json::from_str(m).ok())
                .collect()
        }))
    }

    async fn expire_away(
        &self,
        room_id: &str,
        user_id: &str,
        token: u64,
    ) -> RoomsResult<Option<Closed>> {
        let out: Option<Vec<String>> = self
            .expire
            .arg(room_id)
            .arg(user_id)
            .arg(P)
            .arg(token)
            .invoke_async(&mut self.c())
            .await
            .map_err(err)?;
        closed(out)
    }

    async fn avoid_set(&self, user_id: &str) -> RoomsResult<HashSet<String>> {
        let last: Option<String> = self
            .c()
            .get(format!("{P}lastpartner:{user_id}"))
            .await
            .map_err(err)?;
        Ok(last.into_iter().collect())
    }

    async fn forget_user(&self, user_id: &str) -> RoomsResult<()> {
        let _: () = self
            .c()
            .del(format!("{P}lastpartner:{user_id}"))
            .await
            .map_err(err)?;
        Ok(())
    }
}
