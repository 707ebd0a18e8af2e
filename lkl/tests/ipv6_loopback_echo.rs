//! TCP over LKL's IPv6 loopback (::1).

mod common;

use std::net::SocketAddr;

use lkl::consts::{SHUT_WR, SOCK_CLOEXEC};

#[test]
fn ipv6_loopback_echo() {
    let k = common::kernel();
    let (listen_fd, addr) = common::listener(k, "[::1]:0");
    assert!(addr.is_ipv6() && addr.port() != 0, "{addr}");
    let data = common::pattern(6, 1 << 20);

    std::thread::scope(|s| {
        let server = s.spawn(|| {
            let (fd, peer) = k.accept4(listen_fd, SOCK_CLOEXEC).unwrap();
            (common::echo(k, fd), peer)
        });
        let fd = common::connect(k, &addr);
        assert_eq!(k.getpeername(fd), Ok(addr));
        let local = k.getsockname(fd).unwrap();
        assert_eq!(local.ip(), "::1".parse::<std::net::IpAddr>().unwrap());
        // Write and read at the same time: 1 MiB does not fit in the socket buffers.
        let echoed = std::thread::scope(|c| {
            let reader = c.spawn(|| common::read_to_end(k, fd).unwrap());
            common::write_all(k, fd, &data).unwrap();
            k.shutdown(fd, SHUT_WR).unwrap();
            reader.join().unwrap()
        });
        assert!(
            echoed == data,
            "echo differs ({} of {} bytes back)",
            echoed.len(),
            data.len()
        );
        k.close(fd).unwrap();
        let (count, peer) = server.join().unwrap();
        assert_eq!(count, data.len());
        assert_eq!(peer, Some::<SocketAddr>(local));
    });
    k.close(listen_fd).unwrap();
}
