//! Boot, use, halt: afterwards no thread the library started is left, and the kernel
//! cannot be booted a second time.

use std::time::Duration;

use lkl::consts::{AF_INET, SOCK_STREAM};
use lkl::{BootOptions, Error, Kernel};

fn threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .map(|t| {
            let comm = t.unwrap().path().join("comm");
            std::fs::read_to_string(comm)
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .collect()
}

#[test]
fn boot_then_halt_leaves_no_library_threads() {
    let _ = env_logger::builder().is_test(true).try_init();
    let before = threads();

    let kernel = Kernel::boot(BootOptions::default()).unwrap_or_else(|e| panic!("boot: {e}"));
    assert!(
        threads().len() > before.len(),
        "the kernel runs on threads of its own"
    );
    let pid = kernel.getpid().unwrap();
    // A second host thread gets a kernel task of its own, retired when the thread exits.
    std::thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(
                kernel.getpid(),
                Ok(pid),
                "one kernel process for all host threads"
            )
        });
    });
    // Exercise sockets and the timer so their threads and state exist at halt.
    let fd = kernel.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    kernel.nanosleep(Duration::from_millis(2)).unwrap();
    kernel.close(fd).unwrap();

    kernel.halt().expect("halt");
    let after = threads();
    assert_eq!(
        after.len(),
        before.len(),
        "threads before boot: {before:?}, after halt: {after:?}"
    );

    assert_eq!(
        Kernel::boot(BootOptions::default()).unwrap_err(),
        Error::AlreadyBooted
    );
}
