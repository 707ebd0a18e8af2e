//! Comparing a program's output under the preload with its output on the host kernel: run
//! with a time limit, and the first differing lines shown as "host / lkl" pairs.

use std::process::{Command, Output};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Runs `cmd` to completion, stdout and stderr captured; killed, and the test failed, after
/// `limit` (the program's own watchdog should have fired first).
pub fn run_limited(mut cmd: Command, limit: Duration, name: &str) -> Output {
    let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap_or_else(|e| panic!("wait for {name}: {e}")),
        Err(_) => {
            // SAFETY: kill(2) on our child, which has not been reaped (the waiter is stuck).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            let out = rx.recv().expect("waiter").expect("wait");
            panic!(
                "{name} did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The first differing lines of two outputs, with a little context, as "host / lkl" pairs;
/// `None` when they are the same.
pub fn diff(host: &str, lkl: &str) -> Option<String> {
    let (h, l): (Vec<&str>, Vec<&str>) = (host.lines().collect(), lkl.lines().collect());
    let first = (0..h.len().max(l.len())).find(|&i| h.get(i) != l.get(i))?;
    let mut text = String::new();
    let context = first.saturating_sub(3);
    for (i, line) in h.iter().enumerate().take(first).skip(context) {
        text += &format!("  {:>4}   {line}\n", i + 1);
    }
    let mut shown = 0;
    for i in first..h.len().max(l.len()) {
        if h.get(i) == l.get(i) {
            continue;
        }
        let show = |s: Option<&&str>| s.map_or("(no line)".to_string(), |s| s.to_string());
        text += &format!(
            "  {:>4} host: {}\n       lkl:  {}\n",
            i + 1,
            show(h.get(i)),
            show(l.get(i))
        );
        shown += 1;
        if shown == 25 {
            text += "  ...\n";
            break;
        }
    }
    let differing = (0..h.len().max(l.len()))
        .filter(|&i| h.get(i) != l.get(i))
        .count();
    Some(format!(
        "{differing} of {} lines differ (host {} lines, lkl {}); from line {}:\n{text}",
        h.len().max(l.len()),
        h.len(),
        l.len(),
        first + 1
    ))
}
