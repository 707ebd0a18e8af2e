//! Resource limits: when the host's queue for the interface is full, the
//! packet socket's send fails with ENOBUFS. A field tool lost ports until restart that way;
//! here the send is retried after a short wait (then dropped, for TCP to retransmit), and the
//! interface goes on working. The container's venet0 gets no qdisc and an 8-packet device
//! queue (with a qdisc in front, the tun device would drop silently instead), and the rig's
//! forwarder (the reader of that queue) is stopped for 200 ms at a time during a bulk echo, so
//! the queue overflows; the transfer must complete intact, new connections must work after it,
//! and the library's log must show that the host did refuse sends.

mod common;
mod echo;

use std::time::Duration;

use common::lkl_v4;
use echo::{assert_alive, echo_from_peer, start_echo, Alongside};
use lkl_rig::{Topology, VenetTopology};

#[test]
fn a_full_host_queue_slows_a_transfer_but_it_completes_and_the_interface_keeps_working() {
    let topo = VenetTopology::builder().build().unwrap();
    let dev = topo.container_if().to_string();
    let ns = topo.container_ns();
    ns.run("ip", &["link", "set", &dev, "txqueuelen", "8"])
        .unwrap();
    ns.run("tc", &["qdisc", "replace", "dev", &dev, "root", "noqueue"])
        .unwrap();
    let addr = lkl_v4(&topo, 7);
    let mut server = start_echo(&topo, addr, &[("RUST_LOG", "lkl::packet=debug")]);
    let alongside = Alongside::start(&topo, addr, 21, Duration::from_secs(60));
    let forwarder = topo.forwarder_pid() as i32;
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: kill(2) on the rig's forwarder process, which this topology owns.
        unsafe { libc::kill(forwarder, libc::SIGSTOP) };
        std::thread::sleep(Duration::from_millis(200));
        // SAFETY: as above.
        unsafe { libc::kill(forwarder, libc::SIGCONT) };
    }
    let t = alongside.finish().expect("echo through a full host queue");
    eprintln!(
        "{} MiB each way verified in {:.1?} through an 8-packet host queue",
        t.verified >> 20,
        t.elapsed
    );
    assert!(t.verified > 1 << 20, "hardly anything moved: {t:?}");
    assert_alive(&mut server, "after the transfer");
    for seed in 0..3 {
        echo_from_peer(&topo, addr, 1 << 20, 30 + seed).expect("a new connection afterwards");
    }
    let qdisc = ns.run("ip", &["-s", "link", "show", &dev]).unwrap();
    eprintln!("{qdisc}");
    server.terminate(Duration::from_secs(10));
    let out = server.output();
    assert!(
        out.contains("the host refused a send (No buffer space available"),
        "the host's queue never overflowed, so nothing was tested:\n{qdisc}\n{out}"
    );
}
