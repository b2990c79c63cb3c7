//! The TURN server (RFC 8656) as plain data: it takes `now` and a datagram
//! (or a framed TCP message) and returns what to send where. Sockets belong
//! to the caller; relay ports are opened through [`RelayPorts`]. Allocations
//! are looked up by 5-tuple and by relay address, never by scanning.

use std::{
    collections::HashMap,
    io,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha1::Sha1;
use tokio::time::Instant;

use super::policy::PeerPolicy;
use super::stun::{self, Builder, Class, Message, TransactionId};

pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);
pub const MAX_LIFETIME: Duration = Duration::from_secs(3600);
/// How long a nonce stays fresh before a request gets 438 Stale Nonce.
pub const NONCE_LIFETIME: u64 = 600;
const SOFTWARE: &str = "tandem";
/// Channel numbers: RFC 8656 narrowed them to 0x4000-0x4FFF; RFC 5766
/// clients (coturn's among them) use up to 0x7FFE, so those are accepted too.
const CHANNELS: std::ops::RangeInclusive<u16> = 0x4000..=0x7FFE;

/// Client address, server address, transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FiveTuple {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub tcp: bool,
}

/// The two clocks the server needs: monotonic for lifetimes, wall-clock
/// seconds for credential expiry and nonces.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub mono: Instant,
    pub unix: u64,
}

/// What to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// To the client over its own transport.
    Client { to: FiveTuple, data: Vec<u8> },
    /// From the relay socket `relay` to `peer`.
    Peer {
        relay: SocketAddr,
        peer: SocketAddr,
        data: Vec<u8>,
    },
}

/// Opens and closes relay sockets for the server.
pub trait RelayPorts {
    /// Binds a relay socket; returns its local address. With `even_pair`,
    /// binds an even port and the odd port above it, returning both.
    fn open(&mut self, ipv6: bool, even_pair: bool)
    -> io::Result<(SocketAddr, Option<SocketAddr>)>;
    fn close(&mut self, relay: SocketAddr);
}

/// How long a port reserved by EVEN-PORT (R) waits for its RESERVATION-TOKEN.
pub const RESERVATION_LIFETIME: Duration = Duration::from_secs(30);

pub struct TurnConfig {
    pub realm: String,
    /// The shared secret of the TURN REST API (coturn's `use-auth-secret`).
    pub secret: Vec<u8>,
    /// Signs nonces.
    pub nonce_key: [u8; 32],
    /// Allocations one user may hold at once.
    pub user_quota: usize,
    /// Bytes per second one allocation may relay (both ways); 0: no cap.
    pub bandwidth: u64,
    pub policy: PeerPolicy,
    /// The address clients are told to use for relays (NAT deployments);
    /// None: the relay socket's own address.
    pub public_ip: Option<IpAddr>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    pub allocations: u64,
    pub allocations_total: u64,
    pub bytes_to_peers: u64,
    pub packets_to_peers: u64,
    pub bytes_to_clients: u64,
    pub packets_to_clients: u64,
    pub refused_unauthenticated: u64,
    pub refused_stale_nonce: u64,
    pub refused_quota: u64,
    pub refused_peer: u64,
    pub dropped_bandwidth: u64,
    pub dropped_no_permission: u64,
    pub dropped_malformed: u64,
}

struct Allocation {
    five: FiveTuple,
    relay: SocketAddr,
    advertised: SocketAddr,
    username: String,
    user: String,
    key: [u8; 16],
    tid: TransactionId,
    expires: Instant,
    permissions: HashMap<IpAddr, Instant>,
    channels: HashMap<u16, (SocketAddr, Instant)>,
    channel_of: HashMap<SocketAddr, u16>,
    tokens: f64,
    refilled: Instant,
}

impl Allocation {
    /// Takes `n` bytes from the bandwidth bucket.
    fn spend(&mut self, n: usize, rate: u64, now: Instant) -> bool {
        if rate == 0 {
            return true;
        }
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate as f64).min(rate as f64);
        self.refilled = now;
        if self.tokens >= n as f64 {
            self.tokens -= n as f64;
            true
        } else {
            false
        }
    }

    fn permitted(&self, ip: IpAddr, now: Instant) -> bool {
        self.permissions.get(&ip).is_some_and(|exp| *exp > now)
    }
}

/// Who a request authenticated as.
struct Credentials {
    username: String,
    user: String,
    key: [u8; 16],
}

pub struct TurnServer {
    config: TurnConfig,
    allocations: HashMap<FiveTuple, Allocation>,
    by_relay: HashMap<SocketAddr, FiveTuple>,
    per_user: HashMap<String, usize>,
    /// RESERVATION-TOKEN → (reserved relay socket, expiry).
    reservations: HashMap<[u8; 8], (SocketAddr, Instant)>,
    metrics: Metrics,
}

/// The password of a TURN REST API username: base64(HMAC-SHA1(secret, username)).
pub fn rest_password(secret: &[u8], username: &str) -> String {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret).expect("any key length");
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

impl TurnServer {
    pub fn new(config: TurnConfig) -> Self {
        TurnServer {
            config,
            allocations: HashMap::new(),
            by_relay: HashMap::new(),
            per_user: HashMap::new(),
            reservations: HashMap::new(),
            metrics: Metrics::default(),
        }
    }

    pub fn metrics(&self) -> Metrics {
        Metrics {
            allocations: self.allocations.len() as u64,
            ..self.metrics
        }
    }

    fn nonce(&self, unix: u64, client: IpAddr) -> String {
        let mut mac =
            <Hmac<Sha1> as Mac>::new_from_slice(&self.config.nonce_key).expect("any key length");
        mac.update(&unix.to_be_bytes());
        mac.update(client.to_string().as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("{unix:016x}{}", hex::encode(&tag[..8]))
    }

    fn nonce_fresh(&self, nonce: &str, now: Now, client: IpAddr) -> bool {
        let Some(t) = nonce
            .get(..16)
            .and_then(|h| u64::from_str_radix(h, 16).ok())
        else {
            return false;
        };
        now.unix.saturating_sub(t) <= NONCE_LIFETIME
            && t <= now.unix + 5
            && self.nonce(t, client) == nonce
    }

    fn error(&self, m: &Message, code: u16, reason: &str, now: Now, client: IpAddr) -> Vec<u8> {
        let mut b = Builder::new(m.method, Class::Error, m.tid).error(code, reason);
        if code == 401 || code == 438 {
            b = b
                .attr(stun::REALM, self.config.realm.as_bytes())
                .attr(stun::NONCE, self.nonce(now.unix, client).as_bytes());
        }
        b.attr(stun::SOFTWARE, SOFTWARE.as_bytes()).fingerprint()
    }

    /// Long-term credentials with TURN REST API usernames (`expiry:user`).
    fn authenticate(
        &mut self,
        m: &Message,
        now: Now,
        client: IpAddr,
    ) -> Result<Credentials, Vec<u8>> {
        let unauthorized = |s: &mut Self, why: &str| {
            s.metrics.refused_unauthenticated += 1;
            s.error(m, 401, why, now, client)
        };
        if m.get(stun::MESSAGE_INTEGRITY).is_none() {
            return Err(unauthorized(self, "Unauthorized"));
        }
        let (Some(username), Some(realm), Some(nonce)) = (
            m.str(stun::USERNAME),
            m.str(stun::REALM),
            m.str(stun::NONCE),
        ) else {
            return Err(self.error(m, 400, "Bad Request", now, client));
        };
        if realm != self.config.realm {
            return Err(unauthorized(self, "Unknown realm"));
        }
        if !self.nonce_fresh(nonce, now, client) {
            self.metrics.refused_stale_nonce += 1;
            return Err(self.error(m, 438, "Stale Nonce", now, client));
        }
        let (expiry, user) = match username.split_once(':') {
            Some((e, u)) => (e.parse::<u64>().ok(), u),
            None => (username.parse::<u64>().ok(), ""),
        };
        match expiry {
            Some(e) if e >= now.unix => {}
            _ => return Err(unauthorized(self, "Credentials expired")),
        }
        let password = rest_password(&self.config.secret, username);
        let key = stun::long_term_key(username, &self.config.realm, &password);
        if !m.check_integrity(&key) {
            return Err(unauthorized(self, "Unauthorized"));
        }
        Ok(Credentials {
            username: username.to_string(),
            user: user.to_string(),
            key,
        })
    }

    /// A datagram (UDP) or one framed message (TCP) from a client.
    pub fn handle_client(
        &mut self,
        now: Now,
        five: FiveTuple,
        data: &[u8],
        ports: &mut dyn RelayPorts,
    ) -> Option<Out> {
        if data.len() >= 4 && (0x40..=0x7F).contains(&data[0]) {
            return self.client_channel_data(now, five, data);
        }
        let m = match stun::parse(data) {
            Ok(m) => m,
            Err(_) => {
                self.metrics.dropped_malformed += 1;
                return None;
            }
        };
        let reply = |data: Vec<u8>| Some(Out::Client { to: five, data });
        match m.class {
            Class::Request => {}
            Class::Indication if m.method == stun::SEND => {
                return self.send_indication(now, five, &m);
            }
            _ => return None,
        }
        let ip = five.client.ip();
        let unknown = m.unknown_required();
        if !unknown.is_empty() {
            let list: Vec<u8> = unknown.iter().flat_map(|t| t.to_be_bytes()).collect();
            let msg = Builder::new(m.method, Class::Error, m.tid)
                .error(420, "Unknown Attribute")
                .attr(stun::UNKNOWN_ATTRIBUTES, &list)
                .fingerprint();
            return reply(msg);
        }
        if m.method == stun::BINDING {
            let msg = Builder::new(stun::BINDING, Class::Success, m.tid)
                .xor_addr(stun::XOR_MAPPED_ADDRESS, five.client)
                .attr(stun::SOFTWARE, SOFTWARE.as_bytes())
                .fingerprint();
            return reply(msg);
        }
        let creds = match self.authenticate(&m, now, ip) {
            Ok(c) => c,
            Err(e) => return reply(e),
        };
        let result = match m.method {
            stun::ALLOCATE => self.allocate(now, five, &m, creds, ports),
            _ => {
                let Some(alloc) = self.allocations.get(&five) else {
                    return reply(self.error(&m, 437, "Allocation Mismatch", now, ip));
                };
                if alloc.username != creds.username {
                    return reply(self.error(&m, 441, "Wrong Credentials", now, ip));
                }
                match m.method {
                    stun::REFRESH => self.refresh(now, five, &m, &creds, ports),
                    stun::CREATE_PERMISSION => self.create_permission(now, five, &m, &creds),
                    stun::CHANNEL_BIND => self.channel_bind(now, five, &m, &creds),
                    _ => Err((400, "Bad Request")),
                }
            }
        };
        match result {
            Ok(msg) => reply(msg),
            Err((code, reason)) => reply(self.error(&m, code, reason, now, ip)),
        }
    }

    fn allocate(
        &mut self,
        now: Now,
        five: FiveTuple,
        m: &Message,
        creds: Credentials,
        ports: &mut dyn RelayPorts,
    ) -> Result<Vec<u8>, (u16, &'static str)> {
        if let Some(a) = self.allocations.get(&five) {
            if a.tid == m.tid {
                // A retransmission: answer again.
                let remaining = a.expires.saturating_duration_since(now.mono);
                return Ok(allocate_success(
                    m.tid,
                    a.advertised,
                    five.client,
                    remaining,
                    None,
                    &a.key,
                ));
            }
            return Err((437, "Allocation Mismatch"));
        }
        match m.get(stun::REQUESTED_TRANSPORT) {
            None => return Err((400, "Bad Request")),
            Some(v) if v.first() != Some(&17) => {
                return Err((442, "Unsupported Transport Protocol"));
            }
            Some(_) => {}
        }
        let token = m.get(stun::RESERVATION_TOKEN);
        let even = m
            .get(stun::EVEN_PORT)
            .map(|v| v.first().is_some_and(|b| b & 0x80 != 0));
        if token.is_some() && even.is_some() {
            return Err((400, "Bad Request"));
        }
        let ipv6 = match m
            .get(stun::REQUESTED_ADDRESS_FAMILY)
            .and_then(|v| v.first().copied())
        {
            None | Some(0x01) => false,
            Some(0x02) => true,
            Some(_) => return Err((440, "Address Family not Supported")),
        };
        let held = self.per_user.get(&creds.user).copied().unwrap_or(0);
        if held >= self.config.user_quota {
            self.metrics.refused_quota += 1;
            return Err((486, "Allocation Quota Reached"));
        }
        let lifetime = requested_lifetime(m);
        let mut new_token = None;
        let relay = match token {
            Some(t) => {
                let key: [u8; 8] = t.try_into().map_err(|_| (400, "Bad Request"))?;
                match self.reservations.remove(&key) {
                    Some((addr, exp)) if exp > now.mono => addr,
                    _ => return Err((508, "Insufficient Capacity")),
                }
            }
            None => {
                let (relay, reserved) = ports
                    .open(ipv6, even.is_some())
                    .map_err(|_| (508, "Insufficient Capacity"))?;
                if let (Some(true), Some(odd)) = (even, reserved) {
                    let t: [u8; 8] = rand::random();
                    self.reservations
                        .insert(t, (odd, now.mono + RESERVATION_LIFETIME));
                    new_token = Some(t);
                } else if let Some(odd) = reserved {
                    ports.close(odd);
                }
                relay
            }
        };
        let advertised = SocketAddr::new(self.config.public_ip.unwrap_or(relay.ip()), relay.port());
        *self.per_user.entry(creds.user.clone()).or_default() += 1;
        self.metrics.allocations_total += 1;
        let reply = allocate_success(
            m.tid,
            advertised,
            five.client,
            lifetime,
            new_token,
            &creds.key,
        );
        self.by_relay.insert(relay, five);
        self.allocations.insert(
            five,
            Allocation {
                five,
                relay,
                advertised,
                username: creds.username,
                user: creds.user,
                key: creds.key,
                tid: m.tid,
                expires: now.mono + lifetime,
                permissions: HashMap::new(),
                channels: HashMap::new(),
                channel_of: HashMap::new(),
                tokens: self.config.bandwidth as f64,
                refilled: now.mono,
            },
        );
        Ok(reply)
    }

    fn refresh(
        &mut self,
        now: Now,
        five: FiveTuple,
        m: &Message,
        creds: &Credentials,
        ports: &mut dyn RelayPorts,
    ) -> Result<Vec<u8>, (u16, &'static str)> {
        let lifetime = match m.u32(stun::LIFETIME) {
            Some(0) => Duration::ZERO,
            _ => requested_lifetime(m),
        };
        if lifetime.is_zero() {
            self.remove(five, ports);
        } else if let Some(a) = self.allocations.get_mut(&five) {
            a.expires = now.mono + lifetime;
        }
        Ok(Builder::new(stun::REFRESH, Class::Success, m.tid)
            .u32(stun::LIFETIME, lifetime.as_secs() as u32)
            .integrity(&creds.key)
            .fingerprint())
    }

    fn create_permission(
        &mut self,
        now: Now,
        five: FiveTuple,
        m: &Message,
        creds: &Credentials,
    ) -> Result<Vec<u8>, (u16, &'static str)> {
        let peers = m.xor_addrs(stun::XOR_PEER_ADDRESS);
        if peers.is_empty() || peers.iter().any(Option::is_none) {
            return Err((400, "Bad Request"));
        }
        let peers: Vec<SocketAddr> = peers.into_iter().flatten().collect();
        if peers.iter().any(|p| !self.config.policy.allowed(p.ip())) {
            self.metrics.refused_peer += 1;
            return Err((403, "Forbidden"));
        }
        let a = self
            .allocations
            .get_mut(&five)
            .expect("checked by the caller");
        for p in peers {
            a.permissions.insert(p.ip(), now.mono + PERMISSION_LIFETIME);
        }
        Ok(Builder::new(stun::CREATE_PERMISSION, Class::Success, m.tid)
            .integrity(&creds.key)
            .fingerprint())
    }

    fn channel_bind(
        &mut self,
        now: Now,
        five: FiveTuple,
        m: &Message,
        creds: &Credentials,
    ) -> Result<Vec<u8>, (u16, &'static str)> {
        let channel = m
            .get(stun::CHANNEL_NUMBER)
            .filter(|v| v.len() == 4)
            .map(|v| u16::from_be_bytes([v[0], v[1]]))
            .filter(|c| CHANNELS.contains(c))
            .ok_or((400, "Bad Request"))?;
        let peer = m
            .xor_addr(stun::XOR_PEER_ADDRESS)
            .ok_or((400, "Bad Request"))?;
        if !self.config.policy.allowed(peer.ip()) {
            self.metrics.refused_peer += 1;
            return Err((403, "Forbidden"));
        }
        let a = self
            .allocations
            .get_mut(&five)
            .expect("checked by the caller");
        if a.channels.get(&channel).is_some_and(|(p, _)| *p != peer)
            || a.channel_of.get(&peer).is_some_and(|c| *c != channel)
        {
            return Err((400, "Bad Request"));
        }
        a.channels
            .insert(channel, (peer, now.mono + CHANNEL_LIFETIME));
        a.channel_of.insert(peer, channel);
        a.permissions
            .insert(peer.ip(), now.mono + PERMISSION_LIFETIME);
        Ok(Builder::new(stun::CHANNEL_BIND, Class::Success, m.tid)
            .integrity(&creds.key)
            .fingerprint())
    }

    fn send_indication(&mut self, now: Now, five: FiveTuple, m: &Message) -> Option<Out> {
        let rate = self.config.bandwidth;
        let a = self.allocations.get_mut(&five)?;
        let (Some(peer), Some(data)) = (m.xor_addr(stun::XOR_PEER_ADDRESS), m.get(stun::DATA_ATTR))
        else {
            self.metrics.dropped_malformed += 1;
            return None;
        };
        if !a.permitted(peer.ip(), now.mono) {
            self.metrics.dropped_no_permission += 1;
            return None;
        }
        if !a.spend(data.len(), rate, now.mono) {
            self.metrics.dropped_bandwidth += 1;
            return None;
        }
        self.metrics.bytes_to_peers += data.len() as u64;
        self.metrics.packets_to_peers += 1;
        Some(Out::Peer {
            relay: a.relay,
            peer,
            data: data.to_vec(),
        })
    }

    fn client_channel_data(&mut self, now: Now, five: FiveTuple, data: &[u8]) -> Option<Out> {
        let rate = self.config.bandwidth;
        let channel = u16::from_be_bytes([data[0], data[1]]);
        let len = u16::from_be_bytes([data[2], data[3]]) as usize;
        let Some(payload) = data.get(4..4 + len) else {
            self.metrics.dropped_malformed += 1;
            return None;
        };
        let a = self.allocations.get_mut(&five)?;
        let Some(&(peer, expires)) = a.channels.get(&channel) else {
            self.metrics.dropped_malformed += 1;
            return None;
        };
        if expires <= now.mono || !a.permitted(peer.ip(), now.mono) {
            self.metrics.dropped_no_permission += 1;
            return None;
        }
        if !a.spend(len, rate, now.mono) {
            self.metrics.dropped_bandwidth += 1;
            return None;
        }
        self.metrics.bytes_to_peers += len as u64;
        self.metrics.packets_to_peers += 1;
        Some(Out::Peer {
            relay: a.relay,
            peer,
            data: payload.to_vec(),
        })
    }

    /// A datagram that arrived at a relay socket from `peer`.
    pub fn handle_peer(
        &mut self,
        now: Now,
        relay: SocketAddr,
        peer: SocketAddr,
        data: &[u8],
    ) -> Option<Out> {
        let rate = self.config.bandwidth;
        let five = *self.by_relay.get(&relay)?;
        let a = self.allocations.get_mut(&five)?;
        if !a.permitted(peer.ip(), now.mono) {
            self.metrics.dropped_no_permission += 1;
            return None;
        }
        if !a.spend(data.len(), rate, now.mono) {
            self.metrics.dropped_bandwidth += 1;
            return None;
        }
        let channel = a
            .channel_of
            .get(&peer)
            .copied()
            .filter(|c| a.channels.get(c).is_some_and(|(_, exp)| *exp > now.mono));
        let out = match channel {
            Some(c) => {
                let mut v = Vec::with_capacity(4 + data.len() + 3);
                v.extend_from_slice(&c.to_be_bytes());
                v.extend_from_slice(&(data.len() as u16).to_be_bytes());
                v.extend_from_slice(data);
                if five.tcp {
                    v.resize(v.len() + (4 - data.len() % 4) % 4, 0);
                }
                v
            }
            None => Builder::new(stun::DATA, Class::Indication, rand::random())
                .xor_addr(stun::XOR_PEER_ADDRESS, peer)
                .attr(stun::DATA_ATTR, data)
                .build(),
        };
        self.metrics.bytes_to_clients += data.len() as u64;
        self.metrics.packets_to_clients += 1;
        Some(Out::Client {
            to: five,
            data: out,
        })
    }

    fn remove(&mut self, five: FiveTuple, ports: &mut dyn RelayPorts) {
        if let Some(a) = self.allocations.remove(&five) {
            self.by_relay.remove(&a.relay);
            if let Some(n) = self.per_user.get_mut(&a.user) {
                *n -= 1;
                if *n == 0 {
                    self.per_user.remove(&a.user);
                }
            }
            ports.close(a.relay);
        }
    }

    /// Whether the client on `five` holds an allocation.
    pub fn has_allocation(&self, five: &FiveTuple) -> bool {
        self.allocations.contains_key(five)
    }

    /// A TCP client went away: its allocation goes with it.
    pub fn client_closed(&mut self, five: FiveTuple, ports: &mut dyn RelayPorts) {
        self.remove(five, ports);
    }

    /// Expires allocations, reservations, permissions and channels.
    pub fn tick(&mut self, now: Instant, ports: &mut dyn RelayPorts) {
        let stale: Vec<[u8; 8]> = self
            .reservations
            .iter()
            .filter(|(_, (_, exp))| *exp <= now)
            .map(|(t, _)| *t)
            .collect();
        for t in stale {
            if let Some((addr, _)) = self.reservations.remove(&t) {
                ports.close(addr);
            }
        }
        let expired: Vec<FiveTuple> = self
            .allocations
            .values()
            .filter(|a| a.expires <= now)
            .map(|a| a.five)
            .collect();
        for five in expired {
            self.remove(five, ports);
        }
        for a in self.allocations.values_mut() {
            a.permissions.retain(|_, exp| *exp > now);
            let dead: Vec<u16> = a
                .channels
                .iter()
                .filter(|(_, (_, exp))| *exp <= now)
                .map(|(c, _)| *c)
                .collect();
            for c in dead {
                if let Some((peer, _)) = a.channels.remove(&c) {
                    a.channel_of.remove(&peer);
                }
            }
        }
    }
}

fn requested_lifetime(m: &Message) -> Duration {
    // RFC 8656 6.2: the smaller of the request and the maximum, but never
    // less than the default.
    m.u32(stun::LIFETIME)
        .map(|s| {
            Duration::from_secs(s as u64)
                .min(MAX_LIFETIME)
                .max(DEFAULT_LIFETIME)
        })
        .unwrap_or(DEFAULT_LIFETIME)
}

fn allocate_success(
    tid: TransactionId,
    relayed: SocketAddr,
    mapped: SocketAddr,
    lifetime: Duration,
    token: Option<[u8; 8]>,
    key: &[u8],
) -> Vec<u8> {
    let mut b = Builder::new(stun::ALLOCATE, Class::Success, tid)
        .xor_addr(stun::XOR_RELAYED_ADDRESS, relayed)
        .u32(stun::LIFETIME, lifetime.as_secs() as u32);
    if let Some(t) = token {
        b = b.attr(stun::RESERVATION_TOKEN, &t);
    }
    b.xor_addr(stun::XOR_MAPPED_ADDRESS, mapped)
        .attr(stun::SOFTWARE, SOFTWARE.as_bytes())
        .integrity(key)
        .fingerprint()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::policy::{Cidr, PeerPolicy};

    struct FakePorts {
        next: u16,
        open: Vec<SocketAddr>,
    }

    impl RelayPorts for FakePorts {
        fn open(
            &mut self,
            _ipv6: bool,
            even_pair: bool,
        ) -> io::Result<(SocketAddr, Option<SocketAddr>)> {
            self.next += 2;
            let a: SocketAddr = format!("203.0.113.5:{}", 50000 + self.next)
                .parse()
                .unwrap();
            self.open.push(a);
            if even_pair {
                let b = SocketAddr::new(a.ip(), a.port() + 1);
                self.open.push(b);
                return Ok((a, Some(b)));
            }
            Ok((a, None))
        }

        fn close(&mut self, relay: SocketAddr) {
            self.open.retain(|a| *a != relay);
        }
    }

    const SECRET: &[u8] = b"north-of-the-wall";
    const REALM: &str = "tandem";

    fn server(quota: usize, bandwidth: u64, allow: &[&str]) -> TurnServer {
        TurnServer::new(TurnConfig {
            realm: REALM.into(),
            secret: SECRET.to_vec(),
            nonce_key: [9; 32],
            user_quota: quota,
            bandwidth,
            policy: PeerPolicy {
                allow: allow.iter().map(|c| c.parse::<Cidr>().unwrap()).collect(),
            },
            public_ip: None,
        })
    }

    fn five(port: u16) -> FiveTuple {
        FiveTuple {
            client: format!("198.51.100.7:{port}").parse().unwrap(),
            server: "203.0.113.5:3478".parse().unwrap(),
            tcp: false,
        }
    }

    struct Client {
        username: String,
        password: String,
        nonce: String,
        five: FiveTuple,
    }

    impl Client {
        fn new(user: &str, expiry: u64, port: u16) -> Self {
            let username = format!("{expiry}:{user}");
            Client {
                password: rest_password(SECRET, &username),
                username,
                nonce: String::new(),
                five: five(port),
            }
        }

        fn request(&self, method: u16, extra: impl FnOnce(Builder) -> Builder) -> Vec<u8> {
            let key = stun::long_term_key(&self.username, REALM, &self.password);
            let b = Builder::new(method, Class::Request, rand::random())
                .attr(stun::USERNAME, self.username.as_bytes())
                .attr(stun::REALM, REALM.as_bytes())
                .attr(stun::NONCE, self.nonce.as_bytes());
            extra(b).integrity(&key).fingerprint()
        }
    }

    fn reply(out: Option<Out>) -> Vec<u8> {
        match out {
            Some(Out::Client { data, .. }) => data,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    fn code(bytes: &[u8]) -> Option<u16> {
        let m = stun::parse(bytes).unwrap();
        m.get(stun::ERROR_CODE)
            .map(|v| v[2] as u16 * 100 + v[3] as u16)
    }

    const T0: u64 = 1_800_000_000;

    fn now(mono: Instant, offset: u64) -> Now {
        Now {
            mono: mono + Duration::from_secs(offset),
            unix: T0 + offset,
        }
    }

    /// Gets a nonce with an unauthenticated Allocate, then allocates.
    fn allocate(
        s: &mut TurnServer,
        c: &mut Client,
        ports: &mut FakePorts,
        at: Now,
    ) -> Result<SocketAddr, u16> {
        let first = Builder::new(stun::ALLOCATE, Class::Request, [1; 12])
            .u32(stun::REQUESTED_TRANSPORT, 17 << 24)
            .fingerprint();
        let r = reply(s.handle_client(at, c.five, &first, ports));
        assert_eq!(code(&r), Some(401));
        c.nonce = stun::parse(&r)
            .unwrap()
            .str(stun::NONCE)
            .unwrap()
            .to_string();
        let req = c.request(stun::ALLOCATE, |b| {
            b.u32(stun::REQUESTED_TRANSPORT, 17 << 24)
        });
        let r = reply(s.handle_client(at, c.five, &req, ports));
        match code(&r) {
            Some(e) => Err(e),
            None => Ok(stun::parse(&r)
                .unwrap()
                .xor_addr(stun::XOR_RELAYED_ADDRESS)
                .unwrap()),
        }
    }

    #[test]
    fn allocate_permission_and_relay_both_ways() {
        let t = Instant::now();
        let mut s = server(10, 0, &[]);
        let mut ports = FakePorts {
            next: 0,
            open: vec![],
        };
        let mut c = Client::new("alice", T0 + 3600, 4000);
        let relay = allocate(&mut s, &mut c, &mut ports, now(t, 0)).unwrap();
        assert_eq!(ports.open, vec![relay]);
        let peer: SocketAddr = "192.0.2.44:7000".parse().unwrap();

        // Without a permission nothing goes through.
        let send = Builder::new(stun::SEND, Class::Indication, [3; 12])
            .xor_addr(stun::XOR_PEER_ADDRESS, peer)
            .attr(stun::DATA_ATTR, b"hello")
            .build();
        assert!(
            s.handle_client(now(t, 1), c.five, &send, &mut ports)
                .is_none()
        );
        assert!(s.handle_peer(now(t, 1), relay, peer, b"hi").is_none());

        let perm = c.request(stun::CREATE_PERMISSION, |b| {
            b.xor_addr(stun::XOR_PEER_ADDRESS, peer)
        });
        assert_eq!(
            code(&reply(s.handle_client(
                now(t, 1),
                c.five,
                &perm,
                &mut ports
            ))),
            None
        );
        assert_eq!(
            s.handle_client(now(t, 2), c.five, &send, &mut ports),
            Some(Out::Peer {
                relay,
                peer,
                data: b"hello".to_vec()
            })
        );
        let back = reply(s.handle_peer(now(t, 2), relay, peer, b"world"));
        let m = stun::parse(&back).unwrap();
        assert_eq!((m.method, m.class), (stun::DATA, Class::Indication));
        assert_eq!(m.xor_addr(stun::XOR_PEER_ADDRESS), Some(peer));
        assert_eq!(m.get(stun::DATA_ATTR), Some(&b"world"[..]));

        // Channels: ChannelData both ways.
        let bind = c.request(stun::CHANNEL_BIND, |b| {
            b.attr(stun::CHANNEL_NUMBER, &[0x40, 0x01, 0, 0])
                .xor_addr(stun::XOR_PEER_ADDRESS, peer)
        });
        assert_eq!(
            code(&reply(s.handle_client(
                now(t, 3),
                c.five,
                &bind,
                &mut ports
            ))),
            None
        );
        let cd = [0x40, 0x01, 0, 3, b'a', b'b', b'c', 0];
        assert_eq!(
            s.handle_client(now(t, 3), c.five, &cd, &mut ports),
            Some(Out::Peer {
                relay,
                peer,
                data: b"abc".to_vec()
            })
        );
        assert_eq!(
            reply(s.handle_peer(now(t, 3), relay, peer, b"xyz")),
            vec![0x40, 0x01, 0, 3, b'x', b'y', b'z']
        );

        // Permissions expire 5 minutes after their last refresh (the channel bind at t+3).
        s.tick(t + Duration::from_secs(304), &mut ports);
        assert!(s.handle_peer(now(t, 304), relay, peer, b"late").is_none());
        let m = s.metrics();
        assert_eq!(
            (m.allocations, m.packets_to_peers, m.packets_to_clients),
            (1, 2, 2)
        );
        assert!(m.dropped_no_permission >= 2);

        // The allocation expires after its lifetime; its port is closed.
        s.tick(t + DEFAULT_LIFETIME + Duration::from_secs(1), &mut ports);
        assert!(ports.open.is_empty());
        assert_eq!(s.metrics().allocations, 0);
    }

    #[test]
    fn refusals() {
        let t = Instant::now();
        let mut s = server(2, 0, &[]);
        let mut ports = FakePorts {
            next: 0,
            open: vec![],
        };

        // Expired credentials.
        let mut old = Client::new("bob", T0 - 1, 4001);
        assert_eq!(allocate(&mut s, &mut old, &mut ports, now(t, 0)), Err(401));

        // Wrong password.
        let mut wrong = Client::new("bob", T0 + 60, 4002);
        wrong.password = "not-the-hmac".into();
        assert_eq!(
            allocate(&mut s, &mut wrong, &mut ports, now(t, 0)),
            Err(401)
        );

        // Unknown realm.
        let mut c = Client::new("bob", T0 + 60, 4003);
        let _ = allocate(&mut s, &mut c, &mut ports, now(t, 0)); // fetches a nonce (and allocates)
        let key = stun::long_term_key(&c.username, "elsewhere", &c.password);
        let req = Builder::new(stun::REFRESH, Class::Request, [5; 12])
            .attr(stun::USERNAME, c.username.as_bytes())
            .attr(stun::REALM, b"elsewhere")
            .attr(stun::NONCE, c.nonce.as_bytes())
            .integrity(&key)
            .fingerprint();
        assert_eq!(
            code(&reply(s.handle_client(now(t, 1), c.five, &req, &mut ports))),
            Some(401)
        );

        // Stale nonce after NONCE_LIFETIME.
        let refresh = c.request(stun::REFRESH, |b| b);
        assert_eq!(
            code(&reply(s.handle_client(
                now(t, NONCE_LIFETIME + 1),
                c.five,
                &refresh,
                &mut ports
            ))),
            Some(438)
        );

        // Loopback and private peers are forbidden by default.
        for peer in ["127.0.0.1:9", "10.0.0.1:9", "169.254.169.254:80", "[::1]:9"] {
            let peer: SocketAddr = peer.parse().unwrap();
            let perm = c.request(stun::CREATE_PERMISSION, |b| {
                b.xor_addr(stun::XOR_PEER_ADDRESS, peer)
            });
            assert_eq!(
                code(&reply(s.handle_client(
                    now(t, 2),
                    c.five,
                    &perm,
                    &mut ports
                ))),
                Some(403),
                "{peer}"
            );
        }

        // Quota: bob holds one; a second 5-tuple gets another; a third is refused.
        let mut c2 = Client::new("bob", T0 + 60, 4004);
        assert!(allocate(&mut s, &mut c2, &mut ports, now(t, 2)).is_ok());
        let mut c3 = Client::new("bob", T0 + 60, 4005);
        assert_eq!(allocate(&mut s, &mut c3, &mut ports, now(t, 2)), Err(486));
        // Another user is not affected.
        let mut eve = Client::new("eve", T0 + 60, 4006);
        assert!(allocate(&mut s, &mut eve, &mut ports, now(t, 2)).is_ok());
        // Refresh with lifetime 0 frees bob's slot.
        let free = c2.request(stun::REFRESH, |b| b.u32(stun::LIFETIME, 0));
        assert_eq!(
            code(&reply(s.handle_client(
                now(t, 3),
                c2.five,
                &free,
                &mut ports
            ))),
            None
        );
        assert!(allocate(&mut s, &mut c3, &mut ports, now(t, 3)).is_ok());

        // Another user's credentials on bob's allocation.
        eve.five = c.five;
        let perm = eve.request(stun::CREATE_PERMISSION, |b| {
            b.xor_addr(stun::XOR_PEER_ADDRESS, "192.0.2.1:1".parse().unwrap())
        });
        assert_eq!(
            code(&reply(s.handle_client(
                now(t, 3),
                c.five,
                &perm,
                &mut ports
            ))),
            Some(441)
        );

        let m = s.metrics();
        assert!(
            m.refused_unauthenticated >= 3
                && m.refused_quota == 1
                && m.refused_peer == 4
                && m.refused_stale_nonce == 1
        );
    }

    #[test]
    fn malformed_input_is_dropped_without_harm() {
        let t = Instant::now();
        let mut s = server(10, 0, &["127.0.0.0/8"]);
        let mut ports = FakePorts {
            next: 0,
            open: vec![],
        };
        let mut c = Client::new("carol", T0 + 60, 4010);
        let relay = allocate(&mut s, &mut c, &mut ports, now(t, 0)).unwrap();
        for junk in [
            &b""[..],
            b"\x00\x01",
            &[0u8; 20],
            b"\x40\x01\x00\xff\x00",
            b"GET / HTTP/1.1\r\n\r\n",
            &[0xff; 64],
        ] {
            assert!(
                s.handle_client(now(t, 1), c.five, junk, &mut ports)
                    .is_none()
            );
        }
        // Loopback is allowed here by the allow-list, and the allocation still works.
        let peer: SocketAddr = "127.0.0.1:9999".parse().unwrap();
        let perm = c.request(stun::CREATE_PERMISSION, |b| {
            b.xor_addr(stun::XOR_PEER_ADDRESS, peer)
        });
        assert_eq!(
            code(&reply(s.handle_client(
                now(t, 1),
                c.five,
                &perm,
                &mut ports
            ))),
            None
        );
        assert!(s.handle_peer(now(t, 1), relay, peer, b"ok").is_some());
        assert!(s.metrics().dropped_malformed >= 4);
    }

    #[test]
    fn bandwidth_cap_drops_the_excess() {
        let t = Instant::now();
        let mut s = server(10, 1000, &[]);
        let mut ports = FakePorts {
            next: 0,
            open: vec![],
        };
        let mut c = Client::new("dave", T0 + 60, 4020);
        let relay = allocate(&mut s, &mut c, &mut ports, now(t, 0)).unwrap();
        let peer: SocketAddr = "192.0.2.9:9".parse().unwrap();
        let perm = c.request(stun::CREATE_PERMISSION, |b| {
            b.xor_addr(stun::XOR_PEER_ADDRESS, peer)
        });
        reply(s.handle_client(now(t, 0), c.five, &perm, &mut ports));
        let chunk = [0u8; 400];
        let passed = (0..5)
            .filter(|_| s.handle_peer(now(t, 0), relay, peer, &chunk).is_some())
            .count();
        assert_eq!(
            passed, 2,
            "1000 bytes/s lets two 400-byte packets through at once"
        );
        assert!(
            s.handle_peer(now(t, 1), relay, peer, &chunk).is_some(),
            "refilled after a second"
        );
        assert_eq!(s.metrics().dropped_bandwidth, 3);
    }

    #[test]
    fn binding_needs_no_credentials() {
        let mut s = server(10, 0, &[]);
        let mut ports = FakePorts {
            next: 0,
            open: vec![],
        };
        let req = Builder::new(stun::BINDING, Class::Request, [2; 12]).fingerprint();
        let r = reply(s.handle_client(now(Instant::now(), 0), five(5000), &req, &mut ports));
        let m = stun::parse(&r).unwrap();
        assert_eq!(m.class, Class::Success);
        assert_eq!(
            m.xor_addr(stun::XOR_MAPPED_ADDRESS),
            Some(five(5000).client)
        );
    }
}
