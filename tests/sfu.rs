//! The media server, sans-I/O: str0m clients talk to [`Sfu`] over an
//! in-memory network on simulated time. A publisher's frames reach the
//! call's other participants (and no one else), a late joiner is offered
//! the existing tracks, a subscriber's keyframe request reaches the
//! publisher, and a leaver's tracks are stopped for the others.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tandem::sfu::{Datagram, Notice, PeerId, Sdp, SdpKind, Sfu, SfuConfig};

const SFU: &str = "10.0.0.1:3479";

struct Client {
    peer: PeerId,
    /// Publishes frames (when connected).
    sending: bool,
    addr: SocketAddr,
    rtc: Rtc,
    connected: bool,
    /// mid → (kind, stream id) of what we receive.
    incoming: HashMap<Mid, (MediaKind, Option<String>)>,
    /// Frames received per incoming mid.
    frames: HashMap<Mid, Vec<Vec<u8>>>,
    /// Our published tracks.
    audio: Option<Mid>,
    video: Option<Mid>,
    keyframe_requests: usize,
    stopped: Vec<Mid>,
}

impl Client {
    fn new(peer: PeerId, n: u8, now: Instant) -> Self {
        let addr: SocketAddr = format!("10.0.1.{n}:5000").parse().unwrap();
        let mut rtc = Rtc::builder().build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        Client {
            peer,
            sending: true,
            addr,
            rtc,
            connected: false,
            incoming: HashMap::new(),
            frames: HashMap::new(),
            audio: None,
            video: None,
            keyframe_requests: 0,
            stopped: Vec::new(),
        }
    }

    /// Our offer: audio and video to publish.
    fn offer(&mut self, stream: &str) -> (String, SdpPendingOffer) {
        let mut api = self.rtc.sdp_api();
        self.audio = Some(api.add_media(
            MediaKind::Audio,
            Direction::SendOnly,
            Some(stream.into()),
            None,
            None,
        ));
        self.video = Some(api.add_media(
            MediaKind::Video,
            Direction::SendOnly,
            Some(stream.into()),
            None,
            None,
        ));
        let (offer, pending) = api.apply().unwrap();
        (offer.to_sdp_string(), pending)
    }

    fn publish(&mut self, now: Instant, n: u64) {
        if !self.connected || !self.sending {
            return;
        }
        for (mid, codec, data) in [
            (self.audio, Codec::Opus, vec![0xfc, n as u8, 1, 2, 3]),
            // A VP8 key frame's first bytes, then filler.
            (self.video, Codec::Vp8, {
                let mut v = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00];
                v.extend(std::iter::repeat_n(n as u8, 200));
                v
            }),
        ] {
            let Some(mid) = mid else { continue };
            let Some(w) = self.rtc.writer(mid) else {
                continue;
            };
            let Some(pt) = w
                .payload_params()
                .find(|p| p.spec().codec == codec)
                .map(|p| p.pt())
            else {
                continue;
            };
            let t = MediaTime::from_millis(n * 20);
            w.write(pt, now, t, data).unwrap();
        }
    }
}

struct Net {
    sfu: Sfu,
    sfu_addr: SocketAddr,
    clients: Vec<Client>,
    now: Instant,
    notices: Vec<Notice>,
    tick: u64,
}

impl Net {
    fn new() -> Self {
        Self::with(10_000_000)
    }

    fn with(max_bitrate: u64) -> Self {
        let sfu_addr: SocketAddr = SFU.parse().unwrap();
        Net {
            sfu: Sfu::new(SfuConfig {
                public: sfu_addr,
                max_bitrate,
                idle_timeout: Duration::from_secs(30),
            }),
            sfu_addr,
            clients: Vec::new(),
            now: Instant::now(),
            notices: Vec::new(),
            tick: 0,
        }
    }

    fn join(&mut self, call: &str, user: &str) -> usize {
        let n = self.clients.len() as u8 + 2;
        let mut c = Client::new(n as u64, n, self.now);
        let (offer, pending) = c.offer(user);
        let answer = self
            .sfu
            .join(self.now, c.peer, call, user, Some(&offer))
            .unwrap();
        assert_eq!(answer.kind, SdpKind::Answer);
        c.rtc
            .sdp_api()
            .accept_answer(pending, SdpAnswer::from_sdp_string(&answer.sdp).unwrap())
            .unwrap();
        self.clients.push(c);
        self.clients.len() - 1
    }

    /// Runs the network for `ms` of simulated time, 5 ms a step, with
    /// every connected client publishing a frame every 20 ms.
    fn run(&mut self, ms: u64) {
        for _ in 0..ms / 5 {
            self.now += Duration::from_millis(5);
            self.tick += 1;
            let now = self.now;
            if self.tick.is_multiple_of(4) {
                let n = self.tick / 4;
                for c in &mut self.clients {
                    c.publish(now, n);
                }
            }
            for c in &mut self.clients {
                c.rtc.handle_input(Input::Timeout(now)).unwrap();
                loop {
                    match c.rtc.poll_output().unwrap() {
                        Output::Timeout(_) => break,
                        Output::Transmit(t) => {
                            assert_eq!(t.destination, self.sfu_addr);
                            self.sfu.receive(now, c.addr, &t.contents);
                        }
                        Output::Event(e) => match e {
                            Event::Connected => c.connected = true,
                            Event::MediaAdded(m) if m.direction == Direction::RecvOnly => {
                                let stream = c.rtc.media(m.mid).map(|x| x.stream_id().to_string());
                                c.incoming.insert(m.mid, (m.kind, stream));
                            }
                            Event::MediaData(d) => {
                                c.frames.entry(d.mid).or_default().push(d.data.to_vec())
                            }
                            Event::KeyframeRequest(_) => c.keyframe_requests += 1,
                            Event::MediaChanged(m) if m.direction == Direction::Inactive => {
                                c.stopped.push(m.mid)
                            }
                            _ => {}
                        },
                    }
                }
            }
            let mut out: Vec<Datagram> = Vec::new();
            self.sfu.poll(now, &mut out);
            for d in out {
                let c = self
                    .clients
                    .iter_mut()
                    .find(|c| c.addr == d.destination)
                    .expect("sent to a client");
                let r = Receive::new(Protocol::Udp, self.sfu_addr, c.addr, &d.contents).unwrap();
                c.rtc.handle_input(Input::Receive(now, r)).unwrap();
            }
            for n in self.sfu.take_notices() {
                if let Notice::Offer { peer, sdp } = &n {
                    let c = self.clients.iter_mut().find(|c| c.peer == *peer).unwrap();
                    let answer = c
                        .rtc
                        .sdp_api()
                        .accept_offer(SdpOffer::from_sdp_string(&sdp.sdp).unwrap())
                        .unwrap();
                    let back = Sdp {
                        kind: SdpKind::Answer,
                        sdp: answer.to_sdp_string(),
                    };
                    assert_eq!(self.sfu.signal(*peer, &back).unwrap(), None);
                }
                self.notices.push(n);
            }
        }
    }

    /// Frames client `i` received from `user`'s track of `kind`.
    fn received(&self, i: usize, user: &str, kind: MediaKind) -> usize {
        let c = &self.clients[i];
        c.incoming
            .iter()
            .filter(|(_, (k, s))| *k == kind && s.as_deref() == Some(user))
            .map(|(mid, _)| c.frames.get(mid).map_or(0, Vec::len))
            .sum()
    }
}

#[test]
fn frames_reach_the_other_participants_of_the_call_only() {
    let mut net = Net::new();
    let a = net.join("call-1", "alice");
    let b = net.join("call-1", "bob");
    let other = net.join("call-2", "carol");
    net.run(3000);
    for (i, from) in [(a, "bob"), (b, "alice")] {
        assert!(net.clients[i].connected);
        assert!(net.received(i, from, MediaKind::Audio) > 20, "audio {from}");
        assert!(net.received(i, from, MediaKind::Video) > 20, "video {from}");
    }
    assert!(
        net.clients[other].incoming.is_empty(),
        "carol is in another call"
    );
    // The payloads arrive as sent.
    let c = &net.clients[b];
    let (mid, _) = c
        .incoming
        .iter()
        .find(|(_, (k, _))| *k == MediaKind::Video)
        .unwrap();
    let frame = &c.frames[mid][5];
    assert_eq!(&frame[..3], &[0x10, 0x02, 0x00]);
    assert_eq!(frame.len(), 210);
    // Each participant's tracks were announced.
    let tracks: Vec<_> = net
        .notices
        .iter()
        .filter_map(|n| match n {
            Notice::Tracks { peer, tracks } if *peer == net.clients[a].peer => Some(tracks.len()),
            _ => None,
        })
        .collect();
    assert_eq!(tracks.last(), Some(&2));
    let stats = net.sfu.stats();
    assert_eq!(stats.peers, 3);
    assert!(stats.forwarded > 80);
}

#[test]
fn a_late_joiner_gets_the_existing_tracks_and_keyframe_requests_reach_publishers() {
    let mut net = Net::new();
    let a = net.join("c", "alice");
    let b = net.join("c", "bob");
    net.run(1500);
    let before = net.clients[a].keyframe_requests;
    let late = net.join("c", "dave");
    net.run(1500);
    for from in ["alice", "bob"] {
        assert!(
            net.received(late, from, MediaKind::Video) > 10,
            "late gets {from}"
        );
        assert!(
            net.received(late, from, MediaKind::Audio) > 10,
            "late gets {from}"
        );
    }
    assert!(net.received(a, "dave", MediaKind::Video) > 10);
    assert!(
        net.clients[a].keyframe_requests > before,
        "the new subscriber's keyframe request reached alice"
    );
    // A subscriber asks for a keyframe: the publisher gets it.
    let before = net.clients[b].keyframe_requests;
    let c = &mut net.clients[late];
    let (mid, _) = c
        .incoming
        .iter()
        .find(|(_, (k, s))| *k == MediaKind::Video && s.as_deref() == Some("bob"))
        .map(|(m, v)| (*m, v.clone()))
        .unwrap();
    c.rtc
        .writer(mid)
        .unwrap()
        .request_keyframe(None, KeyframeRequestKind::Pli)
        .unwrap();
    net.run(200);
    assert!(net.clients[b].keyframe_requests > before);
}

#[test]
fn a_leavers_tracks_are_stopped_for_the_others() {
    let mut net = Net::new();
    let a = net.join("c", "alice");
    let b = net.join("c", "bob");
    net.run(1500);
    let from_a: Vec<Mid> = net.clients[b]
        .incoming
        .iter()
        .filter(|(_, (_, s))| s.as_deref() == Some("alice"))
        .map(|(m, _)| *m)
        .collect();
    assert_eq!(from_a.len(), 2);
    assert!(net.sfu.leave(net.clients[a].peer));
    net.clients[a].connected = false;
    net.run(500);
    let b = &net.clients[b];
    for mid in from_a {
        assert!(
            b.rtc
                .media(mid)
                .is_none_or(|m| m.direction() == Direction::Inactive)
                || b.stopped.contains(&mid),
            "alice's {mid} stopped for bob"
        );
    }
    assert_eq!(net.sfu.stats().peers, 1);
}

#[test]
fn garbage_sdp_and_datagrams_are_refused_without_harm() {
    let mut net = Net::new();
    let now = net.now;
    assert!(net.sfu.join(now, 99, "c", "x", Some("not sdp")).is_err());
    assert!(net.sfu.join(now, 99, "c", "x", Some("v=0\r\n")).is_err());
    let sdp = Sdp {
        kind: SdpKind::Answer,
        sdp: "v=0".into(),
    };
    assert!(net.sfu.signal(99, &sdp).is_err());
    let a = net.join("c", "alice");
    for junk in [
        &[][..],
        &[0u8; 1][..],
        &[0x16, 0xfe, 0xfd, 0, 0][..],
        &[0x80; 40][..],
    ] {
        net.sfu.receive(now, net.clients[a].addr, junk);
        net.sfu.receive(now, "10.9.9.9:1".parse().unwrap(), junk);
    }
    // An answer with no offer pending.
    let sdp = Sdp {
        kind: SdpKind::Answer,
        sdp: "v=0".into(),
    };
    assert!(net.sfu.signal(net.clients[a].peer, &sdp).is_err());
    net.run(500);
    assert!(net.clients[a].connected);
}

#[test]
fn a_publisher_over_the_bitrate_cap_is_not_forwarded_past_it() {
    // 210-byte video and 5-byte audio frames, 50 a second each: ~86 kbit/s.
    let mut net = Net::with(40_000);
    let a = net.join("c", "alice");
    let b = net.join("c", "bob");
    net.run(4000);
    // 40 kbit/s is 5,000 bytes a second: about 23 of the 50 video frames.
    let video = net.received(b, "alice", MediaKind::Video);
    let sent = 4000 / 20;
    assert!(video > 0);
    assert!(
        video < sent * 6 / 10,
        "forwarded {video} of ~{sent} video frames"
    );
    assert!(net.sfu.stats().over_bitrate > 0);
    let _ = a;
}

#[test]
fn a_participant_that_stops_sending_media_is_removed_after_the_idle_timeout() {
    let mut net = Net::new();
    let a = net.join("c", "alice");
    let _b = net.join("c", "bob");
    net.run(1000);
    net.clients[a].sending = false;
    net.run(29_000);
    assert!(!net.notices.iter().any(|n| matches!(n, Notice::Gone { .. })));
    net.run(1500);
    let gone: Vec<_> = net
        .notices
        .iter()
        .filter_map(|n| match n {
            Notice::Gone { peer, reason } => Some((*peer, *reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        gone,
        vec![(net.clients[a].peer, tandem::sfu::GoneReason::Idle)]
    );
    assert_eq!(net.sfu.stats().peers, 1);
}
