//! The "host node": moves IP packets between two tun devices, optionally impairing the link.
//!
//! The forwarder opens both tun devices itself: for each endpoint it moves its (single) thread
//! into the endpoint's network namespace with `setns` and attaches to the device there, so it
//! ends up living in endpoint B's namespace (the peer's, in the venet topology). The devices
//! are persistent tun devices created beforehand (`ip tuntap add`), so their addresses and routes
//! survive a forwarder restart.
//!
//! Control, by signal: SIGUSR1 turns the blackhole on (every packet read is dropped), SIGUSR2
//! turns it off, SIGRTMIN pauses the random impairments and SIGRTMIN+1 resumes them (a fault
//! spell: real links fail for a while, then recover), SIGHUP writes the stats file now, SIGTERM/SIGINT (or the exit of the owner
//! process) print the counters to stderr, write the stats file and stop.

mod link;
mod stats;

use std::io::{self, Write as _};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

pub use link::{Impairments, Switches, IMPAIRMENT_USAGE};
pub use stats::{DirStats, Stats};

use crate::sys::{self, Epoll, SignalFd, TimerFd};
use link::{Direction, LinkParams, MAX_PACKET};

/// One side of the forwarder: a tun device, in a network namespace or in the caller's.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    /// Network namespace name (as in `/run/netns/NAME`) or path; None: the current namespace.
    pub netns: Option<String>,
    /// tun device name.
    pub dev: String,
}

/// Everything the forwarder needs to run.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub a: Endpoint,
    pub b: Endpoint,
    pub link: Impairments,
    /// Where SIGHUP and exit write the counters ([`Stats::render`] format).
    pub stats_file: Option<PathBuf>,
    /// Stop when this process exits (so a killed test leaves no forwarder behind).
    pub owner_pid: Option<u32>,
}

/// Command line help of `lkl-forwarder`.
pub fn usage() -> String {
    format!(
        "usage: lkl-forwarder --a-dev DEV [--a-netns NS] --b-dev DEV [--b-netns NS] [options]
Moves packets between two tun devices (IFF_TUN|IFF_NO_PI), impairing the link on the way.
Prints `ready` on stdout once both devices are attached.
  --a-netns NS / --b-netns NS   network namespace (name in /run/netns, or a path) of each device
  --stats-file PATH    write counters here on SIGHUP and on exit
  --owner-pid PID      exit when process PID exits
{IMPAIRMENT_USAGE}
Signals: SIGUSR1 blackhole on, SIGUSR2 blackhole off, SIGRTMIN random faults off,
SIGRTMIN+1 random faults on, SIGHUP dump stats, SIGTERM/SIGINT stop."
    )
}

impl Config {
    /// Parses `lkl-forwarder`'s arguments (without the program name).
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Config, String> {
        let mut link = Impairments::default();
        let (mut a_dev, mut a_ns, mut b_dev, mut b_ns) = (None, None, None, None);
        let (mut stats_file, mut owner_pid) = (None, None);
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let value = args
                .next()
                .ok_or_else(|| format!("{flag}: missing value"))?;
            if link.parse_flag(&flag, &value)? {
                continue;
            }
            match flag.as_str() {
                "--a-dev" => a_dev = Some(value),
                "--a-netns" => a_ns = Some(value),
                "--b-dev" => b_dev = Some(value),
                "--b-netns" => b_ns = Some(value),
                "--stats-file" => stats_file = Some(PathBuf::from(value)),
                "--owner-pid" => {
                    owner_pid = Some(
                        value
                            .parse()
                            .map_err(|_| format!("--owner-pid {value:?}: expected a pid"))?,
                    )
                }
                _ => return Err(format!("unknown option {flag:?}")),
            }
        }
        link.validate()?;
        Ok(Config {
            a: Endpoint {
                netns: a_ns,
                dev: a_dev.ok_or("missing --a-dev")?,
            },
            b: Endpoint {
                netns: b_ns,
                dev: b_dev.ok_or("missing --b-dev")?,
            },
            link,
            stats_file,
            owner_pid,
        })
    }

    /// The arguments [`Config::parse`] turns back into this configuration.
    pub fn to_args(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (side, ep) in [("a", &self.a), ("b", &self.b)] {
            out.extend([format!("--{side}-dev"), ep.dev.clone()]);
            if let Some(ns) = &ep.netns {
                out.extend([format!("--{side}-netns"), ns.clone()]);
            }
        }
        out.extend(self.link.to_args());
        if let Some(path) = &self.stats_file {
            out.extend(["--stats-file".to_string(), path.display().to_string()]);
        }
        if let Some(pid) = self.owner_pid {
            out.extend(["--owner-pid".to_string(), pid.to_string()]);
        }
        out
    }
}

fn open_endpoint(ep: &Endpoint) -> io::Result<OwnedFd> {
    let place = match &ep.netns {
        Some(ns) => {
            let file = sys::open_netns(&crate::netns::path_of(ns))?;
            sys::setns_net(file.as_fd()).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot enter network namespace {ns}: {e}"),
                )
            })?;
            format!("network namespace {ns}")
        }
        None => "the current network namespace".to_string(),
    };
    sys::open_tun(&ep.dev).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot attach to tun device {} in {place}: {e}", ep.dev),
        )
    })
}

/// Writes the stats file atomically (temporary file + rename).
fn write_stats(path: &Path, stats: &Stats) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, stats.render())?;
    std::fs::rename(&tmp, path)
}

const TOKEN_A: u64 = 0;
const TOKEN_B: u64 = 1;
const TOKEN_TIMER: u64 = 2;
const TOKEN_SIGNAL: u64 = 3;
const TOKEN_OWNER: u64 = 4;

/// Runs the forwarder until SIGTERM/SIGINT or the owner's exit; returns the final counters.
///
/// Blocks SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGRTMIN and SIGRTMIN+1 in the calling
/// thread (they are read
/// through a signalfd, so the process must not have other threads that leave them unblocked),
/// and leaves the calling thread in endpoint B's network namespace.
pub fn run(cfg: &Config) -> io::Result<Stats> {
    use libc::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
    let (faults_off, faults_on) = (libc::SIGRTMIN(), libc::SIGRTMIN() + 1);
    let signals = SignalFd::new(&[
        SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, faults_off, faults_on,
    ])?;
    let fds = [open_endpoint(&cfg.a)?, open_endpoint(&cfg.b)?];
    let owner =
        match cfg.owner_pid {
            Some(pid) => Some(sys::pidfd_open(pid).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot watch owner pid {pid}: {e}"))
            })?),
            None => None,
        };
    let timer = TimerFd::new()?;
    let epoll = Epoll::new()?;
    epoll.add(fds[0].as_fd(), TOKEN_A)?;
    epoll.add(fds[1].as_fd(), TOKEN_B)?;
    epoll.add(timer.as_fd(), TOKEN_TIMER)?;
    epoll.add(signals.as_fd(), TOKEN_SIGNAL)?;
    if let Some(owner) = &owner {
        epoll.add(owner.as_fd(), TOKEN_OWNER)?;
    }

    let params = LinkParams::new(&cfg.link);
    let mut dirs = [
        Direction::new(cfg.link.seed),
        Direction::new(cfg.link.seed ^ 0xa5a5_a5a5_a5a5_a5a5),
    ];
    let mut scratch = vec![0u8; MAX_PACKET];
    let mut switches = Switches {
        blackhole: false,
        faults: true,
    };
    let mut seq = 0;
    let mut armed = None;
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 8];

    // Whoever waits for readiness may have gone away: a closed stdout is not an error.
    let mut stdout = io::stdout().lock();
    let _ = writeln!(stdout, "ready").and_then(|()| stdout.flush());
    drop(stdout);

    let mut running = true;
    while running {
        let deadline = match (dirs[0].next_deadline(), dirs[1].next_deadline()) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        if deadline != armed {
            timer.set(deadline)?;
            armed = deadline;
        }
        let n = epoll.wait(&mut events, -1)?;
        let now = sys::monotonic_ns();
        for ev in &events[..n] {
            match ev.u64 {
                TOKEN_A => dirs[0].receive(fds[0].as_fd(), &params, switches, now, &mut scratch)?,
                TOKEN_B => dirs[1].receive(fds[1].as_fd(), &params, switches, now, &mut scratch)?,
                TOKEN_TIMER => {
                    timer.drain()?;
                    armed = None;
                }
                TOKEN_SIGNAL => {
                    while let Some(sig) = signals.read()? {
                        match sig {
                            SIGUSR1 => switches.blackhole = true,
                            SIGUSR2 => switches.blackhole = false,
                            s if s == faults_off => switches.faults = false,
                            s if s == faults_on => switches.faults = true,
                            SIGHUP => {
                                seq += 1;
                                let stats = Stats {
                                    seq,
                                    switches,
                                    a2b: dirs[0].stats,
                                    b2a: dirs[1].stats,
                                };
                                if let Some(path) = &cfg.stats_file {
                                    if let Err(e) = write_stats(path, &stats) {
                                        eprintln!(
                                            "lkl-forwarder: cannot write {}: {e}",
                                            path.display()
                                        );
                                    }
                                }
                            }
                            _ => running = false,
                        }
                    }
                }
                _ => running = false,
            }
        }
        dirs[0].flush(fds[1].as_fd(), now);
        dirs[1].flush(fds[0].as_fd(), now);
    }

    let stats = Stats {
        seq: seq + 1,
        switches,
        a2b: dirs[0].stats,
        b2a: dirs[1].stats,
    };
    eprint!("{}", stats.summary());
    if let Some(path) = &cfg.stats_file {
        write_stats(path, &stats).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()))
        })?;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn config_round_trips_through_args() {
        let cfg = Config::parse(args(
            "--a-dev venet0 --a-netns c --b-dev tun0 --b-netns p --loss 2 --delay-ms 20 --stats-file /tmp/s --owner-pid 5",
        ))
        .unwrap();
        assert_eq!(
            cfg.a,
            Endpoint {
                netns: Some("c".into()),
                dev: "venet0".into()
            }
        );
        assert_eq!(cfg.link.loss_pct, 2.0);
        assert_eq!(cfg.owner_pid, Some(5));
        assert_eq!(Config::parse(cfg.to_args()), Ok(cfg));
    }

    #[test]
    fn config_errors_name_the_option() {
        assert_eq!(
            Config::parse(args("--b-dev x")).unwrap_err(),
            "missing --a-dev"
        );
        assert_eq!(
            Config::parse(args("--a-dev x --b-dev y --bogus 1")).unwrap_err(),
            "unknown option \"--bogus\""
        );
        assert_eq!(
            Config::parse(args("--a-dev")).unwrap_err(),
            "--a-dev: missing value"
        );
        assert!(Config::parse(args("--a-dev x --b-dev y --owner-pid me"))
            .unwrap_err()
            .contains("--owner-pid"));
    }
}
