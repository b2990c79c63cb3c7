//! STUN messages (RFC 8489) as used by TURN (RFC 8656): parsing, building,
//! MESSAGE-INTEGRITY (HMAC-SHA1) and FINGERPRINT (CRC-32). No I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hmac::{Hmac, Mac};
use sha1::Sha1;

pub const MAGIC: u32 = 0x2112_A442;
pub const HEADER: usize = 20;

// Methods.
pub const BINDING: u16 = 0x001;
pub const ALLOCATE: u16 = 0x003;
pub const REFRESH: u16 = 0x004;
pub const SEND: u16 = 0x006;
pub const DATA: u16 = 0x007;
pub const CREATE_PERMISSION: u16 = 0x008;
pub const CHANNEL_BIND: u16 = 0x009;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Request,
    Indication,
    Success,
    Error,
}

// Attributes.
pub const MAPPED_ADDRESS: u16 = 0x0001;
pub const USERNAME: u16 = 0x0006;
pub const MESSAGE_INTEGRITY: u16 = 0x0008;
pub const ERROR_CODE: u16 = 0x0009;
pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
pub const CHANNEL_NUMBER: u16 = 0x000C;
pub const LIFETIME: u16 = 0x000D;
pub const XOR_PEER_ADDRESS: u16 = 0x0012;
pub const DATA_ATTR: u16 = 0x0013;
pub const REALM: u16 = 0x0014;
pub const NONCE: u16 = 0x0015;
pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
pub const REQUESTED_ADDRESS_FAMILY: u16 = 0x0017;
pub const EVEN_PORT: u16 = 0x0018;
pub const REQUESTED_TRANSPORT: u16 = 0x0019;
pub const DONT_FRAGMENT: u16 = 0x001A;
pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
pub const RESERVATION_TOKEN: u16 = 0x0022;
pub const SOFTWARE: u16 = 0x8022;
pub const FINGERPRINT: u16 = 0x8028;

pub type TransactionId = [u8; 12];

/// A parsed message: borrowed attribute values.
#[derive(Debug)]
pub struct Message<'a> {
    pub method: u16,
    pub class: Class,
    pub tid: TransactionId,
    /// (type, value, offset of the attribute header in the message)
    pub attrs: Vec<(u16, &'a [u8], usize)>,
    pub raw: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    TooShort,
    NotStun,
    BadLength,
    BadAttribute,
}

fn split_type(t: u16) -> (u16, Class) {
    let method = (t & 0x000F) | ((t & 0x00E0) >> 1) | ((t & 0x3E00) >> 2);
    let class = match ((t >> 7) & 0x2) | ((t >> 4) & 0x1) {
        0 => Class::Request,
        1 => Class::Indication,
        2 => Class::Success,
        _ => Class::Error,
    };
    (method, class)
}

fn join_type(method: u16, class: Class) -> u16 {
    let c = match class {
        Class::Request => 0,
        Class::Indication => 1,
        Class::Success => 2,
        Class::Error => 3,
    };
    (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((c & 1) << 4)
        | ((c & 2) << 7)
}

/// Whether `b` starts like a STUN message (top two bits zero, magic cookie).
pub fn is_stun(b: &[u8]) -> bool {
    b.len() >= HEADER && b[0] & 0xC0 == 0 && u32::from_be_bytes([b[4], b[5], b[6], b[7]]) == MAGIC
}

pub fn parse(b: &[u8]) -> Result<Message<'_>, ParseError> {
    if b.len() < HEADER {
        return Err(ParseError::TooShort);
    }
    if !is_stun(b) {
        return Err(ParseError::NotStun);
    }
    let len = u16::from_be_bytes([b[2], b[3]]) as usize;
    if !len.is_multiple_of(4) || HEADER + len != b.len() {
        return Err(ParseError::BadLength);
    }
    let (method, class) = split_type(u16::from_be_bytes([b[0], b[1]]));
    let mut tid = [0u8; 12];
    tid.copy_from_slice(&b[8..20]);
    let mut attrs = Vec::new();
    let mut pos = HEADER;
    while pos < b.len() {
        if pos + 4 > b.len() {
            return Err(ParseError::BadAttribute);
        }
        let t = u16::from_be_bytes([b[pos], b[pos + 1]]);
        let l = u16::from_be_bytes([b[pos + 2], b[pos + 3]]) as usize;
        let end = pos + 4 + l;
        if end > b.len() {
            return Err(ParseError::BadAttribute);
        }
        attrs.push((t, &b[pos + 4..end], pos));
        pos = end + (4 - l % 4) % 4;
        if attrs.len() > 64 {
            return Err(ParseError::BadAttribute);
        }
    }
    Ok(Message {
        method,
        class,
        tid,
        attrs,
        raw: b,
    })
}

impl<'a> Message<'a> {
    pub fn get(&self, t: u16) -> Option<&'a [u8]> {
        self.attrs
            .iter()
            .find(|(ty, _, _)| *ty == t)
            .map(|(_, v, _)| *v)
    }

    pub fn str(&self, t: u16) -> Option<&'a str> {
        self.get(t).and_then(|v| std::str::from_utf8(v).ok())
    }

    pub fn u32(&self, t: u16) -> Option<u32> {
        self.get(t)
            .filter(|v| v.len() == 4)
            .map(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
    }

    pub fn xor_addr(&self, t: u16) -> Option<SocketAddr> {
        decode_xor_addr(self.get(t)?, &self.tid)
    }

    /// Every XOR-PEER-ADDRESS (CreatePermission may carry several).
    pub fn xor_addrs(&self, t: u16) -> Vec<Option<SocketAddr>> {
        self.attrs
            .iter()
            .filter(|(ty, _, _)| *ty == t)
            .map(|(_, v, _)| decode_xor_addr(v, &self.tid))
            .collect()
    }

    /// Comprehension-required attributes (< 0x8000) we do not know.
    pub fn unknown_required(&self) -> Vec<u16> {
        self.attrs
            .iter()
            .map(|(t, _, _)| *t)
            .filter(|t| *t < 0x8000 && !KNOWN.contains(t))
            .collect()
    }

    /// Checks MESSAGE-INTEGRITY with `key`; false when absent or wrong.
    pub fn check_integrity(&self, key: &[u8]) -> bool {
        let Some(&(_, value, offset)) = self.attrs.iter().find(|(t, _, _)| *t == MESSAGE_INTEGRITY)
        else {
            return false;
        };
        if value.len() != 20 {
            return false;
        }
        // The length field covers everything up to and including MESSAGE-INTEGRITY.
        let mut header = [0u8; HEADER];
        header.copy_from_slice(&self.raw[..HEADER]);
        let len = (offset + 24 - HEADER) as u16;
        header[2..4].copy_from_slice(&len.to_be_bytes());
        let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key).expect("any key length");
        mac.update(&header);
        mac.update(&self.raw[HEADER..offset]);
        mac.verify_slice(value).is_ok()
    }
}

const KNOWN: &[u16] = &[
    MAPPED_ADDRESS,
    USERNAME,
    MESSAGE_INTEGRITY,
    ERROR_CODE,
    UNKNOWN_ATTRIBUTES,
    CHANNEL_NUMBER,
    LIFETIME,
    XOR_PEER_ADDRESS,
    DATA_ATTR,
    REALM,
    NONCE,
    XOR_RELAYED_ADDRESS,
    REQUESTED_ADDRESS_FAMILY,
    EVEN_PORT,
    REQUESTED_TRANSPORT,
    DONT_FRAGMENT,
    XOR_MAPPED_ADDRESS,
    RESERVATION_TOKEN,
];

fn decode_xor_addr(v: &[u8], tid: &TransactionId) -> Option<SocketAddr> {
    if v.len() < 4 {
        return None;
    }
    let port = u16::from_be_bytes([v[2], v[3]]) ^ (MAGIC >> 16) as u16;
    match v[1] {
        0x01 if v.len() == 8 => {
            let raw = u32::from_be_bytes([v[4], v[5], v[6], v[7]]) ^ MAGIC;
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(raw)), port))
        }
        0x02 if v.len() == 20 => {
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&MAGIC.to_be_bytes());
            key[4..].copy_from_slice(tid);
            let mut ip = [0u8; 16];
            for i in 0..16 {
                ip[i] = v[4 + i] ^ key[i];
            }
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port))
        }
        _ => None,
    }
}

fn encode_xor_addr(addr: SocketAddr, tid: &TransactionId) -> Vec<u8> {
    let port = addr.port() ^ (MAGIC >> 16) as u16;
    match addr.ip() {
        IpAddr::V4(ip) => {
            let mut v = vec![0, 0x01];
            v.extend_from_slice(&port.to_be_bytes());
            v.extend_from_slice(&(u32::from(ip) ^ MAGIC).to_be_bytes());
            v
        }
        IpAddr::V6(ip) => {
            let mut v = vec![0, 0x02];
            v.extend_from_slice(&port.to_be_bytes());
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&MAGIC.to_be_bytes());
            key[4..].copy_from_slice(tid);
            for (i, b) in ip.octets().iter().enumerate() {
                v.push(b ^ key[i]);
            }
            v
        }
    }
}

/// Builds a message attribute by attribute.
pub struct Builder {
    buf: Vec<u8>,
    tid: TransactionId,
}

impl Builder {
    pub fn new(method: u16, class: Class, tid: TransactionId) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&join_type(method, class).to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&MAGIC.to_be_bytes());
        buf.extend_from_slice(&tid);
        Builder { buf, tid }
    }

    pub fn attr(mut self, t: u16, v: &[u8]) -> Self {
        self.buf.extend_from_slice(&t.to_be_bytes());
        self.buf.extend_from_slice(&(v.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(v);
        let pad = (4 - v.len() % 4) % 4;
        self.buf.extend(std::iter::repeat_n(0u8, pad));
        self.set_len();
        self
    }

    pub fn u32(self, t: u16, v: u32) -> Self {
        self.attr(t, &v.to_be_bytes())
    }

    pub fn xor_addr(self, t: u16, addr: SocketAddr) -> Self {
        let tid = self.tid;
        self.attr(t, &encode_xor_addr(addr, &tid))
    }

    pub fn error(self, code: u16, reason: &str) -> Self {
        let mut v = vec![0, 0, (code / 100) as u8, (code % 100) as u8];
        v.extend_from_slice(reason.as_bytes());
        self.attr(ERROR_CODE, &v)
    }

    fn set_len(&mut self) {
        let len = (self.buf.len() - HEADER) as u16;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
    }

    /// Appends MESSAGE-INTEGRITY computed with `key`.
    pub fn integrity(mut self, key: &[u8]) -> Self {
        let len = (self.buf.len() + 24 - HEADER) as u16;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
        let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key).expect("any key length");
        mac.update(&self.buf);
        let tag = mac.finalize().into_bytes();
        self.attr(MESSAGE_INTEGRITY, &tag)
    }

    /// Appends FINGERPRINT and returns the bytes.
    pub fn fingerprint(mut self) -> Vec<u8> {
        let len = (self.buf.len() + 8 - HEADER) as u16;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
        let crc = crc32(&self.buf) ^ 0x5354_554E;
        self.attr(FINGERPRINT, &crc.to_be_bytes()).buf
    }

    pub fn build(self) -> Vec<u8> {
        self.buf
    }
}

/// CRC-32 (ISO 3309), as FINGERPRINT uses it.
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// Long-term credential key: MD5(username ":" realm ":" password).
pub fn long_term_key(username: &str, realm: &str, password: &str) -> [u8; 16] {
    use md5::Digest;
    let mut h = md5::Md5::new();
    h.update(username.as_bytes());
    h.update(b":");
    h.update(realm.as_bytes());
    h.update(b":");
    h.update(password.as_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn type_bits_round_trip() {
        for method in [
            BINDING,
            ALLOCATE,
            REFRESH,
            SEND,
            DATA,
            CREATE_PERMISSION,
            CHANNEL_BIND,
        ] {
            for class in [
                Class::Request,
                Class::Indication,
                Class::Success,
                Class::Error,
            ] {
                assert_eq!(split_type(join_type(method, class)), (method, class));
            }
        }
        assert_eq!(join_type(ALLOCATE, Class::Request), 0x0003);
        assert_eq!(join_type(ALLOCATE, Class::Success), 0x0103);
        assert_eq!(join_type(ALLOCATE, Class::Error), 0x0113);
        assert_eq!(join_type(SEND, Class::Indication), 0x0016);
    }

    #[test]
    fn build_parse_integrity() {
        let tid = [7u8; 12];
        let key = long_term_key("user", "realm", "pass");
        let peer: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let peer6: SocketAddr = "[2001:db8::1]:6000".parse().unwrap();
        let msg = Builder::new(CREATE_PERMISSION, Class::Request, tid)
            .attr(USERNAME, b"user")
            .xor_addr(XOR_PEER_ADDRESS, peer)
            .xor_addr(XOR_PEER_ADDRESS, peer6)
            .integrity(&key)
            .fingerprint();
        let m = parse(&msg).unwrap();
        assert_eq!((m.method, m.class), (CREATE_PERMISSION, Class::Request));
        assert_eq!(m.str(USERNAME), Some("user"));
        assert_eq!(m.xor_addrs(XOR_PEER_ADDRESS), vec![Some(peer), Some(peer6)]);
        assert!(m.check_integrity(&key));
        assert!(!m.check_integrity(&long_term_key("user", "realm", "wrong")));
        let mut tampered = msg.clone();
        tampered[25] ^= 1;
        assert!(!parse(&tampered).unwrap().check_integrity(&key));
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert_eq!(parse(&[0; 10]).unwrap_err(), ParseError::TooShort);
        let mut m = Builder::new(BINDING, Class::Request, [1; 12]).build();
        m[3] = 4;
        assert_eq!(parse(&m).unwrap_err(), ParseError::BadLength);
        let mut bad = Builder::new(BINDING, Class::Request, [1; 12])
            .attr(SOFTWARE, b"abcd")
            .build();
        bad[23] = 200; // attribute longer than the message
        assert_eq!(parse(&bad).unwrap_err(), ParseError::BadAttribute);
        assert_eq!(parse(&[0x40; 24]).unwrap_err(), ParseError::NotStun);
    }
}
