//! The matching queue of a cluster: one node at a time holds a lease in
//! Redis and runs the single node's [`MatchQueue`] for every node. There is
//! no second copy of the matching rules.
//!
//! - A node asks by appending a request (join or leave) to a Redis stream
//!   and waits for the answer on its own pub/sub channel.
//! - The holder reads the stream in batches, applies each request to its
//!   queue (`Desk`: plain data, unit-tested), pairs whoever waited past the
//!   fallback when that deadline comes, and commits the batch in one
//!   MULTI/EXEC under WATCH of the lease: the tickets hash, the stream
//!   cursor, the lease's renewal and the answers go together or not at all.
//!   Pairings from the fallback start on the holder (any node can start a
//!   chat for users on any node).
//! - The lease (`SET NX PX`) lapses [`LEASE_TTL`] after its holder's last
//!   batch; another node then takes it, rebuilds the queue from the tickets
//!   hash and goes on from the committed cursor, so a request is applied
//!   exactly once. Requests wait in the stream meanwhile; one not answered
//!   by its deadline is skipped, and its sender gets `MatchError`.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use redis::{
    AsyncCommands,
    aio::{ConnectionManager, MultiplexedConnection},
    streams::{StreamReadOptions, StreamReadReply},
};
use serde::{Deserialize, Serialize};
use tokio::{sync::oneshot, task::JoinHandle, time::Instant};

use crate::matching::{Joined, MatchError, MatchQueue, Matcher, Mode, Pairing, Ticket, Waiting};

use super::{driver::ManagedDriver, now_ms};

const LEASE: &str = "tandem:match:lease";
const REQUESTS: &str = "tandem:match:requests";
const CURSOR: &str = "tandem:match:cursor";
const TICKETS: &str = "tandem:tickets";

/// How long the lease outlives its holder's last batch.
pub const LEASE_TTL: Duration = Duration::from_secs(3);
/// The holder's longest wait for requests: it renews the lease at least
/// this often. Also how often a node without the lease tries to take it.
const TICK: Duration = Duration::from_secs(1);
/// A request not applied within this is skipped; its sender waits a little
/// longer for the answer before giving up.
const REQUEST_TTL: Duration = Duration::from_secs(5);
const ANSWER_WAIT: Duration = Duration::from_secs(6);
/// Requests applied per batch.
const BATCH: usize = 1024;
/// The stream keeps about this many requests (applied ones are history).
const STREAM_MAX: usize = 50_000;

fn answers_channel(node: &str) -> String {
    format!("tandem:match:answers:{node}")
}

/// A ticket as it travels and as the tickets hash keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Wire {
    id: String,
    username: String,
    interests: Vec<String>,
    language: Option<String>,
    mode: Option<Mode>,
    avoid: Vec<String>,
    #[serde(default = "full_score")]
    score: u8,
    #[serde(default)]
    restricted: bool,
}

fn full_score() -> u8 {
    100
}

impl From<&Ticket> for Wire {
    fn from(t: &Ticket) -> Self {
        let mut avoid: Vec<String> = t.avoid.iter().cloned().collect();
        avoid.sort();
        Wire {
            id: t.user_id.clone(),
            username: t.username.clone(),
            interests: t.interests.clone(),
            language: t.language.clone(),
            mode: t.mode,
            avoid,
            score: t.standing.score,
            restricted: t.standing.restricted,
        }
    }
}

impl From<Wire> for Ticket {
    fn from(w: Wire) -> Self {
        Ticket {
            user_id: w.id,
            username: w.username,
            interests: w.interests,
            language: w.language,
            mode: w.mode,
            avoid: w.avoid.into_iter().collect(),
            standing: crate::matching::TicketStanding {
                score: w.score,
                restricted: w.restricted,
            },
        }
    }
}

/// A waiting ticket in the tickets hash: when it joined (ms since the
/// epoch), so a new holder restores its fallback deadline.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    ticket: Wire,
    since: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Request {
    node: String,
    req: u64,
    /// ms since the epoch after which the request is skipped.
    expires: u64,
    #[serde(flatten)]
    op: Op,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Op {
    Join { ticket: Wire },
    Leave { user: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Answer {
    req: u64,
    #[serde(flatten)]
    outcome: Outcome,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "outcome", rename_all = "lowercase")]
enum Outcome {
    Waiting,
    Matched {
        partner: Wire,
        /// How long the partner waited, in milliseconds.
        #[serde(default)]
        waited_ms: u64,
    },
    Left {
        removed: bool,
    },
}

/// A change to the tickets hash.
#[derive(Debug, Clone, PartialEq)]
enum Write {
    Put(String, String),
    Del(String),
}

/// What one batch produced: to be committed together.
#[derive(Debug, Default)]
struct Batch {
    writes: Vec<Write>,
    /// Answers, by the node that asked.
    answers: HashMap<String, Vec<Answer>>,
    /// Fallback pairings, started by the holder once committed.
    pairings: Vec<Pairing>,
}

/// The holder's queue: requests in, writes and answers out. No I/O, no
/// clock: callers pass `now` (and the wall clock in ms, for the hash).
struct Desk {
    queue: MatchQueue,
}

impl Desk {
    fn new(fallback: Duration) -> Self {
        Desk {
            queue: MatchQueue::new(fallback),
        }
    }

    /// Rebuilds the queue from the tickets hash, oldest first.
    fn restore(&mut self, stored: Vec<Stored>, now: Instant, now_ms: u64) {
        let mut stored = stored;
        stored.sort_by_key(|s| s.since);
        for s in stored {
            let waited = Duration::from_millis(now_ms.saturating_sub(s.since));
            let since = now.checked_sub(waited).unwrap_or(now);
            self.queue.restore(s.ticket.into(), since);
        }
    }

    fn apply(&mut self, req: Request, now: Instant, now_ms: u64, batch: &mut Batch) {
        if req.expires < now_ms {
            return;
        }
        let outcome = match req.op {
            Op::Join { ticket } => {
                let id = ticket.id.clone();
                match self.queue.join(ticket.clone().into(), now) {
                    Joined::Waiting => {
                        let stored = Stored {
                            ticket,
                            since: now_ms,
                        };
                        let json = serde_json::to_string(&stored).unwrap_or_default();
                        batch.writes.push(Write::Put(id, json));
                        Outcome::Waiting
                    }
                    Joined::Matched(p) => {
                        batch.writes.push(Write::Del(id));
                        batch.writes.push(Write::Del(p.caller.user_id.clone()));
                        Outcome::Matched {
                            partner: Wire::from(&p.caller),
                            waited_ms: p.waited.as_millis() as u64,
                        }
                    }
                }
            }
            Op::Leave { user } => {
                let removed = self.queue.leave(&user);
                if removed {
                    batch.writes.push(Write::Del(user));
                }
                Outcome::Left { removed }
            }
        };
        batch.answers.entry(req.node).or_default().push(Answer {
            req: req.req,
            outcome,
        });
    }

    /// Pairs whoever waited past the fallback.
    fn poll(&mut self, now: Instant, batch: &mut Batch) {
        for p in self.queue.poll(now) {
            batch.writes.push(Write::Del(p.caller.user_id.clone()));
            batch.writes.push(Write::Del(p.callee.user_id.clone()));
            batch.pairings.push(p);
        }
    }

    fn next_wakeup(&self) -> Option<Instant> {
        self.queue.next_wakeup()
    }
}

fn err(e: impl std::fmt::Display) -> MatchError {
    MatchError(e.to_string())
}

/// What the node's tasks and its callers share.
struct Inner {
    client: redis::Client,
    conn: ConnectionManager,
    node: String,
    fallback: Duration,
    next_req: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<Outcome>>>,
    /// Fallback pairings this node (as holder) committed, not yet started.
    pairings: Mutex<Vec<Pairing>>,
    joins: tokio::sync::Notify,
}

pub struct RedisMatcher {
    inner: Arc<Inner>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for RedisMatcher {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl RedisMatcher {
    /// Subscribes to this node's answers, then starts competing for the
    /// lease.
    pub async fn start(
        client: redis::Client,
        conn: ConnectionManager,
        node: String,
        fallback: Duration,
    ) -> Result<Self, MatchError> {
        let inner = Arc::new(Inner {
            client: client.clone(),
            conn,
            node,
            fallback,
            next_req: AtomicU64::new(1),
            pending: Default::default(),
            pairings: Default::default(),
            joins: tokio::sync::Notify::new(),
        });
        let driver = ManagedDriver::new(client).await.map_err(err)?;
        let answers = driver
            .subscribe(answers_channel(&inner.node), 4096)
            .await
            .map_err(err)?;
        let listener = {
            let inner = inner.clone();
            tokio::spawn(async move {
                // The driver lives as long as its subscription is read.
                let _driver = driver;
                let mut answers = answers;
                while let Some((_, data)) = answers.recv().await {
                    inner.deliver(&data);
                }
            })
        };
        let holder = tokio::spawn(compete(inner.clone()));
        Ok(RedisMatcher {
            inner,
            tasks: vec![listener, holder],
        })
    }
}

impl Inner {
    fn deliver(&self, data: &[u8]) {
        let Ok(answers) = serde_json::from_slice::<Vec<Answer>>(data) else {
            tracing::warn!("unreadable match answers");
            return;
        };
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for a in answers {
            if let Some(tx) = pending.remove(&a.req) {
                let _ = tx.send(a.outcome);
            }
        }
    }

    /// Sends a request through the stream and waits for its answer.
    async fn ask(&self, op: Op) -> Result<Outcome, MatchError> {
        let req = self.next_req.fetch_add(1, Ordering::Relaxed);
        let request = Request {
            node: self.node.clone(),
            req,
            expires: now_ms() + REQUEST_TTL.as_millis() as u64,
            op,
        };
        let json = serde_json::to_string(&request).map_err(err)?;
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(req, tx);
        let forget = || {
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&req);
        };
        let sent: Result<String, _> = self
            .conn
            .clone()
            .xadd_maxlen(
                REQUESTS,
                redis::streams::StreamMaxlen::Approx(STREAM_MAX),
                "*",
                &[("r", json)],
            )
            .await;
        if let Err(e) = sent {
            forget();
            return Err(err(e));
        }
        match tokio::time::timeout(ANSWER_WAIT, rx).await {
            Ok(Ok(outcome)) => Ok(outcome),
            _ => {
                forget();
                Err(MatchError("no answer from the queue holder".into()))
            }
        }
    }
}

/// Takes the lease whenever it is free and holds it for as long as it can.
async fn compete(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let taken: Result<Option<String>, _> = redis::cmd("SET")
            .arg(LEASE)
            .arg(&inner.node)
            .arg("NX")
            .arg("PX")
            .arg(LEASE_TTL.as_millis() as u64)
            .query_async(&mut inner.conn.clone())
            .await;
        if !matches!(taken, Ok(Some(_))) {
            continue;
        }
        tracing::info!(node = %inner.node, "holding the match queue");
        match hold(&inner).await {
            Ok(()) => tracing::warn!("the match queue lease went to another node"),
            Err(e) => tracing::warn!(error = %e, "lost the match queue"),
        }
    }
}

/// Runs the queue until the lease is lost (Ok) or Redis fails (Err).
async fn hold(inner: &Inner) -> Result<(), MatchError> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(TICK + Duration::from_secs(2)));
    let mut conn = inner
        .client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(err)?;
    let (cursor, stored): (Option<String>, HashMap<String, String>) = redis::pipe()
        .get(CURSOR)
        .hgetall(TICKETS)
        .query_async(&mut conn)
        .await
        .map_err(err)?;
    let mut cursor = cursor.unwrap_or_else(|| "0-0".into());
    let mut desk = Desk::new(inner.fallback);
    let stored = stored
        .into_values()
        .filter_map(|raw| serde_json::from_str::<Stored>(&raw).ok())
        .collect();
    desk.restore(stored, Instant::now(), now_ms());
    loop {
        let wait = match desk.next_wakeup() {
            Some(at) => at.saturating_duration_since(Instant::now()).min(TICK),
            None => TICK,
        };
        let mut opts = StreamReadOptions::default().count(BATCH);
        if !wait.is_zero() {
            opts = opts.block(wait.as_millis().max(1) as usize);
        }
        let read: Option<StreamReadReply> = conn
            .xread_options(&[REQUESTS], &[&cursor], &opts)
            .await
            .map_err(err)?;
        let (now, wall) = (Instant::now(), now_ms());
        let mut batch = Batch::default();
        let mut last = None;
        for entry in read.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
            if let Some(req) = entry
                .get::<String>("r")
                .and_then(|r| serde_json::from_str::<Request>(&r).ok())
            {
                desk.apply(req, now, wall, &mut batch);
            }
            last = Some(entry.id);
        }
        desk.poll(now, &mut batch);
        if let Some(id) = last {
            cursor = id;
        }
        if !commit(&mut conn, inner, &cursor, &batch).await? {
            return Ok(());
        }
        if !batch.pairings.is_empty() {
            inner
                .pairings
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .append(&mut batch.pairings);
            inner.joins.notify_one();
        }
    }
}

/// Commits a batch if this node still holds the lease; false if it does not.
async fn commit(
    conn: &mut MultiplexedConnection,
    inner: &Inner,
    cursor: &str,
    batch: &Batch,
) -> Result<bool, MatchError> {
    let (_, holder): ((), Option<String>) = redis::pipe()
        .cmd("WATCH")
        .arg(LEASE)
        .get(LEASE)
        .query_async(conn)
        .await
        .map_err(err)?;
    if holder.as_deref() != Some(inner.node.as_str()) {
        let _: () = redis::cmd("UNWATCH").query_async(conn).await.map_err(err)?;
        return Ok(false);
    }
    let mut pipe = redis::pipe();
    pipe.atomic();
    for w in &batch.writes {
        match w {
            Write::Put(id, json) => pipe.hset(TICKETS, id, json).ignore(),
            Write::Del(id) => pipe.hdel(TICKETS, id).ignore(),
        };
    }
    pipe.set(CURSOR, cursor)
        .ignore()
        .pexpire(LEASE, LEASE_TTL.as_millis() as i64)
        .ignore();
    for (node, answers) in &batch.answers {
        let json = serde_json::to_vec(answers).map_err(err)?;
        pipe.publish(answers_channel(node), json).ignore();
    }
    // EXEC answers nil when the lease changed hands (or lapsed).
    let done: Option<redis::Value> = pipe.query_async(conn).await.map_err(err)?;
    Ok(done.is_some())
}

#[async_trait]
impl Matcher for RedisMatcher {
    async fn join(&self, ticket: Ticket) -> Result<Joined, MatchError> {
        let wire = Wire::from(&ticket);
        match self.inner.ask(Op::Join { ticket: wire }).await? {
            Outcome::Waiting => Ok(Joined::Waiting),
            Outcome::Matched { partner, waited_ms } => Ok(Joined::Matched(Pairing {
                waited: std::time::Duration::from_millis(waited_ms),
                ..Pairing::new(partner.into(), ticket)
            })),
            Outcome::Left { .. } => Err(MatchError("a join answered as a leave".into())),
        }
    }

    async fn leave(&self, user_id: &str) -> Result<bool, MatchError> {
        match self
            .inner
            .ask(Op::Leave {
                user: user_id.into(),
            })
            .await?
        {
            Outcome::Left { removed } => Ok(removed),
            _ => Err(MatchError("a leave answered as a join".into())),
        }
    }

    async fn poll(&self) -> Result<Vec<Pairing>, MatchError> {
        Ok(std::mem::take(
            &mut *self
                .inner
                .pairings
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        ))
    }

    async fn is_queued(&self, user_id: &str) -> Result<bool, MatchError> {
        self.inner
            .conn
            .clone()
            .hexists(TICKETS, user_id)
            .await
            .map_err(err)
    }

    async fn waiting(&self) -> Result<Waiting, MatchError> {
        let stored: Vec<String> = self.inner.conn.clone().hvals(TICKETS).await.map_err(err)?;
        Ok(Waiting::count(stored.iter().filter_map(|json| {
            serde_json::from_str::<Stored>(json)
                .ok()
                .map(|s| s.ticket.mode)
        })))
    }

    /// Now if the holder left pairings to start; otherwise nothing until
    /// it does (the holder keeps the deadlines).
    async fn next_wakeup(&self) -> Option<Instant> {
        let pending = !self
            .inner
            .pairings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty();
        pending.then(Instant::now)
    }

    fn joins(&self) -> &tokio::sync::Notify {
        &self.inner.joins
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(id: &str, mode: Mode) -> Wire {
        Wire {
            id: id.into(),
            username: id.into(),
            interests: vec![],
            language: None,
            mode: Some(mode),
            avoid: vec![],
            score: 100,
            restricted: false,
        }
    }

    fn join(node: &str, req: u64, ticket: Wire) -> Request {
        Request {
            node: node.into(),
            req,
            expires: u64::MAX,
            op: Op::Join { ticket },
        }
    }

    #[test]
    fn a_batch_answers_each_node_and_writes_the_hash() {
        let mut desk = Desk::new(Duration::from_secs(10));
        let now = Instant::now();
        let mut b = Batch::default();
        desk.apply(join("n1", 1, wire("a", Mode::Text)), now, 1_000, &mut b);
        // b arrives 250 ms later: the answer says how long a waited.
        desk.apply(
            join("n2", 7, wire("b", Mode::Text)),
            now + Duration::from_millis(250),
            1_250,
            &mut b,
        );
        assert_eq!(
            b.answers["n1"],
            [Answer {
                req: 1,
                outcome: Outcome::Waiting
            }]
        );
        assert_eq!(
            b.answers["n2"],
            [Answer {
                req: 7,
                outcome: Outcome::Matched {
                    partner: wire("a", Mode::Text),
                    waited_ms: 250,
                }
            }]
        );
        assert!(matches!(&b.writes[0], Write::Put(id, _) if id == "a"));
        assert_eq!(
            b.writes[1..],
            [Write::Del("b".into()), Write::Del("a".into())]
        );
    }

    #[test]
    fn an_expired_request_is_skipped_unanswered() {
        let mut desk = Desk::new(Duration::from_secs(10));
        let mut b = Batch::default();
        let mut r = join("n1", 1, wire("a", Mode::Text));
        r.expires = 999;
        desk.apply(r, Instant::now(), 1_000, &mut b);
        assert!(b.answers.is_empty() && b.writes.is_empty());
        assert!(desk.next_wakeup().is_none(), "not queued");
    }

    #[test]
    fn a_restored_queue_keeps_its_deadlines() {
        let mut desk = Desk::new(Duration::from_secs(10));
        let now = Instant::now();
        // a waited 8 s of its 10 s fallback before the holder changed.
        let stored = vec![
            Stored {
                ticket: wire("b", Mode::Video),
                since: 95_000,
            },
            Stored {
                ticket: wire("a", Mode::Text),
                since: 92_000,
            },
        ];
        desk.restore(stored, now, 100_000);
        assert_eq!(desk.next_wakeup(), Some(now + Duration::from_secs(2)));
        let mut b = Batch::default();
        desk.poll(now + Duration::from_secs(2), &mut b);
        assert_eq!(b.pairings.len(), 1, "a relaxes and takes b");
        assert_eq!(b.pairings[0].caller.user_id, "a", "a waited longer");
        assert_eq!(b.writes, [Write::Del("a".into()), Write::Del("b".into())]);
    }

    #[test]
    fn leaving_answers_whether_the_user_was_queued() {
        let mut desk = Desk::new(Duration::from_secs(10));
        let mut b = Batch::default();
        let now = Instant::now();
        desk.apply(join("n1", 1, wire("a", Mode::Text)), now, 1, &mut b);
        for req in [2, 3] {
            desk.apply(
                Request {
                    node: "n1".into(),
                    req,
                    expires: u64::MAX,
                    op: Op::Leave { user: "a".into() },
                },
                now,
                1,
                &mut b,
            );
        }
        let outcomes: Vec<_> = b.answers["n1"].iter().map(|a| a.outcome.clone()).collect();
        assert_eq!(
            outcomes,
            [
                Outcome::Waiting,
                Outcome::Left { removed: true },
                Outcome::Left { removed: false }
            ]
        );
    }
}
