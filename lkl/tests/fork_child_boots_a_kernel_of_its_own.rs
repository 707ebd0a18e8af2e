//! A forked child cannot run its parent's kernel (fork(2) copied the memory, not the threads),
//! but after `Kernel::forget_after_fork` it boots a kernel of its own: one that does not hold
//! the parent's listener, carries a loopback TCP echo byte for byte and halts cleanly. Twenty
//! children in turn, forked while the parent's kernel carries traffic on other threads, and
//! the parent's kernel serves on afterwards.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use lkl::consts::{SHUT_WR, SOCK_CLOEXEC, SOCK_STREAM};
use lkl::{BootOptions, Errno, Error, Kernel};

const CHILDREN: usize = 20;
const CHILD_BYTES: usize = 1 << 20;

#[test]
fn forked_children_boot_kernels_of_their_own_while_the_parent_serves() {
    let k = common::kernel();
    let (listen_fd, addr) = common::listener(k, "127.0.0.1:0");
    let stop = AtomicBool::new(false);
    let echoed = AtomicUsize::new(0);

    std::thread::scope(|s| {
        // The parent's kernel is busy on other threads whenever a child is forked.
        // Serves until a connection brings no bytes.
        s.spawn(|| loop {
            let (fd, _) = k.accept4(listen_fd, SOCK_CLOEXEC).unwrap();
            if common::echo(k, fd) == 0 {
                break;
            }
        });
        let client = s.spawn(|| {
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                assert_eq!(echo_round_trip(k, &addr, round, 64 * 1024), Ok(()));
                echoed.fetch_add(1, Ordering::Relaxed);
            }
        });

        for i in 0..CHILDREN {
            // SAFETY: the child only runs `child`, which calls no locks other threads of the
            // parent may hold except through the kernel crate (guarded across fork), and ends
            // with _exit.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
            if pid == 0 {
                let code = match std::panic::catch_unwind(|| child(addr)) {
                    Ok(Ok(())) => 0,
                    Ok(Err(msg)) => {
                        say(&format!("child {i}: {msg}\n"));
                        1
                    }
                    Err(_) => 2,
                };
                // SAFETY: ends the child without running the parent's exit handlers.
                unsafe { libc::_exit(code) };
            }
            let mut status = 0;
            // SAFETY: waits for our own child.
            assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "child {i} failed: status {status:#x} (signal {})",
                if libc::WIFSIGNALED(status) {
                    libc::WTERMSIG(status)
                } else {
                    0
                }
            );
        }
        assert_eq!(
            echo_round_trip(k, &addr, 0, 1 << 20),
            Ok(()),
            "the parent's kernel after the forks"
        );
        stop.store(true, Ordering::Relaxed);
        client.join().unwrap();
        // Ends the server: a connection that brings nothing.
        let fd = common::connect(k, &addr);
        k.close(fd).unwrap();
    });
    assert!(
        echoed.load(Ordering::Relaxed) > 0,
        "the parent carried no traffic meanwhile"
    );
}

/// In the child: the parent's kernel refuses a second boot until it is forgotten; the new
/// kernel is fresh (the parent's listening address is free) and carries TCP.
fn child(parent_listener: SocketAddr) -> Result<(), String> {
    match Kernel::boot(BootOptions::default()) {
        Err(Error::AlreadyBooted) => {}
        other => return Err(format!("boot before forgetting: {other:?}")),
    }
    // SAFETY: a forked child; nothing here has called into the parent's kernel, and its
    // handle (the test file's static) is never used again in this process.
    unsafe { Kernel::forget_after_fork() };
    let k = Kernel::boot(BootOptions::default()).map_err(|e| format!("boot: {e}"))?;
    let fd = k
        .socket(libc::AF_INET as u32, SOCK_STREAM | SOCK_CLOEXEC, 0)
        .map_err(|e| format!("socket: {e}"))?;
    k.bind(fd, &parent_listener)
        .map_err(|e| format!("binding the parent's listening address: {e} (not a fresh kernel)"))?;
    k.listen(fd, 16).map_err(|e| format!("listen: {e}"))?;
    let server = std::thread::scope(|s| {
        let server = s.spawn(|| {
            let (conn, _) = k.accept4(fd, SOCK_CLOEXEC).unwrap();
            common::echo(&k, conn)
        });
        let client = echo_round_trip(&k, &parent_listener, 7, CHILD_BYTES);
        (server.join(), client)
    });
    match server {
        (Ok(n), Ok(())) if n == CHILD_BYTES => {}
        other => return Err(format!("echo in the child's kernel: {other:?}")),
    }
    k.halt().map_err(|e| format!("halt: {e}"))
}

/// Connects, sends `len` bytes of a pattern, and checks that the same bytes come back.
fn echo_round_trip(k: &Kernel, addr: &SocketAddr, seed: usize, len: usize) -> Result<(), Errno> {
    let fd = k.socket(libc::AF_INET as u32, SOCK_STREAM | SOCK_CLOEXEC, 0)?;
    k.connect(fd, addr)?;
    let data = common::pattern(seed, len);
    let got = std::thread::scope(|s| {
        let reader = s.spawn(|| common::read_to_end(k, fd));
        common::write_all(k, fd, &data)?;
        k.shutdown(fd, SHUT_WR)?;
        reader.join().unwrap()
    })?;
    k.close(fd)?;
    assert!(
        got == data,
        "echoed bytes differ ({} of {len} came back)",
        got.len()
    );
    Ok(())
}

/// Writes to stderr without Rust's lock, which a thread of the parent may have held at fork.
fn say(msg: &str) {
    // SAFETY: a live buffer of msg.len() bytes.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
}
