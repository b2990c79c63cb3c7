//! Group calls over Socket.IO: `call:start`, `call:join`, `call:signal`,
//! `call:leave`, `call:invite`, and the media server's notices back to the
//! participants. The rules are [`crate::calls`]'; the media, [`crate::sfu`]'s.
//!
//! A call lives on one node. Every operation on it is a [`CallOp`] run by
//! [`execute`] on that node: straight away when the call is here (always,
//! on a single node), or sent to the host over Redis
//! ([`crate::cluster::calls`]) from whichever node the socket is on. Events
//! reach participants through the Socket.IO adapter (the call's room, the
//! user's room), so they cross nodes too.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::sio::{Io, SocketRef};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{EventError, calls::emit_to_user, events::EventResult, user_room};
use crate::{
    AppState,
    calls::{CallError, Calls, Scope},
    cluster::calls::CallRouter,
    presence::SessionUser,
    protocol::{ServerEvent, UserId, client::CallSignal, server::Member},
    sfu::{Notice, PeerId, SfuError, driver::SfuHandle},
};

/// A call started and not joined (or left empty) ends after this.
const EMPTY_CALL_TTL: Duration = Duration::from_secs(60);

/// Group calls on this node: their rules and the media server.
pub struct GroupCalls {
    calls: Mutex<Calls>,
    pub sfu: SfuHandle,
    notices: Mutex<Option<mpsc::UnboundedReceiver<Notice>>>,
    /// In a cluster: where calls live, and the way to their node.
    pub router: Option<Arc<CallRouter>>,
}

impl GroupCalls {
    pub fn new(
        max_participants: usize,
        sfu: SfuHandle,
        notices: mpsc::UnboundedReceiver<Notice>,
        router: Option<Arc<CallRouter>>,
    ) -> Self {
        GroupCalls {
            calls: Mutex::new(Calls::new(max_participants)),
            sfu,
            notices: Mutex::new(Some(notices)),
            router,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Calls> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An operation on a call, run on the node hosting it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum CallOp {
    Join {
        call: String,
        user_id: String,
        username: String,
        socket: String,
        /// The lounge rooms the socket joined.
        rooms: Vec<String>,
        offer: Option<String>,
    },
    Signal {
        call: String,
        user_id: String,
        socket: String,
        signal: CallSignal,
    },
    Leave {
        call: String,
        user_id: String,
        socket: String,
    },
    Invite {
        call: String,
        by_id: String,
        by_name: String,
        user: String,
    },
}

impl CallOp {
    fn call(&self) -> &str {
        match self {
            CallOp::Join { call, .. }
            | CallOp::Signal { call, .. }
            | CallOp::Leave { call, .. }
            | CallOp::Invite { call, .. } => call,
        }
    }
}

/// The calls a socket is in (to leave them when it goes).
#[derive(Default)]
struct SocketCalls(Mutex<HashSet<String>>);

impl SocketCalls {
    fn set(&self) -> MutexGuard<'_, HashSet<String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn socket_calls(s: &SocketRef) -> Arc<SocketCalls> {
    match s.extensions.get::<Arc<SocketCalls>>() {
        Some(c) => c,
        None => {
            let c = Arc::new(SocketCalls::default());
            s.extensions.insert(c.clone());
            c
        }
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

/// Every code an operation may fail with, for errors that crossed nodes.
const CODES: &[&str] = &[
    "call_not_found",
    "call_full",
    "not_allowed",
    "already_in_call",
    "not_in_call",
    "invalid_state",
    "invalid_payload",
];

fn from_wire((code, message): (String, String)) -> EventError {
    let code = CODES
        .iter()
        .find(|c| **c == code)
        .copied()
        .unwrap_or("service_unavailable");
    EventError::new(code, message)
}

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

async fn tell_participants(io: &Io, call_id: &str, event: &ServerEvent) {
    if let Err(e) = io.to(call_room(call_id)).emit(event.name(), event).await {
        tracing::debug!(error = %e, "call:participants failed");
    }
}

/// Runs `op` where its call lives and returns the ack data.
async fn route(io: &Io, state: &AppState, op: CallOp) -> EventResult {
    let gc = &state.group_calls;
    let here = gc.lock().get(op.call()).is_some();
    let Some(router) = gc.router.as_ref().filter(|_| !here) else {
        return execute(io, state, op).await;
    };
    match router.host_of(op.call()).await.map_err(from_wire)? {
        Some(node) if node != router.node() => {
            let op = serde_json::to_value(&op).map_err(super::events::unavailable)?;
            router.request(&node, op).await.map_err(from_wire)
        }
        _ => Err(call_error(CallError::NotFound)),
    }
}

/// Runs an operation on a call hosted here.
pub async fn execute(io: &Io, state: &AppState, op: CallOp) -> EventResult {
    let gc = &state.group_calls;
    match op {
        CallOp::Join {
            call,
            user_id,
            username,
            socket,
            rooms,
            offer,
        } => {
            let peer = {
                let mut calls = gc.lock();
                let c = calls
                    .get(&call)
                    .ok_or_else(|| call_error(CallError::NotFound))?;
                let member = match &c.scope {
                    Scope::Lounge(room) => rooms.contains(room),
                    Scope::Chat { .. } => false,
                };
                calls
                    .admit(&call, &user_id, &username, &socket, member)
                    .map_err(call_error)?
            };
            let sdp = match gc.sfu.join(peer, &call, &user_id, offer).await {
                Ok(sdp) => sdp,
                Err(e) => {
                    gc.lock().remove(peer, Instant::now());
                    return Err(sfu_error(e));
                }
            };
            state.metrics.call_participants.inc();
            let (event, participants) = match gc.lock().get(&call) {
                Some(c) => (Some(participants_event(c)), c.participants.clone()),
                None => (None, Vec::new()),
            };
            if let Some(event) = &event {
                tell_participants(io, &call, event).await;
            }
            Ok(json!({ "callId": call, "sdp": sdp, "participants": participants }))
        }
        CallOp::Signal {
            call,
            user_id,
            socket,
            signal,
        } => {
            let peer = own_peer(state, &call, &user_id, &socket)?;
            match signal {
                CallSignal::Sdp(sdp) => match gc.sfu.signal(peer, sdp).await.map_err(sfu_error)? {
                    Some(answer) => Ok(json!({ "callId": call, "sdp": answer })),
                    None => Ok(json!({ "callId": call })),
                },
                CallSignal::Candidate(c) => {
                    gc.sfu.candidate(peer, c).await.map_err(sfu_error)?;
                    Ok(json!({ "callId": call }))
                }
            }
        }
        CallOp::Leave {
            call,
            user_id,
            socket,
        } => {
            let peer = own_peer(state, &call, &user_id, &socket)?;
            remove(io, state, peer).await;
            Ok(json!({ "callId": call, "left": true }))
        }
        CallOp::Invite {
            call,
            by_id,
            by_name,
            user,
        } => {
            let room = {
                let mut calls = gc.lock();
                let c = calls
                    .get(&call)
                    .ok_or_else(|| call_error(CallError::NotFound))?;
                if matches!(c.scope, Scope::Lounge(_)) {
                    return Err(EventError::new(
                        "invalid_payload",
                        "a lounge's call is open to the room's members: no invitation needed",
                    ));
                }
                let room = c.scope.room().to_string();
                calls.invite(&call, &by_id, &user).map_err(call_error)?;
                room
            };
            let event = ServerEvent::CallInvited {
                call_id: call.clone(),
                room_id: room,
                from: Member {
                    id: UserId(by_id),
                    username: by_name,
                },
            };
            emit_to_user(io, &user, &event).await;
            Ok(json!({ "callId": call, "invited": true }))
        }
    }
}

/// The media session of `user_id`'s socket `socket` in `call`.
fn own_peer(
    state: &AppState,
    call: &str,
    user_id: &str,
    socket: &str,
) -> Result<PeerId, EventError> {
    let calls = state.group_calls.lock();
    let p = calls.peer_of(call, user_id).map_err(call_error)?;
    if p.socket != socket {
        return Err(call_error(CallError::NotIn));
    }
    Ok(p.peer)
}

/// Takes a participant out: its media, its room, and tells the others.
/// Returns its call id and user id.
async fn remove(io: &Io, state: &AppState, peer: PeerId) -> Option<(String, String)> {
    let gc = &state.group_calls;
    let (call, gone) = gc.lock().remove(peer, Instant::now())?;
    gc.sfu.leave(peer).await;
    state.metrics.call_participants.dec();
    if let Err(e) = io
        .to(user_room(&gone.user_id))
        .leave(call_room(&call.id))
        .await
    {
        tracing::debug!(error = %e, "leaving the call's room failed");
    }
    tell_participants(io, &call.id, &participants_event(&call)).await;
    Some((call.id, gone.user_id))
}

/// `call:start {roomId}`: the call of a lounge room this socket joined, or
/// of the user's current chat; the running one if there is one (on any
/// node), else a new one hosted here.
pub async fn start(
    s: SocketRef,
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
    let started = |id: String| Ok(json!({ "callId": id, "roomId": room }));
    let gc = &state.group_calls;
    if let Some(c) = gc.lock().in_room(&room) {
        return started(c.id.clone());
    }
    if let Some(router) = &gc.router
        && let Some(id) = router.call_in_room(&room).await.map_err(from_wire)?
    {
        return started(id);
    }
    let id = gc.lock().start(scope, Instant::now(), crate::files::new_id);
    if let Some(router) = &gc.router {
        match router.claim(&room, &id).await {
            Ok(None) => {}
            Ok(Some(winner)) => {
                // Another node started the room's call first: that one.
                gc.lock().end(&id);
                return started(winner);
            }
            Err(e) => {
                gc.lock().end(&id);
                return Err(from_wire(e));
            }
        }
    }
    started(id)
}

/// `call:join {callId, sdp?}`.
pub async fn join(
    s: SocketRef,
    io: Io,
    state: AppState,
    user: Arc<SessionUser>,
    call: String,
    offer: Option<String>,
) -> EventResult {
    let op = CallOp::Join {
        call: call.clone(),
        user_id: user.id.clone(),
        username: user.username.clone(),
        socket: s.id.to_string(),
        rooms: super::lounges::rooms_of_socket(&s),
        offer,
    };
    // In the call's room first, so the joiner hears the participants
    // event its own join sends, like everyone else.
    s.join(call_room(&call));
    let ack = match route(&io, &state, op).await {
        Ok(ack) => ack,
        Err(e) => {
            if !socket_calls(&s).set().contains(&call) {
                s.leave(call_room(&call));
            }
            return Err(e);
        }
    };
    socket_calls(&s).set().insert(call);
    Ok(ack)
}

/// `call:signal {callId, sdp | candidate}`.
pub async fn signal(
    s: SocketRef,
    io: Io,
    state: AppState,
    user: Arc<SessionUser>,
    call: String,
    signal: CallSignal,
) -> EventResult {
    let op = CallOp::Signal {
        call,
        user_id: user.id.clone(),
        socket: s.id.to_string(),
        signal,
    };
    route(&io, &state, op).await
}

/// `call:leave {callId}`.
pub async fn leave(
    s: SocketRef,
    io: Io,
    state: AppState,
    user: Arc<SessionUser>,
    call: String,
) -> EventResult {
    let op = CallOp::Leave {
        call: call.clone(),
        user_id: user.id.clone(),
        socket: s.id.to_string(),
    };
    let ack = route(&io, &state, op).await?;
    s.leave(call_room(&call));
    socket_calls(&s).set().remove(&call);
    Ok(ack)
}

/// `call:invite {callId, userId}`: someone joins a chat's call.
pub async fn invite(
    io: Io,
    state: AppState,
    user: Arc<SessionUser>,
    call: String,
    other: UserId,
) -> EventResult {
    let op = CallOp::Invite {
        call,
        by_id: user.id.clone(),
        by_name: user.username.clone(),
        user: other.0,
    };
    route(&io, &state, op).await
}

/// A socket went: it leaves its calls, wherever they are hosted.
pub async fn disconnected(s: &SocketRef, io: &Io, state: &AppState, user: &SessionUser) {
    let calls: Vec<String> = match s.extensions.get::<Arc<SocketCalls>>() {
        Some(c) => c.set().drain().collect(),
        None => return,
    };
    for call in calls {
        let op = CallOp::Leave {
            call,
            user_id: user.id.clone(),
            socket: s.id.to_string(),
        };
        if let Err(e) = route(io, state, op).await {
            tracing::debug!(code = e.code, "leaving a call on disconnect");
        }
    }
}

/// Carries the media server's notices to the participants; ends calls
/// left empty; in a cluster, keeps this node's calls' records alive and
/// runs operations other nodes send.
pub async fn run_notices(io: Io, state: AppState) {
    let Some(mut rx) = state
        .group_calls
        .notices
        .lock()
        .ok()
        .and_then(|mut n| n.take())
    else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        let n = tokio::select! {
            n = rx.recv() => match n {
                Some(n) => n,
                None => return,
            },
            _ = tick.tick() => {
                let (ended, live) = {
                    let mut calls = state.group_calls.lock();
                    (calls.sweep_empty(Instant::now(), EMPTY_CALL_TTL), calls.list())
                };
                if let Some(router) = &state.group_calls.router {
                    let refreshed = router.refresh(&live).await;
                    let forgot = router.forget(&ended).await;
                    if let Err(e) = refreshed.and(forgot) {
                        tracing::warn!(error = ?e, "call records not refreshed");
                    }
                }
                continue;
            }
        };
        handle_notice(&io, &state, n).await;
    }
}

async fn handle_notice(io: &Io, state: &AppState, n: Notice) {
    match n {
        Notice::Offer { peer, sdp } => {
            let target = state
                .group_calls
                .lock()
                .of_peer(peer)
                .map(|(c, p)| (c.id.clone(), p.user_id.clone()));
            if let Some((call_id, user_id)) = target {
                let ev = ServerEvent::CallSignal { call_id, sdp };
                emit_to_user(io, &user_id, &ev).await;
            }
        }
        Notice::Tracks { peer, tracks } => {
            let event = state
                .group_calls
                .lock()
                .set_tracks(peer, tracks)
                .map(|c| (c.id.clone(), participants_event(c)));
            if let Some((call_id, event)) = event {
                tell_participants(io, &call_id, &event).await;
            }
        }
        Notice::Gone { peer, reason } => {
            if let Some((call_id, user_id)) = remove(io, state, peer).await {
                tracing::info!(user = %user_id, reason = reason.as_str(), "removed from a call");
                let ev = ServerEvent::CallLeft {
                    call_id,
                    reason: reason.as_str(),
                };
                emit_to_user(io, &user_id, &ev).await;
            }
        }
    }
}

/// Runs operations other nodes send for the calls hosted here.
pub async fn serve_remote(
    io: Io,
    state: AppState,
    client: redis::Client,
) -> Result<Option<tokio::task::JoinHandle<()>>, String> {
    let Some(router) = state.group_calls.router.clone() else {
        return Ok(None);
    };
    let handle = router
        .listen(client, move |op: Value| {
            let (io, state) = (io.clone(), state.clone());
            async move {
                let op: CallOp = serde_json::from_value(op)
                    .map_err(|e| ("invalid_payload".to_string(), e.to_string()))?;
                execute(&io, &state, op)
                    .await
                    .map_err(|e| (e.code.to_string(), e.message))
            }
        })
        .await?;
    Ok(Some(handle))
}

/// Calls and participants hosted on this node, and what its media server
/// forwarded.
pub fn counts(state: &AppState, sfu: crate::sfu::SfuStats) -> Value {
    let calls = state.group_calls.lock();
    json!({
        "calls": calls.len(),
        "participants": calls.participants(),
        "media": {
            "sessions": sfu.peers,
            "framesForwarded": sfu.forwarded,
            "framesOverBitrate": sfu.over_bitrate,
            "keyframeRequests": sfu.keyframe_requests,
        },
    })
}
