//! BBR is the default TCP congestion control, CUBIC is available, and both can be chosen
//! through the sysctl files and per socket.

mod common;

use lkl::consts::{AF_INET, SOCK_STREAM};
use lkl::sys::{IPPROTO_TCP, TCP_CONGESTION};
use lkl::{Fd, Kernel};

fn congestion_control(k: &Kernel, fd: Fd) -> String {
    let mut name = [0u8; 16];
    let len = k
        .getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, &mut name)
        .unwrap();
    let name = &name[..len];
    String::from_utf8_lossy(name.split(|&b| b == 0).next().unwrap()).into_owned()
}

fn new_socket_congestion_control(k: &Kernel) -> String {
    let fd = k.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    let name = congestion_control(k, fd);
    k.close(fd).unwrap();
    name
}

const KEY: &str = "net.ipv4.tcp_congestion_control";

// One test, in order: it changes the default and puts it back.
#[test]
fn bbr_by_default_and_settable_system_wide_and_per_socket() {
    let k = common::kernel();
    assert_eq!(k.sysctl_read(KEY).unwrap(), "bbr");
    assert_eq!(new_socket_congestion_control(k), "bbr");

    k.sysctl_write(KEY, "cubic").unwrap();
    assert_eq!(k.sysctl_read(KEY).unwrap(), "cubic");
    assert_eq!(new_socket_congestion_control(k), "cubic");
    k.sysctl_write(KEY, "bbr").unwrap();
    assert_eq!(k.sysctl_read(KEY).unwrap(), "bbr");
    assert!(
        k.sysctl_write(KEY, "no-such-algorithm").is_err(),
        "the kernel validates the name"
    );

    let fd = k.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    k.setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, b"cubic")
        .unwrap();
    assert_eq!(congestion_control(k, fd), "cubic");
    k.close(fd).unwrap();
}

#[test]
fn bbr_and_cubic_are_available() {
    let k = common::kernel();
    let available = k
        .sysctl_read("net.ipv4.tcp_available_congestion_control")
        .unwrap();
    let names: Vec<&str> = available.split_whitespace().collect();
    assert!(
        names.contains(&"bbr") && names.contains(&"cubic"),
        "{available}"
    );
}

#[test]
fn fq_is_the_default_qdisc() {
    assert_eq!(
        common::kernel()
            .sysctl_read("net.core.default_qdisc")
            .unwrap(),
        "fq"
    );
}
