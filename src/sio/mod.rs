//! Tandem's own Socket.IO v5 server over Engine.IO v4 (WebSocket and
//! HTTP long-polling), on `/socket.io/`.
//!
//! - [`engine`] and [`packet`]: the two protocols, sans I/O (parsing,
//!   framing, the heartbeat's clock), unit-tested and fuzzed.
//! - [`fanout`]: what one node tells the others (a room's event, a room's
//!   disconnect), sans I/O; the cluster carries it over Redis pub/sub.
//! - [`driver`]: the I/O. **One task per connection**: a WebSocket's task
//!   reads frames, runs the handlers, writes the socket's queue and keeps
//!   the heartbeat; a long-polling session's task keeps only the heartbeat
//!   (its requests carry the rest).
//! - Here: [`Io`] (the node's sessions and rooms), a session (one
//!   Engine.IO connection: its queue of frames, transport, heartbeat),
//!   [`Socket`] (one client in one namespace: rooms, extensions) and
//!   [`Broadcast`].
//!
//! The application plugs in through [`Handler`]: authenticate a CONNECT,
//! then connect, event and disconnect, called in that order and one at a
//! time per socket (a socket's events are handled in the order sent).

pub mod driver;
pub mod engine;
pub mod fanout;
pub mod packet;
mod socket;

use std::{
    any::{Any, TypeId},
    collections::VecDeque,
    fmt,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, OnceLock},
    time::Duration,
};

use rustc_hash::FxHashMap;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

pub use engine::TransportType;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
pub type SocketRef = Arc<Socket>;
type Room = Arc<str>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the transport needs to know; the rest is the application's.
#[derive(Debug, Clone)]
pub struct Settings {
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// Largest packet (WebSocket message, polling request body).
    pub max_payload: usize,
    /// Frames queued for a client before further ones are dropped.
    pub max_queue: usize,
    /// A WebSocket's read buffer, allocated up front.
    pub ws_read_buffer: usize,
    /// Binary attachments allowed on one event.
    pub max_attachments: usize,
    /// A session that has not joined the main namespace by then is closed.
    pub connect_timeout: Duration,
}

impl Settings {
    fn engine(&self) -> engine::Settings {
        engine::Settings {
            ping_interval: self.ping_interval,
            ping_timeout: self.ping_timeout,
            max_payload: self.max_payload,
        }
    }
}

/// A session or socket id: 20 characters of URL-safe base64 (120 random
/// bits), as socket.io makes them.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sid([u8; 20]);

impl Sid {
    pub fn random() -> Sid {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bits: [u8; 20] = rand::random();
        Sid(bits.map(|b| ALPHABET[(b & 63) as usize]))
    }

    pub fn parse(s: &str) -> Option<Sid> {
        let bytes: [u8; 20] = s.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
            .then_some(Sid(bytes))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a socket went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The connection closed (the client went away).
    TransportClose,
    /// The connection failed, or sent more than `max_payload`.
    TransportError,
    PingTimeout,
    /// The client left the namespace (`socket.disconnect()`).
    ClientNamespaceDisconnect,
    /// The server disconnected it (kick, ban, shutdown).
    ServerNamespaceDisconnect,
    /// It sent something that is not Engine.IO / Socket.IO.
    ParseError,
    /// It did not join the main namespace within `connect_timeout`.
    ConnectTimeout,
    /// Another long-polling request overlapped a pending one.
    MultipleHttpPolling,
}

/// Typed values attached to a socket (the user, its device, …). `get`
/// hands out clones: keep large values behind an `Arc`.
#[derive(Default)]
pub struct Extensions(Mutex<Vec<(TypeId, Box<dyn Any + Send + Sync>)>>);

impl Extensions {
    pub fn insert<T: Clone + Send + Sync + 'static>(&self, value: T) {
        let mut v = lock(&self.0);
        let id = TypeId::of::<T>();
        match v.iter_mut().find(|(t, _)| *t == id) {
            Some(slot) => slot.1 = Box::new(value),
            None => v.push((id, Box::new(value))),
        }
    }

    pub fn get<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        let id = TypeId::of::<T>();
        lock(&self.0)
            .iter()
            .find(|(t, _)| *t == id)
            .and_then(|(_, b)| b.downcast_ref::<T>().cloned())
    }

    pub fn remove<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        let id = TypeId::of::<T>();
        let mut v = lock(&self.0);
        let at = v.iter().position(|(t, _)| *t == id)?;
        v.swap_remove(at).1.downcast::<T>().ok().map(|b| *b)
    }
}

/// An emit that could not be done.
#[derive(Debug)]
pub enum EmitError {
    Serialize(serde_json::Error),
    /// The socket is gone.
    Closed,
    /// The client does not read: its queue is full.
    QueueFull,
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmitError::Serialize(e) => write!(f, "could not serialize: {e}"),
            EmitError::Closed => f.write_str("socket closed"),
            EmitError::QueueFull => f.write_str("the client's queue is full"),
        }
    }
}

impl std::error::Error for EmitError {}

/// The application's side.
pub trait Handler: Send + Sync + 'static {
    /// Whether clients may join namespace `ns` (Tandem's clients use `/`).
    fn accepts(&self, ns: &str) -> bool {
        ns == "/"
    }

    /// A CONNECT, with its `auth` payload and the head of the request that
    /// opened the session. `Err(message)` is the client's `connect_error`.
    fn authenticate<'a>(
        &'a self,
        socket: &'a SocketRef,
        auth: Option<Value>,
        head: &'a axum::http::request::Parts,
    ) -> BoxFuture<'a, Result<(), String>>;

    /// The socket joined its namespace (its CONNECT is answered).
    fn on_connect(&self, socket: SocketRef) -> BoxFuture<'static, ()>;

    /// An event and its ack.
    fn on_event(&self, socket: SocketRef, event: Event, ack: Ack) -> BoxFuture<'static, ()>;

    /// The socket is gone (called once, after its connect handler).
    fn on_disconnect(&self, socket: SocketRef, reason: DisconnectReason) -> BoxFuture<'static, ()>;
}

/// Carries one node's broadcasts to the other nodes (the cluster's Redis).
pub trait Fanout: Send + Sync + 'static {
    fn publish(&self, message: Vec<u8>) -> BoxFuture<'_, ()>;
}

/// A client event, as the handler gets it.
pub struct Event {
    pub name: String,
    /// The first argument's JSON text (checked to be JSON, cut from
    /// `data`); `None` when sent with none.
    pub first: Option<bytes::Bytes>,
    /// The whole JSON array (name and arguments), as sent.
    pub data: bytes::Bytes,
    /// Binary attachments (the `{"_placeholder":true,"num":n}` in `data`).
    pub attachments: Vec<bytes::Bytes>,
}

impl Event {
    pub fn data(&self) -> &str {
        // Cut from a validated `&str`.
        std::str::from_utf8(&self.data).unwrap_or("")
    }

    /// The first argument's JSON text (`None` when sent with none).
    pub fn first_json(&self) -> Option<&str> {
        // Cut from a validated `&str` at a value's bounds.
        self.first
            .as_ref()
            .map(|b| std::str::from_utf8(b).unwrap_or("null"))
    }

    /// The first argument as a JSON value: `Ok(None)` when sent with none,
    /// `Err` when it is JSON no `Value` holds (a number out of range).
    pub fn first_value(&self) -> Result<Option<Value>, &'static str> {
        self.first_json()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|_| "not a JSON value this server can read")
    }
}

/// The answer channel of one client event.
pub struct Ack {
    socket: SocketRef,
    id: Option<u64>,
}

impl Ack {
    /// Whether the client waits for an answer.
    pub fn wanted(&self) -> bool {
        self.id.is_some()
    }

    pub fn socket(&self) -> &SocketRef {
        &self.socket
    }

    /// Sends the answer (nothing when the client asked for none).
    pub fn send<T: Serialize + ?Sized>(self, data: &T) -> Result<(), EmitError> {
        self.send_with(|out| crate::json::value(out, data))
    }

    /// Sends the answer written by `write` (which writes JSON).
    pub fn send_with(
        self,
        write: impl FnOnce(&mut String) -> Result<(), serde_json::Error>,
    ) -> Result<(), EmitError> {
        let Some(id) = self.id else { return Ok(()) };
        let frame =
            packet::ack_frame_with(&self.socket.ns, id, write).map_err(EmitError::Serialize)?;
        self.socket
            .session
            .push(Frame::Text(Utf8Bytes::from(frame)))
    }

    /// Answers with a JSON array of arguments as is, and binary
    /// attachments (`args` holds their placeholders).
    pub fn send_raw(self, args: &str, attachments: Vec<bytes::Bytes>) -> Result<(), EmitError> {
        let Some(id) = self.id else { return Ok(()) };
        let frame = packet::raw_frame(b'3', &self.socket.ns, Some(id), args, attachments.len());
        self.socket.session.push_all(frame, attachments)
    }
}

/// One frame for the client.
#[derive(Clone)]
enum Frame {
    Text(Utf8Bytes),
    Binary(bytes::Bytes),
    /// Write out what came before now, on its own (a WebSocket flush).
    Flush,
}

/// The Engine.IO side of a session, behind its lock.
struct Conn {
    queue: VecDeque<Frame>,
    transport: TransportType,
    /// A WebSocket is probing to take over from long-polling.
    upgrading: bool,
    /// A long-polling GET is waiting for frames.
    polling: bool,
    /// A long-polling POST is being handled.
    posting: bool,
    /// Some namespace was joined (the connect deadline no longer applies).
    joined: bool,
    /// Set once, when the session starts closing.
    closing: Option<DisconnectReason>,
    /// A closed long-polling session has answered its last poll.
    last_poll: bool,
    heartbeat: engine::Heartbeat,
    /// The namespaces' sockets (usually just the main one).
    sockets: Vec<SocketRef>,
    /// The request that opened the session, until the main namespace's
    /// CONNECT is authenticated.
    head: Option<Box<axum::http::request::Parts>>,
}

/// One Engine.IO session: a WebSocket, or a series of long-polling
/// requests (upgraded to a WebSocket when the client can).
pub(crate) struct Session {
    /// The Engine.IO session id (names a long-polling session).
    sid: Sid,
    io: Io,
    conn: Mutex<Conn>,
    /// Wakes whoever writes the queue out: the WebSocket task, or the
    /// pending long-polling GET.
    wake: Notify,
    /// Wakes the long-polling session's task (heartbeat, closing, upgrade).
    owner: Notify,
    /// Set while the WebSocket task handles what it read: it writes the
    /// queue out next, so frames queued meanwhile (the event's ack) need
    /// no wake-up, which would only cost it an idle turn of its loop.
    /// Cleared under `conn` before the queue is taken; read under it.
    writer_awake: std::sync::atomic::AtomicBool,
    /// The connection shard its WebSocket's task runs on (`NO_SHARD`: none,
    /// or a long-polling session).
    shard: std::sync::atomic::AtomicU32,
    /// The shard its WebSocket's task is asked to move to (`NO_SHARD`: stay).
    move_to: std::sync::atomic::AtomicU32,
    /// Held while a handler runs: one at a time per session, in order.
    handlers: tokio::sync::Mutex<()>,
    /// An event waiting for its binary attachments.
    pending: Mutex<Option<Box<driver::PendingBinary>>>,
}

/// No connection shard (see [`Session::shard`]).
const NO_SHARD: u32 = u32::MAX;

impl Session {
    fn conn(&self) -> MutexGuard<'_, Conn> {
        lock(&self.conn)
    }

    /// The connection shard its WebSocket's task runs on.
    fn shard(&self) -> Option<usize> {
        let k = self.shard.load(std::sync::atomic::Ordering::Relaxed);
        (k != NO_SHARD).then_some(k as usize)
    }

    /// Asks its WebSocket's task to move to shard `k` (done between two
    /// turns of its loop; nothing for a session already there).
    fn move_to_shard(&self, k: usize) {
        if self.shard() != Some(k) {
            self.move_to
                .store(k as u32, std::sync::atomic::Ordering::Relaxed);
            self.wake.notify_one();
        }
    }

    fn push(&self, frame: Frame) -> Result<(), EmitError> {
        let mut c = self.conn();
        if c.closing.is_some() {
            return Err(EmitError::Closed);
        }
        if c.queue.len() >= self.io.0.settings.max_queue {
            return Err(EmitError::QueueFull);
        }
        c.queue.push_back(frame);
        let awake = self.writer_awake.load(std::sync::atomic::Ordering::Relaxed);
        drop(c);
        if !awake {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// A text frame and its binary attachments, together.
    fn push_all(&self, text: String, attachments: Vec<bytes::Bytes>) -> Result<(), EmitError> {
        let mut c = self.conn();
        if c.closing.is_some() {
            return Err(EmitError::Closed);
        }
        if c.queue.len() + attachments.len() >= self.io.0.settings.max_queue {
            return Err(EmitError::QueueFull);
        }
        c.queue.push_back(Frame::Text(Utf8Bytes::from(text)));
        c.queue.extend(attachments.into_iter().map(Frame::Binary));
        let awake = self.writer_awake.load(std::sync::atomic::Ordering::Relaxed);
        drop(c);
        if !awake {
            self.wake.notify_one();
        }
        Ok(())
    }

    fn close(&self, reason: DisconnectReason) {
        let mut c = self.conn();
        if c.closing.is_none() {
            c.closing = Some(reason);
        }
        drop(c);
        self.wake_all();
    }

    fn wake_all(&self) {
        self.wake.notify_one();
        self.owner.notify_one();
    }

    fn socket(&self, ns: &str) -> Option<SocketRef> {
        self.conn().sockets.iter().find(|s| &*s.ns == ns).cloned()
    }
}

struct SocketState {
    connected: bool,
    rooms: Vec<Room>,
}

/// One client in one namespace (Tandem's clients use the main one, `/`).
pub struct Socket {
    /// The Socket.IO id (the client's `socket.id`).
    pub id: Sid,
    pub ns: Arc<str>,
    pub extensions: Extensions,
    session: Arc<Session>,
    state: Mutex<SocketState>,
}

impl Socket {
    fn state(&self) -> MutexGuard<'_, SocketState> {
        lock(&self.state)
    }

    /// The node's server this socket belongs to.
    pub fn io(&self) -> &Io {
        &self.session.io
    }

    /// Sends an event to this client.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), EmitError> {
        let frame = packet::event_frame(&self.ns, event, data).map_err(EmitError::Serialize)?;
        self.session.push(Frame::Text(Utf8Bytes::from(frame)))
    }

    /// Sends an event given as a JSON array (name first) as is, with
    /// binary attachments (`data` holds their placeholders).
    pub fn emit_raw(&self, data: &str, attachments: Vec<bytes::Bytes>) -> Result<(), EmitError> {
        let frame = packet::raw_frame(b'2', &self.ns, None, data, attachments.len());
        self.session.push_all(frame, attachments)
    }

    /// Adds the socket to a room of this node (main namespace only).
    pub fn join(self: &Arc<Self>, room: impl AsRef<str>) {
        let room: Room = Arc::from(room.as_ref());
        let mut rooms = lock(&self.io().0.rooms);
        let mut st = self.state();
        if !st.connected || st.rooms.contains(&room) || &*self.ns != "/" {
            return;
        }
        st.rooms.push(room.clone());
        drop(st);
        rooms.entry(room).or_default().push(self.clone());
    }

    pub fn leave(&self, room: impl AsRef<str>) {
        let room = room.as_ref();
        let mut rooms = lock(&self.io().0.rooms);
        let mut st = self.state();
        let Some(at) = st.rooms.iter().position(|r| &**r == room) else {
            return;
        };
        st.rooms.swap_remove(at);
        drop(st);
        remove_from_room(&mut rooms, room, &self.id);
    }

    /// An event to everyone in `room`, on every node, except this socket.
    pub fn to(&self, room: impl Into<String>) -> Broadcast {
        Broadcast {
            io: self.io().clone(),
            room: Some(room.into()),
            except: Some(self.id),
            local: false,
        }
    }

    /// Disconnects the client from the server's side: `41`, then its
    /// connection closes.
    pub fn disconnect(&self) -> Result<(), EmitError> {
        if !self.connected() {
            return Err(EmitError::Closed);
        }
        let frame = if &*self.ns == "/" {
            Utf8Bytes::from_static(packet::DISCONNECT_FRAME)
        } else {
            Utf8Bytes::from(format!("41{},", self.ns))
        };
        let _ = self.session.push(Frame::Text(frame));
        self.session
            .close(DisconnectReason::ServerNamespaceDisconnect);
        Ok(())
    }

    /// Still connected to its namespace.
    pub fn connected(&self) -> bool {
        self.state().connected && self.session.conn().closing.is_none()
    }

    pub fn transport_type(&self) -> TransportType {
        self.session.conn().transport
    }

    /// Out of its namespace: no more rooms, not connected. True the first
    /// time (whoever gets true runs the disconnect handler).
    fn leave_namespace(&self) -> bool {
        let mut rooms = lock(&self.io().0.rooms);
        let mut st = self.state();
        let was = std::mem::replace(&mut st.connected, false);
        let mine = std::mem::take(&mut st.rooms);
        drop(st);
        for room in mine {
            remove_from_room(&mut rooms, &room, &self.id);
        }
        was
    }
}

fn remove_from_room(rooms: &mut FxHashMap<Room, Vec<SocketRef>>, room: &str, id: &Sid) {
    if let Some(members) = rooms.get_mut(room) {
        members.retain(|s| s.id != *id);
        if members.is_empty() {
            rooms.remove(room);
            crate::memory::shrink_sparse(rooms);
        }
    }
}

struct IoInner {
    settings: Settings,
    /// Every session of this node, by Engine.IO id.
    sessions: Mutex<FxHashMap<Sid, Arc<Session>>>,
    /// The main namespace's rooms.
    rooms: Mutex<FxHashMap<Room, Vec<SocketRef>>>,
    handler: OnceLock<Arc<dyn Handler>>,
    fanout: OnceLock<(Arc<dyn Fanout>, String)>,
    /// The connection shards' runtimes, when connections are served on
    /// shards (`crate::shards`).
    shards: OnceLock<Vec<tokio::runtime::Handle>>,
}

/// The node's Socket.IO server: its sessions and rooms.
#[derive(Clone)]
pub struct Io(Arc<IoInner>);

impl Io {
    pub fn new(settings: Settings) -> Io {
        Io(Arc::new(IoInner {
            settings,
            sessions: Mutex::default(),
            rooms: Mutex::default(),
            handler: OnceLock::new(),
            fanout: OnceLock::new(),
            shards: OnceLock::new(),
        }))
    }

    /// The connection shards sessions run on (once, before serving).
    pub fn set_shards(&self, shards: &[tokio::runtime::Handle]) {
        let _ = self.0.shards.set(shards.to_vec());
    }

    /// Shard `k`'s runtime.
    fn shard(&self, k: usize) -> Option<&tokio::runtime::Handle> {
        self.0.shards.get()?.get(k)
    }

    /// Puts this node's WebSocket sessions in rooms `a` and `b` on one
    /// connection shard: two people in a chat, so that a message and its
    /// copy are written by one thread, with no wake-up of another
    /// (BENCHMARKS.md, eighteenth session). The shard is the one of the
    /// room whose name sorts first (of its first session on a shard), so
    /// both sides pick the same one and a pair never swaps, and a pair
    /// lands on either's shard alike: the shards stay as evenly loaded as
    /// connections were handed to them. Nothing for sessions on another
    /// node or off the shards.
    pub fn colocate(&self, a: &str, b: &str) {
        let (first, second) = if a <= b { (a, b) } else { (b, a) };
        let rooms = lock(&self.0.rooms);
        let shard_of = |room: &str| {
            rooms
                .get(room)
                .and_then(|m| m.iter().find_map(|s| s.session.shard()))
        };
        let Some(k) = shard_of(first).or_else(|| shard_of(second)) else {
            return;
        };
        for s in [first, second]
            .into_iter()
            .filter_map(|r| rooms.get(r))
            .flatten()
        {
            s.session.move_to_shard(k);
        }
    }

    /// Plugs the application in (once, before serving).
    pub fn set_handler(&self, handler: Arc<dyn Handler>) {
        let _ = self.0.handler.set(handler);
    }

    /// Joins a cluster: broadcasts also go to `fanout`, tagged with this
    /// node's id so it can skip its own.
    pub fn set_fanout(&self, fanout: Arc<dyn Fanout>, node: String) {
        let _ = self.0.fanout.set((fanout, node));
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    fn handler(&self) -> Option<&Arc<dyn Handler>> {
        self.0.handler.get()
    }

    /// Everyone in `room`, on every node.
    pub fn to(&self, room: impl Into<String>) -> Broadcast {
        Broadcast {
            io: self.clone(),
            room: Some(room.into()),
            except: None,
            local: false,
        }
    }

    /// Everyone on this node only.
    pub fn local(&self) -> Broadcast {
        Broadcast {
            io: self.clone(),
            room: None,
            except: None,
            local: true,
        }
    }

    /// This node's sockets connected to the main namespace.
    pub fn sockets(&self) -> Vec<SocketRef> {
        let sessions: Vec<Arc<Session>> = lock(&self.0.sessions).values().cloned().collect();
        sessions
            .iter()
            .filter_map(|s| s.socket("/"))
            .filter(|s| s.connected())
            .collect()
    }

    /// Sessions open on this node (connected or not yet).
    pub fn session_count(&self) -> usize {
        lock(&self.0.sessions).len()
    }

    fn new_session(
        &self,
        transport: TransportType,
        head: axum::http::request::Parts,
    ) -> Arc<Session> {
        let settings = &self.0.settings;
        let session = Arc::new(Session {
            sid: Sid::random(),
            io: self.clone(),
            conn: Mutex::new(Conn {
                queue: VecDeque::new(),
                transport,
                upgrading: false,
                polling: false,
                posting: false,
                last_poll: false,
                joined: false,
                closing: None,
                heartbeat: engine::Heartbeat::new(
                    std::time::Instant::now(),
                    settings.ping_interval,
                    settings.ping_timeout,
                ),
                sockets: Vec::new(),
                head: Some(Box::new(head)),
            }),
            wake: Notify::new(),
            owner: Notify::new(),
            writer_awake: Default::default(),
            shard: NO_SHARD.into(),
            move_to: NO_SHARD.into(),
            handlers: tokio::sync::Mutex::new(()),
            pending: Mutex::new(None),
        });
        lock(&self.0.sessions).insert(session.sid, session.clone());
        session
    }

    fn session(&self, sid: &str) -> Option<Arc<Session>> {
        lock(&self.0.sessions).get(&Sid::parse(sid)?).cloned()
    }

    /// Delivers a frame to this node's members of `room` (everyone in the
    /// main namespace when `None`), but `except`.
    fn deliver(&self, room: Option<&str>, except: Option<&str>, frame: &Utf8Bytes) {
        let send = |s: &SocketRef| {
            if except != Some(s.id.as_str()) && s.state().connected {
                let _ = s.session.push(Frame::Text(frame.clone()));
            }
        };
        match room {
            Some(room) => {
                let rooms = lock(&self.0.rooms);
                if let Some(members) = rooms.get(room) {
                    members.iter().for_each(send);
                }
            }
            None => self.sockets().iter().for_each(send),
        }
    }

    fn targets(&self, room: Option<&str>) -> Vec<SocketRef> {
        match room {
            Some(room) => lock(&self.0.rooms).get(room).cloned().unwrap_or_default(),
            None => self.sockets(),
        }
    }

    fn disconnect_local(&self, room: Option<&str>) {
        for s in self.targets(room) {
            let _ = s.disconnect();
        }
    }

    fn leave_local(&self, room: Option<&str>, leave: &str) {
        for s in self.targets(room) {
            s.leave(leave);
        }
    }

    /// A message from another node (see [`fanout`]).
    pub fn on_remote(&self, message: &[u8]) {
        let Ok((node, m)) = fanout::decode(message) else {
            tracing::debug!("unreadable cluster message ignored");
            return;
        };
        if self.0.fanout.get().is_some_and(|(_, me)| me == node) {
            return;
        }
        match m {
            fanout::Message::Emit {
                room,
                except,
                frame,
            } => self.deliver(room, except, &Utf8Bytes::from(frame)),
            fanout::Message::Disconnect { room } => self.disconnect_local(room),
            fanout::Message::Leave { room, leave } => self.leave_local(room, leave),
        }
    }
}

/// An event or a disconnect for many sockets (of the main namespace).
pub struct Broadcast {
    io: Io,
    room: Option<String>,
    except: Option<Sid>,
    local: bool,
}

impl Broadcast {
    pub fn to(mut self, room: impl AsRef<str>) -> Broadcast {
        self.room = Some(room.as_ref().to_string());
        self
    }

    /// Tells the other nodes, unless local or not clustered.
    async fn publish(&self, message: fanout::Message<'_>) {
        if let (false, Some((fanout, node))) = (self.local, self.io.0.fanout.get()) {
            fanout.publish(fanout::encode(node, &message)).await;
        }
    }

    pub async fn emit<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<(), EmitError> {
        self.emit_with(event, |out| crate::json::value(out, data))
            .await
    }

    /// [`Self::emit`] with the data written by `write` (which writes JSON).
    pub async fn emit_with(
        &self,
        event: &str,
        write: impl FnOnce(&mut String) -> Result<(), serde_json::Error>,
    ) -> Result<(), EmitError> {
        let frame = packet::event_frame_with("/", event, write).map_err(EmitError::Serialize)?;
        let except = self.except.as_ref().map(Sid::as_str);
        let room = self.room.as_deref();
        // Serialized once: these sockets and the other nodes get the same text.
        let text = Utf8Bytes::from(frame);
        self.io.deliver(room, except, &text);
        self.publish(fanout::Message::Emit {
            room,
            except,
            frame: text.as_str(),
        })
        .await;
        Ok(())
    }

    pub async fn disconnect(&self) -> Result<(), EmitError> {
        let room = self.room.as_deref();
        self.io.disconnect_local(room);
        self.publish(fanout::Message::Disconnect { room }).await;
        Ok(())
    }

    /// Every socket in the room, on every node, leaves `room`.
    pub async fn leave(&self, room: impl AsRef<str>) -> Result<(), EmitError> {
        let leave = room.as_ref();
        self.io.leave_local(self.room.as_deref(), leave);
        self.publish(fanout::Message::Leave {
            room: self.room.as_deref(),
            leave,
        })
        .await;
        Ok(())
    }

    /// This node's sockets in the room.
    pub fn sockets(&self) -> Vec<SocketRef> {
        self.io.targets(self.room.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_are_twenty_url_safe_characters() {
        let a = Sid::random();
        assert_eq!(a.as_str().len(), 20);
        assert_eq!(Sid::parse(a.as_str()), Some(a));
        assert_ne!(a, Sid::random());
        assert_eq!(Sid::parse("short"), None);
        assert_eq!(Sid::parse("aaaaaaaaaaaaaaaaaaa!"), None);
    }

    #[test]
    fn extensions_hold_one_value_per_type() {
        let e = Extensions::default();
        assert_eq!(e.get::<u32>(), None);
        e.insert(1u32);
        e.insert(String::from("a"));
        e.insert(2u32);
        assert_eq!(e.get::<u32>(), Some(2));
        assert_eq!(e.remove::<u32>(), Some(2));
        assert_eq!(e.get::<u32>(), None);
        assert_eq!(e.get::<String>().as_deref(), Some("a"));
    }
}
