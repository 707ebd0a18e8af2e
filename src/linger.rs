//! At exit: data the program wrote just before it ended is delivered. On the host the kernel
//! goes on sending what closed sockets still hold after the process is gone; LKL ends with
//! the process, so the exit waits, a little, until its connections have sent their last data
//! and FIN and the peers have acknowledged them (a pre-fork server's worker that finishes its
//! last download and exits, say).

use std::time::{Duration, Instant};

use crate::kernel;

/// The longest an exit waits: a peer that has gone away would otherwise hold it for as long
/// as TCP retransmits.
const LIMIT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(5);

/// TCP states (include/net/tcp_states.h, as /proc/net/tcp shows them) of a closed socket
/// whose data or FIN is not acknowledged yet: FIN_WAIT1, LAST_ACK, CLOSING.
const SENDING: [&str; 3] = ["04", "09", "0B"];

/// Waits until no closed connection has data or a FIN on its way, or `LIMIT` passes. Call
/// after the program's sockets are closed.
pub fn deliver_closed_connections() {
    let started = Instant::now();
    loop {
        let left = sending();
        if left == 0 {
            return;
        }
        if started.elapsed() >= LIMIT {
            log::debug!("exit: {left} closed connection(s) still sending after {LIMIT:?}");
            return;
        }
        std::thread::sleep(POLL);
    }
}

/// How many of the kernel's TCP sockets are closing with something unacknowledged.
fn sending() -> usize {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| kernel::with_kernel(|k| k.read_file(path)).ok()?.ok())
        .map(|table| {
            table
                .lines()
                .skip(1)
                .filter(|line| {
                    line.split_whitespace()
                        .nth(3)
                        .is_some_and(|st| SENDING.contains(&st))
                })
                .count()
        })
        .sum()
}
