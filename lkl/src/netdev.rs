//! Network devices backed by the host: a Rust trait for the device's tx/rx/rx_arm and their
//! registration with the kernel (`lkl_netdev_add`).
//!
//! The kernel's device is L3 point-to-point (no link-layer header, no ARP): every packet is a
//! bare IPv4/IPv6 packet accompanied by a `struct virtio_net_hdr` carrying offload metadata.
//! rx is interrupt driven: the device starts "armed"; the backend raises [`Irq::trigger`] once
//! a packet waits, the kernel takes packets with [`NetBackend::rx`] until it finds no more,
//! then calls [`NetBackend::rx_arm`] and waits for the next interrupt.

use std::ffi::{c_int, c_void, CString};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::AtomicI32;
use std::sync::Arc;

use crate::{sys, Errno, Kernel};

/// Size of `struct virtio_net_hdr` (linux/virtio_net.h), the first iovec of every packet.
pub const VNET_HDR_LEN: usize = 10;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the packet's checksum was verified by the host.
pub const VNET_HDR_F_DATA_VALID: u8 = 2;

/// What the kernel did with a packet handed to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Taken (queued, or dropped as malformed): the backend moves on.
    Taken,
    /// The kernel had no memory for it: keep it for a later call.
    NoMemory,
    /// Not taken: a TCP segment of a connection this kernel does not have, while
    /// [`NetBackend::own_only`] is set. The backend may pass it on to the kernel that has it.
    Foreign,
}

/// A host-side network device. The methods run on kernel context (the calling thread holds
/// the kernel's only CPU): they must not block and must not call into the kernel.
pub trait NetBackend: Send + Sync + 'static {
    /// Sends the packets of `batch` (one, or several the kernel had at once); returns how
    /// many the host took, the others count as dropped by the device.
    fn tx(&self, batch: &TxBatch<'_>) -> usize;
    /// Hands up to `budget` waiting packets to `deliver`, in order, each with its
    /// virtio_net_hdr; returns how many it took. `deliver` copies the packet into the kernel
    /// and says [`Delivery::NoMemory`] when the kernel has none for it now: the backend then
    /// stops and keeps that packet for its next call.
    fn rx(
        &self,
        budget: usize,
        deliver: &mut dyn FnMut(&[u8; VNET_HDR_LEN], &[u8]) -> Delivery,
    ) -> Result<usize, Errno>;
    /// rx found nothing more and the kernel stopped polling: trigger the device's irq once a
    /// packet waits (and not before: an irq while the kernel polls is lost work, not a bug).
    fn rx_arm(&self);
    /// Whether tx takes TCP GSO packets (up to 64 KiB) and partial checksums, finished by the
    /// host as `vnet_hdr` says (LKL_NETDEV_TSO); asked once, at registration.
    fn tso(&self) -> bool {
        false
    }
    /// A flag the kernel reads at every received packet, if the backend has one: while it is
    /// non-zero, TCP segments of connections the kernel does not have are given back unseen
    /// ([`Delivery::Foreign`]; SYNs of new ones excepted). Asked once, at registration; it
    /// must live as long as the backend.
    fn own_only(&self) -> Option<&AtomicI32> {
        None
    }
}

/// The interrupt announcing received packets of one device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Irq(c_int);

impl Irq {
    /// Raises the interrupt; callable from any host thread, also one that never made a
    /// system call.
    pub fn trigger(self) {
        // SAFETY: the irq was handed out by lkl_netdev_add for a device that stays registered
        // until halt; lkl_trigger_irq takes any thread.
        let rc = unsafe { sys::lkl_trigger_irq(self.0) };
        if rc < 0 {
            log::error!(target: "lkl", "lkl_trigger_irq({}): {}", self.0, Errno(-rc));
        }
    }
}

/// A registered device: its kernel name and index, and its rx interrupt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetDev {
    pub name: String,
    pub ifindex: i32,
    pub irq: Irq,
}

/// What the kernel holds a pointer to. `raw` comes first so that the `*mut lkl_netdev` the
/// kernel passes back is also a pointer to the whole `Device` (repr(C)).
#[repr(C)]
struct Device<B: NetBackend> {
    raw: sys::lkl_netdev,
    ops: sys::lkl_netdev_ops,
    backend: Arc<B>,
}

/// Runs `body`, turning a panic into `on_panic` (a panic must not unwind into C).
fn no_unwind<R>(op: &str, on_panic: R, body: impl FnOnce() -> R) -> R {
    panic::catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        log::error!(target: "lkl", "net backend {op} panicked");
        on_panic
    })
}

/// # Safety
/// `nd` must be the `raw` field of a live `Device<B>` (what `netdev_add` registered).
unsafe fn backend<'a, B: NetBackend>(nd: *mut sys::lkl_netdev) -> &'a B {
    // SAFETY: the caller guarantees nd is the first field of a leaked (never freed)
    // Device<B>, so the cast pointer is valid and shared access is all we do.
    unsafe { &(*nd.cast::<Device<B>>()).backend }
}

/// # Safety
/// `v` describes memory valid for reading for the duration of the borrow.
unsafe fn bytes<'a>(v: &sys::lkl_iovec) -> &'a [u8] {
    if v.iov_len == 0 {
        return &[];
    }
    // SAFETY: per the contract above.
    unsafe { std::slice::from_raw_parts(v.iov_base.cast::<u8>(), v.iov_len as usize) }
}

/// Most pieces a packet comes in (the kernel's MAX_SKB_FRAGS plus the linear part).
pub(crate) const MAX_PIECES: usize = 32;

/// Packets the kernel sends in one call: each a virtio_net_hdr and its pieces.
pub struct TxBatch<'a> {
    iov: &'a [sys::lkl_iovec],
    cnt: &'a [c_int],
}

/// One packet of a [`TxBatch`].
pub struct TxPacket<'a> {
    /// Its virtio_net_hdr ([`VNET_HDR_LEN`] bytes).
    pub vnet_hdr: &'a [u8],
    pieces: &'a [sys::lkl_iovec],
}

impl<'a> TxBatch<'a> {
    /// # Safety
    /// `cnt` points to `n` counts and `iov` to as many iovecs as they add up to, each
    /// describing memory readable for `'a`.
    unsafe fn new(iov: *const sys::lkl_iovec, cnt: *const c_int, n: c_int) -> Option<Self> {
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n > 0 && !cnt.is_null() && !iov.is_null())?;
        // SAFETY: the caller guarantees n counts at cnt.
        let cnt = unsafe { std::slice::from_raw_parts(cnt, n) };
        let mut total = 0usize;
        for &c in cnt {
            // A header and at most MAX_PIECES pieces each.
            let c = usize::try_from(c)
                .ok()
                .filter(|&c| (1..=1 + MAX_PIECES).contains(&c))?;
            total += c;
        }
        // SAFETY: the caller guarantees the counts' sum of iovecs at iov.
        let iov = unsafe { std::slice::from_raw_parts(iov, total) };
        Some(TxBatch { iov, cnt })
    }

    pub fn len(&self) -> usize {
        self.cnt.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cnt.is_empty()
    }

    pub fn packets(&self) -> impl Iterator<Item = TxPacket<'a>> + '_ {
        let mut rest = self.iov;
        self.cnt.iter().map(move |&c| {
            let (mine, after) = rest.split_at(c as usize);
            rest = after;
            TxPacket {
                // SAFETY: TxBatch::new's contract: every iovec is readable for 'a.
                vnet_hdr: unsafe { bytes(&mine[0]) },
                pieces: &mine[1..],
            }
        })
    }
}

impl<'a> TxPacket<'a> {
    /// The packet's pieces in order (the IP header starts the first).
    pub fn pieces(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        // SAFETY: TxBatch::new's contract: every iovec is readable for 'a.
        self.pieces.iter().map(|v| unsafe { bytes(v) })
    }

    pub fn piece_count(&self) -> usize {
        self.pieces.len()
    }
}

unsafe extern "C" fn tx_trampoline<B: NetBackend>(
    nd: *mut sys::lkl_netdev,
    iov: *const sys::lkl_iovec,
    cnt: *const c_int,
    n: c_int,
) -> c_int {
    no_unwind("tx", 0, || {
        // SAFETY: the kernel calls tx with the device it registered, n counts at cnt and
        // their sum of iovecs at iov, each describing memory it keeps alive and unchanged
        // during the call.
        let (b, batch) = unsafe { (backend::<B>(nd), TxBatch::new(iov, cnt, n)) };
        match batch {
            Some(batch) => c_int::try_from(b.tx(&batch)).unwrap_or(0),
            None => 0,
        }
    })
}

unsafe extern "C" fn rx_trampoline<B: NetBackend>(
    nd: *mut sys::lkl_netdev,
    budget: c_int,
    deliver: sys::lkl_netdev_deliver_t,
    ctx: *mut c_void,
) -> c_int {
    no_unwind("rx", -(Errno::EIO.0), || {
        // SAFETY: the kernel calls rx with the device it registered.
        let b = unsafe { backend::<B>(nd) };
        let Some(deliver) = deliver else {
            return -(Errno::EINVAL.0);
        };
        let mut to_kernel = |hdr: &[u8; VNET_HDR_LEN], packet: &[u8]| {
            let Ok(len) = u32::try_from(packet.len()) else {
                return Delivery::Taken;
            };
            // SAFETY: deliver is the kernel's callback for this poll with its ctx; it only
            // reads the header and the packet, which are live for the call.
            let rc = unsafe { deliver(ctx, hdr.as_ptr().cast(), packet.as_ptr().cast(), len) };
            match rc {
                rc if rc == -(Errno::ENOMEM.0) => Delivery::NoMemory,
                rc if rc == sys::LKL_NETDEV_FOREIGN as c_int => Delivery::Foreign,
                _ => Delivery::Taken,
            }
        };
        match b.rx(usize::try_from(budget).unwrap_or(0), &mut to_kernel) {
            Ok(n) => c_int::try_from(n).unwrap_or(c_int::MAX),
            Err(e) => -e.0,
        }
    })
}

unsafe extern "C" fn rx_arm_trampoline<B: NetBackend>(nd: *mut sys::lkl_netdev) {
    no_unwind("rx_arm", (), || {
        // SAFETY: the kernel calls rx_arm with the device it registered.
        unsafe { backend::<B>(nd) }.rx_arm()
    })
}

impl Kernel {
    /// Registers a host-backed device (down, without address) named `name` (`eth%d` when
    /// None) whose packets are at most `mtu` bytes. The kernel keeps the backend until halt
    /// (the registration is never undone: Linux unregisters devices only at shutdown here).
    pub fn netdev_add<B: NetBackend>(
        &self,
        name: Option<&str>,
        mtu: u32,
        backend: Arc<B>,
    ) -> Result<NetDev, Errno> {
        let c_name = name
            .map(|n| CString::new(n).map_err(|_| Errno::EINVAL))
            .transpose()?;
        let device = Box::new(Device {
            raw: sys::lkl_netdev {
                ops: ptr::null(),
                mtu,
                offloads: if backend.tso() {
                    sys::LKL_NETDEV_TSO
                } else {
                    0
                },
                irq: -1,
                own_only: backend
                    .own_only()
                    .map_or(ptr::null(), |flag| flag.as_ptr().cast_const()),
            },
            ops: sys::lkl_netdev_ops {
                tx: Some(tx_trampoline::<B>),
                rx: Some(rx_trampoline::<B>),
                rx_arm: Some(rx_arm_trampoline::<B>),
            },
            backend,
        });
        // Leaked on purpose: the kernel holds the pointer until halt, and a device cannot be
        // removed before. One allocation per device for the life of the process.
        let device: *mut Device<B> = Box::into_raw(device);
        // SAFETY: device was just allocated and is not shared yet.
        let raw = unsafe {
            (*device).raw.ops = ptr::addr_of!((*device).ops);
            ptr::addr_of_mut!((*device).raw)
        };
        // SAFETY: raw points to a leaked Device whose ops table lives in the same allocation;
        // the name is NUL-terminated and only read during the call.
        let rc = unsafe {
            sys::lkl_netdev_add(raw, c_name.as_ref().map_or(ptr::null(), |n| n.as_ptr()))
        };
        if rc < 0 {
            return Err(Errno(-rc));
        }
        // SAFETY: lkl_netdev_add returned, so it no longer writes to the device; irq was set.
        let irq = unsafe { (*raw).irq };
        let ifindex = rc;
        let name = self.interface_name(ifindex)?;
        Ok(NetDev {
            name,
            ifindex,
            irq: Irq(irq),
        })
    }
}
