//! The matching queue in Redis. Joining and pairing are Lua scripts, so a
//! pairing is atomic across nodes; they apply the same rules as
//! [`crate::matching::MatchQueue`] (no self, no double, avoid sets both
//! ways, preferences before the fallback, anyone after it). Entries carry
//! their node; entries of a node whose heartbeat key is gone are dropped.

use async_trait::async_trait;
use redis::{Script, aio::ConnectionManager};
use serde::{Deserialize, Serialize};

use crate::matching::{Joined, MatchError, Matcher, Mode, Pairing, Ticket};

use super::{alive_key, now_ms};

const QUEUE: &str = "tandem:queue";
const TICKETS: &str = "tandem:tickets";
const SEQ: &str = "tandem:queue:seq";
const SCAN: usize = 2048;

/// Shared Lua helpers: liveness, compatibility, preference score.
const HELPERS: &str = r#"
local alive_cache = {}
local function alive(node)
  if alive_cache[node] == nil then
    alive_cache[node] = redis.call('EXISTS', ARGV[5] .. node) == 1
  end
  return alive_cache[node]
end
local function has(list, x)
  for _, v in ipairs(list) do if v == x then return true end end
  return false
end
local function compatible(a, b)
  return a.id ~= b.id and not has(a.avoid, b.id) and not has(b.avoid, a.id)
end
local function score(a, b)
  local s = 0
  if a.mode ~= cjson.null and b.mode ~= cjson.null and a.mode ~= nil and b.mode ~= nil then
    if a.mode ~= b.mode then return nil end
    s = s + 1
  end
  if a.language ~= cjson.null and b.language ~= cjson.null and a.language ~= nil and b.language ~= nil then
    if a.language ~= b.language then return nil end
    s = s + 2
  end
  if #a.interests > 0 and #b.interests > 0 then
    local shared = 0
    for _, x in ipairs(a.interests) do if has(b.interests, x) then shared = shared + 1 end end
    if shared == 0 then return nil end
    s = s + 4 * shared
  end
  return s
end
local function drop(id)
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
-- Live entries, oldest first (dead nodes' entries are removed).
local function entries(limit)
  local out = {}
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, limit - 1)) do
    local raw = redis.call('HGET', KEYS[2], id)
    if raw then
      local e = cjson.decode(raw)
      if alive(e.node) then
        e.raw = raw
        table.insert(out, e)
      else
        drop(id)
      end
    else
      redis.call('ZREM', KEYS[1], id)
    end
  end
  return out
end
"#;

/// KEYS: queue, tickets, seq. ARGV: ticket json, now ms, fallback ms, scan, alive prefix.
const JOIN: &str = r#"
local t = cjson.decode(ARGV[1])
local now, fb = tonumber(ARGV[2]), tonumber(ARGV[3])
drop(t.id)
local best, best_score, fallback = nil, -1, nil
for _, c in ipairs(entries(tonumber(ARGV[4]))) do
  if compatible(t, c) then
    local s = score(t, c)
    if s ~= nil then
      if s > best_score then best, best_score = c, s end
    elseif fallback == nil and c.since + fb <= now then
      fallback = c
    end
  end
end
local chosen = best or fallback
if chosen then
  drop(chosen.id)
  return chosen.raw
end
redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[3]), t.id)
redis.call('HSET', KEYS[2], t.id, ARGV[1])
return false
"#;

/// KEYS: queue, tickets. ARGV: unused, now ms, fallback ms, scan, alive prefix.
const POLL: &str = r#"
local now, fb = tonumber(ARGV[2]), tonumber(ARGV[3])
local list = entries(tonumber(ARGV[4]))
local taken, out = {}, {}
for i, e in ipairs(list) do
  if not taken[i] and e.since + fb <= now then
    for j, o in ipairs(list) do
      if j ~= i and not taken[j] and compatible(e, o) then
        taken[i], taken[j] = true, true
        drop(e.id)
        drop(o.id)
        if j < i then
          table.insert(out, o.raw); table.insert(out, e.raw)
        else
          table.insert(out, e.raw); table.insert(out, o.raw)
        end
        break
      end
    end
  end
end
return out
"#;

#[derive(Serialize, Deserialize)]
struct Entry {
    id: String,
    username: String,
    interests: Vec<String>,
    language: Option<String>,
    mode: Option<Mode>,
    avoid: Vec<String>,
    since: u64,
    node: String,
}

impl Entry {
    fn into_ticket(self) -> Ticket {
        Ticket {
            user_id: self.id,
            username: self.username,
            interests: self.interests,
            language: self.language,
            mode: self.mode,
            avoid: self.avoid.into_iter().collect(),
        }
    }
}

fn parse(raw: &str) -> Result<Ticket, MatchError> {
    // Lua's cjson writes an empty array as {}: normalise before serde.
    let fixed = raw
        .replace("\"interests\":{}", "\"interests\":[]")
        .replace("\"avoid\":{}", "\"avoid\":[]");
    serde_json::from_str::<Entry>(&fixed)
        .map(Entry::into_ticket)
        .map_err(|e| MatchError(format!("bad queue entry: {e}")))
}

fn err(e: redis::RedisError) -> MatchError {
    MatchError(e.to_string())
}

pub struct RedisMatcher {
    conn: ConnectionManager,
    node: String,
    fallback_ms: u64,
    fallback: std::time::Duration,
    join: Script,
    poll: Script,
    /// Fallback deadlines of the tickets that joined through this node,
    /// earliest first: each node wakes for its own users' deadlines (the
    /// poll script relaxes and pairs across the whole cluster).
    deadlines:
        std::sync::Mutex<std::collections::BinaryHeap<std::cmp::Reverse<tokio::time::Instant>>>,
    joins: tokio::sync::Notify,
}

impl RedisMatcher {
    pub fn new(conn: ConnectionManager, node: String, fallback: std::time::Duration) -> Self {
        RedisMatcher {
            conn,
            node,
            fallback_ms: fallback.as_millis() as u64,
            fallback,
            deadlines: Default::default(),
            joins: tokio::sync::Notify::new(),
            join: Script::new(&format!("{HELPERS}{JOIN}")),
            poll: Script::new(&format!("{HELPERS}{POLL}")),
        }
    }
}

#[async_trait]
impl Matcher for RedisMatcher {
    async fn join(&self, ticket: Ticket) -> Result<Joined, MatchError> {
        let mut avoid: Vec<String> = ticket.avoid.iter().cloned().collect();
        avoid.sort();
        let entry = Entry {
            id: ticket.user_id.clone(),
            username: ticket.username.clone(),
            interests: ticket.interests.clone(),
            language: ticket.language.clone(),
            mode: ticket.mode,
            avoid,
            since: now_ms(),
            node: self.node.clone(),
        };
        let json = serde_json::to_string(&entry).map_err(|e| MatchError(e.to_string()))?;
        let partner: Option<String> = self
            .join
            .key(QUEUE)
            .key(TICKETS)
            .key(SEQ)
            .arg(json)
            .arg(entry.since)
            .arg(self.fallback_ms)
            .arg(SCAN)
            .arg(alive_key(""))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(err)?;
        match partner {
            None => {
                self.deadlines
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(std::cmp::Reverse(
                        tokio::time::Instant::now() + self.fallback,
                    ));
                self.joins.notify_one();
                Ok(Joined::Waiting)
            }
            Some(raw) => Ok(Joined::Matched(Pairing::new(parse(&raw)?, ticket))),
        }
    }

    async fn leave(&self, user_id: &str) -> Result<bool, MatchError> {
        let (removed, _): (u32, u32) = redis::pipe()
            .atomic()
            .zrem(QUEUE, user_id)
            .hdel(TICKETS, user_id)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(err)?;
        Ok(removed > 0)
    }

    async fn poll(&self) -> Result<Vec<Pairing>, MatchError> {
        {
            // The deadlines that have come are served by this poll.
            let now = tokio::time::Instant::now();
            let mut d = self.deadlines.lock().unwrap_or_else(|p| p.into_inner());
            while d.peek().is_some_and(|r| r.0 <= now) {
                d.pop();
            }
        }
        let raw: Vec<String> = self
            .poll
            .key(QUEUE)
            .key(TICKETS)
            .arg("")
            .arg(now_ms())
            .arg(self.fallback_ms)
            .arg(SCAN)
            .arg(alive_key(""))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(err)?;
        raw.chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| Ok(Pairing::new(parse(&c[0])?, parse(&c[1])?)))
            .collect()
    }

    async fn is_queued(&self, user_id: &str) -> Result<bool, MatchError> {
        redis::cmd("HEXISTS")
            .arg(TICKETS)
            .arg(user_id)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(err)
    }

    async fn queued(&self) -> Result<usize, MatchError> {
        redis::cmd("ZCARD")
            .arg(QUEUE)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(err)
    }

    async fn next_wakeup(&self) -> Option<tokio::time::Instant> {
        self.deadlines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .peek()
            .map(|r| r.0)
    }

    fn joins(&self) -> &tokio::sync::Notify {
        &self.joins
    }
}
