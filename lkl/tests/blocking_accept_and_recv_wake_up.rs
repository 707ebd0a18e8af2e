//! A thread blocked in accept() or read() inside LKL sleeps until the peer acts, then wakes.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use lkl::consts::{SHUT_RDWR, SOCK_CLOEXEC};

const DELAY: Duration = Duration::from_millis(100);

/// Shuts the listener and the client down when dropped, so that a failed check on the main
/// thread wakes the server thread (blocked in accept or read) instead of leaving the scope
/// waiting for it forever.
struct Unblock<'k> {
    k: &'k lkl::Kernel,
    fds: Vec<lkl::Fd>,
}

impl Drop for Unblock<'_> {
    fn drop(&mut self) {
        for &fd in &self.fds {
            let _ = self.k.shutdown(fd, SHUT_RDWR);
        }
    }
}

#[test]
fn blocked_accept_and_read_wake_when_the_peer_acts() {
    let k = common::kernel();
    let (listen_fd, addr) = common::listener(k, "127.0.0.1:0");
    let (tx, rx) = mpsc::channel();

    std::thread::scope(|s| {
        let mut unblock = Unblock {
            k,
            fds: vec![listen_fd],
        };
        let server = s.spawn(move || {
            let (fd, peer) = k.accept4(listen_fd, SOCK_CLOEXEC).unwrap();
            tx.send(("accepted", Instant::now())).unwrap();
            let mut buf = [0u8; 16];
            let n = k.read(fd, &mut buf).unwrap();
            tx.send(("read", Instant::now())).unwrap();
            k.close(fd).unwrap();
            (peer, buf[..n].to_vec())
        });

        // Nothing returns before the peer acts; what returns does so after it acted (the
        // order of instants, not a duration: on a loaded machine the server thread may start
        // late).
        assert!(
            rx.recv_timeout(DELAY).is_err(),
            "accept returned with no client"
        );
        let connecting = Instant::now();
        let fd = common::connect(k, &addr);
        unblock.fds.push(fd);
        let (what, at) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("accept woke up");
        assert_eq!(what, "accepted");
        assert!(at >= connecting, "accept returned before the connect");

        assert!(
            rx.recv_timeout(DELAY).is_err(),
            "read returned with no data"
        );
        let writing = Instant::now();
        common::write_all(k, fd, b"wake up").unwrap();
        let (what, at) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("read woke up");
        assert_eq!(what, "read");
        assert!(at >= writing, "read returned before the write");

        let (peer, data) = server.join().unwrap();
        assert_eq!(data, b"wake up");
        assert_eq!(peer, Some(k.getsockname(fd).unwrap()));
        unblock.fds.clear();
        k.close(fd).unwrap();
    });
    k.close(listen_fd).unwrap();
}
