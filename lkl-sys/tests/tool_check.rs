//! The build script's tool check: a missing tool is named, with its Debian package, on one
//! line; the real build script stops there before it unpacks or compiles anything, and with
//! the kernel already in the cache it needs none of the kernel build's tools.

#[path = "../build/tools.rs"]
mod tools;

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tools::Tool;

const TARBALL: &str = "linux-source-6.12.tar.xz";

/// A scratch directory under the system temp dir, removed when dropped (also on a failed
/// assertion, so reruns start clean).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("lkl-sys-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Every tool a tarball build with patches can need, once each.
fn all_tools() -> Vec<Tool> {
    let tarball = Path::new(TARBALL);
    let mut all = tools::for_key(Some(tarball));
    for t in tools::for_kbuild(Some(tarball), true) {
        if !all.contains(&t) {
            all.push(t);
        }
    }
    all
}

fn line_naming(tools: &[&str]) -> String {
    let named: Vec<String> = all_tools()
        .into_iter()
        .filter(|t| tools.contains(&t.name))
        .map(|t| format!("{} (apt-get install {})", t.name, t.package))
        .collect();
    assert_eq!(named.len(), tools.len(), "every tool named is in the lists");
    format!(
        "missing tools: {}; scripts/setup.sh installs them all",
        named.join(", ")
    )
}

#[test]
fn a_tool_absent_from_path_is_named_with_its_package() {
    let bin = Scratch::new("fake-bin");
    for t in all_tools().iter().filter(|t| t.name != "rsync") {
        let f = bin.0.join(t.name);
        fs::write(&f, "").expect("write fake tool");
        fs::set_permissions(&f, fs::Permissions::from_mode(0o755)).expect("chmod fake tool");
    }
    // Present but not executable: as good as missing.
    let flex = bin.0.join("flex");
    fs::set_permissions(&flex, fs::Permissions::from_mode(0o644)).expect("chmod flex");
    // An empty directory first: the lookup must go on to the next one.
    let empty = Scratch::new("empty-bin");
    let path = std::env::join_paths([&empty.0, &bin.0]).expect("join PATH");

    let missing = tools::missing(&all_tools(), &path);
    assert_eq!(
        tools::report(&missing).as_deref(),
        Some(line_naming(&["flex", "rsync"]).as_str())
    );
}

#[test]
fn with_nothing_on_path_every_tool_is_named_once_on_one_line() {
    let empty = Scratch::new("nothing-bin");
    let tarball = Some(Path::new(TARBALL));
    // gcc and ld are on both lists; the line names them once.
    let mut missing = tools::missing(&tools::for_key(tarball), empty.0.as_os_str());
    missing.extend(tools::missing(
        &tools::for_kbuild(tarball, true),
        empty.0.as_os_str(),
    ));
    let line = tools::report(&missing).expect("everything is missing");
    let names: Vec<&str> = all_tools().iter().map(|t| t.name).collect();
    assert_eq!(line, line_naming(&names));
    assert!(!line.contains('\n'));
}

#[test]
fn with_everything_on_path_nothing_is_reported() {
    let bin = Scratch::new("full-bin");
    for t in all_tools() {
        let f = bin.0.join(t.name);
        fs::write(&f, "").expect("write fake tool");
        fs::set_permissions(&f, fs::Permissions::from_mode(0o755)).expect("chmod fake tool");
    }
    let missing = tools::missing(&all_tools(), bin.0.as_os_str());
    assert_eq!(missing, []);
    assert_eq!(tools::report(&missing), None);
}

/// The build script cargo compiled for this crate: the newest `build-script-main` in this
/// profile's build directory (this test binary sits in `deps/`, next to it).
fn build_script() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let build = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary in <profile>/deps")
        .join("build");
    let newest = fs::read_dir(&build)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", build.display()))
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("lkl-sys-"))
        .map(|e| e.path().join("build-script-main"))
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .max_by_key(|(modified, _)| *modified);
    newest
        .unwrap_or_else(|| panic!("no lkl-sys-*/build-script-main in {}", build.display()))
        .1
}

/// Where `name` is on this process's PATH.
fn which(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed (scripts/setup.sh installs it)"))
}

#[test]
fn the_build_script_stops_at_the_check_before_unpacking() {
    // A PATH with every tool but rsync, which only headers_install, at the end of a kernel
    // build, runs: without the check the build would unpack and compile for minutes first.
    let bin = Scratch::new("no-rsync-bin");
    for t in all_tools().iter().filter(|t| t.name != "rsync") {
        symlink(which(t.name), bin.0.join(t.name)).expect("symlink tool");
    }
    let cache = Scratch::new("cold-cache");
    let out_dir = Scratch::new("out-dir");
    let mut child = Command::new(build_script())
        .env("PATH", &bin.0)
        .env("LKL_BUILD_CACHE", &cache.0)
        .env("CARGO_MANIFEST_DIR", env!("CARGO_MANIFEST_DIR"))
        .env("OUT_DIR", &out_dir.0)
        // The tarball the tool lists above are for.
        .env_remove("LKL_KERNEL_SRC")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own process group, so that a build that did start (tar, make) can be killed whole.
        .process_group(0)
        .spawn()
        .expect("run the build script");

    // Read in a thread: a build script that went on to build could fill the pipe.
    let mut stderr = child.stderr.take().expect("piped stderr");
    let stderr = thread::spawn(move || std::io::read_to_string(&mut stderr));
    let pgid = i32::try_from(child.id()).expect("pid fits pid_t");
    let kill_group = |why: String| -> ! {
        // SAFETY: killpg only sends a signal; pgid is the group the child spawned above leads,
        // and the child has not been waited for, so the id cannot have been reused.
        unsafe { libc::killpg(pgid, libc::SIGKILL) };
        panic!("{why}");
    };
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the build script") {
            break status;
        }
        let began: Vec<OsString> = fs::read_dir(&cache.0)
            .expect("read the scratch cache")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .filter(|n| {
                let n = n.to_string_lossy();
                n.ends_with(".tmp") || n.ends_with(".log")
            })
            .collect();
        if !began.is_empty() {
            kill_group(format!(
                "the build script began a kernel build ({began:?} in the cache) instead of \
                 stopping at the tool check"
            ));
        }
        if started.elapsed() > Duration::from_secs(300) {
            kill_group("the build script neither stopped nor began a build in 300 s".into());
        }
        thread::sleep(Duration::from_millis(50));
    };
    let stderr = stderr
        .join()
        .expect("stderr reader")
        .expect("read the build script's stderr");

    assert!(
        !status.success(),
        "the build script succeeded without rsync"
    );
    let expected = line_naming(&["rsync"]);
    assert!(
        stderr.lines().any(|l| l == expected),
        "no line {expected:?} in the build script's stderr:\n{stderr}"
    );
}

#[test]
fn a_warm_cache_needs_no_kernel_build_tools() {
    // This test binary links lkl-sys, so the build script has just found or built the kernel in
    // the cache this environment names: a hit, which must not ask for flex, make, rsync...
    let source = std::env::var_os("LKL_KERNEL_SRC").filter(|v| !v.is_empty());
    let tarball = match &source {
        Some(s) if Path::new(s).is_dir() => None,
        Some(s) => Some(PathBuf::from(s)),
        None => Some(PathBuf::from(TARBALL)),
    };
    let bin = Scratch::new("key-only-bin");
    for t in tools::for_key(tarball.as_deref()) {
        symlink(which(t.name), bin.0.join(t.name)).expect("symlink tool");
    }
    let out_dir = Scratch::new("warm-out-dir");
    let out = Command::new(build_script())
        .env("PATH", &bin.0)
        .env("CARGO_MANIFEST_DIR", env!("CARGO_MANIFEST_DIR"))
        .env("OUT_DIR", &out_dir.0)
        .stdin(Stdio::null())
        .output()
        .expect("run the build script");
    assert!(
        out.status.success(),
        "the build script failed on a warm cache with only {:?} on PATH:\n{}",
        tools::for_key(tarball.as_deref()),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out_dir.0.join("bindings.rs").is_file(),
        "no bindings generated"
    );
}
