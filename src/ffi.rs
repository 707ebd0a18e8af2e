//! The one place where results become C return values and `errno`, and where a Rust panic is
//! stopped before it could unwind into C.

use std::ffi::{c_int, c_long};
use std::panic::{self, AssertUnwindSafe};

use lkl::Errno;

use crate::host;

pub type SysResult<T> = Result<T, Errno>;

/// A C return value: `-1` for errors.
pub trait CReturn: Copy {
    const FAILED: Self;
}

impl CReturn for c_int {
    const FAILED: c_int = -1;
}

impl CReturn for isize {
    const FAILED: isize = -1;
}

impl CReturn for i64 {
    const FAILED: i64 = -1;
}

/// Runs a hook's body: `Ok(v)` returns v, `Err(e)` sets errno to e and returns -1. A panic
/// (a bug of ours) is reported on stderr and becomes EIO, never an unwind into the caller.
///
/// A successful call leaves errno as it found it, as glibc's do: the library's own host calls
/// on the way (draining an eventfd, say) may have set it.
pub fn hook<T: CReturn>(name: &'static str, body: impl FnOnce() -> SysResult<T>) -> T {
    let saved = host::errno();
    match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => {
            host::set_errno(saved);
            v
        }
        Ok(Err(Errno(e))) => {
            host::set_errno(e);
            T::FAILED
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            host::write_stderr(
                format!("lkl-hijack: internal error in {name}(): {what}\n").as_bytes(),
            );
            host::set_errno(libc::EIO);
            T::FAILED
        }
    }
}

/// A host call's C return value as a result (`-1` means errno).
pub fn host_result<T: CReturn + PartialEq>(ret: T) -> SysResult<T> {
    if ret == T::FAILED {
        Err(Errno(host::errno()))
    } else {
        Ok(ret)
    }
}

/// A kernel call's `long` as the C type of the hook.
pub fn narrow<T: TryFrom<c_long>>(r: SysResult<c_long>) -> SysResult<T> {
    r.map(|v| T::try_from(v).unwrap_or_else(|_| panic!("kernel returned out-of-range {v}")))
}

/// Reads a `T` the program handed in; EFAULT if the pointer is bad (instead of a crash).
pub fn read_user<T: Copy>(p: *const T) -> SysResult<T> {
    let mut v = std::mem::MaybeUninit::<T>::uninit();
    if p.is_null() {
        return Err(Errno::EFAULT);
    }
    // SAFETY: the destination is our own T-sized buffer; the source is the program's
    // pointer, which the guarded copy may find bad. T is Copy (plain data).
    let copied =
        unsafe { lkl::copy_guarded(v.as_mut_ptr().cast(), p.cast(), std::mem::size_of::<T>()) };
    if !copied {
        return Err(Errno::EFAULT);
    }
    // SAFETY: fully written by the copy.
    Ok(unsafe { v.assume_init() })
}

/// Reads `n` `T`s the program handed in.
pub fn read_user_slice<T: Copy>(p: *const T, n: usize) -> SysResult<Vec<T>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut v: Vec<T> = Vec::with_capacity(n);
    let bytes = n
        .checked_mul(std::mem::size_of::<T>())
        .ok_or(Errno::EINVAL)?;
    // SAFETY: as in read_user, into the vector's spare capacity of n elements.
    if p.is_null() || !unsafe { lkl::copy_guarded(v.as_mut_ptr().cast(), p.cast(), bytes) } {
        return Err(Errno::EFAULT);
    }
    // SAFETY: n elements were written.
    unsafe { v.set_len(n) };
    Ok(v)
}

/// Writes `values` to where the program pointed.
pub fn write_user_slice<T: Copy>(p: *mut T, values: &[T]) -> SysResult<()> {
    if values.is_empty() {
        return Ok(());
    }
    if p.is_null() {
        return Err(Errno::EFAULT);
    }
    let len = std::mem::size_of_val(values);
    // SAFETY: the source is our own slice; the destination the program's pointer, which the
    // guarded copy may find bad.
    let copied = unsafe { lkl::copy_guarded(p.cast(), values.as_ptr().cast(), len) };
    if !copied {
        return Err(Errno::EFAULT);
    }
    Ok(())
}
