//! Spike for #16: the two WebRTC stacks the issue named, as a media server
//! forwarding one participant's audio and video, measured the same way.
//!
//! A str0m client publishes Opus (50 frames/s, 80 bytes) and VP8 (30
//! frames/s, 2,500 bytes) for 20 s of simulated time to a server that
//! reflects every frame back to it (the smallest forwarding an SFU does),
//! over an in-memory network:
//! - `str0m`: str0m 0.23 (rust-crypto), frame-level (`MediaData` in, `Writer` out);
//! - `rtc`: webrtc-rs's sans-I/O core `rtc` 0.21 (ring), packet-level
//!   (`RtpPacket` in, `write_rtp` out), as its `reflect` example does.
//!
//! For each: server CPU (time spent inside the server's calls; one thread,
//! no I/O, so time is CPU) per frame the client got back, and the heap the
//! server holds at the end (a counting allocator charges allocations made
//! inside the server's calls to it, and frees made there back).
//!
//!     cargo run --release -- [str0m|rtc|both]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

struct Counting;
static SERVER_HEAP: AtomicI64 = AtomicI64::new(0);
static SERVER_NANOS: AtomicU64 = AtomicU64::new(0);
thread_local! { static IN_SERVER: Cell<bool> = const { Cell::new(false) }; }

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if IN_SERVER.with(Cell::get) {
            SERVER_HEAP.fetch_add(l.size() as i64, Ordering::Relaxed);
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if IN_SERVER.with(Cell::get) {
            SERVER_HEAP.fetch_sub(l.size() as i64, Ordering::Relaxed);
        }
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if IN_SERVER.with(Cell::get) {
            SERVER_HEAP.fetch_add(new as i64 - l.size() as i64, Ordering::Relaxed);
        }
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Runs `f` as the server: its time and its heap are the server's.
fn server<T>(f: impl FnOnce() -> T) -> T {
    IN_SERVER.with(|c| c.set(true));
    let t = Instant::now();
    let r = f();
    SERVER_NANOS.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
    IN_SERVER.with(|c| c.set(false));
    r
}

const CLIENT: &str = "10.0.1.2:5000";
const SERVER: &str = "10.0.0.1:3479";

/// A datagram, copied out of the server's buffers without a heap allocation.
struct Dg {
    len: usize,
    buf: [u8; 1600],
}

trait Server {
    fn answer(&mut self, now: Instant, offer: &str) -> String;
    fn receive(&mut self, now: Instant, from: SocketAddr, data: &[u8]);
    /// Drives time, reflects media, and copies datagrams out into `out`.
    fn poll(&mut self, now: Instant, out: &mut Vec<Dg>);
}

fn copy_out(out: &mut Vec<Dg>, data: &[u8]) {
    let mut d = Dg {
        len: data.len(),
        buf: [0; 1600],
    };
    d.buf[..data.len()].copy_from_slice(data);
    out.push(d);
}

// ---- str0m as the server --------------------------------------------------

struct Str0mServer {
    rtc: Rtc,
}

impl Server for Str0mServer {
    fn answer(&mut self, _now: Instant, offer: &str) -> String {
        let offer = str0m::change::SdpOffer::from_sdp_string(offer).unwrap();
        self.rtc
            .sdp_api()
            .accept_offer(offer)
            .unwrap()
            .to_sdp_string()
    }
    fn receive(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let r = Receive::new(Protocol::Udp, from, SERVER.parse().unwrap(), data).unwrap();
        self.rtc.handle_input(Input::Receive(now, r)).unwrap();
    }
    fn poll(&mut self, now: Instant, out: &mut Vec<Dg>) {
        self.rtc.handle_input(Input::Timeout(now)).unwrap();
        loop {
            match self.rtc.poll_output().unwrap() {
                Output::Timeout(_) => break,
                Output::Transmit(t) => copy_out(out, &t.contents),
                Output::Event(Event::MediaData(d)) => {
                    if let Some(w) = self.rtc.writer(d.mid)
                        && let Some(pt) = w.match_params(d.params)
                    {
                        w.write(pt, d.network_time, d.time, d.data).unwrap();
                    }
                }
                Output::Event(_) => {}
            }
        }
    }
}

fn str0m_server(now: Instant) -> Str0mServer {
    let buffer: usize = std::env::var("SEND_BUFFER_VIDEO").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let mut rtc = Rtc::builder()
        .set_send_buffer_video(buffer)
        .set_ice_lite(true)
        .clear_codecs()
        .enable_opus(true)
        .enable_vp8(true)
        .build(now);
    rtc.add_local_candidate(Candidate::host(SERVER.parse().unwrap(), "udp").unwrap());
    Str0mServer { rtc }
}

// ---- webrtc-rs's rtc as the server -----------------------------------------

mod rtc_server {
    use super::*;
    use bytes::BytesMut;
    use rtc::interceptor::Registry;
    use rtc::media_stream::MediaStreamTrack;
    use rtc::peer_connection::RTCPeerConnection;
    use rtc::peer_connection::RTCPeerConnectionBuilder;
    use rtc::peer_connection::configuration::RTCConfigurationBuilder;
    use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
    use rtc::peer_connection::configuration::media_engine::{
        MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine,
    };
    use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
    use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
    use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
    use rtc::peer_connection::sdp::RTCSessionDescription;
    use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
    use rtc::rtp_transceiver::rtp_sender::{
        RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
        RtpCodecKind,
    };
    use rtc::sansio::Protocol as _;
    use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
    use std::collections::HashMap;

    pub struct RtcServer {
        pc: RTCPeerConnection,
        senders: HashMap<RtpCodecKind, rtc::rtp_transceiver::RTCRtpSenderId>,
        track_to_receiver: HashMap<String, rtc::rtp_transceiver::RTCRtpReceiverId>,
    }

    pub fn new(now: Instant) -> RtcServer {
        let setting_engine = SettingEngineBuilder::new().with_lite(true).build();
        let mut media_engine = MediaEngine::default();
        let audio = RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_OPUS.to_owned(),
                clock_rate: 48000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                rtcp_feedback: vec![],
            },
            payload_type: 111,
            ..Default::default()
        };
        let video = RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_VP8.to_owned(),
                clock_rate: 90000,
                channels: 0,
                sdp_fmtp_line: "".to_owned(),
                rtcp_feedback: vec![],
            },
            payload_type: 96,
            ..Default::default()
        };
        media_engine
            .register_codec(audio.clone(), RtpCodecKind::Audio)
            .unwrap();
        media_engine
            .register_codec(video.clone(), RtpCodecKind::Video)
            .unwrap();
        let registry = register_default_interceptors(Registry::new(), &mut media_engine).unwrap();
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_setting_engine(setting_engine)
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .build(now)
            .unwrap();
        let mut senders = HashMap::new();
        for (kind, codec) in [(RtpCodecKind::Audio, audio), (RtpCodecKind::Video, video)] {
            let track = MediaStreamTrack::new(
                format!("reflect-{kind}"),
                format!("reflect-{kind}-track"),
                format!("reflect-{kind}"),
                kind,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(0x1000 + kind as u32),
                        ..Default::default()
                    },
                    codec: codec.rtp_codec.clone(),
                    ..Default::default()
                }],
            );
            senders.insert(kind, pc.add_track(track).unwrap());
        }
        RtcServer {
            pc,
            senders,
            track_to_receiver: HashMap::new(),
        }
    }

    impl Server for RtcServer {
        fn answer(&mut self, now: Instant, offer: &str) -> String {
            let offer = RTCSessionDescription::offer(offer.to_string()).unwrap();
            self.pc.set_remote_description(now, offer).unwrap();
            let addr: SocketAddr = SERVER.parse().unwrap();
            let candidate = CandidateHostConfig {
                base_config: CandidateConfig {
                    network: "udp".to_owned(),
                    address: addr.ip().to_string(),
                    port: addr.port(),
                    component: 1,
                    ..Default::default()
                },
                ..Default::default()
            }
            .new_candidate_host()
            .unwrap();
            self.pc
                .add_local_candidate(RTCIceCandidate::from(&candidate).to_json().unwrap())
                .unwrap();
            let answer = self.pc.create_answer(None).unwrap();
            self.pc.set_local_description(now, answer).unwrap();
            self.pc.local_description().unwrap().sdp
        }

        fn receive(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
            let _ = self.pc.handle_read(TaggedBytesMut {
                now,
                transport: TransportContext {
                    local_addr: SERVER.parse().unwrap(),
                    peer_addr: from,
                    ecn: None,
                    transport_protocol: TransportProtocol::UDP,
                },
                message: BytesMut::from(data),
            });
        }

        fn poll(&mut self, now: Instant, out: &mut Vec<Dg>) {
            if self.pc.poll_timeout().is_some_and(|t| t <= now) {
                let _ = self.pc.handle_timeout(now);
            }
            loop {
                let mut progressed = false;
                while let Some(event) = self.pc.poll_event() {
                    progressed = true;
                    if let RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) = event {
                        self.track_to_receiver
                            .insert(init.track_id.to_string(), init.receiver_id);
                    }
                }
                while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
                    progressed = true;
                    if let RTCMessage::RtpPacket(track_id, mut packet) = message {
                        let Some(receiver_id) = self.track_to_receiver.get(&track_id.to_string())
                        else {
                            continue;
                        };
                        let kind = match self.pc.rtp_receiver(*receiver_id) {
                            Some(r) => r.track().kind(),
                            None => continue,
                        };
                        let Some(sender_id) = self.senders.get(&kind).copied() else {
                            continue;
                        };
                        let Some(mut sender) = self.pc.rtp_sender(sender_id) else {
                            continue;
                        };
                        packet.header.ssrc = match sender.track().ssrcs().last() {
                            Some(s) => s,
                            None => continue,
                        };
                        packet.header.payload_type = if kind == RtpCodecKind::Audio { 111 } else { 96 };
                        let _ = sender.write_rtp(now, packet);
                    }
                }
                while let Some(msg) = self.pc.poll_write() {
                    progressed = true;
                    copy_out(out, &msg.message);
                }
                if !progressed {
                    break;
                }
            }
        }
    }
}

// ---- the client and the run -------------------------------------------------

struct Client {
    rtc: Rtc,
    audio: Mid,
    video: Mid,
    connected: bool,
    frames_back: u64,
}

fn client(now: Instant) -> (Client, String, str0m::change::SdpPendingOffer) {
    let mut rtc = Rtc::builder()
        .clear_codecs()
        .enable_opus(true)
        .enable_vp8(true)
        .build(now);
    rtc.add_local_candidate(Candidate::host(CLIENT.parse().unwrap(), "udp").unwrap());
    let mut api = rtc.sdp_api();
    let audio = api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let video = api.add_media(MediaKind::Video, Direction::SendRecv, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    (
        Client {
            rtc,
            audio,
            video,
            connected: false,
            frames_back: 0,
        },
        offer.to_sdp_string(),
        pending,
    )
}

fn write(rtc: &mut Rtc, mid: Mid, codec: Codec, now: Instant, t: MediaTime, data: Vec<u8>) {
    let Some(w) = rtc.writer(mid) else { return };
    let Some(pt) = w
        .payload_params()
        .find(|p| p.spec().codec == codec)
        .map(|p| p.pt())
    else {
        return;
    };
    let _ = w.write(pt, now, t, data);
}

fn run(name: &str, make: impl FnOnce(Instant) -> Box<dyn Server>, seconds: u64) {
    SERVER_HEAP.store(0, Ordering::Relaxed);
    SERVER_NANOS.store(0, Ordering::Relaxed);
    let mut now = Instant::now();
    let (mut c, offer, pending) = client(now);
    let mut s = server(|| make(now));
    let answer = server(|| s.answer(now, &offer));
    c.rtc
        .sdp_api()
        .accept_answer(
            pending,
            str0m::change::SdpAnswer::from_sdp_string(&answer).unwrap(),
        )
        .unwrap();
    let heap_after_setup = SERVER_HEAP.load(Ordering::Relaxed);
    let mut out: Vec<Dg> = Vec::with_capacity(4096);
    let step = Duration::from_millis(5);
    let (mut audio_n, mut video_n) = (0u64, 0u64);
    let start = now;
    let mut counted_from = None;
    let mut frames_at_count = 0;
    let mut nanos_at_count = 0;
    for tick in 0..(seconds * 1000 / 5) {
        now += step;
        let ms = tick * 5;
        if c.connected {
            while audio_n * 20 <= ms {
                write(&mut c.rtc, c.audio, Codec::Opus, now, MediaTime::from_millis(audio_n * 20), vec![0xfc; 80]);
                audio_n += 1;
            }
            while video_n * 1000 / 30 <= ms {
                let mut f = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00];
                f.resize(2500, video_n as u8);
                write(&mut c.rtc, c.video, Codec::Vp8, now, MediaTime::from_millis(video_n * 1000 / 30), f);
                video_n += 1;
            }
        }
        c.rtc.handle_input(Input::Timeout(now)).unwrap();
        loop {
            match c.rtc.poll_output().unwrap() {
                Output::Timeout(_) => break,
                Output::Transmit(t) => {
                    let from: SocketAddr = CLIENT.parse().unwrap();
                    server(|| s.receive(now, from, &t.contents));
                }
                Output::Event(Event::Connected) => c.connected = true,
                Output::Event(Event::MediaData(_)) => c.frames_back += 1,
                Output::Event(_) => {}
            }
        }
        server(|| s.poll(now, &mut out));
        for d in out.drain(..) {
            let r = Receive::new(Protocol::Udp, SERVER.parse().unwrap(), CLIENT.parse().unwrap(), &d.buf[..d.len]).unwrap();
            c.rtc.handle_input(Input::Receive(now, r)).unwrap();
        }
        // Measure the last part, once media flows both ways.
        if counted_from.is_none() && c.frames_back > 0 && now - start > Duration::from_secs(2) {
            counted_from = Some(now);
            frames_at_count = c.frames_back;
            nanos_at_count = SERVER_NANOS.load(Ordering::Relaxed);
        }
    }
    let frames = c.frames_back - frames_at_count;
    let nanos = SERVER_NANOS.load(Ordering::Relaxed) - nanos_at_count;
    let sent = audio_n + video_n;
    println!(
        "{name:6} frames sent {sent:5}, reflected back {:5} | server CPU per reflected frame {:6.2} µs | server heap: after setup {:7.1} KB, at the end {:7.1} KB",
        c.frames_back,
        if frames > 0 { nanos as f64 / 1e3 / frames as f64 } else { f64::NAN },
        heap_after_setup as f64 / 1e3,
        SERVER_HEAP.load(Ordering::Relaxed) as f64 / 1e3,
    );
    drop(s);
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "both".into());
    let seconds = 20;
    for round in 0..3 {
        println!("round {}", round + 1);
        if which == "both" || which == "str0m" {
            run("str0m", |now| Box::new(str0m_server(now)), seconds);
        }
        if which == "both" || which == "rtc" {
            run("rtc", |now| Box::new(rtc_server::new(now)), seconds);
        }
    }
}
