//! Raw HTTP clients on the host stack, for fetches whose every failure counts: one request
//! per connection (HTTP/1.0), or many over a connection kept alive (HTTP/1.1).
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
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

/// An answer over a kept-alive connection.
pub struct Answer {
    pub status: String,
    /// Header lines, as sent.
    pub headers: Vec<String>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The value of header `name` (case-insensitive), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// An HTTP/1.1 client that keeps its connection open between requests, as browsers and
/// proxies do.
pub struct KeepAlive {
    addr: SocketAddr,
    timeout: Duration,
    conn: Option<BufReader<TcpStream>>,
    /// Requests made again on a new connection because the server had closed or reset the
    /// kept one before answering (see [`get`](Self::get)).
    pub reopened: usize,
}

impl KeepAlive {
    pub fn new(addr: SocketAddr, timeout: Duration) -> KeepAlive {
        KeepAlive {
            addr,
            timeout,
            conn: None,
            reopened: 0,
        }
    }

    /// `GET path` on the kept connection, or on a new one (from the calling thread's
    /// namespace). A server may close a kept connection while it is idle (at its keep-alive
    /// timeout, or as it shuts down gracefully), also just as a request arrives, which its
    /// kernel then answers with a reset: when the kept connection ends or is reset before a
    /// byte of the answer, the request is made once more on a new connection, as RFC 9112
    /// (9.3.1) lets clients do. Anything else — a failure on a new connection, a timeout, an
    /// answer cut short — is an error.
    pub fn get(&mut self, path: &str) -> Result<Answer, String> {
        if self.conn.is_some() {
            match self.exchange(path) {
                Err(Unanswered) => {
                    self.reopened += 1;
                    self.conn = None;
                }
                Ok(answer) => return answer,
            }
        }
        let conn = TcpStream::connect_timeout(&self.addr, self.timeout)
            .map_err(|e| format!("connect: {e} ({:?})", e.kind()))?;
        for set in [
            conn.set_read_timeout(Some(self.timeout)),
            conn.set_write_timeout(Some(self.timeout)),
        ] {
            set.map_err(|e| format!("timeout: {e}"))?;
        }
        self.conn = Some(BufReader::new(conn));
        self.exchange(path).unwrap_or_else(|Unanswered| {
            Err("a new connection ended or was reset unanswered".into())
        })
    }

    /// One request on the open connection; `Err(Unanswered)` when it ended or was reset
    /// before any byte of the answer.
    fn exchange(&mut self, path: &str) -> Result<Result<Answer, String>, Unanswered> {
        let conn = self.conn.as_mut().expect("a connection");
        let addr = self.addr;
        let io = |what: &str, e: io::Error| format!("{what}: {e} ({:?})", e.kind());
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        let closed = |e: &io::Error| {
            matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            )
        };
        if let Err(e) = conn.get_mut().write_all(request.as_bytes()) {
            return if closed(&e) {
                Err(Unanswered)
            } else {
                Ok(Err(io("send the request", e)))
            };
        }
        let mut status = String::new();
        match conn.read_line(&mut status) {
            Ok(0) => return Err(Unanswered),
            Ok(_) => {}
            Err(e) if closed(&e) && status.is_empty() => return Err(Unanswered),
            Err(e) => return Ok(Err(io("read the status line", e))),
        }
        let answer = (|| {
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if conn
                    .read_line(&mut line)
                    .map_err(|e| io("read a header", e))?
                    == 0
                {
                    return Err("the connection ended in the headers".to_string());
                }
                let line = line.trim_end().to_string();
                if line.is_empty() {
                    break;
                }
                headers.push(line);
            }
            let mut answer = Answer {
                status: status.trim_end().to_string(),
                headers,
                body: Vec::new(),
            };
            let len: usize = answer
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("no Content-Length in {:?}", answer.headers))?;
            answer.body.resize(len, 0);
            conn.read_exact(&mut answer.body)
                .map_err(|e| io(&format!("read a body of {len} bytes"), e))?;
            Ok(answer)
        })();
        let close = answer
            .as_ref()
            .map_or(true, |a| a.header("connection") == Some("close"));
        if close {
            self.conn = None;
        }
        Ok(answer)
    }
}

/// A connection ended or was reset before any byte of the answer.
struct Unanswered;
