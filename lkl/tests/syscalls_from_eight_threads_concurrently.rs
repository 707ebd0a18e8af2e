//! Eight host threads make system calls at the same time: no deadlock, right answers, and
//! one shared fd table.

mod common;

use lkl::consts::{AF_INET, SOCK_STREAM};

const THREADS: usize = 8;
const ROUNDS: usize = 10_000;

#[test]
fn eight_threads_socket_close_getpid_10000_times_each() {
    let k = common::kernel();
    let pid = k.getpid().unwrap();
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..ROUNDS {
                    let fd = k.socket(AF_INET, SOCK_STREAM, 0).unwrap();
                    assert!(fd >= 0);
                    assert_eq!(
                        k.getpid(),
                        Ok(pid),
                        "every host thread is in the same process"
                    );
                    // Still this thread's socket: an unbound IPv4 TCP socket.
                    assert_eq!(k.getsockname(fd), Ok("0.0.0.0:0".parse().unwrap()));
                    k.close(fd).unwrap();
                }
            });
        }
    });
    // All 80 000 sockets were closed: the lowest free descriptor is back near the bottom.
    let fd = k.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert!(fd < 8, "fd {fd}: descriptors leaked");
    k.close(fd).unwrap();
}
