//! The memory of v2ray after a job: a dokodemo-door on port 1080 forwarding a 20 MiB download
//! (curl in the peer, a web server in the peer), checked byte for byte. The gccgo build runs
//! under `lkl-run --ports 1080 --user nobody` (its listener on LKL) as
//! examples/systemd/v2ray-on-lkl.service runs it: LKL_HIJACK_MEMSIZE=64M, /usr/lib/debug out
//! of sight, the library stripped as the release installs it. It must hold at most 48 MiB, of
//! which LKL (the difference to the same job on the host stack) at most 12.
//! Also measured: the same binary and job on the container's host stack (their difference is
//! LKL's share), the LKL run with /usr/lib/debug in sight (where libc6-dbg is installed, as
//! here, libgo's libbacktrace reads glibc's debug info into memory: see
//! scripts/build-v2ray.sh), and Debian's gc-built v2ray. Prints where the memory is, from
//! /proc/PID/smaps.

mod apps;
mod common;
mod v2ray;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use apps::MIB;
use common::{command_in, host_listens_on, Server};
use lkl_rig::Topology;
use v2ray::{config, gc_v2ray, gccgo_v2ray, Rig};

const PORT: u16 = 1080;
/// What the systemd unit gives v2ray: the kernel's RAM (a proxy's sockets need far less than
/// the default 256M, whose page array alone is 4 MiB).
const UNIT_ENV: [(&str, &str); 1] = [("LKL_HIJACK_MEMSIZE", "64M")];
/// The bounds for the LKL run as the unit runs it, and for LKL's share of it, MiB.
const BUDGET_MIB: f64 = 48.0;
const LKL_BUDGET_MIB: f64 = 12.0;

/// dokodemo.json with the web server's address put in.
fn job_config(rig: &Rig) -> std::path::PathBuf {
    let text = std::fs::read_to_string(config("dokodemo.json"))
        .unwrap()
        .replace("@WEB_IP@", &rig.web.ip().to_string())
        .replace("@WEB_PORT@", &rig.web.port().to_string());
    let path = rig.dir.join("dokodemo.json");
    std::fs::write(&path, text).unwrap();
    path
}

/// RSS in KiB by where it is, from /proc/PID/smaps.
fn breakdown(pid: u32, exe: &Path) -> BTreeMap<&'static str, u64> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    // By inode: paths in smaps are the process's, which in a chroot need not be ours.
    let exe_inode = std::fs::metadata(exe).unwrap().ino().to_string();
    let mut by = BTreeMap::new();
    let mut what = "";
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or_default();
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header: range, perms, offset, dev, inode, [path].
            let start = first.split_once('-').unwrap().0;
            let start = u64::from_str_radix(start, 16).unwrap();
            let inode = fields.nth(3).unwrap_or("");
            let path = fields.next().unwrap_or("");
            what = if path.ends_with("liblkl_hijack.so") {
                "LKL: liblkl_hijack.so"
            } else if path.starts_with("socket:") {
                "LKL: packet receive ring"
            } else if inode == exe_inode {
                "v2ray binary"
            } else if path.starts_with('/') {
                "other libraries"
            } else if path.is_empty() && (0xc0_0000_0000..0xc1_0000_0000).contains(&start) {
                "Go heap arena"
            } else if path == "[heap]" {
                "malloc heap (brk)"
            } else {
                "other anonymous (stacks, malloc)"
            };
        } else if first == "Rss:" {
            let kib: u64 = fields.next().unwrap().parse().unwrap();
            *by.entry(what).or_insert(0) += kib;
        }
    }
    if std::env::var_os("V2RAY_MEMORY_MAPPINGS").is_some() {
        eprintln!("{}", top_mappings(&smaps));
    }
    by
}

/// The mappings holding more than 512 KiB, largest first (V2RAY_MEMORY_MAPPINGS=1).
fn top_mappings(smaps: &str) -> String {
    let mut rows = Vec::new();
    let mut header = "";
    for line in smaps.lines() {
        if line
            .split_whitespace()
            .next()
            .is_some_and(|f| f.contains('-') && !f.ends_with(':'))
        {
            header = line;
        } else if let Some(v) = line.strip_prefix("Rss:") {
            let kib: u64 = v.trim().trim_end_matches("kB").trim().parse().unwrap();
            if kib > 512 {
                rows.push((kib, header));
            }
        }
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    rows.iter()
        .map(|(k, h)| format!("{k:>8} kB  {h}\n"))
        .collect()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Runs the job through `server` (listening on `via`), then reads its memory and stops it.
fn run_job(
    rig: &Rig,
    mut server: Server,
    via: std::net::SocketAddr,
    exe: &str,
) -> (u64, BTreeMap<&'static str, u64>) {
    server.wait_listening(rig.topo.peer_ns(), via, Duration::from_secs(30));
    let before = rss_kib(server.child.id());
    let proxy_less = format!("http://{via}/blob.bin");
    let got = rig.dir.join("download.bin");
    let started = std::time::Instant::now();
    apps::assert_downloads_intact(
        rig.topo.peer_ns(),
        &proxy_less,
        &got,
        60,
        &rig.dir.join("www").join("blob.bin"),
        rig.size,
    );
    let took = started.elapsed();
    std::fs::remove_file(&got).unwrap();
    v2ray::assert_running(&mut server);
    let pid = server.child.id();
    let rss = rss_kib(pid);
    let by = breakdown(pid, Path::new(exe));
    eprintln!(
        "{}: 20 MiB in {:.2} s, VmRSS {:.1} MiB ({:.1} MiB before the download)",
        server.name,
        took.as_secs_f64(),
        mib(rss),
        mib(before)
    );
    server.terminate(Duration::from_secs(10));
    (rss, by)
}

/// The unit's environment.
fn unit_env() -> Vec<(String, String)> {
    UNIT_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The lkl-run command line: `lkl-run --ports 1080 --user nobody --lib LIB -- v2ray -config
/// JOB`.
fn lkl_run_argv(lib: &Path, job: &str) -> Vec<String> {
    let port = PORT.to_string();
    [
        common::lkl_run_bin().to_str().unwrap(),
        "--ports",
        &port,
        "--user",
        "nobody",
        "--lib",
        lib.to_str().unwrap(),
        "--",
        gccgo_v2ray(),
        "-config",
        job,
    ]
    .map(String::from)
    .to_vec()
}

/// `argv` in the container with `env`, in a mount namespace of its own where /usr/lib/debug
/// is an empty tmpfs, as the unit's `InaccessiblePaths=-/usr/lib/debug` leaves it (unshare
/// and sh exec in place: the pid is the program's).
fn without_debug_dir(
    rig: &Rig,
    argv: &[String],
    env: &[(String, String)],
) -> std::process::Command {
    let mut args = vec![
        "--mount",
        "sh",
        "-c",
        "[ ! -d /usr/lib/debug ] || mount -t tmpfs -o ro,mode=755 none /usr/lib/debug \
         || exit 1; exec \"$@\"",
        "sh",
    ];
    args.extend(argv.iter().map(String::as_str));
    let mut cmd = command_in(rig.topo.container_ns(), "unshare", &args, env);
    cmd.current_dir(&rig.dir.path);
    cmd
}

#[test]
fn v2ray_on_lkl_holds_at_most_48_mib_and_lkl_12_after_a_20_mib_download() {
    let rig = Rig::new("v2ray-memory", 20 * MIB);
    let job = job_config(&rig);
    let job = job.to_str().unwrap();
    let via = rig.server_addr(PORT);
    // The library stripped of debug info, as the release installs it (libbacktrace would
    // read it otherwise).
    let lib = rig.dir.join("liblkl_hijack.so");
    common::check_output(
        std::process::Command::new("strip")
            .arg("--strip-debug")
            .arg("-o")
            .arg(&lib)
            .arg(common::hijack_so()),
    );

    // As the unit runs it. The namespace is entered before unshare, so the mount namespace
    // is new and the network one the container's.
    let mut server = Server::spawn(
        without_debug_dir(&rig, &lkl_run_argv(&lib, job), &unit_env()),
        "gccgo v2ray on LKL (lkl-run, as the unit runs it)",
    );
    server.wait_listening(rig.topo.peer_ns(), via, Duration::from_secs(30));
    assert!(
        !host_listens_on(rig.topo.container_ns(), PORT),
        "the container's host stack listens on {PORT}: v2ray is not on LKL"
    );
    // The RSS read is v2ray's only if unshare, sh and lkl-run each exec'd in place. The file
    // is compared, not its path: the path the link shows is the one in the process's own
    // mount namespace, which in a chroot need not exist in ours.
    let file_id = |path: &Path| {
        let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        (meta.dev(), meta.ino())
    };
    assert_eq!(
        file_id(Path::new(&format!("/proc/{}/exe", server.child.id()))),
        file_id(Path::new(gccgo_v2ray())),
        "the process started is not v2ray itself"
    );
    let (lkl_rss, lkl_by) = run_job(&rig, server, via, gccgo_v2ray());

    // The same binary and job on the container's host stack.
    let host = Server::spawn(
        without_debug_dir(
            &rig,
            &[gccgo_v2ray(), "-config", job].map(String::from),
            &[],
        ),
        "gccgo v2ray on the host stack",
    );
    let (host_rss, host_by) = run_job(&rig, host, via, gccgo_v2ray());

    // On LKL again, /usr/lib/debug in sight.
    let argv = lkl_run_argv(&lib, job);
    let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    let mut seen = command_in(rig.topo.container_ns(), &argv[0], &args, &unit_env());
    seen.current_dir(&rig.dir.path);
    let seen = Server::spawn(seen, "gccgo v2ray on LKL, /usr/lib/debug in sight");
    let (seen_rss, seen_by) = run_job(&rig, seen, via, gccgo_v2ray());

    // Debian's gc-built v2ray, same job.
    let gc = Server::spawn(
        command_in(rig.topo.container_ns(), gc_v2ray(), &["-config", job], &[]),
        "gc v2ray on the host stack",
    );
    let (gc_rss, _) = run_job(&rig, gc, via, gc_v2ray());

    let mut table = String::from(
        "\nv2ray RSS after a 20 MiB download through dokodemo-door, MiB\n\
         | where | gccgo on LKL (unit) | gccgo on host | gccgo on LKL, /usr/lib/debug seen |\n\
         |---|---:|---:|---:|\n",
    );
    let keys: std::collections::BTreeSet<_> = lkl_by
        .keys()
        .chain(host_by.keys())
        .chain(seen_by.keys())
        .collect();
    let cell = |by: &BTreeMap<&str, u64>, k: &str| mib(by.get(k).copied().unwrap_or(0));
    for k in keys {
        table += &format!(
            "| {k} | {:.1} | {:.1} | {:.1} |\n",
            cell(&lkl_by, k),
            cell(&host_by, k),
            cell(&seen_by, k)
        );
    }
    table += &format!(
        "| **VmRSS** | **{:.1}** | **{:.1}** | **{:.1}** |\n\n\
         LKL's share (on LKL minus on host): {:.1} MiB; Debian's gc-built v2ray: {:.1} MiB\n",
        mib(lkl_rss),
        mib(host_rss),
        mib(seen_rss),
        mib(lkl_rss.saturating_sub(host_rss)),
        mib(gc_rss)
    );
    eprintln!("{table}");
    let share = mib(lkl_rss.saturating_sub(host_rss));
    assert!(
        share <= LKL_BUDGET_MIB,
        "LKL's share is {share:.1} MiB, over {LKL_BUDGET_MIB} MiB{table}"
    );
    assert!(
        mib(lkl_rss) <= BUDGET_MIB,
        "gccgo v2ray on LKL holds {:.1} MiB after the job, over {BUDGET_MIB} MiB{table}",
        mib(lkl_rss)
    );
}
