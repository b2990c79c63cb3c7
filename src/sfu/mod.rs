//! The media server for group calls: a selective forwarding unit, sans-I/O.
//!
//! [`Sfu`] holds one `str0m` [`Rtc`] per participant (ICE-lite, DTLS-SRTP)
//! and forwards each published audio/video frame to the other participants
//! of the same call. It never touches a socket or a clock: the driver
//! ([`driver`]) hands it datagrams and the time, and sends what it returns.
//! Signaling (offers and answers over Socket.IO) goes through
//! [`Sfu::join`], [`Sfu::signal`] and the [`Notice`]s it emits.
//!
//! Loss recovery is per hop: str0m NACKs what a publisher lost and answers
//! a subscriber's NACKs with RTX from its own send buffer. Keyframe
//! requests (PLI/FIR) from a subscriber reach the publisher, and a new
//! subscriber's video starts with a keyframe request of its own.

pub mod driver;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, KeyframeRequestKind, MediaData, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

/// A participant's media session; the signaling layer picks the ids.
pub type PeerId = u64;

/// What the media server is configured with.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// The address announced as our one ICE candidate (ICE-lite).
    pub public: SocketAddr,
    /// Most bits per second a participant's published media may carry;
    /// frames past it are not forwarded.
    pub max_bitrate: u64,
    /// A participant that sends no media for this long is removed.
    pub idle_timeout: Duration,
}

/// An SDP as it travels over Socket.IO: `{type, sdp}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sdp {
    #[serde(rename = "type")]
    pub kind: SdpKind,
    pub sdp: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SdpKind {
    Offer,
    Answer,
}

/// A track a participant publishes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Track {
    pub kind: &'static str,
    /// The track's id as subscribers see it (`MediaStreamTrack.id`); its
    /// stream id (`MediaStream.id`) is the publisher's user id.
    pub track_id: String,
}

/// What the signaling layer must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// Send this renegotiation offer to the participant; it answers with
    /// [`Sfu::signal`].
    Offer { peer: PeerId, sdp: Sdp },
    /// The tracks a participant publishes changed.
    Tracks { peer: PeerId, tracks: Vec<Track> },
    /// The participant's media session ended (ICE failed, idle, closed).
    Gone { peer: PeerId, reason: GoneReason },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoneReason {
    /// No media for `idle_timeout`.
    Idle,
    /// ICE or DTLS ended.
    Disconnected,
}

impl GoneReason {
    pub fn as_str(self) -> &'static str {
        match self {
            GoneReason::Idle => "idle",
            GoneReason::Disconnected => "disconnected",
        }
    }
}

/// Why a signaling step was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SfuError {
    #[error("not in this call")]
    UnknownPeer,
    #[error("already in a call")]
    AlreadyJoined,
    #[error("invalid SDP: {0}")]
    BadSdp(String),
    #[error("an answer arrived with no offer pending")]
    NoPendingOffer,
    #[error("invalid ICE candidate: {0}")]
    BadCandidate(String),
}

/// A datagram to send.
#[derive(Debug)]
pub struct Datagram {
    pub destination: SocketAddr,
    pub contents: Vec<u8>,
}

/// Figures for benchmarks and the console.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SfuStats {
    pub peers: usize,
    /// Media frames written to subscribers.
    pub forwarded: u64,
    /// Frames not forwarded because the publisher was over its bitrate.
    pub over_bitrate: u64,
    pub keyframe_requests: u64,
}

#[derive(Debug)]
struct TrackIn {
    mid: Mid,
    kind: MediaKind,
    last_keyframe_request: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutState {
    ToOpen,
    Negotiating(Mid),
    Open(Mid),
    ToStop(Mid),
    Stopping(Mid),
}

#[derive(Debug)]
struct TrackOut {
    from: PeerId,
    mid_in: Mid,
    kind: MediaKind,
    state: OutState,
}

impl TrackOut {
    fn mid(&self) -> Option<Mid> {
        match self.state {
            OutState::ToOpen => None,
            OutState::Negotiating(m)
            | OutState::Open(m)
            | OutState::ToStop(m)
            | OutState::Stopping(m) => Some(m),
        }
    }
}

/// A token bucket in bytes: one second of `rate` as the burst.
#[derive(Debug)]
struct Budget {
    tokens: f64,
    at: Instant,
}

struct Peer {
    call: std::sync::Arc<str>,
    user: String,
    rtc: Rtc,
    /// The first offer/answer exchange is done: renegotiation may start.
    negotiated: bool,
    pending: Option<SdpPendingOffer>,
    tracks_in: Vec<TrackIn>,
    tracks_out: Vec<TrackOut>,
    /// Media last seen (or the join, before any).
    last_media: Instant,
    /// When the session next needs the clock (its last `Output::Timeout`).
    due: Instant,
    budget: Budget,
}

impl Peer {
    /// Asks this publisher for a keyframe on its video track `mid` (at
    /// most every [`KEYFRAME_THROTTLE`] per track when `now` is given).
    /// Returns whether it was asked.
    fn ask_keyframe(
        &mut self,
        mid: Mid,
        rid: Option<str0m::media::Rid>,
        kind: KeyframeRequestKind,
        now: Option<Instant>,
    ) -> bool {
        let Some(t) = self
            .tracks_in
            .iter_mut()
            .find(|t| t.mid == mid && t.kind == MediaKind::Video)
        else {
            return false;
        };
        if let (Some(now), Some(last)) = (now, t.last_keyframe_request)
            && now.saturating_duration_since(last) < KEYFRAME_THROTTLE
        {
            return false;
        }
        if let Some(now) = now {
            t.last_keyframe_request = Some(now);
        }
        self.rtc
            .writer(mid)
            .is_some_and(|mut w| w.request_keyframe(rid, kind).is_ok())
    }
}

/// Something one peer's output asks of the others. Media is most of them
/// and lives only until the next poll round: not worth a box.
#[allow(clippy::large_enum_variant)]
enum Propagate {
    TrackOpen {
        from: PeerId,
        mid: Mid,
        kind: MediaKind,
    },
    Media {
        from: PeerId,
        data: MediaData,
    },
    Keyframe {
        to: PeerId,
        mid_in: Mid,
        kind: KeyframeRequestKind,
    },
}

/// The media server's state: every participant of every call on this node.
pub struct Sfu {
    config: SfuConfig,
    peers: HashMap<PeerId, Peer>,
    notices: Vec<Notice>,
    stats: SfuStats,
    /// Reused by every poll.
    scratch_ids: Vec<PeerId>,
}

const KEYFRAME_THROTTLE: Duration = Duration::from_millis(500);
const SEND_BUFFER_VIDEO: usize = 256;

impl Sfu {
    pub fn new(config: SfuConfig) -> Self {
        Sfu {
            config,
            peers: HashMap::new(),
            notices: Vec::new(),
            stats: SfuStats::default(),
            scratch_ids: Vec::new(),
        }
    }

    pub fn stats(&self) -> SfuStats {
        SfuStats {
            peers: self.peers.len(),
            ..self.stats
        }
    }

    fn new_rtc(&self, now: Instant) -> Result<Rtc, SfuError> {
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_opus(true)
            .enable_vp8(true)
            .enable_h264(true)
            // Packets kept per outgoing video stream for retransmission:
            // str0m's default, 1,000, is 16 s of a 600 kbit/s stream, and at
            // 8 people made each participant cost ~8 MB once full. 256 is
            // still a second at 2.5 Mbit/s and holds any one frame's packets.
            .set_send_buffer_video(SEND_BUFFER_VIDEO)
            .build(now);
        let candidate = Candidate::host(self.config.public, "udp")
            .map_err(|e| SfuError::BadCandidate(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        Ok(rtc)
    }

    /// A participant joins `call`. With the client's `offer`, the answer;
    /// without, the server's offer (a slot to publish audio and video in,
    /// plus the call's current tracks), to answer with [`Sfu::signal`].
    pub fn join(
        &mut self,
        now: Instant,
        peer: PeerId,
        call: &str,
        user: &str,
        offer: Option<&str>,
    ) -> Result<Sdp, SfuError> {
        if self.peers.contains_key(&peer) {
            return Err(SfuError::AlreadyJoined);
        }
        let mut rtc = self.new_rtc(now)?;
        // The call's current tracks, offered to the newcomer once the
        // first exchange is done (or in the server's offer right away).
        let mut tracks_out: Vec<TrackOut> = self
            .peers
            .iter()
            .filter(|(_, p)| &*p.call == call)
            .flat_map(|(id, p)| {
                p.tracks_in.iter().map(|t| TrackOut {
                    from: *id,
                    mid_in: t.mid,
                    kind: t.kind,
                    state: OutState::ToOpen,
                })
            })
            .collect();
        let (sdp, pending, negotiated) = match offer {
            Some(offer) => {
                let offer = SdpOffer::from_sdp_string(offer)
                    .map_err(|e| SfuError::BadSdp(e.to_string()))?;
                let answer = rtc
                    .sdp_api()
                    .accept_offer(offer)
                    .map_err(|e| SfuError::BadSdp(e.to_string()))?;
                (answer_json(&answer), None, true)
            }
            None => {
                let mut change = rtc.sdp_api();
                change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
                change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
                for t in &mut tracks_out {
                    let (stream, track) = self.msid(t.from, t.mid_in);
                    let mid = change.add_media(
                        t.kind,
                        Direction::SendOnly,
                        Some(stream),
                        Some(track),
                        None,
                    );
                    t.state = OutState::Negotiating(mid);
                }
                let (offer, pending) = change.apply().expect("a change was made");
                (offer_json(&offer), Some(pending), false)
            }
        };
        self.peers.insert(
            peer,
            Peer {
                call: call.into(),
                user: user.to_string(),
                rtc,
                negotiated,
                pending,
                tracks_in: Vec::new(),
                tracks_out,
                last_media: now,
                due: now,
                budget: Budget {
                    tokens: self.config.max_bitrate as f64 / 8.0,
                    at: now,
                },
            },
        );
        Ok(sdp)
    }

    /// The stream id and track id a subscriber sees for a publisher's track.
    fn msid(&self, from: PeerId, mid: Mid) -> (String, String) {
        let user = self.peers.get(&from).map_or("gone", |p| p.user.as_str());
        (user.to_string(), track_id(user, mid))
    }

    /// An SDP from the participant: an answer to our last offer (returns
    /// None), or a new offer of its own (returns our answer).
    pub fn signal(&mut self, peer: PeerId, sdp: &Sdp) -> Result<Option<Sdp>, SfuError> {
        let p = self.peers.get_mut(&peer).ok_or(SfuError::UnknownPeer)?;
        match sdp.kind {
            SdpKind::Answer => {
                let answer = SdpAnswer::from_sdp_string(&sdp.sdp)
                    .map_err(|e| SfuError::BadSdp(e.to_string()))?;
                let pending = p.pending.take().ok_or(SfuError::NoPendingOffer)?;
                p.rtc
                    .sdp_api()
                    .accept_answer(pending, answer)
                    .map_err(|e| SfuError::BadSdp(e.to_string()))?;
                p.negotiated = true;
                let mut opened = Vec::new();
                for t in &mut p.tracks_out {
                    if let OutState::Negotiating(m) = t.state {
                        t.state = OutState::Open(m);
                        opened.push((t.from, t.mid_in, t.kind));
                    }
                }
                p.tracks_out
                    .retain(|t| !matches!(t.state, OutState::Stopping(_)));
                // A new subscriber asks for a keyframe so its video starts now.
                for (from, mid_in, kind) in opened {
                    if kind == MediaKind::Video {
                        self.request_keyframe(from, mid_in, KeyframeRequestKind::Pli, None);
                    }
                }
                Ok(None)
            }
            SdpKind::Offer => {
                let offer = SdpOffer::from_sdp_string(&sdp.sdp)
                    .map_err(|e| SfuError::BadSdp(e.to_string()))?;
                let answer = p
                    .rtc
                    .sdp_api()
                    .accept_offer(offer)
                    .map_err(|e| SfuError::BadSdp(e.to_string()))?;
                // Our pending offer, if any, is void: redo it afterwards.
                p.pending = None;
                p.negotiated = true;
                for t in &mut p.tracks_out {
                    t.state = match t.state {
                        OutState::Negotiating(_) => OutState::ToOpen,
                        OutState::Stopping(m) => OutState::ToStop(m),
                        s => s,
                    };
                }
                Ok(Some(answer_json(&answer)))
            }
        }
    }

    /// A trickled ICE candidate (`candidate:...` line). The server is
    /// ICE-lite, so it only helps str0m know the address early.
    pub fn candidate(&mut self, peer: PeerId, candidate: &str) -> Result<(), SfuError> {
        let p = self.peers.get_mut(&peer).ok_or(SfuError::UnknownPeer)?;
        let line = candidate.trim();
        if line.is_empty() {
            return Ok(()); // end of candidates
        }
        let c = Candidate::from_sdp_string(line.strip_prefix("a=").unwrap_or(line))
            .map_err(|e| SfuError::BadCandidate(e.to_string()))?;
        p.rtc.add_remote_candidate(c);
        Ok(())
    }

    /// The participant leaves: its tracks end for the others.
    pub fn leave(&mut self, peer: PeerId) -> bool {
        let Some(mut p) = self.peers.remove(&peer) else {
            return false;
        };
        p.rtc.disconnect();
        self.forget_source(peer);
        true
    }

    fn forget_source(&mut self, gone: PeerId) {
        for p in self.peers.values_mut() {
            p.tracks_out.retain_mut(|t| {
                if t.from != gone {
                    return true;
                }
                match t.state {
                    OutState::ToOpen => false,
                    OutState::Open(m) => {
                        t.state = OutState::ToStop(m);
                        true
                    }
                    // Stopped once the negotiation in flight ends.
                    OutState::Negotiating(_) | OutState::ToStop(_) | OutState::Stopping(_) => true,
                }
            });
        }
    }

    fn input<'a>(
        &self,
        now: Instant,
        source: SocketAddr,
        contents: &'a [u8],
    ) -> Result<Input<'a>, ()> {
        let r =
            Receive::new(Protocol::Udp, source, self.config.public, contents).map_err(|_| ())?;
        Ok(Input::Receive(now, r))
    }

    /// A datagram arrived on the media port.
    pub fn receive(&mut self, now: Instant, source: SocketAddr, contents: &[u8]) {
        let Ok(input) = self.input(now, source, contents) else {
            return;
        };
        if let Some(p) = self.peers.values_mut().find(|p| p.rtc.accepts(&input))
            && let Err(e) = p.rtc.handle_input(input)
        {
            tracing::debug!(error = %e, "sfu: input refused; disconnecting");
            p.rtc.disconnect();
        }
    }

    /// Advances every session to `now`, forwards media between them, and
    /// appends what to send to `out`. Returns when to call again at the
    /// latest. Notices are taken with [`Sfu::take_notices`].
    pub fn poll(&mut self, now: Instant, out: &mut Vec<Datagram>) -> Instant {
        for p in self.peers.values_mut() {
            // Only sessions whose deadline came: the others have nothing
            // to do with the clock (input was handled as it arrived).
            if p.due <= now
                && p.rtc.is_alive()
                && let Err(e) = p.rtc.handle_input(Input::Timeout(now))
            {
                tracing::debug!(error = %e, "sfu: timeout handling failed");
                p.rtc.disconnect();
            }
        }
        let mut next = now + Duration::from_millis(100);
        let mut ids = std::mem::take(&mut self.scratch_ids);
        loop {
            let mut work: Vec<Propagate> = Vec::new();
            ids.clear();
            ids.extend(self.peers.keys().copied());
            for id in &ids {
                self.negotiate_if_needed(*id);
                let Some(p) = self.peers.get_mut(id) else {
                    continue;
                };
                while p.rtc.is_alive() {
                    match p.rtc.poll_output() {
                        Ok(Output::Timeout(t)) => {
                            p.due = t;
                            next = next.min(t);
                            break;
                        }
                        Ok(Output::Transmit(t)) => out.push(Datagram {
                            destination: t.destination,
                            contents: t.contents.into(),
                        }),
                        Ok(Output::Event(e)) => {
                            if let Some(w) =
                                on_event(*id, p, e, now, self.config.max_bitrate, &mut self.stats)
                            {
                                work.push(w);
                            }
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "sfu: session failed");
                            p.rtc.disconnect();
                        }
                    }
                }
            }
            for w in work.iter() {
                if let Propagate::TrackOpen { from, .. } = w {
                    let tracks = self.tracks_of(*from);
                    self.notices.push(Notice::Tracks {
                        peer: *from,
                        tracks,
                    });
                }
            }
            if work.is_empty() {
                break;
            }
            for w in work {
                self.propagate(w, now);
            }
        }
        self.scratch_ids = ids;
        self.reap(now);
        next
    }

    fn reap(&mut self, now: Instant) {
        let gone: Vec<(PeerId, GoneReason)> = self
            .peers
            .iter()
            .filter_map(|(id, p)| {
                if !p.rtc.is_alive() {
                    Some((*id, GoneReason::Disconnected))
                } else if now.saturating_duration_since(p.last_media) >= self.config.idle_timeout {
                    Some((*id, GoneReason::Idle))
                } else {
                    None
                }
            })
            .collect();
        for (peer, reason) in gone {
            self.leave(peer);
            self.notices.push(Notice::Gone { peer, reason });
        }
    }

    /// The tracks a participant publishes.
    pub fn tracks_of(&self, peer: PeerId) -> Vec<Track> {
        let Some(p) = self.peers.get(&peer) else {
            return Vec::new();
        };
        p.tracks_in
            .iter()
            .map(|t| Track {
                kind: kind_name(t.kind),
                track_id: track_id(&p.user, t.mid),
            })
            .collect()
    }

    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    fn propagate(&mut self, w: Propagate, now: Instant) {
        match w {
            Propagate::TrackOpen { from, mid, kind } => {
                let Some(call) = self.peers.get(&from).map(|p| p.call.clone()) else {
                    return;
                };
                for (id, p) in self.peers.iter_mut() {
                    if *id != from && p.call == call {
                        p.tracks_out.push(TrackOut {
                            from,
                            mid_in: mid,
                            kind,
                            state: OutState::ToOpen,
                        });
                    }
                }
            }
            Propagate::Media { from, data } => {
                let Some(call) = self.peers.get(&from).map(|p| p.call.clone()) else {
                    return;
                };
                for (id, p) in self.peers.iter_mut() {
                    if *id == from || p.call != call || !p.rtc.is_alive() {
                        continue;
                    }
                    let Some(mid) = p
                        .tracks_out
                        .iter()
                        .find(|t| t.from == from && t.mid_in == data.mid)
                        .and_then(|t| match t.state {
                            OutState::Open(m) => Some(m),
                            _ => None,
                        })
                    else {
                        continue;
                    };
                    let Some(writer) = p.rtc.writer(mid) else {
                        continue;
                    };
                    let Some(pt) = writer.match_params(data.params) else {
                        continue;
                    };
                    match writer.write(pt, data.network_time, data.time, data.data.clone()) {
                        Ok(()) => self.stats.forwarded += 1,
                        Err(e) => tracing::debug!(error = %e, "sfu: write failed"),
                    }
                }
            }
            Propagate::Keyframe { to, mid_in, kind } => {
                self.request_keyframe(to, mid_in, kind, Some(now));
            }
        }
    }

    /// Asks a publisher for a keyframe on one of its tracks (at most every
    /// half second per track when `now` is given).
    fn request_keyframe(
        &mut self,
        to: PeerId,
        mid_in: Mid,
        kind: KeyframeRequestKind,
        now: Option<Instant>,
    ) {
        if let Some(p) = self.peers.get_mut(&to)
            && p.ask_keyframe(mid_in, None, kind, now)
        {
            self.stats.keyframe_requests += 1;
        }
    }

    /// Offers the participant what changed (tracks to add or stop) once
    /// no other exchange is in flight.
    fn negotiate_if_needed(&mut self, id: PeerId) {
        let Some(p) = self.peers.get(&id) else {
            return;
        };
        if !p.negotiated
            || p.pending.is_some()
            || !p.rtc.is_alive()
            || !p
                .tracks_out
                .iter()
                .any(|t| matches!(t.state, OutState::ToOpen | OutState::ToStop(_)))
        {
            return;
        }
        // The publishers' user ids, for the new tracks' stream ids (a
        // source that left had its tracks stopped by `forget_source`).
        let names: HashMap<PeerId, String> = p
            .tracks_out
            .iter()
            .filter(|t| t.state == OutState::ToOpen)
            .filter_map(|t| Some((t.from, self.peers.get(&t.from)?.user.clone())))
            .collect();
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        let mut change = p.rtc.sdp_api();
        for t in &mut p.tracks_out {
            match t.state {
                OutState::ToOpen => {
                    let user = names.get(&t.from).map_or("gone", String::as_str);
                    let mid = change.add_media(
                        t.kind,
                        Direction::SendOnly,
                        Some(user.to_string()),
                        Some(track_id(user, t.mid_in)),
                        None,
                    );
                    t.state = OutState::Negotiating(mid);
                }
                OutState::ToStop(m) => {
                    change.stop_media(m);
                    t.state = OutState::Stopping(m);
                }
                _ => {}
            }
        }
        if let Some((offer, pending)) = change.apply() {
            p.pending = Some(pending);
            self.notices.push(Notice::Offer {
                peer: id,
                sdp: offer_json(&offer),
            });
        } else {
            // Only stops of m-lines never negotiated: nothing to send.
            p.tracks_out
                .retain(|t| !matches!(t.state, OutState::Stopping(_)));
        }
    }
}

/// One session event: what it asks of the others, if anything.
fn on_event(
    id: PeerId,
    p: &mut Peer,
    e: Event,
    now: Instant,
    max_bitrate: u64,
    stats: &mut SfuStats,
) -> Option<Propagate> {
    match e {
        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
            p.rtc.disconnect();
            None
        }
        Event::MediaAdded(m) if m.direction.is_receiving() => {
            p.tracks_in.push(TrackIn {
                mid: m.mid,
                kind: m.kind,
                last_keyframe_request: None,
            });
            Some(Propagate::TrackOpen {
                from: id,
                mid: m.mid,
                kind: m.kind,
            })
        }
        Event::MediaData(data) => {
            p.last_media = now;
            let rate = max_bitrate as f64 / 8.0;
            let b = &mut p.budget;
            b.tokens =
                (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate).min(rate);
            b.at = now;
            let size = data.data.len() as f64;
            if b.tokens < size {
                stats.over_bitrate += 1;
                return None;
            }
            b.tokens -= size;
            // A gap the publisher's NACKs could not fill: ask it for a
            // keyframe rather than forward undecodable frames.
            if !data.contiguous
                && p.ask_keyframe(data.mid, data.rid, KeyframeRequestKind::Fir, Some(now))
            {
                stats.keyframe_requests += 1;
            }
            Some(Propagate::Media { from: id, data })
        }
        Event::KeyframeRequest(req) => {
            let t = p.tracks_out.iter().find(|t| t.mid() == Some(req.mid))?;
            Some(Propagate::Keyframe {
                to: t.from,
                mid_in: t.mid_in,
                kind: req.kind,
            })
        }
        _ => None,
    }
}

fn kind_name(k: MediaKind) -> &'static str {
    match k {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
    }
}

fn track_id(user: &str, mid: Mid) -> String {
    format!("{user}-{mid}")
}

fn offer_json(o: &SdpOffer) -> Sdp {
    Sdp {
        kind: SdpKind::Offer,
        sdp: o.to_sdp_string(),
    }
}

fn answer_json(a: &SdpAnswer) -> Sdp {
    Sdp {
        kind: SdpKind::Answer,
        sdp: a.to_sdp_string(),
    }
}
