//! A program that exits without closing its sockets: the library closes them at exit, so the
//! peer reads the last bytes and then end-of-stream, as with the host kernel, and the process
//! does not hang in the kernel's halt. A program that writes more than its peer has read yet
//! and exits: the peer still gets every byte, as the host kernel would deliver them after the
//! process is gone.

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

/// Connects to argv[1]:argv[2], writes argv[3] bytes (byte i is i * 7 % 251), closes and
/// exits at once.
const WRITE_AND_EXIT: &str = r#"
#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
	long n = atol(argv[3]), i, done = 0;
	char *buf = malloc(n);
	int s = socket(AF_INET, SOCK_STREAM, 0);

	for (i = 0; i < n; i++)
		buf[i] = i * 7 % 251;
	inet_pton(AF_INET, argv[1], &a.sin_addr);
	if (connect(s, (struct sockaddr *)&a, sizeof(a)))
		return 1;
	while (done < n) {
		ssize_t w = write(s, buf + done, n - done);
		if (w <= 0)
			return 2;
		done += w;
	}
	close(s);
	return 0;
}
"#;

#[test]
fn peer_gets_every_byte_written_before_exit_even_when_it_reads_slowly() {
    const BYTES: usize = 2 << 20;
    let program = build_c("write_and_exit", CSource::Text(WRITE_AND_EXIT));
    let topo = venet();
    let peer = SocketAddr::new(topo.addrs().peer_v4.into(), 9001);
    let listener = topo
        .peer_ns()
        .in_thread(|| TcpListener::bind(peer))
        .unwrap()
        .unwrap();
    // A slow reader (8 MB/s): when the program exits, the end of its data is still in LKL.
    let reader = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 16 << 10];
        loop {
            match conn.read(&mut buf) {
                Ok(0) => return Ok(got),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return Err(format!("after {} bytes: {e}", got.len())),
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let mut env = lkl_env(&topo);
    env.push(("LKL_HIJACK_CLIENTS".into(), "lkl".into()));
    let out = command_in(
        topo.container_ns(),
        program.to_str().unwrap(),
        &[&peer.ip().to_string(), "9001", &BYTES.to_string()],
        &env,
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let got = reader
        .join()
        .unwrap()
        .expect("every byte, then end of stream");
    let expected: Vec<u8> = (0..BYTES).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(got.len(), BYTES, "bytes received");
    assert!(got == expected, "the bytes differ from what was written");
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
