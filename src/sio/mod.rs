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
//! - Here: [`Io`] (the node's sockets and rooms), [`Socket`] (one client:
//!   its queue of frames, rooms, extensions) and [`Broadcast`].
//!
//! The application plugs in through [`Handler`]: authenticate a CONNECT,
//! then connect, event and disconnect, called in that order and one at a
//! time per socket (a socket's events are handled in the order sent).

pub mod driver;
pub mod engine;
pub mod fanout;
pub mod packet;

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
    /// A CONNECT to the main namespace, with its `auth` payload and the
    /// head of the request that opened the session. `Err(message)` is the
    /// client's `connect_error`.
    fn authenticate<'a>(
        &'a self,
        socket: &'a SocketRef,
        auth: Option<Value>,
        head: &'a axum::http::request::Parts,
    ) -> BoxFuture<'a, Result<(), String>>;

    /// The socket joined the main namespace (its CONNECT is answered).
    fn on_connect(&self, socket: SocketRef) -> BoxFuture<'static, ()>;

    /// An event: its name, its first argument (`Ok(None)`: sent with none;
    /// `Err`: arguments the server cannot read) and its ack.
    fn on_event(
        &self,
        socket: SocketRef,
        event: String,
        arg: Result<Option<Value>, &'static str>,
        ack: Ack,
    ) -> BoxFuture<'static, ()>;

    /// The socket is gone (called once, after its connect handler).
    fn on_disconnect(&self, socket: SocketRef, reason: DisconnectReason) -> BoxFuture<'static, ()>;
}

/// Carries one node's broadcasts to the other nodes (the cluster's Redis).
pub trait Fanout: Send + Sync + 'static {
    fn publish(&self, message: Vec<u8>) -> BoxFuture<'_, ()>;
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
        let Some(id) = self.id else { return Ok(()) };
        let frame = packet::ack_frame(id, data).map_err(EmitError::Serialize)?;
        self.socket.push(Utf8Bytes::from(frame))
    }
}

/// The Engine.IO side of a socket, behind its lock.
struct Conn {
    queue: VecDeque<Utf8Bytes>,
    transport: TransportType,
    /// A WebSocket is probing to take over from long-polling.
    upgrading: bool,
    /// A long-polling GET is waiting for frames.
    polling: bool,
    /// A long-polling POST is being handled.
    posting: bool,
    /// Answered the main namespace's CONNECT.
    connected: bool,
    /// Set once, when the socket starts closing.
    closing: Option<DisconnectReason>,
    /// The owner task has cleaned up: nothing may join a room any more.
    finished: bool,
    heartbeat: engine::Heartbeat,
    rooms: Vec<Room>,
    /// The request that opened the session, until the CONNECT is handled.
    head: Option<Box<axum::http::request::Parts>>,
}

/// One client: an Engine.IO session carrying the main namespace.
pub struct Socket {
    /// The Socket.IO id (the client's `socket.id`).
    pub id: Sid,
    /// The Engine.IO session id (names a long-polling session).
    sid: Sid,
    pub extensions: Extensions,
    io: Io,
    conn: Mutex<Conn>,
    /// Wakes whoever writes the queue out: the WebSocket task, or the
    /// pending long-polling GET.
    wake: Notify,
    /// Wakes the long-polling session's task (heartbeat, closing, upgrade).
    owner: Notify,
    /// Held while a handler runs: one at a time per socket, in order.
    handlers: tokio::sync::Mutex<()>,
    /// An event waiting for its binary attachments.
    pending: Mutex<Option<Box<driver::PendingBinary>>>,
}

impl Socket {
    fn conn(&self) -> MutexGuard<'_, Conn> {
        lock(&self.conn)
    }

    /// Queues a frame for the client.
    fn push(&self, frame: Utf8Bytes) -> Result<(), EmitError> {
        let mut c = self.conn();
        if c.closing.is_some() {
            return Err(EmitError::Closed);
        }
        if c.queue.len() >= self.io.0.settings.max_queue {
            return Err(EmitError::QueueFull);
        }
        c.queue.push_back(frame);
        drop(c);
        self.wake.notify_one();
        Ok(())
    }

    /// The node's server this socket belongs to.
    pub fn io(&self) -> &Io {
        &self.io
    }

    /// Sends an event to this client.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), EmitError> {
        let frame = packet::event_frame(event, data).map_err(EmitError::Serialize)?;
        self.push(Utf8Bytes::from(frame))
    }

    /// Adds the socket to a room of this node.
    pub fn join(&self, room: impl AsRef<str>) {
        let room: Room = Arc::from(room.as_ref());
        let mut rooms = lock(&self.io.0.rooms);
        let mut c = self.conn();
        if c.finished || c.rooms.contains(&room) {
            return;
        }
        c.rooms.push(room.clone());
        drop(c);
        let me = self.io.0.sessions_get(&self.sid);
        if let Some(me) = me {
            rooms.entry(room).or_default().push(me);
        }
    }

    pub fn leave(&self, room: impl AsRef<str>) {
        let room = room.as_ref();
        let mut rooms = lock(&self.io.0.rooms);
        let mut c = self.conn();
        let Some(at) = c.rooms.iter().position(|r| &**r == room) else {
            return;
        };
        c.rooms.swap_remove(at);
        drop(c);
        remove_from_room(&mut rooms, room, &self.sid);
    }

    /// An event to everyone in `room`, on every node, except this socket.
    pub fn to(&self, room: impl AsRef<str>) -> Broadcast {
        Broadcast {
            io: self.io.clone(),
            room: Some(room.as_ref().to_string()),
            except: Some(self.id),
            local: false,
        }
    }

    /// Disconnects the client from the server's side (`41`, then the
    /// connection closes).
    pub fn disconnect(&self) -> Result<(), EmitError> {
        let mut c = self.conn();
        if c.closing.is_some() {
            return Err(EmitError::Closed);
        }
        if c.connected {
            c.queue
                .push_back(Utf8Bytes::from_static(packet::DISCONNECT_FRAME));
        }
        c.closing = Some(DisconnectReason::ServerNamespaceDisconnect);
        drop(c);
        self.wake_all();
        Ok(())
    }

    /// Still connected to the main namespace.
    pub fn connected(&self) -> bool {
        let c = self.conn();
        c.connected && c.closing.is_none()
    }

    pub fn transport_type(&self) -> TransportType {
        self.conn().transport
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
}

fn remove_from_room(rooms: &mut FxHashMap<Room, Vec<SocketRef>>, room: &str, sid: &Sid) {
    if let Some(members) = rooms.get_mut(room) {
        members.retain(|s| s.sid != *sid);
        if members.is_empty() {
            rooms.remove(room);
        }
    }
}

struct IoInner {
    settings: Settings,
    /// Every session of this node, by Engine.IO id.
    sessions: Mutex<FxHashMap<Sid, SocketRef>>,
    rooms: Mutex<FxHashMap<Room, Vec<SocketRef>>>,
    handler: OnceLock<Arc<dyn Handler>>,
    fanout: OnceLock<(Arc<dyn Fanout>, String)>,
}

impl IoInner {
    fn sessions_get(&self, sid: &Sid) -> Option<SocketRef> {
        lock(&self.sessions).get(sid).cloned()
    }
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
        }))
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
    pub fn to(&self, room: impl AsRef<str>) -> Broadcast {
        Broadcast {
            io: self.clone(),
            room: Some(room.as_ref().to_string()),
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
        lock(&self.0.sessions)
            .values()
            .filter(|s| s.connected())
            .cloned()
            .collect()
    }

    /// Sessions open on this node (connected or not yet).
    pub fn session_count(&self) -> usize {
        lock(&self.0.sessions).len()
    }

    fn new_session(&self, transport: TransportType, head: axum::http::request::Parts) -> SocketRef {
        let settings = &self.0.settings;
        let socket = Arc::new(Socket {
            id: Sid::random(),
            sid: Sid::random(),
            extensions: Extensions::default(),
            io: self.clone(),
            conn: Mutex::new(Conn {
                queue: VecDeque::new(),
                transport,
                upgrading: false,
                polling: false,
                posting: false,
                connected: false,
                closing: None,
                finished: false,
                heartbeat: engine::Heartbeat::new(
                    std::time::Instant::now(),
                    settings.ping_interval,
                    settings.ping_timeout,
                ),
                rooms: Vec::new(),
                head: Some(Box::new(head)),
            }),
            wake: Notify::new(),
            owner: Notify::new(),
            handlers: tokio::sync::Mutex::new(()),
            pending: Mutex::new(None),
        });
        lock(&self.0.sessions).insert(socket.sid, socket.clone());
        socket
    }

    fn session(&self, sid: &str) -> Option<SocketRef> {
        self.0.sessions_get(&Sid::parse(sid)?)
    }

    /// Delivers a frame to this node's members of `room` (everyone when
    /// `None`), but `except`.
    fn deliver(&self, room: Option<&str>, except: Option<&str>, frame: &Utf8Bytes) {
        let send = |s: &SocketRef| {
            if except != Some(s.id.as_str()) && s.connected() {
                let _ = s.push(frame.clone());
            }
        };
        match room {
            Some(room) => {
                let rooms = lock(&self.0.rooms);
                if let Some(members) = rooms.get(room) {
                    members.iter().for_each(send);
                }
            }
            None => {
                let all: Vec<SocketRef> = lock(&self.0.sessions).values().cloned().collect();
                all.iter().for_each(send);
            }
        }
    }

    fn disconnect_local(&self, room: Option<&str>) {
        let targets: Vec<SocketRef> = match room {
            Some(room) => lock(&self.0.rooms).get(room).cloned().unwrap_or_default(),
            None => lock(&self.0.sessions).values().cloned().collect(),
        };
        for s in targets {
            let _ = s.disconnect();
        }
    }

    fn leave_local(&self, room: Option<&str>, leave: &str) {
        let targets: Vec<SocketRef> = match room {
            Some(room) => lock(&self.0.rooms).get(room).cloned().unwrap_or_default(),
            None => lock(&self.0.sessions).values().cloned().collect(),
        };
        for s in targets {
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
            } => {
                if let Ok(frame) =
                    Utf8Bytes::try_from(bytes::Bytes::copy_from_slice(frame.as_bytes()))
                {
                    self.deliver(room, except, &frame);
                }
            }
            fanout::Message::Disconnect { room } => self.disconnect_local(room),
            fanout::Message::Leave { room, leave } => self.leave_local(room, leave),
        }
    }

    /// Closes a session's bookkeeping: out of the node's maps and rooms.
    /// Returns whether it was connected (so its disconnect handler runs).
    fn forget(&self, s: &Socket) -> bool {
        lock(&self.0.sessions).remove(&s.sid);
        let mut rooms = lock(&self.0.rooms);
        let mut c = s.conn();
        c.finished = true;
        if c.closing.is_none() {
            c.closing = Some(DisconnectReason::TransportClose);
        }
        let mine = std::mem::take(&mut c.rooms);
        let connected = c.connected;
        c.head = None;
        drop(c);
        for room in mine {
            remove_from_room(&mut rooms, &room, &s.sid);
        }
        connected
    }
}

/// An event or a disconnect for many sockets.
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

    pub async fn emit<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<(), EmitError> {
        let frame = packet::event_frame(event, data).map_err(EmitError::Serialize)?;
        let except = self.except.as_ref().map(Sid::as_str);
        if let (false, Some((fanout, node))) = (self.local, self.io.0.fanout.get()) {
            let message = fanout::encode(
                node,
                &fanout::Message::Emit {
                    room: self.room.as_deref(),
                    except,
                    frame: &frame,
                },
            );
            let frame = Utf8Bytes::from(frame);
            self.io.deliver(self.room.as_deref(), except, &frame);
            fanout.publish(message).await;
        } else {
            self.io
                .deliver(self.room.as_deref(), except, &Utf8Bytes::from(frame));
        }
        Ok(())
    }

    pub async fn disconnect(&self) -> Result<(), EmitError> {
        self.io.disconnect_local(self.room.as_deref());
        if let (false, Some((fanout, node))) = (self.local, self.io.0.fanout.get()) {
            let message = fanout::encode(
                node,
                &fanout::Message::Disconnect {
                    room: self.room.as_deref(),
                },
            );
            fanout.publish(message).await;
        }
        Ok(())
    }

    /// Every socket in the room, on every node, leaves `room`.
    pub async fn leave(&self, room: impl AsRef<str>) -> Result<(), EmitError> {
        let leave = room.as_ref();
        self.io.leave_local(self.room.as_deref(), leave);
        if let (false, Some((fanout, node))) = (self.local, self.io.0.fanout.get()) {
            let message = fanout::encode(
                node,
                &fanout::Message::Leave {
                    room: self.room.as_deref(),
                    leave,
                },
            );
            fanout.publish(message).await;
        }
        Ok(())
    }

    /// This node's sockets in the room.
    pub fn sockets(&self) -> Vec<SocketRef> {
        match &self.room {
            Some(room) => lock(&self.io.0.rooms)
                .get(room.as_str())
                .cloned()
                .unwrap_or_default(),
            None => self.io.sockets(),
        }
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
