//! The lounges in Redis: offsets from INCR (atomic for the cluster), one
//! channel every node reads for room events (so every member sees a room's
//! events in the order Redis published them), and each node's members,
//! published every second with a short TTL for the others to read.

use std::collections::BTreeMap;

use async_trait::async_trait;
use redis::{AsyncCommands, aio::ConnectionManager};

use super::{ClusterServices, driver::ManagedDriver};
use crate::lounges::{
    Member,
    bus::{BusError, BusEvent, Sequencer, above_floor},
};

/// The channel of every room event.
pub const CHANNEL: &str = "tandem:lounges";
/// A node's members outlive a few missed seconds, no more.
const MEMBERS_TTL_MS: u64 = 5_000;

fn offset_key(room: &str) -> String {
    format!("tandem:lounge:{room}:offset")
}

fn members_key(node: &str) -> String {
    format!("tandem:lounge-members:{node}")
}

fn err(e: impl std::fmt::Display) -> BusError {
    BusError(e.to_string())
}

pub struct RedisSequencer(pub ConnectionManager);

#[async_trait]
impl Sequencer for RedisSequencer {
    async fn next(&self, room: &str, floor: u64) -> Result<u64, BusError> {
        let mut c = self.0.clone();
        let got: u64 = c.incr(offset_key(room), 1u64).await.map_err(err)?;
        match above_floor(got, floor) {
            None => Ok(got),
            // The counter was lost (Redis restarted empty): catch up with the store.
            Some(by) => c.incr(offset_key(room), by).await.map_err(err),
        }
    }
}

/// Publishes room events for every node.
pub struct RedisFanout(pub ConnectionManager);

#[async_trait]
impl crate::realtime::lounges::Fanout for RedisFanout {
    async fn send(&self, ev: BusEvent) -> Result<(), BusError> {
        let json = serde_json::to_vec(&ev).map_err(err)?;
        let mut c = self.0.clone();
        c.publish::<_, _, ()>(CHANNEL, json).await.map_err(err)
    }
}

/// Reads the channel and hands each event to `on_event` until the
/// subscription ends.
pub async fn listen<F, Fut>(
    client: redis::Client,
    mut on_event: F,
) -> Result<tokio::task::JoinHandle<()>, BusError>
where
    F: FnMut(BusEvent) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let driver = ManagedDriver::new(client).await.map_err(err)?;
    let mut events = driver
        .subscribe(CHANNEL.to_string(), 65_536)
        .await
        .map_err(err)?;
    Ok(tokio::spawn(async move {
        let _driver = driver;
        while let Some((_, data)) = events.recv().await {
            match serde_json::from_slice::<BusEvent>(&data) {
                Ok(ev) => on_event(ev).await,
                Err(e) => tracing::warn!(error = %e, "unreadable lounge event"),
            }
        }
    }))
}

/// Publishes this node's members and returns the other live nodes'.
pub async fn exchange_members(
    cluster: &ClusterServices,
    node: &str,
    mine: &BTreeMap<String, Vec<Member>>,
) -> Result<BTreeMap<String, Vec<Member>>, BusError> {
    let mut c = cluster.conn.clone();
    let json = serde_json::to_string(mine).map_err(err)?;
    c.pset_ex::<_, _, ()>(members_key(node), json, MEMBERS_TTL_MS)
        .await
        .map_err(err)?;
    let others = cluster.presence.other_live_nodes().await.map_err(err)?;
    let mut merged: BTreeMap<String, Vec<Member>> = BTreeMap::new();
    if others.is_empty() {
        return Ok(merged);
    }
    let keys: Vec<String> = others.iter().map(|n| members_key(n)).collect();
    let found: Vec<Option<String>> = c.mget(&keys).await.map_err(err)?;
    for json in found.into_iter().flatten() {
        let Ok(rooms) = serde_json::from_str::<BTreeMap<String, Vec<Member>>>(&json) else {
            continue;
        };
        for (room, members) in rooms {
            let e = merged.entry(room).or_default();
            *e = crate::lounges::merge_members([&*e, &members]);
        }
    }
    Ok(merged)
}
