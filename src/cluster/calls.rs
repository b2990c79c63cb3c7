//! Group calls across a cluster. A call lives on one node (its media server
//! holds every participant's session); Redis records which node
//! (`tandem:call:<id>`) and each room's call (`tandem:call-room:<room>`),
//! with a TTL the host refreshes. A socket on another node reaches the
//! call by sending the operation to the host over the host's channel
//! (`tandem:calls:<node>`) and waiting for the reply on its own.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::{AsyncCommands, aio::ConnectionManager};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::oneshot;

use super::driver::ManagedDriver;

/// How long a call's records live without the host refreshing them.
pub const RECORD_TTL_SECS: u64 = 60;
/// How long a node waits for the host's reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

fn call_key(call: &str) -> String {
    format!("tandem:call:{call}")
}

fn room_key(room: &str) -> String {
    format!("tandem:call-room:{room}")
}

fn channel(node: &str) -> String {
    format!("tandem:calls:{node}")
}

/// An operation's outcome as it crosses nodes: the ack data, or the
/// error's code and message.
pub type Outcome = Result<Value, (String, String)>;

#[derive(Serialize, Deserialize)]
enum Wire {
    Request { id: u64, from: String, op: Value },
    Reply { id: u64, outcome: Outcome },
}

/// This node's side of the call registry and the requests between nodes.
pub struct CallRouter {
    conn: ConnectionManager,
    node: String,
    next: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<Outcome>>>,
}

fn redis_err(e: impl std::fmt::Display) -> (String, String) {
    ("service_unavailable".into(), format!("call registry: {e}"))
}

impl CallRouter {
    pub fn new(conn: ConnectionManager, node: String) -> Self {
        CallRouter {
            conn,
            node,
            next: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// The node hosting `call`, if the call is known.
    pub async fn host_of(&self, call: &str) -> Result<Option<String>, (String, String)> {
        let mut c = self.conn.clone();
        c.get(call_key(call)).await.map_err(redis_err)
    }

    /// The call running in `room`, wherever it is hosted.
    pub async fn call_in_room(&self, room: &str) -> Result<Option<String>, (String, String)> {
        let mut c = self.conn.clone();
        let id: Option<String> = c.get(room_key(room)).await.map_err(redis_err)?;
        let Some(id) = id else { return Ok(None) };
        Ok(self.host_of(&id).await?.map(|_| id))
    }

    /// Records a call this node hosts as `room`'s, unless another node got
    /// there first: then returns that call's id.
    pub async fn claim(&self, room: &str, call: &str) -> Result<Option<String>, (String, String)> {
        let mut c = self.conn.clone();
        let set: bool = redis::cmd("SET")
            .arg(room_key(room))
            .arg(call)
            .arg("NX")
            .arg("EX")
            .arg(RECORD_TTL_SECS)
            .query_async::<Option<String>>(&mut c)
            .await
            .map_err(redis_err)?
            .is_some();
        if !set {
            let winner: Option<String> = c.get(room_key(room)).await.map_err(redis_err)?;
            if winner.as_deref() != Some(call) {
                return Ok(winner);
            }
        }
        c.set_ex::<_, _, ()>(call_key(call), &self.node, RECORD_TTL_SECS)
            .await
            .map_err(redis_err)?;
        Ok(None)
    }

    /// Keeps the records of this node's calls alive.
    pub async fn refresh(&self, calls: &[(String, String)]) -> Result<(), (String, String)> {
        if calls.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (call, room) in calls {
            pipe.set_ex(call_key(call), &self.node, RECORD_TTL_SECS)
                .ignore();
            pipe.set_ex(room_key(room), call, RECORD_TTL_SECS).ignore();
        }
        let mut c = self.conn.clone();
        pipe.query_async::<()>(&mut c).await.map_err(redis_err)
    }

    /// Forgets calls that ended here.
    pub async fn forget(&self, calls: &[(String, String)]) -> Result<(), (String, String)> {
        if calls.is_empty() {
            return Ok(());
        }
        let mut c = self.conn.clone();
        let mut pipe = redis::pipe();
        for (call, room) in calls {
            pipe.del(call_key(call)).ignore();
            // Only if the room still points at this call.
            pipe.cmd("EVAL")
                .arg("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end")
                .arg(1)
                .arg(room_key(room))
                .arg(call)
                .ignore();
        }
        pipe.query_async::<()>(&mut c).await.map_err(redis_err)
    }

    /// Sends `op` to the node hosting the call and waits for its outcome.
    pub async fn request(&self, node: &str, op: Value) -> Outcome {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending_lock().insert(id, tx);
        let wire = Wire::Request {
            id,
            from: self.node.clone(),
            op,
        };
        let sent = self.publish(node, &wire).await;
        let outcome = match sent {
            Err(e) => Err(e),
            Ok(()) => match tokio::time::timeout(REPLY_TIMEOUT, rx).await {
                Ok(Ok(outcome)) => outcome,
                _ => Err((
                    "service_unavailable".into(),
                    "the node hosting the call did not answer".into(),
                )),
            },
        };
        self.pending_lock().remove(&id);
        outcome
    }

    fn pending_lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Outcome>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn publish(&self, node: &str, wire: &Wire) -> Result<(), (String, String)> {
        let json = serde_json::to_vec(wire).map_err(redis_err)?;
        let mut c = self.conn.clone();
        c.publish::<_, _, ()>(channel(node), json)
            .await
            .map_err(redis_err)
    }

    /// Reads this node's channel: requests are run by `execute` and
    /// answered; replies wake their requester.
    pub async fn listen<F, Fut>(
        self: std::sync::Arc<Self>,
        client: redis::Client,
        execute: F,
    ) -> Result<tokio::task::JoinHandle<()>, String>
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Outcome> + Send + 'static,
    {
        let driver = ManagedDriver::new(client)
            .await
            .map_err(|e| e.to_string())?;
        let mut messages = driver
            .subscribe(channel(&self.node), 4096)
            .await
            .map_err(|e| e.to_string())?;
        let execute = std::sync::Arc::new(execute);
        Ok(tokio::spawn(async move {
            let _driver = driver;
            while let Some((_, data)) = messages.recv().await {
                match serde_json::from_slice::<Wire>(&data) {
                    Ok(Wire::Reply { id, outcome }) => {
                        if let Some(tx) = self.pending_lock().remove(&id) {
                            let _ = tx.send(outcome);
                        }
                    }
                    Ok(Wire::Request { id, from, op }) => {
                        let (me, execute) = (self.clone(), execute.clone());
                        tokio::spawn(async move {
                            let outcome = execute(op).await;
                            if let Err(e) = me.publish(&from, &Wire::Reply { id, outcome }).await {
                                tracing::warn!(error = ?e, "call reply not sent");
                            }
                        });
                    }
                    Err(e) => tracing::warn!(error = %e, "unreadable call message"),
                }
            }
        }))
    }
}
