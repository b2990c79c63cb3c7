//! Client events of the call loop: matching (`user:*`), chat (`chat:*`) and
//! WebRTC signaling (`webrtc:*`). Each checks the user's event budget,
//! validates its payload and answers through [`Reply`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use serde_json::{Map, Value, json};
use socketioxide::{
    ParserError, SocketIo,
    adapter::Adapter,
    extract::{Event, SocketRef, State, TryData},
};

use super::{EventError, Reply, calls};
use crate::{
    AppState,
    chat::{RoomInfo, text},
    files::ShareError,
    matching::{Joined, Mode, Ticket},
    presence::{SessionUser, Status},
};

/// Largest SDP (offer or answer) relayed.
pub const MAX_SDP_BYTES: usize = 64 * 1024;
/// Largest ICE candidate relayed.
pub const MAX_CANDIDATE_BYTES: usize = 4 * 1024;
const MAX_INTERESTS: usize = 10;
const MAX_INTEREST_CHARS: usize = 30;

type EventResult = Result<Value, EventError>;

/// The first argument of a client event, or `None` when it was sent with
/// none: `socket.emit('webrtc:hangup')` is `["webrtc:hangup"]` on the wire.
/// socketioxide's `Data<Value>` reads the first element and refuses an
/// event without one, so this reads the argument list as a tuple instead.
#[derive(Debug, Clone, PartialEq)]
pub struct FirstArg(pub Option<Value>);

impl<'de> serde::Deserialize<'de> for FirstArg {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Args;
        impl<'de> serde::de::Visitor<'de> for Args {
            type Value = FirstArg;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("the event's arguments")
            }
            fn visit_seq<S: serde::de::SeqAccess<'de>>(
                self,
                mut seq: S,
            ) -> Result<FirstArg, S::Error> {
                let first = seq.next_element::<Value>()?;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(FirstArg(first))
            }
        }
        // A tuple, so socketioxide hands over every argument, not the first.
        d.deserialize_tuple(usize::MAX, Args)
    }
}

/// Signaling events, forwarded to the partner: (event, required field and its size limit).
const SIGNALS: [(&str, Option<(&str, usize)>); 4] = [
    ("webrtc:offer", Some(("offer", MAX_SDP_BYTES))),
    ("webrtc:answer", Some(("answer", MAX_SDP_BYTES))),
    (
        "webrtc:ice-candidate",
        Some(("candidate", MAX_CANDIDATE_BYTES)),
    ),
    ("webrtc:hangup", None),
];

/// Every client event, dispatched by name: one handler per socket (a
/// handler map per socket costs ~1 KiB of every idle connection).
pub async fn dispatch<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    State(state): State<AppState>,
    Event(event): Event,
    TryData(data): TryData<FirstArg>,
    reply: Reply<A>,
) {
    // socketioxide spawns this future per event, so its size is copied every
    // time: the frequent chat events run inline, the rest (larger, rarer)
    // boxed, so they do not make every event's future as large as theirs.
    let result = match event.as_str() {
        "chat:message" => chat_message(s, io, state, data).await,
        "chat:typing" => chat_typing(s, io, state, data).await,
        "user:match" => Box::pin(user_match(s, io, state, data)).await,
        "user:cancel" => Box::pin(user_cancel(s, state)).await,
        "user:skip" => Box::pin(user_skip(s, io, state, data)).await,
        "user:end" => Box::pin(user_end(s, io, state)).await,
        "user:block" => Box::pin(user_block(s, io, state, data)).await,
        "chat:clear" => Box::pin(chat_clear(s, io, state)).await,
        other => match SIGNALS.iter().find(|(name, _)| *name == other) {
            Some(&(name, field)) => Box::pin(signal(&s, &io, &state, name, data, field)).await,
            // Unknown names cost a token too: they are work all the same.
            None => begin(&s, &state).and_then(|_| {
                Err(EventError::new(
                    "unknown_event",
                    format!("unknown event '{other}'"),
                ))
            }),
        },
    };
    reply.send(result);
}

fn invalid(message: impl Into<String>) -> EventError {
    EventError::new("invalid_payload", message)
}

fn not_in_chat() -> EventError {
    EventError::new("not_in_chat", "you are not in a chat")
}

fn unavailable(e: impl std::fmt::Display) -> EventError {
    tracing::warn!(error = %e, "backing service unavailable");
    EventError::new(
        "service_unavailable",
        "the server cannot do this right now, try again",
    )
}

/// The socket's user, after charging one event to their budget.
fn begin<A: Adapter>(s: &SocketRef<A>, state: &AppState) -> Result<Arc<SessionUser>, EventError> {
    let user = s
        .extensions
        .get::<Arc<SessionUser>>()
        .ok_or_else(|| EventError::new("unauthorized", "not authenticated"))?;
    state.events.take(&user.id).map_err(|wait| {
        EventError::new(
            "rate_limited",
            format!("too many events; retry in {} ms", wait.as_millis().max(1)),
        )
    })?;
    Ok(user)
}

/// The payload as an object; no argument or `null` counts as `{}`.
fn object(
    data: Result<FirstArg, impl std::fmt::Display>,
) -> Result<Map<String, Value>, EventError> {
    match data {
        Ok(FirstArg(Some(Value::Object(m)))) => Ok(m),
        Ok(FirstArg(None | Some(Value::Null))) => Ok(Map::new()),
        Ok(_) => Err(invalid("the payload must be an object")),
        Err(e) => Err(invalid(format!("unreadable payload: {e}"))),
    }
}

async fn current_room(state: &AppState, user_id: &str) -> Result<RoomInfo, EventError> {
    state
        .rooms
        .room_of(user_id)
        .await
        .map_err(unavailable)?
        .ok_or_else(not_in_chat)
}

/// Closes `room_id` (if still open) as `by` did; the partner gets `partner:left {reason}`.
async fn end_chat<A: Adapter>(
    io: &SocketIo<A>,
    state: &AppState,
    room_id: &str,
    by: &str,
    reason: &str,
) -> Result<(), EventError> {
    if let Some(closed) = state.rooms.close(room_id).await.map_err(unavailable)? {
        calls::finish_chat(io, state, closed, Some(by), reason).await;
    }
    Ok(())
}

/// What `user:match` asked for, kept on the socket for `user:skip`.
#[derive(Debug, Clone, Default)]
pub struct MatchPrefs {
    interests: Vec<String>,
    language: Option<String>,
    mode: Option<Mode>,
}

fn parse_prefs(m: &Map<String, Value>) -> Result<MatchPrefs, EventError> {
    let mut prefs = MatchPrefs::default();
    match m.get("interests") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            if items.len() > MAX_INTERESTS {
                return Err(invalid(format!("at most {MAX_INTERESTS} interests")));
            }
            for item in items {
                let Some(s) = item.as_str() else {
                    return Err(invalid("interests must be strings"));
                };
                let s = s.trim().to_lowercase();
                if s.is_empty()
                    || s.chars().count() > MAX_INTEREST_CHARS
                    || s.chars().any(char::is_control)
                {
                    return Err(invalid(format!(
                        "each interest must be 1 to {MAX_INTEREST_CHARS} characters"
                    )));
                }
                prefs.interests.push(s);
            }
            prefs.interests.sort();
            prefs.interests.dedup();
        }
        Some(_) => return Err(invalid("interests must be an array of strings")),
    }
    match m.get("language") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            let s = s.trim().to_lowercase();
            if s.is_empty()
                || s.len() > 16
                || !s.chars().all(|c| c.is_ascii_alphabetic() || c == '-')
            {
                return Err(invalid(
                    "language must be a language tag such as 'en' or 'pt-br'",
                ));
            }
            prefs.language = Some(s);
        }
        Some(_) => return Err(invalid("language must be a string")),
    }
    prefs.mode = match m.get("mode") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "text" => Some(Mode::Text),
        Some(Value::String(s)) if s == "video" => Some(Mode::Video),
        Some(_) => return Err(invalid("mode must be 'text' or 'video'")),
    };
    Ok(prefs)
}

/// Queues the user with `prefs`; the ack data says where they stand.
async fn enqueue<A: Adapter>(
    io: &SocketIo<A>,
    state: &AppState,
    user: &SessionUser,
    prefs: MatchPrefs,
) -> EventResult {
    // Blocks (from the store) and the last partner: never matched again.
    let mut avoid = state.rooms.avoid_set(&user.id).await.map_err(unavailable)?;
    avoid.extend(
        state
            .store
            .blocks_of(&user.id)
            .await
            .map_err(unavailable)?,
    );
    let ticket = Ticket {
        user_id: user.id.clone(),
        username: user.username.clone(),
        interests: prefs.interests,
        language: prefs.language,
        mode: prefs.mode,
        avoid,
    };
    match calls::requeue(io, state, ticket)
        .await
        .map_err(unavailable)?
    {
        Joined::Waiting => Ok(json!({ "status": "waiting" })),
        Joined::Matched(_) => {
            let room = state.rooms.room_of(&user.id).await.map_err(unavailable)?;
            Ok(json!({ "status": "matched", "roomId": room.map(|r| r.id) }))
        }
    }
}

async fn user_match<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    state: AppState,
    data: Result<FirstArg, ParserError>,
) -> EventResult {
    let user = begin(&s, &state)?;
    let prefs = parse_prefs(&object(data)?)?;
    if state
        .rooms
        .room_of(&user.id)
        .await
        .map_err(unavailable)?
        .is_some()
    {
        return Err(EventError::new(
            "already_in_chat",
            "end or skip the current chat first",
        ));
    }
    s.extensions.insert(prefs.clone());
    enqueue(&io, &state, &user, prefs).await
}

async fn user_cancel<A: Adapter>(s: SocketRef<A>, state: AppState) -> EventResult {
    let user = begin(&s, &state)?;
    let was_queued = state.matcher.leave(&user.id).await.map_err(unavailable)?;
    if was_queued {
        let _ = state.presence.set_status(&user.id, Status::Idle).await;
    }
    Ok(json!({ "status": "idle", "wasQueued": was_queued }))
}

async fn user_skip<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    state: AppState,
    data: Result<FirstArg, ParserError>,
) -> EventResult {
    let user = begin(&s, &state)?;
    let payload = object(data)?;
    let prefs = if payload.is_empty() {
        s.extensions.get::<MatchPrefs>().unwrap_or_default()
    } else {
        let p = parse_prefs(&payload)?;
        s.extensions.insert(p.clone());
        p
    };
    match state.rooms.room_of(&user.id).await.map_err(unavailable)? {
        Some(room) => {
            end_chat(&io, &state, &room.id, &user.id, "skipped").await?;
        }
        None if state
            .matcher
            .is_queued(&user.id)
            .await
            .map_err(unavailable)? => {}
        None => return Err(not_in_chat()),
    }
    enqueue(&io, &state, &user, prefs).await
}

async fn user_end<A: Adapter>(s: SocketRef<A>, io: SocketIo<A>, state: AppState) -> EventResult {
    let user = begin(&s, &state)?;
    match state.rooms.room_of(&user.id).await.map_err(unavailable)? {
        Some(room) => {
            end_chat(&io, &state, &room.id, &user.id, "ended").await?;
        }
        None => {
            if !state.matcher.leave(&user.id).await.map_err(unavailable)? {
                return Err(not_in_chat());
            }
            let _ = state.presence.set_status(&user.id, Status::Idle).await;
        }
    }
    Ok(json!({ "status": "idle" }))
}

async fn user_block<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    state: AppState,
    data: Result<FirstArg, ParserError>,
) -> EventResult {
    let user = begin(&s, &state)?;
    let payload = object(data)?;
    let other = payload
        .get("userId")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|id| !id.is_empty() && id.len() <= 64)
        .ok_or_else(|| invalid("userId must be a user id"))?
        .to_string();
    if other == user.id {
        return Err(invalid("you cannot block yourself"));
    }
    state
        .store
        .add_block(&user.id, &other)
        .await
        .map_err(unavailable)?;
    if let Some(room) = state.rooms.room_of(&user.id).await.map_err(unavailable)?
        && room.seen_by(&user.id).is_some_and(|(p, _)| p.id == other)
    {
        end_chat(&io, &state, &room.id, &user.id, "ended").await?;
    }
    // A queued ticket is re-issued so the block applies to it too.
    if state
        .matcher
        .is_queued(&user.id)
        .await
        .map_err(unavailable)?
    {
        let prefs = s.extensions.get::<MatchPrefs>().unwrap_or_default();
        enqueue(&io, &state, &user, prefs).await?;
    }
    Ok(json!({ "blocked": other }))
}

/// Delivers a chat event to the partner, keeping it if they are away.
async fn deliver<A: Adapter>(
    io: &SocketIo<A>,
    state: &AppState,
    room: &RoomInfo,
    partner: &str,
    event: &str,
    data: &Value,
) {
    if event == "chat:message"
        && let Ok(true) = state.rooms.keep_if_away(&room.id, partner, data).await
    {
        return;
    }
    calls::emit_to_user(io, partner, event, data).await;
}

async fn chat_message<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    state: AppState,
    data: Result<FirstArg, ParserError>,
) -> EventResult {
    let user = begin(&s, &state)?;
    let payload = object(data)?;
    let kind = payload
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("text");
    let room = current_room(&state, &user.id).await?;
    let (partner, _) = room.seen_by(&user.id).ok_or_else(not_in_chat)?;
    let id = crate::files::new_id();
    let timestamp = Utc::now();
    let mut event = json!({ "id": id, "from": user.id, "type": kind, "timestamp": timestamp });
    match kind {
        "text" => {
            let raw = payload
                .get("content")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("content must be a string"))?;
            let content = text::sanitize(raw).map_err(|e| match e {
                text::TextError::Empty => EventError::new("empty_message", "the message is empty"),
                text::TextError::TooLong => EventError::new(
                    "message_too_long",
                    format!("messages are at most {} characters", text::MAX_CHARS),
                ),
            })?;
            event["content"] = json!(content);
        }
        "file" | "voice" => {
            let file_id = payload
                .get("fileId")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("fileId must be the id of an uploaded file"))?;
            let members = [user.id.as_str(), partner.id.as_str()];
            let meta = state
                .files
                .share(file_id, &user.id, members, &room.id, kind == "voice")
                .await
                .map_err(|e| match e {
                    ShareError::NotFound | ShareError::NotOwner => {
                        EventError::new("file_not_found", "no such file among your uploads")
                    }
                    ShareError::WrongKind => {
                        invalid("a voice message needs a file uploaded with kind=voice")
                    }
                    ShareError::Io(e) => unavailable(e),
                })?;
            state
                .rooms
                .add_file(&room.id, &meta.id)
                .await
                .map_err(unavailable)?;
            event["file"] = meta.public_json();
        }
        _ => return Err(invalid("type must be 'text', 'file' or 'voice'")),
    }
    deliver(&io, &state, &room, &partner.id, "chat:message", &event).await;
    let mut ack = json!({ "id": id, "timestamp": timestamp });
    if let Some(file) = event.get("file") {
        ack["file"] = file.clone();
    }
    if let Some(content) = event.get("content") {
        ack["content"] = content.clone();
    }
    Ok(ack)
}

/// Typing indicators: a generation per user, so a newer update cancels the
/// pending auto-off of an older one. Local to the node the socket is on.
#[derive(Default)]
pub struct Typing(Mutex<HashMap<String, u64>>);

impl Typing {
    fn bump(&self, user_id: &str) -> u64 {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = g.entry(user_id.to_string()).or_default();
        *n += 1;
        *n
    }

    fn is_current(&self, user_id: &str, generation: u64) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(user_id)
            == Some(&generation)
    }

    pub fn forget(&self, user_id: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(user_id);
    }
}

async fn chat_typing<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    state: AppState,
    data: Result<FirstArg, ParserError>,
) -> EventResult {
    let user = begin(&s, &state)?;
    let payload = object(data)?;
    let is_typing = payload
        .get("isTyping")
        .and_then(Value::as_bool)
        .ok_or_else(|| invalid("isTyping must be true or false"))?;
    let room = current_room(&state, &user.id).await?;
    let (partner, _) = room.seen_by(&user.id).ok_or_else(not_in_chat)?;
    let generation = state.typing.bump(&user.id);
    calls::emit_to_user(
        &io,
        &partner.id,
        "chat:typing",
        &json!({ "isTyping": is_typing, "from": user.id }),
    )
    .await;
    if is_typing {
        let (io, state, partner_id, user_id, room_id) = (
            io.clone(),
            state.clone(),
            partner.id.clone(),
            user.id.clone(),
            room.id.clone(),
        );
        tokio::spawn(async move {
            tokio::time::sleep(calls::TYPING_TIMEOUT).await;
            let same_room =
                matches!(state.rooms.room_of(&user_id).await, Ok(Some(r)) if r.id == room_id);
            if state.typing.is_current(&user_id, generation) && same_room {
                calls::emit_to_user(
                    &io,
                    &partner_id,
                    "chat:typing",
                    &json!({ "isTyping": false, "from": user_id }),
                )
                .await;
            }
        });
    }
    Ok(json!({ "isTyping": is_typing }))
}

async fn chat_clear<A: Adapter>(s: SocketRef<A>, io: SocketIo<A>, state: AppState) -> EventResult {
    let user = begin(&s, &state)?;
    let room = current_room(&state, &user.id).await?;
    let (partner, _) = room.seen_by(&user.id).ok_or_else(not_in_chat)?;
    let files = state
        .rooms
        .take_files(&room.id)
        .await
        .map_err(unavailable)?;
    for f in &files {
        state.files.delete(f).await;
    }
    calls::emit_to_user(
        &io,
        &partner.id,
        "chat:cleared",
        &json!({ "roomId": room.id, "by": user.id }),
    )
    .await;
    Ok(json!({ "deletedFiles": files.len() }))
}

/// Forwards a signaling message to the current partner with `from`.
async fn signal<A: Adapter>(
    s: &SocketRef<A>,
    io: &SocketIo<A>,
    state: &AppState,
    event: &str,
    data: Result<FirstArg, impl std::fmt::Display>,
    field: Option<(&str, usize)>,
) -> EventResult {
    let user = begin(s, state)?;
    let payload = object(data)?;
    let room = current_room(state, &user.id).await?;
    let (partner, _) = room.seen_by(&user.id).ok_or_else(not_in_chat)?;
    let mut out = json!({ "from": user.id });
    if let Some((name, max)) = field {
        let value = payload
            .get(name)
            .ok_or_else(|| invalid(format!("{name} is required")))?;
        if !(value.is_object() || value.is_string() || (value.is_null() && name == "candidate")) {
            return Err(invalid(format!("{name} must be an object")));
        }
        if serde_json::to_string(value)
            .map(|s| s.len())
            .unwrap_or(usize::MAX)
            > max
        {
            return Err(EventError::new(
                "payload_too_large",
                format!("{name} is larger than {max} bytes"),
            ));
        }
        out[name] = value.clone();
    }
    if event == "webrtc:offer" {
        let kind = match payload.get("type") {
            None | Some(Value::Null) => "video",
            Some(Value::String(t)) if t == "audio" || t == "video" => t.as_str(),
            Some(_) => return Err(invalid("type must be 'audio' or 'video'")),
        };
        out["type"] = json!(kind);
    }
    calls::emit_to_user(io, &partner.id, event, &out).await;
    Ok(json!({ "delivered": true }))
}
