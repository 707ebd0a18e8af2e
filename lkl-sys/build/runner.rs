//! Running the kernel build's commands with their output in one log, and reporting a failure
//! with the log's error lines and tail.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Lines of the build log shown when a step fails.
const LOG_TAIL_LINES: usize = 40;

/// The steps of one kernel build, writing everything they print to one log file.
pub struct Build {
    pub log_path: PathBuf,
    pub log: File,
    pub started: Instant,
}

impl Build {
    pub fn stage(&self, what: &str) {
        println!(
            "cargo:warning=lkl-sys: {what} ({:.0?} elapsed)",
            self.started.elapsed()
        );
    }

    /// Runs a command with its output appended to the log; panics with the log's tail on failure.
    pub fn run(&mut self, cmd: &mut Command) {
        writeln!(self.log, "\n$ {cmd:?}")
            .and_then(|_| self.log.flush())
            .expect("write build log");
        let out = self.log.try_clone().expect("dup log fd");
        let err = self.log.try_clone().expect("dup log fd");
        let status = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .status()
            .unwrap_or_else(|e| {
                panic!("cannot run {cmd:?}: {e} (scripts/setup.sh installs the build tools)")
            });
        if !status.success() {
            self.fail(&format!("{cmd:?} failed ({status})"));
        }
    }

    pub fn fail(&self, what: &str) -> ! {
        let (errors, tail) = log_summary(&self.log_path);
        panic!(
            "\n\nbuilding the kernel library failed: {what}\n\
             --- error lines in {log} ---\n{errors}\n\
             --- last {LOG_TAIL_LINES} lines of {log} ---\n{tail}\n--- end of log ---\n",
            log = self.log_path.display()
        );
    }
}

/// The first error lines of a log (with -j, make's last lines are often other jobs' output)
/// and its last lines.
fn log_summary(path: &Path) -> (String, String) {
    let Ok(file) = File::open(path) else {
        return ("(no log)".into(), "(no log)".into());
    };
    let lines: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
    let is_error = |l: &&String| {
        [
            "error:",
            "Error ",
            "No rule to make",
            "undefined reference",
            "multiple definition",
        ]
        .iter()
        .any(|m| l.contains(m))
    };
    let errors: Vec<&str> = lines
        .iter()
        .filter(is_error)
        .take(20)
        .map(String::as_str)
        .collect();
    let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
    (errors.join("\n"), tail)
}
