//! Timeouts of the waiting calls: deadlines, and durations as the host's timespec.

use std::time::{Duration, Instant};

/// A timeout as a deadline; `None` waits forever.
#[derive(Clone, Copy)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    pub fn after(timeout: Option<Duration>) -> Deadline {
        Deadline(timeout.map(|t| Instant::now() + t))
    }

    /// Time left; `Some(ZERO)` once passed.
    pub fn remaining(self) -> Option<Duration> {
        self.0.map(|d| d.saturating_duration_since(Instant::now()))
    }

    pub fn passed(self) -> bool {
        self.remaining() == Some(Duration::ZERO)
    }
}

pub fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    }
}
