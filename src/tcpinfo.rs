//! What `ss -ti` would show for LKL's connections, which the host's `ss` cannot see: at debug
//! level (target `lkl_hijack::tcpinfo`, e.g. `RUST_LOG=lkl_hijack::tcpinfo=debug`), one line
//! when a connection is accepted and one when the program closes it, from TCP_INFO and
//! TCP_CONGESTION.

use std::mem::size_of;

use lkl::sys::{tcp_info, IPPROTO_TCP, TCP_CONGESTION, TCP_INFO};

use crate::kernel;

/// TCP states (include/net/tcp_states.h) that are no connection.
const TCP_CLOSE: u8 = 7;
const TCP_LISTEN: u8 = 10;

/// Logs `event` ("accepted", "closing") with the state of LKL socket `fd`, if it is a TCP
/// connection and the debug line is wanted.
pub fn log(event: &str, fd: lkl::Fd) {
    if log::log_enabled!(log::Level::Debug) {
        if let Some(line) = describe(fd) {
            log::debug!("{event} {line}");
        }
    }
}

fn describe(fd: lkl::Fd) -> Option<String> {
    kernel::with_kernel(|k| {
        let mut info = tcp_info::default();
        // SAFETY: tcp_info is plain integers; the kernel writes at most its size into it.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(
                (&mut info as *mut tcp_info).cast::<u8>(),
                size_of::<tcp_info>(),
            )
        };
        k.getsockopt(fd, IPPROTO_TCP, TCP_INFO, bytes).ok()?;
        if info.tcpi_state == TCP_CLOSE || info.tcpi_state == TCP_LISTEN {
            return None;
        }
        let mut cc = [0u8; 16];
        let n = k
            .getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, &mut cc)
            .ok()?;
        let cc = String::from_utf8_lossy(&cc[..n])
            .trim_end_matches('\0')
            .to_string();
        let peer = k.getpeername(fd).map_or("?".into(), |a| a.to_string());
        let local = k.getsockname(fd).map_or("?".into(), |a| a.to_string());
        let ms = |us: u32| f64::from(us) / 1000.0;
        let mbit = |bytes_per_s: u64| bytes_per_s as f64 * 8.0 / 1e6;
        Some(format!(
            "{peer} -> {local}: {cc}, rtt {:.2}/{:.2} ms, min rtt {:.2} ms, mss {}, cwnd {}, \
             sent {} B (retransmitted {} B), received {} B, delivery {:.1} Mbit/s, \
             pacing {:.1} Mbit/s",
            ms(info.tcpi_rtt),
            ms(info.tcpi_rttvar),
            ms(info.tcpi_min_rtt),
            info.tcpi_snd_mss,
            info.tcpi_snd_cwnd,
            info.tcpi_bytes_sent,
            info.tcpi_bytes_retrans,
            info.tcpi_bytes_received,
            mbit(info.tcpi_delivery_rate),
            mbit(info.tcpi_pacing_rate),
        ))
    })
    .ok()
    .flatten()
}
