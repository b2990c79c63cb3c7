//! The chat-room rules, written once for the single node and the cluster.
//!
//! Each rule reads records through a [`View`] and returns its answer with
//! the [`Write`]s that carry it out; it does no I/O and keeps no state. A
//! backend runs a rule and applies its writes atomically:
//! - [`super::MemoryRooms`] holds the records in maps behind one mutex: the
//!   view never misses, and the writes are applied under the same lock;
//! - the Redis backend (`cluster::rooms`) starts with an empty snapshot.
//!   A read the snapshot lacks returns [`Missing`]; the backend WATCHes and
//!   loads that key and runs the rule again, then applies the writes in a
//!   MULTI/EXEC that fails if any key read has changed since — and then
//!   runs the rule again from the start. Rules are therefore pure functions
//!   of what they read (cheap to run twice).
//!
//! Records: a room (`RoomInfo`), each member's current room, an away
//! member's grace token (its deadline lives in the grace index that
//! `PutAway`/`DelAway` maintain), the events kept for an away member, the
//! files shared in a room, and each user's last partner (expiring).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Closed, Hold, RECOVERY_BUFFER, RoomInfo, RoomsError};

/// A record a rule reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Room(String),
    UserRoom(String),
    Away { room: String, user: String },
    Kept { room: String, user: String },
    Files(String),
}

/// The view lacks this record: load it and run the rule again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing(pub Key);

pub type Read<T> = Result<T, Missing>;

/// What the rules may read.
pub trait View {
    fn room(&self, id: &str) -> Read<Option<RoomInfo>>;
    /// Whether the room exists (without copying it).
    fn has_room(&self, id: &str) -> Read<bool>;
    fn user_room(&self, user: &str) -> Read<Option<String>>;
    /// The away member's grace token.
    fn away(&self, room: &str, user: &str) -> Read<Option<u64>>;
    fn kept(&self, room: &str, user: &str) -> Read<Vec<Value>>;
    fn files(&self, room: &str) -> Read<Vec<String>>;
}

/// A change a rule asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Stores the room (and counts it among the open rooms).
    PutRoom(RoomInfo),
    DelRoom(String),
    PutUserRoom {
        user: String,
        room: String,
    },
    DelUserRoom(String),
    /// Marks the member away with `token` until `deadline` (grace index too).
    PutAway {
        room: String,
        user: String,
        token: u64,
        deadline: DateTime<Utc>,
    },
    DelAway {
        room: String,
        user: String,
    },
    /// Appends to what is kept for an away member, keeping the last
    /// [`RECOVERY_BUFFER`].
    PushKept {
        room: String,
        user: String,
        event: Value,
    },
    DelKept {
        room: String,
        user: String,
    },
    PushFile {
        room: String,
        file: String,
    },
    DelFiles(String),
    /// `partner` is avoided by `user`'s next match for
    /// [`super::LAST_PARTNER_TTL`].
    SetLastPartner {
        user: String,
        partner: String,
    },
}

/// A rule's answer and what carries it out.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<T> {
    pub value: T,
    pub writes: Vec<Write>,
}

fn answer<T>(value: T) -> Outcome<T> {
    Outcome {
        value,
        writes: Vec::new(),
    }
}

/// Opens `room` unless a member is already in one.
pub fn open(v: &impl View, room: &RoomInfo) -> Read<Outcome<Result<(), RoomsError>>> {
    for id in [&room.caller.id, &room.callee.id] {
        if v.user_room(id)?.is_some() {
            return Ok(answer(Err(RoomsError::Busy(id.clone()))));
        }
    }
    Ok(Outcome {
        value: Ok(()),
        writes: vec![
            Write::PutRoom(room.clone()),
            Write::PutUserRoom {
                user: room.caller.id.clone(),
                room: room.id.clone(),
            },
            Write::PutUserRoom {
                user: room.callee.id.clone(),
                room: room.id.clone(),
            },
        ],
    })
}

/// Closes the room if it is open: both members are free, each present
/// member has the other as their last partner (a member still marked away
/// is offline, and what only matters while online was forgotten when they
/// left: recording it now would keep it for nobody), what was kept or
/// marked away goes, and the files are handed back for deletion.
pub fn close(v: &impl View, room_id: &str) -> Read<Outcome<Option<Closed>>> {
    let Some(info) = v.room(room_id)? else {
        return Ok(answer(None));
    };
    let files = v.files(room_id)?;
    let (a, b) = (info.caller.id.clone(), info.callee.id.clone());
    let mut writes = vec![
        Write::DelRoom(room_id.to_string()),
        Write::DelFiles(room_id.to_string()),
    ];
    for (u, partner) in [(&a, &b), (&b, &a)] {
        if v.user_room(u)?.as_deref() == Some(room_id) {
            writes.push(Write::DelUserRoom(u.clone()));
        }
        if v.away(room_id, u)?.is_some() {
            writes.push(Write::DelAway {
                room: room_id.to_string(),
                user: u.clone(),
            });
        } else {
            writes.push(Write::SetLastPartner {
                user: u.clone(),
                partner: partner.clone(),
            });
        }
        writes.push(Write::DelKept {
            room: room_id.to_string(),
            user: u.clone(),
        });
    }
    Ok(Outcome {
        value: Some(Closed { info, files }),
        writes,
    })
}

/// Records a file shared in an open room.
pub fn add_file(v: &impl View, room_id: &str, file_id: &str) -> Read<Outcome<()>> {
    if !v.has_room(room_id)? {
        return Ok(answer(()));
    }
    Ok(Outcome {
        value: (),
        writes: vec![Write::PushFile {
            room: room_id.to_string(),
            file: file_id.to_string(),
        }],
    })
}

/// Hands back (and forgets) the files shared so far (`chat:clear`).
pub fn take_files(v: &impl View, room_id: &str) -> Read<Outcome<Vec<String>>> {
    let files = v.files(room_id)?;
    if files.is_empty() {
        return Ok(answer(files));
    }
    Ok(Outcome {
        value: files,
        writes: vec![Write::DelFiles(room_id.to_string())],
    })
}

/// Marks a member away until `deadline` under a fresh `token` (unique and
/// increasing, from the backend); None if there is no such member.
pub fn mark_away(
    v: &impl View,
    room_id: &str,
    user: &str,
    deadline: DateTime<Utc>,
    token: u64,
) -> Read<Outcome<Option<u64>>> {
    let Some(info) = v.room(room_id)? else {
        return Ok(answer(None));
    };
    if info.seen_by(user).is_none() {
        return Ok(answer(None));
    }
    Ok(Outcome {
        value: Some(token),
        writes: vec![Write::PutAway {
            room: room_id.to_string(),
            user: user.to_string(),
            token,
            deadline,
        }],
    })
}

/// Where an event for `user` goes: kept while they are away, delivered
/// now, or refused because the room is closed. `event` is made only when
/// it is kept.
pub fn hold(
    v: &impl View,
    room_id: &str,
    user: &str,
    event: &dyn Fn() -> Value,
) -> Read<Outcome<Hold>> {
    if !v.has_room(room_id)? {
        return Ok(answer(Hold::Gone));
    }
    if v.away(room_id, user)?.is_none() {
        return Ok(answer(Hold::Deliver));
    }
    Ok(Outcome {
        value: Hold::Kept,
        writes: vec![Write::PushKept {
            room: room_id.to_string(),
            user: user.to_string(),
            event: event(),
        }],
    })
}

/// The member is back: their grace ends and what was kept is handed over.
/// None if they were not away.
pub fn mark_back(v: &impl View, room_id: &str, user: &str) -> Read<Outcome<Option<Vec<Value>>>> {
    if v.away(room_id, user)?.is_none() {
        return Ok(answer(None));
    }
    let kept = v.kept(room_id, user)?;
    Ok(Outcome {
        value: Some(kept),
        writes: vec![
            Write::DelAway {
                room: room_id.to_string(),
                user: user.to_string(),
            },
            Write::DelKept {
                room: room_id.to_string(),
                user: user.to_string(),
            },
        ],
    })
}

/// The grace of `token` ended: the room closes if the member is still
/// away since then (not back, not away again under a newer token).
pub fn expire_away(
    v: &impl View,
    room_id: &str,
    user: &str,
    token: u64,
) -> Read<Outcome<Option<Closed>>> {
    if v.away(room_id, user)? != Some(token) {
        return Ok(answer(None));
    }
    close(v, room_id)
}

/// The last [`RECOVERY_BUFFER`] of `kept` after pushing `event`: how
/// every backend applies [`Write::PushKept`].
pub fn push_kept(kept: &mut std::collections::VecDeque<Value>, event: Value) {
    kept.push_back(event);
    while kept.len() > RECOVERY_BUFFER {
        kept.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;
    use crate::chat::tests::room;

    /// A view over a few records that reports what it lacks, as the Redis
    /// backend's snapshot does.
    #[derive(Default)]
    struct Partial {
        rooms: HashMap<String, Option<RoomInfo>>,
        user_rooms: HashMap<String, Option<String>>,
        away: HashMap<(String, String), Option<u64>>,
        files: HashMap<String, Vec<String>>,
    }

    impl View for Partial {
        fn room(&self, id: &str) -> Read<Option<RoomInfo>> {
            self.rooms
                .get(id)
                .cloned()
                .ok_or(Missing(Key::Room(id.into())))
        }
        fn has_room(&self, id: &str) -> Read<bool> {
            self.room(id).map(|r| r.is_some())
        }
        fn user_room(&self, user: &str) -> Read<Option<String>> {
            self.user_rooms
                .get(user)
                .cloned()
                .ok_or(Missing(Key::UserRoom(user.into())))
        }
        fn away(&self, room: &str, user: &str) -> Read<Option<u64>> {
            self.away
                .get(&(room.into(), user.into()))
                .cloned()
                .ok_or(Missing(Key::Away {
                    room: room.into(),
                    user: user.into(),
                }))
        }
        fn kept(&self, room: &str, user: &str) -> Read<Vec<Value>> {
            Err(Missing(Key::Kept {
                room: room.into(),
                user: user.into(),
            }))
        }
        fn files(&self, room: &str) -> Read<Vec<String>> {
            self.files
                .get(room)
                .cloned()
                .ok_or(Missing(Key::Files(room.into())))
        }
    }

    #[test]
    fn a_rule_asks_for_each_record_it_reads_then_answers() {
        let mut v = Partial::default();
        let r = room("r1", "a", "b");
        assert_eq!(
            open(&v, &r).unwrap_err(),
            Missing(Key::UserRoom("a".into()))
        );
        v.user_rooms.insert("a".into(), None);
        assert_eq!(
            open(&v, &r).unwrap_err(),
            Missing(Key::UserRoom("b".into()))
        );
        v.user_rooms.insert("b".into(), Some("r0".into()));
        let out = open(&v, &r).unwrap();
        assert_eq!(out.value, Err(RoomsError::Busy("b".into())));
        assert!(out.writes.is_empty(), "a refused open writes nothing");
    }

    #[test]
    fn closing_frees_both_members_and_records_partners() {
        let mut v = Partial::default();
        v.rooms.insert("r1".into(), Some(room("r1", "a", "b")));
        v.files.insert("r1".into(), vec!["f".into()]);
        v.user_rooms.insert("a".into(), Some("r1".into()));
        // b already moved on (a newer room): their pointer is left alone.
        v.user_rooms.insert("b".into(), Some("r2".into()));
        v.away.insert(("r1".into(), "a".into()), Some(7));
        v.away.insert(("r1".into(), "b".into()), None);
        let out = close(&v, "r1").unwrap();
        assert_eq!(out.value.as_ref().unwrap().files, ["f"]);
        assert!(out.writes.contains(&Write::DelUserRoom("a".into())));
        assert!(!out.writes.contains(&Write::DelUserRoom("b".into())));
        assert!(out.writes.contains(&Write::DelAway {
            room: "r1".into(),
            user: "a".into()
        }));
        assert!(out.writes.contains(&Write::SetLastPartner {
            user: "b".into(),
            partner: "a".into()
        }));
        // a is away, so offline: nothing is kept for them (it would
        // outlive their visit; the guest-churn soak found it after the load).
        assert!(
            !out.writes
                .iter()
                .any(|w| matches!(w, Write::SetLastPartner { user, .. } if user == "a"))
        );
        // With nobody away, both remember the other.
        v.away.insert(("r1".into(), "a".into()), None);
        let both = close(&v, "r1").unwrap().writes;
        assert!(both.contains(&Write::SetLastPartner {
            user: "a".into(),
            partner: "b".into()
        }));
        assert!(both.contains(&Write::SetLastPartner {
            user: "b".into(),
            partner: "a".into()
        }));
        v.away.insert(("r1".into(), "a".into()), Some(7));
        // Expiring with a stale token closes nothing.
        assert_eq!(expire_away(&v, "r1", "a", 6).unwrap().value, None);
        assert!(expire_away(&v, "r1", "a", 7).unwrap().value.is_some());
    }

    #[test]
    fn events_are_kept_delivered_or_refused() {
        let mut v = Partial::default();
        v.rooms.insert("r1".into(), Some(room("r1", "a", "b")));
        v.rooms.insert("gone".into(), None);
        v.away.insert(("r1".into(), "a".into()), None);
        v.away.insert(("r1".into(), "b".into()), Some(1));
        assert_eq!(
            hold(&v, "gone", "a", &|| json!(1)).unwrap().value,
            Hold::Gone
        );
        assert_eq!(
            hold(&v, "r1", "a", &|| json!(1)).unwrap(),
            answer(Hold::Deliver)
        );
        let kept = hold(&v, "r1", "b", &|| json!(1)).unwrap();
        assert_eq!(kept.value, Hold::Kept);
        assert_eq!(kept.writes.len(), 1);
        let mut buf = std::collections::VecDeque::new();
        for i in 0..RECOVERY_BUFFER + 3 {
            push_kept(&mut buf, json!(i));
        }
        assert_eq!(buf.len(), RECOVERY_BUFFER);
        assert_eq!(buf[0], json!(3));
    }
}
