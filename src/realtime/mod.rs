//! Socket.IO on `/socket.io/`: JWT handshake, presence on connect and
//! disconnect, and the event handlers.

use std::{
    convert::Infallible,
    sync::{Arc, atomic::Ordering},
};

use serde_json::Value;
use socketioxide::{
    ParserConfig, SocketIo, SocketIoBuilder,
    adapter::{Adapter, LocalAdapter},
    extract::{AckSender, SocketRef, State, TryData},
    handler::{ConnectHandler, FromMessageParts},
    layer::SocketIoLayer,
    socket::{DisconnectReason, Socket},
};
use tracing::Instrument;

use crate::{
    AppState,
    presence::SessionUser,
    protocol::{ServerEvent, ServerEventKind, UserId},
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
    format!("user:{user_id}")
}

fn builder(state: AppState) -> SocketIoBuilder {
    let (ping_interval, ping_timeout) = (state.config.ping_interval.0, state.config.ping_timeout.0);
    SocketIo::builder()
        .ping_interval(ping_interval)
        .ping_timeout(ping_timeout)
        .with_state(state)
        .max_payload(MAX_PACKET as u64)
        // Packets queued per socket before emits fail: room for bursts of
        // chat and signaling to a client that reads slowly.
        .max_buffer_size(1024)
        // Read buffer per WebSocket, allocated up front for every socket and
        // grown only while a larger frame arrives: chat packets are small,
        // and an idle connection should cost little.
        .ws_read_buffer_size(WS_READ_BUFFER)
        .ws_max_message_size(MAX_PACKET)
        .ws_max_frame_size(MAX_PACKET)
        .with_parser(
            ParserConfig::common()
                .max_incoming_binaries(MAX_BINARIES)
                .max_incoming_binary_buf_size(MAX_PACKET),
        )
}

/// A single node: the in-memory adapter.
pub fn local_layer(state: AppState) -> (SocketIoLayer, SocketIo) {
    let (layer, io) = builder(state.clone()).build_layer();
    state
        .safety
        .attach(Arc::new(moderation::IoSessions(io.clone())));
    take_census(&state, io.clone());
    state.lounges.attach(Arc::new(lounges::LocalFanout {
        io: io.clone(),
        state: Arc::downgrade(&state.0),
    }));
    io.ns(
        "/",
        on_connect::<LocalAdapter>.with(authenticate::<LocalAdapter>),
    );
    (layer, io)
}

/// A cluster node: socketioxide's Redis adapter, so room broadcasts reach
/// sockets on every node.
pub async fn redis_layer(
    state: AppState,
    adapter: socketioxide_redis::RedisAdapterCtr<crate::cluster::driver::ManagedDriver>,
) -> Result<
    (
        SocketIoLayer<crate::cluster::IoAdapter>,
        SocketIo<crate::cluster::IoAdapter>,
    ),
    String,
> {
    let (layer, io) = builder(state.clone())
        .with_adapter::<crate::cluster::IoAdapter>(adapter)
        .build_layer();
    state
        .safety
        .attach(Arc::new(moderation::IoSessions(io.clone())));
    take_census(&state, io.clone());
    if let Some(cluster) = &state.node.cluster {
        state
            .lounges
            .attach(Arc::new(crate::cluster::lounges::RedisFanout(
                cluster.conn.clone(),
            )));
    }
    io.ns(
        "/",
        on_connect::<crate::cluster::IoAdapter>.with(authenticate::<crate::cluster::IoAdapter>),
    )
    .await
    .map_err(|e| format!("Socket.IO Redis adapter: {e}"))?;
    Ok((layer, io))
}

/// Lets the metrics count this node's sockets by transport.
fn take_census<A: Adapter>(state: &AppState, io: SocketIo<A>) {
    let _ = state.node.census.set(Box::new(move || {
        let mut c = crate::Census::default();
        for s in io.sockets() {
            match s.transport_type() {
                socketioxide::TransportType::Websocket => c.websocket += 1,
                socketioxide::TransportType::Polling => c.polling += 1,
            }
        }
        c
    }));
}

/// Pairs whoever waited past the match fallback, until the task is
/// aborted: woken by the matcher's next deadline or a join, never by a poll.
pub async fn match_ticker<A: Adapter>(io: SocketIo<A>, state: AppState) {
    let matcher = state.call.matcher.clone();
    crate::matching::drive(matcher.as_ref(), |p| {
        let (io, state) = (io.clone(), state.clone());
        async move {
            calls::start_chat(&io, &state, p).await;
        }
    })
    .await
}

/// Tells every client the server is going away, then closes their sockets.
pub async fn shutdown<A: Adapter>(io: &SocketIo<A>) {
    let bye = ServerEvent::ServerShutdown { reconnect: true };
    let _ = io.emit(bye.name(), &bye).await;
    // Long-polling clients between two polls pick the notice up on their next
    // poll: leave them a moment before closing.
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    let _ = io.broadcast().disconnect().await;
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
async fn authenticate<A: Adapter>(
    s: SocketRef<A>,
    TryData(auth): TryData<Value>,
    State(state): State<AppState>,
) -> Result<(), Refused> {
    let auth = auth.ok();
    let device = auth
        .as_ref()
        .and_then(|a| a.get("deviceId").and_then(Value::as_str))
        .map(str::trim)
        .filter(|d| !d.is_empty() && d.len() <= 128)
        .map(str::to_string);
    let from_auth = auth.and_then(|a| a.get("token").and_then(Value::as_str).map(str::to_string));
    let token = from_auth.or_else(|| {
        s.req_parts()
            .headers
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
    let parts = s.req_parts();
    let origin = crate::safety::Origin {
        user: Some(&claims.sub),
        ip: crate::net::client_ip(&parts.headers, &parts.extensions, state.config.trust_proxy),
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

async fn on_connect<A: Adapter>(s: SocketRef<A>, io: SocketIo<A>, State(state): State<AppState>) {
    let Some(user) = s.extensions.get::<Arc<SessionUser>>() else {
        let _ = s.disconnect();
        return;
    };
    // A span per event, not one kept per socket: a live span costs ~1 KiB
    // per idle connection in the subscriber.
    let span = tracing::info_span!("socket", sid = %s.id, user = %user.id);
    async {
        // Handlers first: a client may send its first event as soon as the
        // handshake is answered, and socketioxide dispatches it on another
        // thread; an event that came before its handler was dropped
        // unanswered (the soak saw `user:match` go unacked about once in
        // 25,000 sessions). The handlers wait for [`Ready`], so they still
        // run after this setup (presence is connected before any event or
        // the disconnect is handled).
        let (ready, ready_rx) = tokio::sync::watch::channel(false);
        s.extensions.insert(Ready(ready_rx));
        s.extensions.insert(Cleanup::default());
        s.on_disconnect(on_disconnect);
        s.on_fallback(events::dispatch);
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
        let _ = ready.send(true);
        s.extensions.remove::<Ready>();
        // Closed before its disconnect handler was registered (between
        // socketioxide's handshake answer and this handler's first line):
        // nobody else will clean up after it.
        if !s.connected() && claim_cleanup(&s) {
            cleanup(&s, &io, &state, &user, None).await;
        }
    }
    .instrument(span)
    .await
}

/// Whoever claims it first cleans up after a socket: its disconnect
/// handler, or the connection handler finding the socket already closed.
#[derive(Clone, Default)]
pub(crate) struct Cleanup(Arc<std::sync::atomic::AtomicBool>);

fn claim_cleanup<A: Adapter>(s: &SocketRef<A>) -> bool {
    s.extensions
        .get::<Cleanup>()
        .is_none_or(|c| !c.0.swap(true, Ordering::SeqCst))
}

/// Set while a socket's connection handler runs; its event and disconnect
/// handlers wait for it (see `on_connect`).
#[derive(Clone)]
pub(crate) struct Ready(tokio::sync::watch::Receiver<bool>);

/// Waits until the socket's connection handler has finished.
pub(crate) async fn until_ready<A: Adapter>(s: &SocketRef<A>) {
    if let Some(Ready(mut rx)) = s.extensions.get::<Ready>() {
        let _ = rx.wait_for(|ready| *ready).await;
    }
}

async fn on_disconnect<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    reason: DisconnectReason,
    State(state): State<AppState>,
) {
    until_ready(&s).await;
    let Some(user) = s.extensions.get::<Arc<SessionUser>>() else {
        return;
    };
    if !claim_cleanup(&s) {
        return;
    }
    let span = tracing::info_span!("socket", sid = %s.id, user = %user.id);
    cleanup(&s, &io, &state, &user, Some(reason))
        .instrument(span)
        .await
}

/// What a socket leaves behind when it goes: its count, its presence, and
/// for the user's last socket the queue, the chat (stepping away) and
/// what only mattered while online.
async fn cleanup<A: Adapter>(
    s: &SocketRef<A>,
    io: &SocketIo<A>,
    state: &AppState,
    user: &SessionUser,
    reason: Option<DisconnectReason>,
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
pub struct Reply<A: Adapter = LocalAdapter> {
    socket: SocketRef<A>,
    ack: AckSender<A>,
    wants_ack: bool,
}

impl<A: Adapter> FromMessageParts<A> for Reply<A> {
    type Error = Infallible;

    fn from_message_parts(
        s: &Arc<Socket<A>>,
        v: &mut socketioxide::handler::Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Infallible> {
        Ok(Reply {
            socket: SocketRef::from_message_parts(s, v, ack_id)?,
            ack: AckSender::from_message_parts(s, v, ack_id)?,
            wants_ack: ack_id.is_some(),
        })
    }
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

impl<A: Adapter> Reply<A> {
    pub fn send(self, result: Result<Value, EventError>) {
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
        struct Ack<'a> {
            success: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            data: Option<&'a Value>,
            #[serde(skip_serializing_if = "Option::is_none")]
            error: Option<Failure<'a>>,
        }
        match result {
            Ok(data) => {
                if self.wants_ack {
                    let _ = self.ack.send(&Ack {
                        success: true,
                        data: Some(&data),
                        error: None,
                    });
                }
            }
            Err(e) => {
                let error = Failure {
                    code: e.code,
                    message: &e.message,
                    reset_at: e.reset_at,
                };
                if self.wants_ack {
                    let _ = self.ack.send(&Ack {
                        success: false,
                        data: None,
                        error: Some(error),
                    });
                } else {
                    let _ = self.socket.emit(ServerEventKind::Error.name(), &error);
                }
            }
        }
    }
}
