//! A cluster node's own tasks: the heartbeat (with Redis health notices to
//! clients and the refresh of its users' chats) and the reaper of dead
//! nodes. The Redis side of each is in [`crate::cluster`].

use std::sync::atomic::Ordering;

use crate::sio::Io;
use tokio::task::JoinHandle;

use crate::{
    AppState,
    cluster::{self, HEARTBEAT},
    presence::Presence as _,
    protocol::ServerEvent,
    realtime::calls,
};

/// Every this many heartbeats the node's whole user hash is rewritten, as a
/// safety net: connects and disconnects update it one user at a time.
const FULL_MIRROR_EVERY: u32 = 30;
/// Every this many heartbeats the node refreshes its users' chats (well
/// inside [`cluster::rooms::CHAT_TTL`]).
const REFRESH_CHATS_EVERY: u32 = 10;

pub fn spawn_node_tasks(state: AppState, io: Io) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(heartbeat(state.clone(), io.clone())),
        tokio::spawn(reaper(state, io)),
    ]
}

async fn heartbeat(state: AppState, io: Io) {
    let Some(cluster) = state.node.cluster.as_ref() else {
        return;
    };
    let mut tick = tokio::time::interval(HEARTBEAT);
    let mut beats = 0u32;
    loop {
        tick.tick().await;
        let full =
            !state.node.redis_up.load(Ordering::Relaxed) || beats.is_multiple_of(FULL_MIRROR_EVERY);
        let refresh = beats.is_multiple_of(REFRESH_CHATS_EVERY);
        beats = beats.wrapping_add(1);
        let started = std::time::Instant::now();
        let ok = cluster::beat(cluster, &state.node.id, full).await;
        if ok.is_ok() {
            state.metrics.redis(started.elapsed());
        }
        if ok.is_ok() && refresh {
            refresh_chats(cluster).await;
        }
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

async fn refresh_chats(cluster: &cluster::ClusterServices) {
    let users: Vec<String> = match cluster.presence.local.list(false, usize::MAX).await {
        Ok(users) => users.into_iter().map(|u| u.id).collect(),
        Err(_) => return,
    };
    if let Err(e) = cluster.rooms.refresh(&users).await {
        tracing::warn!(error = %e, "refreshing chats failed");
    }
}

/// Takes over the users of nodes whose heartbeat expired: they leave the
/// queue, and their partners get the usual grace period (then `partner:left`).
async fn reaper(state: AppState, io: Io) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tick.tick().await;
        if let Err(e) = reap(&state, &io).await {
            tracing::debug!(error = %e, "reap failed");
        }
    }
}

async fn reap(state: &AppState, io: &Io) -> Result<(), String> {
    let cluster = state.node.cluster.as_ref().ok_or("not a cluster")?;
    for (node, users) in cluster::claim_dead_nodes(cluster, &state.node.id).await? {
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
                cluster::clear_status(cluster, &user).await;
            }
        }
        cluster::forget_node(cluster, &node).await?;
    }
    Ok(())
}
