//! Client addresses: CIDR ranges (`console.trusted_proxies`), the client
//! address behind trusted reverse proxies (`X-Forwarded-For`), and the key
//! sign-in throttling counts an address under.

use std::net::IpAddr;

/// An address range such as `10.0.0.0/8`, `::1/128` or a bare address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR/PREFIX` or a bare `ADDR` (a single address).
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| format!("{text:?} is not an IP address or CIDR range"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("{text:?}: the prefix length must be 0 to {max}")),
            },
        };
        Ok(Cidr { addr, prefix })
    }

    /// Whether `ip` is in the range (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The client's address: the socket peer, unless the peer is a trusted proxy;
/// then the right-most address of `X-Forwarded-For` (all its headers, in
/// order) that is not a trusted proxy. A malformed entry ends the walk: the
/// address to its right (the last one a trusted proxy vouched for) is used.
/// With no trusted proxies, `X-Forwarded-For` is ignored.
pub fn client_ip<'a>(peer: IpAddr, forwarded_for: impl IntoIterator<Item = &'a str>, trusted: &[Cidr]) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let entries: Vec<&str> = forwarded_for.into_iter().flat_map(|h| h.split(',')).collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        match parse_forwarded_addr(entry) {
            Some(ip) => {
                client = ip;
                if !is_trusted(ip) {
                    return ip;
                }
            }
            None => return client,
        }
    }
    client
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:443`.
fn parse_forwarded_addr(entry: &str) -> Option<IpAddr> {
    let e = entry.trim();
    if let Ok(ip) = e.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = e.parse::<std::net::SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    let inner = e.strip_prefix('[').and_then(|r| r.strip_suffix(']'))?;
    inner.parse::<IpAddr>().ok().map(canonical)
}

/// The key sign-in throttling counts an address under: an IPv4 address, or
/// the /64 network of an IPv6 address (one host usually holds a whole /64).
pub fn throttle_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let net = u128::from(v6) & (u128::MAX << 64);
            format!("{}/64", std::net::Ipv6Addr::from(net))
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
    fn parses_and_matches_ranges() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.1.2.3")) && !c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.9.9.9")), "IPv4-mapped IPv6");
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(!Cidr::parse("0.0.0.0/0").unwrap().contains(ip("::1")));
        let single = Cidr::parse("192.168.1.7").unwrap();
        assert!(single.contains(ip("192.168.1.7")) && !single.contains(ip("192.168.1.8")));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert_eq!(v6.to_string(), "fd00::/8");
        for bad in ["", "10.0.0.0/33", "::/129", "example.com", "10.0.0.0/x", "10.0.0/8"] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        // Untrusted peer: its header is ignored.
        assert_eq!(client_ip(ip("203.0.113.9"), ["1.1.1.1"], &trusted), ip("203.0.113.9"));
        // No trusted proxies at all: the header is ignored.
        assert_eq!(client_ip(ip("10.0.0.1"), ["1.1.1.1"], &[]), ip("10.0.0.1"));
        // Trusted peer: the right-most untrusted entry (a client-supplied left part is skipped).
        assert_eq!(client_ip(ip("10.0.0.1"), ["6.6.6.6, 198.51.100.4, 10.0.0.2"], &trusted), ip("198.51.100.4"));
        // Several headers are one list, in order.
        assert_eq!(client_ip(ip("10.0.0.1"), ["6.6.6.6", "198.51.100.4"], &trusted), ip("198.51.100.4"));
        // Ports and brackets.
        assert_eq!(client_ip(ip("10.0.0.1"), ["[2001:db8::5]:443"], &trusted), ip("2001:db8::5"));
        assert_eq!(client_ip(ip("10.0.0.1"), ["198.51.100.4:5555"], &trusted), ip("198.51.100.4"));
        // Garbage: the last address a trusted hop vouched for.
        assert_eq!(client_ip(ip("10.0.0.1"), ["198.51.100.4, nonsense, 10.0.0.3"], &trusted), ip("10.0.0.3"));
        assert_eq!(client_ip(ip("10.0.0.1"), ["nonsense"], &trusted), ip("10.0.0.1"));
        // Only trusted hops: the left-most.
        assert_eq!(client_ip(ip("10.0.0.1"), ["10.0.0.7, 10.0.0.2"], &trusted), ip("10.0.0.7"));
        // No header.
        assert_eq!(client_ip(ip("10.0.0.1"), [], &trusted), ip("10.0.0.1"));
    }

    #[test]
    fn ipv6_addresses_are_throttled_per_64() {
        assert_eq!(throttle_key(ip("2001:db8:1:2:aaaa::1")), throttle_key(ip("2001:db8:1:2:bbbb::9")));
        assert_ne!(throttle_key(ip("2001:db8:1:2::1")), throttle_key(ip("2001:db8:1:3::1")));
        assert_eq!(throttle_key(ip("::ffff:1.2.3.4")), "1.2.3.4");
    }
}
