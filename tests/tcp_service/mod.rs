//! Small TCP services on a host stack, for the programs under test to reach.
#![allow(dead_code)]

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use lkl_rig::Netns;

/// A TCP service on a host stack: listens on `addr` inside `ns` and runs `handler` on a thread
/// per connection; stops accepting when dropped.
pub struct TcpService {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TcpService {
    pub fn start<F>(ns: &Netns, addr: SocketAddr, handler: F) -> TcpService
    where
        F: Fn(TcpStream, SocketAddr) + Send + Sync + 'static,
    {
        let listener = ns
            .in_thread(|| TcpListener::bind(addr))
            .expect("enter namespace")
            .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        // Non-blocking, polled, so that dropping the service can stop the loop.
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let handler = Arc::new(handler);
        let thread = thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, from)) => {
                        conn.set_nonblocking(false).unwrap();
                        let handler = handler.clone();
                        thread::spawn(move || handler(conn, from));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(2))
                    }
                    Err(e) => panic!("accept on {addr}: {e}"),
                }
            }
        });
        TcpService {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TcpService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads an HTTP request head (up to the blank line) and returns its path.
pub fn read_request_path(conn: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "request cut short",
            ));
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    Ok(head.split_whitespace().nth(1).unwrap_or("").to_string())
}
