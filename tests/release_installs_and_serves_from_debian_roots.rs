//! The release on the distributions VPS users run, used as the README says: in a Debian root
//! made by scripts/debian-root.sh (bullseye, glibc 2.31; bookworm, 2.36), the README's first
//! command unpacks the tarball and installs it with its install.sh, `lkl-run --check` passes,
//! and the README's second command has the root's own python3, started by the installed
//! lkl-run, serve 20 MiB through LKL to the rig's peer. Then `install.sh --uninstall` leaves
//! /usr/local as it found it.
//!
//! The root runs in the rig's container namespace: chroot into an overlay over the cached root
//! (which stays untouched), with /proc, /sys (of this network namespace) and /dev mounted, in
//! one mount namespace that a holder process keeps for the test (one overlay mount: two over
//! the same upper layer at once would be undefined).

mod release;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use lkl_rig::{Netns, Topology, VenetTopology};
use release::{checked, top_dir_name, TempDir};

/// Debian's default PATH, valid outside the root and inside it.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const PORT: u16 = 8080;
const FILE_SIZE: usize = 20 << 20;

/// Run by `unshare --mount --fork` (so in a mount namespace of its own): mounts the overlay and
/// the kernel file systems, says so, and holds the namespace until killed. The overlay's upper
/// layer starts as a copy of `seed` on a tmpfs of its own: overlayfs refuses an upper layer on
/// overlayfs, which /tmp is in a container or a fresh machine's root.
const HOLD_ROOT: &str = r#"set -e
lower=$1 seed=$2 layers=$3 root=$4
mount -t tmpfs -o size=1g tmpfs "$layers"
mkdir "$layers/upper" "$layers/work"
cp -a "$seed/." "$layers/upper/"
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$layers/upper,workdir=$layers/work" "$root"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --rbind /dev "$root/dev"
echo mounted
exec sleep infinity
"#;

/// A cached Debian root of a suite (scripts/debian-root.sh), overlaid and mounted.
struct Root {
    /// `unshare`, in the mount namespace; killing it kills its child and so ends the mounts.
    holder: Child,
    merged: PathBuf,
}

impl Root {
    /// The overlay's upper layer starts as a copy of `dir`/upper (which may already hold
    /// files), on a tmpfs mounted on `dir`/layers; the overlay is mounted on `dir`/merged, in a
    /// mount namespace whose processes are in `ns`.
    fn enter(suite: &str, dir: &Path, ns: &Netns) -> Root {
        let out = checked(
            Command::new(release::repo().join("scripts/debian-root.sh")).arg(suite),
            "scripts/debian-root.sh",
        );
        let lower = String::from_utf8(out.stdout).unwrap().trim().to_string();
        for d in ["upper", "layers", "merged"] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        let mut holder = ns
            .command("unshare")
            .unwrap()
            .args([
                "--mount",
                "--fork",
                "--kill-child",
                "--",
                "sh",
                "-c",
                HOLD_ROOT,
                "sh",
            ])
            .arg(&lower)
            .args(["upper", "layers", "merged"].map(|d| dir.join(d)))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut said = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut said)
            .unwrap();
        assert_eq!(said.trim(), "mounted", "mounting the {suite} root failed");
        Root {
            holder,
            merged: dir.join("merged"),
        }
    }

    /// `sh -c SCRIPT` in the root, in `ns`. nsenter and chroot exec what follows them, so the
    /// child is, in the end, the script's last exec'd program. Entering a mount namespace sets
    /// the root directory to the namespace's own: `--root` keeps the holder's instead, which
    /// differs where this test itself runs chrooted (a fresh machine's root).
    fn command(&self, ns: &Netns, script: &str) -> Command {
        let mut cmd = ns.command("nsenter").unwrap();
        cmd.args([
            "--target",
            &self.holder.id().to_string(),
            "--mount",
            "--root",
        ])
        .args(["--", "chroot"])
        .arg(&self.merged)
        .args(["sh", "-c", script])
        .env("PATH", PATH)
        .env("HOME", "/root");
        cmd
    }

    fn run(&self, ns: &Netns, script: &str) -> Output {
        self.command(ns, script).output().unwrap()
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn sha256(file: &Path) -> String {
    let out = checked(Command::new("sha256sum").arg(file), "sha256sum");
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The two commands of the README's "Install a release": unpack and install, then serve.
fn readme_commands() -> (String, String) {
    let readme = fs::read_to_string(release::repo().join("README.md")).unwrap();
    let section = readme
        .split_once("## Install a release")
        .expect("README.md has no \"Install a release\" section")
        .1;
    let block = section
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("no sh block in the README's \"Install a release\"")
        .0;
    let lines: Vec<&str> = block.lines().collect();
    assert_eq!(lines.len(), 2, "two commands expected:\n{block}");
    (lines[0].to_string(), lines[1].to_string())
}

/// Waits until the peer gets an answer from `url`; panics with the server's log if it ends or
/// does not answer in time.
fn wait_serving(peer: &Netns, url: &str, server: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let probe = peer
            .command("curl")
            .unwrap()
            .args(["-s", "-f", "-o", "/dev/null", "--max-time", "2", url])
            .status()
            .unwrap();
        if probe.success() {
            return;
        }
        let log = || fs::read_to_string(log).unwrap_or_default();
        if let Some(status) = server.try_wait().unwrap() {
            panic!(
                "the server ended ({status}) before serving {url}:\n{}",
                log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no answer from {url} within 30 s:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn installs_checks_serves_and_uninstalls(suite: &str) {
    let tarball = release::tarball();
    let top = top_dir_name();
    let (install_command, serve_command) = readme_commands();
    assert!(
        install_command.contains(&format!("{top}.tar.gz")),
        "the README installs another tarball than {top}.tar.gz: {install_command}"
    );
    assert!(
        serve_command.contains(&format!("--ports {PORT}")),
        "the README serves another port than {PORT}: {serve_command}"
    );
    // Dropped last: the namespaces' processes, and with them the mounts, are gone by then.
    let dir = TempDir::new(&format!("root-{suite}"));
    // The files the root starts with, in the overlay's upper layer before it is mounted.
    let upper = dir.path().join("upper");
    fs::create_dir_all(upper.join("root")).unwrap();
    fs::copy(
        tarball,
        upper.join("root").join(tarball.file_name().unwrap()),
    )
    .unwrap();
    fs::create_dir_all(upper.join("srv")).unwrap();
    let served = upper.join("srv/file.bin");
    let mut content = vec![0u8; FILE_SIZE];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut content))
        .unwrap();
    fs::write(&served, &content).unwrap();
    drop(content);

    let topo = VenetTopology::builder().build().unwrap();
    let ns = topo.container_ns();
    let root = Root::enter(suite, dir.path(), ns);
    let usr_local = "find /usr/local | sort";
    let before = root.run(ns, usr_local);
    assert!(before.status.success(), "{}", text(&before));

    let install = root.run(ns, &format!("cd /root && {install_command}"));
    assert!(install.status.success(), "install.sh: {}", text(&install));
    eprintln!("{}", String::from_utf8_lossy(&install.stdout));

    let check = root.run(ns, "lkl-run --check -- python3");
    assert!(check.status.success(), "lkl-run --check: {}", text(&check));
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("ready"),
        "lkl-run --check: {}",
        text(&check)
    );

    // From the directory it serves.
    let log = dir.path().join("server.log");
    let mut server = root
        .command(ns, &format!("cd /srv && exec {serve_command}"))
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let site = format!("http://{}:{PORT}/", topo.addrs().host_v4);
    wait_serving(topo.peer_ns(), &site, &mut server, &log);
    let url = format!("{site}file.bin");

    let got = dir.path().join("got.bin");
    let started = Instant::now();
    let fetch = topo
        .peer_ns()
        .command("curl")
        .unwrap()
        .args(["-s", "-S", "-f", "--max-time", "120", "-o"])
        .arg(&got)
        .arg(&url)
        .output()
        .unwrap();
    assert!(fetch.status.success(), "curl {url}: {}", text(&fetch));
    eprintln!("{suite}: 20 MiB in {:.2?}", started.elapsed());
    assert_eq!(fs::metadata(&got).unwrap().len(), FILE_SIZE as u64);
    assert_eq!(sha256(&got), sha256(&served), "the download differs");
    // It came through LKL: the container's own stack has no listener on the port.
    let listeners = ns
        .run("ss", &["-ltnH", &format!("sport = :{PORT}")])
        .unwrap();
    assert!(
        listeners.trim().is_empty(),
        "the host stack listens: {listeners}"
    );

    // The child is python3 by now (lkl-run execs it).
    // SAFETY: kill has no memory-safety preconditions; the pid is our unwaited child's.
    unsafe { libc::kill(server.id() as libc::pid_t, libc::SIGTERM) };
    let status = server.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGTERM),
        "the server did not end by SIGTERM: {status}; log:\n{}",
        fs::read_to_string(&log).unwrap_or_default()
    );

    let uninstall = root.run(ns, &format!("cd /root && {top}/install.sh --uninstall"));
    assert!(
        uninstall.status.success(),
        "install.sh --uninstall: {}",
        text(&uninstall)
    );
    let after = root.run(ns, usr_local);
    assert_eq!(
        String::from_utf8_lossy(&after.stdout),
        String::from_utf8_lossy(&before.stdout),
        "/usr/local after --uninstall differs from before the install"
    );
}

#[test]
fn debian_11_bullseye_installs_checks_serves_and_uninstalls_the_release() {
    installs_checks_serves_and_uninstalls("bullseye");
}

#[test]
fn debian_12_bookworm_installs_checks_serves_and_uninstalls_the_release() {
    installs_checks_serves_and_uninstalls("bookworm");
}
