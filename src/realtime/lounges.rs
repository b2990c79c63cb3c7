//! The lounges' driver: `room:*` events, delivery of the bus's events to
//! this node's sockets, the per-second member counts (`rooms:update`, and
//! in a cluster this node's members published for the others) and the
//! history sweep. The rules it applies are in [`crate::lounges`].

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use crate::sio::{Io, SocketRef};
use async_trait::async_trait;
use chrono::Utc;
use serde_json::{Value, json};

use super::{
    EventError,
    events::{EventResult, clean_text, unavailable},
};
use crate::{
    AppState,
    lounges::{
        self, JoinError, Joined, LATEST_ON_JOIN, MEMBERS_ON_JOIN, Member, Membership, Paced,
        Pacing, Recovery, Room,
        bus::{BusError, BusEvent, LocalSequencer, Sequencer},
    },
    presence::SessionUser,
    protocol::{ServerEvent, server::RoomCount},
    store::{Author, RoomMessage},
};

/// The Socket.IO room of a lounge room.
pub fn channel(room: &str) -> String {
    format!("lounge:{room}")
}

/// Sends a bus event to every member of its room, on every node.
#[async_trait]
pub trait Fanout: Send + Sync + 'static {
    async fn send(&self, ev: BusEvent) -> Result<(), BusError>;
}

/// The lounges' state on this node.
pub struct Lounges {
    pub rooms: Vec<Room>,
    by_id: HashMap<String, usize>,
    pub membership: Mutex<Membership>,
    pacing: Mutex<Pacing>,
    started: Instant,
    seq: Arc<dyn Sequencer>,
    fanout: OnceLock<Arc<dyn Fanout>>,
    /// Serializes each room's offset, store write and delivery on this node.
    order: HashMap<String, tokio::sync::Mutex<()>>,
    /// The highest offset known per room (the floor for a lost counter).
    floors: Mutex<HashMap<String, u64>>,
    /// Other nodes' members per room (clustered), refreshed every second.
    remote: Mutex<BTreeMap<String, Vec<Member>>>,
    last_counts: Mutex<Vec<RoomCount>>,
    pub max_joined: usize,
    pub history_size: usize,
    pub history_ttl: Duration,
}

/// The rooms a socket is in.
#[derive(Default)]
struct SocketRooms(Mutex<HashSet<String>>);

impl Lounges {
    pub fn new(config: &crate::Config, seq: Option<Arc<dyn Sequencer>>) -> Result<Self, String> {
        let rooms = config.rooms().map_err(|e| e.to_string())?;
        let by_id = rooms
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        let order = rooms
            .iter()
            .map(|r| (r.id.clone(), tokio::sync::Mutex::new(())))
            .collect();
        Ok(Lounges {
            rooms,
            by_id,
            membership: Default::default(),
            pacing: Mutex::new(Pacing::new(
                config.room_message_rate,
                config.room_message_burst,
            )),
            started: Instant::now(),
            seq: seq.unwrap_or_else(|| Arc::new(LocalSequencer::default())),
            fanout: OnceLock::new(),
            order,
            floors: Default::default(),
            remote: Default::default(),
            last_counts: Default::default(),
            max_joined: config.room_max_joined,
            history_size: config.room_history_size,
            history_ttl: config.room_history_ttl.0,
        })
    }

    pub fn room(&self, id: &str) -> Option<&Room> {
        self.by_id.get(id).map(|&i| &self.rooms[i])
    }

    pub fn attach(&self, fanout: Arc<dyn Fanout>) {
        let _ = self.fanout.set(fanout);
    }

    pub async fn send(&self, ev: BusEvent) -> Result<(), BusError> {
        match self.fanout.get() {
            Some(f) => f.send(ev).await,
            None => Err(BusError("not started".into())),
        }
    }

    fn members_lock(&self) -> std::sync::MutexGuard<'_, Membership> {
        self.membership.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The room's members on every node (a user once).
    pub fn members(&self, room: &str) -> Vec<Member> {
        let local = self.members_lock().members(room);
        let remote = self.remote.lock().unwrap_or_else(|p| p.into_inner());
        match remote.get(room) {
            Some(others) => lounges::merge_members([&local, others]),
            None => local,
        }
    }

    /// Every room with its member count.
    pub fn counts(&self) -> Vec<RoomCount> {
        self.rooms
            .iter()
            .map(|r| RoomCount {
                id: r.id.clone(),
                members: self.members(&r.id).len(),
            })
            .collect()
    }

    fn seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn floor(&self, room: &str) -> Option<u64> {
        self.floors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(room)
            .copied()
    }

    fn raise_floor(&self, room: &str, offset: u64) {
        let mut f = self.floors.lock().unwrap_or_else(|p| p.into_inner());
        let e = f.entry(room.to_string()).or_insert(0);
        *e = (*e).max(offset);
    }
}

fn not_in_room(room: &str) -> EventError {
    EventError::new("not_in_room", format!("join {room} first"))
}

fn room_not_found(room: &str) -> EventError {
    EventError::new("room_not_found", format!("no room {room}"))
}

/// The room, if it exists and this socket joined it.
pub(crate) fn joined_room(
    s: &SocketRef,
    state: &AppState,
    room_id: &str,
) -> Result<Room, EventError> {
    let room = state
        .lounges
        .room(room_id)
        .ok_or_else(|| room_not_found(room_id))?;
    if !joined_here(s, room_id) {
        return Err(not_in_room(room_id));
    }
    Ok(room.clone())
}

pub(crate) fn joined_here(s: &SocketRef, room: &str) -> bool {
    s.extensions
        .get::<Arc<SocketRooms>>()
        .is_some_and(|r| r.0.lock().unwrap_or_else(|p| p.into_inner()).contains(room))
}

/// The lounge rooms this socket joined.
pub(crate) fn rooms_of_socket(s: &SocketRef) -> Vec<String> {
    s.extensions
        .get::<Arc<SocketRooms>>()
        .map(|r| {
            r.0.lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

fn socket_rooms(s: &SocketRef) -> Arc<SocketRooms> {
    match s.extensions.get::<Arc<SocketRooms>>() {
        Some(r) => r,
        None => {
            let r = Arc::new(SocketRooms::default());
            s.extensions.insert(r.clone());
            r
        }
    }
}

fn author(user: &SessionUser) -> Author {
    Author {
        id: user.id.clone(),
        username: user.username.clone(),
    }
}

impl Lounges {
    /// A room as the room list shows it: `{id, lounge, language, members}`.
    pub fn room_json(&self, room: &Room) -> Value {
        json!({
            "id": room.id,
            "lounge": room.lounge,
            "language": room.language,
            "members": self.members(&room.id).len(),
        })
    }

    /// With its slow mode, as one room is shown.
    pub fn room_detail(&self, room: &Room) -> Value {
        let mut v = self.room_json(room);
        v["slowModeSeconds"] = json!(room.slow_mode.map(|d| d.as_secs_f64()));
        v
    }
}

/// The history cursor for the messages before `messages` (oldest first),
/// if the room keeps any.
fn older_than(messages: &[RoomMessage], oldest_kept: Option<u64>) -> Option<String> {
    let first = messages.first()?;
    (oldest_kept? < first.offset).then(|| lounges::encode_cursor(first.offset))
}

/// Oldest first.
fn chronological(mut newest_first: Vec<RoomMessage>) -> Vec<RoomMessage> {
    newest_first.reverse();
    newest_first
}

pub async fn join(
    s: SocketRef,
    state: AppState,
    user: Arc<SessionUser>,
    room_id: String,
    since: Option<(u64, String)>,
) -> EventResult {
    let l = &state.lounges;
    let room = l
        .room(&room_id)
        .ok_or_else(|| room_not_found(&room_id))?
        .clone();
    let member = Member {
        id: user.id.clone(),
        username: user.username.clone(),
    };
    let already = joined_here(&s, &room.id);
    if !already {
        let joined = l
            .members_lock()
            .join(&room.id, member.clone(), l.max_joined)
            .map_err(|JoinError::TooMany { max }| {
                EventError::new("room_limit", format!("you can be in at most {max} rooms"))
            })?;
        socket_rooms(&s)
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(room.id.clone());
        // Joined before the history is read: nothing falls between the two.
        s.join(channel(&room.id));
        if joined == Joined::First {
            let ev = ServerEvent::RoomJoined {
                room_id: room.id.clone(),
                user: author(&user),
            };
            let _ = s.to(channel(&room.id)).emit(ev.name(), &ev).await;
        }
    }
    let store = &state.accounts.store;
    let st = store.room_state(&room.id).await.map_err(unavailable)?;
    l.raise_floor(&room.id, st.last_offset);
    let latest = || async {
        store
            .room_messages_before(&room.id, None, LATEST_ON_JOIN)
            .await
            .map(chronological)
            .map_err(unavailable)
    };
    let mut members = l.members(&room.id);
    members.truncate(MEMBERS_ON_JOIN);
    let mut ack = json!({
        "room": l.room_detail(&room),
        "members": members,
        "epoch": st.epoch,
        "offset": st.last_offset,
    });
    match since {
        None => {
            let messages = latest().await?;
            ack["nextCursor"] = json!(older_than(&messages, st.oldest));
            ack["messages"] = json!(messages);
        }
        Some((offset, epoch)) => {
            match lounges::recovery(offset, &epoch, &st.epoch, st.oldest, st.last_offset) {
                Recovery::After(after) => {
                    let missed = store
                        .room_messages_after(&room.id, after, l.history_size)
                        .await
                        .map_err(unavailable)?;
                    ack["recovered"] = json!(true);
                    ack["messages"] = json!(missed);
                }
                Recovery::Gap => {
                    let messages = latest().await?;
                    ack["recovered"] = json!(false);
                    ack["nextCursor"] = json!(older_than(&messages, st.oldest));
                    ack["messages"] = json!(messages);
                }
            }
        }
    }
    Ok(ack)
}

pub async fn leave(
    s: SocketRef,
    state: AppState,
    user: Arc<SessionUser>,
    room_id: String,
) -> EventResult {
    joined_room(&s, &state, &room_id)?;
    leave_socket(&s, &state, &user, &room_id).await;
    Ok(json!({ "left": room_id }))
}

/// One socket leaves a room; the room hears of it when it was the user's last.
async fn leave_socket(s: &SocketRef, state: &AppState, user: &SessionUser, room: &str) {
    socket_rooms(s)
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(room);
    s.leave(channel(room));
    let (last, in_none) = {
        let mut m = state.lounges.members_lock();
        let last = m.leave(room, &user.id);
        (last, m.rooms_of(&user.id) == 0)
    };
    if in_none {
        state
            .lounges
            .pacing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .forget(&user.id);
    }
    if last {
        let ev = ServerEvent::RoomLeft {
            room_id: room.to_string(),
            user: author(user),
            removed: false,
        };
        let _ = s.to(channel(room)).emit(ev.name(), &ev).await;
    }
}

/// A socket going away leaves its rooms.
pub async fn disconnected(s: &SocketRef, state: &AppState, user: &SessionUser) {
    let rooms: Vec<String> = match s.extensions.get::<Arc<SocketRooms>>() {
        Some(r) => {
            r.0.lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned()
                .collect()
        }
        None => return,
    };
    for room in rooms {
        leave_socket(s, state, user, &room).await;
    }
}

pub async fn message(
    s: SocketRef,
    state: AppState,
    user: Arc<SessionUser>,
    room_id: String,
    raw: String,
) -> EventResult {
    let l = &state.lounges;
    let room = joined_room(&s, &state, &room_id)?;
    let content = clean_text(&raw)?;
    let paced = l.pacing.lock().unwrap_or_else(|p| p.into_inner()).check(
        &user.id,
        &room.id,
        room.slow_mode,
        l.seconds(),
    );
    if let Err(p) = paced {
        let (code, wait, msg) = match p {
            Paced::RateLimited { retry_after } => {
                ("rate_limited", retry_after, "too many room messages")
            }
            Paced::SlowMode { retry_after } => {
                ("slow_mode", retry_after, "this room is in slow mode")
            }
        };
        let mut e = EventError::new(code, format!("{msg}: wait {wait:.1} s"));
        e.reset_at =
            Some(Utc::now() + chrono::Duration::milliseconds((wait * 1000.0).ceil() as i64));
        return Err(e);
    }
    let content = state
        .safety
        .screen_message(state.accounts.store.as_ref(), &user.id, &content)
        .await
        .map_err(|r| EventError::new(r.code(), r.message()))?;
    let message = publish(&state, &room.id, author(&user), content).await?;
    state.metrics.messages.room.inc();
    Ok(json!({
        "id": message.id,
        "offset": message.offset,
        "timestamp": message.timestamp,
        "content": message.content,
    }))
}

/// Gives the message its offset, keeps it, and sends it to the room: in
/// that order, one message of a room at a time on this node.
async fn publish(
    state: &AppState,
    room: &str,
    from: Author,
    content: String,
) -> Result<RoomMessage, EventError> {
    let l = &state.lounges;
    let store = &state.accounts.store;
    let Some(order) = l.order.get(room) else {
        return Err(room_not_found(room));
    };
    let _turn = order.lock().await;
    let floor = match l.floor(room) {
        Some(f) => f,
        None => {
            let st = store.room_state(room).await.map_err(unavailable)?;
            l.raise_floor(room, st.last_offset);
            st.last_offset
        }
    };
    let offset = l.seq.next(room, floor).await.map_err(unavailable)?;
    let message = RoomMessage {
        room_id: room.to_string(),
        id: lounges::message_id(room, offset),
        offset,
        from,
        content,
        timestamp: Utc::now(),
    };
    store
        .append_room_message(message.clone())
        .await
        .map_err(unavailable)?;
    l.raise_floor(room, offset);
    l.send(BusEvent::Message {
        message: message.clone(),
    })
    .await
    .map_err(unavailable)?;
    // Capped: trimmed every tenth of the cap.
    let every = (l.history_size / 10).max(1) as u64;
    if offset % every == 0 {
        let (store, room, keep) = (store.clone(), room.to_string(), l.history_size);
        let cutoff = Utc::now() - chrono::Duration::from_std(l.history_ttl).unwrap_or_default();
        tokio::spawn(async move {
            if let Err(e) = store.trim_room(&room, keep, cutoff).await {
                tracing::warn!(error = %e, room, "room history trim failed");
            }
        });
    }
    Ok(message)
}

pub async fn typing(
    s: SocketRef,
    state: AppState,
    user: Arc<SessionUser>,
    room_id: String,
    is_typing: bool,
) -> EventResult {
    joined_room(&s, &state, &room_id)?;
    let ev = ServerEvent::RoomTyping {
        room_id: room_id.clone(),
        user: author(&user),
        is_typing,
    };
    let _ = s.to(channel(&room_id)).emit(ev.name(), &ev).await;
    Ok(json!({ "isTyping": is_typing }))
}

/// What this node does with a bus event: its own sockets only (in a
/// cluster every node gets the event).
pub async fn deliver(io: &Io, state: &AppState, ev: BusEvent) {
    match ev {
        BusEvent::Message { message } => {
            let room = channel(&message.room_id);
            let ev = ServerEvent::RoomMessage(message);
            let _ = io.local().to(room).emit(ev.name(), &ev).await;
        }
        BusEvent::Deleted { room, id } => {
            let ev = ServerEvent::RoomMessageDeleted {
                room_id: room.clone(),
                id,
            };
            let _ = io.local().to(channel(&room)).emit(ev.name(), &ev).await;
        }
        BusEvent::Removed { room, user } => {
            let sockets = io.local().to(super::user_room(&user.id)).sockets();
            state.lounges.members_lock().remove(&room, &user.id);
            for s in &sockets {
                if let Some(r) = s.extensions.get::<Arc<SocketRooms>>() {
                    r.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&room);
                }
                s.leave(channel(&room));
            }
            // Every node tells its own members (the user may be on another
            // node), and the user's sockets here.
            let ev = ServerEvent::RoomLeft {
                room_id: room.clone(),
                user: user.clone(),
                removed: true,
            };
            let _ = io.local().to(channel(&room)).emit(ev.name(), &ev).await;
            let _ = io
                .local()
                .to(super::user_room(&user.id))
                .emit(ev.name(), &ev)
                .await;
        }
    }
}

/// A single node delivers to its own sockets at once.
pub struct LocalFanout {
    pub io: Io,
    pub state: std::sync::Weak<crate::Shared>,
}

#[async_trait]
impl Fanout for LocalFanout {
    async fn send(&self, ev: BusEvent) -> Result<(), BusError> {
        if let Some(shared) = self.state.upgrade() {
            deliver(&self.io, &AppState(shared), ev).await;
        }
        Ok(())
    }
}

/// Every second: this node's members published (clustered), the other
/// nodes' read, and `rooms:update` to this node's sockets when a count
/// changed.
pub async fn run_counts(io: Io, state: AppState) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Some(cluster) = &state.node.cluster {
            let mine = state.lounges.members_lock().snapshot();
            match crate::cluster::lounges::exchange_members(cluster, &state.node.id, &mine).await {
                Ok(others) => {
                    *state
                        .lounges
                        .remote
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = others;
                }
                Err(e) => tracing::debug!(error = %e, "lounge members not exchanged"),
            }
        }
        let counts = state.lounges.counts();
        let changed = {
            let mut last = state
                .lounges
                .last_counts
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let changed = *last != counts;
            *last = counts.clone();
            changed
        };
        if changed && !state.lounges.rooms.is_empty() {
            let ev = ServerEvent::RoomsUpdate { rooms: counts };
            let _ = io.local().emit(ev.name(), &ev).await;
        }
    }
}

/// Trims every room's history by age and size, every tenth of the TTL
/// (between 1 s and 1 min).
pub async fn sweep_history(state: AppState) {
    let l = &state.lounges;
    let every = (l.history_ttl / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        let cutoff = Utc::now() - chrono::Duration::from_std(l.history_ttl).unwrap_or_default();
        for room in &l.rooms {
            match state
                .accounts
                .store
                .trim_room(&room.id, l.history_size, cutoff)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::debug!(room = %room.id, removed = n, "trimmed room history"),
                Err(e) => tracing::warn!(error = %e, room = %room.id, "room history trim failed"),
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// The evidence of a report about a room message: it and its 10
/// neighbours (5 before, 5 after), if `target` wrote it and `reporter` is
/// in the room.
pub async fn message_evidence(
    state: &AppState,
    reporter: &str,
    target: &str,
    message_id: &str,
) -> Result<(String, Vec<crate::store::Evidence>), EventError> {
    let not = || {
        EventError::new(
            "not_reportable",
            "you can report a message of a room you are in, by its author",
        )
    };
    let (room, offset) = lounges::parse_message_id(message_id).ok_or_else(not)?;
    if state.lounges.room(room).is_none() || !state.lounges.members_lock().is_member(room, reporter)
    {
        return Err(not());
    }
    let store = &state.accounts.store;
    let after = store
        .room_messages_after(room, offset.saturating_sub(1), 6)
        .await
        .map_err(unavailable)?;
    if after
        .first()
        .is_none_or(|m| m.offset != offset || m.from.id != target)
    {
        return Err(not());
    }
    let before = store
        .room_messages_before(room, Some(offset), 5)
        .await
        .map_err(unavailable)?;
    let evidence = chronological(before)
        .into_iter()
        .chain(after)
        .map(|m| crate::store::Evidence {
            from: m.from.id,
            text: m.content,
            at: m.timestamp,
        })
        .collect();
    Ok((room.to_string(), evidence))
}
