//! The I/O of [`super`]: HTTP long-polling requests and WebSocket
//! connections. The rules are in [`engine`], [`packet`] and the socket's
//! state; this file only moves bytes and runs the handlers.
//!
//! One task per connection: a WebSocket's task owns the socket (reads,
//! handles, writes, keeps the heartbeat, cleans up); a long-polling
//! session's task owns its heartbeat and clean-up until a WebSocket
//! upgrade takes over.

use std::time::Instant;

use axum::{
    body::Body,
    http::{HeaderValue, Method, Request, Response, StatusCode, header},
};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Message, Utf8Bytes,
        handshake::derive_accept_key,
        protocol::{Role, WebSocketConfig},
    },
};

use std::sync::{Arc, atomic::Ordering};

use bytes::Bytes;

use super::{
    Ack, DisconnectReason, Event, Frame, Io, Session, Sid, Socket, SocketRef, SocketState,
    engine::{self, Beat, RequestError, TransportType},
    packet,
};

type Ws = WebSocketStream<super::socket::Upgraded>;

/// Serves one request to `/socket.io/`.
pub async fn serve(io: Io, req: Request<Body>) -> Response<Body> {
    let query = req.uri().query().unwrap_or("").to_string();
    let q = match engine::parse_query(&query) {
        Ok(q) => q,
        Err(e) => return refuse(e),
    };
    match (q.transport, req.method().clone(), q.sid) {
        (TransportType::Polling, Method::GET, None) => handshake(&io, req),
        (TransportType::Polling, Method::GET, Some(sid)) => match io.session(sid) {
            Some(s) => poll(&s).await,
            None => refuse(RequestError::UnknownSid),
        },
        (TransportType::Polling, Method::POST, Some(sid)) => match io.session(sid) {
            Some(s) => post(&io, &s, req.into_body()).await,
            None => refuse(RequestError::UnknownSid),
        },
        (TransportType::Polling, Method::POST, None) => refuse(RequestError::BadHandshakeMethod),
        (TransportType::Websocket, Method::GET, sid) => {
            let session = match sid {
                None => None,
                Some(sid) => match io.session(sid) {
                    Some(s) => Some(s),
                    None => return refuse(RequestError::UnknownSid),
                },
            };
            websocket(io, req, session)
        }
        _ => refuse(RequestError::BadRequest),
    }
}

fn refuse(e: RequestError) -> Response<Body> {
    let mut res = Response::new(Body::from(e.body()));
    *res.status_mut() = match e {
        RequestError::Forbidden => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    };
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<Body> {
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

/// A new long-polling session: the open packet, and the session's task.
fn handshake(io: &Io, req: Request<Body>) -> Response<Body> {
    let (head, _) = req.into_parts();
    let s = io.new_session(TransportType::Polling, head);
    let open = engine::open_packet(s.sid.as_str(), &io.settings().engine(), true);
    tokio::spawn(polling_owner(io.clone(), s));
    text(StatusCode::OK, open, "text/plain; charset=UTF-8")
}

/// Keeps a long-polling session's heartbeat and connect deadline, and
/// cleans up when it closes; hands over to a WebSocket that upgrades it.
async fn polling_owner(io: Io, s: Arc<Session>) {
    let connect_by = Instant::now() + io.settings().connect_timeout;
    let reason = loop {
        let deadline = {
            let mut c = s.conn();
            if c.transport == TransportType::Websocket {
                return;
            }
            if let Some(r) = c.closing {
                break r;
            }
            let now = Instant::now();
            match c.heartbeat.tick(now) {
                Some(Beat::Ping) => {
                    c.queue.push_back(Frame::Text(Utf8Bytes::from_static("2")));
                    s.wake.notify_one();
                }
                Some(Beat::TimedOut) => break DisconnectReason::PingTimeout,
                None => {}
            }
            if !c.joined && now >= connect_by {
                break DisconnectReason::ConnectTimeout;
            }
            if c.joined {
                c.heartbeat.deadline()
            } else {
                c.heartbeat.deadline().min(connect_by)
            }
        };
        tokio::select! {
            _ = s.owner.notified() => {}
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
    };
    s.close(reason);
    // Closed by the server: what is queued (its `41`) waits for the
    // client's next poll, at most a ping timeout. A client that stopped
    // answering is dropped at once.
    let flush_by = Instant::now() + io.settings().ping_timeout;
    let linger = reason == DisconnectReason::ServerNamespaceDisconnect;
    while linger && Instant::now() < flush_by {
        let (upgraded, flushed) = {
            let c = s.conn();
            (c.transport == TransportType::Websocket, c.queue.is_empty())
        };
        if upgraded {
            // Upgraded meanwhile: the WebSocket's task writes and cleans up.
            return;
        }
        if flushed {
            break;
        }
        tokio::select! {
            _ = s.owner.notified() => {}
            _ = tokio::time::sleep_until(flush_by.into()) => {}
        }
    }
    finish(&io, &s, reason).await;
}

/// Marks a long-polling GET (`polling`) or POST (`posting`) as running,
/// and clears the mark when the request ends, however it ends.
struct Busy<'a>(&'a Session, bool);

impl<'a> Busy<'a> {
    /// Refuses a request the session's transport does not take, and a
    /// second one of the same kind at once (which also closes the session).
    fn begin(s: &'a Session, get: bool) -> Result<Busy<'a>, RequestError> {
        let mut c = s.conn();
        let taken = c.transport == TransportType::Polling || (!get && c.upgrading);
        if !taken {
            return Err(RequestError::BadRequest);
        }
        let flag = if get { &mut c.polling } else { &mut c.posting };
        if *flag {
            drop(c);
            s.close(DisconnectReason::MultipleHttpPolling);
            return Err(RequestError::BadRequest);
        }
        *flag = true;
        Ok(Busy(s, get))
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut c = self.0.conn();
        if self.1 {
            c.polling = false;
        } else {
            c.posting = false;
        }
    }
}

/// A long-polling GET: whatever is queued, or wait until something is.
async fn poll(s: &Session) -> Response<Body> {
    let _busy = match Busy::begin(s, true) {
        Ok(b) => b,
        Err(e) => return refuse(e),
    };
    loop {
        {
            let mut c = s.conn();
            // A poll still waiting when the WebSocket took over: the
            // client did not pause polling as the upgrade asks.
            if c.transport != TransportType::Polling {
                return refuse(RequestError::BadRequest);
            }
            if c.closing.is_some() && c.queue.is_empty() {
                // Closed with nothing left to say: one poll ends with a
                // noop — the one pending at the close, or the first after
                // it (a client's GET and its closing POST race on two
                // connections) — and later ones find the session gone, as
                // they will once its task has cleaned up.
                if c.last_poll {
                    return refuse(RequestError::UnknownSid);
                }
                c.last_poll = true;
            }
            if !c.queue.is_empty() || c.closing.is_some() {
                let mut body = String::new();
                for f in c.queue.drain(..) {
                    match f {
                        Frame::Text(t) => engine::push_payload(&mut body, &t),
                        Frame::Binary(b) => engine::push_binary_payload(&mut body, &b),
                        Frame::Flush => {}
                    }
                }
                // Closed with nothing to say: a noop ends the poll.
                if body.is_empty() {
                    body.push('6');
                }
                if c.closing.is_some() {
                    // The session's task waits for this last poll.
                    s.owner.notify_one();
                }
                return text(StatusCode::OK, body, "text/plain; charset=UTF-8");
            }
        }
        s.wake.notified().await;
    }
}

/// A long-polling POST: one or more packets from the client.
async fn post(io: &Io, s: &Arc<Session>, body: Body) -> Response<Body> {
    let _busy = match Busy::begin(s, false) {
        Ok(b) => b,
        Err(e) => return refuse(e),
    };
    let bytes = match axum::body::to_bytes(body, io.settings().max_payload).await {
        Ok(b) => b,
        Err(_) => {
            s.close(DisconnectReason::TransportError);
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload too large".into(),
                "text/plain",
            );
        }
    };
    let Ok(body) = std::str::from_utf8(&bytes) else {
        s.close(DisconnectReason::ParseError);
        return refuse(RequestError::BadRequest);
    };
    for p in engine::split_payload(body) {
        if let Err(reason) = on_text(io, s, &bytes, p).await {
            s.close(reason);
            break;
        }
    }
    text(StatusCode::OK, "ok".into(), "text/html")
}

/// A WebSocket: a new session, or the upgrade of a long-polling one.
fn websocket(io: Io, req: Request<Body>, session: Option<Arc<Session>>) -> Response<Body> {
    let (mut head, _) = req.into_parts();
    let key = head.headers.get(header::SEC_WEBSOCKET_KEY).cloned();
    let upgrade = head
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok());
    let (Some(key), true) = (
        key,
        upgrade.is_some_and(|u| u.eq_ignore_ascii_case("websocket")),
    ) else {
        return refuse(RequestError::BadRequest);
    };
    let Some(on_upgrade) = head.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
        return refuse(RequestError::BadRequest);
    };
    let settings = io.settings();
    let config = WebSocketConfig::default()
        .read_buffer_size(settings.ws_read_buffer)
        .max_message_size(Some(settings.max_payload))
        .max_frame_size(Some(settings.max_payload));
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws =
            WebSocketStream::from_raw_socket(upgraded.into(), Role::Server, Some(config)).await;
        let s = match session {
            Some(s) => {
                drop(head);
                // A session upgraded already (or closed) is not taken twice.
                if !probe(&io, &s, &mut ws).await {
                    let _ = ws.close(None).await;
                    return;
                }
                s
            }
            None => {
                let s = io.new_session(TransportType::Websocket, head);
                let open = engine::open_packet(s.sid.as_str(), &io.settings().engine(), false);
                if ws.send(Message::Text(open.into())).await.is_err() {
                    finish(&io, &s, DisconnectReason::TransportError).await;
                    return;
                }
                s
            }
        };
        if let Some((shard, parked)) = drive(&io, &s, &mut ws).await {
            move_session(shard, io, s, ws, parked);
        }
    });
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    res
}

/// The upgrade of a long-polling session: `2probe` → `3probe`, a noop
/// for the pending GET, then `5`. True when the WebSocket took over.
async fn probe(io: &Io, s: &Session, ws: &mut Ws) -> bool {
    {
        let mut c = s.conn();
        if c.transport != TransportType::Polling || c.upgrading || c.closing.is_some() {
            return false;
        }
        c.upgrading = true;
    }
    // Taken over even when closing: the client switched to the WebSocket
    // when it sent `5`, so what is queued (a ban's notice, a `41`) goes
    // out there before the close.
    let take_over = || {
        let mut c = s.conn();
        c.transport = TransportType::Websocket;
        c.heartbeat = engine::Heartbeat::new(
            Instant::now(),
            io.settings().ping_interval,
            io.settings().ping_timeout,
        );
        true
    };
    let is_upgrade = |m: &Message| matches!(m, Message::Text(t) if t.as_str() == "5");
    let upgraded = tokio::time::timeout(io.settings().ping_interval, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => match engine::decode(&t) {
                    Ok(engine::Packet::Ping("probe")) => {
                        if ws.send(Message::Text("3probe".into())).await.is_err() {
                            return false;
                        }
                        // A client that did not wait for its poll to end
                        // sent `5` with the probe: done at once.
                        match ws.next().now_or_never() {
                            Some(Some(Ok(m))) if is_upgrade(&m) => return take_over(),
                            Some(_) => return false,
                            None => {}
                        }
                        // Lets the client's pending GET end, so it can pause polling.
                        let mut c = s.conn();
                        c.queue.push_back(Frame::Text(Utf8Bytes::from_static("6")));
                        drop(c);
                        s.wake.notify_one();
                    }
                    Ok(engine::Packet::Upgrade) => return take_over(),
                    _ => return false,
                },
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                _ => return false,
            }
        }
    })
    .await
    .unwrap_or(false);
    s.conn().upgrading = false;
    // The session's task ends (upgraded) or goes on polling.
    s.owner.notify_one();
    s.wake.notify_one();
    upgraded
}

/// A WebSocket session's task: [`run_ws`] until the session closes, then
/// the clean-up; or, asked to move to another connection shard
/// ([`super::Io::colocate`]), that shard and the socket taken off this
/// one's reactor, for [`move_session`]. The WebSocket is borrowed: moved
/// into this future, it would also keep its place in the caller's (~1 KB
/// more per idle connection; BENCHMARKS.md, eighteenth session).
async fn drive(
    io: &Io,
    s: &Arc<Session>,
    ws: &mut Ws,
) -> Option<(tokio::runtime::Handle, super::socket::Parked)> {
    let here = crate::shards::current();
    if let Some(k) = here {
        tracing::debug!(sid = %s.sid.as_str(), shard = k, "session on shard");
    }
    s.shard.store(
        here.map_or(super::NO_SHARD, |k| k as u32),
        Ordering::Relaxed,
    );
    let reason = match run_ws(io, s, ws).await {
        Ended::Closed(reason) => reason,
        Ended::Move(shard) => match ws.get_mut().park() {
            Some(Ok(parked)) => return Some((shard, parked)),
            _ => DisconnectReason::TransportError,
        },
    };
    s.close(reason);
    finish(io, s, reason).await;
    None
}

/// Goes on with a session's task on `shard`, its socket put on that
/// shard's reactor.
fn move_session(
    shard: tokio::runtime::Handle,
    io: Io,
    s: Arc<Session>,
    mut ws: Ws,
    parked: super::socket::Parked,
) {
    shard.spawn(async move {
        if ws.get_mut().unpark(parked).is_err() {
            s.close(DisconnectReason::TransportError);
            finish(&io, &s, DisconnectReason::TransportError).await;
            return;
        }
        if let Some((shard, parked)) = drive(&io, &s, &mut ws).await {
            move_session(shard, io, s, ws, parked);
        }
    });
}

/// How [`run_ws`] ended.
enum Ended {
    Closed(DisconnectReason),
    /// Asked to move to this shard.
    Move(tokio::runtime::Handle),
}

/// A WebSocket session until it closes or is asked to move: write what is
/// queued, read and handle what comes, ping on time.
async fn run_ws(io: &Io, s: &Arc<Session>, ws: &mut Ws) -> Ended {
    let connect_by = Instant::now() + io.settings().connect_timeout;
    let mut out = std::collections::VecDeque::new();
    // One timer for the session, moved only when the deadline moves (a
    // new one each turn of the loop would be registered and removed for
    // every frame read or written); `None` once it has fired, so that it
    // is set again even for the same time.
    let mut armed = Some(connect_by);
    let sleep = tokio::time::sleep_until(connect_by.into());
    tokio::pin!(sleep);
    loop {
        let (closing, deadline) = {
            let mut c = s.conn();
            s.writer_awake.store(false, Ordering::Relaxed);
            std::mem::swap(&mut c.queue, &mut out);
            let deadline = if c.joined {
                c.heartbeat.deadline()
            } else {
                c.heartbeat.deadline().min(connect_by)
            };
            (c.closing, deadline)
        };
        if !out.is_empty() {
            for frame in out.drain(..) {
                let m = match frame {
                    Frame::Text(t) => Message::Text(t),
                    Frame::Binary(b) => Message::Binary(b),
                    Frame::Flush => {
                        if ws.flush().await.is_err() {
                            return Ended::Closed(DisconnectReason::TransportError);
                        }
                        continue;
                    }
                };
                if ws.feed(m).await.is_err() {
                    return Ended::Closed(DisconnectReason::TransportError);
                }
            }
            if ws.flush().await.is_err() {
                return Ended::Closed(DisconnectReason::TransportError);
            }
        }
        if let Some(reason) = closing {
            let _ = ws.close(None).await;
            return Ended::Closed(reason);
        }
        // A plain load each turn; the swap only when a move was asked.
        if s.move_to.load(Ordering::Relaxed) != super::NO_SHARD
            && let to = s.move_to.swap(super::NO_SHARD, Ordering::Relaxed)
            && to != super::NO_SHARD
            && crate::shards::current() != Some(to as usize)
            && matches!(ws.get_ref(), super::socket::Upgraded::Tcp { .. })
            && let Some(shard) = io.shard(to as usize)
        {
            return Ended::Move(shard.clone());
        }
        if armed != Some(deadline) {
            armed = Some(deadline);
            sleep.as_mut().reset(deadline.into());
        }
        tokio::select! {
            biased;
            m = ws.next() => match m {
                None | Some(Ok(Message::Close(_))) => return Ended::Closed(DisconnectReason::TransportClose),
                Some(Err(_)) => return Ended::Closed(DisconnectReason::TransportError),
                Some(Ok(Message::Text(t))) => {
                    // The loop writes the queue out next: what the
                    // handlers queue meanwhile needs no wake-up.
                    s.writer_awake.store(true, Ordering::Relaxed);
                    // The same buffer as `t` (tungstenite checked its UTF-8):
                    // events are cut from it without a copy.
                    let owner = Bytes::from(t.clone());
                    if let Err(r) = on_text(io, s, &owner, t.as_str()).await {
                        s.close(r);
                    }
                }
                Some(Ok(Message::Binary(b))) => {
                    s.writer_awake.store(true, Ordering::Relaxed);
                    if let Err(r) = on_attachment(io, s, b).await {
                        s.close(r);
                    }
                }
                // tungstenite answers a ping on the next write.
                Some(Ok(_)) => {
                    if ws.flush().await.is_err() {
                        return Ended::Closed(DisconnectReason::TransportError);
                    }
                }
            },
            _ = s.wake.notified() => {}
            _ = &mut sleep => {
                armed = None;
                let now = Instant::now();
                let mut c = s.conn();
                match c.heartbeat.tick(now) {
                    Some(Beat::Ping) => c.queue.push_back(Frame::Text(Utf8Bytes::from_static("2"))),
                    Some(Beat::TimedOut) => return Ended::Closed(DisconnectReason::PingTimeout),
                    None => {}
                }
                if !c.joined && now >= connect_by {
                    return Ended::Closed(DisconnectReason::ConnectTimeout);
                }
            }
        }
    }
}

/// One Engine.IO text packet from either transport; `owner` holds the
/// bytes `text` is cut from.
async fn on_text(
    io: &Io,
    s: &Arc<Session>,
    owner: &Bytes,
    text: &str,
) -> Result<(), DisconnectReason> {
    match engine::decode(text).map_err(|_| DisconnectReason::ParseError)? {
        engine::Packet::Message(m) => on_message(io, s, owner, m).await,
        engine::Packet::Pong(_) => {
            s.conn().heartbeat.pong(Instant::now());
            s.owner.notify_one();
            Ok(())
        }
        engine::Packet::Close => Err(DisconnectReason::TransportClose),
        engine::Packet::Binary(b) => on_attachment(io, s, Bytes::from(b)).await,
        engine::Packet::Ping(_) | engine::Packet::Noop | engine::Packet::Upgrade => Ok(()),
        engine::Packet::Open => Err(DisconnectReason::ParseError),
    }
}

/// An event whose binary attachments are still arriving.
pub(super) struct PendingBinary {
    socket: SocketRef,
    event: Event,
    id: Option<u64>,
    remaining: usize,
}

async fn on_attachment(_io: &Io, s: &Session, data: Bytes) -> Result<(), DisconnectReason> {
    let done = {
        let mut pending = super::lock(&s.pending);
        let Some(p) = pending.as_mut() else {
            return Err(DisconnectReason::ParseError);
        };
        p.event.attachments.push(data);
        p.remaining -= 1;
        if p.remaining == 0 {
            pending.take()
        } else {
            None
        }
    };
    if let Some(p) = done {
        let p = *p;
        run_event(s, p.socket, p.event, p.id).await;
    }
    Ok(())
}

/// One Socket.IO packet.
async fn on_message(
    io: &Io,
    s: &Arc<Session>,
    owner: &Bytes,
    text: &str,
) -> Result<(), DisconnectReason> {
    let Some(handler) = io.handler().cloned() else {
        return Ok(());
    };
    match packet::parse(text).map_err(|_| DisconnectReason::ParseError)? {
        packet::Packet::Connect { ns, auth } => {
            if !handler.accepts(ns) {
                let _ = s.push(Frame::Text(
                    packet::connect_error_frame(ns, "Invalid namespace").into(),
                ));
            } else if s.socket(ns).is_none() {
                connect(s, &*handler, ns, auth).await;
            }
            Ok(())
        }
        packet::Packet::Disconnect { ns } => {
            let socket = {
                let mut c = s.conn();
                let at = c.sockets.iter().position(|x| &*x.ns == ns);
                at.map(|at| c.sockets.swap_remove(at))
            };
            if let Some(socket) = socket {
                left(
                    s,
                    &*handler,
                    socket,
                    DisconnectReason::ClientNamespaceDisconnect,
                )
                .await;
            }
            Ok(())
        }
        packet::Packet::Event {
            ns,
            id,
            data,
            attachments,
        } => {
            let Some(socket) = s.socket(ns) else {
                return Ok(());
            };
            let args = packet::event_args(data).map_err(|_| DisconnectReason::ParseError)?;
            let event = Event {
                name: args.name,
                first: args.first.map(|f| owner.slice_ref(f.as_bytes())),
                data: owner.slice_ref(data.as_bytes()),
                attachments: Vec::new(),
            };
            if attachments > 0 {
                if attachments > io.settings().max_attachments {
                    return Err(DisconnectReason::ParseError);
                }
                *super::lock(&s.pending) = Some(Box::new(PendingBinary {
                    socket,
                    event,
                    id,
                    remaining: attachments,
                }));
                return Ok(());
            }
            run_event(s, socket, event, id).await;
            Ok(())
        }
        packet::Packet::Ack { .. } => Ok(()),
    }
}

async fn run_event(s: &Session, socket: SocketRef, event: Event, id: Option<u64>) {
    let Some(handler) = s.io.handler().cloned() else {
        return;
    };
    let _one_at_a_time = s.handlers.lock().await;
    let ack = Ack {
        socket: socket.clone(),
        id,
    };
    handler.on_event(socket, event, ack).await;
}

fn main_ns() -> Arc<str> {
    static MAIN: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
    MAIN.get_or_init(|| Arc::from("/")).clone()
}

/// A namespace's CONNECT: authenticate, answer, run the connect handler
/// (before any further packet of the session is read).
async fn connect(s: &Arc<Session>, handler: &dyn super::Handler, ns: &str, auth: Option<&str>) {
    let _one_at_a_time = s.handlers.lock().await;
    let head = {
        let mut c = s.conn();
        if c.closing.is_some() {
            return;
        }
        c.head.take()
    };
    let head = head.unwrap_or_else(|| Box::new(Request::new(()).into_parts().0));
    let auth = auth.and_then(|a| serde_json::from_str(a).ok());
    let socket = Arc::new(Socket {
        id: Sid::random(),
        ns: if ns == "/" { main_ns() } else { Arc::from(ns) },
        extensions: Default::default(),
        session: s.clone(),
        state: std::sync::Mutex::new(SocketState {
            connected: false,
            rooms: Vec::new(),
        }),
    });
    match handler.authenticate(&socket, auth, &head).await {
        Ok(()) => {
            {
                let mut c = s.conn();
                if c.closing.is_some() {
                    return;
                }
                c.joined = true;
                c.sockets.push(socket.clone());
                if ns != "/" {
                    c.head = Some(head);
                }
            }
            socket.state().connected = true;
            let _ = s.push(Frame::Text(
                packet::connect_frame(ns, socket.id.as_str()).into(),
            ));
            // The answer goes out on its own, before what the connect
            // handler sends: some clients read one message at a time.
            let _ = s.push(Frame::Flush);
            handler.on_connect(socket).await;
        }
        Err(message) => {
            let _ = s.push(Frame::Text(
                packet::connect_error_frame(ns, &message).into(),
            ));
            // The client may try again on this session.
            s.conn().head = Some(head);
        }
    }
}

/// A socket left its namespace (the session may go on).
async fn left(
    s: &Session,
    handler: &dyn super::Handler,
    socket: SocketRef,
    reason: DisconnectReason,
) {
    if socket.leave_namespace() {
        let _one_at_a_time = s.handlers.lock().await;
        handler.on_disconnect(socket, reason).await;
    }
}

/// After the session closed: out of the node's map, then each socket's
/// disconnect handler (after any handler still running).
async fn finish(io: &Io, s: &Arc<Session>, reason: DisconnectReason) {
    {
        let mut sessions = super::lock(&io.0.sessions);
        sessions.remove(&s.sid);
        crate::memory::shrink_sparse(&mut sessions);
    }
    let sockets = {
        let mut c = s.conn();
        if c.closing.is_none() {
            c.closing = Some(reason);
        }
        c.head = None;
        std::mem::take(&mut c.sockets)
    };
    *super::lock(&s.pending) = None;
    match io.handler().cloned() {
        Some(handler) => {
            for socket in sockets {
                left(s, &*handler, socket, reason).await;
            }
        }
        None => {
            for socket in sockets {
                socket.leave_namespace();
            }
        }
    }
}
