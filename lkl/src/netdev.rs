//! Network devices backed by the host: a Rust trait for the device's tx/rx/rx_arm and their
//! registration with the kernel (`lkl_netdev_add`).
//!
//! The kernel's device is L3 point-to-point (no link-layer header, no ARP): every packet is a
//! bare IPv4/IPv6 packet accompanied by a `struct virtio_net_hdr` carrying offload metadata.
//! rx is interrupt driven: the device starts "armed"; the backend raises [`Irq::trigger`] once
//! a packet waits, the kernel pulls packets with [`NetBackend::rx`] until it returns EAGAIN,
//! then calls [`NetBackend::rx_arm`] and waits for the next interrupt.

use std::ffi::{c_int, CString};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;
use std::sync::Arc;

use crate::{sys, Errno, Kernel};

/// Size of `struct virtio_net_hdr` (linux/virtio_net.h), the first iovec of every packet.
pub const VNET_HDR_LEN: usize = 10;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the packet's checksum was verified by the host.
pub const VNET_HDR_F_DATA_VALID: u8 = 2;

/// A host-side network device. The methods run on kernel context (the calling thread holds
/// the kernel's only CPU): they must not block and must not call into the kernel.
pub trait NetBackend: Send + Sync + 'static {
    /// Sends one packet, given as `packet`'s pieces in order (the IP header starts the
    /// first). `vnet_hdr` is its virtio_net_hdr ([`VNET_HDR_LEN`] bytes). An error counts the
    /// packet as dropped by the device.
    fn tx(&self, vnet_hdr: &[u8], packet: &[&[u8]]) -> Result<(), Errno>;
    /// Receives one packet into `packet` and its virtio_net_hdr into `vnet_hdr`. Returns the
    /// packet's length; `Err(EAGAIN)` when no packet is waiting. A packet longer than
    /// `packet.len()` (up to 65535 bytes) is kept and its length returned: the next call, with
    /// a buffer that large, gets it, or drops it when the buffer is still too small.
    fn rx(&self, vnet_hdr: &mut [u8], packet: &mut [u8]) -> Result<usize, Errno>;
    /// rx returned EAGAIN and the kernel stopped polling: trigger the device's irq once a
    /// packet waits (and not before: an irq while the kernel polls is lost work, not a bug).
    fn rx_arm(&self);
    /// Whether tx takes TCP GSO packets (up to 64 KiB) and partial checksums, finished by the
    /// host as `vnet_hdr` says (LKL_NETDEV_TSO); asked once, at registration.
    fn tso(&self) -> bool {
        false
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
/// The kernel's iovec contract: `cnt` iovecs at `iov`, each valid for its length.
unsafe fn iovecs<'a>(iov: *const sys::lkl_iovec, cnt: c_int) -> Option<&'a [sys::lkl_iovec]> {
    if iov.is_null() || cnt < 2 {
        return None;
    }
    // SAFETY: the caller guarantees cnt iovecs at iov.
    Some(unsafe { std::slice::from_raw_parts(iov, cnt as usize) })
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

unsafe extern "C" fn tx_trampoline<B: NetBackend>(
    nd: *mut sys::lkl_netdev,
    iov: *const sys::lkl_iovec,
    cnt: c_int,
) -> c_int {
    no_unwind("tx", -(Errno::EIO.0), || {
        // SAFETY: the kernel calls tx with the device it registered and its iovecs.
        let (b, iov) = unsafe { (backend::<B>(nd), iovecs(iov, cnt)) };
        let Some(iov) = iov.filter(|v| v.len() <= 1 + MAX_PIECES) else {
            return -(Errno::EINVAL.0);
        };
        let mut pieces: [&[u8]; MAX_PIECES] = [&[]; MAX_PIECES];
        // SAFETY: each iovec describes readable kernel memory (the header on the kernel's
        // stack, the skb's data and fragments) for the duration of the call.
        let hdr = unsafe { bytes(&iov[0]) };
        for (piece, v) in pieces.iter_mut().zip(&iov[1..]) {
            // SAFETY: as above.
            *piece = unsafe { bytes(v) };
        }
        match b.tx(hdr, &pieces[..iov.len() - 1]) {
            Ok(()) => 0,
            Err(e) => -e.0,
        }
    })
}

unsafe extern "C" fn rx_trampoline<B: NetBackend>(
    nd: *mut sys::lkl_netdev,
    iov: *mut sys::lkl_iovec,
    cnt: c_int,
) -> c_int {
    no_unwind("rx", -(Errno::EIO.0), || {
        // SAFETY: the kernel calls rx with the device it registered and its two iovecs.
        let (b, iov) = unsafe { (backend::<B>(nd), iovecs(iov, cnt)) };
        let Some(iov) = iov else {
            return -(Errno::EINVAL.0);
        };
        // SAFETY: each iovec describes writable kernel memory (a header on the kernel's
        // stack, the new skb's data) that nothing else touches during the call; the two do
        // not overlap.
        let (hdr, packet) = unsafe {
            (
                std::slice::from_raw_parts_mut(
                    iov[0].iov_base.cast::<u8>(),
                    iov[0].iov_len as usize,
                ),
                std::slice::from_raw_parts_mut(
                    iov[1].iov_base.cast::<u8>(),
                    iov[1].iov_len as usize,
                ),
            )
        };
        match b.rx(hdr, packet) {
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
