//! A packet backend that cannot open says so in one line naming the input at fault (the
//! interface, or a descriptor handed to it), its value and what was expected: for a missing
//! interface, an interface that is down, a process without CAP_NET_RAW, a descriptor that is
//! no packet socket, a raw socket on a link type the backend does not know and one on venet0
//! (link/void), where a raw socket cannot send. The preload library puts its variable's name
//! in place of the input's. No kernel is needed: the backend fails before it has one.

use std::os::fd::AsRawFd;

use lkl::packet::{claim_inherited, OpenError, OpenInput, PacketBackend, PacketConfig};
use lkl_rig::{Topology, VenetTopology};

fn config(ifname: &str) -> PacketConfig {
    PacketConfig {
        ifname: ifname.to_string(),
        ipv4: Some("10.0.0.3".parse().unwrap()),
        ipv6: None,
        next_hop: None,
        admit: Default::default(),
        split: None,
        offload: true,
        rx_ring: true,
        rx_coalesce: std::time::Duration::ZERO,
        rx_ring_bytes: lkl::packet::MAX_RX_RING_BYTES,
    }
}

fn open_error(cfg: &PacketConfig) -> OpenError {
    match PacketBackend::open(cfg) {
        Ok(_) => panic!("opening {} succeeded", cfg.ifname),
        Err(e) => e,
    }
}

fn assert_one_line_naming(e: &OpenError, input: OpenInput<'_>, expected: &str) {
    assert_eq!(e.input(), input, "{e:?}");
    let text = e.to_string();
    assert!(!text.contains('\n'), "more than one line: {text:?}");
    assert!(
        text.starts_with(&format!("{input}: ")),
        "does not name the input and value: {text:?}"
    );
    assert!(
        text.contains(expected),
        "does not say {expected:?}: {text:?}"
    );
}

/// Drops CAP_NET_RAW from the calling thread's effective set (capabilities are per thread).
fn drop_cap_net_raw() {
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    const CAP_NET_RAW: u32 = 13;
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: header and data are the v3 layouts capget expects, alive during the call.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    assert_eq!(r, 0, "capget: {}", std::io::Error::last_os_error());
    data[0].effective &= !(1 << CAP_NET_RAW);
    // SAFETY: as above; capset only reads them and changes this thread's capabilities.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    assert_eq!(r, 0, "capset: {}", std::io::Error::last_os_error());
}

#[test]
fn a_missing_interface_is_named() {
    let e = open_error(&config("nosuchif9"));
    assert!(matches!(e, OpenError::NoSuchInterface { .. }), "{e:?}");
    assert_one_line_naming(
        &e,
        OpenInput::Ifname("nosuchif9"),
        "existing host interface",
    );
}

#[test]
fn an_interface_that_is_down_is_named() {
    let topo = VenetTopology::builder().build().unwrap();
    let ifname = topo.container_if().to_string();
    topo.container_ns()
        .run("ip", &["link", "set", "dev", &ifname, "down"])
        .unwrap();
    let cfg = config(&ifname);
    let e = topo
        .container_ns()
        .in_thread(move || open_error(&cfg))
        .unwrap();
    assert!(matches!(e, OpenError::InterfaceDown { .. }), "{e:?}");
    assert_one_line_naming(&e, OpenInput::Ifname(&ifname), "up");
}

#[test]
fn missing_cap_net_raw_is_named() {
    let topo = VenetTopology::builder().build().unwrap();
    let ifname = topo.container_if().to_string();
    let cfg = config(&ifname);
    let e = topo
        .container_ns()
        .in_thread(move || {
            drop_cap_net_raw();
            open_error(&cfg)
        })
        .unwrap();
    assert!(matches!(e, OpenError::NotPermitted { .. }), "{e:?}");
    assert_one_line_naming(&e, OpenInput::Ifname(&ifname), "CAP_NET_RAW");
}

#[test]
fn a_descriptor_that_is_no_packet_socket_is_named_and_left_open() {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let fd = udp.as_raw_fd();
    let e = claim_inherited(fd).expect_err("a UDP socket was taken for a packet socket");
    assert!(matches!(e, OpenError::NotAPacketSocket { .. }), "{e:?}");
    assert_one_line_naming(&e, OpenInput::Fd(fd), "AF_PACKET");
    // The number stays the program's: still open.
    udp.local_addr().expect("the refused descriptor was closed");
}

/// What adopting a raw packet socket (as a launcher may hand one down) on `ifname` in the
/// topology's container gives: the backend must refuse it.
fn adopt_raw_socket(topo: &VenetTopology, ifname: &str) -> OpenError {
    topo.container_ns()
        .in_thread(|| {
            // SAFETY: socket takes integers only.
            let fd =
                unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            match PacketBackend::adopt(fd, &config(ifname)) {
                Ok(_) => panic!("a raw socket on {ifname} was set up"),
                Err(e) => e,
            }
        })
        .unwrap()
}

#[test]
fn a_raw_socket_on_an_unknown_link_type_is_named() {
    let topo = VenetTopology::builder().build().unwrap();
    // Up, so that the backend gets as far as the interface's link type.
    topo.container_ns()
        .run("ip", &["link", "set", "dev", "lo", "up"])
        .unwrap();
    // Loopback's link-layer header (ARPHRD_LOOPBACK) is one the backend cannot build.
    let e = adopt_raw_socket(&topo, "lo");
    assert!(
        matches!(
            e,
            OpenError::UnknownLinkType {
                hw_type: libc::ARPHRD_LOOPBACK,
                ..
            }
        ),
        "{e:?}"
    );
    assert_one_line_naming(&e, OpenInput::Ifname("lo"), "link-layer header");
    assert!(e.to_string().contains("ARPHRD 772"), "{e}");
}

#[test]
fn a_raw_socket_on_venet0_is_refused_as_unable_to_send() {
    let topo = VenetTopology::builder().build().unwrap();
    // On OpenVZ's venet0 the host would drop everything a raw socket sends.
    let e = adopt_raw_socket(&topo, "venet0");
    assert!(
        matches!(
            e,
            OpenError::UnknownLinkType {
                hw_type: libc::ARPHRD_VOID,
                ..
            }
        ),
        "{e:?}"
    );
    assert_one_line_naming(
        &e,
        OpenInput::Ifname("venet0"),
        "expected a SOCK_DGRAM socket",
    );
}
