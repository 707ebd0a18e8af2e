//! Threads: the kernel's, started with every signal blocked and joined at halt, and the
//! library's own (the packet backend's, the timers').

use std::ffi::c_void;
use std::thread::{self, JoinHandle};

use std::sync::Mutex;

use super::no_unwind;
use crate::locks::lock;
use crate::sys;

/// Starts a thread of the library's with every signal blocked (it inherits the mask set
/// around the spawn): a program's signal handlers must run on the program's own threads, and
/// interrupt their waits, never land on a kernel or timer thread.
pub(crate) fn spawn_library_thread<F, T>(name: &str, f: F) -> std::io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // SAFETY: sigfillset fills a local set; pthread_sigmask swaps the calling thread's mask
    // with valid set pointers and is restored right after the spawn.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let spawned = thread::Builder::new().name(name.into()).spawn(f);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        spawned
    }
}

/// Every thread started for the kernel, so `Kernel::halt` can wait for all of them.
pub(super) static THREADS: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// A kernel thread body: a C function and its argument.
struct KernelFn {
    func: unsafe extern "C" fn(*mut c_void),
    arg: *mut c_void,
}

// SAFETY: the kernel creates threads precisely to run func(arg) on another host thread; the
// argument is the kernel's to share.
unsafe impl Send for KernelFn {}

impl KernelFn {
    fn run(self) {
        // SAFETY: the kernel asked for exactly this call on a new thread.
        unsafe { (self.func)(self.arg) }
    }
}

pub(super) unsafe extern "C" fn thread_create(
    func: Option<unsafe extern "C" fn(*mut c_void)>,
    arg: *mut c_void,
) -> sys::lkl_thread_t {
    no_unwind("thread_create", || {
        let Some(func) = func else { return 0 };
        let body = KernelFn { func, arg };
        let mut threads = lock(&THREADS);
        // Kernel threads come and go (workers); join the finished ones so the list stays short.
        let (finished, running): (Vec<_>, Vec<_>) =
            threads.drain(..).partition(|t| t.is_finished());
        *threads = running;
        for t in finished {
            join(t);
        }
        match spawn_library_thread("lkl-kthread", move || body.run()) {
            Ok(handle) => {
                let id = std::os::unix::thread::JoinHandleExt::as_pthread_t(&handle);
                threads.push(handle);
                id as sys::lkl_thread_t
            }
            Err(e) => {
                log::error!(target: "lkl", "cannot start a kernel thread: {e}");
                0
            }
        }
    })
}

/// Waits for every thread started for the kernel, including any they start meanwhile.
pub(crate) fn join_kernel_threads() {
    loop {
        let threads = std::mem::take(&mut *lock(&THREADS));
        if threads.is_empty() {
            return;
        }
        for t in threads {
            join(t);
        }
    }
}

pub(super) fn join(thread: JoinHandle<()>) {
    // A kernel thread runs C code, which cannot panic; a failed join is only logged.
    if thread.join().is_err() {
        log::error!(target: "lkl", "a kernel thread panicked");
    }
}

pub(super) unsafe extern "C" fn thread_yield() {
    // SAFETY: sched_yield has no preconditions.
    no_unwind("thread_yield", || unsafe {
        libc::sched_yield();
    })
}

pub(super) unsafe extern "C" fn thread_self() -> sys::lkl_thread_t {
    // SAFETY: pthread_self has no preconditions; pthread_t is an unsigned long on Linux, the
    // same value `thread_create` returns for the thread.
    no_unwind("thread_self", || unsafe { libc::pthread_self() }
        as sys::lkl_thread_t)
}

#[cfg(test)]
mod tests {
    use std::ffi::c_void;
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::host_ops::{op, OPS};

    unsafe extern "C" fn record_thread(arg: *mut c_void) {
        // SAFETY: the test passes a live Sender and waits for the message.
        let tx = unsafe { &*arg.cast::<mpsc::Sender<sys::lkl_thread_t>>() };
        // SAFETY: no preconditions.
        tx.send(unsafe { op(OPS.thread_self)() }).unwrap();
    }

    #[test]
    fn kernel_threads_are_tracked_and_identified() {
        let (tx, rx) = mpsc::channel();
        let arg = (&tx as *const mpsc::Sender<_>).cast_mut().cast::<c_void>();
        // SAFETY: `tx` outlives the thread: the message is received before returning.
        let id = unsafe { op(OPS.thread_create)(Some(record_thread), arg) };
        assert_ne!(id, 0);
        let seen: sys::lkl_thread_t = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(
            seen, id,
            "thread_self in the new thread matches thread_create's handle"
        );
        // SAFETY: no preconditions.
        assert_ne!(unsafe { op(OPS.thread_self)() }, id);
        join_kernel_threads();
        assert!(lock(&THREADS).is_empty());
    }
}
