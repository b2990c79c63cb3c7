//! The thin driver of the metrics: reads what lives elsewhere (presence,
//! the queue, the TURN relay, /proc) into a scrape, samples the console's
//! figures every second and, in a cluster, publishes this node's snapshot
//! in Redis where any node's `GET /admin/metrics` reads it.

use std::{sync::atomic::Ordering, time::Duration};

use redis::AsyncCommands;

use super::{
    Sampled,
    console::{NodeSnapshot, Tick},
    process,
};
use crate::AppState;

/// How often the console samples.
pub const CONSOLE_EVERY: Duration = Duration::from_secs(1);
/// A node's snapshot outlives a few missed samples, no more.
const SNAPSHOT_TTL_MS: u64 = 5_000;

fn snapshot_key(node: &str) -> String {
    format!("tandem:console:{node}")
}

/// The scrape-time values.
pub async fn gather(state: &AppState) -> Sampled {
    let census = state.node.census.get().map(|f| f()).unwrap_or_default();
    let counts = state.call.presence.counts().await.ok();
    Sampled {
        websocket: census.websocket,
        polling: census.polling,
        users_online: counts.map(|c| c.online_users as u64),
        waiting: state.call.matcher.waiting().await.ok(),
        chats_active: state.call.rooms.room_count().await.ok().map(|n| n as u64),
        hash_queue: crate::auth::password::queued() as u64,
        turn: state.turn.metrics(),
        redis_up: redis_up(state),
        process: process::read(),
    }
}

fn redis_up(state: &AppState) -> Option<bool> {
    state
        .node
        .cluster
        .as_ref()
        .map(|_| state.node.redis_up.load(Ordering::Relaxed))
}

/// This node's snapshot as of the last sample.
pub fn local_snapshot(state: &AppState) -> NodeSnapshot {
    state
        .console
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .snapshot(
            &state.node.id,
            state.node.started_at.elapsed().as_secs(),
            process::rss_bytes().unwrap_or(0),
            redis_up(state),
        )
}

/// Every node's snapshot: this one's, and in a cluster the other live
/// nodes' from Redis.
pub async fn snapshots(state: &AppState) -> Vec<NodeSnapshot> {
    let mine = local_snapshot(state);
    let Some(cluster) = &state.node.cluster else {
        return vec![mine];
    };
    let others = match cluster.presence.other_live_nodes().await {
        Ok(nodes) => nodes,
        Err(e) => {
            tracing::warn!(error = %e, "console: live nodes unknown");
            return vec![mine];
        }
    };
    let mut all = vec![mine];
    if others.is_empty() {
        return all;
    }
    let keys: Vec<String> = others.iter().map(|n| snapshot_key(n)).collect();
    let mut conn = cluster.conn.clone();
    match conn.mget::<_, Vec<Option<String>>>(&keys).await {
        Ok(found) => all.extend(
            found
                .into_iter()
                .flatten()
                .filter_map(|json| serde_json::from_str::<NodeSnapshot>(&json).ok()),
        ),
        Err(e) => tracing::warn!(error = %e, "console: snapshots unreadable"),
    }
    all
}

/// Samples the console's figures every second (and publishes them when
/// clustered) until aborted.
pub async fn run_console(state: AppState) {
    let mut every = tokio::time::interval(CONSOLE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let counts = state.call.presence.counts().await.ok();
        let chats = state.call.rooms.room_count().await.ok();
        let m = &state.metrics;
        let turn = state.turn.metrics().unwrap_or_default();
        let tick = Tick {
            now_ms: chrono::Utc::now().timestamp_millis(),
            connections: m.connections.get(),
            messages: m.messages.total(),
            matches: m.matches.get(),
            reports: m.reports.get(),
            refused: m.refused_total(),
            turn_bytes: turn.bytes_to_peers + turn.bytes_to_clients,
            sockets: state.node.local_sockets.load(Ordering::Relaxed) as u64,
            users_online: counts.map_or(0, |c| c.online_users as u64),
            chats_active: chats.map_or(0, |n| n as u64),
        };
        state
            .console
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .tick(tick);
        if let Some(cluster) = &state.node.cluster {
            let json = serde_json::to_string(&local_snapshot(&state)).unwrap_or_default();
            let mut conn = cluster.conn.clone();
            let set: redis::RedisResult<()> = conn
                .pset_ex(snapshot_key(&state.node.id), json, SNAPSHOT_TTL_MS)
                .await;
            if let Err(e) = set {
                tracing::debug!(error = %e, "console snapshot not published");
            }
        }
    }
}
