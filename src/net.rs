//! Socket helpers shared by the HTTP, Socket.IO and TURN listeners.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use axum::{
    extract::ConnectInfo,
    http::{Extensions, HeaderMap},
};

/// The local address this machine's default route leaves from: the
/// kernel's choice for a UDP "connection" to a documentation address (no
/// packet is sent). None without a route.
pub fn default_route_ip() -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// How long an accept loop pauses after errors: nothing for errors about
/// one connection (it died before we took it), otherwise doubling from
/// 5 ms up to 1 s while errors repeat. Running out of file descriptors makes
/// every `accept()` fail at once; without a pause the loop spins a core.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    pause: Duration,
}

pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

impl AcceptBackoff {
    /// An accept failed with `e`: how long to pause, if at all.
    pub fn failed(&mut self, e: &io::Error) -> Option<Duration> {
        use io::ErrorKind::*;
        if matches!(
            e.kind(),
            ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
        ) {
            return None;
        }
        self.pause = (self.pause * 2).clamp(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX);
        Some(self.pause)
    }

    pub fn succeeded(&mut self) {
        self.pause = Duration::ZERO;
    }
}

/// The client's address: the peer, or with TRUST_PROXY the X-Real-IP header
/// (then the leftmost X-Forwarded-For) a trusted proxy set.
pub fn client_ip(
    headers: &HeaderMap,
    extensions: &Extensions,
    trust_proxy: bool,
) -> Option<IpAddr> {
    if trust_proxy {
        let from_header = headers
            .get("x-real-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .or_else(|| {
                headers
                    .get("x-forwarded-for")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split(',').next())
                    .and_then(|v| v.trim().parse().ok())
            });
        if from_header.is_some() {
            return from_header;
        }
    }
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_on_resource_errors_only() {
        let mut b = AcceptBackoff::default();
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let reset = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(b.failed(&reset), None, "one dead connection: go on");
        assert_eq!(b.failed(&emfile), Some(ACCEPT_BACKOFF_MIN));
        assert_eq!(b.failed(&emfile), Some(ACCEPT_BACKOFF_MIN * 2));
        for _ in 0..20 {
            b.failed(&emfile);
        }
        assert_eq!(b.failed(&emfile), Some(ACCEPT_BACKOFF_MAX));
        b.succeeded();
        assert_eq!(b.failed(&emfile), Some(ACCEPT_BACKOFF_MIN));
    }
}
