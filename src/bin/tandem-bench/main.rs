//! tandem-bench: load for a Socket.IO chat server (Tandem or the Node
//! baseline under bench/), speaking the protocol over WebSocket itself.
//! The server is measured from its own process (/proc/PID), not from here.
//!
//!   tandem-bench connections --url URL --jwt-secret S --server-pid PID --connections 19500
//!   tandem-bench relay       --url URL --jwt-secret S --server-pid PID --pairs 500 --duration 10s
//!   tandem-bench match-storm --url URL --jwt-secret S --server-pid PID --users 10000

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

mod sio;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Scenario {
    /// N authenticated idle connections; the server's RSS per connection.
    Connections,
    /// P matched pairs exchanging text; delivered msg/s, latency, CPU per message.
    Relay,
    /// U users asking to be matched at once; time to match.
    MatchStorm,
}

/// Load generator for Tandem and the Node baseline.
#[derive(Parser, Debug)]
struct Args {
    scenario: Scenario,
    #[arg(long, default_value = "http://127.0.0.1:3001")]
    url: String,
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
    /// Unacknowledged messages a sender may have in flight.
    #[arg(long, default_value_t = 16)]
    window: usize,
    /// Connections opened at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
}

#[derive(serde::Serialize)]
struct Claims {
    sub: String,
    name: String,
    guest: bool,
    iat: i64,
    exp: i64,
}

fn token(secret: &str, i: usize) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: format!("bench{i:08}"),
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
    let Some(pid) = pid else { return (0, 0.0) };
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
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
        .unwrap_or(0);
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(0.0);
    (rss, cpu)
}

async fn connect_many(args: &Args, n: usize, offset: usize) -> Vec<sio::Client> {
    let sem = Arc::new(Semaphore::new(args.concurrency));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (sem, done, url, tok) = (
            sem.clone(),
            done.clone(),
            args.url.clone(),
            token(&args.jwt_secret, offset + i),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await;
            let mut c = sio::connect(&url, &tok).await?;
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

async fn connections(args: &Args) -> Value {
    let (rss0, _) = proc_stats(args.server_pid);
    let clients = connect_many(args, args.connections, 0).await;
    let (rss1, _) = proc_stats(args.server_pid);
    let n = clients.len().max(1) as f64;
    let per = (rss1.saturating_sub(rss0)) as f64 / n;
    println!(
        "connections: {} open; server RSS {:.1} MB -> {:.1} MB; {:.0} bytes per connection",
        clients.len(),
        rss0 as f64 / 1e6,
        rss1 as f64 / 1e6,
        per
    );
    json!({ "scenario": "connections", "connections": clients.len(), "rssBefore": rss0, "rssAfter": rss1, "bytesPerConnection": per })
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

async fn relay(args: &Args) -> Value {
    let mut clients = connect_many(args, args.pairs * 2, 0).await;
    let pairs = pair_up(&mut clients).await;
    eprintln!("  {pairs} pairs matched");
    let start = Instant::now();
    let measure_from = start + Duration::from_millis(500); // let windows fill
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let delivered = Arc::new(AtomicU64::new(0));
    let mut receivers = Vec::new();
    let mut senders = Vec::new();
    for mut c in clients {
        let mut events = std::mem::replace(&mut c.events, tokio::sync::mpsc::unbounded_channel().1);
        let delivered = delivered.clone();
        receivers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while let Ok(Some((ev, data))) =
                tokio::time::timeout_at((end + Duration::from_secs(2)).into(), events.recv()).await
            {
                if ev != "chat:message" {
                    continue;
                }
                let now = Instant::now();
                if now < measure_from || now > end {
                    continue;
                }
                if let Some(sent) = data["content"].as_str().and_then(|s| s.parse::<u64>().ok()) {
                    let at = start + Duration::from_nanos(sent);
                    lat.push(now.saturating_duration_since(at).as_micros() as u64);
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
            lat
        }));
        let (window, rate) = (args.window, args.rate);
        senders.push(tokio::spawn(async move {
            let mut inflight = std::collections::VecDeque::new();
            let gap = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
            let mut next = Instant::now();
            while Instant::now() < end {
                if inflight.len() >= window {
                    let rx: tokio::sync::oneshot::Receiver<Value> = inflight.pop_front().unwrap();
                    // An ack that never comes (the server dropped it) must not stall the run.
                    let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
                }
                if let Some(g) = gap {
                    next += g;
                    tokio::time::sleep_until(next.into()).await;
                }
                let content = start.elapsed().as_nanos().to_string();
                inflight.push_back(c.request(
                    "chat:message",
                    &json!({ "type": "text", "content": content }),
                ));
            }
            c
        }));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let (_, cpu0) = proc_stats(args.server_pid);
    tokio::time::sleep_until(end.into()).await;
    let (rss1, cpu1) = proc_stats(args.server_pid);
    let mut all = Vec::new();
    for r in receivers {
        all.extend(r.await.unwrap_or_default());
    }
    for s in senders {
        let _ = s.await;
    }
    all.sort_unstable();
    let n = all.len() as f64;
    let rate = n / args.duration;
    let cpu = cpu1 - cpu0;
    let us_per = if n > 0.0 { cpu * 1e6 / n } else { f64::NAN };
    println!(
        "relay: {pairs} pairs, {:.0} msg/s delivered; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; server CPU {:.2} s = {:.1} us/msg; RSS {:.1} MB",
        rate,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        percentile(&all, 1.0),
        cpu,
        us_per,
        rss1 as f64 / 1e6
    );
    json!({ "scenario": "relay", "pairs": pairs, "msgPerSec": rate, "p50Ms": percentile(&all, 0.5), "p99Ms": percentile(&all, 0.99),
            "maxMs": percentile(&all, 1.0), "serverCpuSec": cpu, "cpuUsPerMsg": us_per, "rss": rss1 })
}

async fn match_storm(args: &Args) -> Value {
    let clients = connect_many(args, args.users, 0).await;
    let (_, cpu0) = proc_stats(args.server_pid);
    let barrier = Arc::new(tokio::sync::Barrier::new(clients.len()));
    let mut tasks = Vec::new();
    for mut c in clients {
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let t0 = Instant::now();
            let _ack = c.request("user:match", &json!({}));
            let got =
                tokio::time::timeout(Duration::from_secs(30), c.wait_for("user:matched")).await;
            let took = t0.elapsed().as_micros() as u64;
            (
                got.ok()
                    .flatten()
                    .map(|m| m["roomId"].as_str().unwrap_or("").to_string()),
                took,
                c,
            )
        }));
    }
    let mut times = Vec::new();
    let mut rooms = std::collections::HashMap::new();
    for t in tasks {
        if let Ok((Some(room), took, _c)) = t.await {
            times.push(took);
            *rooms.entry(room).or_insert(0u32) += 1;
        }
    }
    let (_, cpu1) = proc_stats(args.server_pid);
    times.sort_unstable();
    let pairs = rooms.values().filter(|n| **n == 2).count();
    println!(
        "match-storm: {} users, {pairs} pairs; time to match p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; server CPU {:.2} s",
        args.users,
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        percentile(&times, 1.0),
        cpu1 - cpu0
    );
    json!({ "scenario": "match-storm", "users": args.users, "pairs": pairs, "p50Ms": percentile(&times, 0.5),
            "p99Ms": percentile(&times, 0.99), "maxMs": percentile(&times, 1.0), "serverCpuSec": cpu1 - cpu0 })
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let result = match args.scenario {
        Scenario::Connections => connections(&args).await,
        Scenario::Relay => relay(&args).await,
        Scenario::MatchStorm => match_storm(&args).await,
    };
    println!("RESULT {result}");
}
