//! tandem-bench: load for a Socket.IO chat server (Tandem or the Node
//! baseline under bench/), speaking the protocol over WebSocket itself.
//! The server is measured from its own process (/proc/PID), not from here.
//!
//!   tandem-bench connections --url URL --jwt-secret S --server-pid PID --connections 19500
//!   tandem-bench relay       --url URL --jwt-secret S --server-pid PID --pairs 500 --duration 10s
//!   tandem-bench match-storm --url URL --jwt-secret S --server-pid PID --users 10000
//!   tandem-bench login-storm --url URL --jwt-secret S --server-pid PID --pairs 100 --rate 50
//!   tandem-bench upload      --url URL --jwt-secret S --server-pid PID --uploads 8
//!   tandem-bench floor-server --url URL --jwt-secret S   (serves; see floor.rs)

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use clap::{Parser, ValueEnum};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

mod call;
mod floor;
mod http;
mod sio;
mod soak;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Scenario {
    /// N authenticated idle connections; the server's RSS per connection.
    Connections,
    /// P matched pairs exchanging text; delivered msg/s, latency, CPU per message.
    Relay,
    /// U users asking to be matched at once; time to match.
    MatchStorm,
    /// Relay alone, then relay while clients log in over and over; relay p99 both ways.
    LoginStorm,
    /// C concurrent uploads; the server's RSS growth.
    Upload,
    /// R sequential `GET /api/auth/me` by one guest: latency (in a cluster,
    /// with however many users are online).
    AuthMe,
    /// U virtual users churning (guests come and go) for M minutes; RSS,
    /// fds, threads, store size and upload files sampled every minute.
    Soak,
    /// M members in one room, S of them sending: messages delivered per
    /// second to all members, latency, server CPU per delivered message.
    RoomFanout,
    /// P participants in one group call (WebRTC through the server's SFU):
    /// frames delivered, server CPU and memory per forwarded stream.
    Call,
    /// Not a load: serves, on the port of `--url`, a server that only
    /// pairs (`user:match` in arrival order, nothing else): `match-storm`
    /// against it is the floor this machine and generator allow.
    FloorServer,
    /// No server: the profanity filter on the lines of `--text-file` (or a
    /// built-in line), rustrict alone against rustrict behind the screen.
    Screen,
}

/// Load generator for Tandem and the Node baseline.
#[derive(Parser, Debug)]
struct Args {
    scenario: Scenario,
    #[arg(long, default_value = "http://127.0.0.1:3001")]
    url: String,
    /// More nodes of the same cluster: client i connects to the i-th of
    /// `url` and these, in turn.
    #[arg(long)]
    also_url: Vec<String>,
    /// The server's JWT secret: tokens are minted here, no accounts needed.
    #[arg(long, env = "JWT_SECRET")]
    jwt_secret: String,
    /// The server's process id, for RSS and CPU from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    #[arg(long, default_value_t = 100)]
    pairs: usize,
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// Measurement time of `relay`, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Messages per second per sender; 0: as fast as acks allow.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Lines of chat text the senders of `relay` and `room-fanout` cycle
    /// through (the send time is appended as a last word); without it every
    /// message is the same sentence.
    #[arg(long)]
    text_file: Option<std::path::PathBuf>,
    /// Unacknowledged messages a sender may have in flight.
    #[arg(long, default_value_t = 16)]
    window: usize,
    /// Accounts `login-storm` registers and logs in with.
    #[arg(long, default_value_t = 8)]
    accounts: usize,
    /// Clients logging in over and over during `login-storm`.
    #[arg(long, default_value_t = 16)]
    login_concurrency: usize,
    /// Requests of `auth-me`.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Concurrent uploads of `upload`.
    #[arg(long, default_value_t = 8)]
    uploads: usize,
    /// Bytes per upload (10 MB; the servers' limit is 10 MiB).
    #[arg(long, default_value_t = 10_000_000)]
    upload_size: usize,
    /// Source address of the connections (e.g. 127.0.0.2): each loopback
    /// address has its own ~28,000 ephemeral ports per server port.
    #[arg(long)]
    local_addr: Option<std::net::IpAddr>,
    /// `connections`: seconds to keep the connections open after measuring
    /// (so several load generators against a cluster overlap).
    #[arg(long, default_value_t = 0.0)]
    hold: f64,
    /// `connections`: each client first creates a guest account on the
    /// server (so disconnects update real records) instead of a minted token.
    #[arg(long)]
    guest_accounts: bool,
    /// Connections opened at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// `soak`: how long the load runs, in minutes.
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// `soak`: seconds between samples.
    #[arg(long, default_value_t = 60.0)]
    sample_secs: f64,
    /// `soak`: seconds to wait after the load before the last sample (the
    /// server trims its heap every 30 s; idle blocking threads exit after 10 s).
    #[arg(long, default_value_t = 45.0)]
    settle: f64,
    /// `soak`: the server's store file, to sample its size.
    #[arg(long)]
    store_file: Option<std::path::PathBuf>,
    /// `soak`: the server's upload directory, to count its files.
    #[arg(long)]
    upload_dir: Option<std::path::PathBuf>,
    /// `room-fanout`: members of the room.
    #[arg(long, default_value_t = 1000)]
    members: usize,
    /// `room-fanout`: members who send (each at `--rate`, default 10/s).
    #[arg(long, default_value_t = 1)]
    senders: usize,
    /// `room-fanout`, `call`: the room.
    #[arg(long, default_value = "general-en")]
    room: String,
    /// `call`: people in the call.
    #[arg(long, default_value_t = 4)]
    participants: usize,
    /// `call`: bytes per video frame (30 frames/s: 2,500 bytes ≈ 600 kbit/s).
    #[arg(long, default_value_t = 2500)]
    video_frame_bytes: usize,
}

#[derive(serde::Serialize)]
struct Claims {
    sub: String,
    name: String,
    guest: bool,
    iat: i64,
    exp: i64,
}

/// Users of this run: ids no other run against the same server has used
/// (a matcher never pairs a user with their last partner again).
fn token(secret: &str, i: usize) -> String {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let tag = TAG.get_or_init(run_tag);
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: format!("bench{tag}{i:08}"),
        name: format!("bench{i}"),
        guest: true,
        iat: now,
        exp: now + 86_400,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode")
}

/// (RSS bytes, CPU seconds) of a process.
fn proc_stats(pid: Option<u32>) -> (u64, f64) {
    let (user, kernel) = cpu_split(pid);
    (rss_of(pid), user + kernel)
}

/// RSS bytes of a process.
fn rss_of(pid: Option<u32>) -> u64 {
    let Some(pid) = pid else { return 0 };
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// (user, kernel) CPU seconds of a process.
fn cpu_split(pid: Option<u32>) -> (f64, f64) {
    let Some(pid) = pid else { return (0.0, 0.0) };
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = |i: usize| Some(f.get(i)?.parse::<f64>().ok()? / 100.0);
            Some((ticks(11)?, ticks(12)?))
        })
        .unwrap_or((0.0, 0.0))
}

/// A token for user `i`: a real guest account where the server has the
/// route (Tandem refuses tokens of accounts it does not know), else minted.
async fn user_token(args: &Args, i: usize) -> Result<String, String> {
    if !args.guest_accounts {
        return Ok(token(&args.jwt_secret, i));
    }
    match http::post_json(&args.url, "/api/auth/guest", &json!({}), None).await? {
        (201, body) => body["data"]["token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| "guest: no token".to_string()),
        (status, body) => Err(format!("guest: {status} {body}")),
    }
}

/// Whether the server creates guest accounts (Tandem does; the Node
/// baseline takes any token signed with the secret).
async fn has_guest_route(url: &str) -> bool {
    matches!(
        http::post_json(url, "/api/auth/guest", &json!({}), None).await,
        Ok((201, _))
    )
}

/// The server's RSS once it has settled: sampled every 250 ms until the
/// last 2 s stayed within 1 % (at most 30 s), so a reading is not taken
/// while the server is still growing into its idle size.
async fn settled_rss(pid: Option<u32>) -> u64 {
    if pid.is_none() {
        return 0;
    }
    let start = Instant::now();
    let mut window: std::collections::VecDeque<u64> = Default::default();
    loop {
        let rss = rss_of(pid);
        window.push_back(rss);
        if window.len() > 8 {
            window.pop_front();
        }
        let (lo, hi) = (
            window.iter().copied().min().unwrap_or(0),
            window.iter().copied().max().unwrap_or(0),
        );
        if window.len() == 8 && (hi - lo) as f64 <= hi as f64 * 0.01
            || start.elapsed() > Duration::from_secs(30)
        {
            return rss;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Guest tokens from the server (accounts in its store), fetched before
/// any connection is measured.
async fn fetch_guest_tokens(args: &Args, n: usize) -> Vec<String> {
    let sem = Arc::new(Semaphore::new(args.concurrency));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (sem, url) = (sem.clone(), args.url.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await;
            match http::post_json(&url, "/api/auth/guest", &json!({}), None).await {
                Ok((201, body)) => body["data"]["token"].as_str().map(str::to_string),
                _ => None,
            }
        }));
    }
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        if let Ok(Some(tok)) = t.await {
            out.push(tok);
        }
    }
    out
}

async fn connect_many(args: &Args, n: usize, offset: usize) -> Vec<sio::Client> {
    connect_with(args, n, offset, None).await
}

async fn connect_with(
    args: &Args,
    n: usize,
    offset: usize,
    tokens: Option<Vec<String>>,
) -> Vec<sio::Client> {
    let tokens = tokens.map(Arc::new);
    let sem = Arc::new(Semaphore::new(args.concurrency));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(n);
    let urls: Vec<&String> = std::iter::once(&args.url).chain(&args.also_url).collect();
    for i in 0..n {
        let (sem, done, url, minted, local, guests) = (
            sem.clone(),
            done.clone(),
            urls[i % urls.len()].clone(),
            match &tokens {
                Some(t) => t.get(i).cloned().unwrap_or_default(),
                None => token(&args.jwt_secret, offset + i),
            },
            args.local_addr,
            args.guest_accounts && tokens.is_none(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await;
            let tok = if guests {
                // A real account in the server's store, not a minted token.
                match http::post_json(&url, "/api/auth/guest", &json!({}), None).await? {
                    (201, body) => body["data"]["token"]
                        .as_str()
                        .ok_or("guest: no token")?
                        .to_string(),
                    (status, body) => return Err(format!("guest: {status} {body}")),
                }
            } else {
                minted
            };
            let mut c = sio::connect(&url, &tok, local).await?;
            c.wait_for("connection:established")
                .await
                .ok_or("no connection:established")?;
            let d = done.fetch_add(1, Ordering::Relaxed) + 1;
            if d % 1000 == 0 {
                eprintln!("  connected {d}/{n}");
            }
            Ok::<_, String>(c)
        }));
    }
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        match t.await {
            Ok(Ok(c)) => out.push(c),
            Ok(Err(e)) => eprintln!("  connection failed: {e}"),
            Err(e) => eprintln!("  task failed: {e}"),
        }
    }
    out
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

async fn auth_me(args: &Args) -> Value {
    let token = match http::post_json(&args.url, "/api/auth/guest", &json!({}), None).await {
        Ok((201, b)) => b["data"]["token"].as_str().unwrap_or_default().to_string(),
        other => {
            eprintln!("guest: {other:?}");
            return json!({ "scenario": "auth-me", "error": "no guest account" });
        }
    };
    let mut lat = Vec::with_capacity(args.requests);
    let mut failed = 0;
    for _ in 0..args.requests {
        let t0 = Instant::now();
        match http::get_json(&args.url, "/api/auth/me", &token).await {
            Ok((200, _)) => lat.push(t0.elapsed().as_micros() as u64),
            _ => failed += 1,
        }
    }
    lat.sort_unstable();
    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    println!(
        "auth-me: {} requests ({} failed), one connection each: p50 {:.2} ms, p99 {:.2} ms",
        lat.len(),
        failed,
        p50,
        p99
    );
    json!({ "scenario": "auth-me", "requests": lat.len(), "failed": failed, "p50Ms": p50, "p99Ms": p99 })
}

async fn connections(args: &Args) -> Value {
    // Only connection memory is measured: accounts are made first, and
    // both readings wait for the server to settle.
    let tokens = if args.guest_accounts {
        Some(fetch_guest_tokens(args, args.connections).await)
    } else {
        None
    };
    let rss0 = settled_rss(args.server_pid).await;
    let clients = connect_with(args, args.connections, 0, tokens).await;
    let rss1 = settled_rss(args.server_pid).await;
    let n = clients.len().max(1) as f64;
    let opened = clients.len();
    let per = (rss1.saturating_sub(rss0)) as f64 / n;
    println!(
        "connections: {} open; server RSS {:.1} MB -> {:.1} MB; {:.0} bytes per connection",
        clients.len(),
        rss0 as f64 / 1e6,
        rss1 as f64 / 1e6,
        per
    );
    if args.hold > 0.0 {
        // Other load generators against the cluster finish connecting.
        tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    }
    // What the server (in a cluster: the whole cluster) counts.
    let stats = http::get_json(
        &args.url,
        "/api/socket/stats",
        &user_token(args, usize::MAX >> 1).await.unwrap_or_default(),
    )
    .await
    .ok()
    .filter(|(status, _)| *status == 200)
    .map(|(_, body)| body["data"].clone())
    .unwrap_or(Value::Null);
    if !stats.is_null() {
        println!(
            "  server stats: {} sockets on this node, {} connected in all, {} users online",
            stats["localSockets"], stats["connectedSockets"], stats["onlineUsers"]
        );
    }
    // All disconnect at once: how long the server stays busy afterwards.
    let (_, cpu0) = proc_stats(args.server_pid);
    let t0 = Instant::now();
    drop(clients);
    let (mut last_cpu, mut last_change) = (cpu0, t0);
    if args.server_pid.is_some() {
        while last_change.elapsed() < Duration::from_secs(1) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let (_, cpu) = proc_stats(args.server_pid);
            if cpu > last_cpu {
                (last_cpu, last_change) = (cpu, Instant::now());
            }
        }
    }
    let drain = last_change.duration_since(t0).as_secs_f64();
    println!(
        "  all disconnected: server busy {drain:.2} s, {:.2} CPU-seconds",
        last_cpu - cpu0
    );
    json!({ "scenario": "connections", "connections": opened, "rssBefore": rss0, "rssAfter": rss1, "bytesPerConnection": per,
            "serverConnectedSockets": stats["connectedSockets"], "serverOnlineUsers": stats["onlineUsers"],
            "disconnectBusySec": drain, "disconnectCpuSec": last_cpu - cpu0 })
}

async fn pair_up(clients: &mut [sio::Client]) -> usize {
    let mut pairs = 0;
    for chunk in clients.chunks_mut(2) {
        if let [a, b] = chunk {
            let _ = a.request("user:match", &json!({})).await;
            let r = b
                .request("user:match", &json!({}))
                .await
                .unwrap_or(Value::Null);
            if r["data"]["status"] == "matched" {
                let _ = a.wait_for("user:matched").await;
                pairs += 1;
            }
        }
    }
    pairs
}

/// The clients' WebSockets, for [`relay_phase`] to drive itself.
async fn into_ws(clients: Vec<sio::Client>) -> Vec<sio::Ws> {
    let mut conns = Vec::with_capacity(clients.len());
    for c in clients {
        conns.extend(c.into_ws().await);
    }
    conns
}

struct RelayRun {
    /// Delivery latencies in µs, sorted (of the messages whose stamp a
    /// content filter left readable).
    latencies: Vec<u64>,
    /// Ack latencies in µs (send to ack), sorted.
    acks: Vec<u64>,
    /// Messages delivered in the measurement, stamp readable or not.
    delivered: u64,
    /// Server CPU seconds spent during the measurement.
    cpu: f64,
    /// Of which in the kernel (system time: sends, receives, wake-ups).
    kernel: f64,
    /// Server RSS at the end.
    rss: u64,
}

impl RelayRun {
    fn msg_per_sec(&self, duration: f64) -> f64 {
        self.delivered as f64 / duration
    }
    fn cpu_us_per_msg(&self) -> f64 {
        self.per_msg_us(self.cpu)
    }
    fn kernel_us_per_msg(&self) -> f64 {
        self.per_msg_us(self.kernel)
    }
    fn per_msg_us(&self, seconds: f64) -> f64 {
        if self.delivered == 0 {
            f64::NAN
        } else {
            seconds * 1e6 / self.delivered as f64
        }
    }
}

/// Every client sends text to its partner for `duration` seconds (after
/// half a second to fill the windows); the connections come back for more.
///
/// Each connection is driven by one task that owns its WebSocket: it sends
/// while its window and pace allow, answers pings, counts acks and times
/// the partner's messages as their frames are read. No channel or second
/// task stands between the socket and the figures, so the generator's own
/// scheduling adds as little as it can to the latencies (a task per role,
/// as before, doubled the 1,000-pair tail when the generator saturated).
async fn relay_phase(args: &Args, conns: Vec<sio::Ws>, duration: f64) -> (Vec<sio::Ws>, RelayRun) {
    let start = Instant::now();
    let measure_from = start + Duration::from_millis(500); // let windows fill
    let end = measure_from + Duration::from_secs_f64(duration);
    let delivered = Arc::new(AtomicU64::new(0));
    let lines = text_lines(args);
    let progress = {
        let delivered = delivered.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(
                (measure_from + Duration::from_secs(1)).into(),
                Duration::from_secs(1),
            );
            let mut last = 0;
            loop {
                tick.tick().await;
                let now = delivered.load(Ordering::Relaxed);
                eprintln!("  {:>8} msg/s delivered ({now} so far)", now - last);
                last = now;
            }
        })
    };
    let plan = RelayPlan {
        start,
        measure_from,
        end,
        window: args.window.max(1),
        gap: (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate)),
    };
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, ws)| {
            let (delivered, lines) = (delivered.clone(), lines.clone());
            tokio::spawn(relay_conn(ws, plan, lines, i, delivered))
        })
        .collect();
    tokio::time::sleep_until(measure_from.into()).await;
    let (user0, kernel0) = cpu_split(args.server_pid);
    tokio::time::sleep_until(end.into()).await;
    let rss = rss_of(args.server_pid);
    let (user1, kernel1) = cpu_split(args.server_pid);
    progress.abort();
    let (mut latencies, mut acks) = (Vec::new(), Vec::new());
    let mut conns = Vec::new();
    for t in tasks {
        if let Ok((ws, lat, ack)) = t.await {
            latencies.extend(lat);
            acks.extend(ack);
            conns.extend(ws);
        }
    }
    latencies.sort_unstable();
    acks.sort_unstable();
    let run = RelayRun {
        latencies,
        acks,
        delivered: delivered.load(Ordering::Relaxed),
        cpu: (user1 - user0) + (kernel1 - kernel0),
        kernel: kernel1 - kernel0,
        rss,
    };
    (conns, run)
}

#[derive(Clone, Copy)]
struct RelayPlan {
    start: Instant,
    measure_from: Instant,
    end: Instant,
    window: usize,
    /// Between one sender's messages; none: as fast as acks allow.
    gap: Option<Duration>,
}

/// One connection of [`relay_phase`]: returns its WebSocket (none if it
/// failed), the latencies of the messages it received in the measurement
/// and those of the acks of its own, in µs.
async fn relay_conn(
    mut ws: sio::Ws,
    plan: RelayPlan,
    lines: Arc<Vec<String>>,
    mut line: usize,
    delivered: Arc<AtomicU64>,
) -> (Option<sio::Ws>, Vec<u64>, Vec<u64>) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    /// An ack that never comes (the server dropped it) must not stall the run.
    const ACK_WAIT: Duration = Duration::from_secs(5);
    let mut lat = Vec::new();
    let mut acks = Vec::new();
    // Send times of the messages awaiting their ack, oldest first.
    let mut inflight = std::collections::VecDeque::new();
    // Paced senders start at random phases: all starting together would
    // send in bursts of every sender at once (queueing that light load
    // should not have).
    let mut next = Instant::now()
        + plan
            .gap
            .map_or(Duration::ZERO, |g| g.mul_f64(rand::random::<f64>()));
    let mut ack_id = 0u64;
    let drain_until = plan.end + Duration::from_secs(2);
    loop {
        let now = Instant::now();
        while inflight
            .front()
            .is_some_and(|t: &Instant| now.duration_since(*t) >= ACK_WAIT)
        {
            inflight.pop_front();
        }
        let sending = now < plan.end;
        if sending && inflight.len() < plan.window && now >= next {
            if let Some(g) = plan.gap {
                next += g;
            }
            line += 1;
            let content = encode_stamp(
                now.duration_since(plan.start).as_nanos() as u64,
                &lines[line % lines.len()],
            );
            ack_id += 1;
            let frame = sio::event_frame(
                ack_id,
                "chat:message",
                &json!({ "type": "text", "content": content }),
            );
            if ws.send(Message::text(frame)).await.is_err() {
                return (None, lat, acks);
            }
            inflight.push_back(now);
            continue;
        }
        if !sending && (inflight.is_empty() || now >= drain_until) {
            return (Some(ws), lat, acks);
        }
        // Wake for the next frame, or for whatever comes first of: the
        // next send, the oldest ack's give-up time, the end.
        let mut wake = if sending { plan.end } else { drain_until };
        if sending && inflight.len() < plan.window {
            wake = wake.min(next);
        }
        if let Some(t) = inflight.front() {
            wake = wake.min(*t + ACK_WAIT);
        }
        let frame = match tokio::time::timeout_at(wake.into(), ws.next()).await {
            Err(_) => continue,
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(_))) => continue,
            Ok(_) => return (None, lat, acks),
        };
        match sio::parse(frame.as_str()) {
            // A ping is answered here; only a failed answer ends the run.
            sio::Incoming::Ping if ws.send(Message::text("3")).await.is_err() => {
                return (None, lat, acks);
            }
            sio::Incoming::Ack(Some(_), _) => {
                if let Some(sent) = inflight.pop_front() {
                    let at = Instant::now();
                    if at >= plan.measure_from && at <= plan.end {
                        acks.push(at.duration_since(sent).as_micros() as u64);
                    }
                }
            }
            sio::Incoming::Event(name, data) if name == "chat:message" => {
                let at = Instant::now();
                if at < plan.measure_from || at > plan.end {
                    continue;
                }
                // Counted even when a filter masked the stamp away: the
                // server relayed it all the same.
                delivered.fetch_add(1, Ordering::Relaxed);
                if let Some(sent) = data["content"].as_str().and_then(decode_stamp) {
                    let sent = plan.start + Duration::from_nanos(sent);
                    lat.push(at.saturating_duration_since(sent).as_micros() as u64);
                }
            }
            _ => {}
        }
    }
}

async fn relay(args: &Args) -> Value {
    let mut clients = connect_many(args, args.pairs * 2, 0).await;
    let pairs = pair_up(&mut clients).await;
    eprintln!("  {pairs} pairs matched");
    let conns = into_ws(clients).await;
    let (_conns, run) = relay_phase(args, conns, args.duration).await;
    let all = &run.latencies;
    let rate = run.msg_per_sec(args.duration);
    println!(
        "relay: {pairs} pairs, {:.0} msg/s delivered; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; ack p50 {:.2} ms, p99 {:.2} ms; server CPU {:.2} s = {:.1} us/msg ({:.1} in the kernel); RSS {:.1} MB",
        rate,
        percentile(all, 0.5),
        percentile(all, 0.99),
        percentile(all, 1.0),
        percentile(&run.acks, 0.5),
        percentile(&run.acks, 0.99),
        run.cpu,
        run.cpu_us_per_msg(),
        run.kernel_us_per_msg(),
        run.rss as f64 / 1e6
    );
    json!({ "scenario": "relay", "pairs": pairs, "msgPerSec": rate, "p50Ms": percentile(all, 0.5), "p99Ms": percentile(all, 0.99),
            "maxMs": percentile(all, 1.0), "ackP50Ms": percentile(&run.acks, 0.5), "ackP99Ms": percentile(&run.acks, 0.99), "serverCpuSec": run.cpu, "cpuUsPerMsg": run.cpu_us_per_msg(), "kernelCpuUsPerMsg": run.kernel_us_per_msg(), "rss": run.rss })
}

/// `members` clients join one room; `senders` of them send stamped messages
/// at `rate` each; every member's `room:message` events are timed.
async fn room_fanout(args: &Args) -> Value {
    let mut clients = connect_many(args, args.members, 0).await;
    let room = args.room.clone();
    let lines = text_lines(args);
    let mut joined = 0;
    for chunk in clients.chunks_mut(256) {
        let acks: Vec<_> = chunk
            .iter_mut()
            .map(|c| c.request("room:join", &json!({ "roomId": room })))
            .collect();
        for a in acks {
            if matches!(tokio::time::timeout(Duration::from_secs(10), a).await, Ok(Ok(v)) if v["success"] == true)
            {
                joined += 1;
            }
        }
    }
    eprintln!("  {joined} of {} members joined {room}", clients.len());
    let rate = if args.rate > 0.0 { args.rate } else { 10.0 };
    let start = Instant::now();
    let measure_from = start + Duration::from_millis(1000);
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let sent = Arc::new(AtomicU64::new(0));
    let mut receivers = Vec::new();
    let mut senders = Vec::new();
    for (i, mut c) in clients.into_iter().enumerate() {
        let mut events = std::mem::replace(&mut c.events, tokio::sync::mpsc::unbounded_channel().1);
        receivers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while let Ok(Some((ev, data))) =
                tokio::time::timeout_at((end + Duration::from_secs(2)).into(), events.recv()).await
            {
                if ev != "room:message" {
                    continue;
                }
                let now = Instant::now();
                if now < measure_from || now > end {
                    continue;
                }
                if let Some(at) = data["content"].as_str().and_then(decode_stamp) {
                    lat.push(
                        now.saturating_duration_since(start + Duration::from_nanos(at))
                            .as_micros() as u64,
                    );
                }
            }
            lat
        }));
        if i < args.senders {
            let (room, sent) = (room.clone(), sent.clone());
            let lines = lines.clone();
            let mut line = i;
            senders.push(tokio::spawn(async move {
                let gap = Duration::from_secs_f64(1.0 / rate);
                let mut next = Instant::now() + gap.mul_f64(rand::random::<f64>());
                let mut inflight = std::collections::VecDeque::new();
                while Instant::now() < end {
                    next += gap;
                    tokio::time::sleep_until(next.into()).await;
                    if inflight.len() >= 16 {
                        let rx: tokio::sync::oneshot::Receiver<Value> =
                            inflight.pop_front().unwrap();
                        let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
                    }
                    line += 1;
                    let content = encode_stamp(
                        start.elapsed().as_nanos() as u64,
                        &lines[line % lines.len()],
                    );
                    inflight.push_back(c.request(
                        "room:message",
                        &json!({ "roomId": room, "content": content }),
                    ));
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                c
            }));
        } else {
            senders.push(tokio::spawn(async move { c }));
        }
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let sent0 = sent.load(Ordering::Relaxed);
    let (_, cpu0) = proc_stats(args.server_pid);
    tokio::time::sleep_until(end.into()).await;
    let (rss, cpu1) = proc_stats(args.server_pid);
    let sent1 = sent.load(Ordering::Relaxed);
    let mut all = Vec::new();
    for r in receivers {
        if let Ok(lat) = r.await {
            all.extend(lat);
        }
    }
    for s in senders {
        let _ = s.await;
    }
    all.sort_unstable();
    let delivered = all.len() as f64 / args.duration;
    let cpu = cpu1 - cpu0;
    let per = if all.is_empty() {
        f64::NAN
    } else {
        cpu * 1e6 / all.len() as f64
    };
    let sent_rate = (sent1 - sent0) as f64 / args.duration;
    println!(
        "room-fanout: {joined} members, {} senders at {rate}/s ({sent_rate:.0} msg/s sent); {delivered:.0} deliveries/s; latency p50 {:.2} ms, p99 {:.2} ms; server CPU {cpu:.2} s = {per:.2} us/delivery; RSS {:.1} MB",
        args.senders,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        rss as f64 / 1e6
    );
    json!({ "scenario": "room-fanout", "members": joined, "senders": args.senders, "sentPerSec": sent_rate,
            "msgPerSec": delivered, "p50Ms": percentile(&all, 0.5), "p99Ms": percentile(&all, 0.99),
            "serverCpuSec": cpu, "cpuUsPerMsg": per, "rss": rss })
}

/// A run tag, so accounts made by one run do not collide with another's.
fn run_tag() -> String {
    format!("{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// Relay alone, then relay while `--login-concurrency` clients log in over
/// and over with the accounts registered beforehand.
async fn login_storm(args: &Args) -> Value {
    let tag = run_tag();
    let accounts: Vec<(String, String)> = (0..args.accounts)
        .map(|i| (format!("ls{tag}n{i}@bench.test"), format!("bench-pass-{i}")))
        .collect();
    for (i, (email, password)) in accounts.iter().enumerate() {
        let body =
            json!({ "username": format!("ls{tag}n{i}"), "email": email, "password": password });
        match http::post_json(&args.url, "/api/auth/register", &body, None).await {
            Ok((201, _)) => {}
            Ok((status, body)) => eprintln!("  register: {status} {body}"),
            Err(e) => eprintln!("  register: {e}"),
        }
    }
    let mut clients = connect_many(args, args.pairs * 2, 0).await;
    let pairs = pair_up(&mut clients).await;
    eprintln!("  {pairs} pairs matched; relay alone");
    let conns = into_ws(clients).await;
    let (conns, quiet) = relay_phase(args, conns, args.duration).await;

    eprintln!("  relay with {} clients logging in", args.login_concurrency);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut loggers = Vec::new();
    for i in 0..args.login_concurrency {
        let (stop, url) = (stop.clone(), args.url.clone());
        let (email, password) = accounts[i % accounts.len().max(1)].clone();
        loggers.push(tokio::spawn(async move {
            let (mut ok, mut failed, mut times) = (0u64, 0u64, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let body = json!({ "email": email, "password": password });
                match http::post_json(&url, "/api/auth/login", &body, None).await {
                    Ok((200, _)) => {
                        ok += 1;
                        times.push(t0.elapsed().as_micros() as u64);
                    }
                    _ => failed += 1,
                }
            }
            (ok, failed, times)
        }));
    }
    let t0 = Instant::now();
    let (_conns, busy) = relay_phase(args, conns, args.duration).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let (mut ok, mut failed, mut times) = (0, 0, Vec::new());
    for l in loggers {
        if let Ok((o, f, t)) = l.await {
            ok += o;
            failed += f;
            times.extend(t);
        }
    }
    times.sort_unstable();
    let (p99_quiet, p99_busy) = (
        percentile(&quiet.latencies, 0.99),
        percentile(&busy.latencies, 0.99),
    );
    let logins_per_sec = ok as f64 / elapsed;
    println!(
        "login-storm: {pairs} pairs; relay p99 {p99_quiet:.2} ms alone, {p99_busy:.2} ms with logins ({:.2}x); {logins_per_sec:.1} logins/s ({failed} failed), login p50 {:.0} ms; relay {:.0} -> {:.0} msg/s",
        p99_busy / p99_quiet,
        percentile(&times, 0.5),
        quiet.msg_per_sec(args.duration),
        busy.msg_per_sec(args.duration),
    );
    json!({ "scenario": "login-storm", "pairs": pairs, "relayP99AloneMs": p99_quiet, "relayP99WithLoginsMs": p99_busy,
            "p99Increase": p99_busy / p99_quiet, "loginsPerSec": logins_per_sec, "loginsFailed": failed,
            "loginP50Ms": percentile(&times, 0.5), "relayMsgPerSecAlone": quiet.msg_per_sec(args.duration),
            "relayMsgPerSecWithLogins": busy.msg_per_sec(args.duration), "serverCpuSecWithLogins": busy.cpu })
}

/// `--uploads` concurrent uploads of `--upload-size` bytes; the server's RSS
/// sampled every 10 ms throughout.
async fn upload(args: &Args) -> Value {
    let (rss0, cpu0) = proc_stats(args.server_pid);
    let peak = Arc::new(AtomicU64::new(rss0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done, pid) = (peak.clone(), done.clone(), args.server_pid);
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_of(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..args.uploads {
        let (url, tok, size) = (
            args.url.clone(),
            user_token(args, i).await.unwrap_or_default(),
            args.upload_size,
        );
        tasks.push(tokio::spawn(async move {
            http::upload_text(&url, "/api/files", &tok, size).await
        }));
    }
    let (mut ok, mut failed) = (0, 0);
    for t in tasks {
        match t.await {
            Ok(Ok((201, _))) => ok += 1,
            Ok(Ok((status, body))) => {
                failed += 1;
                eprintln!("  upload: {status} {body}");
            }
            Ok(Err(e)) => {
                failed += 1;
                eprintln!("  upload: {e}");
            }
            Err(e) => {
                failed += 1;
                eprintln!("  upload task: {e}");
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    let (rss1, cpu1) = proc_stats(args.server_pid);
    let peak = peak.load(Ordering::Relaxed).max(rss1);
    let growth = peak.saturating_sub(rss0);
    let mb_per_sec = (ok * args.upload_size) as f64 / 1e6 / secs;
    println!(
        "upload: {ok} of {} uploads of {:.1} MB in {secs:.2} s ({mb_per_sec:.0} MB/s); server RSS {:.1} MB -> peak {:.1} MB (+{:.1} MB), {:.1} MB after; server CPU {:.2} s",
        args.uploads,
        args.upload_size as f64 / 1e6,
        rss0 as f64 / 1e6,
        peak as f64 / 1e6,
        growth as f64 / 1e6,
        rss1 as f64 / 1e6,
        cpu1 - cpu0
    );
    json!({ "scenario": "upload", "uploads": ok, "failed": failed, "mbPerSec": mb_per_sec, "rssBefore": rss0, "rssPeak": peak,
            "rssGrowthMb": growth as f64 / 1e6, "serverCpuSec": cpu1 - cpu0 })
}

async fn match_storm(args: &Args) -> Value {
    let clients = connect_many(args, args.users, 0).await;
    let users = clients.len();
    if users < args.users {
        eprintln!("  only {users} of {} users connected", args.users);
    }
    let (_, cpu0) = proc_stats(args.server_pid);
    let barrier = Arc::new(tokio::sync::Barrier::new(clients.len()));
    let mut tasks = Vec::new();
    for mut c in clients {
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let t0 = Instant::now();
            let _ack = c.request("user:match", &json!({}));
            let sent = Instant::now();
            let got =
                tokio::time::timeout(Duration::from_secs(30), c.wait_for("user:matched")).await;
            let took = t0.elapsed().as_micros() as u64;
            (
                got.ok()
                    .flatten()
                    .map(|m| m["roomId"].as_str().unwrap_or("").to_string()),
                took,
                sent,
                c,
            )
        }));
    }
    let mut times = Vec::new();
    let mut rooms = std::collections::HashMap::new();
    // Clients stay connected until every result is in (dropping one closes it).
    let mut keep = Vec::new();
    // When the generator had handed each request to its connection: how
    // long the storm itself took to leave this process.
    let (mut first_sent, mut last_sent) = (None::<Instant>, None::<Instant>);
    for t in tasks {
        if let Ok((room, took, sent, c)) = t.await {
            keep.push(c);
            first_sent = Some(first_sent.map_or(sent, |f| f.min(sent)));
            last_sent = Some(last_sent.map_or(sent, |l| l.max(sent)));
            if let Some(room) = room {
                times.push(took);
                *rooms.entry(room).or_insert(0u32) += 1;
            }
        }
    }
    let (_, cpu1) = proc_stats(args.server_pid);
    times.sort_unstable();
    let spread_ms = match (first_sent, last_sent) {
        (Some(f), Some(l)) => l.duration_since(f).as_secs_f64() * 1e3,
        _ => 0.0,
    };
    let pairs = rooms.values().filter(|n| **n == 2).count();
    // Each user matched once, into a room with exactly one other of ours.
    let exactly_once = rooms.values().all(|n| *n == 2) && pairs * 2 == users;
    println!(
        "match-storm: {users} users over {} node(s), {pairs} pairs ({}); time to match p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; server CPU {:.2} s; requests handed to their connections over {spread_ms:.1} ms",
        1 + args.also_url.len(),
        if exactly_once {
            "each paired exactly once"
        } else {
            "NOT each paired exactly once"
        },
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        percentile(&times, 1.0),
        cpu1 - cpu0
    );
    json!({ "scenario": "match-storm", "users": users, "pairs": pairs, "exactlyOnce": exactly_once,
            "nodes": 1 + args.also_url.len(), "p50Ms": percentile(&times, 0.5),
            "p99Ms": percentile(&times, 0.99), "maxMs": percentile(&times, 1.0), "serverCpuSec": cpu1 - cpu0,
            "sentOverMs": spread_ms })
}

#[tokio::main]
async fn main() {
    let mut args = Args::parse();
    if let Scenario::Screen = args.scenario {
        screen(&args);
        return;
    }
    if let Scenario::FloorServer = args.scenario {
        if let Err(e) = floor::run(&args.url).await {
            eprintln!("floor-server: {e}");
            std::process::exit(1);
        }
        return;
    }
    if !args.guest_accounts {
        args.guest_accounts = has_guest_route(&args.url).await;
    }
    let result = match args.scenario {
        Scenario::Connections => connections(&args).await,
        Scenario::Relay => relay(&args).await,
        Scenario::MatchStorm => match_storm(&args).await,
        Scenario::LoginStorm => login_storm(&args).await,
        Scenario::Upload => upload(&args).await,
        Scenario::AuthMe => auth_me(&args).await,
        Scenario::RoomFanout => room_fanout(&args).await,
        Scenario::Call => call::call(&args).await,
        Scenario::Screen | Scenario::FloorServer => unreachable!("handled above"),
        Scenario::Soak => {
            let secret = args.jwt_secret.clone();
            soak::run(soak::Soak {
                url: args.url.clone(),
                users: args.users,
                minutes: args.minutes,
                sample_secs: args.sample_secs,
                settle_secs: args.settle,
                pid: args.server_pid,
                store_file: args.store_file.clone(),
                upload_dir: args.upload_dir.clone(),
                guest_accounts: args.guest_accounts,
                mint: Arc::new(move |i| token(&secret, i)),
            })
            .await
        }
    };
    println!("RESULT {result}");
}

/// The default message text, when no `--text-file` is given.
const DEFAULT_LINE: &str = "hello there, this is a message from the relay benchmark";

/// The lines senders cycle through: `--text-file`'s non-empty lines, or
/// [`DEFAULT_LINE`].
fn text_lines(args: &Args) -> Arc<Vec<String>> {
    let lines: Vec<String> = match &args.text_file {
        Some(path) => std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("--text-file {}: {e}", path.display()))
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect(),
        None => Vec::new(),
    };
    if lines.is_empty() {
        Arc::new(vec![DEFAULT_LINE.to_string()])
    } else {
        Arc::new(lines)
    }
}

/// The words a relay message's stamp is written in: common chat words, so
/// content filters see chat text (a run of digits would look like a phone
/// number to FILTER_PII, and a new nonsense word in every message would
/// cost the profanity screen what chat text does not).
const STAMP_WORDS: [&str; 64] = [
    "hi", "hey", "yes", "no", "ok", "so", "and", "the", "you", "me", "we", "it", "is", "are",
    "was", "not", "but", "or", "if", "at", "on", "in", "to", "of", "for", "with", "just", "like",
    "what", "how", "why", "when", "where", "who", "good", "nice", "cool", "fun", "day", "night",
    "time", "now", "then", "here", "there", "this", "that", "all", "one", "two", "really", "maybe",
    "sure", "thanks", "lol", "haha", "well", "know", "think", "see", "go", "come", "say", "do",
];

/// Words in a stamp: 64^5 µs, about 18 minutes after the run's start.
const STAMP_LEN: usize = 5;

/// A relay message: a line of text and, as its last words, the send time
/// (since the run's start, to the microsecond, wrapping after ~18 minutes)
/// in [`STAMP_WORDS`].
fn encode_stamp(nanos: u64, line: &str) -> String {
    let mut micros = nanos / 1_000;
    let mut words = [""; STAMP_LEN];
    for w in words.iter_mut().rev() {
        *w = STAMP_WORDS[(micros % 64) as usize];
        micros /= 64;
    }
    format!("{line} {}", words.join(" "))
}

/// The send time in a message's stamp, in nanoseconds (whole microseconds).
fn decode_stamp(content: &str) -> Option<u64> {
    // Last word first: the least significant digit (no allocation, as
    // the load generator reads every delivered message).
    let mut words = content.split_whitespace().rev();
    let mut micros = 0u64;
    for place in 0..STAMP_LEN {
        let word = words.next()?;
        let digit = STAMP_WORDS.iter().position(|s| *s == word)? as u64;
        micros += digit << (6 * place);
    }
    Some(micros * 1_000)
}

/// The profanity filter on chat lines: rustrict alone, and as the server
/// runs it (rustrict only where the screen says the line may be profane).
fn screen(args: &Args) {
    use tandem::safety::filter::{FilterMode, Filters};
    let lines = text_lines(args);
    let filters = Filters {
        profanity: FilterMode::Mask,
        ..Filters::default()
    };
    let rss = || rss_of(Some(std::process::id())) as f64 / (1024.0 * 1024.0);
    let rss_start = rss();
    std::hint::black_box(rustrict::Censor::from_str("warm up").analyze());
    let rss_rustrict = rss();
    let t0 = Instant::now();
    // The filter's own screen: built here, used below by `filters` too.
    let screen = tandem::safety::filter::screen();
    let built = t0.elapsed();
    let rss_screen = rss();
    let passed = lines.iter().filter(|l| !screen.maybe_profane(l)).count();
    // As the relay sends them: each line with a send-time stamp appended.
    let stamped: Vec<String> = (0..10_000u64)
        .map(|i| {
            encode_stamp(
                1_000_000_000 + i * 1_234_567,
                &lines[i as usize % lines.len()],
            )
        })
        .collect();
    let stamped_passed = stamped.iter().filter(|l| !screen.maybe_profane(l)).count();
    for l in lines.iter().filter(|l| screen.maybe_profane(l)) {
        let verdict = rustrict::Censor::from_str(l).analyze();
        println!("  maybe: {l:?} (rustrict: {verdict:?})");
    }
    let chars: usize = lines.iter().map(|l| l.len()).sum();
    let rounds = (2_000_000 / chars.max(1)).max(1);
    let time = |f: &dyn Fn(&str) -> bool| {
        let t = Instant::now();
        let mut hits = 0usize;
        for _ in 0..rounds {
            for l in lines.iter() {
                hits += f(l) as usize;
            }
        }
        std::hint::black_box(hits);
        t.elapsed().as_nanos() as f64 / (rounds * lines.len()) as f64
    };
    let rustrict_ns = time(&|l| {
        rustrict::Censor::from_str(l)
            .analyze()
            .is(rustrict::Type::INAPPROPRIATE)
    });
    let screen_ns = time(&|l| screen.maybe_profane(l));
    // As many stamped lines, each stamp new, as the relay sends them.
    let fresh: Vec<String> = (0..(rounds * lines.len()) as u64)
        .map(|i| {
            encode_stamp(
                5_000_000_000 + i * 197_123,
                &lines[i as usize % lines.len()],
            )
        })
        .collect();
    let stamped_ns = {
        let t = Instant::now();
        let hits = fresh.iter().filter(|l| screen.maybe_profane(l)).count();
        std::hint::black_box(hits);
        t.elapsed().as_nanos() as f64 / fresh.len() as f64
    };
    let filter_ns = time(&|l| filters.apply(l).is_ok());
    let off_ns = time(&|l| Filters::default().apply(l).is_ok());
    let pii = Filters {
        pii: FilterMode::Mask,
        ..Filters::default()
    };
    let pii_ns = time(&|l| pii.apply(l).is_ok());
    println!(
        "{} lines, {:.1} characters on average; screen built in {:.0} ms ({} nodes)",
        lines.len(),
        chars as f64 / lines.len() as f64,
        built.as_secs_f64() * 1e3,
        screen.len()
    );
    println!(
        "RSS: {rss_start:.1} MB at start, {rss_rustrict:.1} MB with rustrict's tables, {rss_screen:.1} MB with the screen"
    );
    println!(
        "screened out (rustrict not run): {passed} of {} ({:.1} %)",
        lines.len(),
        100.0 * passed as f64 / lines.len() as f64
    );
    println!(
        "stamped as the relay sends them, screened out: {stamped_passed} of {} ({:.1} %)",
        stamped.len(),
        100.0 * stamped_passed as f64 / stamped.len() as f64
    );
    println!("states in the screen's cache: {}", screen.cached_states());
    println!("rustrict alone:                      {rustrict_ns:8.0} ns per line");
    println!("screen alone:                        {screen_ns:8.0} ns per line");
    println!("screen alone, stamped lines:         {stamped_ns:8.0} ns per line");
    println!("FILTER_PROFANITY=mask (screen first): {filter_ns:8.0} ns per line");
    println!("FILTER_PII=mask:                     {pii_ns:8.0} ns per line");
    println!("filters off (the copy):              {off_ns:8.0} ns per line");
    let result = json!({ "scenario": "screen", "lines": lines.len(), "screenedOut": passed, "stampedScreenedOut": stamped_passed,
        "rustrictNs": rustrict_ns, "screenNs": screen_ns, "stampedScreenNs": stamped_ns, "filterNs": filter_ns, "piiNs": pii_ns, "offNs": off_ns });
    println!("RESULT {result}");
}

#[cfg(test)]
mod stamp_tests {
    #[test]
    fn stamps_round_trip() {
        let words: std::collections::HashSet<_> = super::STAMP_WORDS.iter().collect();
        assert_eq!(words.len(), 64, "the stamp's words are distinct");
        for n in [
            0,
            1_000,
            25_000,
            26_999,
            1_023_456_789_000,
            64u64.pow(5) * 1_000 - 1,
        ] {
            assert_eq!(
                super::decode_stamp(&super::encode_stamp(n, super::DEFAULT_LINE)),
                Some(n / 1_000 * 1_000)
            );
        }
        assert_eq!(super::decode_stamp("hi there"), None);
        assert_eq!(super::decode_stamp("hi there you are not yet"), None);
    }
}
