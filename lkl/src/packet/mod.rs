//! The packet backend: LKL's device on top of an `AF_PACKET, SOCK_DGRAM` socket bound to a
//! host interface — the one socket type OpenVZ's `venet0` accepts.
//!
//! * Packets are bare IP both ways (LKL's device is L3, and SOCK_DGRAM strips and adds the
//!   host's link-layer header), so no synthetic Ethernet header is added or removed.
//! * tx (`tx.rs`): `sendmmsg`, a batch at a time, with a `sockaddr_ll` naming the protocol
//!   (from the IP version nibble); on an Ethernet host interface also the next hop's MAC,
//!   learned from received frames or from the host's ARP table at open.
//! * rx: a TPACKET_V2 ring shared with the host kernel (`ring.rs`), read without a system
//!   call per packet; where the host refuses a ring, and for packets too big for its frames,
//!   `recvmsg(MSG_DONTWAIT|MSG_TRUNC)`. The ring's frame status or PACKET_AUXDATA tells
//!   whether the host verified the checksum.
//! * A classic-BPF filter (`filter.rs`) lets only packets for LKL's addresses — on an address
//!   shared with the host, only for the ports LKL owns — reach the socket, and
//!   PACKET_IGNORE_OUTGOING keeps our own tx out of it.
//! * An rx thread waits for the socket to become readable while the device is armed, then
//!   raises the device's irq.

mod filter;
mod ring;
mod sys;
mod tx;

pub use filter::Admit;

use std::ffi::{c_int, CString};
use std::fmt;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use crate::netdev::{Delivery, Irq, NetBackend, TxBatch, VNET_HDR_F_DATA_VALID, VNET_HDR_LEN};
use crate::Errno;
use ring::{RxRing, TP_STATUS_COPY};
use tx::TxScratch;

// linux/if_packet.h, linux/if_ether.h, linux/if_arp.h, asm-generic/socket.h
const SOL_PACKET: c_int = 263;
const PACKET_AUXDATA: c_int = 8;
const PACKET_IGNORE_OUTGOING: c_int = 23;
const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;
const TP_STATUS_CSUM_VALID: u32 = 1 << 7;
const ETH_P_ALL: u16 = 0x0003;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ARPHRD_ETHER: u16 = 1;
/// Interfaces without a link-layer header (tun, OpenVZ's venet0): a SOCK_RAW socket on them
/// sees bare IP packets too. Only SOCK_RAW takes PACKET_VNET_HDR; on Ethernet it also sees
/// (and must build) the 14-byte header.
const ARPHRD_NONE: u16 = 0xfffe;
const ARPHRD_VOID: u16 = 0xffff;
const PACKET_VNET_HDR: c_int = 15;
const ETH_HLEN: usize = 14;
/// The packet socket's receive buffer.
const RCVBUF_BYTES: c_int = 4 << 20;
/// How often, and after how long a wait each time, a send the host refused for a full queue
/// is tried again.
const TX_RETRIES: u32 = 3;
const TX_RETRY_WAIT: std::time::Duration = std::time::Duration::from_micros(300);
const PACKET_OUTGOING: u8 = 4;
// virtio_net_hdr flags and gso types (linux/virtio_net.h)
const VNET_HDR_F_NEEDS_CSUM: u8 = 1;
const VNET_HDR_GSO_NONE: u8 = 0;

/// `struct tpacket_auxdata`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct TpacketAuxdata {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
}

/// What the backend needs to know to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketConfig {
    /// The host interface (`LKL_HIJACK_NET_IFPARAMS`).
    pub ifname: String,
    /// LKL's addresses: the only destinations the socket filter lets through.
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    /// On an Ethernet interface: the next hop whose MAC the host's ARP table gives at open,
    /// used until a received frame names one.
    pub next_hop: Option<Ipv4Addr>,
    /// Which packets to those addresses are LKL's (see [`PacketBackend::admit`]).
    pub admit: Admit,
    /// Hand TCP GSO packets and partial checksums to the host (PACKET_VNET_HDR) where the
    /// interface allows it (no link-layer header): one send per 64 KiB instead of per MTU.
    pub offload: bool,
    /// Receive through a ring shared with the host kernel where it gives one, else with one
    /// recvmsg per packet.
    pub rx_ring: bool,
}

/// Why the backend could not open; displayed as one line naming the variable.
#[derive(Debug)]
pub enum OpenError {
    NoSuchInterface {
        ifname: String,
    },
    InterfaceDown {
        ifname: String,
    },
    NotPermitted {
        ifname: String,
    },
    Host {
        ifname: String,
        step: &'static str,
        error: io::Error,
    },
    /// An inherited descriptor (`LKL_HIJACK_NET_FD`) that is not a packet socket.
    NotAPacketSocket {
        fd: c_int,
    },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const VAR: &str = "LKL_HIJACK_NET_IFPARAMS";
        match self {
            OpenError::NoSuchInterface { ifname } => {
                write!(
                    f,
                    "{VAR}={ifname}: expected the name of an existing host interface"
                )
            }
            OpenError::InterfaceDown { ifname } => {
                write!(
                    f,
                    "{VAR}={ifname}: expected an interface that is up (it is down)"
                )
            }
            OpenError::NotPermitted { ifname } => write!(
                f,
                "{VAR}={ifname}: a packet socket needs CAP_NET_RAW, which this process lacks"
            ),
            OpenError::Host {
                ifname,
                step,
                error,
            } => {
                write!(f, "{VAR}={ifname}: {step} failed: {error}")
            }
            OpenError::NotAPacketSocket { fd } => write!(
                f,
                "LKL_HIJACK_NET_FD={fd}: expected an AF_PACKET SOCK_DGRAM socket inherited from \
                 lkl-run (unset it to let the library open its own)"
            ),
        }
    }
}

impl std::error::Error for OpenError {}

/// Counters, readable while the backend runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketStats {
    /// Packets handed to LKL.
    pub rx_packets: u64,
    /// Packets longer than LKL's buffer (LKL drops them).
    pub rx_truncated: u64,
    /// Packets too big for a frame of the ring, read from the socket's queue.
    pub rx_copied: u64,
    /// Packets sent to the host.
    pub tx_packets: u64,
    /// Packets dropped because no next-hop MAC is known yet (Ethernet interfaces).
    pub tx_no_next_hop: u64,
    /// Sends the host refused for a moment (a full queue: ENOBUFS or EAGAIN) and that were
    /// tried again.
    pub tx_retried: u64,
    /// Packets the host refused (also after retries) or LKL handed over malformed.
    pub tx_errors: u64,
}

#[derive(Default)]
struct Counters {
    rx_packets: AtomicU64,
    rx_truncated: AtomicU64,
    rx_copied: AtomicU64,
    tx_packets: AtomicU64,
    tx_no_next_hop: AtomicU64,
    tx_retried: AtomicU64,
    tx_errors: AtomicU64,
}

/// Whether the kernel waits for an irq (armed) and whether the rx thread must end.
struct RxState {
    armed: bool,
    stopping: bool,
}

/// The largest packet the host may coalesce (an IP datagram).
const RX_MAX: usize = 65535;

/// The receiving side, used by the kernel's poll (one caller at a time).
struct Receiver {
    /// The ring, unless the host refused one.
    ring: Option<RxRing>,
    /// A packet read with recvmsg: its bytes from `buf[0]`.
    buf: Vec<u8>,
    /// The packet in `buf` the kernel had no memory for: its length and header.
    pending: Option<(usize, [u8; VNET_HDR_LEN])>,
}

/// The next hop's MAC in the low 48 bits, bit 48 set when known: one atomic, read per tx.
const MAC_KNOWN: u64 = 1 << 48;

fn mac_to_u64(mac: [u8; 6]) -> u64 {
    let mut b = [0u8; 8];
    b[..6].copy_from_slice(&mac);
    u64::from_le_bytes(b) | MAC_KNOWN
}

fn u64_to_mac(v: u64) -> Option<[u8; 6]> {
    (v & MAC_KNOWN != 0).then(|| {
        let b = v.to_le_bytes();
        [b[0], b[1], b[2], b[3], b[4], b[5]]
    })
}

/// A backend being opened (see [`PacketBackend::open_in_background`]).
pub struct Opening {
    ifname: String,
    how: OpeningHow,
}

type OpenFn = Box<dyn FnOnce() -> Result<Arc<PacketBackend>, OpenError> + Send>;

enum OpeningHow {
    Thread(JoinHandle<Result<Arc<PacketBackend>, OpenError>>),
    /// No thread could be had: opened in wait().
    Later(OpenFn),
}

impl Opening {
    /// The opened backend, or why it could not open.
    pub fn wait(self) -> Result<Arc<PacketBackend>, OpenError> {
        match self.how {
            OpeningHow::Thread(thread) => thread.join().unwrap_or_else(|_| {
                // The panic hook has reported the panic itself.
                Err(OpenError::Host {
                    ifname: self.ifname,
                    step: "opening the packet socket",
                    error: io::Error::from_raw_os_error(libc::EIO),
                })
            }),
            OpeningHow::Later(open) => open(),
        }
    }
}

/// An open packet socket serving as LKL's device.
pub struct PacketBackend {
    sock: sys::Fd,
    ipv4: Option<Ipv4Addr>,
    ipv6: Option<Ipv6Addr>,
    ifindex: c_int,
    /// An Ethernet-type host interface: tx needs the next hop's MAC.
    ethernet: bool,
    /// On Ethernet with a SOCK_RAW socket: our MAC. Frames then carry the Ethernet header,
    /// built on tx and skipped on rx.
    own_mac: Option<[u8; 6]>,
    /// PACKET_VNET_HDR is on: the host segments and checksums (see PacketConfig::offload),
    /// and rx gets the host's own virtio_net_hdr.
    vnet: bool,
    /// The host refused an offloaded packet (said once).
    offload_refused: AtomicBool,
    mtu: u32,
    next_hop_mac: AtomicU64,
    counters: Counters,
    rx: Mutex<RxState>,
    rx_cond: Condvar,
    receiver: Mutex<Receiver>,
    tx_scratch: Mutex<Box<TxScratch>>,
    /// Written to end the rx thread's poll.
    stop_fd: sys::Fd,
    rx_thread: Mutex<Option<JoinHandle<()>>>,
}

fn ifreq(ifname: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { zeroed() };
    for (dst, &src) in ifr.ifr_name.iter_mut().zip(ifname.as_bytes()) {
        *dst = src as libc::c_char;
    }
    ifr
}

fn attach_filter(sock: &sys::Fd, prog: &[libc::sock_filter]) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: SO_ATTACH_FILTER takes a sock_fprog whose program the kernel copies.
    unsafe { sys::setsockopt(sock, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog) }
}

/// Interface types whose SOCK_RAW layout the backend knows (see ETH_HLEN).
fn raw_capable(hw_type: u16) -> bool {
    matches!(hw_type, ARPHRD_NONE | ARPHRD_VOID | ARPHRD_ETHER)
}

/// A new packet socket, on no interface yet. Protocol 0: nothing is queued before the
/// filter is attached and the socket bound.
fn new_socket(ifname: &str) -> Result<sys::Fd, OpenError> {
    if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ || ifname.contains(['\0', '/']) {
        return Err(OpenError::NoSuchInterface {
            ifname: ifname.to_string(),
        });
    }
    let open = |ty: c_int, step: &'static str| {
        sys::socket(libc::AF_PACKET, ty | libc::SOCK_CLOEXEC, 0).map_err(|e| {
            match e.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => OpenError::NotPermitted {
                    ifname: ifname.to_string(),
                },
                error => OpenError::Host {
                    ifname: ifname.to_string(),
                    step,
                    error: io::Error::from_raw_os_error(error.unwrap_or(libc::EIO)),
                },
            }
        })
    };
    // Ethernet and interfaces without a link-layer header get SOCK_RAW, which can carry
    // offloads (set_up decides); an unknown interface is reported by set_up. The interface's
    // type is asked through a unix socket: closing a packet socket waits for an RCU grace
    // period of the host's (~8 ms).
    let mut ifr = ifreq(ifname);
    let raw = sys::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
        // SAFETY: SIOCGIFHWADDR writes the hwaddr member of an ifreq.
        .and_then(|probe| unsafe { sys::ioctl(&probe, libc::SIOCGIFHWADDR as _, &mut ifr) })
        .is_ok()
        // SAFETY: SIOCGIFHWADDR filled the hwaddr member.
        && raw_capable(unsafe { ifr.ifr_ifru.ifru_hwaddr.sa_family });
    if raw {
        open(libc::SOCK_RAW, "socket(AF_PACKET, SOCK_RAW)")
    } else {
        open(libc::SOCK_DGRAM, "socket(AF_PACKET, SOCK_DGRAM)")
    }
}

/// Packets that arrive while the kernel is busy wait in the socket; the default buffer
/// (~200 KiB) overflowed at about 1 Gbit/s. SO_RCVBUFFORCE needs CAP_NET_ADMIN; without it
/// the plain option still gets up to net.core.rmem_max. A buffer already that big (set by a
/// launcher with the privilege) is kept.
fn set_rcvbuf(sock: &sys::Fd) -> io::Result<()> {
    let rcvbuf: c_int = RCVBUF_BYTES;
    // The kernel reports twice the size asked for (it counts its bookkeeping).
    if sys::getsockopt_int(sock, libc::SOL_SOCKET, libc::SO_RCVBUF)? >= 2 * rcvbuf {
        return Ok(());
    }
    // SAFETY: both options take an int.
    unsafe {
        sys::setsockopt(sock, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &rcvbuf)
            .or_else(|_| sys::setsockopt(sock, libc::SOL_SOCKET, libc::SO_RCVBUF, &rcvbuf))
    }
}

/// The inherited packet socket `fd`, checked and made close-on-exec (the program's own
/// children must not inherit it). A descriptor that is something else is left alone.
fn inherited(fd: c_int) -> Result<sys::Fd, OpenError> {
    let wrong = || OpenError::NotAPacketSocket { fd };
    let sock = sys::Fd::adopt(fd).map_err(|_| wrong())?;
    let domain = sys::getsockopt_int(&sock, libc::SOL_SOCKET, libc::SO_DOMAIN);
    let ty = sys::getsockopt_int(&sock, libc::SOL_SOCKET, libc::SO_TYPE);
    if domain.ok() != Some(libc::AF_PACKET)
        || !matches!(ty.ok(), Some(libc::SOCK_DGRAM | libc::SOCK_RAW))
    {
        // Not ours to close: the number stays whatever the program had there.
        sock.into_raw();
        return Err(wrong());
    }
    sys::set_cloexec(&sock, true).map_err(|_| wrong())?;
    Ok(sock)
}

/// Checks an inherited packet socket early (before the program's `main`) and keeps it from
/// the program's children; [`PacketBackend::adopt`] takes it over later.
pub fn claim_inherited(fd: c_int) -> Result<(), OpenError> {
    inherited(fd).map(|sock| {
        sock.into_raw();
    })
}

/// A packet socket for `ifname` opened with this process's privileges (CAP_NET_RAW, and
/// CAP_NET_ADMIN for the big receive buffer), for a program that has fewer: the launcher
/// passes it down and the program's library takes it over with [`PacketBackend::adopt`].
/// Close-on-exec is off, so it survives the exec.
pub fn open_socket(ifname: &str) -> Result<std::os::fd::OwnedFd, OpenError> {
    use std::os::fd::FromRawFd;
    let sock = new_socket(ifname)?;
    let fail = |step: &'static str| {
        move |error| OpenError::Host {
            ifname: ifname.to_string(),
            step,
            error,
        }
    };
    set_rcvbuf(&sock).map_err(fail("SO_RCVBUF"))?;
    sys::set_cloexec(&sock, false).map_err(fail("F_SETFD"))?;
    // SAFETY: the descriptor is ours; ownership moves to the OwnedFd.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(sock.into_raw()) })
}

impl PacketBackend {
    /// Opens the socket on `cfg.ifname` (in the calling thread's network namespace; the
    /// socket stays there whatever thread uses it later).
    pub fn open(cfg: &PacketConfig) -> Result<Arc<PacketBackend>, OpenError> {
        let sock = new_socket(&cfg.ifname)?;
        Self::set_up(sock, cfg)
    }

    /// Takes over `fd`, a socket from [`open_socket`] that a launcher opened with the
    /// privileges this process may lack, and sets it up as [`open`](Self::open) would.
    pub fn adopt(fd: c_int, cfg: &PacketConfig) -> Result<Arc<PacketBackend>, OpenError> {
        Self::set_up(inherited(fd)?, cfg)
    }

    /// [`open`](Self::open) or, with `fd`, [`adopt`](Self::adopt) on a thread of its own,
    /// for the caller to boot the kernel meanwhile: setting the socket up mostly waits for
    /// the host kernel (an RCU grace period for the ring).
    pub fn open_in_background(cfg: PacketConfig, fd: Option<c_int>) -> Opening {
        let ifname = cfg.ifname.clone();
        let open = move || match fd {
            Some(fd) => Self::adopt(fd, &cfg),
            None => Self::open(&cfg),
        };
        let how = match crate::host_ops::spawn_library_thread("lkl-packet-open", open.clone()) {
            Ok(thread) => OpeningHow::Thread(thread),
            Err(_) => OpeningHow::Later(Box::new(open)),
        };
        Opening { ifname, how }
    }

    fn set_up(sock: sys::Fd, cfg: &PacketConfig) -> Result<Arc<PacketBackend>, OpenError> {
        let ifname = cfg.ifname.clone();
        let host = |step: &'static str| {
            let ifname = ifname.clone();
            move |error| OpenError::Host {
                ifname,
                step,
                error,
            }
        };
        let mut ifr = ifreq(&cfg.ifname);
        // SAFETY: SIOCGIFINDEX reads the name and writes ifr_ifindex of an ifreq.
        unsafe { sys::ioctl(&sock, libc::SIOCGIFINDEX as _, &mut ifr) }.map_err(|e| {
            match e.raw_os_error() {
                Some(libc::ENODEV) => OpenError::NoSuchInterface {
                    ifname: ifname.clone(),
                },
                _ => host("SIOCGIFINDEX")(e),
            }
        })?;
        // SAFETY: SIOCGIFINDEX filled the ifindex member.
        let ifindex = unsafe { ifr.ifr_ifru.ifru_ifindex };
        // SAFETY: SIOCGIFFLAGS writes the flags member of an ifreq.
        unsafe { sys::ioctl(&sock, libc::SIOCGIFFLAGS as _, &mut ifr) }
            .map_err(host("SIOCGIFFLAGS"))?;
        // SAFETY: SIOCGIFFLAGS filled the flags member.
        if unsafe { ifr.ifr_ifru.ifru_flags } & libc::IFF_UP as i16 == 0 {
            return Err(OpenError::InterfaceDown { ifname });
        }
        // SAFETY: SIOCGIFMTU writes the mtu member of an ifreq.
        unsafe { sys::ioctl(&sock, libc::SIOCGIFMTU as _, &mut ifr) }
            .map_err(host("SIOCGIFMTU"))?;
        // SAFETY: SIOCGIFMTU filled the mtu member.
        let mtu = unsafe { ifr.ifr_ifru.ifru_mtu } as u32;
        // SAFETY: SIOCGIFHWADDR writes the hwaddr member of an ifreq.
        unsafe { sys::ioctl(&sock, libc::SIOCGIFHWADDR as _, &mut ifr) }
            .map_err(host("SIOCGIFHWADDR"))?;
        // SAFETY: SIOCGIFHWADDR filled the hwaddr member; sa_family is the ARPHRD type.
        let hw_type = unsafe { ifr.ifr_ifru.ifru_hwaddr.sa_family };
        let ethernet = hw_type == ARPHRD_ETHER;
        let raw = sys::getsockopt_int(&sock, libc::SOL_SOCKET, libc::SO_TYPE)
            .map_err(host("SO_TYPE"))?
            == libc::SOCK_RAW;
        if raw && !raw_capable(hw_type) {
            // A raw socket would see a link-layer header the backend does not know.
            return Err(OpenError::NotAPacketSocket { fd: sock.raw() });
        }
        // Our own MAC, the source of the Ethernet headers a raw socket must build.
        let own_mac = (raw && ethernet).then(|| {
            // SAFETY: SIOCGIFHWADDR filled the hwaddr member; sa_data holds the address.
            let data = unsafe { ifr.ifr_ifru.ifru_hwaddr.sa_data };
            let mut mac = [0u8; 6];
            for (m, &d) in mac.iter_mut().zip(&data) {
                *m = d as u8;
            }
            mac
        });

        attach_filter(&sock, &filter::program(cfg.ipv4, cfg.ipv6, &cfg.admit))
            .map_err(host("SO_ATTACH_FILTER"))?;
        let one: c_int = 1;
        // SAFETY: both options take an int.
        unsafe {
            sys::setsockopt(&sock, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one)
                .map_err(host("PACKET_IGNORE_OUTGOING"))?;
            sys::setsockopt(&sock, SOL_PACKET, PACKET_AUXDATA, &one)
                .map_err(host("PACKET_AUXDATA"))?;
        }
        // SAFETY: the option takes an int.
        let vnet = raw
            && cfg.offload
            && unsafe { sys::setsockopt(&sock, SOL_PACKET, PACKET_VNET_HDR, &one) }.is_ok();
        set_rcvbuf(&sock).map_err(host("SO_RCVBUF"))?;
        // Before bind: packets come to the ring from the first.
        let ring = if cfg.rx_ring {
            match RxRing::set_up(&sock, mtu) {
                Ok(ring) => Some(ring),
                Err(e) => {
                    log::debug!("packet backend: the host refused a receive ring ({e})");
                    None
                }
            }
        } else {
            None
        };
        match &ring {
            Some(ring) => log::debug!(
                "packet backend: receiving through a ring of {} frames",
                ring.frames()
            ),
            None => log::debug!("packet backend: receiving with recvmsg"),
        }
        // SAFETY: sockaddr_ll is plain data; all zeroes is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ALL.to_be();
        sll.sll_ifindex = ifindex;
        sys::bind_ll(&sock, &sll).map_err(host("bind"))?;

        let next_hop_mac = match (ethernet, cfg.next_hop) {
            (true, Some(ip)) => arp_lookup(ip, &cfg.ifname).map_or(0, mac_to_u64),
            _ => 0,
        };
        Ok(Arc::new(PacketBackend {
            sock,
            ipv4: cfg.ipv4,
            ipv6: cfg.ipv6,
            ifindex,
            ethernet,
            own_mac,
            vnet,
            offload_refused: AtomicBool::new(false),
            mtu,
            next_hop_mac: AtomicU64::new(next_hop_mac),
            counters: Counters::default(),
            rx: Mutex::new(RxState {
                armed: true,
                stopping: false,
            }),
            rx_cond: Condvar::new(),
            receiver: Mutex::new(Receiver {
                ring,
                buf: vec![0; RX_MAX],
                pending: None,
            }),
            tx_scratch: Mutex::new(TxScratch::new()),
            stop_fd: sys::eventfd().map_err(host("eventfd"))?,
            rx_thread: Mutex::new(None),
        }))
    }

    /// Changes which packets reach LKL (e.g. as the program starts listening on ports of an
    /// address it shares with the host). The new filter replaces the old one atomically.
    pub fn admit(&self, admit: &Admit) -> io::Result<()> {
        attach_filter(&self.sock, &filter::program(self.ipv4, self.ipv6, admit))
    }

    /// Whether packets arrive through the shared ring (else by recvmsg).
    pub fn rx_ring(&self) -> bool {
        self.receiver.lock().ring.is_some()
    }

    /// The host interface's MTU: the size of LKL's device.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// The next hop's MAC on an Ethernet interface, once known.
    pub fn next_hop_mac(&self) -> Option<[u8; 6]> {
        u64_to_mac(self.next_hop_mac.load(Ordering::Relaxed))
    }

    pub fn stats(&self) -> PacketStats {
        let c = &self.counters;
        PacketStats {
            rx_packets: c.rx_packets.load(Ordering::Relaxed),
            rx_truncated: c.rx_truncated.load(Ordering::Relaxed),
            rx_copied: c.rx_copied.load(Ordering::Relaxed),
            tx_packets: c.tx_packets.load(Ordering::Relaxed),
            tx_no_next_hop: c.tx_no_next_hop.load(Ordering::Relaxed),
            tx_retried: c.tx_retried.load(Ordering::Relaxed),
            tx_errors: c.tx_errors.load(Ordering::Relaxed),
        }
    }

    /// Starts the rx thread, which raises `irq` when a packet waits while the device is armed.
    /// Call once, after registering the device.
    pub fn start_rx(self: &Arc<Self>, irq: Irq) -> io::Result<()> {
        let me = Arc::clone(self);
        let handle =
            crate::host_ops::spawn_library_thread("lkl-packet-rx", move || me.rx_loop(irq))?;
        *self.rx_thread.lock() = Some(handle);
        Ok(())
    }

    /// Ends the rx thread and waits for it. Must happen before the kernel halts (the thread
    /// raises irqs); the socket stays open until the backend is dropped.
    pub fn stop_rx(&self) {
        self.rx.lock().stopping = true;
        self.rx_cond.notify_all();
        if let Err(e) = sys::eventfd_signal(&self.stop_fd) {
            log::error!(target: "lkl", "packet backend: waking the rx thread: {e}");
        }
        if let Some(handle) = self.rx_thread.lock().take() {
            // A panic there was already reported by the panic hook.
            let _ = handle.join();
        }
    }

    fn rx_loop(&self, irq: Irq) {
        loop {
            {
                let mut state = self.rx.lock();
                while !state.armed && !state.stopping {
                    self.rx_cond.wait(&mut state);
                }
                if state.stopping {
                    return;
                }
            }
            let mut fds = [
                libc::pollfd {
                    fd: self.sock.raw(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.stop_fd.raw(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            match sys::ppoll(&mut fds, None) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::error!(target: "lkl", "packet backend: poll: {e}; rx stops");
                    return;
                }
            }
            if fds[1].revents != 0 {
                return;
            }
            if fds[0].revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
                log::error!(target: "lkl", "packet backend: socket error; rx stops");
                return;
            }
            if fds[0].revents & libc::POLLIN != 0 {
                // Disarm before the irq: the kernel re-arms (rx_arm) once it has drained the
                // socket, possibly before trigger() returns.
                self.rx.lock().armed = false;
                irq.trigger();
            }
        }
    }
}

impl Drop for PacketBackend {
    fn drop(&mut self) {
        self.stop_rx();
    }
}

/// The MAC of `ip` on `ifname` in the calling thread's network namespace's ARP table.
fn arp_lookup(ip: Ipv4Addr, ifname: &str) -> Option<[u8; 6]> {
    let path = CString::new("/proc/thread-self/net/arp").ok()?;
    let table = sys::read_file(&path).ok()?;
    parse_arp_table(&String::from_utf8_lossy(&table), ip, ifname)
}

/// Finds a complete entry (flag ATF_COM, 0x2) in /proc/net/arp's format.
fn parse_arp_table(table: &str, ip: Ipv4Addr, ifname: &str) -> Option<[u8; 6]> {
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let [addr, _hwtype, flags, mac, _mask, dev] = cols[..] else {
            return None;
        };
        let complete = u32::from_str_radix(flags.trim_start_matches("0x"), 16).ok()? & 0x2 != 0;
        if addr.parse::<Ipv4Addr>().ok()? != ip || dev != ifname || !complete {
            return None;
        }
        let mut out = [0u8; 6];
        let mut parts = mac.split(':');
        for b in &mut out {
            *b = u8::from_str_radix(parts.next()?, 16).ok()?;
        }
        Some(out)
    })
}

/// Where the TCP/UDP checksum of an IP packet starts (its L4 header) and where its field is
/// within it; None for other protocols and IPv6 extension headers.
fn partial_csum_location(packet: &[u8]) -> Option<(u16, u16)> {
    let (l4_start, proto) = match packet.first()? >> 4 {
        4 => (u16::from(packet[0] & 0x0f) * 4, *packet.get(9)?),
        6 => (40, *packet.get(6)?),
        _ => return None,
    };
    let offset = match proto {
        6 => 16, // TCP
        17 => 6, // UDP
        _ => return None,
    };
    Some((l4_start, offset))
}

impl PacketBackend {
    /// Hands the kernel the packet kept in `buf` for lack of kernel memory, else the next one
    /// from the socket's receive queue, and keeps it again if the kernel still has none;
    /// None when no packet waits.
    fn deliver_from_queue(
        &self,
        buf: &mut [u8],
        pending: &mut Option<(usize, [u8; VNET_HDR_LEN])>,
        deliver: &mut dyn FnMut(&[u8; VNET_HDR_LEN], &[u8]) -> Delivery,
    ) -> Result<Option<Delivery>, Errno> {
        let Some((len, hdr)) = (match pending.take() {
            Some(kept) => Some(kept),
            None => self.recv(buf)?,
        }) else {
            return Ok(None);
        };
        let delivery = deliver(&hdr, &buf[..len]);
        if delivery == Delivery::NoMemory {
            *pending = Some((len, hdr));
        }
        Ok(Some(delivery))
    }

    /// Receives the next packet from the socket's queue into `buf` with recvmsg; returns its
    /// length and virtio_net_hdr, None when none waits. Packets longer than `buf` are
    /// counted and skipped.
    fn recv(&self, buf: &mut [u8]) -> Result<Option<(usize, [u8; VNET_HDR_LEN])>, Errno> {
        let link = if self.own_mac.is_some() { ETH_HLEN } else { 0 };
        loop {
            // SAFETY: sockaddr_ll is plain data; all zeroes is a valid value.
            let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
            // Room for one cmsghdr carrying a tpacket_auxdata, u64-aligned as cmsg requires.
            let mut control = [0u64; 8];
            let mut host_hdr = [0u8; VNET_HDR_LEN];
            let mut eth = [0u8; ETH_HLEN];
            let vec = |p: *mut u8, len| libc::iovec {
                iov_base: p.cast(),
                iov_len: len,
            };
            let all = [
                vec(host_hdr.as_mut_ptr(), VNET_HDR_LEN),
                vec(eth.as_mut_ptr(), ETH_HLEN),
                vec(buf.as_mut_ptr(), buf.len()),
            ];
            // The headers the socket gives (vnet, Ethernet), then the packet.
            let mut iov = [all[2]; 3];
            let mut used = 0;
            for (v, keep) in all.into_iter().zip([self.vnet, link > 0, true]) {
                if keep {
                    iov[used] = v;
                    used += 1;
                }
            }
            let mut msg = ll_msghdr(&mut sll, &mut iov[..used]);
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = size_of_val(&control);
            let headers = link + if self.vnet { VNET_HDR_LEN } else { 0 };
            // SAFETY: msg names sll, the control buffer, the header arrays and `buf`, all
            // alive and exclusively ours during the call.
            let len = match unsafe {
                sys::recvmsg(&self.sock, &mut msg, libc::MSG_DONTWAIT | libc::MSG_TRUNC)
            } {
                Ok(len) => len.saturating_sub(headers),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(Errno(e.raw_os_error().unwrap_or(libc::EIO))),
            };
            if len > buf.len() {
                self.counters.rx_truncated.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let mut status = 0;
            // SAFETY: the CMSG_* helpers walk the control buffer the kernel filled, within
            // msg_controllen; the auxdata payload is read unaligned.
            unsafe {
                let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
                while !cmsg.is_null() {
                    if (*cmsg).cmsg_level == SOL_PACKET && (*cmsg).cmsg_type == PACKET_AUXDATA {
                        let aux: TpacketAuxdata =
                            ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<TpacketAuxdata>());
                        status = aux.tp_status;
                    }
                    cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
                }
            }
            self.learn_next_hop(&sll);
            let host_hdr = self.vnet.then_some(host_hdr);
            return Ok(Some((
                len,
                offload_hdr(host_hdr, link, status, &buf[..len]),
            )));
        }
    }

    /// On Ethernet, the sender of a received frame is our next hop.
    fn learn_next_hop(&self, sll: &libc::sockaddr_ll) {
        if self.ethernet && sll.sll_halen == 6 && sll.sll_pkttype != PACKET_OUTGOING {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&sll.sll_addr[..6]);
            self.next_hop_mac.store(mac_to_u64(mac), Ordering::Relaxed);
        }
    }
}

/// The virtio_net_hdr LKL gets with a received `packet`: the host's own when it gave one
/// (its offsets counted from the `link`-byte link-layer header before the packet), else one
/// made from the host's TP_STATUS checksum bits.
fn offload_hdr(
    host_hdr: Option<[u8; VNET_HDR_LEN]>,
    link: usize,
    status: u32,
    packet: &[u8],
) -> [u8; VNET_HDR_LEN] {
    let mut hdr = [0u8; VNET_HDR_LEN];
    if let Some(host) = host_hdr {
        hdr = host;
        shift_vnet_hdr(&mut hdr, -(link as i32));
    } else if status & TP_STATUS_CSUMNOTREADY != 0 {
        // Produced by a local stack that left the checksum to offload (veth): the field
        // holds only the pseudo-header sum. Say so (NEEDS_CSUM with the checksum's place),
        // which LKL treats as CHECKSUM_PARTIAL, i.e. intact data.
        if let Some((start, offset)) = partial_csum_location(packet) {
            hdr[0] = VNET_HDR_F_NEEDS_CSUM;
            hdr[6..8].copy_from_slice(&start.to_le_bytes());
            hdr[8..10].copy_from_slice(&offset.to_le_bytes());
        }
    } else if status & TP_STATUS_CSUM_VALID != 0 {
        hdr[0] = VNET_HDR_F_DATA_VALID;
    }
    hdr
}

/// Moves a virtio_net_hdr's offsets (hdr_len for GSO, csum_start for a partial checksum) by
/// `by` bytes: the host counts them from the start of what the socket sends or receives, LKL
/// from the IP header.
fn shift_vnet_hdr(hdr: &mut [u8; VNET_HDR_LEN], by: i32) {
    let gso = hdr[1] != VNET_HDR_GSO_NONE;
    let partial = hdr[0] & VNET_HDR_F_NEEDS_CSUM != 0;
    for (at, applies) in [(2, gso), (6, partial)] {
        if applies {
            let v = i32::from(u16::from_le_bytes([hdr[at], hdr[at + 1]]));
            let moved = u16::try_from((v + by).max(0)).unwrap_or(u16::MAX);
            hdr[at..at + 2].copy_from_slice(&moved.to_le_bytes());
        }
    }
}

/// A msghdr for one packet: link-layer address `sll`, data `iov`. It points into both, so
/// they must outlive its use.
fn ll_msghdr(sll: &mut libc::sockaddr_ll, iov: &mut [libc::iovec]) -> libc::msghdr {
    // SAFETY: msghdr is plain data; all zeroes is a valid value.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_name = ptr::from_mut(sll).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_ll>() as u32;
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len();
    msg
}

impl NetBackend for PacketBackend {
    fn tx(&self, batch: &TxBatch<'_>) -> usize {
        self.send_batch(batch)
    }

    fn rx(
        &self,
        budget: usize,
        deliver: &mut dyn FnMut(&[u8; VNET_HDR_LEN], &[u8]) -> Delivery,
    ) -> Result<usize, Errno> {
        let mut receiver = self.receiver.lock();
        let Receiver { ring, buf, pending } = &mut *receiver;
        let mut taken = 0;
        while taken < budget {
            let Some(ring) = ring.as_mut() else {
                match self.deliver_from_queue(buf, pending, deliver)? {
                    Some(Delivery::Taken) => taken += 1,
                    Some(Delivery::NoMemory) | None => break,
                }
                continue;
            };
            let Some(frame) = ring.peek() else {
                break;
            };
            let delivered = if frame.status & TP_STATUS_COPY != 0 {
                // Too big for the frame: the whole packet waits in the receive queue.
                let delivered = self.deliver_from_queue(buf, pending, deliver)?;
                if delivered == Some(Delivery::Taken) {
                    self.counters.rx_copied.fetch_add(1, Ordering::Relaxed);
                }
                delivered
            } else if let Some(packet) = frame.packet() {
                self.learn_next_hop(&frame.sll());
                let host_hdr = if self.vnet { frame.vnet_hdr() } else { None };
                let hdr = offload_hdr(host_hdr, frame.net - frame.mac, frame.status, packet);
                Some(deliver(&hdr, packet))
            } else {
                None
            };
            match delivered {
                // The frame stays ours; the next call starts with it.
                Some(Delivery::NoMemory) => break,
                Some(Delivery::Taken) => taken += 1,
                None => {
                    self.counters.rx_truncated.fetch_add(1, Ordering::Relaxed);
                }
            }
            ring.release();
        }
        self.counters
            .rx_packets
            .fetch_add(taken as u64, Ordering::Relaxed);
        Ok(taken)
    }

    fn rx_arm(&self) {
        self.rx.lock().armed = true;
        self.rx_cond.notify_one();
    }

    fn tso(&self) -> bool {
        self.vnet
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arp_table_gives_complete_entries_on_the_interface() {
        let table = "IP address       HW type     Flags       HW address            Mask     Device\n\
                     10.0.0.1         0x1         0x2         02:13:05:00:00:01     *        veth0\n\
                     10.0.0.9         0x1         0x0         00:00:00:00:00:00     *        veth0\n";
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            parse_arp_table(table, ip("10.0.0.1"), "veth0"),
            Some([2, 0x13, 5, 0, 0, 1])
        );
        assert_eq!(parse_arp_table(table, ip("10.0.0.1"), "eth1"), None);
        assert_eq!(
            parse_arp_table(table, ip("10.0.0.9"), "veth0"),
            None,
            "incomplete"
        );
    }

    #[test]
    fn partial_checksums_are_located_in_tcp_and_udp() {
        let mut v4 = vec![0u8; 40];
        v4[0] = 0x46; // 24-byte header
        v4[9] = 6;
        assert_eq!(partial_csum_location(&v4), Some((24, 16)));
        v4[9] = 17;
        assert_eq!(partial_csum_location(&v4), Some((24, 6)));
        v4[9] = 1;
        assert_eq!(partial_csum_location(&v4), None, "ICMP");
        let mut v6 = vec![0u8; 60];
        v6[0] = 0x60;
        v6[6] = 6;
        assert_eq!(partial_csum_location(&v6), Some((40, 16)));
        v6[6] = 0; // hop-by-hop options
        assert_eq!(partial_csum_location(&v6), None);
    }

    #[test]
    fn mac_round_trips_through_the_atomic_word() {
        assert_eq!(u64_to_mac(0), None);
        let mac = [2, 0x13, 5, 0, 0, 1];
        assert_eq!(u64_to_mac(mac_to_u64(mac)), Some(mac));
        assert_eq!(u64_to_mac(mac_to_u64([0; 6])), Some([0; 6]));
    }
}
