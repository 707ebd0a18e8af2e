//! A raw HTTP/1.0 client on the host stack, for fetches whose every failure counts.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use lkl_rig::Topology;

/// `GET path` over HTTP/1.0 to `addr` (from the calling thread's namespace): the status line
/// and the body. Any connect, reset or timeout error is returned as is.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> io::Result<(String, Vec<u8>)> {
    let mut conn = TcpStream::connect_timeout(&addr, timeout)?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply)?;
    let _ = conn.shutdown(Shutdown::Both);
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("no header end in {} bytes", reply.len()),
            )
        })?;
    let status = String::from_utf8_lossy(&reply[..split])
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    Ok((status, reply[split + 4..].to_vec()))
}

/// `http_get` that must return 200 with `expected` as the body; the error says what differed.
pub fn http_get_expect(addr: SocketAddr, path: &str, expected: &[u8]) -> Result<(), String> {
    match http_get(addr, path, Duration::from_secs(5)) {
        Err(e) => Err(format!("{e} ({:?})", e.kind())),
        Ok((status, _)) if !status.contains(" 200 ") => Err(format!("status {status:?}")),
        Ok((_, body)) if body != expected => Err(format!(
            "body of {} bytes differs from the expected {} bytes",
            body.len(),
            expected.len()
        )),
        Ok(_) => Ok(()),
    }
}

/// From the peer's namespace, `http_get_expect` of `path` at `addr` `times` times; the
/// failures, numbered.
pub fn fetch_from_peer(
    topo: &dyn Topology,
    addr: SocketAddr,
    path: &str,
    expected: &[u8],
    times: usize,
) -> Vec<String> {
    topo.peer_ns()
        .in_thread(|| {
            (0..times)
                .filter_map(|i| {
                    http_get_expect(addr, path, expected)
                        .err()
                        .map(|e| format!("#{i}: {e}"))
                })
                .collect()
        })
        .expect("enter the peer namespace")
}
