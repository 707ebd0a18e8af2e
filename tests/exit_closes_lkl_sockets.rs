//! A program that exits without closing its sockets: the library closes them at exit, so the
//! peer reads the last bytes and then end-of-stream, as with the host kernel, and the process
//! does not hang in the kernel's halt.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{build_c, command_in, lkl_env, venet, CSource};
use lkl_rig::Topology;

const PROGRAM: &str = r#"
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
	int s = socket(AF_INET, SOCK_STREAM, 0);

	inet_pton(AF_INET, argv[1], &a.sin_addr);
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) || write(s, "last words", 10) != 10)
		return 1;
	exit(0); /* no close: exit must do it */
}
"#;

fn build() -> PathBuf {
    build_c("exit_without_close", CSource::Text(PROGRAM))
}

#[test]
fn peer_reads_the_data_then_eof_when_the_program_exits_without_closing() {
    let program = build();
    let topo = venet();
    let peer = SocketAddr::new(topo.addrs().peer_v4.into(), 9000);
    let listener = topo
        .peer_ns()
        .in_thread(|| TcpListener::bind(peer))
        .unwrap()
        .unwrap();
    let started = Instant::now();
    // Client sockets stay on the host unless told otherwise.
    let mut env = lkl_env(&topo);
    env.push(("LKL_HIJACK_CLIENTS".into(), "lkl".into()));
    let out = command_in(
        topo.container_ns(),
        program.to_str().unwrap(),
        &[&peer.ip().to_string(), "9000"],
        &env,
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "exit took {:?}",
        started.elapsed()
    );
    let (mut conn, from) = listener.accept().unwrap();
    assert_eq!(
        from.ip(),
        std::net::IpAddr::from(topo.addrs().lkl_v4),
        "not LKL's address"
    );
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    conn.read_to_end(&mut got)
        .expect("end of stream (FIN) within 5 s, not a reset or a hang");
    assert_eq!(got, b"last words");
}
