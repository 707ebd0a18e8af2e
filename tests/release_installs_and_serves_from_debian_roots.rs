//! The release on the distributions VPS users run, as they would use it: a Debian root made by
//! scripts/debian-root.sh (bullseye, glibc 2.31; bookworm, 2.36) gets the tarball unpacked and
//! installed by its install.sh, `lkl-run --check` passes there, and the root's own python3,
//! started by the installed lkl-run, serves 20 MiB through LKL to the rig's peer. Then
//! `install.sh --uninstall` leaves /usr/local as it found it.
//!
//! The root runs in the rig's container namespace: chroot into an overlay over the cached root
//! (which stays untouched), with /proc, /sys (of this network namespace) and /dev mounted, all
//! in a mount namespace of its own that vanishes with its processes.

mod release;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use lkl_rig::{Netns, Topology, VenetTopology};
use release::{checked, top_dir_name, TempDir};

/// Debian's default PATH, valid outside the root and inside it.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const PORT: u16 = 8080;
const FILE_SIZE: usize = 20 << 20;

/// Mounts the overlay and the kernel file systems, then runs the rest of the arguments chrooted.
const ENTER_ROOT: &str = r#"set -e
lower=$1 upper=$2 work=$3 root=$4
shift 4
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$root"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --rbind /dev "$root/dev"
exec chroot "$root" "$@"
"#;

/// A cached Debian root of `suite` with an overlay of this test's own over it.
struct Root {
    lower: String,
    dir: TempDir,
}

impl Root {
    fn new(suite: &str) -> Root {
        let out = checked(
            Command::new(release::repo().join("scripts/debian-root.sh")).arg(suite),
            "scripts/debian-root.sh",
        );
        let lower = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let dir = TempDir::new(&format!("root-{suite}"));
        for d in ["upper", "work", "merged"] {
            fs::create_dir(dir.path().join(d)).unwrap();
        }
        Root { lower, dir }
    }

    /// Where a file of the root is written before it is entered (the overlay's upper layer).
    fn upper(&self, path: &str) -> std::path::PathBuf {
        self.dir
            .path()
            .join("upper")
            .join(path.trim_start_matches('/'))
    }

    /// `sh -c SCRIPT` inside the root, in `ns`. Its mounts go with its last process, which
    /// the network namespace's end kills at the latest.
    fn command(&self, ns: &Netns, script: &str) -> Command {
        let mut cmd = ns.command("unshare").unwrap();
        let d = |name: &str| self.dir.path().join(name).display().to_string();
        cmd.args([
            "--mount",
            "--fork",
            "--kill-child",
            "--",
            "sh",
            "-c",
            ENTER_ROOT,
            "sh",
        ])
        .args([self.lower.clone(), d("upper"), d("work"), d("merged")])
        .args(["sh", "-c", script])
        .env("PATH", PATH)
        .env("HOME", "/root");
        cmd
    }

    fn run(&self, ns: &Netns, script: &str) -> Output {
        self.command(ns, script).output().unwrap()
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
    let root = Root::new(suite);
    let top = top_dir_name();
    fs::create_dir_all(root.upper("/root")).unwrap();
    fs::copy(
        tarball,
        root.upper("/root").join(tarball.file_name().unwrap()),
    )
    .unwrap();
    fs::create_dir_all(root.upper("/srv")).unwrap();
    let mut content = vec![0u8; FILE_SIZE];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut content))
        .unwrap();
    fs::write(root.upper("/srv/file.bin"), &content).unwrap();
    drop(content);

    let topo = VenetTopology::builder().build().unwrap();
    let ns = topo.container_ns();
    let usr_local = "find /usr/local | sort";
    let before = root.run(ns, usr_local);
    assert!(before.status.success(), "{}", text(&before));

    // The README's first command.
    let install = root.run(
        ns,
        &format!("cd /root && tar xzf {top}.tar.gz && {top}/install.sh"),
    );
    assert!(install.status.success(), "install.sh: {}", text(&install));
    eprintln!("{}", String::from_utf8_lossy(&install.stdout));

    let check = root.run(ns, "lkl-run --check -- python3");
    assert!(check.status.success(), "lkl-run --check: {}", text(&check));
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("ready"),
        "lkl-run --check: {}",
        text(&check)
    );

    // The README's second command, from the directory to serve.
    let log = root.dir.path().join("server.log");
    let mut server = root
        .command(
            ns,
            &format!("cd /srv && exec lkl-run --ports {PORT} -- python3 -m http.server {PORT}"),
        )
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        // Its own process group, for the SIGTERM at the end: unshare --fork passes none on.
        .process_group(0)
        .spawn()
        .unwrap();
    let site = format!("http://{}:{PORT}/", topo.addrs().host_v4);
    wait_serving(topo.peer_ns(), &site, &mut server, &log);
    let url = format!("{site}file.bin");

    let got = root.dir.path().join("got.bin");
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
    assert_eq!(
        sha256(&got),
        sha256(&root.upper("/srv/file.bin")),
        "the download differs"
    );
    // It came through LKL: the container's own stack has no listener on the port.
    let listeners = ns
        .run("ss", &["-ltnH", &format!("sport = :{PORT}")])
        .unwrap();
    assert!(
        listeners.trim().is_empty(),
        "the host stack listens: {listeners}"
    );

    // python3 ends at SIGTERM, then unshare with it (lkl-run's firewall watchdog has a session
    // of its own and removes the rules).
    // SAFETY: kill has no memory-safety preconditions; the group is our unwaited child's.
    unsafe { libc::kill(-(server.id() as libc::pid_t), libc::SIGTERM) };
    server.wait().unwrap();

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
