//! iperf3's server, unmodified, on LKL: a 3-second test from the peer completes in both
//! directions (the peer sending, and with -R LKL sending) and moves real data.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{check_output, command_in, host_listens_on, lkl_env, lkl_v4, venet, Server};
use lkl_rig::Topology;

const PORT: u16 = 5201;
/// 3 s at even 10 Mbit/s moves 3.75 MB; less means the transfer stalled.
const MIN_BYTES: f64 = (1 << 20) as f64;

/// The first number after `keys`, each searched for after the previous one, in iperf3's
/// JSON (enough for its fixed layout, without a JSON dependency).
fn json_number(json: &str, keys: &[&str]) -> f64 {
    let mut rest = json;
    for key in keys {
        let quoted = format!("\"{key}\"");
        let at = rest
            .find(&quoted)
            .unwrap_or_else(|| panic!("no {quoted} (path {keys:?}) in iperf3's JSON:\n{json}"));
        rest = &rest[at + quoted.len()..];
    }
    let value = rest
        .trim_start()
        .strip_prefix(':')
        .expect("a value after the key")
        .trim_start();
    let end = value
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(value.len());
    value[..end]
        .parse()
        .unwrap_or_else(|e| panic!("{keys:?} = {:?}: {e}", &value[..end]))
}

/// Runs one 3-second client test against `addr` from the peer and checks its result.
fn run_client(topo: &dyn Topology, addr: SocketAddr, reverse: bool) {
    let host = addr.ip().to_string();
    let port = PORT.to_string();
    let mut args = vec!["-c", &host, "-p", &port, "-t", "3", "--json"];
    if reverse {
        args.push("-R");
    }
    let json = check_output(&mut command_in(topo.peer_ns(), "iperf3", &args, &[]));
    assert!(
        !json.contains("\"error\""),
        "iperf3 reported an error:\n{json}"
    );
    assert_eq!(
        json_number(&json, &["test_start", "reverse"]),
        f64::from(u8::from(reverse))
    );
    // sum_received is the receiving end's count: LKL's with the peer sending, the peer's with -R.
    let bytes = json_number(&json, &["end", "sum_received", "bytes"]);
    let bps = json_number(&json, &["end", "sum_received", "bits_per_second"]);
    assert!(
        bytes >= MIN_BYTES && bps > 0.0,
        "reverse={reverse}: received {bytes} bytes at {bps} bit/s"
    );
    eprintln!("iperf3 reverse={reverse}: {:.0} Mbit/s", bps / 1e6);
}

#[test]
fn iperf3_server_on_lkl_completes_tests_in_both_directions() {
    let topo = venet();
    let addr = lkl_v4(&topo, PORT);
    let mut server = Server::spawn(
        command_in(
            topo.container_ns(),
            "iperf3",
            &["-s", "-B", &addr.ip().to_string(), "-p", &PORT.to_string()],
            &lkl_env(&topo),
        ),
        "iperf3 -s",
    );
    server.wait_listening(topo.peer_ns(), addr, Duration::from_secs(20));
    assert!(
        !host_listens_on(topo.container_ns(), PORT),
        "the container's host stack listens on {PORT}: iperf3 is not on LKL"
    );
    run_client(&topo, addr, false);
    run_client(&topo, addr, true);
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "iperf3 -s exited\n{}",
        server.output()
    );
}
