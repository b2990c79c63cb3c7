//! Redis pub/sub on top of redis-rs's `ConnectionManager`: it reconnects
//! by itself and resubscribes to every channel, so a node recovers from a
//! Redis restart without restarting. Carries the Socket.IO fanout
//! ([`IoFanout`]), the matcher's answers, lounge events and group calls.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, RwLock},
};

use redis::{AsyncCommands, FromRedisValue, PushInfo, aio::ConnectionManager};
use tokio::sync::mpsc;

/// A channel's name and one message.
pub type ChanItem = (String, Vec<u8>);

#[derive(Debug)]
pub struct DriverError(redis::RedisError);

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DriverError {}

impl From<redis::RedisError> for DriverError {
    fn from(e: redis::RedisError) -> Self {
        DriverError(e)
    }
}

type Handlers = Arc<RwLock<HashMap<String, mpsc::Sender<ChanItem>>>>;

#[derive(Clone)]
pub struct ManagedDriver {
    conn: ConnectionManager,
    handlers: Handlers,
}

fn route(msg: PushInfo, handlers: &Handlers) {
    if !matches!(
        msg.kind,
        redis::PushKind::Message | redis::PushKind::SMessage
    ) || msg.data.len() < 2
    {
        return;
    }
    let mut it = msg.data.into_iter();
    let (Some(chan), Some(data)) = (it.next(), it.next()) else {
        return;
    };
    let (Ok(chan), Ok(data)) = (
        String::from_redis_value(chan),
        Vec::<u8>::from_redis_value(data),
    ) else {
        return;
    };
    let tx = handlers
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(&chan)
        .cloned();
    if let Some(tx) = tx
        && tx.try_send((chan, data)).is_err()
    {
        tracing::warn!("redis pub/sub buffer full; a cluster message was dropped");
    }
}

impl ManagedDriver {
    pub async fn new(client: redis::Client) -> Result<Self, redis::RedisError> {
        let handlers: Handlers = Arc::new(RwLock::new(HashMap::new()));
        let h = handlers.clone();
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_push_sender(move |msg: PushInfo| {
                route(msg, &h);
                Ok::<(), std::convert::Infallible>(())
            })
            .set_automatic_resubscription();
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(ManagedDriver { conn, handlers })
    }
}

impl ManagedDriver {
    pub async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), DriverError> {
        self.conn
            .clone()
            .publish::<_, _, redis::Value>(chan, val)
            .await?;
        Ok(())
    }

    /// Messages of `chan`, at most `size` waiting (more are dropped with a
    /// warning).
    pub async fn subscribe(
        &self,
        chan: String,
        size: usize,
    ) -> Result<mpsc::Receiver<ChanItem>, DriverError> {
        let (tx, rx) = mpsc::channel(size);
        self.handlers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(chan.clone(), tx);
        self.conn.clone().subscribe(chan.as_str()).await?;
        Ok(rx)
    }

    pub async fn unsubscribe(&self, chan: String) -> Result<(), DriverError> {
        self.handlers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&chan);
        self.conn.clone().unsubscribe(chan).await?;
        Ok(())
    }

    pub async fn num_serv(&self, chan: &str) -> Result<u16, DriverError> {
        let (_, count): (String, u16) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(chan)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(count)
    }
}

/// The channel of every node's Socket.IO broadcasts.
pub const IO_CHANNEL: &str = "tandem-io";

/// Carries this node's broadcasts to the others (see [`crate::sio::fanout`]).
pub struct IoFanout(pub ManagedDriver);

impl crate::sio::Fanout for IoFanout {
    fn publish(&self, message: Vec<u8>) -> crate::sio::BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(e) = self.0.publish(IO_CHANNEL.to_string(), message).await {
                tracing::warn!(error = %e, "a broadcast did not reach the other nodes");
            }
        })
    }
}

/// Joins `io` to the cluster: its broadcasts go to the other nodes, and
/// theirs come to it, until the returned task is aborted.
pub async fn join_io(
    client: redis::Client,
    io: crate::sio::Io,
    node: String,
) -> Result<tokio::task::JoinHandle<()>, DriverError> {
    let driver = ManagedDriver::new(client).await?;
    let mut rx = driver.subscribe(IO_CHANNEL.to_string(), 65_536).await?;
    io.set_fanout(std::sync::Arc::new(IoFanout(driver.clone())), node);
    Ok(tokio::spawn(async move {
        let _driver = driver;
        while let Some((_, data)) = rx.recv().await {
            io.on_remote(&data);
        }
    }))
}
