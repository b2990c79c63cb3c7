//! `soak`: virtual users come and go for M minutes the way an anonymous
//! chat's guests do — a fresh guest account 4 times in 5, connect, match,
//! 5–20 messages at ~2/s, sometimes a 20 KB file, then skip, end or an
//! abrupt drop — while the server's RSS, open fds, threads, store file size
//! and upload files are sampled. Prints a table and a summary.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use rand::Rng;
use serde_json::{Value, json};

use crate::{http, sio};

#[derive(Default)]
struct Counters {
    sessions: AtomicU64,
    guests: AtomicU64,
    matched: AtomicU64,
    acked: AtomicU64,
    ack_timeouts: AtomicU64,
    files: AtomicU64,
    drops: AtomicU64,
    errors: AtomicU64,
}

/// Per chat: what each sender had acked, what each receiver got, and who
/// dropped abruptly (messages to them may die in their socket: not counted).
#[derive(Default)]
struct RoomLog {
    acked: Vec<(String, String)>, // (receiver, message id)
    received: HashSet<(String, String)>,
    dropped: HashSet<String>,
    /// Per member: what happened to them in this chat (events other than
    /// messages, their way out), to explain a lost message.
    story: std::collections::HashMap<String, Vec<String>>,
}

type Rooms = Arc<Mutex<HashMap<String, RoomLog>>>;

/// Runs `f` on the log of `room`.
fn with_room(rooms: &Rooms, room: &str, f: impl FnOnce(&mut RoomLog)) {
    f(rooms.lock().unwrap().entry(room.to_string()).or_default());
}

pub struct Sample {
    pub at_min: f64,
    pub rss: u64,
    /// The part of RSS that is anonymous memory (heap, stacks); the rest
    /// is file pages, mostly the executable's own code as it runs.
    pub rss_anon: u64,
    pub fds: usize,
    pub threads: u64,
    pub store_bytes: u64,
    pub upload_files: usize,
    pub sessions: u64,
}

pub struct Soak {
    pub url: String,
    pub users: usize,
    pub minutes: f64,
    pub sample_secs: f64,
    pub settle_secs: f64,
    pub pid: Option<u32>,
    pub store_file: Option<PathBuf>,
    pub upload_dir: Option<PathBuf>,
    pub guest_accounts: bool,
    pub mint: Arc<dyn Fn(usize) -> String + Send + Sync>,
}

fn proc_field(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn sample(s: &Soak, start: Instant, c: &Counters) -> Sample {
    let pid = s.pid.unwrap_or(0);
    Sample {
        at_min: start.elapsed().as_secs_f64() / 60.0,
        rss: proc_field(pid, "VmRSS:") * 1024,
        rss_anon: proc_field(pid, "RssAnon:") * 1024,
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0),
        threads: proc_field(pid, "Threads:"),
        store_bytes: s
            .store_file
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len()),
        upload_files: s
            .upload_dir
            .as_ref()
            .and_then(|d| std::fs::read_dir(d).ok())
            .map_or(0, |d| d.count()),
        sessions: c.sessions.load(Ordering::Relaxed),
    }
}

/// Sends `event` and waits for its ack, recording chat messages that
/// arrive meanwhile; None on timeout. Stops early (None) when the partner
/// goes, if `stop_on_partner` is set.
async fn ack_while_reading(
    c: &mut sio::Client,
    event: &str,
    data: &Value,
    me: &str,
    room: &str,
    rooms: &Rooms,
) -> Option<Value> {
    let mut rx = c.request(event, data);
    let deadline = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(deadline);
    loop {
        // Events first: the client's reader queues every event that came
        // before the ack by the time the ack resolves, and they belong to
        // this room (an unbiased select could return with a message still
        // queued, which the next room would then have counted: the soak's
        // one "lost" message in 800,000).
        tokio::select! {
            biased;
            ev = c.events.recv() => match ev {
                Some((name, body)) => note(&name, &body, me, room, rooms),
                None => return None,
            },
            ack = &mut rx => return ack.ok(),
            () = &mut deadline => return None,
        }
    }
}

fn note(name: &str, body: &Value, me: &str, room: &str, rooms: &Rooms) {
    if name == "chat:message"
        && let Some(id) = body["id"].as_str()
    {
        with_room(rooms, room, |log| {
            log.received.insert((me.to_string(), id.to_string()));
        });
    } else {
        tell(rooms, room, me, name.to_string());
    }
}

/// Sends `events` in turn, reading meanwhile; each answer goes in the
/// member's story.
async fn send_leave(c: &mut sio::Client, events: &[&str], me: &str, room: &str, rooms: &Rooms) {
    for event in events {
        let a = ack_while_reading(c, event, &json!({}), me, room, rooms).await;
        tell(
            rooms,
            room,
            me,
            format!("{event} -> {}", a.unwrap_or_default()),
        );
    }
}

fn tell(rooms: &Rooms, room: &str, me: &str, what: String) {
    with_room(rooms, room, |log| {
        log.story.entry(me.to_string()).or_default().push(what)
    });
}

async fn session(
    s: &Soak,
    i: usize,
    token: &mut Option<String>,
    c: &Counters,
    rooms: &Rooms,
) -> Result<(), String> {
    let coin = rand::rng().random_bool(0.8);
    let fresh = token.is_none() || coin;
    if fresh {
        *token = Some(if s.guest_accounts {
            match http::post_json(&s.url, "/api/auth/guest", &json!({}), None).await? {
                (201, b) => b["data"]["token"].as_str().ok_or("no token")?.to_string(),
                (st, b) => return Err(format!("guest: {st} {b}")),
            }
        } else {
            (s.mint)(i * 1_000_000 + c.sessions.load(Ordering::Relaxed) as usize)
        });
        c.guests.fetch_add(1, Ordering::Relaxed);
    }
    let tok = token.clone().unwrap_or_default();
    let mut client = sio::connect(&s.url, &tok, None).await?;
    let est = tokio::time::timeout(
        Duration::from_secs(10),
        client.wait_for("connection:established"),
    )
    .await
    .map_err(|_| "no connection:established")?
    .ok_or("closed")?;
    let me = est["userId"].as_str().unwrap_or("").to_string();
    c.sessions.fetch_add(1, Ordering::Relaxed);
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        client.request("user:match", &json!({})),
    )
    .await
    .map_err(|_| "match: no ack")?
    .map_err(|_| "match: closed")?;
    // The partner may write before our `user:matched` arrives (the server
    // tells the two members one after the other): keep what comes first.
    let mut early = Vec::new();
    let matched = if r["data"]["status"] == "matched" || r["data"]["status"] == "waiting" {
        tokio::time::timeout(Duration::from_secs(15), async {
            while let Some((name, body)) = client.events.recv().await {
                match name.as_str() {
                    // A token used again within the grace after an abrupt
                    // drop: the server first puts this socket back in the
                    // chat it dropped from (`recovered`), which may end
                    // before our match — that is not the new chat.
                    "user:matched" if body["recovered"] == true => {}
                    "user:matched" => return Some(body),
                    "chat:message" => early.push(body),
                    _ => {}
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    } else {
        None
    };
    let Some(m) = matched else {
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            client.request("user:cancel", &json!({})),
        )
        .await;
        // A match can race the give-up: the server paired us just before
        // the cancel (its `user:matched` came before the cancel's ack, on
        // the same connection). We leave as abruptly as a drop, so what
        // the partner sends us dies with this socket: not counted.
        while let Ok((name, body)) = client.events.try_recv() {
            if name == "user:matched"
                && let Some(room) = body["roomId"].as_str()
            {
                with_room(rooms, room, |log| {
                    log.dropped.insert(me.clone());
                });
            }
        }
        return Ok(());
    };
    c.matched.fetch_add(1, Ordering::Relaxed);
    let room = m["roomId"].as_str().unwrap_or("").to_string();
    let partner = m["matchedUser"]["id"].as_str().unwrap_or("").to_string();
    for body in early {
        note("chat:message", &body, &me, &room, rooms);
    }
    let n: u32 = rand::rng().random_range(5..=20);
    let mut partner_gone = false;
    for k in 0..n {
        let pause: u64 = rand::rng().random_range(300..700);
        let pause = Duration::from_millis(pause);
        let until = tokio::time::sleep(pause);
        tokio::pin!(until);
        loop {
            tokio::select! {
                () = &mut until => break,
                ev = client.events.recv() => match ev {
                    Some((name, body)) => {
                        if (name == "partner:left" || name == "partner:reconnecting")
                            && body["roomId"].as_str().is_none_or(|r| r == room)
                        {
                            partner_gone = true;
                        }
                        note(&name, &body, &me, &room, rooms);
                    }
                    None => {
                        tell(rooms, &room, &me, "connection closed".into());
                        return Ok(());
                    }
                },
            }
        }
        if partner_gone {
            break;
        }
        let with_file = rand::rng().random_bool(0.05);
        let payload = if with_file {
            match http::upload_text(&s.url, "/api/files", &tok, 20 * 1024).await {
                Ok((201, b)) => {
                    c.files.fetch_add(1, Ordering::Relaxed);
                    json!({ "type": "file", "fileId": b["data"]["id"] })
                }
                _ => json!({ "type": "text", "content": format!("m{k}") }),
            }
        } else {
            json!({ "type": "text", "content": format!("message {k} from {i}") })
        };
        match ack_while_reading(&mut client, "chat:message", &payload, &me, &room, rooms).await {
            Some(ack) if ack["success"] == true => {
                c.acked.fetch_add(1, Ordering::Relaxed);
                if let Some(id) = ack["data"]["id"].as_str() {
                    with_room(rooms, &room, |log| {
                        log.acked.push((partner.clone(), id.to_string()))
                    });
                }
            }
            Some(_) => break, // the chat ended under us
            None => {
                c.ack_timeouts.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
    let leave: u32 = rand::rng().random_range(0..100);
    match leave {
        0..45 => send_leave(&mut client, &["user:end"], &me, &room, rooms).await,
        45..80 => {
            send_leave(
                &mut client,
                &["user:skip", "user:cancel"],
                &me,
                &room,
                rooms,
            )
            .await
        }
        _ => {
            c.drops.fetch_add(1, Ordering::Relaxed);
            with_room(rooms, &room, |log| {
                log.dropped.insert(me.clone());
            });
        }
    }
    drop(client);
    Ok(())
}

fn print_row(s: &Sample) {
    println!(
        "{:>6.1} {:>9.1} {:>9.1} {:>6} {:>8} {:>10.1} {:>8} {:>9}",
        s.at_min,
        s.rss as f64 / 1e6,
        s.rss_anon as f64 / 1e6,
        s.fds,
        s.threads,
        s.store_bytes as f64 / 1e6,
        s.upload_files,
        s.sessions
    );
}

pub async fn run(s: Soak) -> Value {
    let s = Arc::new(s);
    let counters = Arc::new(Counters::default());
    let rooms: Rooms = Arc::default();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(s.minutes * 60.0);
    println!(
        "{:>6} {:>9} {:>9} {:>6} {:>8} {:>10} {:>8} {:>9}",
        "min", "rss MB", "anon MB", "fds", "threads", "store MB", "uploads", "sessions"
    );
    let first = sample(&s, start, &counters);
    print_row(&first);
    let mut samples = vec![first];
    let mut vus = Vec::new();
    for i in 0..s.users {
        let (s, c, rooms) = (s.clone(), counters.clone(), rooms.clone());
        vus.push(tokio::spawn(async move {
            // Spread the starts over a few seconds.
            tokio::time::sleep(Duration::from_millis((i as u64 * 20) % 5000)).await;
            let mut token = None;
            while Instant::now() < end {
                if let Err(e) = session(&s, i, &mut token, &c, &rooms).await {
                    c.errors.fetch_add(1, Ordering::Relaxed);
                    if c.errors.load(Ordering::Relaxed) < 10 {
                        eprintln!("  session error: {e}");
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }));
    }
    let every = Duration::from_secs_f64(s.sample_secs);
    let mut next = start + every;
    while next <= end {
        tokio::time::sleep_until(next.into()).await;
        let smp = sample(&s, start, &counters);
        print_row(&smp);
        samples.push(smp);
        next += every;
    }
    for v in vus {
        let _ = v.await;
    }
    // Load is over and every socket closed: let the server settle.
    tokio::time::sleep(Duration::from_secs_f64(s.settle_secs)).await;
    let after = sample(&s, start, &counters);
    print!("after: ");
    print_row(&after);

    let (mut lost, mut checked) = (0u64, 0u64);
    let rooms = rooms.lock().unwrap();
    for (room, log) in rooms.iter() {
        for (to, id) in &log.acked {
            if log.dropped.contains(to) {
                continue;
            }
            checked += 1;
            if !log.received.contains(&(to.clone(), id.clone())) {
                lost += 1;
                if lost <= 5 {
                    eprintln!(
                        "  lost: message {id} to {to} in {room}; what they saw: {:?}",
                        log.story.get(to)
                    );
                    // Where else the receiver was: a message noted under
                    // another chat shows up there.
                    for (other, o) in rooms.iter().filter(|(r, _)| *r != room) {
                        if let Some(story) = o.story.get(to) {
                            eprintln!("    {to} in {other}: {story:?}");
                        }
                        if o.received.contains(&(to.clone(), id.clone())) {
                            eprintln!("    {to} got {id} while in {other}");
                        }
                    }
                }
            }
        }
    }
    let at5 = samples
        .iter()
        .find(|x| x.at_min >= 5.0 - 1e-6)
        .or(samples.get(1))
        .unwrap_or(&samples[0]);
    let last = samples.last().unwrap_or(&samples[0]);
    let c = &counters;
    let growth = |a: u64, b: u64| {
        if a == 0 {
            f64::NAN
        } else {
            (b as f64 / a as f64 - 1.0) * 100.0
        }
    };
    println!(
        "soak: {} users, {:.1} min: {} sessions, {} guests, {} chats, {} acked messages ({} checked, {} lost), {} ack timeouts, {} files, {} drops, {} errors",
        s.users,
        s.minutes,
        c.sessions.load(Ordering::Relaxed),
        c.guests.load(Ordering::Relaxed),
        c.matched.load(Ordering::Relaxed) / 2,
        c.acked.load(Ordering::Relaxed),
        checked,
        lost,
        c.ack_timeouts.load(Ordering::Relaxed),
        c.files.load(Ordering::Relaxed),
        c.drops.load(Ordering::Relaxed),
        c.errors.load(Ordering::Relaxed)
    );
    // One memory figure over the run: start, minute 5, end, after the load.
    let course = |of: fn(&Sample) -> u64| {
        let mb = |smp: &Sample| of(smp) as f64 / 1e6;
        format!(
            "{:.1} MB at start, {:.1} MB at minute {:.0}, {:.1} MB at the end ({:+.1} %), {:.1} MB after the load",
            mb(&samples[0]),
            mb(at5),
            at5.at_min,
            mb(last),
            growth(of(at5), of(last)),
            mb(&after)
        )
    };
    println!(
        "RSS {}; fds {} -> {} -> {}; upload files {} -> {}",
        course(|s| s.rss),
        samples[0].fds,
        last.fds,
        after.fds,
        samples[0].upload_files,
        after.upload_files
    );
    println!(
        "of which anonymous (heap, stacks; the rest is file pages, mostly the executable's code): {}",
        course(|s| s.rss_anon)
    );
    json!({
        "scenario": "soak", "users": s.users, "minutes": s.minutes,
        "sessions": c.sessions.load(Ordering::Relaxed), "guests": c.guests.load(Ordering::Relaxed),
        "acked": c.acked.load(Ordering::Relaxed), "checked": checked, "lost": lost,
        "ackTimeouts": c.ack_timeouts.load(Ordering::Relaxed), "errors": c.errors.load(Ordering::Relaxed),
        "rssStart": samples[0].rss, "rssAt5": at5.rss, "rssEnd": last.rss, "rssAfter": after.rss,
        "rssGrowthPct": growth(at5.rss, last.rss),
        "anonStart": samples[0].rss_anon, "anonAt5": at5.rss_anon, "anonEnd": last.rss_anon,
        "anonAfter": after.rss_anon, "anonGrowthPct": growth(at5.rss_anon, last.rss_anon),
        "fdsStart": samples[0].fds, "fdsAfter": after.fds,
        "uploadsStart": samples[0].upload_files, "uploadsAfter": after.upload_files,
        "storeBytesEnd": last.store_bytes,
    })
}
