//! The call-loop flows shared by the event handlers, the matching ticker
//! and the grace timers: starting and ending chats, stepping away and
//! coming back.

use std::time::Duration;

use crate::sio::{Io, SocketRef};
use chrono::Utc;

use super::user_room;
use crate::{
    AppState,
    chat::{Closed, Member, RoomInfo, RoomsError},
    matching::{Joined, Pairing, Ticket},
    presence::{SessionUser, Status},
    protocol::{ServerEvent, ServerEventKind, UserId, server::Member as WireMember},
};

/// Sends `event` to every socket of a user (on any node).
pub async fn emit_to_user(io: &Io, user_id: &str, event: &ServerEvent) {
    let name = event.name();
    let emitted = io
        .to(user_room(user_id))
        .emit_with(name, |out| event.write_json(out))
        .await;
    if let Err(e) = emitted {
        tracing::debug!(error = %e, event = name, "emit to user failed");
    }
}

async fn set_status(state: &AppState, user_id: &str, status: Status) {
    if let Err(e) = state.call.presence.set_status(user_id, status).await {
        tracing::warn!(error = %e, "presence update failed");
    }
}

/// `user:matched` as `user_id` sees the room.
pub fn matched_event(room: &RoomInfo, user_id: &str, recovered: bool) -> Option<ServerEvent> {
    let (partner, role) = room.seen_by(user_id)?;
    Some(ServerEvent::UserMatched {
        room_id: room.id.clone().into(),
        matched_user: WireMember {
            id: UserId(partner.id.clone()),
            username: partner.username.clone(),
        },
        role,
        common_interests: room.common_interests.clone(),
        recovered,
    })
}

/// Opens the room of a pairing and tells both users. Returns the room id.
pub async fn start_chat(io: &Io, state: &AppState, pairing: Pairing) -> Option<String> {
    let room = RoomInfo {
        id: crate::files::new_id(),
        caller: Member {
            id: pairing.caller.user_id.clone(),
            username: pairing.caller.username.clone(),
        },
        callee: Member {
            id: pairing.callee.user_id.clone(),
            username: pairing.callee.username.clone(),
        },
        common_interests: pairing.common_interests.clone(),
        created_at: Utc::now(),
    };
    match state.call.rooms.open(room.clone()).await {
        Ok(()) => {}
        Err(RoomsError::Busy(busy)) => {
            // One of them is already chatting: the other goes back in the queue.
            tracing::warn!(%busy, "paired a user who is already in a chat");
            for t in [pairing.caller, pairing.callee] {
                if t.user_id != busy
                    && let Err(e) = requeue(io, state, t).await
                {
                    tracing::warn!(error = %e, "could not requeue");
                }
            }
            return None;
        }
        Err(e) => {
            tracing::error!(error = %e, "could not open a room");
            return None;
        }
    }
    tracing::info!(room = %room.id, caller = %room.caller.id, callee = %room.callee.id, "matched");
    state.metrics.matches.inc();
    state
        .metrics
        .match_wait
        .observe(pairing.waited.as_secs_f64());
    state
        .console
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .record_wait(
            Utc::now().timestamp_millis(),
            pairing.waited.as_secs_f64() * 1000.0,
        );
    // Each becomes reportable by the other (safety keeps the last partners).
    if let Err(e) = state
        .safety
        .recent
        .chat_started(&room.caller.id, &room.callee.id, &room.id)
        .await
    {
        tracing::warn!(error = %e, "recent chats not updated");
    }
    for member in [&room.caller, &room.callee] {
        set_status(state, &member.id, Status::InChat).await;
    }
    // Both members are told together: one who already knows could write
    // before the other learns of the chat, and its message would then
    // arrive before that member's `user:matched`.
    let tell = |member: &crate::chat::Member| {
        let event = matched_event(&room, &member.id, false);
        let id = member.id.clone();
        async move {
            if let Some(event) = event {
                emit_to_user(io, &id, &event).await;
            }
        }
    };
    tokio::join!(tell(&room.caller), tell(&room.callee));
    // Someone who dropped while being paired gets the usual grace period.
    for member in [&room.caller, &room.callee] {
        if matches!(state.call.presence.get(&member.id).await, Ok(None)) {
            step_away(io, state, &room.id, &member.id).await;
        }
    }
    Some(room.id)
}

/// Puts a ticket (back) in the queue, starting a chat if it pairs at once.
pub async fn requeue(io: &Io, state: &AppState, ticket: Ticket) -> Result<Joined, String> {
    let user_id = ticket.user_id.clone();
    let joined = state
        .call
        .matcher
        .join(ticket)
        .await
        .map_err(|e| e.to_string())?;
    match &joined {
        Joined::Waiting => set_status(state, &user_id, Status::Queued).await,
        Joined::Matched(p) => {
            Box::pin(start_chat(io, state, p.clone())).await;
        }
    }
    Ok(joined)
}

/// After a room closed: the members who did not end it get `partner:left`,
/// its files are deleted, and everyone is idle.
pub async fn finish_chat(
    io: &Io,
    state: &AppState,
    closed: Closed,
    ended_by: Option<&str>,
    reason: &'static str,
) {
    let room = &closed.info;
    tracing::info!(room = %room.id, reason, "chat ended");
    for member in [&room.caller, &room.callee] {
        if Some(member.id.as_str()) != ended_by {
            emit_to_user(
                io,
                &member.id,
                &ServerEvent::PartnerLeft {
                    reason,
                    room_id: room.id.clone().into(),
                },
            )
            .await;
        }
        set_status(state, &member.id, Status::Idle).await;
    }
    for file in &closed.files {
        state.files.delete(file).await;
    }
}

/// A member's last socket dropped during a chat: the partner is told and
/// the member has RECONNECT_GRACE to come back.
pub async fn step_away(io: &Io, state: &AppState, room_id: &str, user_id: &str) {
    let grace = state.config.reconnect_grace.0;
    let deadline = Utc::now() + chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    match state.call.rooms.mark_away(room_id, user_id, deadline).await {
        Ok(Some(_)) => state.call.rooms.graces_changed().notify_one(),
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "could not mark a member away");
            return;
        }
    }
    if let Ok(Some(room)) = state.call.rooms.room_of(user_id).await
        && let Some((partner, _)) = room.seen_by(user_id)
    {
        emit_to_user(
            io,
            &partner.id,
            &ServerEvent::PartnerReconnecting {
                room_id: room.id.clone().into(),
                grace_seconds: grace.as_secs_f64(),
            },
        )
        .await;
    }
}

/// Ends the chats whose away member's grace ran out, until the task is
/// aborted. Deadlines live in the chat state ([`ChatRooms::mark_away`](crate::chat::ChatRooms::mark_away)),
/// not in a timer of the process that saw the disconnect: in a cluster
/// every node runs this, so a grace is honoured even when the node that
/// started it dies. Wakes at the next deadline, when this process adds one,
/// and (in a cluster, where other nodes add them) at least every 2 s.
pub async fn drive_graces(io: Io, state: AppState) {
    let cap = state
        .node
        .cluster
        .is_some()
        .then_some(Duration::from_secs(2));
    loop {
        let changed = state.call.rooms.graces_changed().notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let next = match state.call.rooms.next_grace().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "could not read grace deadlines");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let until_next = next.map(|d| (d - Utc::now()).to_std().unwrap_or(Duration::ZERO));
        let wait = match (until_next, cap) {
            (Some(w), Some(c)) => Some(w.min(c)),
            (w, c) => w.or(c),
        };
        let wake = wait.map(|w| tokio::time::Instant::now() + w);
        if !crate::matching::sleep_or_notified(wake, changed).await {
            continue;
        }
        let due = match state.call.rooms.due_graces(Utc::now()).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "could not read grace deadlines");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        for (room_id, user_id, token) in due {
            let _order = state.call.room_order.closing(&room_id).await;
            match state
                .call
                .rooms
                .expire_away(&room_id, &user_id, token)
                .await
            {
                Ok(Some(closed)) => {
                    finish_chat(&io, &state, closed, Some(&user_id), "disconnected").await
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not expire an away member");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}

/// A new socket of `user`: if they are in a chat, this socket rejoins it
/// (`user:matched` with the same room) and gets what was kept for them;
/// if they had dropped, the partner gets `partner:reconnected`.
pub async fn resume(io: &Io, state: &AppState, socket: &SocketRef, user: &SessionUser) {
    let room = match state.call.rooms.room_of(&user.id).await {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "could not look up the chat of a returning user");
            return;
        }
    };
    let Some((partner, _)) = room.seen_by(&user.id) else {
        return;
    };
    let kept = state
        .call
        .rooms
        .mark_back(&room.id, &user.id)
        .await
        .ok()
        .flatten();
    set_status(state, &user.id, Status::InChat).await;
    if let Some(event) = matched_event(&room, &user.id, true) {
        let _ = socket.emit(event.name(), &event);
    }
    if let Some(kept) = kept {
        tracing::info!(room = %room.id, kept = kept.len(), "member came back");
        emit_to_user(
            io,
            &partner.id,
            &ServerEvent::PartnerReconnected {
                room_id: room.id.clone().into(),
            },
        )
        .await;
        // Kept as serialized `chat:message` events.
        for event in kept {
            let _ = socket.emit(ServerEventKind::ChatMessage.name(), &event);
        }
    }
}
