//! Busy polling (arch/lkl/kernel/busy_poll.c): an LKL server thread that waits for each
//! 1-byte request the way the preload library does (lkl_busy_wait first, then a sleep in
//! LKL's poll) takes the requests in itself, and the backend's rx thread, which otherwise
//! wakes and raises the irq for every request, stays asleep. Counted, not timed: with busy
//! polling off (SO_BUSY_POLL 0) the same loop needs the rx thread for most requests.

mod common;
mod net;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::raw::c_long;
use std::time::Instant;

use lkl::consts::MSG_DONTWAIT;
use lkl::sys::{__NR_lkl_busy_wait, __NR_ppoll, POLLIN, SOL_SOCKET, SO_BUSY_POLL};
use lkl::{Errno, Fd, Kernel};
use lkl_rig::{Topology, VethTopology};

const REQUESTS: u64 = 2000;

/// Waits until `fd` is readable: busy polls for the socket's SO_BUSY_POLL, then sleeps.
fn wait_readable(k: &Kernel, fd: Fd) {
    let start = Instant::now();
    loop {
        let spent = start.elapsed().as_micros() as c_long;
        // SAFETY: no pointers.
        match unsafe {
            k.syscall(
                __NR_lkl_busy_wait,
                [fd as c_long, POLLIN as c_long, spent, 0, 0, 0],
            )
        } {
            Ok(0) => break,
            Ok(_) => return,
            Err(Errno::EAGAIN) => continue,
            Err(e) => panic!("lkl_busy_wait: {e}"),
        }
    }
    let mut p = [fd, POLLIN as i32];
    let ts = libc::timespec {
        tv_sec: 10,
        tv_nsec: 0,
    };
    // SAFETY: one live pollfd (fd, events, revents: two ints) and timeout for the call.
    let n = unsafe {
        k.syscall(
            __NR_ppoll,
            [
                p.as_mut_ptr() as c_long,
                1,
                &ts as *const _ as c_long,
                0,
                0,
                0,
            ],
        )
    };
    assert_eq!(n, Ok(1), "no request within 10 s");
}

/// Serves REQUESTS 1-byte requests on a new connection with SO_BUSY_POLL `busy_us`, and
/// returns how often the rx thread raised the irq meanwhile.
fn rx_irqs_while_serving(
    k: &Kernel,
    topo: &VethTopology,
    lkl: &net::Attached,
    busy_us: i32,
) -> u64 {
    let (lfd, addr) = net::lkl_listener(k, SocketAddr::new(lkl.addrs.lkl_v4.into(), 0));
    let client = topo
        .peer_ns()
        .spawn_thread(move || {
            let mut s = TcpStream::connect_timeout(&addr, net::CONNECT_TIMEOUT).unwrap();
            s.set_nodelay(true).unwrap();
            s.set_read_timeout(Some(net::IDLE_TIMEOUT)).unwrap();
            let mut b = [0u8];
            for i in 0..=REQUESTS {
                s.write_all(&[i as u8]).unwrap();
                s.read_exact(&mut b).unwrap();
                assert_eq!(b[0], i as u8);
            }
        })
        .unwrap();
    let (fd, _) = k.accept4(lfd, 0).unwrap();
    k.setsockopt_int(fd, SOL_SOCKET, SO_BUSY_POLL, busy_us)
        .unwrap();
    let mut before = 0;
    for i in 0..=REQUESTS {
        if i == 1 {
            // the connection's setup and first request left out
            before = lkl.backend.stats().rx_irqs;
        }
        let mut b = [0u8];
        loop {
            match k.recvfrom(fd, &mut b, MSG_DONTWAIT) {
                Ok((1, _)) => break,
                Ok(r) => panic!("request {i}: {r:?}"),
                Err(Errno::EAGAIN) => wait_readable(k, fd),
                Err(e) => panic!("request {i}: {e}"),
            }
        }
        assert_eq!(k.sendto(fd, &b, 0, None), Ok(1));
    }
    let irqs = lkl.backend.stats().rx_irqs - before;
    client.join().unwrap();
    k.close(fd).unwrap();
    k.close(lfd).unwrap();
    irqs
}

#[test]
fn busy_polling_takes_requests_without_the_rx_thread() {
    let k = common::kernel();
    let topo = VethTopology::new().unwrap();
    let lkl = net::attach_veth(k, &topo);

    let sleeping = rx_irqs_while_serving(k, &topo, &lkl, 0);
    // Generous, so that a loaded machine's scheduling delays stay inside the busy poll.
    let polling = rx_irqs_while_serving(k, &topo, &lkl, 5000);
    eprintln!("{REQUESTS} requests: rx thread raised the irq {sleeping} times sleeping, {polling} times busy polling");
    assert!(
        sleeping >= REQUESTS / 2,
        "without busy polling the rx thread should wake for most requests: {sleeping}"
    );
    assert!(
        polling <= REQUESTS / 20,
        "busy polling should leave the rx thread asleep: it raised the irq {polling} times"
    );
    lkl.backend.stop_rx();
}
