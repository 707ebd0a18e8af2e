//! A nonblocking socket says EAGAIN, epoll inside LKL reports when it becomes ready, and then
//! the call succeeds.

mod common;

use std::time::{Duration, Instant};

use lkl::consts::{SOCK_CLOEXEC, SOCK_NONBLOCK};
use lkl::sys::{EPOLLIN, EPOLL_CTL_ADD, F_GETFL, O_NONBLOCK};
use lkl::{EpollEvent, Errno};

#[test]
fn eagain_then_epoll_readiness_then_success() {
    let k = common::kernel();
    let (listen_fd, addr) = common::listener(k, "127.0.0.1:0");
    let flags = k.fcntl(listen_fd, F_GETFL, 0).unwrap();
    k.fcntl(listen_fd, lkl::sys::F_SETFL, flags | O_NONBLOCK as i64)
        .unwrap();
    assert_eq!(
        k.accept4(listen_fd, 0).unwrap_err(),
        Errno::EAGAIN,
        "no client yet"
    );

    let epfd = k.epoll_create1(0).unwrap();
    k.epoll_ctl(
        epfd,
        EPOLL_CTL_ADD,
        listen_fd,
        Some(EpollEvent {
            events: EPOLLIN,
            data: 1,
        }),
    )
    .unwrap();
    let mut events = [EpollEvent::default(); 4];
    assert_eq!(
        k.epoll_pwait(epfd, &mut events, 0),
        Ok(0),
        "not ready before a client connects"
    );

    let client = common::connect(k, &addr);
    assert_eq!(k.epoll_pwait(epfd, &mut events, 5000), Ok(1));
    let (ready, data) = (events[0].events, events[0].data);
    assert_eq!((ready & EPOLLIN, data), (EPOLLIN, 1));
    let (conn, _) = k
        .accept4(listen_fd, SOCK_NONBLOCK | SOCK_CLOEXEC)
        .expect("accept after readiness");
    assert_ne!(
        k.fcntl(conn, F_GETFL, 0).unwrap() & O_NONBLOCK as i64,
        0,
        "SOCK_NONBLOCK took"
    );

    let mut buf = [0u8; 16];
    assert_eq!(
        k.read(conn, &mut buf),
        Err(Errno::EAGAIN),
        "nothing sent yet"
    );
    k.epoll_ctl(
        epfd,
        EPOLL_CTL_ADD,
        conn,
        Some(EpollEvent {
            events: EPOLLIN,
            data: 2,
        }),
    )
    .unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            common::write_all(k, client, b"ready").unwrap();
        });
        let start = Instant::now();
        // The listener is not ready any more, so the only event can be the connection's.
        assert_eq!(k.epoll_pwait(epfd, &mut events, 5000), Ok(1));
        assert!(
            start.elapsed() >= Duration::from_millis(40),
            "epoll_pwait returned before the data was sent"
        );
        let data = events[0].data;
        assert_eq!(data, 2);
    });
    assert_eq!(k.read(conn, &mut buf), Ok(5));
    assert_eq!(&buf[..5], b"ready");

    for fd in [conn, client, epfd, listen_fd] {
        k.close(fd).unwrap();
    }
}
