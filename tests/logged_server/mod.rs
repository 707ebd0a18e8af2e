//! A server process whose output goes to files, readable while it runs. On top of `common`
//! and `apps`.
#![allow(dead_code)]

use std::fs::File;
use std::path::PathBuf;
use std::process::Command;
use std::thread;

use crate::apps::Scratch;
use crate::common::Server;

/// A process whose stdout and stderr go to files, so they can be read while it runs (a pipe
/// would have to be drained); killed when dropped, and its stderr shown if the test failed.
pub struct LoggedServer {
    pub server: Server,
    logs: Scratch,
}

impl LoggedServer {
    pub fn spawn(mut cmd: Command, name: &str) -> LoggedServer {
        let tag: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let logs = Scratch::new(&format!("log-{tag}"));
        cmd.stdout(File::create(logs.join("stdout")).expect("stdout file"))
            .stderr(File::create(logs.join("stderr")).expect("stderr file"));
        LoggedServer {
            server: Server::spawn(cmd, name),
            logs,
        }
    }

    pub fn pid(&self) -> u32 {
        self.server.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        self.server.child.try_wait().expect("try_wait").is_none()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.logs.join("stdout")).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.logs.join("stderr")).unwrap_or_default()
    }

    pub fn stderr_path(&self) -> PathBuf {
        self.logs.join("stderr")
    }
}

impl Drop for LoggedServer {
    fn drop(&mut self) {
        if thread::panicking() {
            let _ = self.server.child.kill();
            let _ = self.server.child.wait();
            eprintln!(
                "--- {} stdout ---\n{}--- {} stderr ---\n{}",
                self.server.name,
                self.stdout(),
                self.server.name,
                self.stderr()
            );
        }
    }
}
