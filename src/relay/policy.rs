//! Which peers a relay may talk to. Loopback, private, link-local,
//! multicast and other special-purpose addresses are refused unless an
//! allow-list names them (coturn CVE-2020-26262: a relay that reaches the
//! server's own network is an open door).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address block of `TURN_ALLOWED_PEERS`: a CIDR block or a single
/// address (ipnet underneath).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(ipnet::IpNet);

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&canonical(ip))
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.contains('/') {
            s.parse::<ipnet::IpNet>()
                .map(|n| Cidr(n.trunc()))
                .map_err(|_| format!("'{s}' is not an address or CIDR block"))
        } else {
            s.parse::<IpAddr>()
                .map(|ip| Cidr(ipnet::IpNet::from(ip)))
                .map_err(|_| format!("'{s}' is not an address or CIDR block"))
        }
    }
}

/// An IPv4-mapped IPv6 address is judged as the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn special_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || o[0] == 0
        || (o[0] == 100 && (64..128).contains(&o[1])) // shared address space (CGNAT)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || o[0] >= 240 // reserved
}

fn special_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
}

#[derive(Debug, Clone, Default)]
pub struct PeerPolicy {
    pub allow: Vec<Cidr>,
}

impl PeerPolicy {
    pub fn allowed(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if self.allow.iter().any(|c| c.contains(ip)) {
            return true;
        }
        match ip {
            IpAddr::V4(v4) => !special_v4(v4),
            IpAddr::V6(v6) => !special_v6(v6),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn special_addresses_are_refused_by_default() {
        let p = PeerPolicy::default();
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "224.0.0.1",
            "255.255.255.255",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!p.allowed(ip(bad)), "{bad}");
        }
        for good in [
            "8.8.8.8",
            "1.1.1.1",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
        ] {
            assert!(p.allowed(ip(good)), "{good}");
        }
    }

    #[test]
    fn the_allow_list_opens_named_blocks_only() {
        let p = PeerPolicy {
            allow: vec!["127.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()],
        };
        assert!(p.allowed(ip("127.0.0.1")));
        assert!(p.allowed(ip("127.9.9.9")));
        assert!(p.allowed(ip("::1")));
        assert!(!p.allowed(ip("10.0.0.1")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope".parse::<Cidr>().is_err());
        assert!(
            "0.0.0.0/0"
                .parse::<Cidr>()
                .unwrap()
                .contains(ip("10.0.0.1"))
        );
    }
}
