//! A pub/sub driver for socketioxide's Redis adapter on top of redis-rs's
//! `ConnectionManager`: it reconnects by itself and resubscribes to every
//! channel, so a node recovers from a Redis restart without restarting.
//! (The stock driver's multiplexed connection stays broken after one.)

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, RwLock},
};

use redis::{AsyncCommands, FromRedisValue, PushInfo, aio::ConnectionManager};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::mpsc;

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

impl Driver for ManagedDriver {
    type Error = DriverError;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), Self::Error> {
        self.conn
            .clone()
            .publish::<_, _, redis::Value>(chan, val)
            .await?;
        Ok(())
    }

    async fn subscribe(
        &self,
        chan: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, Self::Error> {
        let (tx, rx) = mpsc::channel(size);
        self.handlers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(chan.clone(), tx);
        self.conn.clone().subscribe(chan.as_str()).await?;
        Ok(MessageStream::new(rx))
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), Self::Error> {
        self.handlers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&chan);
        self.conn.clone().unsubscribe(chan).await?;
        Ok(())
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, Self::Error> {
        let (_, count): (String, u16) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(chan)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(count)
    }
}
