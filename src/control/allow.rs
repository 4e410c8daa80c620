//! Who may steer: the senders the control server obeys (`--control-allow ADDR[/PREFIX]`).
//! Anyone else is refused without an answer, so a stranger on the network (or another user
//! on the same host, at 127.0.0.2) learns nothing, not even that a server listens.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One allowed network: an address and how many leading bits of it must match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllowNet {
    /// The network's address (bits beyond the prefix are ignored).
    pub addr: IpAddr,
    /// Leading bits that must match (0-32 for IPv4, 0-128 for IPv6).
    pub prefix: u8,
}

impl AllowNet {
    /// One host.
    pub fn host(addr: IpAddr) -> Self {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Self { addr, prefix }
    }

    /// Does `ip` belong to this network? An IPv4 sender seen on an IPv6 socket
    /// (`::ffff:a.b.c.d`) is judged as the IPv4 address it is.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask32(self.prefix);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask128(self.prefix);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix.min(128)))
        .unwrap_or(0)
}

impl std::fmt::Display for AllowNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl std::str::FromStr for AllowNet {
    type Err = String;

    /// `ADDR` (one host) or `ADDR/PREFIX`, IPv4 or IPv6 (`192.168.1.0/24`, `::1`, `fd00::/8`).
    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let (addr, prefix) = match t.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (t, None),
        };
        let addr: IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| {
                format!("'{text}': expected an IP address, optionally /PREFIX (e.g. 192.168.1.0/24 or ::1)")
            })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => {
                    return Err(format!(
                        "'{text}': the prefix must be a whole number from 0 to {max}"
                    ))
                }
            },
        };
        Ok(Self { addr, prefix })
    }
}

/// The senders a control server obeys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowList {
    nets: Vec<AllowNet>,
}

impl AllowList {
    /// Exactly these networks.
    pub fn new(nets: Vec<AllowNet>) -> Self {
        Self { nets }
    }

    /// The default: this host's own 127.0.0.1 and ::1, and the /24 of each IPv4 OSC target
    /// (the show network the desk is on). A loopback target adds only itself, and a
    /// multicast target nothing (no sender has a group's address), so other loopback
    /// addresses (127.0.0.2: another user of this machine) stay refused.
    pub fn default_for(osc_targets: &[SocketAddr]) -> Self {
        let mut nets = vec![
            AllowNet::host(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            AllowNet::host(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ];
        for t in osc_targets {
            let IpAddr::V4(ip) = t.ip() else { continue };
            let net = if ip.is_loopback() {
                AllowNet::host(IpAddr::V4(ip))
            } else if ip.is_multicast() || ip.is_unspecified() {
                continue;
            } else {
                AllowNet {
                    addr: IpAddr::V4(Ipv4Addr::from(u32::from(ip) & mask32(24))),
                    prefix: 24,
                }
            };
            if !nets.contains(&net) {
                nets.push(net);
            }
        }
        Self { nets }
    }

    /// May `ip` steer?
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// The networks, in order.
    pub fn nets(&self) -> &[AllowNet] {
        &self.nets
    }
}

impl std::fmt::Display for AllowList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, n) in self.nets.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_parse_or_say_why_not() {
        let n: AllowNet = "192.168.1.7/24".parse().unwrap();
        assert_eq!(n.prefix, 24);
        assert!(n.contains(ip("192.168.1.200")));
        assert!(!n.contains(ip("192.168.2.1")));
        assert_eq!("::1".parse::<AllowNet>().unwrap().prefix, 128);
        assert_eq!("[fd00::]/8".parse::<AllowNet>().unwrap().prefix, 8);
        assert!("0.0.0.0/0"
            .parse::<AllowNet>()
            .unwrap()
            .contains(ip("8.8.8.8")));
        for bad in [
            "",
            "10.0.0.1/33",
            "::1/129",
            "10.0.0/8",
            "host.example",
            "10.0.0.1/",
            "10.0.0.1/-1",
            "10.0.0.1/8/8",
        ] {
            let e = bad.parse::<AllowNet>().unwrap_err();
            assert!(e.contains(&format!("'{bad}'")), "{bad}: {e}");
        }
    }

    #[test]
    fn the_default_is_this_host_and_the_show_network() {
        let targets: Vec<SocketAddr> = [
            "192.168.1.20:9000",
            "192.168.1.255:9000",
            "127.0.0.1:9001",
            "239.1.2.3:9000",
            "[::1]:9000",
        ]
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
        let a = AllowList::default_for(&targets);
        assert_eq!(a.to_string(), "127.0.0.1/32, ::1/128, 192.168.1.0/24");
        for ok in ["127.0.0.1", "::1", "192.168.1.99", "::ffff:127.0.0.1"] {
            assert!(a.allows(ip(ok)), "{ok}");
        }
        for no in ["127.0.0.2", "192.168.2.1", "10.0.0.1", "::2", "239.1.2.3"] {
            assert!(!a.allows(ip(no)), "{no}");
        }
        let none = AllowList::default_for(&[]);
        assert!(!none.allows(ip("127.0.0.2")));
    }

    /// Against a reference: an address is in a network when its first `prefix` bits, read
    /// one by one, equal the network's.
    fn bits_match(a: &[u8], b: &[u8], prefix: u8) -> bool {
        (0..prefix as usize).all(|i| (a[i / 8] >> (7 - i % 8)) & 1 == (b[i / 8] >> (7 - i % 8)) & 1)
    }

    proptest! {
        #[test]
        fn v4_membership_matches_bitwise_reference(net in any::<u32>(), x in any::<u32>(), p in 0u8..=32) {
            let n = AllowNet { addr: IpAddr::V4(net.into()), prefix: p };
            prop_assert_eq!(n.contains(IpAddr::V4(x.into())), bits_match(&net.to_be_bytes(), &x.to_be_bytes(), p));
        }

        #[test]
        fn v6_membership_matches_bitwise_reference(net in any::<u128>(), x in any::<u128>(), p in 0u8..=128) {
            let n = AllowNet { addr: IpAddr::V6(net.into()), prefix: p };
            let x6 = Ipv6Addr::from(x);
            // A v4-mapped sender is judged as IPv4, which no IPv6 network holds.
            let expect = x6.to_ipv4_mapped().is_none()
                && bits_match(&net.to_be_bytes(), &x.to_be_bytes(), p);
            prop_assert_eq!(n.contains(IpAddr::V6(x6)), expect);
        }

        #[test]
        fn parsing_never_panics(s in "[0-9a-f:./\\[\\]]{0,24}") {
            let _ = s.parse::<AllowNet>();
        }
    }
}
