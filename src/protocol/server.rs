//! Server events: names declared once in [`ServerEventKind`], payloads as
//! typed values in [`ServerEvent`], serialized in one place
//! ([`ServerEvent::name`] and its `Serialize`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::ids::{RoomId, UserId};

macro_rules! kinds {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// Every event the server emits.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ServerEventKind {
            $($variant),*
        }

        impl ServerEventKind {
            pub const ALL: &'static [ServerEventKind] = &[$(ServerEventKind::$variant),*];

            /// The event's name on the wire.
            pub const fn name(self) -> &'static str {
                match self {
                    $(ServerEventKind::$variant => $name),*
                }
            }
        }
    };
}

kinds! {
    ConnectionEstablished => "connection:established",
    UserMatched => "user:matched",
    PartnerLeft => "partner:left",
    PartnerReconnecting => "partner:reconnecting",
    PartnerReconnected => "partner:reconnected",
    ChatMessage => "chat:message",
    ChatTyping => "chat:typing",
    ChatCleared => "chat:cleared",
    WebrtcOffer => "webrtc:offer",
    WebrtcAnswer => "webrtc:answer",
    WebrtcIceCandidate => "webrtc:ice-candidate",
    WebrtcHangup => "webrtc:hangup",
    ServerShutdown => "server:shutdown",
    ServerDegraded => "server:degraded",
    ServerRecovered => "server:recovered",
    ModerationBanned => "moderation:banned",
    ModerationWarning => "moderation:warning",
    RoomMessage => "room:message",
    RoomJoined => "room:joined",
    RoomLeft => "room:left",
    RoomTyping => "room:typing",
    RoomMessageDeleted => "room:message-deleted",
    RoomsUpdate => "rooms:update",
    CallParticipants => "call:participants",
    CallSignal => "call:signal",
    CallLeft => "call:left",
    CallInvited => "call:invited",
    Error => "error",
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Member {
    pub id: UserId,
    pub username: String,
}

/// A time as every event writes it: RFC 3339 in UTC, `Z`, with as many
/// fraction digits as it needs (0, 3, 6 or 9) — what chrono's `Serialize`
/// writes, made in one go: serde_json's `collect_str`, which chrono's
/// `Serialize` goes through, escapes each piece the formatter hands it.
pub fn stamp(t: &DateTime<Utc>) -> String {
    let mut out = String::with_capacity(30);
    crate::json::stamp(&mut out, t);
    out
}

fn stamp_field<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&stamp(t))
}

/// A chat message as the partner receives it (also what recovery keeps).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChatMessage {
    pub id: String,
    pub from: UserId,
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(serialize_with = "stamp_field")]
    pub timestamp: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The shared file's public JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<Value>,
}

impl ChatMessage {
    /// Its JSON, byte for byte what its `Serialize` writes (tested), with
    /// the keys written as constants: every relayed message is one.
    pub fn write_json(&self, out: &mut String) -> Result<(), serde_json::Error> {
        use crate::json::string;
        out.push_str("{\"id\":");
        string(out, &self.id);
        out.push_str(",\"from\":");
        string(out, self.from.as_str());
        out.push_str(",\"type\":");
        string(out, self.kind);
        out.push_str(",\"timestamp\":\"");
        crate::json::stamp(out, &self.timestamp);
        out.push('"');
        if let Some(content) = &self.content {
            out.push_str(",\"content\":");
            string(out, content);
        }
        if let Some(file) = &self.file {
            out.push_str(",\"file\":");
            crate::json::value(out, file)?;
        }
        out.push('}');
        Ok(())
    }
}

/// Every server event with its payload.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum ServerEvent {
    #[serde(rename_all = "camelCase")]
    ConnectionEstablished {
        user_id: UserId,
        username: String,
        socket_id: String,
    },
    #[serde(rename_all = "camelCase")]
    UserMatched {
        room_id: RoomId,
        matched_user: Member,
        role: crate::chat::Role,
        common_interests: Vec<String>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        recovered: bool,
    },
    #[serde(rename_all = "camelCase")]
    PartnerLeft {
        reason: &'static str,
        room_id: RoomId,
    },
    #[serde(rename_all = "camelCase")]
    PartnerReconnecting {
        room_id: RoomId,
        grace_seconds: f64,
    },
    #[serde(rename_all = "camelCase")]
    PartnerReconnected {
        room_id: RoomId,
    },
    ChatMessage(ChatMessage),
    #[serde(rename_all = "camelCase")]
    ChatTyping {
        is_typing: bool,
        from: UserId,
    },
    #[serde(rename_all = "camelCase")]
    ChatCleared {
        room_id: RoomId,
        by: UserId,
    },
    WebrtcOffer {
        from: UserId,
        offer: Value,
        #[serde(rename = "type")]
        kind: &'static str,
    },
    WebrtcAnswer {
        from: UserId,
        answer: Value,
    },
    WebrtcIceCandidate {
        from: UserId,
        candidate: Value,
    },
    WebrtcHangup {
        from: UserId,
    },
    ServerShutdown {
        reconnect: bool,
    },
    ModerationBanned {
        until: DateTime<Utc>,
        reason: String,
    },
    ModerationWarning {
        reason: String,
    },
    ServerDegraded {
        redis: &'static str,
        matching: bool,
    },
    ServerRecovered {
        redis: &'static str,
        matching: bool,
    },
    Error {
        code: &'static str,
        message: String,
    },
    /// A lounge message, as kept in the room's history.
    RoomMessage(crate::store::RoomMessage),
    #[serde(rename_all = "camelCase")]
    RoomJoined {
        room_id: String,
        user: crate::store::Author,
    },
    #[serde(rename_all = "camelCase")]
    RoomLeft {
        room_id: String,
        user: crate::store::Author,
        /// Removed by a moderator.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        removed: bool,
    },
    #[serde(rename_all = "camelCase")]
    RoomTyping {
        room_id: String,
        user: crate::store::Author,
        is_typing: bool,
    },
    #[serde(rename_all = "camelCase")]
    RoomMessageDeleted {
        room_id: String,
        id: String,
    },
    RoomsUpdate {
        rooms: Vec<RoomCount>,
    },
    #[serde(rename_all = "camelCase")]
    CallParticipants {
        call_id: String,
        room_id: String,
        participants: Vec<crate::calls::Participant>,
    },
    /// A renegotiation offer from the media server.
    #[serde(rename_all = "camelCase")]
    CallSignal {
        call_id: String,
        sdp: crate::sfu::Sdp,
    },
    /// This socket is out of the call (removed as idle, banned, or its
    /// media ended).
    #[serde(rename_all = "camelCase")]
    CallLeft {
        call_id: String,
        reason: &'static str,
    },
    #[serde(rename_all = "camelCase")]
    CallInvited {
        call_id: String,
        room_id: String,
        from: Member,
    },
}

/// A room and how many are in it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RoomCount {
    pub id: String,
    pub members: usize,
}

impl ServerEvent {
    pub fn kind(&self) -> ServerEventKind {
        use ServerEventKind as K;
        match self {
            ServerEvent::ConnectionEstablished { .. } => K::ConnectionEstablished,
            ServerEvent::UserMatched { .. } => K::UserMatched,
            ServerEvent::PartnerLeft { .. } => K::PartnerLeft,
            ServerEvent::PartnerReconnecting { .. } => K::PartnerReconnecting,
            ServerEvent::PartnerReconnected { .. } => K::PartnerReconnected,
            ServerEvent::ChatMessage(_) => K::ChatMessage,
            ServerEvent::ChatTyping { .. } => K::ChatTyping,
            ServerEvent::ChatCleared { .. } => K::ChatCleared,
            ServerEvent::WebrtcOffer { .. } => K::WebrtcOffer,
            ServerEvent::WebrtcAnswer { .. } => K::WebrtcAnswer,
            ServerEvent::WebrtcIceCandidate { .. } => K::WebrtcIceCandidate,
            ServerEvent::WebrtcHangup { .. } => K::WebrtcHangup,
            ServerEvent::ServerShutdown { .. } => K::ServerShutdown,
            ServerEvent::ModerationBanned { .. } => K::ModerationBanned,
            ServerEvent::ModerationWarning { .. } => K::ModerationWarning,
            ServerEvent::ServerDegraded { .. } => K::ServerDegraded,
            ServerEvent::ServerRecovered { .. } => K::ServerRecovered,
            ServerEvent::Error { .. } => K::Error,
            ServerEvent::RoomMessage(_) => K::RoomMessage,
            ServerEvent::RoomJoined { .. } => K::RoomJoined,
            ServerEvent::RoomLeft { .. } => K::RoomLeft,
            ServerEvent::RoomTyping { .. } => K::RoomTyping,
            ServerEvent::RoomMessageDeleted { .. } => K::RoomMessageDeleted,
            ServerEvent::RoomsUpdate { .. } => K::RoomsUpdate,
            ServerEvent::CallParticipants { .. } => K::CallParticipants,
            ServerEvent::CallSignal { .. } => K::CallSignal,
            ServerEvent::CallLeft { .. } => K::CallLeft,
            ServerEvent::CallInvited { .. } => K::CallInvited,
        }
    }

    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// Its JSON: what its `Serialize` writes, the chat message by hand.
    pub fn write_json(&self, out: &mut String) -> Result<(), serde_json::Error> {
        match self {
            ServerEvent::ChatMessage(m) => m.write_json(out),
            other => crate::json::value(out, other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_stamp_is_what_chrono_serializes() {
        use chrono::TimeZone;
        let second = Utc.with_ymd_and_hms(2026, 11, 24, 6, 5, 4).unwrap();
        for nanos in [0, 7_000_000, 7_250_000, 123_456_789, 999_999_999, 1] {
            let t = second + chrono::Duration::nanoseconds(nanos);
            assert_eq!(json!(stamp(&t)), serde_json::to_value(t).unwrap(), "{t:?}");
        }
        let now = Utc::now();
        assert_eq!(json!(stamp(&now)), serde_json::to_value(now).unwrap());
    }

    proptest::proptest! {
        /// The hand-written chat message is its `Serialize`, byte for byte.
        #[test]
        fn a_chat_message_is_written_as_serde_writes_it(
            id in ".{0,40}",
            from in ".{0,30}",
            kind in proptest::sample::select(vec!["text", "file", "voice"]),
            secs in 0i64..4_000_000_000,
            nanos in 0u32..1_000_000_000,
            content in proptest::option::of(proptest::prelude::any::<String>()),
            file in proptest::option::of(".{0,20}"),
        ) {
            let message = ChatMessage {
                id,
                from: UserId(from),
                kind,
                timestamp: DateTime::from_timestamp(secs, nanos).unwrap(),
                content,
                file: file.map(|name| json!({"id": "f", "name": name, "size": 3, "duration": 1.5, "nested": {"z": [1, null]}})),
            };
            let mut out = String::new();
            ServerEvent::ChatMessage(message.clone()).write_json(&mut out).unwrap();
            proptest::prop_assert_eq!(out, serde_json::to_string(&message).unwrap());
        }
    }

    #[test]
    fn other_events_are_written_by_serde() {
        let ev = ServerEvent::PartnerLeft {
            reason: "left",
            room_id: "r\"1".into(),
        };
        let mut out = String::new();
        ev.write_json(&mut out).unwrap();
        assert_eq!(out, serde_json::to_string(&ev).unwrap());
    }

    #[test]
    fn payloads_keep_the_wire_shape() {
        let ev = ServerEvent::PartnerReconnecting {
            room_id: "r".into(),
            grace_seconds: 30.0,
        };
        assert_eq!(ev.name(), "partner:reconnecting");
        assert_eq!(
            serde_json::to_value(&ev).unwrap(),
            json!({"roomId": "r", "graceSeconds": 30.0})
        );
        let ev = ServerEvent::UserMatched {
            room_id: "r".into(),
            matched_user: Member {
                id: "u".into(),
                username: "n".into(),
            },
            role: crate::chat::Role::Caller,
            common_interests: vec![],
            recovered: false,
        };
        assert_eq!(
            serde_json::to_value(&ev).unwrap(),
            json!({"roomId": "r", "matchedUser": {"id": "u", "username": "n"}, "role": "caller", "commonInterests": []})
        );
        let ev = ServerEvent::WebrtcOffer {
            from: "u".into(),
            offer: json!({"sdp": "v=0"}),
            kind: "video",
        };
        assert_eq!(
            serde_json::to_value(&ev).unwrap(),
            json!({"from": "u", "offer": {"sdp": "v=0"}, "type": "video"})
        );
    }
}
