//! 200 concurrent TCP connections over LKL's loopback each echo 256 KiB, every byte checked.
//! The server side is blocking (a thread per connection), the client side one nonblocking
//! epoll loop, so both wake-up paths carry real load.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use lkl::consts::{SHUT_WR, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM};
use lkl::sys::{EPOLLIN, EPOLLOUT, EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD};
use lkl::{BootOptions, EpollEvent, Errno, Fd};

const CONNECTIONS: usize = 200;
/// TCP's memory limits (tcp_mem) scale with the kernel's RAM, as on any Linux. With 64 MiB
/// (tcp_mem max ~6 MiB) this load (up to ~100 MiB in flight) ends in memory pressure where the
/// kernel resets orphaned sockets ("out of memory -- consider tuning tcp_mem"); 256 MiB keeps it
/// clear. The reservation costs only the pages the kernel touches.
const MEM_MIB: u32 = 256;
const BYTES: usize = 256 * 1024;

struct Client {
    fd: Fd,
    data: Vec<u8>,
    sent: usize,
    received: usize,
}

#[test]
fn two_hundred_connections_echo_256k_each() {
    let k = common::kernel_with(|| BootOptions {
        mem_mib: MEM_MIB,
        ..Default::default()
    });
    let (listen_fd, addr) = common::listener(k, "127.0.0.1:0");

    std::thread::scope(|s| {
        let server = s.spawn(move || {
            std::thread::scope(|conns| {
                let handlers: Vec<_> = (0..CONNECTIONS)
                    .map(|_| {
                        let (fd, _) = k.accept4(listen_fd, SOCK_CLOEXEC).unwrap();
                        conns.spawn(move || common::echo(k, fd))
                    })
                    .collect();
                handlers
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .collect::<Vec<_>>()
            })
        });

        let epfd = k.epoll_create1(0).unwrap();
        let mut clients = HashMap::new();
        for i in 0..CONNECTIONS {
            let fd = k
                .socket(
                    common::family(&addr),
                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    0,
                )
                .unwrap();
            match k.connect(fd, &addr) {
                Ok(()) | Err(Errno::EINPROGRESS) => {}
                Err(e) => panic!("connect: {e}"),
            }
            k.epoll_ctl(
                epfd,
                EPOLL_CTL_ADD,
                fd,
                Some(EpollEvent {
                    events: EPOLLIN | EPOLLOUT,
                    data: i as u64,
                }),
            )
            .unwrap();
            clients.insert(
                i,
                Client {
                    fd,
                    data: common::pattern(i, BYTES),
                    sent: 0,
                    received: 0,
                },
            );
        }

        let deadline = Instant::now() + Duration::from_secs(120);
        let mut events = vec![EpollEvent::default(); 64];
        let mut buf = vec![0u8; 64 * 1024];
        while !clients.is_empty() {
            if Instant::now() > deadline {
                let mut stuck: Vec<_> = clients
                    .iter()
                    .map(|(id, c)| (*id, c.sent, c.received))
                    .collect();
                stuck.sort();
                common::fail_now(&format!(
                    "{} connections unfinished; (id, sent, received) of some: {:?}",
                    stuck.len(),
                    &stuck[..stuck.len().min(10)]
                ));
            }
            let n = k.epoll_pwait(epfd, &mut events, 1000).unwrap();
            for ev in &events[..n] {
                let (id, ready) = (ev.data as usize, ev.events);
                let Some(c) = clients.get_mut(&id) else {
                    continue;
                };
                if ready & EPOLLOUT != 0 && c.sent < BYTES {
                    match k.write(c.fd, &c.data[c.sent..]) {
                        Ok(n) => c.sent += n,
                        Err(Errno::EAGAIN) => {}
                        Err(e) => panic!("write: {e}"),
                    }
                    if c.sent == BYTES {
                        k.shutdown(c.fd, SHUT_WR).unwrap();
                        k.epoll_ctl(
                            epfd,
                            EPOLL_CTL_MOD,
                            c.fd,
                            Some(EpollEvent {
                                events: EPOLLIN,
                                data: id as u64,
                            }),
                        )
                        .unwrap();
                    }
                }
                if ready & EPOLLIN != 0 {
                    match k.read(c.fd, &mut buf) {
                        Ok(0) => {
                            assert_eq!(c.received, BYTES, "connection {id} ended early");
                            k.epoll_ctl(epfd, EPOLL_CTL_DEL, c.fd, None).unwrap();
                            k.close(c.fd).unwrap();
                            clients.remove(&id);
                        }
                        Ok(n) => {
                            assert!(
                                c.received + n <= BYTES,
                                "connection {id}: more bytes than sent"
                            );
                            assert!(
                                buf[..n] == c.data[c.received..c.received + n],
                                "connection {id}: corrupted at {}",
                                c.received
                            );
                            c.received += n;
                        }
                        Err(Errno::EAGAIN) => {}
                        Err(e) => panic!("read: {e}"),
                    }
                }
            }
        }
        k.close(epfd).unwrap();
        let echoed = server.join().unwrap();
        assert_eq!(echoed, vec![BYTES; CONNECTIONS]);
    });
    k.close(listen_fd).unwrap();
}
