//! Group calls over Socket.IO: `call:start`, `call:join`, `call:signal`,
//! `call:leave`, `call:invite`, and the media server's notices back to the
//! participants. The rules are [`crate::calls`]'; the media, [`crate::sfu`]'s.

use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use socketioxide::{SocketIo, adapter::Adapter, extract::SocketRef, socket::Sid};
use tokio::sync::mpsc;

use super::{EventError, calls::emit_to_user, events::EventResult};
use crate::{
    AppState,
    calls::{CallError, Calls, Participant, Scope},
    presence::SessionUser,
    protocol::{ServerEvent, UserId, client::CallSignal, server::Member},
    sfu::{Notice, PeerId, SfuError, driver::SfuHandle},
};

/// Group calls on this node: their rules and the media server.
pub struct GroupCalls {
    calls: Mutex<Calls>,
    pub sfu: SfuHandle,
    notices: Mutex<Option<mpsc::UnboundedReceiver<Notice>>>,
}

impl GroupCalls {
    pub fn new(
        max_participants: usize,
        sfu: SfuHandle,
        notices: mpsc::UnboundedReceiver<Notice>,
    ) -> Self {
        GroupCalls {
            calls: Mutex::new(Calls::new(max_participants)),
            sfu,
            notices: Mutex::new(Some(notices)),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Calls> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn call_error(e: CallError) -> EventError {
    EventError::new(e.code(), e.to_string())
}

fn sfu_error(e: SfuError) -> EventError {
    match e {
        SfuError::UnknownPeer => EventError::new("not_in_call", e.to_string()),
        SfuError::AlreadyJoined => EventError::new("already_in_call", e.to_string()),
        SfuError::NoPendingOffer => EventError::new("invalid_state", e.to_string()),
        SfuError::BadSdp(_) | SfuError::BadCandidate(_) => {
            EventError::new("invalid_payload", e.to_string())
        }
    }
}

/// A call started and not joined (or left empty) ends after this.
const EMPTY_CALL_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// The Socket.IO room of a call's participants.
fn call_room(call: &str) -> String {
    format!("call:{call}")
}

fn participants_event(call: &crate::calls::Call) -> ServerEvent {
    ServerEvent::CallParticipants {
        call_id: call.id.clone(),
        room_id: call.scope.room().to_string(),
        participants: call.participants.clone(),
    }
}

async fn tell_participants<A: Adapter>(io: &SocketIo<A>, event: Option<ServerEvent>) {
    let Some(ServerEvent::CallParticipants { call_id, .. }) = &event else {
        return;
    };
    let event = event.as_ref().expect("checked above");
    if let Err(e) = io.to(call_room(call_id)).emit(event.name(), event).await {
        tracing::debug!(error = %e, "call:participants failed");
    }
}

/// `call:start {roomId}`: the call of a lounge room this socket joined, or
/// of the user's current chat.
pub async fn start<A: Adapter>(
    s: SocketRef<A>,
    state: AppState,
    user: Arc<SessionUser>,
    room: String,
) -> EventResult {
    let scope = if state.lounges.room(&room).is_some() {
        super::lounges::joined_room(&s, &state, &room)?;
        Scope::Lounge(room.clone())
    } else {
        match state.call.rooms.room_of(&user.id).await {
            Ok(Some(chat)) if chat.id == room => Scope::Chat {
                room: room.clone(),
                members: [chat.caller.id.clone(), chat.callee.id.clone()],
            },
            Ok(_) => {
                return Err(EventError::new(
                    "room_not_found",
                    format!("no lounge room or current chat {room}"),
                ));
            }
            Err(e) => return Err(super::events::unavailable(e)),
        }
    };
    let id = state
        .group_calls
        .lock()
        .start(scope, std::time::Instant::now(), crate::files::new_id);
    Ok(json!({ "callId": id, "roomId": room }))
}

/// `call:join {callId, sdp?}`.
pub async fn join<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    state: AppState,
    user: Arc<SessionUser>,
    call_id: String,
    offer: Option<String>,
) -> EventResult {
    let gc = &state.group_calls;
    let peer = {
        let mut calls = gc.lock();
        let call = calls
            .get(&call_id)
            .ok_or_else(|| call_error(CallError::NotFound))?;
        let member = match &call.scope {
            Scope::Lounge(room) => super::lounges::joined_here(&s, room),
            Scope::Chat { .. } => false,
        };
        calls
            .admit(
                &call_id,
                &user.id,
                &user.username,
                &s.id.to_string(),
                member,
            )
            .map_err(call_error)?
    };
    let sdp = match gc.sfu.join(peer, &call_id, &user.id, offer).await {
        Ok(sdp) => sdp,
        Err(e) => {
            gc.lock().remove(peer, std::time::Instant::now());
            return Err(sfu_error(e));
        }
    };
    s.join(call_room(&call_id));
    state.metrics.call_participants.inc();
    let event = gc.lock().get(&call_id).map(participants_event);
    let participants = match &event {
        Some(ServerEvent::CallParticipants { participants, .. }) => participants.clone(),
        _ => Vec::new(),
    };
    tell_participants(&io, event).await;
    Ok(json!({ "callId": call_id, "sdp": sdp, "participants": participants }))
}

/// The participant this socket is in `call_id`.
fn own_peer<A: Adapter>(
    s: &SocketRef<A>,
    state: &AppState,
    user: &SessionUser,
    call_id: &str,
) -> Result<PeerId, EventError> {
    let calls = state.group_calls.lock();
    let p = calls.peer_of(call_id, &user.id).map_err(call_error)?;
    if p.socket != s.id.to_string() {
        return Err(call_error(CallError::NotIn));
    }
    Ok(p.peer)
}

/// `call:signal {callId, sdp | candidate}`.
pub async fn signal<A: Adapter>(
    s: SocketRef<A>,
    state: AppState,
    user: Arc<SessionUser>,
    call_id: String,
    signal: CallSignal,
) -> EventResult {
    let peer = own_peer(&s, &state, &user, &call_id)?;
    let sfu = &state.group_calls.sfu;
    match signal {
        CallSignal::Sdp(sdp) => match sfu.signal(peer, sdp).await.map_err(sfu_error)? {
            Some(answer) => Ok(json!({ "callId": call_id, "sdp": answer })),
            None => Ok(json!({ "callId": call_id })),
        },
        CallSignal::Candidate(c) => {
            sfu.candidate(peer, c).await.map_err(sfu_error)?;
            Ok(json!({ "callId": call_id }))
        }
    }
}

/// Takes a participant out: its media, its room, and tells the others.
async fn remove<A: Adapter>(
    io: &SocketIo<A>,
    state: &AppState,
    peer: PeerId,
) -> Option<(String, Participant)> {
    let gc = &state.group_calls;
    let (call, gone) = gc.lock().remove(peer, std::time::Instant::now())?;
    gc.sfu.leave(peer).await;
    state.metrics.call_participants.dec();
    if let Ok(sid) = Sid::from_str(&gone.socket)
        && let Some(s) = io.get_socket(sid)
    {
        s.leave(call_room(&call.id));
    }
    tell_participants(io, Some(participants_event(&call))).await;
    Some((call.id, gone))
}

/// `call:leave {callId}`.
pub async fn leave<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    state: AppState,
    user: Arc<SessionUser>,
    call_id: String,
) -> EventResult {
    let peer = own_peer(&s, &state, &user, &call_id)?;
    remove(&io, &state, peer).await;
    Ok(json!({ "callId": call_id, "left": true }))
}

/// `call:invite {callId, userId}`: someone joins a chat's call.
pub async fn invite<A: Adapter>(
    io: SocketIo<A>,
    state: AppState,
    user: Arc<SessionUser>,
    call_id: String,
    other: UserId,
) -> EventResult {
    let room = {
        let mut calls = state.group_calls.lock();
        let call = calls
            .get(&call_id)
            .ok_or_else(|| call_error(CallError::NotFound))?;
        if matches!(call.scope, Scope::Lounge(_)) {
            return Err(EventError::new(
                "invalid_payload",
                "a lounge's call is open to the room's members: no invitation needed",
            ));
        }
        let room = call.scope.room().to_string();
        calls
            .invite(&call_id, &user.id, &other.0)
            .map_err(call_error)?;
        room
    };
    let event = ServerEvent::CallInvited {
        call_id: call_id.clone(),
        room_id: room,
        from: Member {
            id: UserId(user.id.clone()),
            username: user.username.clone(),
        },
    };
    emit_to_user(&io, &other.0, &event).await;
    Ok(json!({ "callId": call_id, "invited": true }))
}

/// A socket went: it leaves its calls.
pub async fn disconnected<A: Adapter>(s: &SocketRef<A>, io: &SocketIo<A>, state: &AppState) {
    let peers = state.group_calls.lock().peers_of_socket(&s.id.to_string());
    for peer in peers {
        remove(io, state, peer).await;
    }
}

/// Carries the media server's notices to the participants.
pub async fn run_notices<A: Adapter>(io: SocketIo<A>, state: AppState) {
    let Some(mut rx) = state
        .group_calls
        .notices
        .lock()
        .ok()
        .and_then(|mut n| n.take())
    else {
        return;
    };
    let mut sweep = tokio::time::interval(EMPTY_CALL_TTL / 6);
    loop {
        let n = tokio::select! {
            n = rx.recv() => match n {
                Some(n) => n,
                None => return,
            },
            _ = sweep.tick() => {
                let now = std::time::Instant::now();
                state.group_calls.lock().sweep_empty(now, EMPTY_CALL_TTL);
                continue;
            }
        };
        match n {
            Notice::Offer { peer, sdp } => {
                let target = state
                    .group_calls
                    .lock()
                    .of_peer(peer)
                    .map(|(c, p)| (c.id.clone(), p.socket.clone()));
                if let Some((call_id, socket)) = target {
                    let ev = ServerEvent::CallSignal { call_id, sdp };
                    emit_to_socket(&io, &socket, &ev);
                }
            }
            Notice::Tracks { peer, tracks } => {
                let event = state
                    .group_calls
                    .lock()
                    .set_tracks(peer, tracks)
                    .map(participants_event);
                tell_participants(&io, event).await;
            }
            Notice::Gone { peer, reason } => {
                if let Some((call_id, gone)) = remove(&io, &state, peer).await {
                    tracing::info!(user = %gone.user_id, reason = reason.as_str(), "removed from a call");
                    let ev = ServerEvent::CallLeft {
                        call_id,
                        reason: reason.as_str(),
                    };
                    emit_to_socket(&io, &gone.socket, &ev);
                }
            }
        }
    }
}

fn emit_to_socket<A: Adapter>(io: &SocketIo<A>, socket: &str, event: &ServerEvent) {
    if let Ok(sid) = Sid::from_str(socket)
        && let Some(s) = io.get_socket(sid)
    {
        let _ = s.emit(event.name(), event);
    }
}

/// For tests and the console: calls and participants on this node.
pub fn counts(state: &AppState) -> Value {
    let calls = state.group_calls.lock();
    json!({ "calls": calls.len(), "participants": calls.participants() })
}
