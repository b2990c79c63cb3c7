//! The Socket.IO events as an AsyncAPI 3.0 document, built from the typed
//! event lists ([`ClientEvent::ALL`], [`ServerEventKind::ALL`]): every event
//! has a payload schema here, in a `match` the compiler checks is
//! exhaustive, so adding an event without describing it does not build.

use std::sync::LazyLock;

use serde_json::{Map, Value, json};

use super::{ClientEvent, ServerEventKind};

fn obj(required: &[&str], props: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": props })
}

fn empty() -> Value {
    json!({ "description": "no argument, null or {} (all the same)", "type": ["object", "null"] })
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn user_id() -> Value {
    json!({ "type": "string", "description": "a user id (24 hex digits)" })
}

fn prefs() -> Value {
    json!({
        "type": ["object", "null"],
        "properties": {
            "interests": { "type": "array", "maxItems": 10, "items": { "type": "string", "minLength": 1, "maxLength": 30 } },
            "language": { "type": "string", "description": "a tag like en or pt-br" },
            "mode": { "enum": ["text", "video"] }
        }
    })
}

/// What the client sends with each event (the first argument), and a summary.
fn client(ev: ClientEvent) -> (&'static str, Value) {
    use ClientEvent::*;
    match ev {
        UserMatch => (
            "Ask to be matched; ack {status: waiting} or {status: matched, roomId}",
            prefs(),
        ),
        UserCancel => ("Leave the queue; ack {status: idle, wasQueued}", empty()),
        UserSkip => (
            "End the chat and queue again (optionally with new preferences)",
            prefs(),
        ),
        UserEnd => (
            "End the chat (or leave the queue); ack {status: idle}",
            empty(),
        ),
        UserBlock => (
            "Block a user (kept in the store); ack {blocked}",
            obj(&["userId"], json!({ "userId": user_id() })),
        ),
        UserUnblock => (
            "Lift a block; ack {unblocked, wasBlocked}",
            obj(&["userId"], json!({ "userId": user_id() })),
        ),
        UserReport => (
            "Report the current or a recent partner; ack {reportId}",
            obj(
                &["userId", "reason"],
                json!({
                    "userId": user_id(),
                    "reason": { "enum": ["spam", "harassment", "sexual", "underage", "hate", "other"] },
                    "details": { "type": "string", "maxLength": 500 },
                    "messageId": { "type": "string", "description": "a lounge message (room:message id) the report is about" }
                }),
            ),
        ),
        ChatMessage => (
            "Send a message to the partner; ack {id, timestamp, content | file}",
            json!({ "oneOf": [
                obj(&["content"], json!({ "type": { "const": "text" }, "content": { "type": "string", "minLength": 1, "maxLength": 1000 } })),
                obj(&["type", "fileId"], json!({ "type": { "enum": ["file", "voice"] }, "fileId": string() }))
            ]}),
        ),
        ChatTyping => (
            "Typing indicator; ack {isTyping}",
            obj(&["isTyping"], json!({ "isTyping": { "type": "boolean" } })),
        ),
        ChatClear => (
            "Clear the chat and delete its files; ack {deletedFiles}",
            empty(),
        ),
        WebrtcOffer => (
            "Relay an SDP offer to the partner",
            obj(
                &["offer"],
                json!({ "offer": { "type": "object", "description": "RTCSessionDescriptionInit (64 KiB at most)" }, "type": { "enum": ["audio", "video"] } }),
            ),
        ),
        WebrtcAnswer => (
            "Relay an SDP answer",
            obj(
                &["answer"],
                json!({ "answer": { "type": "object", "description": "RTCSessionDescriptionInit" } }),
            ),
        ),
        WebrtcIceCandidate => (
            "Relay an ICE candidate (null: end of candidates)",
            obj(
                &["candidate"],
                json!({ "candidate": { "type": ["object", "null"], "description": "RTCIceCandidateInit (4 KiB at most)" } }),
            ),
        ),
        WebrtcHangup => ("End the call (the chat stays)", empty()),
        RoomJoin => (
            "Join a lounge room; ack {room, members, messages, epoch, offset} or, with since, {recovered, messages, epoch, offset}",
            obj(
                &["roomId"],
                json!({
                    "roomId": string(),
                    "since": obj(&["offset", "epoch"], json!({ "offset": { "type": "integer", "minimum": 0 }, "epoch": string() }))
                }),
            ),
        ),
        RoomLeave => (
            "Leave a lounge room; ack {left}",
            obj(&["roomId"], json!({ "roomId": string() })),
        ),
        RoomMessage => (
            "Send a message to everyone in the room; ack {id, offset, timestamp, content}",
            obj(
                &["roomId", "content"],
                json!({ "roomId": string(), "content": { "type": "string", "minLength": 1, "maxLength": 1000 } }),
            ),
        ),
        RoomTyping => (
            "Typing indicator in a room",
            obj(
                &["roomId", "isTyping"],
                json!({ "roomId": string(), "isTyping": { "type": "boolean" } }),
            ),
        ),
        CallStart => (
            "Start the group call of a lounge room one joined, or of one's current chat (the running call if there is one); ack {callId, roomId}",
            obj(&["roomId"], json!({ "roomId": string() })),
        ),
        CallJoin => (
            "Join a group call; with the client's offer ack {callId, sdp: answer, participants}, without, {callId, sdp: the server's offer, participants} (answer it with call:signal)",
            obj(&["callId"], json!({ "callId": string(), "sdp": sdp() })),
        ),
        CallSignal => (
            "An answer to the server's offer, a new offer (ack {sdp: answer}), or an ICE candidate",
            obj(
                &["callId"],
                json!({ "callId": string(), "sdp": sdp(), "candidate": { "type": ["object", "string", "null"], "description": "RTCIceCandidateInit or its candidate line (null: end of candidates)" } }),
            ),
        ),
        CallLeave => (
            "Leave a group call; ack {left}",
            obj(&["callId"], json!({ "callId": string() })),
        ),
        CallInvite => (
            "Invite someone to the call of a 1-to-1 chat; ack {invited}",
            obj(
                &["callId", "userId"],
                json!({ "callId": string(), "userId": user_id() }),
            ),
        ),
    }
}

/// What the server sends with each event.
fn server(ev: ServerEventKind) -> (&'static str, Value) {
    use ServerEventKind::*;
    let room = || json!({ "type": "string", "description": "the chat's id" });
    match ev {
        ConnectionEstablished => (
            "The handshake passed",
            obj(
                &["userId", "username", "socketId"],
                json!({ "userId": user_id(), "username": string(), "socketId": string() }),
            ),
        ),
        UserMatched => (
            "A chat started (or was recovered after a reconnect)",
            obj(
                &["roomId", "matchedUser", "role", "commonInterests"],
                json!({
                    "roomId": room(),
                    "matchedUser": obj(&["id", "username"], json!({ "id": user_id(), "username": string() })),
                    "role": { "enum": ["caller", "callee"] },
                    "commonInterests": { "type": "array", "items": string() },
                    "recovered": { "type": "boolean" }
                }),
            ),
        ),
        PartnerLeft => (
            "The partner left",
            obj(
                &["reason", "roomId"],
                json!({ "reason": { "enum": ["skipped", "ended", "disconnected"] }, "roomId": room() }),
            ),
        ),
        PartnerReconnecting => (
            "The partner dropped; the chat waits",
            obj(
                &["roomId", "graceSeconds"],
                json!({ "roomId": room(), "graceSeconds": { "type": "number" } }),
            ),
        ),
        PartnerReconnected => (
            "The partner is back",
            obj(&["roomId"], json!({ "roomId": room() })),
        ),
        ChatMessage => (
            "A message from the partner",
            obj(
                &["id", "from", "type", "timestamp"],
                json!({
                    "id": string(), "from": user_id(), "type": { "enum": ["text", "file", "voice"] },
                    "timestamp": { "type": "string", "format": "date-time" },
                    "content": string(),
                    "file": { "type": "object", "description": "{id, name, mime, size, url, kind, duration?}" }
                }),
            ),
        ),
        ChatTyping => (
            "The partner's typing indicator",
            obj(
                &["isTyping", "from"],
                json!({ "isTyping": { "type": "boolean" }, "from": user_id() }),
            ),
        ),
        ChatCleared => (
            "The chat was cleared",
            obj(
                &["roomId", "by"],
                json!({ "roomId": room(), "by": user_id() }),
            ),
        ),
        WebrtcOffer => (
            "An SDP offer from the partner",
            obj(
                &["from", "offer", "type"],
                json!({ "from": user_id(), "offer": { "type": "object" }, "type": { "enum": ["audio", "video"] } }),
            ),
        ),
        WebrtcAnswer => (
            "An SDP answer from the partner",
            obj(
                &["from", "answer"],
                json!({ "from": user_id(), "answer": { "type": "object" } }),
            ),
        ),
        WebrtcIceCandidate => (
            "An ICE candidate from the partner",
            obj(
                &["from", "candidate"],
                json!({ "from": user_id(), "candidate": { "type": ["object", "null"] } }),
            ),
        ),
        WebrtcHangup => (
            "The partner hung up",
            obj(&["from"], json!({ "from": user_id() })),
        ),
        ServerShutdown => (
            "The process is stopping; reconnect with backoff",
            obj(&["reconnect"], json!({ "reconnect": { "const": true } })),
        ),
        ServerDegraded => (
            "Redis is unreachable: matching is down",
            obj(
                &["redis", "matching"],
                json!({ "redis": { "const": "down" }, "matching": { "const": false } }),
            ),
        ),
        ServerRecovered => (
            "Redis is back",
            obj(
                &["redis", "matching"],
                json!({ "redis": { "const": "up" }, "matching": { "const": true } }),
            ),
        ),
        ModerationBanned => (
            "The user is banned; the socket is disconnected next",
            obj(
                &["until", "reason"],
                json!({ "until": { "type": "string", "format": "date-time" }, "reason": string() }),
            ),
        ),
        ModerationWarning => (
            "A moderator warned the user",
            obj(&["reason"], json!({ "reason": string() })),
        ),
        Error => (
            "A client event sent without an ack failed",
            obj(
                &["code", "message"],
                json!({ "code": string(), "message": string() }),
            ),
        ),
        RoomMessage => ("A message in a room one is in", room_message()),
        RoomJoined => (
            "Someone joined a room one is in",
            obj(
                &["roomId", "user"],
                json!({ "roomId": string(), "user": author() }),
            ),
        ),
        RoomLeft => (
            "Someone left a room one is in (removed: by a moderator)",
            obj(
                &["roomId", "user"],
                json!({ "roomId": string(), "user": author(), "removed": { "type": "boolean" } }),
            ),
        ),
        RoomTyping => (
            "Someone is typing in a room",
            obj(
                &["roomId", "user", "isTyping"],
                json!({ "roomId": string(), "user": author(), "isTyping": { "type": "boolean" } }),
            ),
        ),
        RoomMessageDeleted => (
            "A moderator deleted a room message",
            obj(
                &["roomId", "id"],
                json!({ "roomId": string(), "id": string() }),
            ),
        ),
        RoomsUpdate => (
            "Member counts of the rooms, at most once a second",
            obj(
                &["rooms"],
                json!({ "rooms": { "type": "array", "items": obj(&["id", "members"], json!({ "id": string(), "members": { "type": "integer" } })) } }),
            ),
        ),
        CallParticipants => (
            "Who is in a call one is in, and what each publishes (each track's stream id is its user id)",
            obj(
                &["callId", "roomId", "participants"],
                json!({ "callId": string(), "roomId": string(), "participants": { "type": "array", "items": obj(
                    &["userId", "username", "tracks"],
                    json!({ "userId": user_id(), "username": string(), "tracks": { "type": "array", "items": obj(
                        &["kind", "trackId"], json!({ "kind": { "enum": ["audio", "video"] }, "trackId": string() })) } })) } }),
            ),
        ),
        CallSignal => (
            "A renegotiation offer from the media server (answer with call:signal)",
            obj(
                &["callId", "sdp"],
                json!({ "callId": string(), "sdp": sdp() }),
            ),
        ),
        CallLeft => (
            "This socket is out of the call (reason: idle, disconnected, left)",
            obj(
                &["callId", "reason"],
                json!({ "callId": string(), "reason": string() }),
            ),
        ),
        CallInvited => (
            "Someone in a chat's call invites you to it",
            obj(
                &["callId", "roomId", "from"],
                json!({ "callId": string(), "roomId": string(), "from": author() }),
            ),
        ),
    }
}

fn sdp() -> Value {
    obj(
        &["type", "sdp"],
        json!({ "type": { "enum": ["offer", "answer"] }, "sdp": { "type": "string", "maxLength": 65536 } }),
    )
}

fn author() -> Value {
    obj(
        &["id", "username"],
        json!({ "id": user_id(), "username": string() }),
    )
}

fn room_message() -> Value {
    obj(
        &["roomId", "id", "offset", "from", "content", "timestamp"],
        json!({
            "roomId": string(),
            "id": { "type": "string", "description": "<roomId>.<offset>" },
            "offset": { "type": "integer", "description": "grows with every message of the room" },
            "from": author(),
            "content": string(),
            "timestamp": { "type": "string", "format": "date-time" }
        }),
    )
}

/// The ack every client event is answered with (when the client asks for one).
fn ack() -> Value {
    json!({ "oneOf": [
        obj(&["success", "data"], json!({ "success": { "const": true }, "data": {} })),
        obj(&["success", "error"], json!({
            "success": { "const": false },
            "error": obj(&["code", "message"], json!({ "code": string(), "message": string(), "resetAt": { "type": "string", "format": "date-time" } }))
        }))
    ]})
}

/// A component key for an event name (`user:match` → `user_match`).
fn key(name: &str) -> String {
    name.replace([':', '-'], "_")
}

fn build() -> Value {
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    let mut ch_messages = Map::new();
    for &ev in ClientEvent::ALL {
        let (summary, payload) = client(ev);
        let k = format!("client_{}", key(ev.name()));
        messages.insert(k.clone(), json!({ "name": ev.name(), "title": ev.name(), "summary": summary, "payload": payload }));
        ch_messages.insert(
            k.clone(),
            json!({ "$ref": format!("#/components/messages/{k}") }),
        );
        operations.insert(format!("send_{}", key(ev.name())), json!({
            "action": "receive",
            "summary": format!("The client emits `{}` (the server receives it)", ev.name()),
            "channel": { "$ref": "#/channels/root" },
            "messages": [{ "$ref": format!("#/channels/root/messages/{k}") }],
            "reply": { "channel": { "$ref": "#/channels/root" }, "messages": [{ "$ref": "#/channels/root/messages/ack" }] }
        }));
    }
    for &ev in ServerEventKind::ALL {
        let (summary, payload) = server(ev);
        let k = format!("server_{}", key(ev.name()));
        messages.insert(k.clone(), json!({ "name": ev.name(), "title": ev.name(), "summary": summary, "payload": payload }));
        ch_messages.insert(
            k.clone(),
            json!({ "$ref": format!("#/components/messages/{k}") }),
        );
        operations.insert(
            format!("on_{}", key(ev.name())),
            json!({
                "action": "send",
                "summary": format!("The server emits `{}`", ev.name()),
                "channel": { "$ref": "#/channels/root" },
                "messages": [{ "$ref": format!("#/channels/root/messages/{k}") }]
            }),
        );
    }
    messages.insert("ack".into(), json!({ "name": "ack", "title": "ack", "summary": "The answer to a client event sent with an acknowledgement", "payload": ack() }));
    ch_messages.insert("ack".into(), json!({ "$ref": "#/components/messages/ack" }));
    channels.insert("root".into(), json!({
        "address": "/",
        "title": "The default namespace",
        "description": "Socket.IO v5 over Engine.IO v4 at path /socket.io/ (WebSocket or long-polling). The handshake's auth is {token: <access token>, deviceId?}.",
        "messages": ch_messages
    }));
    json!({
        "asyncapi": "3.1.0",
        "info": {
            "title": "Tandem realtime API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Socket.IO events of Tandem. Every client event takes one argument (none, null and {} are the same) and, when the client asks for an ack, is answered with the ack message. docs/API.md has the rules."
        },
        "servers": {
            "tandem": { "host": "localhost:3001", "protocol": "ws", "pathname": "/socket.io/", "description": "this server (Socket.IO v5)" }
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": { "messages": messages }
    })
}

static DOCUMENT: LazyLock<String> = LazyLock::new(|| build().to_string());

/// The document as served at `GET /api/asyncapi.json`.
pub fn document() -> String {
    DOCUMENT.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_is_described_once() {
        let doc = build();
        let messages = doc["components"]["messages"].as_object().unwrap();
        assert_eq!(
            messages.len(),
            ClientEvent::ALL.len() + ServerEventKind::ALL.len() + 1
        );
        for ev in ClientEvent::ALL {
            assert!(
                messages.contains_key(&format!("client_{}", key(ev.name()))),
                "{}",
                ev.name()
            );
        }
        for ev in ServerEventKind::ALL {
            assert!(
                messages.contains_key(&format!("server_{}", key(ev.name()))),
                "{}",
                ev.name()
            );
        }
    }
}
