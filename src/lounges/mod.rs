//! Lounges: public rooms beside the 1-to-1 chat, one per lounge and
//! language (`general-en`), from configuration. The rules are plain types
//! here — the configuration's syntax, who is in which room on this node,
//! per-user message pacing, history cursors and what a reconnecting client
//! recovers — and the drivers (`realtime::lounges`, `http::rooms`, the
//! cluster's [`bus`]) only do I/O around them.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

pub mod bus;

/// Messages a join (or a failed recovery) returns.
pub const LATEST_ON_JOIN: usize = 50;
/// Members a join's ack lists.
pub const MEMBERS_ON_JOIN: usize = 100;
/// Largest page of `GET /api/rooms/{id}/messages`.
pub const PAGE_MAX: usize = 100;
/// Longest room message, in characters.
pub const MAX_CHARS: usize = 1000;

/// One public room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Room {
    /// `<lounge>-<language>`.
    pub id: String,
    pub lounge: String,
    pub language: String,
    /// Least time between two messages of one user; None: no slow mode.
    #[serde(skip)]
    pub slow_mode: Option<Duration>,
}

/// Why the configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

/// Parses `general:en,es,de;music:en@10s`: lounges separated by `;`, each
/// `name:languages` with an optional `@duration` of slow mode for its rooms.
/// Names are 1–32 of `[a-z0-9_]`, languages tags like `en` or `pt-br`.
pub fn parse_spec(spec: &str) -> Result<Vec<Room>, SpecError> {
    let mut rooms = Vec::new();
    let mut seen = HashSet::new();
    for part in spec
        .split([';', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.starts_with('#'))
    {
        let (head, slow) = match part.split_once('@') {
            Some((h, d)) => {
                let d: crate::config::DurationArg = d
                    .parse()
                    .map_err(|e| SpecError(format!("slow mode of '{}': {e}", h.trim())))?;
                (h.trim(), (!d.0.is_zero()).then_some(d.0))
            }
            None => (part, None),
        };
        let (name, langs) = head
            .split_once(':')
            .ok_or_else(|| SpecError(format!("'{part}': expected name:languages")))?;
        let name = name.trim();
        if name.is_empty()
            || name.len() > 32
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(SpecError(format!(
                "lounge name '{name}': 1-32 of a-z, 0-9, _"
            )));
        }
        for lang in langs.split(',').map(str::trim) {
            let ok = (2..=8).contains(&lang.len())
                && lang.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
                && !lang.starts_with('-')
                && !lang.ends_with('-');
            if !ok {
                return Err(SpecError(format!(
                    "language '{lang}' of '{name}': a tag like en or pt-br"
                )));
            }
            let id = format!("{name}-{lang}");
            if !seen.insert(id.clone()) {
                return Err(SpecError(format!("room {id} is given twice")));
            }
            rooms.push(Room {
                id,
                lounge: name.to_string(),
                language: lang.to_string(),
                slow_mode: slow,
            });
        }
    }
    Ok(rooms)
}

/// A member as others see them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub struct Member {
    pub id: String,
    pub username: String,
}

/// Who is in which room on this node: a user is in a room while one of
/// their sockets is.
#[derive(Debug, Default)]
pub struct Membership {
    /// room → user → (member, sockets in the room).
    rooms: HashMap<String, BTreeMap<String, (Member, usize)>>,
    /// user → rooms.
    of_user: HashMap<String, HashSet<String>>,
}

/// What a join changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// The user's first socket in the room: others are told.
    First,
    /// Another socket of a user already in the room.
    Again,
}

/// A join refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinError {
    /// Already in `max` rooms.
    TooMany { max: usize },
}

impl Membership {
    pub fn rooms_of(&self, user: &str) -> usize {
        self.of_user.get(user).map_or(0, HashSet::len)
    }

    pub fn is_member(&self, room: &str, user: &str) -> bool {
        self.rooms.get(room).is_some_and(|m| m.contains_key(user))
    }

    /// A socket of `member` joins `room`; a user may be in `max` rooms.
    pub fn join(&mut self, room: &str, member: Member, max: usize) -> Result<Joined, JoinError> {
        let in_room = self.is_member(room, &member.id);
        if !in_room && self.rooms_of(&member.id) >= max {
            return Err(JoinError::TooMany { max });
        }
        self.of_user
            .entry(member.id.clone())
            .or_default()
            .insert(room.to_string());
        let entry = self
            .rooms
            .entry(room.to_string())
            .or_default()
            .entry(member.id.clone())
            .or_insert((member, 0));
        entry.1 += 1;
        Ok(if in_room {
            Joined::Again
        } else {
            Joined::First
        })
    }

    /// A socket of `user` leaves `room`; true when it was the user's last there.
    pub fn leave(&mut self, room: &str, user: &str) -> bool {
        let Some(members) = self.rooms.get_mut(room) else {
            return false;
        };
        let Some(entry) = members.get_mut(user) else {
            return false;
        };
        entry.1 = entry.1.saturating_sub(1);
        if entry.1 > 0 {
            return false;
        }
        members.remove(user);
        if members.is_empty() {
            self.rooms.remove(room);
        }
        if let Some(rooms) = self.of_user.get_mut(user) {
            rooms.remove(room);
            if rooms.is_empty() {
                self.of_user.remove(user);
            }
        }
        true
    }

    /// Removes the user from the room whatever their sockets; true if they were in it.
    pub fn remove(&mut self, room: &str, user: &str) -> bool {
        let was = self.is_member(room, user);
        while self.is_member(room, user) {
            self.leave(room, user);
        }
        was
    }

    /// The room's members on this node.
    pub fn members(&self, room: &str) -> Vec<Member> {
        self.rooms
            .get(room)
            .map(|m| m.values().map(|(member, _)| member.clone()).collect())
            .unwrap_or_default()
    }

    /// Every room with members here, and its members.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<Member>> {
        self.rooms
            .keys()
            .map(|r| (r.clone(), self.members(r)))
            .collect()
    }
}

/// Merges several nodes' member lists (a user on two nodes counts once).
pub fn merge_members<'a>(lists: impl IntoIterator<Item = &'a Vec<Member>>) -> Vec<Member> {
    let mut all: BTreeMap<&str, &Member> = BTreeMap::new();
    for list in lists {
        for m in list {
            all.entry(m.id.as_str()).or_insert(m);
        }
    }
    all.into_values().cloned().collect()
}

/// Per-user pacing of room messages: a token bucket (rate per second,
/// burst) and, in a slow-mode room, a least interval per room.
#[derive(Debug)]
pub struct Pacing {
    rate: f64,
    burst: f64,
    buckets: HashMap<String, (f64, f64)>,
    last_in_room: HashMap<(String, String), f64>,
}

/// A message refused by pacing; `retry_after` in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Paced {
    RateLimited { retry_after: f64 },
    SlowMode { retry_after: f64 },
}

impl Pacing {
    pub fn new(rate: f64, burst: u32) -> Self {
        Pacing {
            rate,
            burst: burst.max(1) as f64,
            buckets: HashMap::new(),
            last_in_room: HashMap::new(),
        }
    }

    /// May `user` send in `room` at `now` (seconds on any monotonic clock)?
    pub fn check(
        &mut self,
        user: &str,
        room: &str,
        slow: Option<Duration>,
        now: f64,
    ) -> Result<(), Paced> {
        if let Some(slow) = slow
            && let Some(last) = self.last_in_room.get(&(user.to_string(), room.to_string()))
        {
            let wait = last + slow.as_secs_f64() - now;
            if wait > 0.0 {
                return Err(Paced::SlowMode { retry_after: wait });
            }
        }
        let (tokens, at) = self.buckets.get(user).copied().unwrap_or((self.burst, now));
        let tokens = (tokens + (now - at) * self.rate).min(self.burst);
        if tokens < 1.0 {
            return Err(Paced::RateLimited {
                retry_after: (1.0 - tokens) / self.rate,
            });
        }
        self.buckets.insert(user.to_string(), (tokens - 1.0, now));
        if slow.is_some() {
            self.last_in_room
                .insert((user.to_string(), room.to_string()), now);
        }
        Ok(())
    }

    /// Forgets a user (their last socket left): bounded by users present.
    pub fn forget(&mut self, user: &str) {
        self.buckets.remove(user);
        self.last_in_room.retain(|(u, _), _| u != user);
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// An opaque history cursor: the offset the next page ends before.
pub fn encode_cursor(offset: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("o{offset}"))
}

pub fn decode_cursor(cursor: &str) -> Option<u64> {
    let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let s = std::str::from_utf8(&raw).ok()?;
    s.strip_prefix('o')?.parse().ok()
}

/// A message id: the room and its offset (so a message is found without
/// an index).
pub fn message_id(room: &str, offset: u64) -> String {
    format!("{room}.{offset}")
}

pub fn parse_message_id(id: &str) -> Option<(&str, u64)> {
    let (room, offset) = id.rsplit_once('.')?;
    Some((room, offset.parse().ok()?))
}

/// Where a reconnecting client stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Send every message after this offset.
    After(u64),
    /// History the client needs is gone (another epoch, or trimmed):
    /// send the latest instead.
    Gap,
}

/// `since` is what the client last saw; `oldest` the oldest offset still
/// kept (None: the history is empty), `last` the room's latest offset.
pub fn recovery(
    since_offset: u64,
    since_epoch: &str,
    epoch: &str,
    oldest: Option<u64>,
    last: u64,
) -> Recovery {
    if since_epoch != epoch || since_offset > last {
        return Recovery::Gap;
    }
    match oldest {
        // Nothing kept: fine only if nothing was missed.
        None if since_offset == last => Recovery::After(since_offset),
        None => Recovery::Gap,
        // The next message the client needs must still be kept.
        Some(o) if since_offset + 1 >= o => Recovery::After(since_offset),
        Some(_) => Recovery::Gap,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str) -> Member {
        Member {
            id: id.into(),
            username: format!("n{id}"),
        }
    }

    #[test]
    fn the_spec_names_lounges_languages_and_slow_mode() {
        let rooms = parse_spec("general:en,es,de; music:en@10s\n# comment\n").unwrap();
        let ids: Vec<_> = rooms.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["general-en", "general-es", "general-de", "music-en"]);
        assert_eq!(rooms[3].slow_mode, Some(Duration::from_secs(10)));
        assert_eq!(rooms[0].slow_mode, None);
        assert!(parse_spec("").unwrap().is_empty());
        for bad in [
            "general",
            "Gen:en",
            "general:e",
            "general:en,en",
            "general:en@soon",
            "a b:en",
            "x:en-",
        ] {
            assert!(parse_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn members_count_once_per_user_and_rooms_are_capped() {
        let mut ms = Membership::default();
        assert_eq!(ms.join("a", m("1"), 2), Ok(Joined::First));
        assert_eq!(ms.join("a", m("1"), 2), Ok(Joined::Again), "a second tab");
        assert_eq!(ms.join("b", m("1"), 2), Ok(Joined::First));
        assert_eq!(ms.join("c", m("1"), 2), Err(JoinError::TooMany { max: 2 }));
        assert_eq!(
            ms.join("a", m("1"), 2),
            Ok(Joined::Again),
            "rejoining a room one is in is fine"
        );
        assert_eq!(ms.members("a"), vec![m("1")]);
        assert!(!ms.leave("a", "1"), "two tabs left of three");
        assert!(!ms.leave("a", "1"));
        assert!(ms.leave("a", "1"), "the last one");
        assert!(ms.members("a").is_empty());
        assert_eq!(ms.join("c", m("1"), 2), Ok(Joined::First), "room freed");
        assert!(ms.remove("b", "1"));
        assert_eq!(ms.rooms_of("1"), 1);
        assert!(ms.remove("c", "1"));
        assert_eq!(ms.rooms_of("1"), 0);
        assert!(ms.snapshot().is_empty(), "nothing kept for users gone");
    }

    #[test]
    fn merged_members_are_unique() {
        let a = vec![m("1"), m("2")];
        let b = vec![m("2"), m("3")];
        assert_eq!(merge_members([&a, &b]), vec![m("1"), m("2"), m("3")]);
    }

    #[test]
    fn pacing_allows_a_burst_then_one_a_second_and_slow_mode_per_room() {
        let mut p = Pacing::new(1.0, 5);
        for _ in 0..5 {
            assert_eq!(p.check("u", "r", None, 0.0), Ok(()));
        }
        match p.check("u", "r", None, 0.0) {
            Err(Paced::RateLimited { retry_after }) => assert!((retry_after - 1.0).abs() < 1e-9),
            other => panic!("{other:?}"),
        }
        assert_eq!(p.check("u", "r", None, 1.0), Ok(()));
        assert!(p.check("u", "r", None, 1.5).is_err());
        assert_eq!(p.check("v", "r", None, 1.5), Ok(()), "per user");
        let slow = Some(Duration::from_secs(10));
        assert_eq!(p.check("w", "s", slow, 0.0), Ok(()));
        match p.check("w", "s", slow, 4.0) {
            Err(Paced::SlowMode { retry_after }) => assert!((retry_after - 6.0).abs() < 1e-9),
            other => panic!("{other:?}"),
        }
        assert_eq!(p.check("w", "other", slow, 4.0), Ok(()), "per room");
        assert_eq!(p.check("w", "s", slow, 10.0), Ok(()));
        p.forget("w");
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn cursors_and_ids_round_trip_and_junk_is_refused() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        for junk in [
            "",
            "!!",
            "eA",
            &URL_SAFE_NO_PAD.encode("x1"),
            &URL_SAFE_NO_PAD.encode("o-1"),
        ] {
            assert_eq!(decode_cursor(junk), None, "{junk}");
        }
        assert_eq!(
            parse_message_id(&message_id("general-en", 7)),
            Some(("general-en", 7))
        );
        assert_eq!(parse_message_id("nope"), None);
    }

    #[test]
    fn recovery_gives_what_was_missed_or_says_the_history_is_gone() {
        // Kept 51..=150, last 150.
        assert_eq!(recovery(100, "e", "e", Some(51), 150), Recovery::After(100));
        assert_eq!(
            recovery(50, "e", "e", Some(51), 150),
            Recovery::After(50),
            "needs 51: kept"
        );
        assert_eq!(
            recovery(49, "e", "e", Some(51), 150),
            Recovery::Gap,
            "50 was trimmed"
        );
        assert_eq!(
            recovery(150, "e", "e", Some(51), 150),
            Recovery::After(150),
            "missed nothing"
        );
        assert_eq!(
            recovery(100, "old", "e", Some(51), 150),
            Recovery::Gap,
            "another epoch"
        );
        assert_eq!(
            recovery(151, "e", "e", Some(51), 150),
            Recovery::Gap,
            "from the future"
        );
        assert_eq!(
            recovery(7, "e", "e", None, 7),
            Recovery::After(7),
            "all trimmed, none missed"
        );
        assert_eq!(recovery(6, "e", "e", None, 7), Recovery::Gap);
    }
}
