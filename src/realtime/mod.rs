//! Socket.IO on `/socket.io/`: JWT handshake, presence on connect and
//! disconnect, and the event handlers.

use std::sync::{Arc, atomic::Ordering};

use serde_json::Value;
use tracing::Instrument;

use crate::{
    AppState,
    presence::SessionUser,
    protocol::{ServerEvent, ServerEventKind, UserId},
    sio::{Ack, BoxFuture, DisconnectReason, Event, Handler, Io, SocketRef, TransportType},
};

pub mod calls;
pub mod events;
pub mod group_calls;
pub mod lounges;
pub mod moderation;
pub mod node;

/// Largest Socket.IO packet accepted (an SDP offer is at most 64 KiB).
pub const MAX_PACKET: usize = 96 * 1024;
/// Initial WebSocket read buffer (engineioxide's default is 4 KiB).
pub const WS_READ_BUFFER: usize = 1024;
/// Binary attachments are not part of the contract: allow very few, small.
const MAX_BINARIES: usize = 2;

/// The room every socket of a user joins, so events reach a user on any
/// socket (and, in a cluster, on any node).
pub fn user_room(user_id: &str) -> String {
    // Once per message delivered: without `format!`'s machinery.
    ["user:", user_id].concat()
}

/// The transport's settings from the configuration.
pub fn settings(state: &AppState) -> crate::sio::Settings {
    crate::sio::Settings {
        ping_interval: state.config.ping_interval.0,
        ping_timeout: state.config.ping_timeout.0,
        max_payload: MAX_PACKET,
        // Packets queued per socket before emits fail: room for bursts of
        // chat and signaling to a client that reads slowly.
        max_queue: 1024,
        // Read buffer per WebSocket, allocated up front for every socket and
        // grown only while a larger frame arrives: chat packets are small,
        // and an idle connection should cost little.
        ws_read_buffer: WS_READ_BUFFER,
        max_attachments: MAX_BINARIES,
        connect_timeout: std::time::Duration::from_secs(45),
    }
}

/// The node's Socket.IO server with Tandem's handlers plugged in; a
/// cluster node also sets its fanout (see `lib.rs`).
pub fn build_io(state: &AppState) -> Io {
    let io = Io::new(settings(state));
    io.set_handler(Arc::new(App(state.clone())));
    state
        .safety
        .attach(Arc::new(moderation::IoSessions(io.clone())));
    take_census(state, io.clone());
    io
}

/// Tandem's side of the transport.
struct App(AppState);

impl Handler for App {
    fn authenticate<'a>(
        &'a self,
        socket: &'a SocketRef,
        auth: Option<Value>,
        head: &'a axum::http::request::Parts,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            authenticate(socket, auth, head, &self.0)
                .await
                .map_err(|r| r.to_string())
        })
    }

    fn on_connect(&self, socket: SocketRef) -> BoxFuture<'static, ()> {
        Box::pin(on_connect(socket, self.0.clone()))
    }

    fn on_event(&self, socket: SocketRef, event: Event, ack: Ack) -> BoxFuture<'static, ()> {
        // No event of Tandem's takes binary data.
        let event = if event.attachments.is_empty() {
            Ok(event)
        } else {
            Err(event.name)
        };
        Box::pin(events::dispatch(
            socket,
            self.0.clone(),
            event,
            Reply { ack },
        ))
    }

    fn on_disconnect(&self, socket: SocketRef, reason: DisconnectReason) -> BoxFuture<'static, ()> {
        Box::pin(on_disconnect(socket, self.0.clone(), reason))
    }
}

/// Lets the metrics count this node's sockets by transport.
fn take_census(state: &AppState, io: Io) {
    let _ = state.node.census.set(Box::new(move || {
        let mut c = crate::Census::default();
        for s in io.sockets() {
            match s.transport_type() {
                TransportType::Websocket => c.websocket += 1,
                TransportType::Polling => c.polling += 1,
            }
        }
        c
    }));
}

/// Pairs whoever waited past the match fallback, until the task is
/// aborted: woken by the matcher's next deadline or a join, never by a poll.
pub async fn match_ticker(io: Io, state: AppState) {
    let matcher = state.call.matcher.clone();
    crate::matching::drive(matcher.as_ref(), |p| {
        let (io, state) = (io.clone(), state.clone());
        async move {
            calls::start_chat(&io, &state, p).await;
        }
    })
    .await
}

/// Tells this node's clients the server is going away, then closes their
/// sockets (only this node's: the others stay up).
pub async fn shutdown(io: &Io) {
    let bye = ServerEvent::ServerShutdown { reconnect: true };
    let _ = io.local().emit(bye.name(), &bye).await;
    // Long-polling clients between two polls pick the notice up on their next
    // poll: leave them a moment before closing.
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    let _ = io.local().disconnect().await;
}

/// The device id the client gave at the handshake (`auth.deviceId`).
#[derive(Debug, Clone)]
pub struct DeviceId(pub String);

/// Why a handshake was refused: `connect_error` "unauthorized" (no token,
/// a bad one, or one of an account that no longer exists), or "banned"
/// when a ban covers the account, the device (`auth.deviceId`) or the
/// address.
#[derive(Debug)]
enum Refused {
    Unauthorized,
    Banned,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Unauthorized => f.write_str("unauthorized"),
            Refused::Banned => f.write_str("banned"),
        }
    }
}

/// Handshake middleware: `io(url, {auth: {token}})` or an
/// `Authorization: Bearer` header. Failure → `connect_error` "unauthorized"
/// (or "banned").
async fn authenticate(
    s: &SocketRef,
    auth: Option<Value>,
    head: &axum::http::request::Parts,
    state: &AppState,
) -> Result<(), Refused> {
    let device = auth
        .as_ref()
        .and_then(|a| a.get("deviceId").and_then(Value::as_str))
        .map(str::trim)
        .filter(|d| !d.is_empty() && d.len() <= 128)
        .map(str::to_string);
    let from_auth = auth.and_then(|a| a.get("token").and_then(Value::as_str).map(str::to_string));
    let token = from_auth.or_else(|| {
        head.headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::auth::bearer_value)
            .map(str::to_string)
    });
    let Some(token) = token else {
        tracing::debug!(sid = %s.id, "socket without token refused");
        return Err(Refused::Unauthorized);
    };
    let claims = state.accounts.jwt.verify(&token).map_err(|e| {
        tracing::debug!(sid = %s.id, error = %e, "socket with bad token refused");
        Refused::Unauthorized
    })?;
    match state.accounts.store.user_by_id(&claims.sub).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            tracing::debug!(sid = %s.id, "socket of an unknown account refused");
            return Err(Refused::Unauthorized);
        }
        // As for REST: while the store cannot say, the signed token is trusted.
        Err(e) => tracing::debug!(error = %e, "account check skipped: store unavailable"),
    }
    let origin = crate::safety::Origin {
        user: Some(&claims.sub),
        ip: crate::net::client_ip(&head.headers, &head.extensions, state.config.trust_proxy),
        device: device.as_deref(),
    };
    match state
        .safety
        .ban_in_force(state.accounts.store.as_ref(), &origin)
        .await
    {
        Ok(Some(_)) => {
            tracing::debug!(sid = %s.id, "socket of a banned user refused");
            return Err(Refused::Banned);
        }
        Ok(None) => {}
        Err(e) => tracing::debug!(error = %e, "ban check skipped: store unavailable"),
    }
    if let Some(d) = device {
        s.extensions.insert(DeviceId(d));
    }
    // Behind an Arc: every event reads it, and the extension map hands out clones.
    s.extensions.insert(Arc::new(SessionUser {
        id: claims.sub,
        username: claims.name,
        is_guest: claims.guest,
    }));
    Ok(())
}

/// The socket joined: its user's room, presence, the hello, and a chat to
/// resume. The transport runs this before reading the socket's first
/// event, and its disconnect handler after.
async fn on_connect(s: SocketRef, state: AppState) {
    let Some(user) = s.extensions.get::<Arc<SessionUser>>() else {
        let _ = s.disconnect();
        return;
    };
    // A span per event, not one kept per socket: a live span costs ~1 KiB
    // per idle connection in the subscriber.
    let span = tracing::info_span!("socket", sid = %s.id, user = %user.id);
    async {
        let io = s.io().clone();
        s.join(user_room(&user.id));
        state.node.local_sockets.fetch_add(1, Ordering::Relaxed);
        state.metrics.connections.inc();
        if let Err(e) = state.call.presence.connect(&user, &s.id.to_string()).await {
            tracing::warn!(error = %e, "presence update failed");
        }
        tracing::info!(transport = ?s.transport_type(), "connected");
        let hello = ServerEvent::ConnectionEstablished {
            user_id: UserId(user.id.clone()),
            username: user.username.clone(),
            socket_id: s.id.to_string(),
        };
        let _ = s.emit(hello.name(), &hello);
        calls::resume(&io, &state, &s, &user).await;
    }
    .instrument(span)
    .await
}

async fn on_disconnect(s: SocketRef, state: AppState, reason: DisconnectReason) {
    let Some(user) = s.extensions.get::<Arc<SessionUser>>() else {
        return;
    };
    let span = tracing::info_span!("socket", sid = %s.id, user = %user.id);
    let io = s.io().clone();
    cleanup(&s, &io, &state, &user, reason)
        .instrument(span)
        .await
}

/// What a socket leaves behind when it goes: its count, its presence, and
/// for the user's last socket the queue, the chat (stepping away) and
/// what only mattered while online.
async fn cleanup(
    s: &SocketRef,
    io: &Io,
    state: &AppState,
    user: &SessionUser,
    reason: DisconnectReason,
) {
    state.node.local_sockets.fetch_sub(1, Ordering::Relaxed);
    tracing::info!(?reason, "disconnected");
    lounges::disconnected(s, state, user).await;
    group_calls::disconnected(s, io, state, user).await;
    match state
        .call
        .presence
        .disconnect(&user.id, &s.id.to_string())
        .await
    {
        Ok(true) => {
            // The user's last socket: leave the queue, step away from a chat.
            if let Err(e) = state.call.matcher.leave(&user.id).await {
                tracing::warn!(error = %e, "could not leave the queue");
            }
            if let Ok(Some(room)) = state.call.rooms.room_of(&user.id).await {
                calls::step_away(io, state, &room.id, &user.id).await;
            }
            // The event budget is kept: reconnecting must not refill it.
            if let Err(e) = state.call.rooms.forget_user(&user.id).await {
                tracing::debug!(error = %e, "could not forget the last partner");
            }
            state.call.typing.forget(&user.id);
            state.safety.forget(&user.id);
            if let Err(e) = state.safety.recent.forget(&user.id).await {
                tracing::debug!(error = %e, "could not forget recent chats");
            }
            state
                .accounts
                .last_seen
                .record(&user.id, chrono::Utc::now());
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "presence update failed"),
    }
}

/// The reply channel of a client event. Every event may carry an ack; the
/// ack is `{success:true, data}` or `{success:false, error:{code, message}}`.
/// An event sent without an ack that fails gets an `error {code, message}`
/// event instead.
pub struct Reply {
    ack: Ack,
}

/// A failed client event: a stable code and a message (and, for a limit,
/// when it resets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventError {
    pub code: &'static str,
    pub message: String,
    pub reset_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl EventError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        EventError {
            code,
            message: message.into(),
            reset_at: None,
        }
    }
}

impl Reply {
    /// `{success: true, data}` or `{success: false, error}`; a failed
    /// event sent without an ack gets an `error` event instead.
    pub fn send<T: serde::Serialize>(self, result: Result<T, EventError>) {
        self.send_with(result.map(|data| move |out: &mut String| crate::json::value(out, &data)))
    }

    /// [`Self::send`] with the data written by the given function (which
    /// writes JSON).
    pub fn send_with<W>(self, result: Result<W, EventError>)
    where
        W: FnOnce(&mut String) -> Result<(), serde_json::Error>,
    {
        // Typed envelopes: serialized straight away, no JSON map built per ack.
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Failure<'a> {
            code: &'a str,
            message: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            reset_at: Option<chrono::DateTime<chrono::Utc>>,
        }
        #[derive(serde::Serialize)]
        struct Refused<'a> {
            success: bool,
            error: Failure<'a>,
        }
        match result {
            Ok(write) => {
                // `{"success":true,"data":…}`
                let _ = self.ack.send_with(|out| {
                    out.push_str("{\"success\":true,\"data\":");
                    write(out)?;
                    out.push('}');
                    Ok(())
                });
            }
            Err(e) => {
                let error = Failure {
                    code: e.code,
                    message: &e.message,
                    reset_at: e.reset_at,
                };
                if self.ack.wanted() {
                    let _ = self.ack.send(&Refused {
                        success: false,
                        error,
                    });
                } else {
                    let _ = self
                        .ack
                        .socket()
                        .emit(ServerEventKind::Error.name(), &error);
                }
            }
        }
    }
}
