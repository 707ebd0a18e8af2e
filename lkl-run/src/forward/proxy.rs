//! PROXY protocol headers (HAProxy's proxy-protocol.txt, versions 1 and 2), written to the
//! target before any payload so that it learns the client's address, which the forwarder's
//! own connection hides.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Which header the forwarder sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// The text header: `PROXY TCP4 src dst sport dport\r\n`.
    V1,
    /// The binary header.
    V2,
}

impl Version {
    /// `v1` or `v2`, as given on the command line.
    pub fn parse(s: &str) -> Option<Version> {
        match s {
            "v1" => Some(Version::V1),
            "v2" => Some(Version::V2),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        }
    }
}

/// The 12 bytes every version 2 header starts with.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The header for a TCP connection from `src` (the client) to `dst` (the address it
/// reached).
pub fn header(version: Version, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (src, dst) = same_family(src, dst);
    match version {
        Version::V1 => v1(src, dst),
        Version::V2 => v2(src, dst),
    }
}

/// Both addresses in one family, v4-mapped IPv6 addresses unwrapped (what a dual-stack
/// listener reports for IPv4 clients), so that an IPv4 client is announced as TCP4. A pair
/// that still differs (not seen on one TCP connection) is sent as IPv6, which can carry both
/// without losing the client's address.
fn same_family(src: SocketAddr, dst: SocketAddr) -> (SocketAddr, SocketAddr) {
    let canon = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    let (src, dst) = (canon(src), canon(dst));
    if src.is_ipv4() == dst.is_ipv4() {
        return (src, dst);
    }
    let v6 = |a: SocketAddr| {
        let ip = match a.ip() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        SocketAddr::new(IpAddr::V6(ip), a.port())
    };
    (v6(src), v6(dst))
}

fn v1(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let proto = if src.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {proto} {} {} {} {}\r\n",
        src.ip(),
        dst.ip(),
        src.port(),
        dst.port()
    )
    .into_bytes()
}

fn v2(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 36);
    out.extend_from_slice(&V2_SIGNATURE);
    // Version 2, command PROXY.
    out.push(0x21);
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            // AF_INET, STREAM; 4 + 4 + 2 + 2 address bytes.
            out.push(0x11);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (s, d) => {
            // AF_INET6, STREAM; 16 + 16 + 2 + 2 address bytes.
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            let (s, d): (Ipv6Addr, Ipv6Addr) = (v6(s), v6(d));
            out.push(0x21);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
    }
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_tcp4_matches_the_spec_example() {
        // proxy-protocol.txt, section 2.1: "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n".
        let h = header(
            Version::V1,
            addr("192.168.0.1:56324"),
            addr("192.168.0.11:443"),
        );
        assert_eq!(h, b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
    }

    #[test]
    fn v1_tcp6_uses_the_compressed_address_form() {
        let h = header(
            Version::V1,
            addr("[2001:db8::1]:56324"),
            addr("[2001:db8::2]:443"),
        );
        assert_eq!(h, b"PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n");
    }

    #[test]
    fn v1_worst_cases_fit_the_107_byte_limit() {
        // The spec's longest lines: 56 bytes for TCP4, 104 for TCP6.
        let h4 = header(
            Version::V1,
            addr("255.255.255.255:65535"),
            addr("255.255.255.255:65535"),
        );
        assert_eq!(
            h4,
            b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"
        );
        assert_eq!(h4.len(), 56);
        let max6 = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535";
        let h6 = header(Version::V1, addr(max6), addr(max6));
        assert_eq!(h6.len(), 104);
        assert!(h6.len() <= 107);
    }

    #[test]
    fn v2_tcp4_is_signature_command_family_length_addresses_ports() {
        let h = header(
            Version::V2,
            addr("192.168.0.1:56324"),
            addr("192.168.0.11:443"),
        );
        #[rustfmt::skip]
        let want: &[u8] = &[
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
            0x21,               // version 2, PROXY
            0x11,               // AF_INET, STREAM
            0x00, 0x0c,         // 12 address bytes
            192, 168, 0, 1,     // source
            192, 168, 0, 11,    // destination
            0xdc, 0x04,         // 56324
            0x01, 0xbb,         // 443
        ];
        assert_eq!(h, want);
    }

    #[test]
    fn v2_tcp6_is_signature_command_family_length_addresses_ports() {
        let h = header(
            Version::V2,
            addr("[2001:db8::1]:56324"),
            addr("[2001:db8::2]:443"),
        );
        #[rustfmt::skip]
        let want: &[u8] = &[
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
            0x21,               // version 2, PROXY
            0x21,               // AF_INET6, STREAM
            0x00, 0x24,         // 36 address bytes
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
            0xdc, 0x04,         // 56324
            0x01, 0xbb,         // 443
        ];
        assert_eq!(h, want);
    }

    #[test]
    fn v4_mapped_addresses_of_a_dual_stack_listener_are_sent_as_tcp4() {
        let src = addr("[::ffff:203.0.113.9]:40000");
        let dst = addr("[::ffff:198.51.100.3]:443");
        assert_eq!(
            header(Version::V1, src, dst),
            b"PROXY TCP4 203.0.113.9 198.51.100.3 40000 443\r\n"
        );
        let h = header(Version::V2, src, dst);
        assert_eq!(h[13], 0x11);
        assert_eq!(&h[16..24], &[203, 0, 113, 9, 198, 51, 100, 3]);
    }

    #[test]
    fn mixed_families_keep_the_client_address_as_ipv6() {
        let h = header(
            Version::V1,
            addr("203.0.113.9:40000"),
            addr("[2001:db8::2]:443"),
        );
        assert_eq!(
            h,
            b"PROXY TCP6 ::ffff:203.0.113.9 2001:db8::2 40000 443\r\n"
        );
        let h = header(
            Version::V2,
            addr("203.0.113.9:40000"),
            addr("[2001:db8::2]:443"),
        );
        assert_eq!(h[13], 0x21);
        assert_eq!(
            &h[16..32],
            &"::ffff:203.0.113.9".parse::<Ipv6Addr>().unwrap().octets()
        );
    }

    #[test]
    fn version_names_round_trip() {
        for v in [Version::V1, Version::V2] {
            assert_eq!(Version::parse(v.name()), Some(v));
        }
        assert_eq!(Version::parse("v3"), None);
        assert_eq!(Version::parse("V1"), None);
    }
}
