//! The kernel's console and its panic: printk output, line by line, to the `log` crate.

use std::ffi::{c_char, c_int};

use log::Level;
use std::sync::Mutex;

use crate::locks::lock;

use super::no_unwind;

/// Kernel output not yet ended by a newline: printk hands lines over in pieces.
static CONSOLE: Mutex<Vec<u8>> = Mutex::new(Vec::new());

pub(super) unsafe extern "C" fn print(text: *const c_char, len: c_int) {
    no_unwind("print", || {
        let Ok(len) = usize::try_from(len) else {
            return;
        };
        if text.is_null() || len == 0 {
            return;
        }
        // SAFETY: the kernel passes `len` readable bytes at `text` for the duration of the call.
        let bytes = unsafe { std::slice::from_raw_parts(text.cast::<u8>(), len) };
        let mut pending = lock(&CONSOLE);
        pending.extend_from_slice(bytes);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            log_kernel_line(&line[..end]);
        }
    })
}

/// Logs what is left of an unfinished console line (at halt or panic).
pub(crate) fn flush_console() {
    let rest = std::mem::take(&mut *lock(&CONSOLE));
    if !rest.is_empty() {
        log_kernel_line(&rest);
    }
}

fn log_kernel_line(line: &[u8]) {
    let line = String::from_utf8_lossy(line);
    let (level, text) = printk_level(&line);
    log::log!(target: "lkl::kernel", level, "{text}");
}

/// Maps a printk level prefix ("<3>...") to a log level; unprefixed lines are info.
fn printk_level(line: &str) -> (Level, &str) {
    let b = line.as_bytes();
    if b.len() >= 3 && b[0] == b'<' && b[2] == b'>' && b[1].is_ascii_digit() {
        let level = match b[1] - b'0' {
            0..=3 => Level::Error,
            4 => Level::Warn,
            5 | 6 => Level::Info,
            _ => Level::Debug,
        };
        (level, &line[3..])
    } else {
        (Level::Info, line)
    }
}

pub(super) unsafe extern "C" fn kernel_panic() {
    no_unwind("panic", || {
        flush_console();
        log::error!(target: "lkl::kernel", "kernel panic: aborting the process");
        log::logger().flush();
    });
    std::process::abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printk_levels_map_to_log_levels() {
        assert_eq!(printk_level("<3>oops"), (Level::Error, "oops"));
        assert_eq!(printk_level("<4>careful"), (Level::Warn, "careful"));
        assert_eq!(printk_level("<6>hello"), (Level::Info, "hello"));
        assert_eq!(printk_level("<7>detail"), (Level::Debug, "detail"));
        assert_eq!(printk_level("plain <3>"), (Level::Info, "plain <3>"));
    }
}
