//! The host side of the kernel: every operation of `struct lkl_host_ops`, implemented with std
//! threads, parking_lot and libc.
//!
//! These functions may later run inside an LD_PRELOAD library that interposes libc's socket,
//! epoll, read and write functions. They therefore use only threads, locks, clocks and memory
//! calls, never file descriptors, so nothing here can recurse into those hooks.
//!
//! Each op is an `extern "C"` function called from kernel C code; none may unwind into it, so
//! each body runs under [`no_unwind`], which aborts on the (impossible) panic.

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_ulong, c_ulonglong, c_void};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::Level;
use parking_lot::lock_api::RawMutex as _;
use parking_lot::{Condvar, Mutex, MutexGuard, RawMutex};

use crate::sys;

/// The table handed to `lkl_start_kernel`.
pub(crate) static OPS: sys::lkl_host_ops = sys::lkl_host_ops {
    print: Some(print),
    panic: Some(kernel_panic),
    sem_alloc: Some(sem_alloc),
    sem_free: Some(sem_free),
    sem_up: Some(sem_up),
    sem_down: Some(sem_down),
    mutex_alloc: Some(mutex_alloc),
    mutex_free: Some(mutex_free),
    mutex_lock: Some(mutex_lock),
    mutex_unlock: Some(mutex_unlock),
    thread_create: Some(thread_create),
    thread_self: Some(thread_self),
    tls_alloc: Some(tls_alloc),
    tls_free: Some(tls_free),
    tls_set: Some(tls_set),
    tls_get: Some(tls_get),
    mem_alloc: Some(mem_alloc),
    mem_free: Some(mem_free),
    time_ns: Some(time_ns),
    timer_alloc: Some(timer_alloc),
    timer_set_oneshot: Some(timer_set_oneshot),
    timer_free: Some(timer_free),
    copy_user: Some(crate::fault::copy_user),
    memcpy: Some(memcpy),
    memmove: Some(memmove),
    memset: Some(memset),
};

// The C library's, which pick the machine's fastest instructions. They cannot panic.

unsafe extern "C" fn memcpy(dst: *mut c_void, src: *const c_void, n: c_ulong) -> *mut c_void {
    // SAFETY: the kernel passes what memcpy(3) requires: n bytes valid at each, no overlap.
    unsafe { libc::memcpy(dst, src, n as usize) }
}

unsafe extern "C" fn memmove(dst: *mut c_void, src: *const c_void, n: c_ulong) -> *mut c_void {
    // SAFETY: the kernel passes n bytes valid at each; memmove allows overlap.
    unsafe { libc::memmove(dst, src, n as usize) }
}

unsafe extern "C" fn memset(s: *mut c_void, c: c_int, n: c_ulong) -> *mut c_void {
    // SAFETY: the kernel passes n writable bytes at s.
    unsafe { libc::memset(s, c, n as usize) }
}

/// Runs an op's body; a panic cannot cross into C, so it ends the process with a message.
fn no_unwind<R>(op: &str, body: impl FnOnce() -> R) -> R {
    match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(_) => {
            log::error!(target: "lkl", "host op {op} panicked; aborting");
            std::process::abort();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Console

/// Kernel output not yet ended by a newline: printk hands lines over in pieces.
static CONSOLE: Mutex<Vec<u8>> = Mutex::new(Vec::new());

unsafe extern "C" fn print(text: *const c_char, len: c_int) {
    no_unwind("print", || {
        let Ok(len) = usize::try_from(len) else {
            return;
        };
        if text.is_null() || len == 0 {
            return;
        }
        // SAFETY: the kernel passes `len` readable bytes at `text` for the duration of the call.
        let bytes = unsafe { std::slice::from_raw_parts(text.cast::<u8>(), len) };
        let mut pending = CONSOLE.lock();
        pending.extend_from_slice(bytes);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            log_kernel_line(&line[..end]);
        }
    })
}

/// Logs what is left of an unfinished console line (at halt or panic).
pub(crate) fn flush_console() {
    let rest = std::mem::take(&mut *CONSOLE.lock());
    if !rest.is_empty() {
        log_kernel_line(&rest);
    }
}

fn log_kernel_line(line: &[u8]) {
    let line = String::from_utf8_lossy(line);
    let (level, text) = printk_level(&line);
    log::log!(target: "lkl::kernel", level, "{text}");
}

/// Maps a printk level prefix ("<3>...") to a log level; unprefixed lines are info.
fn printk_level(line: &str) -> (Level, &str) {
    let b = line.as_bytes();
    if b.len() >= 3 && b[0] == b'<' && b[2] == b'>' && b[1].is_ascii_digit() {
        let level = match b[1] - b'0' {
            0..=3 => Level::Error,
            4 => Level::Warn,
            5 | 6 => Level::Info,
            _ => Level::Debug,
        };
        (level, &line[3..])
    } else {
        (Level::Info, line)
    }
}

unsafe extern "C" fn kernel_panic() {
    no_unwind("panic", || {
        flush_console();
        log::error!(target: "lkl::kernel", "kernel panic: aborting the process");
        log::logger().flush();
    });
    std::process::abort();
}

// ---------------------------------------------------------------------------------------------
// Semaphores and mutexes

struct Semaphore {
    count: Mutex<i64>,
    wakeup: Condvar,
}

unsafe extern "C" fn sem_alloc(count: c_int) -> *mut sys::lkl_sem {
    no_unwind("sem_alloc", || {
        let sem = Semaphore {
            count: Mutex::new(i64::from(count)),
            wakeup: Condvar::new(),
        };
        Box::into_raw(Box::new(sem)).cast()
    })
}

/// # Safety
/// `sem` must come from `sem_alloc` and not be freed yet.
unsafe fn semaphore<'a>(sem: *mut sys::lkl_sem) -> &'a Semaphore {
    // SAFETY: per this function's contract the pointer is a live Box<Semaphore>.
    unsafe { &*sem.cast::<Semaphore>() }
}

unsafe extern "C" fn sem_free(sem: *mut sys::lkl_sem) {
    no_unwind("sem_free", || {
        if !sem.is_null() {
            // SAFETY: the kernel frees each semaphore from sem_alloc once, when no thread uses it.
            drop(unsafe { Box::from_raw(sem.cast::<Semaphore>()) });
        }
    })
}

unsafe extern "C" fn sem_up(sem: *mut sys::lkl_sem) {
    no_unwind("sem_up", || {
        // SAFETY: the kernel only passes semaphores it allocated and has not freed.
        let sem = unsafe { semaphore(sem) };
        *sem.count.lock() += 1;
        sem.wakeup.notify_one();
    })
}

unsafe extern "C" fn sem_down(sem: *mut sys::lkl_sem) {
    no_unwind("sem_down", || {
        // SAFETY: as in sem_up.
        let sem = unsafe { semaphore(sem) };
        let mut count = sem.count.lock();
        while *count <= 0 {
            sem.wakeup.wait(&mut count);
        }
        *count -= 1;
    })
}

unsafe extern "C" fn mutex_alloc() -> *mut sys::lkl_mutex {
    no_unwind("mutex_alloc", || {
        Box::into_raw(Box::new(RawMutex::INIT)).cast()
    })
}

/// # Safety
/// `mutex` must come from `mutex_alloc` and not be freed yet.
unsafe fn raw_mutex<'a>(mutex: *mut sys::lkl_mutex) -> &'a RawMutex {
    // SAFETY: per this function's contract the pointer is a live Box<RawMutex>.
    unsafe { &*mutex.cast::<RawMutex>() }
}

unsafe extern "C" fn mutex_free(mutex: *mut sys::lkl_mutex) {
    no_unwind("mutex_free", || {
        if !mutex.is_null() {
            // SAFETY: the kernel frees each mutex from mutex_alloc once, unlocked and unused.
            drop(unsafe { Box::from_raw(mutex.cast::<RawMutex>()) });
        }
    })
}

unsafe extern "C" fn mutex_lock(mutex: *mut sys::lkl_mutex) {
    // SAFETY: the kernel only passes mutexes it allocated and has not freed.
    no_unwind("mutex_lock", || unsafe { raw_mutex(mutex) }.lock())
}

unsafe extern "C" fn mutex_unlock(mutex: *mut sys::lkl_mutex) {
    no_unwind("mutex_unlock", || {
        // SAFETY: a live mutex (as above), and the ABI's non-recursive mutex is only unlocked
        // by the thread that locked it, which is what RawMutex::unlock requires.
        unsafe { raw_mutex(mutex).unlock() }
    })
}

// ---------------------------------------------------------------------------------------------
// Threads

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
static THREADS: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

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

unsafe extern "C" fn thread_create(
    func: Option<unsafe extern "C" fn(*mut c_void)>,
    arg: *mut c_void,
) -> sys::lkl_thread_t {
    no_unwind("thread_create", || {
        let Some(func) = func else { return 0 };
        let body = KernelFn { func, arg };
        let mut threads = THREADS.lock();
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
        let threads = std::mem::take(&mut *THREADS.lock());
        if threads.is_empty() {
            return;
        }
        for t in threads {
            join(t);
        }
    }
}

fn join(thread: JoinHandle<()>) {
    // A kernel thread runs C code, which cannot panic; a failed join is only logged.
    if thread.join().is_err() {
        log::error!(target: "lkl", "a kernel thread panicked");
    }
}

unsafe extern "C" fn thread_self() -> sys::lkl_thread_t {
    // SAFETY: pthread_self has no preconditions; pthread_t is an unsigned long on Linux, the
    // same value `thread_create` returns for the thread.
    no_unwind("thread_self", || unsafe { libc::pthread_self() }
        as sys::lkl_thread_t)
}

// ---------------------------------------------------------------------------------------------
// Thread-local storage: pthread keys, because the kernel needs a destructor per key that runs
// when a host thread that entered the kernel exits.

unsafe extern "C" fn tls_alloc(
    destructor: Option<unsafe extern "C" fn(*mut c_void)>,
) -> *mut sys::lkl_tls_key {
    no_unwind("tls_alloc", || {
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: `key` is a valid out-pointer; the destructor has the signature pthread wants.
        if unsafe { libc::pthread_key_create(&mut key, destructor) } != 0 {
            return std::ptr::null_mut();
        }
        Box::into_raw(Box::new(key)).cast()
    })
}

/// # Safety
/// `key` must come from `tls_alloc` and not be freed yet.
unsafe fn pthread_key(key: *mut sys::lkl_tls_key) -> libc::pthread_key_t {
    // SAFETY: per this function's contract the pointer is a live Box<pthread_key_t>.
    unsafe { *key.cast::<libc::pthread_key_t>() }
}

unsafe extern "C" fn tls_free(key: *mut sys::lkl_tls_key) {
    no_unwind("tls_free", || {
        if key.is_null() {
            return;
        }
        // SAFETY: a key from tls_alloc, freed once by the kernel; after pthread_key_delete no
        // destructor runs for it, which is what the ABI promises.
        unsafe {
            libc::pthread_key_delete(pthread_key(key));
            drop(Box::from_raw(key.cast::<libc::pthread_key_t>()));
        }
    })
}

unsafe extern "C" fn tls_set(key: *mut sys::lkl_tls_key, data: *mut c_void) -> c_int {
    no_unwind("tls_set", || {
        // SAFETY: a live key from tls_alloc; the value is opaque to pthread.
        match unsafe { libc::pthread_setspecific(pthread_key(key), data) } {
            0 => 0,
            err => -err,
        }
    })
}

unsafe extern "C" fn tls_get(key: *mut sys::lkl_tls_key) -> *mut c_void {
    // SAFETY: a live key from tls_alloc.
    no_unwind("tls_get", || unsafe {
        libc::pthread_getspecific(pthread_key(key))
    })
}

// ---------------------------------------------------------------------------------------------
// Memory

/// From this size on, memory comes from mmap: the kernel asks for all its RAM at once, and
/// untouched pages of an anonymous mapping cost no RSS.
const MMAP_THRESHOLD: usize = 1 << 20;

/// Start address -> length of the mmap'ed allocations (munmap needs the length).
static MAPPINGS: Mutex<BTreeMap<usize, usize>> = Mutex::new(BTreeMap::new());

unsafe extern "C" fn mem_alloc(size: c_ulong) -> *mut c_void {
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
        MAPPINGS.lock().insert(addr as usize, size);
        addr
    })
}

unsafe extern "C" fn mem_free(addr: *mut c_void) {
    no_unwind("mem_free", || {
        if addr.is_null() {
            return;
        }
        let mapped = MAPPINGS.lock().remove(&(addr as usize));
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

// ---------------------------------------------------------------------------------------------
// Time

unsafe extern "C" fn time_ns() -> c_ulonglong {
    no_unwind("time_ns", || {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    })
}

/// A one-shot timer: a host thread that sleeps until the deadline and then calls the kernel.
/// `Instant` is CLOCK_MONOTONIC on Linux, the clock `time_ns` reports.
struct Timer {
    state: Mutex<TimerState>,
    changed: Condvar,
    func: unsafe extern "C" fn(*mut c_void),
    arg: *mut c_void,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct TimerState {
    deadline: Option<Instant>,
    stopped: bool,
}

// SAFETY: `arg` is only handed back to the kernel's `func`, which the ABI runs on a host
// thread of the host's choosing; everything else is behind locks.
unsafe impl Send for Timer {}
// SAFETY: as above.
unsafe impl Sync for Timer {}

/// Timers allocated and not yet freed, so a halt can stop any the kernel left behind.
static TIMERS: Mutex<Vec<Arc<Timer>>> = Mutex::new(Vec::new());

impl Timer {
    fn run(&self) {
        let mut state = self.state.lock();
        loop {
            if state.stopped {
                return;
            }
            match state.deadline {
                None => self.changed.wait(&mut state),
                Some(deadline) if Instant::now() < deadline => {
                    self.changed.wait_until(&mut state, deadline);
                }
                Some(_) => {
                    state.deadline = None;
                    // Unlocked while the kernel runs: its handler re-arms this same timer.
                    // SAFETY: the kernel's callback for this timer, as it asked.
                    MutexGuard::unlocked(&mut state, || unsafe { (self.func)(self.arg) });
                }
            }
        }
    }

    /// Cancels the timer and waits until its callback is not running and never will be.
    fn stop(&self) {
        self.state.lock().stopped = true;
        self.changed.notify_all();
        let Some(thread) = self.thread.lock().take() else {
            return;
        };
        if thread.thread().id() == thread::current().id() {
            log::error!(target: "lkl", "a timer was freed from its own callback; aborting");
            std::process::abort();
        }
        join(thread);
    }
}

unsafe extern "C" fn timer_alloc(
    func: Option<unsafe extern "C" fn(*mut c_void)>,
    arg: *mut c_void,
) -> *mut sys::lkl_timer {
    no_unwind("timer_alloc", || {
        let Some(func) = func else {
            return std::ptr::null_mut();
        };
        let timer = Arc::new(Timer {
            state: Mutex::new(TimerState {
                deadline: None,
                stopped: false,
            }),
            changed: Condvar::new(),
            func,
            arg,
            thread: Mutex::new(None),
        });
        let runner = Arc::clone(&timer);
        match spawn_library_thread("lkl-timer", move || runner.run()) {
            Ok(handle) => *timer.thread.lock() = Some(handle),
            Err(e) => {
                log::error!(target: "lkl", "cannot start a timer thread: {e}");
                return std::ptr::null_mut();
            }
        }
        TIMERS.lock().push(Arc::clone(&timer));
        Arc::into_raw(timer).cast_mut().cast()
    })
}

unsafe extern "C" fn timer_set_oneshot(timer: *mut sys::lkl_timer, delta_ns: c_ulonglong) -> c_int {
    no_unwind("timer_set_oneshot", || {
        // SAFETY: a live timer from timer_alloc (the raw pointer holds one Arc reference).
        let timer = unsafe { &*timer.cast_const().cast::<Timer>() };
        // An expiry beyond Instant's range is as good as never.
        timer.state.lock().deadline = Instant::now().checked_add(Duration::from_nanos(delta_ns));
        timer.changed.notify_all();
        0
    })
}

unsafe extern "C" fn timer_free(timer: *mut sys::lkl_timer) {
    no_unwind("timer_free", || {
        if timer.is_null() {
            return;
        }
        // SAFETY: the reference timer_alloc leaked into the raw pointer; the kernel frees once.
        let timer = unsafe { Arc::from_raw(timer.cast_const().cast::<Timer>()) };
        timer.stop();
        TIMERS.lock().retain(|t| !Arc::ptr_eq(t, &timer));
    })
}

/// Stops the timers the kernel did not free before halting (their callbacks must not enter a
/// halted kernel, and their threads must not outlive it).
pub(crate) fn stop_leftover_timers() {
    let left = std::mem::take(&mut *TIMERS.lock());
    if !left.is_empty() {
        log::debug!(target: "lkl", "stopping {} timer(s) the kernel left armed at halt", left.len());
    }
    for timer in left {
        timer.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    fn op<T>(f: Option<T>) -> T {
        f.expect("every op is set")
    }

    #[test]
    fn printk_levels_map_to_log_levels() {
        assert_eq!(printk_level("<3>oops"), (Level::Error, "oops"));
        assert_eq!(printk_level("<4>careful"), (Level::Warn, "careful"));
        assert_eq!(printk_level("<6>hello"), (Level::Info, "hello"));
        assert_eq!(printk_level("<7>detail"), (Level::Debug, "detail"));
        assert_eq!(printk_level("plain <3>"), (Level::Info, "plain <3>"));
    }

    #[test]
    fn semaphore_counts_and_blocks() {
        // SAFETY (whole test): the ops are called as the kernel would, on live objects.
        unsafe {
            let sem = op(OPS.sem_alloc)(1);
            op(OPS.sem_down)(sem); // the initial count lets one through
            let (tx, rx) = mpsc::channel();
            let sem_addr = sem as usize;
            let waiter = thread::spawn(move || {
                op(OPS.sem_down)(sem_addr as *mut sys::lkl_sem);
                tx.send(()).unwrap();
            });
            assert!(
                rx.recv_timeout(Duration::from_millis(50)).is_err(),
                "sem_down at 0 must block"
            );
            op(OPS.sem_up)(sem);
            rx.recv_timeout(Duration::from_secs(5))
                .expect("sem_up wakes the waiter");
            waiter.join().unwrap();
            op(OPS.sem_free)(sem);
        }
    }

    #[test]
    fn mutex_excludes() {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        // SAFETY: a live mutex used by lock/unlock pairs on the same thread.
        let m = unsafe { op(OPS.mutex_alloc)() } as usize;
        let threads: Vec<_> = (0..4)
            .map(|_| {
                thread::spawn(move || {
                    for _ in 0..10_000 {
                        // SAFETY: as above.
                        unsafe { op(OPS.mutex_lock)(m as *mut sys::lkl_mutex) };
                        // A non-atomic read-modify-write: lost updates if exclusion failed.
                        let v = COUNTER.load(Ordering::Relaxed);
                        COUNTER.store(v + 1, Ordering::Relaxed);
                        // SAFETY: as above.
                        unsafe { op(OPS.mutex_unlock)(m as *mut sys::lkl_mutex) };
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(COUNTER.load(Ordering::Relaxed), 40_000);
        // SAFETY: unlocked and unused now.
        unsafe { op(OPS.mutex_free)(m as *mut sys::lkl_mutex) };
    }

    static TLS_DESTROYED: AtomicUsize = AtomicUsize::new(0);

    unsafe extern "C" fn count_destructor(data: *mut c_void) {
        TLS_DESTROYED.fetch_add(data as usize, Ordering::SeqCst);
    }

    #[test]
    fn tls_is_per_thread_and_destructor_runs_at_exit() {
        // SAFETY: a live key used as the kernel would.
        let key = unsafe { op(OPS.tls_alloc)(Some(count_destructor)) } as usize;
        assert_ne!(key, 0);
        let k = move || key as *mut sys::lkl_tls_key;
        // SAFETY: as above.
        unsafe {
            assert_eq!(op(OPS.tls_set)(k(), 7 as *mut c_void), 0);
            assert_eq!(op(OPS.tls_get)(k()) as usize, 7);
        }
        thread::spawn(move || {
            // SAFETY: as above.
            unsafe {
                assert!(
                    op(OPS.tls_get)(k()).is_null(),
                    "a new thread starts with no value"
                );
                op(OPS.tls_set)(k(), 5 as *mut c_void);
            }
        })
        .join()
        .unwrap();
        assert_eq!(
            TLS_DESTROYED.load(Ordering::SeqCst),
            5,
            "the exiting thread's value was destroyed"
        );
        // SAFETY: as above.
        unsafe {
            assert_eq!(
                op(OPS.tls_get)(k()) as usize,
                7,
                "other threads don't see it"
            );
            op(OPS.tls_set)(k(), std::ptr::null_mut());
            op(OPS.tls_free)(k());
        }
    }

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
        assert!(MAPPINGS.lock().is_empty(), "the mapping is gone after free");
    }

    #[test]
    fn time_is_monotonic_nanoseconds() {
        // SAFETY: no preconditions.
        let (a, b) = unsafe {
            let a = op(OPS.time_ns)();
            thread::sleep(Duration::from_millis(20));
            (a, op(OPS.time_ns)())
        };
        assert!(b - a >= 20_000_000, "{a} -> {b}");
        assert!(b - a < 2_000_000_000, "{a} -> {b}");
    }

    /// Timer callback argument: counts expiries and re-arms itself while `rearm` > 0.
    struct Probe {
        fired: mpsc::Sender<Instant>,
        rearm: AtomicUsize,
        timer: AtomicUsize,
    }

    unsafe extern "C" fn probe_fired(arg: *mut c_void) {
        // SAFETY: the test keeps the probe alive until the timer is freed.
        let probe = unsafe { &*arg.cast::<Probe>() };
        let _ = probe.fired.send(Instant::now());
        if probe.rearm.load(Ordering::SeqCst) > 0 {
            probe.rearm.fetch_sub(1, Ordering::SeqCst);
            // Re-arming from inside the callback must not deadlock.
            // SAFETY: the timer is live while its callback runs.
            unsafe {
                op(OPS.timer_set_oneshot)(
                    probe.timer.load(Ordering::SeqCst) as *mut sys::lkl_timer,
                    1_000_000,
                )
            };
        }
    }

    /// Runs `test` with a live timer whose callback reports to the receiver, then frees the
    /// timer; returns the receiver for checks after the free.
    fn with_timer(
        rearm: usize,
        test: impl FnOnce(*mut sys::lkl_timer, &mpsc::Receiver<Instant>),
    ) -> mpsc::Receiver<Instant> {
        let (tx, rx) = mpsc::channel();
        let probe = Box::new(Probe {
            fired: tx,
            rearm: AtomicUsize::new(rearm),
            timer: AtomicUsize::new(0),
        });
        let arg = (&*probe as *const Probe).cast_mut().cast::<c_void>();
        // SAFETY: the probe outlives the timer (freed below, before the probe is dropped).
        let timer = unsafe { op(OPS.timer_alloc)(Some(probe_fired), arg) };
        assert!(!timer.is_null());
        probe.timer.store(timer as usize, Ordering::SeqCst);
        test(timer, &rx);
        // SAFETY: freed once; returns only when the callback cannot run any more.
        unsafe { op(OPS.timer_free)(timer) };
        drop(probe);
        rx
    }

    #[test]
    fn timer_fires_once_after_its_delay() {
        with_timer(0, |timer, fired| {
            let armed = Instant::now();
            // SAFETY: a live timer.
            unsafe { op(OPS.timer_set_oneshot)(timer, 20_000_000) };
            let at = fired.recv_timeout(Duration::from_secs(5)).expect("fires");
            assert!(at - armed >= Duration::from_millis(20), "{:?}", at - armed);
            assert!(
                fired.recv_timeout(Duration::from_millis(100)).is_err(),
                "one shot only"
            );
        });
    }

    #[test]
    fn zero_delay_fires_immediately_and_rearming_replaces_the_deadline() {
        with_timer(0, |timer, fired| {
            // SAFETY: a live timer.
            unsafe {
                op(OPS.timer_set_oneshot)(timer, 0);
                fired
                    .recv_timeout(Duration::from_secs(5))
                    .expect("0 ns fires");
                op(OPS.timer_set_oneshot)(timer, 10_000_000_000);
                let armed = Instant::now();
                op(OPS.timer_set_oneshot)(timer, 10_000_000);
                let at = fired
                    .recv_timeout(Duration::from_secs(5))
                    .expect("the new deadline fires");
                assert!(at - armed < Duration::from_secs(5));
                assert!(
                    fired.recv_timeout(Duration::from_millis(100)).is_err(),
                    "the replaced deadline is gone"
                );
            }
        });
    }

    #[test]
    fn callback_can_rearm_its_own_timer() {
        with_timer(3, |timer, fired| {
            // SAFETY: a live timer.
            unsafe { op(OPS.timer_set_oneshot)(timer, 0) };
            for _ in 0..4 {
                fired
                    .recv_timeout(Duration::from_secs(5))
                    .expect("each re-arm fires");
            }
            assert!(fired.recv_timeout(Duration::from_millis(100)).is_err());
        });
    }

    #[test]
    fn freeing_an_armed_timer_cancels_it_at_once() {
        let start = Instant::now();
        let fired = with_timer(0, |timer, _| {
            // SAFETY: a live timer; with_timer frees it right after this closure.
            unsafe { op(OPS.timer_set_oneshot)(timer, 200_000_000) };
        });
        assert!(
            start.elapsed() < Duration::from_millis(150),
            "timer_free waited for the expiry"
        );
        assert!(fired.try_recv().is_err(), "a cancelled timer never fires");
    }

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
        assert!(THREADS.lock().is_empty());
    }
}
