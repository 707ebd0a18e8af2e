//! Opening: a packet socket on the host interface, or one a launcher opened and passed down,
//! set up as LKL's device (filter, offloads, receive buffer and ring, bound to the
//! interface), and why that failed.
//!
//! The socket type follows the interface's link type ([`socket_type`]): SOCK_RAW on Ethernet
//! and on tun (no link-layer header), the only type that takes PACKET_VNET_HDR and so
//! offloads; SOCK_DGRAM, which leaves the link layer to the host, on any other, OpenVZ's
//! venet0 (link/void) among them.
//!
//! Where the host kernel lacks a packet-socket feature, the backend does without and records
//! it ([`PacketBackend::fallbacks`]).

use std::ffi::c_int;
use std::fmt;
use std::io;
use std::mem::zeroed;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::thread::JoinHandle;

use std::sync::{Condvar, Mutex};

use super::neighbour::{arp_lookup, mac_to_u64};
use super::ring::RxRing;
use super::rx::{Receiver, Source};
use super::rx_thread::RxState;
use super::tx::TxScratch;
use super::{filter, sys, Counters, PacketBackend, PacketConfig, PACKET_AUXDATA, SOL_PACKET};
use crate::host_features::Fallback;

// linux/if_packet.h, linux/if_ether.h, linux/if_arp.h
const PACKET_IGNORE_OUTGOING: c_int = 23;
const PACKET_VNET_HDR: c_int = 15;
const ETH_P_ALL: u16 = 0x0003;
const ARPHRD_ETHER: u16 = 1;
/// tun: no link-layer header, so a SOCK_RAW socket on it sees bare IP packets too. Only
/// SOCK_RAW takes PACKET_VNET_HDR; on Ethernet it also sees (and must build) the 14-byte
/// header.
const ARPHRD_NONE: u16 = 0xfffe;
/// OpenVZ's venet0 (link/void). It has no link-layer header either, but says its header is
/// 14 bytes long (hard_header_len) and has no header_ops: a SOCK_RAW send of a bare IP packet
/// is read 14 bytes off and venet drops it, while sendmsg reports success. Only SOCK_DGRAM
/// sends there.
const ARPHRD_VOID: u16 = 0xffff;
/// The packet socket's receive buffer.
const RCVBUF_BYTES: c_int = 4 << 20;

/// Why the backend could not open. Each error is about one input, which
/// [`input`](Self::input) names, so that a program can point its user at the setting behind
/// it; displayed as one line: the input, then [`problem`](Self::problem).
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
    /// An adopted descriptor that is not a packet socket.
    NotAPacketSocket {
        fd: c_int,
    },
    /// A SOCK_RAW socket (an adopted one: the backend opens SOCK_DGRAM there) on an interface
    /// whose link-layer header the backend does not know how to build and strip, or on
    /// OpenVZ's venet0 (ARPHRD_VOID), where it cannot send.
    UnknownLinkType {
        ifname: String,
        /// The interface's ARPHRD_* type.
        hw_type: u16,
    },
}

/// The input an [`OpenError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenInput<'a> {
    /// [`PacketConfig::ifname`].
    Ifname(&'a str),
    /// The descriptor given to [`PacketBackend::adopt`] or [`claim_inherited`].
    Fd(c_int),
}

impl fmt::Display for OpenInput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenInput::Ifname(ifname) => write!(f, "ifname={ifname}"),
            OpenInput::Fd(fd) => write!(f, "fd={fd}"),
        }
    }
}

impl OpenError {
    /// The input at fault.
    pub fn input(&self) -> OpenInput<'_> {
        match self {
            OpenError::NoSuchInterface { ifname }
            | OpenError::InterfaceDown { ifname }
            | OpenError::NotPermitted { ifname }
            | OpenError::Host { ifname, .. }
            | OpenError::UnknownLinkType { ifname, .. } => OpenInput::Ifname(ifname),
            OpenError::NotAPacketSocket { fd } => OpenInput::Fd(*fd),
        }
    }

    /// What is wrong with the input, or what was expected of it.
    pub fn problem(&self) -> impl fmt::Display + '_ {
        Problem(self)
    }
}

struct Problem<'a>(&'a OpenError);

impl fmt::Display for Problem<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            OpenError::NoSuchInterface { .. } => {
                write!(f, "expected the name of an existing host interface")
            }
            OpenError::InterfaceDown { .. } => {
                write!(f, "expected an interface that is up (it is down)")
            }
            OpenError::NotPermitted { .. } => write!(
                f,
                "a packet socket needs CAP_NET_RAW, which this process lacks"
            ),
            OpenError::Host { step, error, .. } => write!(f, "{step} failed: {error}"),
            OpenError::NotAPacketSocket { .. } => write!(
                f,
                "expected an open AF_PACKET socket (SOCK_RAW or SOCK_DGRAM)"
            ),
            OpenError::UnknownLinkType {
                hw_type: ARPHRD_VOID,
                ..
            } => write!(
                f,
                "a SOCK_RAW packet socket on a link/void interface (OpenVZ venet) cannot send: \
                 the host drops what it sends; expected a SOCK_DGRAM socket"
            ),
            OpenError::UnknownLinkType { hw_type, .. } => write!(
                f,
                "a SOCK_RAW packet socket on it sees link-layer headers of a type the backend \
                 does not know (ARPHRD {hw_type}); expected Ethernet, an interface without \
                 link-layer header, or a SOCK_DGRAM socket"
            ),
        }
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.input(), self.problem())
    }
}

impl std::error::Error for OpenError {}

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

fn ifreq(ifname: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { zeroed() };
    for (dst, &src) in ifr.ifr_name.iter_mut().zip(ifname.as_bytes()) {
        *dst = src as libc::c_char;
    }
    ifr
}

/// The packet socket type for an interface of ARPHRD type `hw_type`: SOCK_RAW where the
/// backend knows the layout a raw socket sees and sends (Ethernet, see ETH_HLEN; tun),
/// SOCK_DGRAM anywhere else. Both the sockets the backend opens and those it adopts follow it.
fn socket_type(hw_type: u16) -> c_int {
    match hw_type {
        ARPHRD_NONE | ARPHRD_ETHER => libc::SOCK_RAW,
        _ => libc::SOCK_DGRAM,
    }
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
    // SOCK_RAW can carry offloads (set_up decides); a missing interface is reported by
    // set_up. The interface's type is asked through a unix socket: closing a packet socket
    // waits for an RCU grace period of the host's (~8 ms).
    let mut ifr = ifreq(ifname);
    let raw = sys::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
        // SAFETY: SIOCGIFHWADDR writes the hwaddr member of an ifreq.
        .and_then(|probe| unsafe { sys::ioctl(&probe, libc::SIOCGIFHWADDR as _, &mut ifr) })
        .is_ok()
        // SAFETY: SIOCGIFHWADDR filled the hwaddr member.
        && socket_type(unsafe { ifr.ifr_ifru.ifru_hwaddr.sa_family }) == libc::SOCK_RAW;
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

/// Binds `sock` to the interface `ifindex`, for every protocol: packets come from now on.
pub(super) fn bind_to(sock: &sys::Fd, ifindex: c_int) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data; all zeroes is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_ALL.to_be();
    sll.sll_ifindex = ifindex;
    sys::bind_ll(sock, &sll)
}

/// The receiving options a second socket of the backend (`share.rs`) gets as the first got
/// them: without our own tx (unless the filter drops it), with the checksum status, and
/// with the host's virtio_net_hdr where the first has it.
pub(super) fn set_receive_options(
    sock: &sys::Fd,
    drop_outgoing: bool,
    vnet: bool,
) -> io::Result<()> {
    let one: c_int = 1;
    // SAFETY: each option takes an int.
    unsafe {
        if !drop_outgoing {
            sys::setsockopt(sock, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one)?;
        }
        sys::setsockopt(sock, SOL_PACKET, PACKET_AUXDATA, &one)?;
        if vnet {
            sys::setsockopt(sock, SOL_PACKET, PACKET_VNET_HDR, &one)?;
        }
    }
    Ok(())
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
        if raw && socket_type(hw_type) != libc::SOCK_RAW {
            // A raw socket would see a link-layer header the backend does not know, or (on
            // venet0) could not send.
            return Err(OpenError::UnknownLinkType { ifname, hw_type });
        }
        let link_note = (hw_type == ARPHRD_VOID).then(|| {
            format!(
                "{} is link/void (OpenVZ venet): SOCK_DGRAM, no offloads",
                cfg.ifname
            )
        });
        let mut fallbacks = Vec::new();
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

        let one: c_int = 1;
        // Our own tx must not come back as rx. A kernel without the option (before 4.20)
        // does not know it (ENOPROTOOPT): the filter drops outgoing packets instead.
        // SAFETY: the option takes an int.
        let drop_outgoing =
            match unsafe { sys::setsockopt(&sock, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one) } {
                Ok(()) => false,
                Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => {
                    fallbacks.push(Fallback {
                        feature: "PACKET_IGNORE_OUTGOING",
                        since: "4.20",
                        instead: "the socket filter drops the interface's outgoing packets",
                    });
                    true
                }
                Err(e) => return Err(host("PACKET_IGNORE_OUTGOING")(e)),
            };
        filter::attach(
            &sock,
            &filter::program(
                cfg.ipv4,
                cfg.ipv6,
                &cfg.admit,
                cfg.split.as_ref(),
                drop_outgoing,
            ),
        )
        .map_err(host("SO_ATTACH_FILTER"))?;
        // SAFETY: the option takes an int.
        unsafe { sys::setsockopt(&sock, SOL_PACKET, PACKET_AUXDATA, &one) }
            .map_err(host("PACKET_AUXDATA"))?;
        // SAFETY: the option takes an int.
        let vnet = raw
            && cfg.offload
            && match unsafe { sys::setsockopt(&sock, SOL_PACKET, PACKET_VNET_HDR, &one) } {
                Ok(()) => true,
                Err(e) => {
                    log::debug!("packet backend: the host refused PACKET_VNET_HDR ({e})");
                    fallbacks.push(Fallback {
                        feature: "PACKET_VNET_HDR",
                        since: "2.6.34",
                        instead: "no offloads: TCP segmented and checksummed in LKL",
                    });
                    false
                }
            };
        set_rcvbuf(&sock).map_err(host("SO_RCVBUF"))?;
        // Before bind: packets come to the ring from the first.
        let ring = if cfg.rx_ring {
            match RxRing::set_up(&sock, mtu, cfg.rx_ring_bytes) {
                Ok(ring) => Some(ring),
                Err(e) => {
                    log::debug!("packet backend: the host refused a receive ring ({e})");
                    fallbacks.push(Fallback {
                        feature: "a TPACKET_V2 receive ring (PACKET_RX_RING)",
                        since: "2.6.27",
                        instead: "one recvmsg per received packet",
                    });
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
        bind_to(&sock, ifindex).map_err(host("bind"))?;

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
            drop_outgoing,
            fallbacks,
            link_note,
            offload_refused: AtomicBool::new(false),
            mtu,
            next_hop_mac: AtomicU64::new(next_hop_mac),
            counters: Counters::default(),
            rx: Mutex::new(RxState::new()),
            rx_cond: Condvar::new(),
            rx_coalesce: cfg.rx_coalesce,
            ring_span: ring.as_ref().map(RxRing::span),
            receiver: Mutex::new(Receiver {
                main: Source::new(ring),
                group: None,
                mailbox: None,
            }),
            filters: Mutex::new((cfg.admit.clone(), cfg.split.clone())),
            group_fd: AtomicI32::new(-1),
            mailbox_fd: AtomicI32::new(-1),
            group_ring: (AtomicUsize::new(0), AtomicUsize::new(0)),
            ring_bytes: cfg.rx_ring_bytes,
            own_only: AtomicI32::new(cfg.split.is_some().into()),
            tx_scratch: Mutex::new(TxScratch::new()),
            stop_fd: sys::eventfd().map_err(host("eventfd"))?,
            rx_thread: Mutex::new(None),
        }))
    }
}
