//! A thread blocked in accept() or read() inside LKL sleeps until the peer acts, then wakes.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use lkl::consts::SOCK_CLOEXEC;

const DELAY: Duration = Duration::from_millis(100);

#[test]
fn blocked_accept_and_read_wake_when_the_peer_acts() {
    let k = common::kernel();
    let (listen_fd, addr) = common::listener(k, "127.0.0.1:0");
    let (tx, rx) = mpsc::channel();

    std::thread::scope(|s| {
        let server = s.spawn(move || {
            let start = Instant::now();
            let (fd, peer) = k.accept4(listen_fd, SOCK_CLOEXEC).unwrap();
            tx.send(("accepted", start.elapsed())).unwrap();
            let start = Instant::now();
            let mut buf = [0u8; 16];
            let n = k.read(fd, &mut buf).unwrap();
            tx.send(("read", start.elapsed())).unwrap();
            k.close(fd).unwrap();
            (peer, buf[..n].to_vec())
        });

        assert!(
            rx.recv_timeout(DELAY).is_err(),
            "accept returned with no client"
        );
        let fd = common::connect(k, &addr);
        let (what, blocked) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("accept woke up");
        assert_eq!(what, "accepted");
        assert!(blocked >= DELAY, "accept blocked only {blocked:?}");

        assert!(
            rx.recv_timeout(DELAY).is_err(),
            "read returned with no data"
        );
        common::write_all(k, fd, b"wake up").unwrap();
        let (what, blocked) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("read woke up");
        assert_eq!(what, "read");
        assert!(blocked >= DELAY, "read blocked only {blocked:?}");

        let (peer, data) = server.join().unwrap();
        assert_eq!(data, b"wake up");
        assert_eq!(peer, Some(k.getsockname(fd).unwrap()));
        k.close(fd).unwrap();
    });
    k.close(listen_fd).unwrap();
}
