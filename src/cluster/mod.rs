//! Several Tandem processes acting as one through Redis: the Socket.IO
//! adapter, presence, the matching queue, chat state and rate-limit
//! counters. Each node announces itself with a heartbeat key; a live node
//! reaps what a dead one left behind.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use redis::{AsyncCommands, aio::ConnectionManager};
use socketioxide::SocketIo;
use tokio::task::JoinHandle;

use crate::{AppState, protocol::ServerEvent, realtime::calls};

pub mod driver;
pub mod matcher;
pub mod presence;
pub mod ratelimit;
pub mod rooms;

/// The Socket.IO adapter of a cluster node.
pub type IoAdapter =
    socketioxide_redis::CustomRedisAdapter<socketioxide::adapter::Emitter, driver::ManagedDriver>;

pub const NODES: &str = "tandem:nodes";
pub const STATUS: &str = "tandem:status";
/// How long a node counts as live after its last heartbeat.
pub const NODE_TTL: Duration = Duration::from_secs(6);
const HEARTBEAT: Duration = Duration::from_secs(2);

pub fn alive_key(node: &str) -> String {
    format!("tandem:alive:{node}")
}

pub fn node_users_key(node: &str) -> String {
    format!("tandem:node:{node}:users")
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The Redis-backed services of a cluster node.
pub struct ClusterServices {
    pub conn: ConnectionManager,
    pub presence: Arc<presence::RedisPresence>,
}

/// Connects to Redis; the connection reconnects by itself after outages.
pub async fn connect(url: &str) -> Result<(redis::Client, ConnectionManager), String> {
    // The adapter's pub/sub rides on RESP3 push messages.
    let url = if url.contains("protocol=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    };
    let client = redis::Client::open(url.as_str()).map_err(|e| format!("REDIS_URL: {e}"))?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(2));
    let conn = ConnectionManager::new_with_config(client.clone(), config)
        .await
        .map_err(|e| format!("REDIS_URL: cannot reach Redis: {e}"))?;
    Ok((client, conn))
}

/// Heartbeat (with Redis health and client notices) and the reaper.
pub fn spawn_node_tasks(state: AppState, io: SocketIo<IoAdapter>) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(heartbeat(state.clone(), io.clone())),
        tokio::spawn(reaper(state, io)),
    ]
}

/// Every this many heartbeats the node's whole user hash is rewritten, as a
/// safety net: connects and disconnects update it one user at a time.
const FULL_MIRROR_EVERY: u32 = 30;

/// Keeps this node alive in Redis. The node's user hash is rewritten in
/// full only when `full` is set (Redis was unreachable, or the periodic
/// safety net), or when the hash is missing (Redis lost it): a heartbeat
/// costs O(1), not O(users on the node).
async fn beat(state: &AppState, full: bool) -> Result<(), String> {
    let cluster = state.node.cluster.as_ref().ok_or("not a cluster")?;
    let mut c = cluster.conn.clone();
    let (exists,): (bool,) = redis::pipe()
        .set_ex(alive_key(&state.node.id), "1", NODE_TTL.as_secs())
        .ignore()
        .sadd(NODES, &state.node.id)
        .ignore()
        .exists(node_users_key(&state.node.id))
        .query_async(&mut c)
        .await
        .map_err(|e| e.to_string())?;
    if full || !exists {
        cluster
            .presence
            .mirror_all()
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn heartbeat(state: AppState, io: SocketIo<IoAdapter>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    let mut beats = 0u32;
    loop {
        tick.tick().await;
        let full =
            !state.node.redis_up.load(Ordering::Relaxed) || beats.is_multiple_of(FULL_MIRROR_EVERY);
        beats = beats.wrapping_add(1);
        let ok = beat(&state, full).await;
        let was = state.node.redis_up.swap(ok.is_ok(), Ordering::Relaxed);
        match (was, &ok) {
            (true, Err(e)) => {
                tracing::error!(error = %e, "Redis unreachable: matching is unavailable");
                let ev = ServerEvent::ServerDegraded {
                    redis: "down",
                    matching: false,
                };
                let _ = io.local().emit(ev.name(), &ev).await;
            }
            (false, Ok(())) => {
                tracing::info!("Redis is back");
                let ev = ServerEvent::ServerRecovered {
                    redis: "up",
                    matching: true,
                };
                let _ = io.local().emit(ev.name(), &ev).await;
            }
            _ => {}
        }
    }
}

/// Takes over the users of nodes whose heartbeat expired: they leave the
/// queue, and their partners get the usual grace period (then `partner:left`).
async fn reaper(state: AppState, io: SocketIo<IoAdapter>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tick.tick().await;
        if let Err(e) = reap(&state, &io).await {
            tracing::debug!(error = %e, "reap failed");
        }
    }
}

async fn reap(state: &AppState, io: &SocketIo<IoAdapter>) -> Result<(), String> {
    let cluster = state.node.cluster.as_ref().ok_or("not a cluster")?;
    let mut c = cluster.conn.clone();
    let nodes: Vec<String> = c.smembers(NODES).await.map_err(|e| e.to_string())?;
    for node in nodes {
        if node == state.node.id {
            continue;
        }
        let alive: bool = c
            .exists(alive_key(&node))
            .await
            .map_err(|e| e.to_string())?;
        if alive {
            continue;
        }
        // One live node reaps each dead one.
        let claimed: bool = redis::cmd("SET")
            .arg(format!("tandem:reaping:{node}"))
            .arg(&state.node.id)
            .arg("NX")
            .arg("EX")
            .arg(60)
            .query_async::<Option<String>>(&mut c)
            .await
            .map_err(|e| e.to_string())?
            .is_some();
        if !claimed {
            continue;
        }
        let users: Vec<String> = c
            .hkeys(node_users_key(&node))
            .await
            .map_err(|e| e.to_string())?;
        tracing::warn!(%node, users = users.len(), "node is gone; taking over its users");
        for user in users {
            if cluster
                .presence
                .online_elsewhere(&user)
                .await
                .unwrap_or(true)
            {
                continue;
            }
            let _ = state.call.matcher.leave(&user).await;
            if let Ok(Some(room)) = state.call.rooms.room_of(&user).await {
                calls::step_away(io, state, &room.id, &user).await;
            } else {
                let _: Result<(), _> = c.hdel(STATUS, &user).await;
            }
        }
        let _: () = redis::pipe()
            .del(node_users_key(&node))
            .srem(NODES, &node)
            .query_async(&mut c)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
