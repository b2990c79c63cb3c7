//! Client events of the call loop: matching (`user:*`), chat (`chat:*`) and
//! WebRTC signaling (`webrtc:*`). Each event is charged to the user's
//! budget, parsed once into a typed [`Command`] and answered through
//! [`Reply`].

use std::sync::{Arc, Mutex};

use crate::sio::{Event, Io, SocketRef};
use chrono::Utc;
use serde_json::{Value, json};

use super::{EventError, Reply, calls};
use crate::{
    AppState,
    chat::{
        Hold, RoomInfo, text,
        typing::{AutoOff, TypingTimers},
    },
    files::ShareError,
    matching::{Joined, Ticket},
    presence::{SessionUser, Status},
    protocol::{
        ClientEvent, Command, ServerEvent, UserId,
        client::{MatchPrefs, MessageBody, PayloadError},
        server::{self, ChatMessage},
    },
};

pub(crate) type EventResult = Result<Value, EventError>;

/// Every client event. The event is charged to the user's budget
/// (unknown names too), its first argument (`None` when sent with none:
/// `socket.emit('webrtc:hangup')` is `["webrtc:hangup"]` on the wire)
/// parsed into a [`Command`], and the command run.
pub async fn dispatch(s: SocketRef, state: AppState, event: Result<Event, String>, reply: Reply) {
    let io = s.io().clone();
    let command = match begin(&s, &state) {
        Err(e) => Err(e),
        Ok(user) => match event {
            Err(name) => ClientEvent::from_name(&name)
                .ok_or_else(|| unknown_event(&name))
                .and(Err(invalid(
                    "unreadable payload: binary attachments are not supported",
                ))),
            Ok(event) => match ClientEvent::from_name(&event.name) {
                None => Err(unknown_event(&event.name)),
                Some(ev) => command(ev, &event).map(|cmd| (user, cmd)),
            },
        },
    };
    match command {
        // The most frequent event answers with a typed ack.
        Ok((user, Command::Message(body))) => answer_with(
            &state,
            reply,
            chat_message(io, state.clone(), user, body)
                .await
                .map(|ack| move |out: &mut String| ack.write_json(out)),
        ),
        Ok((user, cmd)) => answer(&state, reply, run(s, io, state.clone(), user, cmd).await),
        Err(e) => answer(&state, reply, Err::<Value, _>(e)),
    }
}

fn answer<T: serde::Serialize>(state: &AppState, reply: Reply, result: Result<T, EventError>) {
    answer_with(
        state,
        reply,
        result.map(|data| move |out: &mut String| crate::json::value(out, &data)),
    );
}

/// [`answer`] with the data written by the given function.
fn answer_with<W>(state: &AppState, reply: Reply, result: Result<W, EventError>)
where
    W: FnOnce(&mut String) -> Result<(), serde_json::Error>,
{
    if let Err(e) = &result {
        state.metrics.refused(e.code);
    }
    reply.send_with(result);
}

fn unknown_event(name: &str) -> EventError {
    EventError::new("unknown_event", format!("unknown event '{name}'"))
}

/// The event's first argument as a [`Command`]. A text message is read
/// straight into its type; whatever that way does not take (another
/// shape, a mistake) is read the general way, which names the mistake.
fn command(ev: ClientEvent, event: &Event) -> Result<Command, EventError> {
    if ev == ClientEvent::ChatMessage
        && let Some(cmd) = event.first_json().and_then(Command::text_message)
    {
        return Ok(cmd);
    }
    match event.first_value() {
        Err(e) => Err(invalid(format!("unreadable payload: {e}"))),
        Ok(arg) => Command::parse(ev, arg).map_err(payload_error),
    }
}

/// Runs a command. The transport boxes this future per event, so its size
/// is copied every time: the frequent chat events run inline, the rest
/// (larger, rarer) boxed.
async fn run(
    s: SocketRef,
    io: Io,
    state: AppState,
    user: Arc<SessionUser>,
    cmd: Command,
) -> EventResult {
    match cmd {
        // Answered by `dispatch` itself, with a typed ack.
        Command::Message(body) => chat_message(io, state, user, body)
            .await
            .map(|ack| serde_json::to_value(ack).unwrap_or_default()),
        Command::Typing(is_typing) => chat_typing(io, state, user, is_typing).await,
        Command::Match(prefs) => Box::pin(user_match(s, io, state, user, prefs)).await,
        Command::Cancel => Box::pin(user_cancel(state, user)).await,
        Command::Skip(prefs) => Box::pin(user_skip(s, io, state, user, prefs)).await,
        Command::End => Box::pin(user_end(io, state, user)).await,
        Command::Block(other) => Box::pin(user_block(s, io, state, user, other)).await,
        Command::Unblock(other) => Box::pin(user_unblock(s, io, state, user, other)).await,
        Command::Report {
            user: target,
            reason,
            details,
            message,
        } => Box::pin(user_report(state, user, target, reason, details, message)).await,
        Command::RoomJoin { room, since } => {
            Box::pin(super::lounges::join(s, state, user, room, since)).await
        }
        Command::RoomLeave(room) => Box::pin(super::lounges::leave(s, state, user, room)).await,
        Command::RoomMessage { room, content } => {
            Box::pin(super::lounges::message(s, state, user, room, content)).await
        }
        Command::RoomTyping { room, is_typing } => {
            Box::pin(super::lounges::typing(s, state, user, room, is_typing)).await
        }
        Command::Clear => Box::pin(chat_clear(io, state, user)).await,
        Command::CallStart(room) => Box::pin(super::group_calls::start(s, state, user, room)).await,
        Command::CallJoin { call, offer } => {
            Box::pin(super::group_calls::join(s, io, state, user, call, offer)).await
        }
        Command::CallSignal { call, signal } => {
            Box::pin(super::group_calls::signal(s, io, state, user, call, signal)).await
        }
        Command::CallLeave(call) => {
            Box::pin(super::group_calls::leave(s, io, state, user, call)).await
        }
        Command::CallInvite { call, user: other } => {
            Box::pin(super::group_calls::invite(io, state, user, call, other)).await
        }
        Command::Offer { offer, kind } => {
            Box::pin(signal(&io, &state, &user, |from| {
                ServerEvent::WebrtcOffer {
                    from,
                    offer,
                    kind: kind.as_str(),
                }
            }))
            .await
        }
        Command::Answer(answer) => {
            Box::pin(signal(&io, &state, &user, |from| {
                ServerEvent::WebrtcAnswer { from, answer }
            }))
            .await
        }
        Command::Candidate(candidate) => {
            Box::pin(signal(&io, &state, &user, |from| {
                ServerEvent::WebrtcIceCandidate { from, candidate }
            }))
            .await
        }
        Command::Hangup => {
            Box::pin(signal(&io, &state, &user, |from| {
                ServerEvent::WebrtcHangup { from }
            }))
            .await
        }
    }
}

fn invalid(message: impl Into<String>) -> EventError {
    EventError::new("invalid_payload", message)
}

fn payload_error(e: PayloadError) -> EventError {
    match e {
        PayloadError::Invalid(m) => invalid(m),
        PayloadError::TooLarge(m) => EventError::new("payload_too_large", m),
    }
}

fn not_in_chat() -> EventError {
    EventError::new("not_in_chat", "you are not in a chat")
}

fn refused(r: crate::safety::Refusal) -> EventError {
    EventError::new(r.code(), r.message())
}

/// A message's text as the chat rules clean it, or why it is refused.
pub(crate) fn clean_text(raw: &str) -> Result<String, EventError> {
    text::sanitize(raw).map_err(|e| match e {
        text::TextError::Empty => EventError::new("empty_message", "the message is empty"),
        text::TextError::TooLong => EventError::new(
            "message_too_long",
            format!("messages are at most {} characters", text::MAX_CHARS),
        ),
    })
}

pub(crate) fn unavailable(e: impl std::fmt::Display) -> EventError {
    tracing::warn!(error = %e, "backing service unavailable");
    EventError::new(
        "service_unavailable",
        "the server cannot do this right now, try again",
    )
}

/// The socket's user, after charging one event to their budget.
fn begin(s: &SocketRef, state: &AppState) -> Result<Arc<SessionUser>, EventError> {
    let user = s
        .extensions
        .get::<Arc<SessionUser>>()
        .ok_or_else(|| EventError::new("unauthorized", "not authenticated"))?;
    state.call.events.take(&user.id).map_err(|wait| {
        EventError::new(
            "rate_limited",
            format!("too many events; retry in {} ms", wait.as_millis().max(1)),
        )
    })?;
    Ok(user)
}

/// The user's chat, if any (`service_unavailable` if chat state cannot say).
async fn room_of(state: &AppState, user_id: &str) -> Result<Option<Arc<RoomInfo>>, EventError> {
    state.call.rooms.room_of(user_id).await.map_err(unavailable)
}

/// The user's chat, or `not_in_chat`.
async fn current_room(state: &AppState, user_id: &str) -> Result<Arc<RoomInfo>, EventError> {
    room_of(state, user_id).await?.ok_or_else(not_in_chat)
}

/// Closes `room_id` (if still open) as `by` did; the partner gets `partner:left {reason}`.
async fn end_chat(
    io: &Io,
    state: &AppState,
    room_id: &str,
    by: &str,
    reason: &'static str,
) -> Result<(), EventError> {
    // The close and its events are ordered against the room's deliveries.
    let _order = state.call.room_order.closing(room_id).await;
    if let Some(closed) = state.call.rooms.close(room_id).await.map_err(unavailable)? {
        calls::finish_chat(io, state, closed, Some(by), reason).await;
    }
    Ok(())
}

/// Queues the user with `prefs`; the ack data says where they stand.
async fn enqueue(io: &Io, state: &AppState, user: &SessionUser, prefs: MatchPrefs) -> EventResult {
    // Blocks (from the store) and the last partner: never matched again.
    let mut avoid = state
        .call
        .rooms
        .avoid_set(&user.id)
        .await
        .map_err(unavailable)?;
    // One read of the store for the blocks and the reputation.
    let record = state
        .accounts
        .store
        .matching_record(&user.id)
        .await
        .map_err(unavailable)?;
    avoid.extend(record.blocks);
    // Reputation: who they may meet, and whom they rank close to (no ban
    // lookup: a banned user has no socket).
    let (score, open_reports) = (
        crate::safety::reputation::current(record.standing.as_ref(), Utc::now()),
        record.open_reports,
    );
    let restricted = crate::safety::reputation::restricted(score, open_reports);
    if restricted && state.config.restricted_matching == crate::safety::RestrictedMatching::None {
        return Err(EventError::new(
            "restricted",
            "your account is restricted from matching for now",
        ));
    }
    let ticket = Ticket {
        user_id: user.id.clone(),
        username: user.username.clone(),
        interests: prefs.interests,
        language: prefs.language,
        mode: prefs.mode,
        avoid,
        standing: crate::matching::TicketStanding {
            score: score.clamp(0, 100) as u8,
            restricted,
        },
    };
    match calls::requeue(io, state, ticket)
        .await
        .map_err(unavailable)?
    {
        Joined::Waiting => Ok(json!({ "status": "waiting" })),
        Joined::Matched(_) => {
            let room = room_of(state, &user.id).await?;
            Ok(json!({ "status": "matched", "roomId": room.map(|r| r.id.clone()) }))
        }
    }
}

async fn user_match(
    s: SocketRef,
    io: Io,
    state: AppState,
    user: Arc<SessionUser>,
    prefs: MatchPrefs,
) -> EventResult {
    if room_of(&state, &user.id).await?.is_some() {
        return Err(EventError::new(
            "already_in_chat",
            "end or skip the current chat first",
        ));
    }
    daily_budget(&s, &state, &user).await?;
    s.extensions.insert(prefs.clone());
    enqueue(&io, &state, &user, prefs).await
}

/// `DAILY_MATCH_LIMIT`: each `user:match` or `user:skip` counts against the
/// account's and the device's budget for 24 hours (counted where the HTTP
/// limits are, so a cluster shares one budget); past it, `daily_limit`
/// with `resetAt`.
async fn daily_budget(
    s: &SocketRef,
    state: &AppState,
    user: &SessionUser,
) -> Result<(), EventError> {
    let limit = state.config.daily_match_limit;
    if limit == 0 {
        return Ok(());
    }
    const DAY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
    let mut keys = vec![format!("daily-match:user:{}", user.id)];
    if let Some(d) = s.extensions.get::<super::DeviceId>() {
        keys.push(format!("daily-match:device:{}", d.0));
    }
    for key in keys {
        let d = state.limiter.hit(&key, limit, DAY).await;
        if !d.allowed {
            let reset = chrono::Duration::from_std(d.reset_in).unwrap_or_default();
            return Err(EventError {
                code: "daily_limit",
                message: format!("at most {limit} matches a day"),
                reset_at: Some(Utc::now() + reset),
            });
        }
    }
    Ok(())
}

async fn user_cancel(state: AppState, user: Arc<SessionUser>) -> EventResult {
    let was_queued = state
        .call
        .matcher
        .leave(&user.id)
        .await
        .map_err(unavailable)?;
    if was_queued {
        let _ = state.call.presence.set_status(&user.id, Status::Idle).await;
    }
    Ok(json!({ "status": "idle", "wasQueued": was_queued }))
}

async fn user_skip(
    s: SocketRef,
    io: Io,
    state: AppState,
    user: Arc<SessionUser>,
    prefs: Option<MatchPrefs>,
) -> EventResult {
    let prefs = match prefs {
        None => s.extensions.get::<MatchPrefs>().unwrap_or_default(),
        Some(p) => {
            s.extensions.insert(p.clone());
            p
        }
    };
    match room_of(&state, &user.id).await? {
        Some(room) => {
            // Past the daily limit the skip is refused whole: the chat stays.
            daily_budget(&s, &state, &user).await?;
            end_chat(&io, &state, &room.id, &user.id, "skipped").await?;
            let lasted = (Utc::now() - room.created_at).to_std().unwrap_or_default();
            if lasted < crate::safety::reputation::QUICK_SKIP {
                state
                    .safety
                    .incident(
                        state.accounts.store.as_ref(),
                        &user.id,
                        crate::safety::reputation::Incident::QuickSkip,
                    )
                    .await;
            }
        }
        None if state
            .call
            .matcher
            .is_queued(&user.id)
            .await
            .map_err(unavailable)? =>
        {
            daily_budget(&s, &state, &user).await?;
        }
        None => return Err(not_in_chat()),
    }
    enqueue(&io, &state, &user, prefs).await
}

async fn user_end(io: Io, state: AppState, user: Arc<SessionUser>) -> EventResult {
    match room_of(&state, &user.id).await? {
        Some(room) => {
            end_chat(&io, &state, &room.id, &user.id, "ended").await?;
        }
        None => {
            if !state
                .call
                .matcher
                .leave(&user.id)
                .await
                .map_err(unavailable)?
            {
                return Err(not_in_chat());
            }
            let _ = state.call.presence.set_status(&user.id, Status::Idle).await;
        }
    }
    Ok(json!({ "status": "idle" }))
}

async fn user_block(
    s: SocketRef,
    io: Io,
    state: AppState,
    user: Arc<SessionUser>,
    other: UserId,
) -> EventResult {
    let other = other.0;
    if other == user.id {
        return Err(invalid("you cannot block yourself"));
    }
    state
        .accounts
        .store
        .add_block(&user.id, &other)
        .await
        .map_err(unavailable)?;
    if let Some(room) = room_of(&state, &user.id).await?
        && room.seen_by(&user.id).is_some_and(|(p, _)| p.id == other)
    {
        end_chat(&io, &state, &room.id, &user.id, "ended").await?;
    }
    // A queued ticket is re-issued so the block applies to it too.
    if state
        .call
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

async fn user_unblock(
    s: SocketRef,
    io: Io,
    state: AppState,
    user: Arc<SessionUser>,
    other: UserId,
) -> EventResult {
    let other = other.0;
    let removed = state
        .accounts
        .store
        .remove_block(&user.id, &other)
        .await
        .map_err(unavailable)?;
    if removed
        && state
            .call
            .matcher
            .is_queued(&user.id)
            .await
            .map_err(unavailable)?
    {
        let prefs = s.extensions.get::<MatchPrefs>().unwrap_or_default();
        enqueue(&io, &state, &user, prefs).await?;
    }
    Ok(json!({ "unblocked": other, "wasBlocked": removed }))
}

async fn user_report(
    state: AppState,
    user: Arc<SessionUser>,
    target: UserId,
    reason: &'static str,
    details: Option<String>,
    message: Option<String>,
) -> EventResult {
    use crate::safety::{NewReport, ReportError};
    let lounge = match &message {
        Some(m) => Some(super::lounges::message_evidence(&state, &user.id, &target.0, m).await?),
        None => None,
    };
    let details = details
        .map(|d| state.safety.screen_text(&d))
        .transpose()
        .map_err(refused)?;
    let room = room_of(&state, &user.id).await?;
    let current = room.as_ref().and_then(|r| {
        r.seen_by(&user.id)
            .map(|(p, _)| (p.id.clone(), r.id.clone()))
    });
    let report = state
        .safety
        .report(
            state.accounts.store.as_ref(),
            NewReport {
                reporter: &user.id,
                target: &target.0,
                reason,
                details,
                current: current.as_ref().map(|(p, r)| (p.as_str(), r.as_str())),
                lounge,
            },
        )
        .await
        .map_err(|e| match e {
            ReportError::NotReportable => EventError::new("not_reportable", e.to_string()),
            ReportError::AlreadyReported => EventError::new("already_reported", e.to_string()),
            ReportError::Unavailable(e) => unavailable(e),
        })?;
    Ok(json!({ "reportId": report.id }))
}

/// Delivers a chat message to the partner, keeping it if they are away.
/// Refused with `not_in_chat` if the chat closed since the sender's
/// message was checked: a close and a delivery never interleave.
async fn deliver(
    io: &Io,
    state: &AppState,
    room: &RoomInfo,
    sender: &str,
    partner: &str,
    event: &ServerEvent,
) -> Result<(), EventError> {
    let _order = state.call.room_order.delivering(&room.id).await;
    // Made only for a partner who is away: a `ServerEvent` always
    // serializes (string keys, no failing `Serialize`).
    let kept = || serde_json::to_value(event).unwrap_or_default();
    match state
        .call
        .rooms
        .hold_if_away(&room.id, partner, &kept)
        .await
        .map_err(unavailable)?
    {
        Hold::Kept => {}
        Hold::Gone => return Err(not_in_chat()),
        Hold::Deliver => {
            calls::emit_to_user(io, partner, event).await;
            // The two on one connection shard, from their first message on.
            io.colocate(&super::user_room(sender), &super::user_room(partner));
        }
    }
    Ok(())
}

/// A sent chat message's ack: `{id, timestamp, file?, content?}`.
#[derive(serde::Serialize)]
struct MessageAck {
    id: String,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
}

impl MessageAck {
    /// Its JSON, byte for byte what its `Serialize` writes (tested).
    fn write_json(&self, out: &mut String) -> Result<(), serde_json::Error> {
        use crate::json::string;
        out.push_str("{\"id\":");
        string(out, &self.id);
        out.push_str(",\"timestamp\":");
        string(out, &self.timestamp);
        if let Some(file) = &self.file {
            out.push_str(",\"file\":");
            crate::json::value(out, file)?;
        }
        if let Some(content) = &self.content {
            out.push_str(",\"content\":");
            string(out, content);
        }
        out.push('}');
        Ok(())
    }
}

async fn chat_message(
    io: Io,
    state: AppState,
    user: Arc<SessionUser>,
    body: MessageBody,
) -> Result<MessageAck, EventError> {
    let room = current_room(&state, &user.id).await?;
    let (partner, _) = room.seen_by(&user.id).ok_or_else(not_in_chat)?;
    let id = crate::files::new_id();
    let timestamp = Utc::now();
    let mut message = ChatMessage {
        id,
        from: UserId(user.id.clone()),
        kind: "text",
        timestamp,
        content: None,
        file: None,
    };
    let voice = matches!(body, MessageBody::Voice(_));
    match body {
        MessageBody::Text(raw) => {
            let content = clean_text(&raw)?;
            let content = state
                .safety
                .screen_message(state.accounts.store.as_ref(), &user.id, &content)
                .await
                .map_err(refused)?;
            message.content = Some(content);
        }
        MessageBody::File(file_id) | MessageBody::Voice(file_id) => {
            message.kind = if voice { "voice" } else { "file" };
            let members = [user.id.as_str(), partner.id.as_str()];
            let meta = state
                .files
                .share(file_id.as_str(), &user.id, members, &room.id, voice)
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
                .call
                .rooms
                .add_file(&room.id, &meta.id)
                .await
                .map_err(unavailable)?;
            message.file = Some(meta.public_json());
        }
    }
    let ack = MessageAck {
        id: message.id.clone(),
        timestamp: server::stamp(&message.timestamp),
        file: message.file.clone(),
        content: message.content.clone(),
    };
    let kind = message.kind;
    let evidence = message.content.clone().map(|text| crate::store::Evidence {
        from: user.id.clone(),
        text,
        at: timestamp,
    });
    deliver(
        &io,
        &state,
        &room,
        &user.id,
        &partner.id,
        &ServerEvent::ChatMessage(message),
    )
    .await?;
    state.metrics.messages.of(kind).inc();
    // Kept only as possible evidence for a report (the last 20 of a chat).
    if let Some(e) = evidence
        && let Err(e) = state.safety.recent.note(&room.id, e).await
    {
        tracing::debug!(error = %e, "message not kept as evidence");
    }
    Ok(ack)
}

/// Typing indicators' auto-off timers (rules in [`crate::chat::typing`])
/// and news of a new deadline for their driver. Local to the node the
/// socket is on: an indicator is a hint, not chat state.
#[derive(Default)]
pub struct Typing {
    timers: Mutex<TypingTimers>,
    changed: tokio::sync::Notify,
}

impl Typing {
    fn timers(&self) -> std::sync::MutexGuard<'_, TypingTimers> {
        self.timers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, off: AutoOff, is_typing: bool) {
        let mut t = self.timers();
        let before = t.next_deadline();
        t.update(off, is_typing, now());
        if t.next_deadline() != before {
            self.changed.notify_one();
        }
    }

    pub fn forget(&self, user_id: &str) {
        self.timers().forget(user_id);
    }
}

/// The clock the typing rules run on (tokio's, so tests can pause it).
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Sends the auto-offs as they come due, for as long as it runs.
pub async fn drive_typing(io: Io, state: AppState) {
    loop {
        let changed = state.call.typing.changed.notified();
        tokio::pin!(changed);
        let wake = state
            .call
            .typing
            .timers()
            .next_deadline()
            .map(tokio::time::Instant::from_std);
        if !crate::matching::sleep_or_notified(wake, changed).await {
            continue;
        }
        let due = state.call.typing.timers().poll(now());
        for off in due {
            let same_room = matches!(state.call.rooms.room_of(&off.user).await, Ok(Some(r)) if r.id == off.room);
            if same_room {
                calls::emit_to_user(
                    &io,
                    &off.partner,
                    &ServerEvent::ChatTyping {
                        is_typing: false,
                        from: UserId(off.user),
                    },
                )
                .await;
            }
        }
    }
}

async fn chat_typing(
    io: Io,
    state: AppState,
    user: Arc<SessionUser>,
    is_typing: bool,
) -> EventResult {
    let room = current_room(&state, &user.id).await?;
    let (partner, _) = room.seen_by(&user.id).ok_or_else(not_in_chat)?;
    state.call.typing.update(
        AutoOff {
            user: user.id.clone(),
            partner: partner.id.clone(),
            room: room.id.clone(),
        },
        is_typing,
    );
    calls::emit_to_user(
        &io,
        &partner.id,
        &ServerEvent::ChatTyping {
            is_typing,
            from: UserId(user.id.clone()),
        },
    )
    .await;
    Ok(json!({ "isTyping": is_typing }))
}

async fn chat_clear(io: Io, state: AppState, user: Arc<SessionUser>) -> EventResult {
    let room = current_room(&state, &user.id).await?;
    let (partner, _) = room.seen_by(&user.id).ok_or_else(not_in_chat)?;
    let files = state
        .call
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
        &ServerEvent::ChatCleared {
            room_id: room.id.clone().into(),
            by: UserId(user.id.clone()),
        },
    )
    .await;
    Ok(json!({ "deletedFiles": files.len() }))
}

/// Forwards a signaling message, built by `event` from the sender's id, to
/// the current partner.
async fn signal(
    io: &Io,
    state: &AppState,
    user: &SessionUser,
    event: impl FnOnce(UserId) -> ServerEvent,
) -> EventResult {
    let room = current_room(state, &user.id).await?;
    let (partner, _) = room.seen_by(&user.id).ok_or_else(not_in_chat)?;
    calls::emit_to_user(io, &partner.id, &event(UserId(user.id.clone()))).await;
    Ok(json!({ "delivered": true }))
}

#[cfg(test)]
mod tests {
    use super::MessageAck;
    use proptest::prelude::*;

    proptest! {
        /// The hand-written ack is its `Serialize`, byte for byte.
        #[test]
        fn a_message_ack_is_written_as_serde_writes_it(
            id in ".{0,40}",
            timestamp in ".{0,30}",
            content in proptest::option::of(any::<String>()),
            file in proptest::option::of(".{0,20}"),
        ) {
            let ack = MessageAck {
                id,
                timestamp,
                file: file.map(|name| serde_json::json!({"id": "f", "name": name, "size": 3})),
                content,
            };
            let mut out = String::new();
            ack.write_json(&mut out).unwrap();
            prop_assert_eq!(out, serde_json::to_string(&ack).unwrap());
        }
    }
}
