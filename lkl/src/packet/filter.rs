//! The classic-BPF program on the packet socket: which received packets are LKL's.
//!
//! Loads address the IP header through SKF_NET_OFF, so the program is the same whether the
//! socket's packets start there (SOCK_DGRAM, or SOCK_RAW on an interface without link-layer
//! header) or at an Ethernet header (SOCK_RAW). Only packets to LKL's addresses pass; when
//! LKL shares its address with the host stack, only those to the ports LKL owns, so the host's
//! own traffic never reaches LKL (which would answer it with resets and port-unreachables).
//! On a host kernel without PACKET_IGNORE_OUTGOING (before 4.20) the program also drops the
//! packets the interface sends, LKL's own among them (`drop_outgoing`).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};

use libc::sock_filter;

use super::{sys, ETH_P_IP, ETH_P_IPV6};

/// Which packets to LKL's addresses the socket admits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Admit {
    /// All of them: the address is LKL's alone.
    #[default]
    All,
    /// TCP and UDP to these destination ports (inclusive ranges): the address is shared.
    Ports {
        tcp: Vec<(u16, u16)>,
        udp: Vec<(u16, u16)>,
    },
}

/// Listeners that several processes of the program serve (forked workers, see
/// `PacketBackend::join_group`), and whether a socket takes the TCP segments to their ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    pub listeners: Vec<u16>,
    pub take: Take,
    /// Of those, the ones this process listens on: new connections to the others are
    /// handed to a process that does (`mailbox.rs`).
    pub serving: Vec<u16>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    /// None: a process's own socket (the fanout group deals them out).
    Nothing,
    /// All of them, and nothing else at all: a serving process's socket in the group.
    All,
}

const ACCEPT: u32 = u32::MAX;
/// skb->pkt_type of a packet the interface sends (linux/if_packet.h).
const PACKET_OUTGOING: u32 = 4;

/// `offset` from the IP header, as BPF_ABS/BPF_IND/BPF_MSH address it whatever the socket type.
fn net(offset: u32) -> u32 {
    (libc::SKF_NET_OFF as u32).wrapping_add(offset)
}
const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;

/// A jump target, resolved when the program is finished.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Label(usize);

/// Builds a program; unconditional jumps go to labels, conditional ones skip a few
/// instructions forward (their offsets are 8 bits).
#[derive(Default)]
struct Asm {
    code: Vec<sock_filter>,
    /// (instruction index, label) of each `ja` to patch.
    fixups: Vec<(usize, Label)>,
    labels: Vec<Option<usize>>,
}

fn op(class: u32, rest: u32) -> u16 {
    (class | rest) as u16
}

impl Asm {
    fn stmt(&mut self, code: u16, k: u32) {
        self.code.push(sock_filter {
            code,
            jt: 0,
            jf: 0,
            k,
        });
    }

    /// A conditional jump: `jt`/`jf` instructions skipped when true/false.
    fn jump(&mut self, cond: u32, k: u32, jt: u8, jf: u8) {
        self.code.push(sock_filter {
            code: op(libc::BPF_JMP | libc::BPF_K, cond),
            jt,
            jf,
            k,
        });
    }

    fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    fn bind(&mut self, l: Label) {
        self.labels[l.0] = Some(self.code.len());
    }

    fn ja(&mut self, l: Label) {
        self.fixups.push((self.code.len(), l));
        self.stmt(op(libc::BPF_JMP, libc::BPF_JA), 0);
    }

    /// A = the `size` bytes at `offset` in the IP header.
    fn load_net(&mut self, size: u32, offset: u32) {
        self.stmt(op(libc::BPF_LD | libc::BPF_ABS, size), net(offset));
    }

    fn ret(&mut self, k: u32) {
        self.stmt(op(libc::BPF_RET, libc::BPF_K), k);
    }

    /// Return `verdict` when A is in one of `ranges`, else fall through.
    fn ret_in(&mut self, ranges: &[(u16, u16)], verdict: u32) {
        for &(lo, hi) in ranges {
            self.jump(libc::BPF_JGE, u32::from(lo), 0, 2);
            self.jump(libc::BPF_JGT, u32::from(hi), 1, 0);
            self.ret(verdict);
        }
    }

    fn finish(mut self) -> Vec<sock_filter> {
        for (at, l) in self.fixups {
            let target = self.labels[l.0].expect("every label is bound");
            self.code[at].k = (target - at - 1) as u32;
        }
        self.code
    }
}

/// The program for LKL's addresses `v4`/`v6` (None: that family is refused), the packets
/// `admit` lets in and, with `split`, those of shared listeners this socket takes; with
/// `drop_outgoing`, packets the interface sends are refused too.
pub(super) fn program(
    v4: Option<Ipv4Addr>,
    v6: Option<Ipv6Addr>,
    admit: &Admit,
    split: Option<&Split>,
    drop_outgoing: bool,
) -> Vec<sock_filter> {
    let mut a = Asm::default();
    let (ipv4, ipv6, tcp, udp) = (a.label(), a.label(), a.label(), a.label());
    let group_only = split.is_some_and(|s| s.take == Take::All);
    // What is neither TCP nor UDP to a listed port (ICMP, later fragments, ...).
    let other = if *admit == Admit::All && !group_only {
        ACCEPT
    } else {
        0
    };
    // Every packet to the address is the socket's: no need to look further.
    let whole = *admit == Admit::All && split.is_none();
    if drop_outgoing {
        // The packet's direction as the host kernel saw it (skb->pkt_type).
        a.stmt(
            op(libc::BPF_LD | libc::BPF_ABS, libc::BPF_B),
            (libc::SKF_AD_OFF + libc::SKF_AD_PKTTYPE) as u32,
        );
        a.jump(libc::BPF_JEQ, PACKET_OUTGOING, 0, 1);
        a.ret(0);
    }
    // The protocol the host kernel gave the packet (skb->protocol).
    a.stmt(
        op(libc::BPF_LD | libc::BPF_ABS, libc::BPF_H),
        (libc::SKF_AD_OFF + libc::SKF_AD_PROTOCOL) as u32,
    );
    a.jump(libc::BPF_JEQ, u32::from(ETH_P_IP), 0, 1);
    a.ja(ipv4);
    a.jump(libc::BPF_JEQ, u32::from(ETH_P_IPV6), 0, 1);
    a.ja(ipv6);
    a.ret(0);

    a.bind(ipv4);
    match v4 {
        None => a.ret(0),
        Some(addr) => {
            a.load_net(libc::BPF_W, 16); // daddr
            a.jump(libc::BPF_JEQ, u32::from(addr), 1, 0);
            a.ret(0);
            if whole {
                a.ret(ACCEPT);
            } else {
                // Later fragments carry no ports.
                a.load_net(libc::BPF_H, 6);
                a.jump(libc::BPF_JSET, 0x1fff, 0, 1);
                a.ret(other);
                // X = the IP header's length.
                a.stmt(op(libc::BPF_LDX | libc::BPF_B, libc::BPF_MSH), net(0));
                a.load_net(libc::BPF_B, 9); // protocol
                transport_dispatch(&mut a, tcp, udp, other);
            }
        }
    }

    a.bind(ipv6);
    match v6 {
        None => a.ret(0),
        Some(addr) => {
            for (i, w) in addr.octets().chunks_exact(4).enumerate() {
                a.load_net(libc::BPF_W, 24 + 4 * i as u32); // daddr
                a.jump(
                    libc::BPF_JEQ,
                    u32::from_be_bytes([w[0], w[1], w[2], w[3]]),
                    1,
                    0,
                );
                a.ret(0);
            }
            if whole {
                a.ret(ACCEPT);
            } else {
                // Only headers without extension headers: TCP or UDP right after the fixed 40
                // bytes (LKL's own traffic never needs more).
                a.stmt(op(libc::BPF_LDX | libc::BPF_W, libc::BPF_IMM), 40);
                a.load_net(libc::BPF_B, 6); // next header
                transport_dispatch(&mut a, tcp, udp, other);
            }
        }
    }

    // A = the destination port, X = the transport header's offset.
    a.bind(tcp);
    let shared = split.map(|split| {
        let shared = a.label();
        for &port in &split.listeners {
            a.jump(libc::BPF_JEQ, u32::from(port), 0, 1);
            a.ja(shared);
        }
        (shared, split.take)
    });
    match admit {
        Admit::Ports { tcp: t, .. } if !group_only => a.ret_in(t, ACCEPT),
        _ => {}
    }
    a.ret(other);
    if let Some((shared, take)) = shared {
        a.bind(shared);
        a.ret(match take {
            Take::Nothing => 0,
            Take::All => ACCEPT,
        });
    }
    a.bind(udp);
    match admit {
        Admit::Ports { udp: u, .. } if !group_only => a.ret_in(u, ACCEPT),
        _ => {}
    }
    a.ret(other);
    a.finish()
}

/// Puts `prog` on `sock`, replacing any program there atomically.
pub(super) fn attach(sock: &sys::Fd, prog: &[sock_filter]) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: SO_ATTACH_FILTER takes a sock_fprog whose program the kernel copies.
    unsafe { sys::setsockopt(sock, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog) }
}

/// With the transport protocol in A and the transport header's offset in X: load the
/// destination port and jump to the TCP or UDP port block; anything else gets `other`.
fn transport_dispatch(a: &mut Asm, tcp: Label, udp: Label, other: u32) {
    let load_dport = |a: &mut Asm| a.stmt(op(libc::BPF_LD | libc::BPF_H, libc::BPF_IND), net(2));
    a.jump(libc::BPF_JEQ, IPPROTO_TCP, 0, 2);
    load_dport(a);
    a.ja(tcp);
    a.jump(libc::BPF_JEQ, IPPROTO_UDP, 0, 2);
    load_dport(a);
    a.ja(udp);
    a.ret(other);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`run_as`] for a received packet (PACKET_HOST).
    fn run(prog: &[sock_filter], proto: u16, packet: &[u8]) -> u32 {
        run_as(prog, proto, 0, packet)
    }

    /// Runs a classic-BPF program over `packet` with `proto` as skb->protocol and `pkt_type`
    /// as skb->pkt_type (the instructions `program` emits).
    fn run_as(prog: &[sock_filter], proto: u16, pkt_type: u32, packet: &[u8]) -> u32 {
        let (mut pc, mut a, mut x) = (0usize, 0u32, 0u32);
        // Offsets from SKF_NET_OFF are from the IP header, where `packet` starts.
        let load = |k: u32, size: usize| -> Option<u32> {
            let at = k.wrapping_sub(libc::SKF_NET_OFF as u32) as usize;
            let b = packet.get(at..at + size)?;
            Some(b.iter().fold(0u32, |acc, &v| acc << 8 | u32::from(v)))
        };
        loop {
            let ins = prog[pc];
            pc += 1;
            let (code, k) = (u32::from(ins.code), ins.k);
            let skip = |cond: bool| usize::from(if cond { ins.jt } else { ins.jf });
            match code {
                c if c == libc::BPF_LD | libc::BPF_H | libc::BPF_ABS
                    && k == (libc::SKF_AD_OFF + libc::SKF_AD_PROTOCOL) as u32 =>
                {
                    a = u32::from(proto)
                }
                c if c == libc::BPF_LD | libc::BPF_B | libc::BPF_ABS
                    && k == (libc::SKF_AD_OFF + libc::SKF_AD_PKTTYPE) as u32 =>
                {
                    a = pkt_type
                }
                c if c == libc::BPF_LD | libc::BPF_ABS | libc::BPF_W => match load(k, 4) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c == libc::BPF_LD | libc::BPF_ABS | libc::BPF_H => match load(k, 2) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c == libc::BPF_LD | libc::BPF_ABS | libc::BPF_B => match load(k, 1) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c == libc::BPF_LD | libc::BPF_IND | libc::BPF_H => {
                    match load(x.wrapping_add(k), 2) {
                        Some(v) => a = v,
                        None => return 0,
                    }
                }
                c if c == libc::BPF_LD | libc::BPF_IND | libc::BPF_B => {
                    match load(x.wrapping_add(k), 1) {
                        Some(v) => a = v,
                        None => return 0,
                    }
                }
                c if c == libc::BPF_LDX | libc::BPF_W | libc::BPF_IMM => x = k,
                c if c == libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH => match load(k, 1) {
                    Some(v) => x = 4 * (v & 0xf),
                    None => return 0,
                },
                c if c == libc::BPF_JMP | libc::BPF_JA => pc += k as usize,
                c if c == libc::BPF_JMP | libc::BPF_JEQ => pc += skip(a == k),
                c if c == libc::BPF_JMP | libc::BPF_JGE => pc += skip(a >= k),
                c if c == libc::BPF_JMP | libc::BPF_JGT => pc += skip(a > k),
                c if c == libc::BPF_JMP | libc::BPF_JSET => pc += skip(a & k != 0),
                c if c == libc::BPF_RET | libc::BPF_K => return k,
                c => panic!("unexpected instruction {c:#x}"),
            }
        }
    }

    fn v4_packet(dst: Ipv4Addr, proto: u8, dport: u16) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[9] = proto;
        p[16..20].copy_from_slice(&dst.octets());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        p
    }

    fn v6_packet(dst: Ipv6Addr, next: u8, dport: u16) -> Vec<u8> {
        let mut p = vec![0u8; 60];
        p[0] = 0x60;
        p[6] = next;
        p[24..40].copy_from_slice(&dst.octets());
        p[42..44].copy_from_slice(&dport.to_be_bytes());
        p
    }

    const V4: &str = "10.1.2.3";
    const V6: &str = "fd00::3";

    fn addrs() -> (Ipv4Addr, Ipv6Addr) {
        (V4.parse().unwrap(), V6.parse().unwrap())
    }

    #[test]
    fn admit_all_accepts_only_lkls_addresses() {
        let (v4, v6) = addrs();
        let prog = program(Some(v4), Some(v6), &Admit::All, None, false);
        assert_ne!(run(&prog, ETH_P_IP, &v4_packet(v4, 1, 0)), 0);
        assert_eq!(
            run(
                &prog,
                ETH_P_IP,
                &v4_packet("10.1.2.2".parse().unwrap(), 6, 80)
            ),
            0
        );
        assert_ne!(run(&prog, ETH_P_IPV6, &v6_packet(v6, 58, 0)), 0);
        for other in ["fd00::2", "fd01::3", "ff02::1", "::"] {
            let p = v6_packet(other.parse().unwrap(), 6, 80);
            assert_eq!(run(&prog, ETH_P_IPV6, &p), 0, "{other}");
        }
        assert_eq!(run(&prog, 0x0806, &v4_packet(v4, 6, 80)), 0, "ARP");
        assert_eq!(
            run(&prog, ETH_P_IP, &v4_packet(v4, 6, 80)[..10]),
            0,
            "short"
        );
    }

    #[test]
    fn a_missing_address_refuses_that_family() {
        let (v4, v6) = addrs();
        let prog = program(Some(v4), None, &Admit::All, None, false);
        assert_ne!(run(&prog, ETH_P_IP, &v4_packet(v4, 6, 80)), 0);
        assert_eq!(run(&prog, ETH_P_IPV6, &v6_packet(v6, 6, 80)), 0);
        let prog = program(None, Some(v6), &Admit::All, None, false);
        assert_eq!(run(&prog, ETH_P_IP, &v4_packet(v4, 6, 80)), 0);
        assert_ne!(run(&prog, ETH_P_IPV6, &v6_packet(v6, 6, 80)), 0);
    }

    /// `packet` (from [`v4_packet`] or [`v6_packet`], TCP) with TCP flags `flags`.
    fn with_flags(mut packet: Vec<u8>, flags: u8) -> Vec<u8> {
        let tcp = if packet[0] >> 4 == 4 { 20 } else { 40 };
        packet[tcp + 13] = flags;
        packet
    }

    #[test]
    fn a_split_gives_every_segment_of_shared_ports_to_the_group_socket_alone() {
        let (v4, v6) = addrs();
        let (syn, syn_ack, ack, fin_ack) = (0x02, 0x12, 0x10, 0x11);
        let split = |take| Split {
            listeners: vec![80, 8443],
            take,
            serving: vec![80],
        };
        let shared = Admit::Ports {
            tcp: vec![(80, 80), (8443, 8443), (9000, 9000)],
            udp: vec![(53, 53)],
        };
        // (take, admit, proto, port, flags, admitted)
        let cases = [
            (Take::Nothing, Admit::All, 6, 80, syn, false),
            (Take::Nothing, Admit::All, 6, 8443, ack, false),
            (Take::Nothing, Admit::All, 6, 80, fin_ack, false),
            (Take::Nothing, Admit::All, 6, 81, syn, true),
            (Take::Nothing, Admit::All, 6, 81, ack, true),
            (Take::Nothing, Admit::All, 17, 80, 0, true),
            (Take::Nothing, Admit::All, 1, 0, 0, true),
            (Take::All, Admit::All, 6, 80, syn, true),
            (Take::All, Admit::All, 6, 8443, syn, true),
            (Take::All, Admit::All, 6, 80, syn_ack, true),
            (Take::All, Admit::All, 6, 80, ack, true),
            (Take::All, Admit::All, 6, 8443, fin_ack, true),
            (Take::All, Admit::All, 6, 81, syn, false),
            (Take::All, Admit::All, 6, 81, ack, false),
            (Take::All, Admit::All, 17, 80, 0, false),
            (Take::All, Admit::All, 1, 0, 0, false),
            (Take::Nothing, shared.clone(), 6, 80, ack, false),
            (Take::Nothing, shared.clone(), 6, 9000, syn, true),
            (Take::Nothing, shared.clone(), 6, 9001, syn, false),
            (Take::Nothing, shared.clone(), 17, 53, 0, true),
            (Take::Nothing, shared.clone(), 1, 0, 0, false),
            (Take::All, shared.clone(), 6, 80, syn, true),
            (Take::All, shared.clone(), 6, 80, ack, true),
            (Take::All, shared.clone(), 6, 9000, syn, false),
            (Take::All, shared.clone(), 17, 53, 0, false),
        ];
        for (take, admit, proto, port, flags, want) in cases {
            let prog = program(Some(v4), Some(v6), &admit, Some(&split(take)), false);
            let mut p4 = v4_packet(v4, proto, port);
            let mut p6 = v6_packet(v6, proto, port);
            if proto == 6 {
                p4 = with_flags(p4, flags);
                p6 = with_flags(p6, flags);
            }
            let what = format!("{take:?} {admit:?} proto {proto} port {port} flags {flags:#x}");
            assert_eq!(run(&prog, ETH_P_IP, &p4) != 0, want, "v4 {what}");
            assert_eq!(run(&prog, ETH_P_IPV6, &p6) != 0, want, "v6 {what}");
        }
        let prog = program(
            Some(v4),
            Some(v6),
            &Admit::All,
            Some(&split(Take::All)),
            false,
        );
        let other = with_flags(v4_packet("10.1.2.2".parse().unwrap(), 6, 80), ack);
        assert_eq!(run(&prog, ETH_P_IP, &other), 0, "other addresses stay out");
    }

    #[test]
    fn shared_address_admits_only_owned_ports() {
        let (v4, v6) = addrs();
        let admit = Admit::Ports {
            tcp: vec![(80, 80), (8000, 8100)],
            udp: vec![(61000, 65535)],
        };
        let prog = program(Some(v4), Some(v6), &admit, None, false);
        for (proto, port, want) in [
            (6, 80, true),
            (6, 81, false),
            (6, 8000, true),
            (6, 8100, true),
            (6, 8101, false),
            (6, 61000, false),
            (17, 80, false),
            (17, 61000, true),
            (17, 65535, true),
            (1, 80, false), // ICMP stays with the host
        ] {
            let got = run(&prog, ETH_P_IP, &v4_packet(v4, proto, port)) != 0;
            assert_eq!(got, want, "v4 proto {proto} port {port}");
            let got = run(&prog, ETH_P_IPV6, &v6_packet(v6, proto, port)) != 0;
            let want6 = want && proto != 1;
            assert_eq!(got, want6, "v6 proto {proto} port {port}");
        }
        // Other addresses, later fragments and IPv6 extension headers stay out.
        assert_eq!(
            run(
                &prog,
                ETH_P_IP,
                &v4_packet("10.1.2.2".parse().unwrap(), 6, 80)
            ),
            0
        );
        let mut frag = v4_packet(v4, 6, 80);
        frag[7] = 1;
        assert_eq!(run(&prog, ETH_P_IP, &frag), 0);
        assert_eq!(
            run(&prog, ETH_P_IPV6, &v6_packet(v6, 0, 80)),
            0,
            "hop-by-hop"
        );
    }

    #[test]
    fn ip_options_move_the_port() {
        let (v4, _) = addrs();
        let prog = program(
            Some(v4),
            None,
            &Admit::Ports {
                tcp: vec![(443, 443)],
                udp: vec![],
            },
            None,
            false,
        );
        let mut p = vec![0u8; 48];
        p[0] = 0x47; // 28-byte header
        p[9] = 6;
        p[16..20].copy_from_slice(&v4.octets());
        p[30..32].copy_from_slice(&443u16.to_be_bytes());
        assert_ne!(run(&prog, ETH_P_IP, &p), 0);
        p[30..32].copy_from_slice(&444u16.to_be_bytes());
        assert_eq!(run(&prog, ETH_P_IP, &p), 0);
    }

    #[test]
    fn many_ranges_still_assemble() {
        let (v4, v6) = addrs();
        let tcp: Vec<(u16, u16)> = (1..=200).map(|i| (i * 100, i * 100 + 1)).collect();
        let prog = program(
            Some(v4),
            Some(v6),
            &Admit::Ports { tcp, udp: vec![] },
            None,
            false,
        );
        assert_ne!(run(&prog, ETH_P_IPV6, &v6_packet(v6, 6, 20001)), 0);
        assert_eq!(run(&prog, ETH_P_IPV6, &v6_packet(v6, 6, 20002)), 0);
    }

    #[test]
    fn drop_outgoing_refuses_what_the_interface_sends() {
        let (v4, v6) = addrs();
        let shared = Admit::Ports {
            tcp: vec![(80, 80)],
            udp: vec![],
        };
        for admit in [Admit::All, shared] {
            let keep = program(Some(v4), Some(v6), &admit, None, false);
            let drop = program(Some(v4), Some(v6), &admit, None, true);
            for (proto, p) in [
                (ETH_P_IP, v4_packet(v4, 6, 80)),
                (ETH_P_IPV6, v6_packet(v6, 6, 80)),
            ] {
                assert_ne!(run(&drop, proto, &p), 0, "received, {admit:?}");
                assert_ne!(run_as(&keep, proto, PACKET_OUTGOING, &p), 0);
                assert_eq!(run_as(&drop, proto, PACKET_OUTGOING, &p), 0, "{admit:?}");
            }
        }
    }
}
