//! Several Tandem processes acting as one through Redis: the Socket.IO
//! adapter, presence, the matching queue, chat state and rate-limit
//! counters. Each node announces itself with a heartbeat key; a live node
//! reaps what a dead one left behind.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use redis::{AsyncCommands, aio::ConnectionManager};

pub mod calls;
pub mod driver;
pub mod lounges;
pub mod matcher;
pub mod presence;
pub mod ratelimit;
pub mod recent;
pub mod rooms;

pub const NODES: &str = "tandem:nodes";
pub const STATUS: &str = "tandem:status";
/// How long a node counts as live after its last heartbeat.
pub const NODE_TTL: Duration = Duration::from_secs(6);
/// How often a node beats (and looks for dead nodes to reap).
pub const HEARTBEAT: Duration = Duration::from_secs(2);

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
    pub rooms: Arc<rooms::RedisRooms>,
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

/// Keeps the node alive in Redis. Its user hash is rewritten in full only
/// when `full` is set (Redis was unreachable, or the periodic safety net)
/// or when the hash is missing (Redis lost it): a beat costs O(1), not
/// O(users on the node).
pub async fn beat(cluster: &ClusterServices, node: &str, full: bool) -> Result<(), String> {
    let mut c = cluster.conn.clone();
    let (exists,): (bool,) = redis::pipe()
        .set_ex(alive_key(node), "1", NODE_TTL.as_secs())
        .ignore()
        .sadd(NODES, node)
        .ignore()
        .exists(node_users_key(node))
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

/// Nodes whose heartbeat expired that this node claimed to reap (one live
/// node reaps each dead one), with the users they had.
pub async fn claim_dead_nodes(
    cluster: &ClusterServices,
    me: &str,
) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut c = cluster.conn.clone();
    let nodes: Vec<String> = c.smembers(NODES).await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for node in nodes {
        if node == me {
            continue;
        }
        let alive: bool = c
            .exists(alive_key(&node))
            .await
            .map_err(|e| e.to_string())?;
        if alive {
            continue;
        }
        let claimed = redis::cmd("SET")
            .arg(format!("tandem:reaping:{node}"))
            .arg(me)
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
        out.push((node, users));
    }
    Ok(out)
}

/// The last of a reaped node: its user hash and its membership.
pub async fn forget_node(cluster: &ClusterServices, node: &str) -> Result<(), String> {
    let _: () = redis::pipe()
        .del(node_users_key(node))
        .srem(NODES, node)
        .query_async(&mut cluster.conn.clone())
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Drops a user's cluster-wide status (a reaped user in no chat).
pub async fn clear_status(cluster: &ClusterServices, user: &str) {
    let _: Result<(), _> = cluster.conn.clone().hdel(STATUS, user).await;
}
