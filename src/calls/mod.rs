//! Group calls' rules, sans-I/O: who may start and join a call, how many
//! fit, and who is in it. The media itself is the SFU's ([`crate::sfu`]).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::sfu::{PeerId, Track};

/// What a call belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A lounge room: its members may join.
    Lounge(String),
    /// A 1-to-1 chat: its two people and whom they invite may join.
    Chat { room: String, members: [String; 2] },
}

impl Scope {
    fn key(&self) -> &str {
        match self {
            Scope::Lounge(r) | Scope::Chat { room: r, .. } => r,
        }
    }

    pub fn room(&self) -> &str {
        self.key()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    pub user_id: String,
    pub username: String,
    pub tracks: Vec<Track>,
    #[serde(skip)]
    pub socket: String,
    #[serde(skip)]
    pub peer: PeerId,
}

#[derive(Debug, Clone)]
pub struct Call {
    pub id: String,
    pub scope: Scope,
    pub participants: Vec<Participant>,
    /// Invited to a chat's call.
    pub invited: BTreeSet<String>,
    /// When it started, or its last participant left.
    pub empty_since: Option<Instant>,
}

impl Call {
    /// Whether `user` may join (`lounge_member`: they joined the lounge).
    pub fn admits(&self, user: &str, lounge_member: bool) -> bool {
        match &self.scope {
            Scope::Lounge(_) => lounge_member,
            Scope::Chat { members, .. } => {
                members.iter().any(|m| m == user) || self.invited.contains(user)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("no such call")]
    NotFound,
    #[error("the call is full")]
    Full,
    #[error("only the room's members (or those invited) may join this call")]
    NotAllowed,
    #[error("already in this call")]
    AlreadyIn,
    #[error("not in this call")]
    NotIn,
}

impl CallError {
    pub fn code(self) -> &'static str {
        match self {
            CallError::NotFound => "call_not_found",
            CallError::Full => "call_full",
            CallError::NotAllowed => "not_allowed",
            CallError::AlreadyIn => "already_in_call",
            CallError::NotIn => "not_in_call",
        }
    }
}

/// Every call on this node.
#[derive(Debug, Default)]
pub struct Calls {
    calls: HashMap<String, Call>,
    by_room: HashMap<String, String>,
    by_peer: HashMap<PeerId, String>,
    next_peer: PeerId,
    pub max_participants: usize,
}

impl Calls {
    pub fn new(max_participants: usize) -> Self {
        Calls {
            max_participants,
            ..Default::default()
        }
    }

    /// The call of `scope`'s room: the running one, or a new one with
    /// `new_id`. Returns its id.
    pub fn start(&mut self, scope: Scope, now: Instant, new_id: impl FnOnce() -> String) -> String {
        if let Some(id) = self.by_room.get(scope.key()) {
            return id.clone();
        }
        let id = new_id();
        self.by_room.insert(scope.key().to_string(), id.clone());
        self.calls.insert(
            id.clone(),
            Call {
                id: id.clone(),
                scope,
                participants: Vec::new(),
                invited: BTreeSet::new(),
                empty_since: Some(now),
            },
        );
        id
    }

    pub fn get(&self, id: &str) -> Option<&Call> {
        self.calls.get(id)
    }

    /// The call running in a room, if any.
    pub fn in_room(&self, room: &str) -> Option<&Call> {
        self.by_room.get(room).and_then(|id| self.calls.get(id))
    }

    /// Lets a participant of a chat's call invite someone.
    pub fn invite(&mut self, id: &str, by: &str, user: &str) -> Result<(), CallError> {
        let call = self.calls.get_mut(id).ok_or(CallError::NotFound)?;
        if !call.participants.iter().any(|p| p.user_id == by) {
            return Err(CallError::NotIn);
        }
        call.invited.insert(user.to_string());
        Ok(())
    }

    /// Admits a participant (checks membership, room, duplicates) and
    /// reserves its media session id.
    pub fn admit(
        &mut self,
        id: &str,
        user_id: &str,
        username: &str,
        socket: &str,
        lounge_member: bool,
    ) -> Result<PeerId, CallError> {
        let call = self.calls.get_mut(id).ok_or(CallError::NotFound)?;
        if !call.admits(user_id, lounge_member) {
            return Err(CallError::NotAllowed);
        }
        if call.participants.iter().any(|p| p.user_id == user_id) {
            return Err(CallError::AlreadyIn);
        }
        if call.participants.len() >= self.max_participants {
            return Err(CallError::Full);
        }
        self.next_peer += 1;
        let peer = self.next_peer;
        call.empty_since = None;
        call.participants.push(Participant {
            user_id: user_id.to_string(),
            username: username.to_string(),
            tracks: Vec::new(),
            socket: socket.to_string(),
            peer,
        });
        self.by_peer.insert(peer, id.to_string());
        Ok(peer)
    }

    /// Removes a participant. A call left empty stays joinable until
    /// [`Calls::sweep_empty`] ends it. Returns the call and the participant.
    pub fn remove(&mut self, peer: PeerId, now: Instant) -> Option<(Call, Participant)> {
        let id = self.by_peer.remove(&peer)?;
        let call = self.calls.get_mut(&id)?;
        let at = call.participants.iter().position(|p| p.peer == peer)?;
        let gone = call.participants.remove(at);
        if call.participants.is_empty() {
            call.empty_since = Some(now);
        }
        Some((call.clone(), gone))
    }

    /// Ends calls started but left without anyone in them for `ttl`.
    /// Returns their ids and rooms.
    pub fn sweep_empty(&mut self, now: Instant, ttl: Duration) -> Vec<(String, String)> {
        let stale: Vec<String> = self
            .calls
            .values()
            .filter(|c| {
                c.empty_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= ttl)
            })
            .map(|c| c.id.clone())
            .collect();
        stale.iter().filter_map(|id| self.end(id)).collect()
    }

    /// Ends an empty call (a call that lost the race for its room).
    /// Returns its id and room.
    pub fn end(&mut self, id: &str) -> Option<(String, String)> {
        let c = self.calls.get(id)?;
        if !c.participants.is_empty() {
            return None;
        }
        let c = self.calls.remove(id)?;
        self.by_room.remove(c.scope.key());
        Some((c.id, c.scope.key().to_string()))
    }

    /// Every call here: (id, room).
    pub fn list(&self) -> Vec<(String, String)> {
        self.calls
            .values()
            .map(|c| (c.id.clone(), c.scope.key().to_string()))
            .collect()
    }

    /// The participant `user_id` of call `id`.
    pub fn peer_of(&self, id: &str, user_id: &str) -> Result<&Participant, CallError> {
        let call = self.calls.get(id).ok_or(CallError::NotFound)?;
        call.participants
            .iter()
            .find(|p| p.user_id == user_id)
            .ok_or(CallError::NotIn)
    }

    /// The media sessions a socket holds.
    pub fn peers_of_socket(&self, socket: &str) -> Vec<PeerId> {
        self.calls
            .values()
            .flat_map(|c| c.participants.iter())
            .filter(|p| p.socket == socket)
            .map(|p| p.peer)
            .collect()
    }

    /// A participant's published tracks changed; returns its call.
    pub fn set_tracks(&mut self, peer: PeerId, tracks: Vec<Track>) -> Option<&Call> {
        let id = self.by_peer.get(&peer)?;
        let call = self.calls.get_mut(id)?;
        let p = call.participants.iter_mut().find(|p| p.peer == peer)?;
        p.tracks = tracks;
        Some(call)
    }

    /// The call and participant of a media session.
    pub fn of_peer(&self, peer: PeerId) -> Option<(&Call, &Participant)> {
        let call = self.calls.get(self.by_peer.get(&peer)?)?;
        let p = call.participants.iter().find(|p| p.peer == peer)?;
        Some((call, p))
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    pub fn participants(&self) -> usize {
        self.by_peer.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lounge(calls: &mut Calls) -> String {
        calls.start(Scope::Lounge("general".into()), Instant::now(), || {
            "c1".into()
        })
    }

    #[test]
    fn one_call_per_room() {
        let mut calls = Calls::new(8);
        let a = lounge(&mut calls);
        let b = calls.start(Scope::Lounge("general".into()), Instant::now(), || {
            "c2".into()
        });
        assert_eq!(a, b);
        assert_eq!(calls.in_room("general").unwrap().id, "c1");
    }

    #[test]
    fn lounge_members_only_and_at_most_max() {
        let mut calls = Calls::new(2);
        let id = lounge(&mut calls);
        assert_eq!(
            calls.admit(&id, "u1", "one", "s1", false),
            Err(CallError::NotAllowed)
        );
        let p1 = calls.admit(&id, "u1", "one", "s1", true).unwrap();
        assert_eq!(
            calls.admit(&id, "u1", "one", "s9", true),
            Err(CallError::AlreadyIn)
        );
        let p2 = calls.admit(&id, "u2", "two", "s2", true).unwrap();
        assert_ne!(p1, p2);
        assert_eq!(
            calls.admit(&id, "u3", "three", "s3", true),
            Err(CallError::Full)
        );
        assert_eq!(CallError::Full.code(), "call_full");
        assert_eq!(
            calls.admit("nope", "u3", "x", "s", true),
            Err(CallError::NotFound)
        );
    }

    #[test]
    fn a_chat_call_admits_its_two_and_whom_they_invite() {
        let mut calls = Calls::new(8);
        let scope = Scope::Chat {
            room: "r".into(),
            members: ["a".into(), "b".into()],
        };
        let id = calls.start(scope, Instant::now(), || "c".into());
        assert_eq!(
            calls.admit(&id, "x", "x", "sx", true),
            Err(CallError::NotAllowed)
        );
        assert_eq!(calls.invite(&id, "a", "x"), Err(CallError::NotIn));
        calls.admit(&id, "a", "a", "sa", false).unwrap();
        calls.invite(&id, "a", "x").unwrap();
        calls.admit(&id, "x", "x", "sx", false).unwrap();
    }

    #[test]
    fn the_call_ends_a_while_after_its_last_participant_left() {
        let mut calls = Calls::new(8);
        let t0 = Instant::now();
        let ttl = Duration::from_secs(60);
        let id = lounge(&mut calls);
        let p1 = calls.admit(&id, "u1", "one", "s1", true).unwrap();
        let p2 = calls.admit(&id, "u2", "two", "s2", true).unwrap();
        assert_eq!(calls.peers_of_socket("s2"), vec![p2]);
        let (call, gone) = calls.remove(p1, t0).unwrap();
        assert_eq!(gone.user_id, "u1");
        assert_eq!(call.participants.len(), 1);
        calls.remove(p2, t0).unwrap();
        assert!(calls.remove(p2, t0).is_none());
        // Still there to rejoin for a while.
        assert!(
            calls
                .sweep_empty(t0 + Duration::from_secs(30), ttl)
                .is_empty()
        );
        calls.admit(&id, "u1", "one", "s3", true).unwrap();
        assert!(calls.sweep_empty(t0 + ttl * 2, ttl).is_empty());
        let p = calls.peers_of_socket("s3")[0];
        calls.remove(p, t0 + ttl).unwrap();
        assert_eq!(calls.sweep_empty(t0 + ttl * 2, ttl).len(), 1);
        assert!(calls.get(&id).is_none() && calls.in_room("general").is_none());
        // A new call in the room gets a new id.
        let again = calls.start(Scope::Lounge("general".into()), t0, || "c9".into());
        assert_eq!(again, "c9");
    }

    #[test]
    fn a_call_nobody_joins_ends_after_the_ttl() {
        let mut calls = Calls::new(8);
        let t0 = Instant::now();
        let ttl = Duration::from_secs(60);
        let id = calls.start(Scope::Lounge("a".into()), t0, || "ca".into());
        let joined = calls.start(Scope::Lounge("b".into()), t0, || "cb".into());
        calls.admit(&joined, "u", "u", "s", true).unwrap();
        assert!(
            calls
                .sweep_empty(t0 + Duration::from_secs(59), ttl)
                .is_empty()
        );
        assert_eq!(
            calls.sweep_empty(t0 + ttl, ttl),
            vec![("ca".to_string(), "a".to_string())]
        );
        assert!(calls.get(&id).is_none() && calls.in_room("a").is_none());
        assert!(calls.get(&joined).is_some());
    }

    #[test]
    fn tracks_are_kept_per_participant() {
        let mut calls = Calls::new(8);
        let id = lounge(&mut calls);
        let p1 = calls.admit(&id, "u1", "one", "s1", true).unwrap();
        let t = Track {
            kind: "video",
            track_id: "u1-0".into(),
        };
        let call = calls.set_tracks(p1, vec![t.clone()]).unwrap();
        assert_eq!(call.participants[0].tracks, vec![t]);
        let json = serde_json::to_value(&call.participants[0]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"userId": "u1", "username": "one", "tracks": [{"kind": "video", "trackId": "u1-0"}]})
        );
    }
}
