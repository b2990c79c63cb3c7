//! `call`: P participants in one group call through the server's SFU. Each
//! participant is a str0m WebRTC client on its own UDP socket, signaling
//! over Socket.IO like the web page does, publishing synthetic Opus (50
//! frames/s) and VP8 (30 frames/s) and receiving everyone else's. Reports
//! frames delivered per second and the server's CPU and memory per
//! forwarded stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;

use crate::{Args, connect_many, http, proc_stats, rss_of, sio};

/// The server's live heap (jemalloc's allocated bytes), if it tells.
async fn heap(url: &str, token: &Option<String>) -> Option<f64> {
    let token = token.as_deref()?;
    let (status, body) = http::get_json(url, "/api/socket/stats", token).await.ok()?;
    (status == 200)
        .then(|| body["data"]["heap"]["allocatedBytes"].as_f64())
        .flatten()
}

const AUDIO_FPS: u64 = 50;
const VIDEO_FPS: u64 = 30;
const AUDIO_BYTES: usize = 80;

struct Counters {
    frames: AtomicU64,
    bytes: AtomicU64,
    /// Participants receiving from everyone else.
    complete: AtomicU64,
}

async fn ack(c: &mut sio::Client, event: &str, data: Value) -> Result<Value, String> {
    let rx = c.request(event, &data);
    match tokio::time::timeout(Duration::from_secs(10), rx).await {
        Ok(Ok(v)) if v["success"] == true => Ok(v["data"].clone()),
        Ok(Ok(v)) => Err(format!("{event}: {v}")),
        _ => Err(format!("{event}: no ack")),
    }
}

/// One participant: join, then pump media until `end`.
#[allow(clippy::too_many_arguments)]
async fn participant(
    mut c: sio::Client,
    call_id: String,
    others: usize,
    video_bytes: usize,
    counting: Arc<std::sync::atomic::AtomicBool>,
    counters: Arc<Counters>,
    end: Instant,
) -> Result<(), String> {
    let udp = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let local = udp.local_addr().map_err(|e| e.to_string())?;
    let mut rtc = Rtc::builder().build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").map_err(|e| e.to_string())?);
    let mut api = rtc.sdp_api();
    let audio = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let video = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, pending) = api.apply().ok_or("no offer")?;
    let joined = ack(
        &mut c,
        "call:join",
        json!({ "callId": call_id, "sdp": { "type": "offer", "sdp": offer.to_sdp_string() } }),
    )
    .await?;
    let answer = SdpAnswer::from_sdp_string(joined["sdp"]["sdp"].as_str().unwrap_or(""))
        .map_err(|e| e.to_string())?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 2048];
    let mut senders: std::collections::HashSet<str0m::media::Mid> = Default::default();
    let mut complete = false;
    let start = Instant::now();
    let mut audio_n = 0u64;
    let mut video_n = 0u64;
    let mut connected = false;
    loop {
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        // Publish what is due.
        if connected {
            let elapsed = now - start;
            while audio_n * 1000 / AUDIO_FPS <= elapsed.as_millis() as u64 {
                write(
                    &mut rtc,
                    audio,
                    Codec::Opus,
                    audio_n,
                    AUDIO_FPS,
                    vec![0xfc; AUDIO_BYTES],
                );
                audio_n += 1;
            }
            while video_n * 1000 / VIDEO_FPS <= elapsed.as_millis() as u64 {
                let mut frame = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00];
                frame.resize(video_bytes, video_n as u8);
                write(&mut rtc, video, Codec::Vp8, video_n, VIDEO_FPS, frame);
                video_n += 1;
            }
        }
        // Drain output.
        let timeout = loop {
            match rtc.poll_output().map_err(|e| e.to_string())? {
                Output::Timeout(t) => break t,
                Output::Transmit(t) => {
                    let _ = udp.send_to(&t.contents, t.destination).await;
                }
                Output::Event(e) => match e {
                    Event::Connected => connected = true,
                    Event::MediaData(d) => {
                        senders.insert(d.mid);
                        if !complete && senders.len() >= others * 2 {
                            complete = true;
                            counters.complete.fetch_add(1, Ordering::Relaxed);
                        }
                        if counting.load(Ordering::Relaxed) {
                            counters.frames.fetch_add(1, Ordering::Relaxed);
                            counters
                                .bytes
                                .fetch_add(d.data.len() as u64, Ordering::Relaxed);
                        }
                    }
                    _ => {}
                },
            }
        };
        let next_frame = start
            + Duration::from_millis((audio_n * 1000 / AUDIO_FPS).min(video_n * 1000 / VIDEO_FPS));
        let wake = timeout.min(next_frame.max(now)).min(end);
        tokio::select! {
            r = udp.recv_from(&mut buf) => {
                if let Ok((n, source)) = r
                    && let Ok(r) = Receive::new(Protocol::Udp, source, local, &buf[..n])
                {
                    rtc.handle_input(Input::Receive(Instant::now(), r)).map_err(|e| e.to_string())?;
                }
            }
            ev = c.events.recv() => {
                let Some((name, data)) = ev else { return Err("socket closed".into()) };
                if name == "call:signal" && data["sdp"]["type"] == "offer" {
                    let offer = SdpOffer::from_sdp_string(data["sdp"]["sdp"].as_str().unwrap_or(""))
                        .map_err(|e| e.to_string())?;
                    let answer = rtc.sdp_api().accept_offer(offer).map_err(|e| e.to_string())?;
                    ack(&mut c, "call:signal", json!({
                        "callId": call_id, "sdp": { "type": "answer", "sdp": answer.to_sdp_string() }
                    })).await?;
                }
            }
            () = tokio::time::sleep_until(wake.into()) => {}
        }
        rtc.handle_input(Input::Timeout(Instant::now()))
            .map_err(|e| e.to_string())?;
    }
}

fn write(rtc: &mut Rtc, mid: str0m::media::Mid, codec: Codec, n: u64, fps: u64, data: Vec<u8>) {
    let Some(w) = rtc.writer(mid) else { return };
    let Some(pt) = w
        .payload_params()
        .find(|p| p.spec().codec == codec)
        .map(|p| p.pt())
    else {
        return;
    };
    let _ = w.write(
        pt,
        Instant::now(),
        MediaTime::from_millis(n * 1000 / fps),
        data,
    );
}

pub async fn call(args: &Args) -> Value {
    let n = args.participants.max(2);
    let room = args.room.clone();
    let mut clients = connect_many(args, n, 0).await;
    if clients.len() < 2 {
        return json!({ "scenario": "call", "error": "could not connect the participants" });
    }
    for c in clients.iter_mut() {
        if let Err(e) = ack(c, "room:join", json!({ "roomId": room })).await {
            eprintln!("  {e}");
        }
    }
    let call_id = match ack(&mut clients[0], "call:start", json!({ "roomId": room })).await {
        Ok(v) => v["callId"].as_str().unwrap_or("").to_string(),
        Err(e) => {
            eprintln!("  {e}");
            return json!({ "scenario": "call", "error": e });
        }
    };
    let stats_token = match http::post_json(&args.url, "/api/auth/guest", &json!({}), None).await {
        Ok((201, body)) => body["data"]["token"].as_str().map(str::to_string),
        _ => None,
    };
    let heap_before = heap(&args.url, &stats_token).await;
    let rss_before = rss_of(args.server_pid);
    let counters = Arc::new(Counters {
        frames: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        complete: AtomicU64::new(0),
    });
    let counting = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let warmup = Duration::from_secs(5);
    let end =
        Instant::now() + warmup + Duration::from_secs_f64(args.duration) + Duration::from_secs(1);
    let mut tasks = Vec::new();
    for c in clients {
        tasks.push(tokio::spawn(participant(
            c,
            call_id.clone(),
            n - 1,
            args.video_frame_bytes,
            counting.clone(),
            counters.clone(),
            end,
        )));
    }
    // Warm up until everyone receives everyone (or the warm-up ends).
    let warm_until = Instant::now() + warmup;
    while Instant::now() < warm_until && counters.complete.load(Ordering::Relaxed) < n as u64 {
        tokio::time::sleep(Duration::from_millis(50)).await; // poll interval
    }
    let complete = counters.complete.load(Ordering::Relaxed);
    counting.store(true, Ordering::Relaxed);
    let (_, cpu0) = proc_stats(args.server_pid);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let (rss, cpu1) = proc_stats(args.server_pid);
    let secs = t0.elapsed().as_secs_f64();
    let heap_after = heap(&args.url, &stats_token).await;
    let heap_growth = heap_before.zip(heap_after).map(|(b, a)| a - b);
    counting.store(false, Ordering::Relaxed);
    let frames = counters.frames.load(Ordering::Relaxed) as f64;
    let bytes = counters.bytes.load(Ordering::Relaxed) as f64;
    let mut failed = 0;
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                failed += 1;
                eprintln!("  participant: {e}");
            }
            Err(e) => {
                failed += 1;
                eprintln!("  participant task: {e}");
            }
        }
    }
    // Audio and video from each of the others.
    let streams = n * (n - 1) * 2;
    let cpu = cpu1 - cpu0;
    let expected = (n * (n - 1)) as f64 * (AUDIO_FPS + VIDEO_FPS) as f64 * secs;
    let result = json!({
        "scenario": "call",
        "participants": n,
        "forwardedStreams": streams,
        "receivingFromAll": complete,
        "failed": failed,
        "framesPerSec": frames / secs,
        "deliveredShare": if expected > 0.0 { frames / expected } else { 0.0 },
        "mbitPerSecOut": bytes * 8.0 / secs / 1e6,
        "serverCpuPercent": cpu / secs * 100.0,
        "cpuPerStreamPercent": cpu / secs * 100.0 / streams as f64,
        "cpuUsPerFrame": if frames > 0.0 { cpu * 1e6 / frames } else { 0.0 },
        "rssGrowthMb": (rss as f64 - rss_before as f64) / 1e6,
        "rssPerParticipantKb": (rss as f64 - rss_before as f64) / 1e3 / n as f64,
        "heapGrowthMb": heap_growth.map(|h| h / 1e6),
        "heapPerParticipantKb": heap_growth.map(|h| h / 1e3 / n as f64),
    });
    eprintln!(
        "  {n} participants, {streams} streams: {:.0} frames/s delivered ({:.1}% of sent), server CPU {:.1}% ({:.2}% per stream, {:.1} µs per frame), RSS +{:.1} MB, heap +{:.1} MB",
        frames / secs,
        result["deliveredShare"].as_f64().unwrap_or(0.0) * 100.0,
        cpu / secs * 100.0,
        cpu / secs * 100.0 / streams as f64,
        result["cpuUsPerFrame"].as_f64().unwrap_or(0.0),
        result["rssGrowthMb"].as_f64().unwrap_or(0.0),
        heap_growth.unwrap_or(0.0) / 1e6,
    );
    result
}
