//! Shared by the `net_*` tests: LKL attached to a rig topology through the packet backend.
//! Each test file is one process with one kernel and one device.
#![allow(dead_code)] // each test file uses a subset

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use lkl::consts::{AF_INET, AF_INET6, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_STREAM};
use lkl::netdev::{NetBackend, NetDev};
use lkl::packet::{PacketBackend, PacketConfig};
use lkl::sys::{SOL_SOCKET, SO_RCVTIMEO};
use lkl::{Fd, InterfaceConfig, Ipv4Net, Ipv6Net, Kernel};
use lkl_rig::{Addrs, Topology, VethTopology};

/// The rig's traffic helpers (verified TCP streams, ping, packet counting), shared rather
/// than copied.
#[path = "../../../rig/tests/common/mod.rs"]
pub mod rig;

/// LKL's device on the topology's container interface.
pub struct Attached {
    pub backend: Arc<PacketBackend>,
    pub dev: NetDev,
    pub addrs: Addrs,
}

/// Opens the packet backend on the container's interface (inside the container namespace),
/// registers it with the kernel, and gives LKL the rig's LKL addresses (/32 and /128,
/// default routes through the device, no gateway). `next_hop` is looked up in the
/// container's ARP table on an Ethernet interface.
pub fn attach(k: &Kernel, topo: &dyn Topology, next_hop: Option<Ipv4Addr>) -> Attached {
    attach_with(k, topo, next_hop, Options::default())
}

/// How the backend is opened; the defaults are the library's.
#[derive(Clone, Copy)]
pub struct Options {
    /// Receive through the ring shared with the host (the host must give one: checked),
    /// else with recvmsg.
    pub rx_ring: bool,
    /// Interrupt moderation (the library's default: 30 µs).
    pub rx_coalesce: Duration,
    /// Offloads to the host (PACKET_VNET_HDR; the rig's interfaces take them, except
    /// venet0, which is link/void and gets a SOCK_DGRAM socket without them: checked).
    pub offload: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rx_ring: true,
            rx_coalesce: Duration::from_micros(30),
            offload: true,
        }
    }
}

/// [`attach`] with the backend opened as `opts` say.
pub fn attach_with(
    k: &Kernel,
    topo: &dyn Topology,
    next_hop: Option<Ipv4Addr>,
    opts: Options,
) -> Attached {
    let addrs = topo.addrs().clone();
    let cfg = PacketConfig {
        ifname: topo.container_if().to_string(),
        ipv4: Some(addrs.lkl_v4),
        ipv6: Some(addrs.lkl_v6),
        next_hop,
        admit: Default::default(),
        split: None,
        offload: opts.offload,
        rx_ring: opts.rx_ring,
        rx_coalesce: opts.rx_coalesce,
        rx_ring_bytes: lkl::packet::MAX_RX_RING_BYTES,
    };
    let backend = topo
        .container_ns()
        .in_thread(|| PacketBackend::open(&cfg))
        .expect("enter the container namespace")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(backend.rx_ring(), opts.rx_ring, "receiving through a ring");
    let link = topo
        .container_ns()
        .run("ip", &["-o", "link", "show", "dev", topo.container_if()])
        .expect("ip link show");
    let void = link.contains("link/void");
    let want_type = if void {
        libc::SOCK_DGRAM
    } else {
        libc::SOCK_RAW
    };
    assert_eq!(
        backend.socket_type().unwrap(),
        want_type,
        "socket type on {link}"
    );
    assert_eq!(backend.tso(), opts.offload && !void, "offloads to the host");
    let dev = k
        .netdev_add(None, backend.mtu(), Arc::clone(&backend))
        .expect("lkl_netdev_add");
    backend.start_rx(dev.irq).expect("rx thread");
    k.configure_interface(
        &dev.name,
        &InterfaceConfig {
            ipv4: Some(Ipv4Net {
                addr: addrs.lkl_v4,
                prefix_len: 32,
            }),
            ipv6: Some(Ipv6Net {
                addr: addrs.lkl_v6,
                prefix_len: 128,
            }),
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("configure {}: {e}", dev.name));
    Attached {
        backend,
        dev,
        addrs,
    }
}

/// LKL on the veth topology. The container's host stack first resolves the peer, so the
/// container's ARP table gives the backend the next hop's MAC before LKL has received
/// anything. The peer's TCP hands veth super-packets of up to 64 KiB (TSO), which reach the
/// container's packet socket unsegmented: the backend passes them to LKL whole.
pub fn attach_veth(k: &Kernel, topo: &VethTopology) -> Attached {
    attach_veth_with(k, topo, Options::default())
}

/// [`attach_veth`] with the backend opened as `opts` say.
pub fn attach_veth_with(k: &Kernel, topo: &VethTopology, opts: Options) -> Attached {
    let peer_v4 = topo.addrs().peer_v4;
    rig::ping(topo.container_ns(), peer_v4.into(), 1).unwrap();
    let lkl = attach_with(k, topo, Some(peer_v4), opts);
    assert_eq!(lkl.backend.next_hop_mac(), Some(topo.peer_mac()));
    lkl
}

pub fn family(addr: &SocketAddr) -> u32 {
    if addr.is_ipv4() {
        AF_INET
    } else {
        AF_INET6
    }
}

/// A listening LKL TCP socket on `addr`.
pub fn lkl_listener(k: &Kernel, addr: SocketAddr) -> (Fd, SocketAddr) {
    let fd = k
        .socket(family(&addr), SOCK_STREAM | SOCK_CLOEXEC, 0)
        .unwrap();
    k.bind(fd, &addr).unwrap();
    k.listen(fd, 16).unwrap();
    (fd, k.getsockname(fd).unwrap())
}

pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Longest wait for progress on a host-side socket.
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Bytes per write/read and per pattern check.
pub const CHUNK: usize = 64 << 10;
pub const MIB: u64 = 1 << 20;

fn check_chunk(got: &[u8], pattern: &mut rig::Pattern, expected: &mut [u8], offset: u64) {
    pattern.fill(expected);
    if let Some(i) = got.iter().zip(expected.iter()).position(|(g, e)| g != e) {
        panic!("byte {} differs", offset + i as u64);
    }
}

/// An LKL server on `ip` sends `bytes` of the rig's pattern to a host-kernel client in the
/// peer namespace, which checks every byte. Returns the seconds it took.
pub fn lkl_server_sends(k: &Kernel, topo: &dyn Topology, ip: std::net::IpAddr, bytes: u64) -> f64 {
    use std::io::Read;
    let (lfd, addr) = lkl_listener(k, SocketAddr::new(ip, 0));
    let start = std::time::Instant::now();
    let client = topo
        .peer_ns()
        .spawn_thread(move || {
            let mut s = std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
                .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
            s.set_read_timeout(Some(IDLE_TIMEOUT)).unwrap();
            let (mut got, mut expected) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
            let mut pattern = rig::Pattern::new(bytes);
            let mut total = 0u64;
            while total < bytes {
                s.read_exact(&mut got)
                    .unwrap_or_else(|e| panic!("read at {total}: {e}"));
                check_chunk(&got, &mut pattern, &mut expected, total);
                total += CHUNK as u64;
            }
            assert_eq!(s.read(&mut got).unwrap(), 0, "data after the stream's end");
            total
        })
        .unwrap();
    let (fd, _) = k.accept4(lfd, SOCK_CLOEXEC).unwrap();
    let mut buf = vec![0u8; CHUNK];
    let mut pattern = rig::Pattern::new(bytes);
    for _ in 0..bytes / CHUNK as u64 {
        pattern.fill(&mut buf);
        let mut data = &buf[..];
        while !data.is_empty() {
            let n = k.write(fd, data).unwrap();
            data = &data[n..];
        }
    }
    k.close(fd).unwrap();
    k.close(lfd).unwrap();
    assert_eq!(client.join().expect("peer client"), bytes);
    start.elapsed().as_secs_f64()
}

/// An LKL client connects to a host-kernel server in the peer namespace on `peer_ip`, which
/// sends `bytes` of the pattern; LKL checks every byte. Returns the seconds it took.
pub fn lkl_client_receives(
    k: &Kernel,
    topo: &dyn Topology,
    peer_ip: std::net::IpAddr,
    bytes: u64,
) -> f64 {
    use std::io::Write;
    let listener = topo
        .peer_ns()
        .in_thread(|| std::net::TcpListener::bind((peer_ip, 0)))
        .unwrap()
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let start = std::time::Instant::now();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_write_timeout(Some(IDLE_TIMEOUT)).unwrap();
        let mut buf = vec![0u8; CHUNK];
        let mut pattern = rig::Pattern::new(bytes);
        for _ in 0..bytes / CHUNK as u64 {
            pattern.fill(&mut buf);
            s.write_all(&buf).unwrap();
        }
    });
    let fd = k
        .socket(family(&addr), SOCK_STREAM | SOCK_CLOEXEC, 0)
        .unwrap();
    k.connect(fd, &addr)
        .unwrap_or_else(|e| panic!("LKL connect {addr}: {e}"));
    let (mut got, mut expected) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let mut pattern = rig::Pattern::new(bytes);
    let mut total = 0u64;
    loop {
        let mut filled = 0;
        while filled < CHUNK {
            match k.read(fd, &mut got[filled..]).unwrap() {
                0 => break,
                n => filled += n,
            }
        }
        if filled == 0 {
            break;
        }
        assert_eq!(filled, CHUNK, "stream ended inside a chunk at {total}");
        check_chunk(&got, &mut pattern, &mut expected, total);
        total += CHUNK as u64;
    }
    k.close(fd).unwrap();
    server.join().expect("peer server");
    assert_eq!(total, bytes);
    start.elapsed().as_secs_f64()
}

/// Datagrams per UDP echo run.
pub const UDP_ECHOES: usize = 300;
/// Longest wait for one echoed datagram.
const UDP_TIMEOUT: Duration = Duration::from_secs(5);

/// The `i`th datagram of an echo run: sizes from 1 byte to the largest that fits `mtu`
/// unfragmented, contents differing per datagram.
fn udp_payload(i: usize, ip: IpAddr, mtu: u32) -> Vec<u8> {
    let max = mtu as usize - if ip.is_ipv4() { 28 } else { 48 };
    let len = [1, 7, 64, 512, 1000, max][i % 6];
    (0..len).map(|j| (j * 7 + i * 13 + j / 251) as u8).collect()
}

fn unspecified(ip: IpAddr) -> IpAddr {
    if ip.is_ipv4() {
        IpAddr::from([0u8; 4])
    } else {
        IpAddr::from([0u16; 8])
    }
}

/// A UDP socket inside LKL bound to `ip` (or unbound), whose blocking receives give up after
/// [`UDP_TIMEOUT`].
fn lkl_udp_socket(k: &Kernel, ip: IpAddr, bind: bool) -> Fd {
    let fd = k
        .socket(
            if ip.is_ipv4() { AF_INET } else { AF_INET6 },
            SOCK_DGRAM | SOCK_CLOEXEC,
            0,
        )
        .unwrap();
    if bind {
        k.bind(fd, &SocketAddr::new(ip, 0)).unwrap();
    }
    // struct __kernel_old_timeval { long tv_sec; long tv_usec; }
    let mut timeval = [0u8; 16];
    timeval[..8].copy_from_slice(&(UDP_TIMEOUT.as_secs() as i64).to_ne_bytes());
    k.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeval).unwrap();
    fd
}

/// A UDP echo server inside LKL on `ip`; a host-kernel client in the peer namespace sends
/// [`UDP_ECHOES`] datagrams one at a time and checks each reply's source and payload.
/// Returns the bytes verified.
pub fn udp_echo_lkl_server(k: &Kernel, topo: &dyn Topology, ip: IpAddr, mtu: u32) -> usize {
    let fd = lkl_udp_socket(k, ip, true);
    let server = k.getsockname(fd).unwrap();
    let client = topo
        .peer_ns()
        .in_thread(|| UdpSocket::bind((unspecified(ip), 0)))
        .unwrap()
        .unwrap();
    client.set_read_timeout(Some(UDP_TIMEOUT)).unwrap();
    let verified = std::thread::scope(|s| {
        s.spawn(|| {
            let mut buf = vec![0u8; 2048];
            for i in 0..UDP_ECHOES {
                let (n, from) = k
                    .recvfrom(fd, &mut buf, 0)
                    .unwrap_or_else(|e| panic!("LKL recvfrom, datagram {i}: {e}"));
                k.sendto(fd, &buf[..n], 0, from.as_ref()).unwrap();
            }
        });
        let mut buf = vec![0u8; 2048];
        let mut verified = 0;
        for i in 0..UDP_ECHOES {
            let payload = udp_payload(i, ip, mtu);
            client.send_to(&payload, server).unwrap();
            let (n, from) = client
                .recv_from(&mut buf)
                .unwrap_or_else(|e| panic!("echo of datagram {i} from {server}: {e}"));
            assert_eq!(from, server);
            assert!(buf[..n] == payload[..], "datagram {i} came back altered");
            verified += n;
        }
        verified
    });
    k.close(fd).unwrap();
    verified
}

/// A host-kernel UDP echo server in the peer namespace on `peer_ip`; an LKL client sends
/// [`UDP_ECHOES`] datagrams one at a time and checks each reply's source and payload.
/// Returns the bytes verified.
pub fn udp_echo_peer_server(k: &Kernel, topo: &dyn Topology, peer_ip: IpAddr, mtu: u32) -> usize {
    let server = topo
        .peer_ns()
        .in_thread(|| UdpSocket::bind((peer_ip, 0)))
        .unwrap()
        .unwrap();
    server.set_read_timeout(Some(UDP_TIMEOUT)).unwrap();
    let server_addr = server.local_addr().unwrap();
    let fd = lkl_udp_socket(k, peer_ip, false);
    let verified = std::thread::scope(|s| {
        s.spawn(|| {
            let mut buf = vec![0u8; 2048];
            for i in 0..UDP_ECHOES {
                let (n, from) = server
                    .recv_from(&mut buf)
                    .unwrap_or_else(|e| panic!("peer recv_from, datagram {i}: {e}"));
                server.send_to(&buf[..n], from).unwrap();
            }
        });
        let mut buf = vec![0u8; 2048];
        let mut verified = 0;
        for i in 0..UDP_ECHOES {
            let payload = udp_payload(i, peer_ip, mtu);
            k.sendto(fd, &payload, 0, Some(&server_addr)).unwrap();
            let (n, from) = k
                .recvfrom(fd, &mut buf, 0)
                .unwrap_or_else(|e| panic!("echo of datagram {i} from {server_addr}: {e}"));
            assert_eq!(from, Some(server_addr));
            assert!(buf[..n] == payload[..], "datagram {i} came back altered");
            verified += n;
        }
        verified
    });
    k.close(fd).unwrap();
    verified
}

/// The peer pings LKL's IPv4 and IPv6 addresses, which the container's host stack does not
/// hold, so every reply is LKL's; the backend carried them.
pub fn peer_pings_lkl(topo: &dyn Topology, lkl: &Attached) {
    let a = &lkl.addrs;
    let host_addrs = topo.container_ns().run("ip", &["addr"]).unwrap();
    assert!(!host_addrs.contains(&a.lkl_v4.to_string()), "{host_addrs}");
    assert!(!host_addrs.contains(&a.lkl_v6.to_string()), "{host_addrs}");

    for ip in [IpAddr::from(a.lkl_v4), IpAddr::from(a.lkl_v6)] {
        let out = rig::ping(topo.peer_ns(), ip, 3).unwrap();
        eprintln!("ping {ip}: avg {} ms", rig::ping_avg_ms(&out));
    }
    // The peer can see the last reply before the backend thread that sent it has counted it.
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    let mut stats = lkl.backend.stats();
    while (stats.rx_packets < 6 || stats.tx_packets < 6) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        stats = lkl.backend.stats();
    }
    eprintln!("{stats:?}");
    assert!(stats.rx_packets >= 6 && stats.tx_packets >= 6, "{stats:?}");
}

/// 64 MiB over TCP in both directions (LKL server sending, LKL client receiving), IPv4 and
/// IPv6, every byte checked; prints each transfer's rate and the backend's counters.
pub fn tcp_64mib_both_ways(k: &Kernel, topo: &dyn Topology, lkl: &Attached) {
    let a = &lkl.addrs;
    let bytes = 64 * MIB;
    for (what, secs) in [
        (
            "LKL server v4 -> peer",
            lkl_server_sends(k, topo, a.lkl_v4.into(), bytes),
        ),
        (
            "LKL server v6 -> peer",
            lkl_server_sends(k, topo, a.lkl_v6.into(), bytes),
        ),
        (
            "peer server v4 -> LKL client",
            lkl_client_receives(k, topo, a.peer_v4.into(), bytes),
        ),
        (
            "peer server v6 -> LKL client",
            lkl_client_receives(k, topo, a.peer_v6.into(), bytes),
        ),
    ] {
        eprintln!(
            "{what}: {bytes} bytes verified, {:.0} Mbit/s",
            bytes as f64 * 8.0 / secs / 1e6
        );
    }
    eprintln!("{:?}", lkl.backend.stats());
}

/// UDP echo in both directions (LKL server with a peer client, peer server with an LKL
/// client), IPv4 and IPv6, every payload checked.
pub fn udp_echo_both_ways(k: &Kernel, topo: &dyn Topology, lkl: &Attached) {
    let a = &lkl.addrs;
    let mtu = lkl.backend.mtu();
    for (what, bytes) in [
        (
            "LKL server v4 <- peer client",
            udp_echo_lkl_server(k, topo, a.lkl_v4.into(), mtu),
        ),
        (
            "LKL server v6 <- peer client",
            udp_echo_lkl_server(k, topo, a.lkl_v6.into(), mtu),
        ),
        (
            "peer server v4 <- LKL client",
            udp_echo_peer_server(k, topo, a.peer_v4.into(), mtu),
        ),
        (
            "peer server v6 <- LKL client",
            udp_echo_peer_server(k, topo, a.peer_v6.into(), mtu),
        ),
    ] {
        eprintln!("{what}: {UDP_ECHOES} datagrams, {bytes} bytes echoed and verified");
    }
    eprintln!("{:?}", lkl.backend.stats());
}
