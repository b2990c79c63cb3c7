//! One behaviour suite for the call-loop backends — presence, rate limits,
//! chat rooms and matching — run against the single-node implementations
//! and the Redis ones, as `tests/store_suite.rs` does for the stores. The
//! two backends must answer every case alike; a case that only a cluster
//! has (two nodes sharing one Redis) follows the shared ones.
//!
//! Redis: a `redis-server` of its own per test, on a Unix socket in a
//! temporary directory (no port to collide with), found on PATH or at
//! TANDEM_TEST_REDIS_SERVER. Without one the Redis half is skipped with a
//! note, unless TANDEM_TEST_REQUIRE_REDIS is set (scripts/test sets it).

use std::{
    collections::HashSet,
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use chrono::Utc;
use redis::{AsyncCommands, aio::ConnectionManager};
use serde_json::json;
use tandem::{
    chat::{ChatRooms, Hold, Member, MemoryRooms, RoomInfo, RoomsError},
    cluster::{
        NODES, alive_key, matcher::RedisMatcher, presence::RedisPresence,
        ratelimit::RedisRateLimiter, rooms::CHAT_TTL, rooms::RedisRooms,
    },
    matching::{Joined, LocalMatcher, Matcher, Mode, Ticket},
    presence::{MemoryPresence, Presence, SessionUser, Status},
    ratelimit::{MemoryRateLimiter, RateLimiter},
};

/// A private redis-server, stopped on drop.
struct Redis {
    child: Child,
    _dir: tempfile::TempDir,
    url: String,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Redis {
    /// Starts one and waits for its "ready" line (at most 20 s).
    fn start() -> Option<Redis> {
        let bin =
            std::env::var("TANDEM_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("redis.sock");
        let spawned = Command::new(&bin)
            .args([
                "--port",
                "0",
                "--save",
                "",
                "--appendonly",
                "no",
                "--unixsocket",
            ])
            .arg(&sock)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                assert!(
                    std::env::var_os("TANDEM_TEST_REQUIRE_REDIS").is_none(),
                    "TANDEM_TEST_REQUIRE_REDIS is set but {bin} cannot start: {e}"
                );
                eprintln!("note: no {bin} ({e}): the Redis half of the engine suite is skipped");
                return None;
            }
        };
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if line
                    .to_ascii_lowercase()
                    .contains("ready to accept connections")
                {
                    let _ = tx.send(());
                }
            }
        });
        // Owned before waiting: a timeout panics, and Drop still stops it.
        let redis = Redis {
            child,
            // RESP3, as a node connects: answers ride on pub/sub pushes.
            url: format!("redis+unix://{}?protocol=resp3", sock.display()),
            _dir: dir,
        };
        rx.recv_timeout(Duration::from_secs(20))
            .expect("redis-server did not become ready in 20 s");
        Some(redis)
    }

    fn client(&self) -> redis::Client {
        redis::Client::open(self.url.as_str()).unwrap()
    }

    async fn conn(&self) -> ConnectionManager {
        ConnectionManager::new(self.client()).await.unwrap()
    }

    async fn matcher(&self, node: &str, fallback: Duration) -> RedisMatcher {
        RedisMatcher::start(self.client(), self.conn().await, node.into(), fallback)
            .await
            .unwrap()
    }

    /// What a node's heartbeat does: announce it as live.
    async fn announce(&self, node: &str) {
        let mut c = self.conn().await;
        let _: () = c.set_ex(alive_key(node), "1", 3600).await.unwrap();
        let _: () = c.sadd(NODES, node).await.unwrap();
    }
}

fn user(id: &str) -> SessionUser {
    SessionUser {
        id: id.into(),
        username: format!("n{id}"),
        is_guest: false,
    }
}

fn ticket(id: &str, mode: Mode, interests: &[&str], avoid: &[&str]) -> Ticket {
    Ticket {
        user_id: id.into(),
        username: id.into(),
        interests: interests.iter().map(|s| s.to_string()).collect(),
        language: None,
        mode: Some(mode),
        avoid: avoid.iter().map(|s| s.to_string()).collect::<HashSet<_>>(),
        standing: Default::default(),
    }
}

fn room(id: &str, a: &str, b: &str) -> RoomInfo {
    RoomInfo {
        id: id.into(),
        caller: Member {
            id: a.into(),
            username: a.into(),
        },
        callee: Member {
            id: b.into(),
            username: b.into(),
        },
        common_interests: vec![],
        created_at: Utc::now(),
    }
}

// ---- the shared cases ----

async fn presence_behaviour(p: &dyn Presence) {
    assert!(p.connect(&user("a"), "s1").await.unwrap(), "first socket");
    assert!(!p.connect(&user("a"), "s2").await.unwrap(), "second socket");
    assert!(p.connect(&user("b"), "s3").await.unwrap());
    p.set_status("b", Status::InChat).await.unwrap();
    let c = p.counts().await.unwrap();
    assert_eq!(
        (
            c.online_users,
            c.available_users,
            c.in_chat_users,
            c.sockets
        ),
        (2, 1, 1, 3)
    );
    let a = p.get("a").await.unwrap().unwrap();
    assert_eq!(
        (a.username.as_str(), a.sockets, a.status),
        ("na", 2, Status::Idle)
    );
    let available = p.list(true, 10).await.unwrap();
    assert_eq!(available.len(), 1);
    assert_eq!(available[0].id, "a");
    assert_eq!(p.list(false, 1).await.unwrap().len(), 1, "the limit holds");
    assert!(!p.disconnect("a", "s1").await.unwrap(), "one socket left");
    assert!(p.disconnect("a", "s2").await.unwrap(), "the last one");
    assert!(p.get("a").await.unwrap().is_none());
    assert!(!p.disconnect("zz", "s9").await.unwrap(), "unknown user");
    assert_eq!(p.counts().await.unwrap().online_users, 1);
}

async fn rate_limit_behaviour(l: &dyn RateLimiter) {
    let w = Duration::from_secs(60);
    for i in 0..3 {
        let d = l.hit("ip", 3, w).await;
        assert!(d.allowed, "hit {i}");
        assert_eq!((d.limit, d.remaining), (3, 2 - i));
    }
    let d = l.hit("ip", 3, w).await;
    assert!(!d.allowed);
    assert_eq!(d.remaining, 0);
    assert!(
        d.reset_in <= w && d.reset_in > w / 2,
        "reset within the window: {:?}",
        d.reset_in
    );
    assert!(l.hit("other", 3, w).await.allowed, "per key");
}

async fn rooms_behaviour(r: &dyn ChatRooms) {
    let before = r.room_count().await.unwrap();
    r.open(room("r1", "a", "b")).await.unwrap();
    assert_eq!(
        r.open(room("r2", "b", "c")).await,
        Err(RoomsError::Busy("b".into())),
        "a member can be in one chat"
    );
    assert!(
        r.room_of("c").await.unwrap().is_none(),
        "a refused open leaves nothing"
    );
    assert_eq!(r.room_of("a").await.unwrap().unwrap().id, "r1");
    assert_eq!(r.room_of("b").await.unwrap().unwrap().callee.id, "b");
    assert_eq!(r.room_count().await.unwrap(), before + 1);

    // Files.
    r.add_file("r1", "f1").await.unwrap();
    r.add_file("r1", "f2").await.unwrap();
    let mut taken = r.take_files("r1").await.unwrap();
    taken.sort();
    assert_eq!(taken, ["f1", "f2"]);
    assert!(r.take_files("r1").await.unwrap().is_empty());
    r.add_file("r1", "f3").await.unwrap();

    // Delivery, the grace and what is kept meanwhile.
    assert_eq!(
        r.hold_if_away("r1", "b", &|| json!(0)).await.unwrap(),
        Hold::Deliver
    );
    let deadline = Utc::now() + chrono::Duration::seconds(30);
    let t1 = r.mark_away("r1", "b", deadline).await.unwrap().unwrap();
    let next = r.next_grace().await.unwrap().unwrap();
    assert!(
        (next - deadline).num_milliseconds().abs() <= 1,
        "{next} vs {deadline}"
    );
    assert!(
        r.due_graces(deadline - chrono::Duration::seconds(1))
            .await
            .unwrap()
            .is_empty(),
        "not before the deadline"
    );
    assert_eq!(
        r.due_graces(deadline + chrono::Duration::milliseconds(1))
            .await
            .unwrap(),
        vec![("r1".to_string(), "b".to_string(), t1)]
    );
    for i in 0..25 {
        assert_eq!(
            r.hold_if_away("r1", "b", &|| json!(i)).await.unwrap(),
            Hold::Kept
        );
    }
    let kept = r.mark_back("r1", "b").await.unwrap().unwrap();
    assert_eq!(
        kept.len(),
        tandem::chat::RECOVERY_BUFFER,
        "the last ones are kept"
    );
    assert_eq!(kept[0], json!(25 - tandem::chat::RECOVERY_BUFFER));
    assert!(r.mark_back("r1", "b").await.unwrap().is_none(), "back once");
    assert!(r.next_grace().await.unwrap().is_none(), "no grace left");
    assert!(
        r.expire_away("r1", "b", t1).await.unwrap().is_none(),
        "came back in time"
    );
    let t2 = r.mark_away("r1", "b", deadline).await.unwrap().unwrap();
    let t3 = r.mark_away("r1", "b", deadline).await.unwrap().unwrap();
    assert!(
        r.expire_away("r1", "b", t2).await.unwrap().is_none(),
        "a newer drop wins"
    );
    assert!(
        r.mark_away("r1", "zz", deadline).await.unwrap().is_none(),
        "not a member"
    );

    // The grace ends: the room closes with its files; partners are avoided.
    let closed = r.expire_away("r1", "b", t3).await.unwrap().unwrap();
    assert_eq!(closed.info.id, "r1");
    assert_eq!(closed.files, ["f3"]);
    assert!(r.room_of("a").await.unwrap().is_none());
    assert!(r.room_of("b").await.unwrap().is_none());
    assert_eq!(
        r.hold_if_away("r1", "a", &|| json!(0)).await.unwrap(),
        Hold::Gone
    );
    assert!(r.close("r1").await.unwrap().is_none(), "closed once");
    assert!(r.next_grace().await.unwrap().is_none());
    assert_eq!(r.room_count().await.unwrap(), before);
    assert!(r.avoid_set("a").await.unwrap().contains("b"));
    assert!(
        r.avoid_set("b").await.unwrap().is_empty(),
        "b left for good (offline): nothing is kept for them; a's entry keeps them apart"
    );
    r.forget_user("a").await.unwrap();
    assert!(
        r.avoid_set("a").await.unwrap().is_empty(),
        "forgotten when offline"
    );

    // A plain close, and the members are free again.
    r.open(room("r3", "a", "c")).await.unwrap();
    let closed = r.close("r3").await.unwrap().unwrap();
    assert_eq!(
        (closed.info.caller.id.as_str(), closed.files.len()),
        ("a", 0)
    );
    r.open(room("r4", "c", "b")).await.unwrap();
    assert_eq!(r.room_of("b").await.unwrap().unwrap().id, "r4");
}

/// The rules that do not depend on time (the fallback is an hour away;
/// its timing is tested on simulated time in `matching`).
async fn matching_behaviour(m: &dyn Matcher) {
    assert!(matches!(
        m.join(ticket("a", Mode::Text, &["go", "rust"], &[]))
            .await
            .unwrap(),
        Joined::Waiting
    ));
    assert!(
        matches!(
            m.join(ticket("b", Mode::Video, &[], &[])).await.unwrap(),
            Joined::Waiting
        ),
        "another mode waits"
    );
    assert!(
        matches!(
            m.join(ticket("c", Mode::Text, &[], &["a"])).await.unwrap(),
            Joined::Waiting
        ),
        "c avoids a"
    );
    assert!(
        matches!(
            m.join(ticket("d", Mode::Text, &["chess"], &["c"]))
                .await
                .unwrap(),
            Joined::Waiting
        ),
        "no interest shared with a, and d avoids c"
    );
    let waiting = m.waiting().await.unwrap();
    assert_eq!(waiting.total, 4);
    assert_eq!(
        waiting.by_mode.into_iter().collect::<Vec<_>>(),
        [("text".to_string(), 3), ("video".to_string(), 1)],
        "counted by mode"
    );
    assert!(m.is_queued("b").await.unwrap());
    match m
        .join(ticket("e", Mode::Text, &["rust"], &[]))
        .await
        .unwrap()
    {
        Joined::Matched(p) => {
            assert_eq!(p.caller.user_id, "a", "the one who waited is the caller");
            assert_eq!(p.callee.user_id, "e");
            assert_eq!(p.common_interests, ["rust"]);
        }
        Joined::Waiting => panic!("e shares an interest with a"),
    }
    assert!(
        !m.is_queued("a").await.unwrap(),
        "a paired: out of the queue"
    );
    assert!(m.leave("b").await.unwrap());
    assert!(!m.leave("b").await.unwrap(), "left once");
    assert!(!m.is_queued("b").await.unwrap());
    // Joining again replaces the ticket.
    assert!(matches!(
        m.join(ticket("c", Mode::Video, &[], &[])).await.unwrap(),
        Joined::Waiting
    ));
    assert_eq!(m.waiting().await.unwrap().total, 2, "c (again) and d");
    assert!(m.leave("c").await.unwrap() && m.leave("d").await.unwrap());
    assert_eq!(m.waiting().await.unwrap().total, 0);
    assert!(m.poll().await.unwrap().is_empty());
}

const HOUR: Duration = Duration::from_secs(3600);

// ---- single node ----

#[tokio::test]
async fn single_node_presence() {
    presence_behaviour(&MemoryPresence::default()).await;
}

#[tokio::test]
async fn single_node_rate_limits() {
    rate_limit_behaviour(&MemoryRateLimiter::default()).await;
}

#[tokio::test]
async fn single_node_rooms() {
    rooms_behaviour(&MemoryRooms::default()).await;
}

#[tokio::test]
async fn single_node_matching() {
    matching_behaviour(&LocalMatcher::new(HOUR)).await;
}

// ---- Redis ----

#[tokio::test]
async fn redis_presence() {
    let Some(redis) = Redis::start() else { return };
    redis.announce("n1").await;
    let p = RedisPresence::new(redis.conn().await, "n1".into());
    presence_behaviour(&p).await;
}

#[tokio::test]
async fn redis_rate_limits() {
    let Some(redis) = Redis::start() else { return };
    rate_limit_behaviour(&RedisRateLimiter::new(redis.conn().await)).await;
}

#[tokio::test]
async fn redis_rooms() {
    let Some(redis) = Redis::start() else { return };
    rooms_behaviour(&RedisRooms::new(redis.client(), redis.conn().await)).await;
}

/// Every key of a chat expires unless a node refreshes it; a refresh by
/// one member's node covers the other member too (away inside the grace).
#[tokio::test]
async fn redis_chat_keys_expire_unless_refreshed() {
    let Some(redis) = Redis::start() else { return };
    let rooms = RedisRooms::new(redis.client(), redis.conn().await);
    rooms.open(room("r1", "a", "b")).await.unwrap();
    rooms
        .mark_away("r1", "b", Utc::now() + chrono::Duration::seconds(30))
        .await
        .unwrap()
        .unwrap();
    rooms
        .hold_if_away("r1", "b", &|| json!({"event": "chat:message"}))
        .await
        .unwrap();
    rooms.add_file("r1", "f1").await.unwrap();
    let keys = [
        "tandem:room:r1",
        "tandem:userroom:a",
        "tandem:userroom:b",
        "tandem:away:r1:b",
        "tandem:kept:r1:b",
        "tandem:roomfiles:r1",
    ];
    let mut c = redis.conn().await;
    let ttl = CHAT_TTL.as_secs() as i64;
    for k in keys {
        let t: i64 = c.ttl(k).await.unwrap();
        assert!((1..=ttl).contains(&t), "{k} expires (ttl {t})");
        // As if most of the TTL had passed.
        let _: () = c.expire(k, 5).await.unwrap();
    }
    rooms.refresh(&["a".to_string()]).await.unwrap();
    for k in keys {
        let t: i64 = c.ttl(k).await.unwrap();
        assert!(t > 5, "{k} refreshed through a's node (ttl {t})");
    }
    assert_eq!(rooms.room_count().await.unwrap(), 1);
    // A room past its expiry no longer counts and leaves the index.
    let _: () = c.zadd("tandem:rooms", "r1", 1).await.unwrap();
    assert_eq!(rooms.room_count().await.unwrap(), 0);
    rooms.refresh(&[]).await.unwrap();
    let n: usize = c.zcard("tandem:rooms").await.unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn redis_matching() {
    let Some(redis) = Redis::start() else { return };
    redis.announce("n1").await;
    matching_behaviour(&redis.matcher("n1", HOUR).await).await;
}

// ---- what only a cluster has: two nodes on one Redis ----

#[tokio::test]
async fn redis_nodes_share_presence_rooms_limits_and_the_queue() {
    let Some(redis) = Redis::start() else { return };
    redis.announce("n1").await;
    redis.announce("n2").await;
    let (p1, p2) = (
        RedisPresence::new(redis.conn().await, "n1".into()),
        RedisPresence::new(redis.conn().await, "n2".into()),
    );
    p1.connect(&user("a"), "s1").await.unwrap();
    p2.connect(&user("a"), "s2").await.unwrap();
    p2.connect(&user("b"), "s3").await.unwrap();
    let a = p2.get("a").await.unwrap().unwrap();
    assert_eq!(a.sockets, 2, "a's sockets on both nodes");
    assert_eq!(p1.counts().await.unwrap().online_users, 2);
    assert!(p1.online_elsewhere("a").await.unwrap());
    // A node that stops beating no longer counts.
    let mut c = redis.conn().await;
    let _: () = c.del(alive_key("n2")).await.unwrap();
    assert_eq!(p1.counts().await.unwrap().online_users, 1);
    assert_eq!(p1.get("a").await.unwrap().unwrap().sockets, 1);

    let (l1, l2) = (
        RedisRateLimiter::new(redis.conn().await),
        RedisRateLimiter::new(redis.conn().await),
    );
    let w = Duration::from_secs(60);
    assert!(l1.hit("ip", 2, w).await.allowed);
    assert!(l2.hit("ip", 2, w).await.allowed);
    assert!(
        !l1.hit("ip", 2, w).await.allowed,
        "one budget for the cluster"
    );

    let (r1, r2) = (
        RedisRooms::new(redis.client(), redis.conn().await),
        RedisRooms::new(redis.client(), redis.conn().await),
    );
    r1.open(room("r1", "a", "b")).await.unwrap();
    assert_eq!(r2.room_of("b").await.unwrap().unwrap().id, "r1");
    assert!(r2.close("r1").await.unwrap().is_some());
    assert!(
        r1.close("r1").await.unwrap().is_none(),
        "closed once across nodes"
    );

    redis.announce("n2").await;
    let (m1, m2) = (
        redis.matcher("n1", HOUR).await,
        redis.matcher("n2", HOUR).await,
    );
    assert!(matches!(
        m1.join(ticket("x", Mode::Text, &[], &[])).await.unwrap(),
        Joined::Waiting
    ));
    assert!(m2.is_queued("x").await.unwrap());
    match m2.join(ticket("y", Mode::Text, &[], &[])).await.unwrap() {
        Joined::Matched(p) => assert_eq!(
            (p.caller.user_id.as_str(), p.callee.user_id.as_str()),
            ("x", "y")
        ),
        Joined::Waiting => panic!("one queue for the cluster"),
    }
}

/// The fallback deadline is kept by whichever node holds the queue: users
/// of two nodes who disagree on mode are paired once it comes, exactly once.
#[tokio::test]
async fn redis_nodes_pair_at_the_fallback_deadline() {
    let Some(redis) = Redis::start() else { return };
    let fallback = Duration::from_millis(300);
    let nodes = [
        Arc::new(redis.matcher("n1", fallback).await),
        Arc::new(redis.matcher("n2", fallback).await),
    ];
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let drivers: Vec<_> = nodes
        .iter()
        .map(|m| {
            let (m, tx) = (m.clone(), tx.clone());
            tokio::spawn(async move {
                tandem::matching::drive(m.as_ref(), |p| {
                    let _ = tx.send(p);
                    async {}
                })
                .await
            })
        })
        .collect();
    assert!(matches!(
        nodes[0]
            .join(ticket("a", Mode::Text, &[], &[]))
            .await
            .unwrap(),
        Joined::Waiting
    ));
    assert!(matches!(
        nodes[1]
            .join(ticket("b", Mode::Video, &[], &[]))
            .await
            .unwrap(),
        Joined::Waiting
    ));
    let p = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("paired within 10 s")
        .unwrap();
    assert_eq!(
        (p.caller.user_id.as_str(), p.callee.user_id.as_str()),
        ("a", "b")
    );
    assert_eq!(nodes[0].waiting().await.unwrap().total, 0);
    // Nothing else comes: a second pairing would show within a few ticks.
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), rx.recv())
            .await
            .is_err(),
        "paired once"
    );
    for d in drivers {
        d.abort();
    }
}

/// The node holding the queue dies: another takes the lease over, rebuilds
/// the queue from Redis and answers what waited in the stream meanwhile.
#[tokio::test]
async fn redis_queue_survives_its_holder() {
    let Some(redis) = Redis::start() else { return };
    let m1 = redis.matcher("n1", HOUR).await;
    // Answered with only n1 running: n1 holds the queue.
    assert!(matches!(
        m1.join(ticket("x", Mode::Text, &[], &[])).await.unwrap(),
        Joined::Waiting
    ));
    let m2 = redis.matcher("n2", HOUR).await;
    drop(m1); // its tasks stop, as in a crash: the lease just lapses
    assert!(m2.is_queued("x").await.unwrap());
    match m2.join(ticket("y", Mode::Text, &[], &[])).await.unwrap() {
        Joined::Matched(p) => assert_eq!(p.caller.user_id, "x"),
        Joined::Waiting => panic!("x is still in the queue"),
    }
    assert_eq!(m2.waiting().await.unwrap().total, 0);
}

/// Optimistic transactions under contention: many tasks on two nodes race
/// to open overlapping chats and to close them; every user ends up in at
/// most one chat, and each chat closes exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_rooms_hold_their_rules_under_contention() {
    let Some(redis) = Redis::start() else { return };
    let nodes = Arc::new([
        RedisRooms::new(redis.client(), redis.conn().await),
        RedisRooms::new(redis.client(), redis.conn().await),
    ]);
    // Users u0..u9; 40 attempts to open rooms between neighbours.
    let mut tasks = Vec::new();
    for i in 0..40usize {
        let nodes = nodes.clone();
        tasks.push(tokio::spawn(async move {
            let (a, b) = (format!("u{}", i % 10), format!("u{}", (i + 1) % 10));
            nodes[i % 2]
                .open(room(&format!("r{i}"), &a, &b))
                .await
                .is_ok()
        }));
    }
    let mut opened = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        if t.await.unwrap() {
            opened.push(format!("r{i}"));
        }
    }
    assert!(!opened.is_empty());
    let mut members = HashSet::new();
    for id in &opened {
        let r = nodes[0]
            .room_of(&format!("u{}", id[1..].parse::<usize>().unwrap() % 10))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            &r.id, id,
            "the room a user points at is the one opened for them"
        );
        assert!(
            members.insert(r.caller.id.clone()) && members.insert(r.callee.id.clone()),
            "a user in two chats"
        );
    }
    assert_eq!(nodes[1].room_count().await.unwrap(), opened.len());
    // Everyone closes every room at once, from both nodes.
    let mut closes = Vec::new();
    for id in opened.iter().cycle().take(opened.len() * 6) {
        let (nodes, id) = (nodes.clone(), id.clone());
        closes.push(tokio::spawn(async move {
            nodes[id.len() % 2].close(&id).await.unwrap().is_some()
        }));
    }
    let mut closed = 0;
    for c in closes {
        closed += c.await.unwrap() as usize;
    }
    assert_eq!(closed, opened.len(), "each chat closed exactly once");
    assert_eq!(nodes[0].room_count().await.unwrap(), 0);
    for u in 0..10 {
        assert!(nodes[0].room_of(&format!("u{u}")).await.unwrap().is_none());
    }
}
