//! Engine.IO v4, sans I/O: packets, the long-polling payload, the
//! handshake's query and the heartbeat's clock. The drivers in
//! [`super::driver`] move bytes; every rule about them is here.
//!
//! Reference: <https://github.com/socketio/engine.io-protocol> (v4).

use std::time::{Duration, Instant};

use base64::Engine as _;

/// The separator between packets of a long-polling payload.
pub const SEPARATOR: char = '\x1e';

/// One Engine.IO packet as it arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    Open,
    Close,
    /// `2` or `2probe`.
    Ping(&'a str),
    /// `3` or `3probe`.
    Pong(&'a str),
    /// `4…`: a Socket.IO packet.
    Message(&'a str),
    /// Binary data: a WebSocket binary frame, or `b<base64>` when polling.
    Binary(Vec<u8>),
    Upgrade,
    Noop,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketError {
    Empty,
    UnknownType(char),
    BadBase64,
}

impl std::fmt::Display for PacketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PacketError::Empty => f.write_str("empty packet"),
            PacketError::UnknownType(c) => write!(f, "unknown packet type {c:?}"),
            PacketError::BadBase64 => f.write_str("binary packet is not base64"),
        }
    }
}

/// Reads one text packet (a WebSocket text frame, or one packet of a
/// long-polling payload).
pub fn decode(text: &str) -> Result<Packet<'_>, PacketError> {
    let mut chars = text.chars();
    let kind = chars.next().ok_or(PacketError::Empty)?;
    let rest = chars.as_str();
    Ok(match kind {
        '0' => Packet::Open,
        '1' => Packet::Close,
        '2' => Packet::Ping(rest),
        '3' => Packet::Pong(rest),
        '4' => Packet::Message(rest),
        '5' => Packet::Upgrade,
        '6' => Packet::Noop,
        'b' => Packet::Binary(
            base64::engine::general_purpose::STANDARD
                .decode(rest)
                .map_err(|_| PacketError::BadBase64)?,
        ),
        c => return Err(PacketError::UnknownType(c)),
    })
}

/// Splits a long-polling request body into its packets.
pub fn split_payload(body: &str) -> impl Iterator<Item = &str> {
    body.split(SEPARATOR)
}

/// Appends one outgoing packet to a long-polling response body.
pub fn push_payload(body: &mut String, packet: &str) {
    if !body.is_empty() {
        body.push(SEPARATOR);
    }
    body.push_str(packet);
}

/// Appends binary data to a long-polling response body (`b<base64>`).
pub fn push_binary_payload(body: &mut String, data: &[u8]) {
    if !body.is_empty() {
        body.push(SEPARATOR);
    }
    body.push('b');
    base64::engine::general_purpose::STANDARD.encode_string(data, body);
}

/// The server's settings the open packet announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub max_payload: usize,
}

/// The open packet: `0{"sid":…,"upgrades":[…],"pingInterval":…,…}`.
/// A WebSocket session has nothing to upgrade to.
pub fn open_packet(sid: &str, settings: &Settings, can_upgrade: bool) -> String {
    let upgrades = if can_upgrade {
        r#"["websocket"]"#
    } else {
        "[]"
    };
    format!(
        r#"0{{"sid":"{sid}","upgrades":{upgrades},"pingInterval":{},"pingTimeout":{},"maxPayload":{}}}"#,
        settings.ping_interval.as_millis(),
        settings.ping_timeout.as_millis(),
        settings.max_payload
    )
}

/// Which transport a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportType {
    Polling,
    Websocket,
}

/// The query of an Engine.IO request: `EIO=4&transport=…&sid=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query<'a> {
    pub transport: TransportType,
    pub sid: Option<&'a str>,
}

/// Why a request was refused, with the code and message Engine.IO servers
/// answer (HTTP 400, `{"code":…,"message":…}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    UnknownTransport,
    UnknownSid,
    BadHandshakeMethod,
    BadRequest,
    Forbidden,
    UnsupportedProtocolVersion,
}

impl RequestError {
    pub fn code(self) -> u8 {
        match self {
            RequestError::UnknownTransport => 0,
            RequestError::UnknownSid => 1,
            RequestError::BadHandshakeMethod => 2,
            RequestError::BadRequest => 3,
            RequestError::Forbidden => 4,
            RequestError::UnsupportedProtocolVersion => 5,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            RequestError::UnknownTransport => "Transport unknown",
            RequestError::UnknownSid => "Session ID unknown",
            RequestError::BadHandshakeMethod => "Bad handshake method",
            RequestError::BadRequest => "Bad request",
            RequestError::Forbidden => "Forbidden",
            RequestError::UnsupportedProtocolVersion => "Unsupported protocol version",
        }
    }

    /// The JSON body of the 400 answer.
    pub fn body(self) -> String {
        format!(
            r#"{{"code":{},"message":"{}"}}"#,
            self.code(),
            self.message()
        )
    }
}

/// Reads the query string of an Engine.IO request.
pub fn parse_query(query: &str) -> Result<Query<'_>, RequestError> {
    let (mut eio, mut transport, mut sid) = (None, None, None);
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "EIO" => eio = Some(v),
            "transport" => transport = Some(v),
            "sid" => sid = Some(v),
            _ => {}
        }
    }
    let transport = match transport {
        Some("polling") => TransportType::Polling,
        Some("websocket") => TransportType::Websocket,
        _ => return Err(RequestError::UnknownTransport),
    };
    if eio != Some("4") {
        return Err(RequestError::UnsupportedProtocolVersion);
    }
    Ok(Query {
        transport,
        sid: sid.filter(|s| !s.is_empty()),
    })
}

/// What the heartbeat asks of its driver when its deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Send a ping now; the client has `ping_timeout` to answer.
    Ping,
    /// No pong in time: close the session.
    TimedOut,
}

/// The server's side of the Engine.IO v4 heartbeat: a ping every
/// `ping_interval`, and a pong due `ping_timeout` after each ping. Plain
/// time in, decisions out: the driver sleeps until [`Heartbeat::deadline`]
/// and calls [`Heartbeat::tick`].
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat {
    interval: Duration,
    timeout: Duration,
    deadline: Instant,
    awaiting_pong: bool,
}

impl Heartbeat {
    pub fn new(now: Instant, interval: Duration, timeout: Duration) -> Self {
        Heartbeat {
            interval,
            timeout,
            deadline: now + interval,
            awaiting_pong: false,
        }
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Called at or after the deadline (earlier calls do nothing).
    pub fn tick(&mut self, now: Instant) -> Option<Beat> {
        if now < self.deadline {
            return None;
        }
        if self.awaiting_pong {
            return Some(Beat::TimedOut);
        }
        self.awaiting_pong = true;
        self.deadline = now + self.timeout;
        Some(Beat::Ping)
    }

    /// A pong arrived: the next ping is due an interval from now. A pong
    /// nobody asked for changes nothing.
    pub fn pong(&mut self, now: Instant) {
        if self.awaiting_pong {
            self.awaiting_pong = false;
            self.deadline = now + self.interval;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_decode_by_their_first_character() {
        assert_eq!(decode("0"), Ok(Packet::Open));
        assert_eq!(decode("1"), Ok(Packet::Close));
        assert_eq!(decode("2probe"), Ok(Packet::Ping("probe")));
        assert_eq!(decode("3"), Ok(Packet::Pong("")));
        assert_eq!(decode("42[\"a\"]"), Ok(Packet::Message("2[\"a\"]")));
        assert_eq!(decode("5"), Ok(Packet::Upgrade));
        assert_eq!(decode("6"), Ok(Packet::Noop));
        assert_eq!(decode("bAQI="), Ok(Packet::Binary(vec![1, 2])));
        assert_eq!(decode(""), Err(PacketError::Empty));
        assert_eq!(decode("9"), Err(PacketError::UnknownType('9')));
        assert_eq!(decode("b!!"), Err(PacketError::BadBase64));
        assert_eq!(decode("é"), Err(PacketError::UnknownType('é')));
    }

    #[test]
    fn payloads_join_and_split_on_the_record_separator() {
        let mut body = String::new();
        push_payload(&mut body, "42[\"a\"]");
        push_binary_payload(&mut body, &[1, 2]);
        push_payload(&mut body, "2");
        assert_eq!(body, "42[\"a\"]\x1ebAQI=\x1e2");
        assert_eq!(
            split_payload(&body).collect::<Vec<_>>(),
            ["42[\"a\"]", "bAQI=", "2"]
        );
    }

    #[test]
    fn the_open_packet_announces_the_settings() {
        let s = Settings {
            ping_interval: Duration::from_millis(300),
            ping_timeout: Duration::from_millis(200),
            max_payload: 1_000_000,
        };
        let p = open_packet("abc", &s, true);
        let v: serde_json::Value = serde_json::from_str(&p[1..]).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"sid":"abc","upgrades":["websocket"],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000})
        );
        assert!(open_packet("abc", &s, false).contains(r#""upgrades":[]"#));
    }

    #[test]
    fn queries_name_the_transport_and_version() {
        assert_eq!(
            parse_query("EIO=4&transport=polling&t=N8hyd6w"),
            Ok(Query {
                transport: TransportType::Polling,
                sid: None
            })
        );
        assert_eq!(
            parse_query("EIO=4&transport=websocket&sid=xyz"),
            Ok(Query {
                transport: TransportType::Websocket,
                sid: Some("xyz")
            })
        );
        assert_eq!(
            parse_query("EIO=4&transport=flash"),
            Err(RequestError::UnknownTransport)
        );
        assert_eq!(
            parse_query("EIO=3&transport=polling"),
            Err(RequestError::UnsupportedProtocolVersion)
        );
        assert_eq!(parse_query(""), Err(RequestError::UnknownTransport));
        assert_eq!(
            RequestError::UnknownSid.body(),
            r#"{"code":1,"message":"Session ID unknown"}"#
        );
    }

    #[test]
    fn the_heartbeat_pings_each_interval_and_times_out_without_a_pong() {
        let t0 = Instant::now();
        let (i, t) = (Duration::from_millis(300), Duration::from_millis(200));
        let mut h = Heartbeat::new(t0, i, t);
        assert_eq!(h.deadline(), t0 + i);
        assert_eq!(h.tick(t0 + i - Duration::from_millis(1)), None);
        assert_eq!(h.tick(t0 + i), Some(Beat::Ping));
        assert_eq!(h.deadline(), t0 + i + t);
        // Answered: the next ping is an interval after the pong.
        h.pong(t0 + i + Duration::from_millis(50));
        assert_eq!(h.deadline(), t0 + i + Duration::from_millis(50) + i);
        // An unasked pong changes nothing.
        h.pong(t0 + i + Duration::from_millis(60));
        assert_eq!(h.deadline(), t0 + i + Duration::from_millis(50) + i);
        let at = h.deadline();
        assert_eq!(h.tick(at), Some(Beat::Ping));
        assert_eq!(h.tick(at + t - Duration::from_millis(1)), None);
        assert_eq!(h.tick(at + t), Some(Beat::TimedOut));
    }
}
