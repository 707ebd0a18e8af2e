//! Named network namespaces (`ip netns`), owned by the rig and destroyed with everything in them.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write as _};
use std::os::fd::AsFd;
use std::os::linux::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::sys;

/// Where `ip netns` keeps its namespace files.
pub const NETNS_DIR: &str = "/run/netns";
/// Name prefix of container namespaces.
pub const CONTAINER_PREFIX: &str = "lklc-";
/// Name prefix of peer namespaces.
pub const PEER_PREFIX: &str = "lklp-";

/// `/run/netns/NAME`, or `name` itself if it is a path.
pub fn path_of(name: &str) -> PathBuf {
    if name.contains('/') {
        PathBuf::from(name)
    } else {
        Path::new(NETNS_DIR).join(name)
    }
}

/// Runs a command to completion; its exit status must be 0. Returns stdout.
pub(crate) fn check_output(cmd: &mut Command, stdin: Option<&str>) -> io::Result<String> {
    let shown = format!("{cmd:?}").replace('"', "");
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run `{shown}`: {e}")))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        // What it said on stderr, or else its last two lines of stdout (ping's summary).
        let (stderr, stdout) = (
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
        );
        let mut said: Vec<&str> = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if said.is_empty() {
            said = stdout
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            said.drain(..said.len().saturating_sub(2));
        }
        return Err(io::Error::other(format!(
            "`{shown}` failed ({}): {}",
            out.status,
            said.join("; ")
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `ip` with `args`.
pub(crate) fn ip(args: &[&str]) -> io::Result<String> {
    check_output(Command::new("ip").args(args), None)
}

/// Runs `ip -n NETNS -batch -` with one command per line.
pub(crate) fn ip_batch(netns: &str, commands: &[String]) -> io::Result<()> {
    check_output(
        Command::new("ip").args(["-n", netns, "-batch", "-"]),
        Some(&commands.join("\n")),
    )
    .map(drop)
}

/// A network namespace created by the rig. Dropping it kills every process inside and deletes
/// it (which destroys its interfaces), unless it was [kept](Netns::keep).
#[derive(Debug)]
pub struct Netns {
    name: String,
    owned: bool,
}

/// Serialises `ip netns add`: the first one mounts /run/netns, which is racy.
static CREATE_LOCK: Mutex<()> = Mutex::new(());

impl Netns {
    /// Creates the namespace `name` with its loopback up.
    pub(crate) fn create(name: &str) -> io::Result<Netns> {
        {
            let _guard = CREATE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            if path_of(name).exists() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("network namespace {name} already exists"),
                ));
            }
            ip(&["netns", "add", name])?;
        }
        let ns = Netns {
            name: name.to_string(),
            owned: true,
        };
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace name (as listed by `ip netns list`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stops owning the namespace: dropping this no longer destroys it.
    pub(crate) fn keep(mut self) {
        self.owned = false;
    }

    /// A [`Command`] that runs `program` inside this namespace (the child enters it with
    /// `setns` between fork and exec; the mount namespace stays the caller's).
    pub fn command(&self, program: impl AsRef<OsStr>) -> io::Result<Command> {
        let ns = sys::open_netns(&path_of(&self.name))?;
        let mut cmd = Command::new(program);
        // SAFETY: the hook runs in the forked child before exec and only calls setns (a plain
        // syscall, async-signal-safe) on a descriptor the closure owns.
        unsafe {
            cmd.pre_exec(move || sys::setns_net(ns.as_fd()));
        }
        Ok(cmd)
    }

    /// Runs `program args...` inside the namespace and returns its stdout; a non-zero exit is
    /// an error carrying its stderr.
    pub fn run(&self, program: &str, args: &[&str]) -> io::Result<String> {
        check_output(self.command(program)?.args(args), None)
            .map_err(|e| io::Error::new(e.kind(), format!("in {}: {e}", self.name)))
    }

    /// Runs `f` on a new thread that has entered this namespace; sockets it creates belong to
    /// the namespace (and stay there when used from other threads).
    pub fn spawn_thread<T, F>(&self, f: F) -> io::Result<JoinHandle<T>>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let ns = sys::open_netns(&path_of(&self.name))?;
        let name = self.name.clone();
        thread::Builder::new()
            .name(format!("in-{name}"))
            .spawn(move || {
                if let Err(e) = sys::setns_net(ns.as_fd()) {
                    panic!("cannot enter network namespace {name}: {e}");
                }
                drop(ns);
                f()
            })
    }

    /// Runs `f` inside this namespace on a scoped thread and returns its result (a panic in
    /// `f` is propagated). `f` may borrow from the caller.
    pub fn in_thread<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        let ns = sys::open_netns(&path_of(&self.name))?;
        thread::scope(|s| {
            let handle = s.spawn(move || {
                sys::setns_net(ns.as_fd()).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot enter network namespace {}: {e}", self.name),
                    )
                })?;
                drop(ns);
                Ok(f())
            });
            handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Processes whose network namespace is this one.
    pub fn pids(&self) -> io::Result<Vec<u32>> {
        pids_in(&path_of(&self.name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if self.owned {
            if let Err(e) = destroy(&self.name) {
                log::warn!("{e}");
            }
        }
    }
}

/// Processes (other than this one) whose network namespace is the one `ns_path` refers to.
fn pids_in(ns_path: &Path) -> io::Result<Vec<u32>> {
    let target = fs::metadata(ns_path)?;
    let me = std::process::id();
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc")? {
        let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // Processes vanish while we look, and zombies have no namespace: skip what fails.
        if let Ok(meta) = fs::metadata(format!("/proc/{pid}/ns/net")) {
            if pid != me && meta.st_dev() == target.st_dev() && meta.st_ino() == target.st_ino() {
                pids.push(pid);
            }
        }
    }
    Ok(pids)
}

/// Kills every process inside the namespace `name`, then deletes it. A namespace that does not
/// exist is not an error.
pub fn destroy(name: &str) -> io::Result<()> {
    let path = path_of(name);
    if !path.exists() {
        return Ok(());
    }
    // SIGTERM first (a forwarder then prints its counters), SIGKILL after a grace period.
    let start = Instant::now();
    loop {
        let pids = pids_in(&path)?;
        if pids.is_empty() {
            break;
        }
        let waited = start.elapsed();
        if waited > Duration::from_secs(3) {
            return Err(io::Error::other(format!(
                "processes {pids:?} in network namespace {name} do not die"
            )));
        }
        let sig = if waited < Duration::from_millis(300) {
            libc::SIGTERM
        } else {
            libc::SIGKILL
        };
        for pid in pids {
            // Already gone is fine.
            let _ = sys::kill(pid, sig);
        }
        thread::sleep(Duration::from_millis(10));
    }
    match ip(&["netns", "delete", name]) {
        Err(_) if !path.exists() => Ok(()),
        other => other.map(drop),
    }
}

/// The rig's namespaces currently present (both kinds, any owner).
pub fn list() -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    let entries = match fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(e),
    };
    for entry in entries {
        if let Some(name) = entry?.file_name().to_str() {
            if name.starts_with(CONTAINER_PREFIX) || name.starts_with(PEER_PREFIX) {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// The pid a namespace or file tag `PID-N` was made for.
pub(crate) fn owner_of(tag: &str) -> Option<u32> {
    let (pid, n) = tag.split_once('-')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

static STALE_LOCK: Mutex<()> = Mutex::new(());

/// Destroys namespaces (and stats files) that rig runs of processes no longer alive left behind.
pub fn remove_stale() {
    let _guard = STALE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let names = list().unwrap_or_else(|e| {
        log::warn!("cannot list {NETNS_DIR}: {e}");
        Vec::new()
    });
    for name in names {
        let tag = name
            .strip_prefix(CONTAINER_PREFIX)
            .or_else(|| name.strip_prefix(PEER_PREFIX));
        if let Some(pid) = tag.and_then(owner_of) {
            if !alive(pid) {
                log::info!("removing stale network namespace {name} (pid {pid} is gone)");
                if let Err(e) = destroy(&name) {
                    log::warn!("{e}");
                }
            }
        }
    }
    crate::topology::remove_stale_files(alive);
}
