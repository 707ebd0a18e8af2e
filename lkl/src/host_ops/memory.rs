//! Memory: the kernel's allocations (its RAM from mmap, the rest from malloc) and its
//! memcpy/memmove/memset.

use std::collections::BTreeMap;
use std::ffi::{c_int, c_ulong, c_void};

use std::sync::Mutex;

use super::no_unwind;
use crate::locks::lock;

/// From this size on, memory comes from mmap: the kernel asks for all its RAM at once, and
/// untouched pages of an anonymous mapping cost no RSS.
const MMAP_THRESHOLD: usize = 1 << 20;

/// Start address -> length of the mmap'ed allocations (munmap needs the length).
pub(super) static MAPPINGS: Mutex<BTreeMap<usize, usize>> = Mutex::new(BTreeMap::new());

pub(super) unsafe extern "C" fn mem_alloc(size: c_ulong) -> *mut c_void {
    no_unwind("mem_alloc", || {
        let Ok(size) = usize::try_from(size) else {
            return std::ptr::null_mut();
        };
        if size < MMAP_THRESHOLD {
            // SAFETY: malloc has no preconditions; NULL on failure is what the ABI wants.
            return unsafe { libc::malloc(size) };
        }
        // SAFETY: a fresh private anonymous mapping aliases nothing.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return std::ptr::null_mut();
        }
        lock(&MAPPINGS).insert(addr as usize, size);
        addr
    })
}

pub(super) unsafe extern "C" fn mem_free(addr: *mut c_void) {
    no_unwind("mem_free", || {
        if addr.is_null() {
            return;
        }
        let mapped = lock(&MAPPINGS).remove(&(addr as usize));
        match mapped {
            // SAFETY: exactly the mapping mem_alloc made, freed once by the kernel.
            Some(len) => unsafe {
                libc::munmap(addr, len);
            },
            // SAFETY: not a mapping, so it came from malloc in mem_alloc, freed once.
            None => unsafe { libc::free(addr) },
        }
    })
}

// The C library's, which pick the machine's fastest instructions. They cannot panic.

pub(super) unsafe extern "C" fn memcpy(
    dst: *mut c_void,
    src: *const c_void,
    n: c_ulong,
) -> *mut c_void {
    // SAFETY: the kernel passes what memcpy(3) requires: n bytes valid at each, no overlap.
    unsafe { libc::memcpy(dst, src, n as usize) }
}

pub(super) unsafe extern "C" fn memmove(
    dst: *mut c_void,
    src: *const c_void,
    n: c_ulong,
) -> *mut c_void {
    // SAFETY: the kernel passes n bytes valid at each; memmove allows overlap.
    unsafe { libc::memmove(dst, src, n as usize) }
}

pub(super) unsafe extern "C" fn memset(s: *mut c_void, c: c_int, n: c_ulong) -> *mut c_void {
    // SAFETY: the kernel passes n writable bytes at s.
    unsafe { libc::memset(s, c, n as usize) }
}

#[cfg(test)]
mod tests {
    use std::ffi::c_ulong;

    use super::*;
    use crate::host_ops::{op, OPS};

    fn rss_kib() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn big_allocations_cost_no_rss_until_touched() {
        let size: usize = 256 << 20;
        let before = rss_kib();
        // SAFETY: allocation and free pair as the kernel would use them.
        unsafe {
            let big = op(OPS.mem_alloc)(size as c_ulong).cast::<u8>();
            assert!(!big.is_null());
            assert!(
                rss_kib() < before + 16 * 1024,
                "256 MiB untouched must not be resident"
            );
            big.write(1);
            big.add(size - 1).write(2);
            assert_eq!(big.add(size - 1).read(), 2);
            op(OPS.mem_free)(big.cast());
            let small = op(OPS.mem_alloc)(100).cast::<u8>();
            assert!(!small.is_null());
            small.add(99).write(3);
            op(OPS.mem_free)(small.cast());
        }
        assert!(lock(&MAPPINGS).is_empty(), "the mapping is gone after free");
    }
}
