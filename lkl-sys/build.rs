//! Builds Linux 6.12 with the project's `lkl` architecture into `liblkl.a` and generates Rust
//! bindings for its entry points and UAPI headers.
//!
//! The kernel build takes minutes and its source tree is 1.7 GB, so it happens outside the
//! checkout, in a cache directory keyed by a hash of every input (source, arch port, patches,
//! config, compiler, this file). A cache hit costs only the hashing; concurrent cargo
//! invocations serialize on a lock file, and a finished entry appears by one atomic rename.

use std::collections::BTreeSet;
use std::env;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, UNIX_EPOCH};

const WANTED_VERSION: (u32, u32) = (6, 12);
const DEBIAN_TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";
/// Lines of the build log shown when a step fails.
const LOG_TAIL_LINES: usize = 40;

fn main() {
    let manifest =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-env-changed=LKL_KERNEL_SRC");
    println!("cargo:rerun-if-env-changed=LKL_BUILD_CACHE");
    println!("cargo:rerun-if-env-changed=XDG_CACHE_HOME");

    let inputs = Inputs::collect(&manifest);
    let source = Source::find();
    let version = source.version();
    let key = format!(
        "linux-{}-{:016x}",
        version.full,
        inputs.hash(&source, &version)
    );
    let cache = cache_root();
    let built = ensure_built(&cache, &key, &source, &version, &inputs);

    println!("cargo:rustc-link-search=native={}", built.display());
    println!("cargo:rustc-link-lib=static=lkl");
    // For crates and tests that want to look at the library and headers (symbol-hygiene tests).
    println!("cargo:rustc-env=LKL_LIB_DIR={}", built.display());
    println!("cargo:include={}", built.join("include").display());

    generate_bindings(&manifest, &built);
}

/// Every project-side input of the kernel build.
struct Inputs {
    /// `lkl-sys/arch`, laid over the source's `arch/`.
    arch_dir: PathBuf,
    /// Files under `arch_dir`, sorted, so the hash does not depend on directory order.
    arch_files: Vec<PathBuf>,
    config: PathBuf,
    /// `lkl-sys/patches/*.patch` in the order they are applied.
    patches: Vec<PathBuf>,
    build_script: PathBuf,
}

impl Inputs {
    fn collect(manifest: &Path) -> Inputs {
        let arch_dir = manifest.join("arch");
        let config = manifest.join("kernel.config");
        let patches_dir = manifest.join("patches");
        let build_script = manifest.join("build.rs");
        for p in [&arch_dir, &config, &build_script] {
            println!("cargo:rerun-if-changed={}", p.display());
        }
        // Cargo reruns a build script on every build while a watched path is missing, so
        // without a patches directory watch the crate directory, where it would appear.
        let patches_watch = if patches_dir.is_dir() {
            &patches_dir
        } else {
            manifest
        };
        println!("cargo:rerun-if-changed={}", patches_watch.display());
        if !arch_dir.join("lkl").is_dir() {
            panic!(
                "the arch port is missing: expected {}",
                arch_dir.join("lkl").display()
            );
        }
        if !config.is_file() {
            panic!(
                "the kernel config fragment is missing: expected {}",
                config.display()
            );
        }
        let mut arch_files = Vec::new();
        walk_files(&arch_dir, &mut arch_files)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", arch_dir.display()));
        arch_files.sort();
        for f in &arch_files {
            // A directory entry only notices added/removed files; each file for its content.
            println!("cargo:rerun-if-changed={}", f.display());
        }
        let mut patches = Vec::new();
        if patches_dir.is_dir() {
            for entry in read_dir(&patches_dir) {
                if entry.extension().is_some_and(|e| e == "patch") {
                    patches.push(entry);
                }
            }
            patches.sort();
        }
        Inputs {
            arch_dir,
            arch_files,
            config,
            patches,
            build_script,
        }
    }

    fn hash(&self, source: &Source, version: &Version) -> u64 {
        let mut h = Fnv1a::new();
        h.field(b"source");
        source.identity(version, &mut h);
        h.field(b"arch");
        for f in &self.arch_files {
            h.field(
                f.strip_prefix(&self.arch_dir)
                    .expect("walked under arch_dir")
                    .as_os_str()
                    .as_encoded_bytes(),
            );
            h.field(&read(f));
        }
        h.field(b"config");
        h.field(&read(&self.config));
        h.field(b"patches");
        for p in &self.patches {
            h.field(p.file_name().expect("a patch file").as_encoded_bytes());
            h.field(&read(p));
        }
        // The toolchain shapes the object code; binutils also does the final objcopy.
        for tool in ["gcc", "ld"] {
            h.field(tool.as_bytes());
            h.field(&tool_version(tool));
        }
        h.field(b"build.rs");
        h.field(&read(&self.build_script));
        h.finish()
    }
}

/// 64-bit FNV-1a over length-prefixed fields: stable across Rust versions (unlike
/// `DefaultHasher`), and unambiguous (the length prefix keeps "ab"+"c" apart from "a"+"bc").
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Fnv1a {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    fn field(&mut self, bytes: &[u8]) {
        for &b in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

enum Source {
    Tarball(PathBuf),
    Dir(PathBuf),
}

struct Version {
    major: u32,
    minor: u32,
    /// e.g. "6.12.117"
    full: String,
}

impl Source {
    fn find() -> Source {
        let missing = || -> ! {
            panic!(
                "\n\nlkl-sys needs the Linux 6.12 source to build the kernel library.\n\
                 On Debian: `apt-get install linux-source-6.12` (or run scripts/setup.sh), which \
                 installs {DEBIAN_TARBALL}.\n\
                 Elsewhere: set LKL_KERNEL_SRC to a Linux 6.12.y source directory or tarball \
                 (.tar.xz / .tar.gz).\n"
            )
        };
        let path = match env::var_os("LKL_KERNEL_SRC").filter(|v| !v.is_empty()) {
            Some(p) => {
                let p = PathBuf::from(p);
                if !p.exists() {
                    panic!("LKL_KERNEL_SRC={} does not exist", p.display());
                }
                p
            }
            None if Path::new(DEBIAN_TARBALL).is_file() => PathBuf::from(DEBIAN_TARBALL),
            None => missing(),
        };
        let path = fs::canonicalize(&path)
            .unwrap_or_else(|e| panic!("cannot resolve {}: {e}", path.display()));
        if path.is_dir() {
            if !path.join("Makefile").is_file() || !path.join("arch").is_dir() {
                panic!(
                    "LKL_KERNEL_SRC={} is a directory but not a Linux source tree",
                    path.display()
                );
            }
            println!("cargo:rerun-if-changed={}", path.join("Makefile").display());
            Source::Dir(path)
        } else {
            let name = path.to_string_lossy();
            if ![".tar.xz", ".tar.gz", ".tgz", ".tar"]
                .iter()
                .any(|s| name.ends_with(s))
            {
                panic!(
                    "LKL_KERNEL_SRC={name} is neither a directory nor a .tar.xz/.tar.gz tarball"
                );
            }
            println!("cargo:rerun-if-changed={name}");
            Source::Tarball(path)
        }
    }

    fn path(&self) -> &Path {
        match self {
            Source::Tarball(p) | Source::Dir(p) => p,
        }
    }

    /// Reads VERSION/PATCHLEVEL/SUBLEVEL from the top Makefile and insists on 6.12.
    fn version(&self) -> Version {
        let makefile = match self {
            Source::Dir(d) => fs::read_to_string(d.join("Makefile"))
                .unwrap_or_else(|e| panic!("cannot read {}/Makefile: {e}", d.display())),
            // The top Makefile is one level down and near the start of the archive: tar stops
            // at the first match, so this does not decompress the whole tarball.
            Source::Tarball(t) => {
                let out = Command::new("tar")
                    .arg("-xOf")
                    .arg(t)
                    .args([
                        "--wildcards",
                        "--no-wildcards-match-slash",
                        "--occurrence=1",
                        "*/Makefile",
                    ])
                    .stderr(Stdio::inherit())
                    .output()
                    .unwrap_or_else(|e| {
                        panic!("cannot run tar (needed to unpack the kernel source): {e}")
                    });
                if !out.status.success() || out.stdout.is_empty() {
                    panic!(
                        "{} does not look like a Linux source tarball (no top-level Makefile)",
                        t.display()
                    );
                }
                String::from_utf8_lossy(&out.stdout).into_owned()
            }
        };
        let field = |name: &str| -> Option<String> {
            makefile.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == name).then(|| v.trim().to_string())
            })
        };
        let num = |name: &str| field(name).and_then(|v| v.parse::<u32>().ok());
        let (Some(major), Some(minor)) = (num("VERSION"), num("PATCHLEVEL")) else {
            panic!(
                "{}: no VERSION/PATCHLEVEL in the top Makefile; is this a Linux source?",
                self.path().display()
            );
        };
        let sub = num("SUBLEVEL").unwrap_or(0);
        let extra = field("EXTRAVERSION").unwrap_or_default();
        let version = Version {
            major,
            minor,
            full: format!("{major}.{minor}.{sub}{extra}"),
        };
        if (version.major, version.minor) != WANTED_VERSION {
            panic!(
                "{} is Linux {}, but the lkl arch port is written for Linux {}.{}.y; \
                 point LKL_KERNEL_SRC at a 6.12 tree or install linux-source-6.12",
                self.path().display(),
                version.full,
                WANTED_VERSION.0,
                WANTED_VERSION.1
            );
        }
        version
    }

    /// What identifies this source for the cache key without reading 150 MB or 1.7 GB.
    fn identity(&self, version: &Version, h: &mut Fnv1a) {
        h.field(self.path().as_os_str().as_encoded_bytes());
        h.field(version.full.as_bytes());
        let stamped = match self {
            Source::Tarball(t) => t.clone(),
            Source::Dir(d) => d.join("Makefile"),
        };
        let meta = fs::metadata(&stamped)
            .unwrap_or_else(|e| panic!("cannot stat {}: {e}", stamped.display()));
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .unwrap_or_default();
        h.field(&meta.len().to_le_bytes());
        h.field(&mtime.as_nanos().to_le_bytes());
    }
}

fn cache_root() -> PathBuf {
    if let Some(dir) = env::var_os("LKL_BUILD_CACHE").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let base = env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| panic!("neither HOME nor XDG_CACHE_HOME is set; set LKL_BUILD_CACHE to a directory for the kernel build cache"));
    base.join("lkl-hijack")
}

/// A cache entry is complete when both the library and the installed headers are there (the
/// rename that publishes an entry makes both appear at once; this guards against hand edits).
fn is_complete(dir: &Path) -> bool {
    dir.join("liblkl.a").is_file() && dir.join("include/asm/host_ops.h").is_file()
}

fn ensure_built(
    cache: &Path,
    key: &str,
    source: &Source,
    version: &Version,
    inputs: &Inputs,
) -> PathBuf {
    let done = cache.join(key);
    if is_complete(&done) {
        return done;
    }
    fs::create_dir_all(cache)
        .unwrap_or_else(|e| panic!("cannot create the build cache {}: {e}", cache.display()));
    let lock_path = cache.join(format!("{key}.lock"));
    let _lock = match FileLock::try_acquire(&lock_path) {
        Some(lock) => lock,
        None => {
            println!(
                "cargo:warning=waiting for another build of the same kernel ({})",
                lock_path.display()
            );
            FileLock::acquire(&lock_path)
        }
    };
    // Another process may have finished it while this one waited.
    if is_complete(&done) {
        return done;
    }
    remove_stale_builds(cache, key);
    if done.exists() {
        remove_dir_all(&done);
    }
    build_kernel(cache, key, source, version, inputs);
    done
}

/// Removes `*.tmp` trees (1.7 GB each) that failed or interrupted builds left behind, except
/// those another process is building right now (it holds their lock).
fn remove_stale_builds(cache: &Path, key: &str) {
    for entry in read_dir(cache) {
        let Some(name) = entry
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)
        else {
            continue;
        };
        let Some(other) = name.strip_suffix(".tmp") else {
            continue;
        };
        if other == key {
            remove_dir_all(&entry);
        } else if let Some(_held) = FileLock::try_acquire(&cache.join(format!("{other}.lock"))) {
            remove_dir_all(&entry);
        }
    }
}

/// An exclusive `flock` on a file, released when dropped (or when the process dies, so a
/// killed build never leaves the cache locked).
struct FileLock {
    _held: File,
}

impl FileLock {
    fn open(path: &Path) -> File {
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("cannot open lock file {}: {e}", path.display()))
    }

    fn try_acquire(path: &Path) -> Option<FileLock> {
        let file = Self::open(path);
        // SAFETY: flock only reads the fd, which `file` keeps open for the duration of the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        (rc == 0).then_some(FileLock { _held: file })
    }

    fn acquire(path: &Path) -> FileLock {
        let file = Self::open(path);
        loop {
            // SAFETY: as above; a blocking flock on an fd we own.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                return FileLock { _held: file };
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                panic!("cannot lock {}: {err}", path.display());
            }
        }
    }
}

/// The steps of one kernel build, writing everything they print to one log file.
struct Build {
    log_path: PathBuf,
    log: File,
    started: Instant,
}

impl Build {
    fn stage(&self, what: &str) {
        println!(
            "cargo:warning=lkl-sys: {what} ({:.0?} elapsed)",
            self.started.elapsed()
        );
    }

    /// Runs a command with its output appended to the log; panics with the log's tail on failure.
    fn run(&mut self, cmd: &mut Command) {
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

    fn fail(&self, what: &str) -> ! {
        let (errors, tail) = log_summary(&self.log_path);
        panic!(
            "\n\nbuilding the kernel library failed: {what}\n\
             --- error lines in {log} ---\n{errors}\n\
             --- last {LOG_TAIL_LINES} lines of {log} ---\n{tail}\n--- end of log ---\n",
            log = self.log_path.display()
        );
    }

    /// An out-of-tree kbuild invocation for the lkl arch.
    fn make(&mut self, src: &Path, obj: &Path, args: &[OsString]) {
        self.run(
            make_command()
                .arg("-C")
                .arg(src)
                .arg(arg_eq("O", obj))
                .arg("ARCH=lkl")
                .args(args),
        );
    }
}

/// `make` with an environment of our own: cargo's jobserver variables (MAKEFLAGS,
/// CARGO_MAKEFLAGS) and its build-script variables (TARGET, PROFILE, DEBUG, CC...) would
/// otherwise leak into kbuild and change or break the build.
fn make_command() -> Command {
    let mut cmd = Command::new("make");
    cmd.env_clear();
    for keep in ["PATH", "HOME", "TMPDIR"] {
        if let Some(v) = env::var_os(keep) {
            cmd.env(keep, v);
        }
    }
    // Reproducible banners: the same inputs give the same object, whoever builds it.
    cmd.env("LC_ALL", "C")
        .env("KBUILD_BUILD_USER", "lkl")
        .env("KBUILD_BUILD_HOST", "lkl-hijack")
        .env("KBUILD_BUILD_TIMESTAMP", "1970-01-01");
    cmd
}

fn build_kernel(cache: &Path, key: &str, source: &Source, version: &Version, inputs: &Inputs) {
    let tmp = cache.join(format!("{key}.tmp"));
    let (src, obj, out) = (tmp.join("src"), tmp.join("obj"), tmp.join("out"));
    for d in [&src, &obj, &out] {
        fs::create_dir_all(d).unwrap_or_else(|e| panic!("cannot create {}: {e}", d.display()));
    }
    let log_path = cache.join(format!("{key}.log"));
    let log = File::create(&log_path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
    let mut b = Build {
        log_path,
        log,
        started: Instant::now(),
    };
    println!(
        "cargo:warning=lkl-sys: building Linux {} for lkl (first time for these inputs, ~5 min), log at {}",
        version.full,
        b.log_path.display()
    );

    b.stage(&format!("unpacking {}", source.path().display()));
    match source {
        Source::Tarball(t) => b.run(
            Command::new("tar")
                .arg("-xf")
                .arg(t)
                .arg("-C")
                .arg(&src)
                .args(["--strip-components=1", "--no-same-owner"]),
        ),
        Source::Dir(d) => copy_tree_with_tar(&mut b, d, &src),
    }
    // kbuild refuses out-of-tree builds from a source tree that was configured in place.
    if src.join(".config").exists() || src.join("include/config").exists() {
        b.stage("cleaning the copied source tree (make mrproper)");
        b.run(make_command().arg("-C").arg(&src).arg("mrproper"));
    }

    b.stage("laying the lkl arch port and patches over the source");
    for arch in read_dir(&inputs.arch_dir) {
        let dest = src
            .join("arch")
            .join(arch.file_name().expect("entry has a name"));
        if dest.exists() {
            remove_dir_all(&dest);
        }
        copy_dir(&arch, &dest).unwrap_or_else(|e| {
            panic!("cannot copy {} to {}: {e}", arch.display(), dest.display())
        });
    }
    for patch in &inputs.patches {
        b.run(
            Command::new("patch")
                .args(["-p1", "--forward", "--batch", "-d"])
                .arg(&src)
                .arg("-i")
                .arg(patch),
        );
    }

    b.stage("configuring (allnoconfig + kernel.config)");
    b.make(
        &src,
        &obj,
        &[
            arg_eq("KCONFIG_ALLCONFIG", &inputs.config),
            "allnoconfig".into(),
        ],
    );
    check_config(&inputs.config, &obj.join(".config"));

    let jobs = env::var("NUM_JOBS")
        .ok()
        .and_then(|j| j.parse::<usize>().ok())
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1);
    // `all`, whose arch part is `all: lkl.o`: naming lkl.o as the goal would hit kbuild's
    // single-object `%.o` rule instead, which needs modpost and fails in a fresh tree.
    b.stage(&format!(
        "compiling the kernel (make -j{jobs} all -> lkl.o)"
    ));
    b.make(&src, &obj, &[format!("-j{jobs}").into(), "all".into()]);
    let lkl_o = obj.join("lkl.o");
    if !lkl_o.is_file() {
        b.fail(&format!(
            "make lkl.o succeeded but {} does not exist",
            lkl_o.display()
        ));
    }

    b.stage("installing the UAPI headers");
    let mut hdr_path = out.clone().into_os_string();
    hdr_path.push("/");
    b.make(
        &src,
        &obj,
        &[
            arg_eq("INSTALL_HDR_PATH", Path::new(&hdr_path)),
            "headers_install".into(),
        ],
    );

    b.stage("archiving liblkl.a");
    b.run(
        Command::new("ar")
            .arg("rcs")
            .arg(out.join("liblkl.a"))
            .arg(&lkl_o),
    );
    copy_file(&obj.join(".config"), &out.join("kernel.config.full"));

    // Keep only the products; the tree and objects are gigabytes.
    remove_dir_all(&src);
    remove_dir_all(&obj);
    let elapsed = b.started.elapsed();
    drop(b);
    fs::rename(cache.join(format!("{key}.log")), out.join("build.log"))
        .expect("move the build log");
    let done = cache.join(key);
    fs::rename(&out, &done).unwrap_or_else(|e| panic!("cannot publish {}: {e}", done.display()));
    remove_dir_all(&tmp);
    println!(
        "cargo:warning=lkl-sys: kernel library ready in {elapsed:.0?}: {}",
        done.display()
    );
}

/// Copies a source directory (without its .git) by piping one tar into another: it keeps
/// modes and symlinks and is far faster than a file-by-file copy of 80 000 files.
fn copy_tree_with_tar(b: &mut Build, from: &Path, to: &Path) {
    let mut pack = Command::new("tar")
        .arg("-C")
        .arg(from)
        .args(["--exclude=./.git", "-cf", "-", "."])
        .stdout(Stdio::piped())
        .stderr(b.log.try_clone().expect("dup log fd"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run tar: {e}"));
    let pipe = pack.stdout.take().expect("piped stdout");
    b.run(
        Command::new("tar")
            .arg("-C")
            .arg(to)
            .args(["-xf", "-", "--no-same-owner"])
            .stdin(pipe),
    );
    let status = pack.wait().expect("wait for tar");
    if !status.success() {
        b.fail(&format!("copying {} failed ({status})", from.display()));
    }
}

/// kbuild silently drops options whose dependencies are unmet; say which ones did not stick.
fn check_config(fragment: &Path, full: &Path) {
    let full =
        fs::read_to_string(full).unwrap_or_else(|e| panic!("cannot read {}: {e}", full.display()));
    let value_of = |sym: &str| {
        full.lines()
            .find_map(|l| l.strip_prefix(sym)?.strip_prefix('='))
    };
    for line in fs::read_to_string(fragment)
        .expect("read kernel.config")
        .lines()
    {
        let line = line.trim();
        let (sym, want) = if let Some(sym) = line
            .strip_prefix("# ")
            .and_then(|l| l.strip_suffix(" is not set"))
        {
            (sym, "n")
        } else if let Some((sym, want)) = line
            .split_once('=')
            .filter(|(s, _)| s.starts_with("CONFIG_"))
        {
            (sym, want)
        } else {
            continue;
        };
        let got = value_of(sym).unwrap_or("n");
        if got != want {
            println!("cargo:warning=lkl-sys: kernel.config asks for {sym}={want} but the build has {sym}={got} (unmet dependency?)");
        }
    }
}

fn generate_bindings(manifest: &Path, built: &Path) {
    let wrapper = manifest.join("wrapper.h");
    let shim = manifest.join("include-shim");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed={}", wrapper.display());
    println!("cargo:rerun-if-changed={}", shim.display());
    let bindings = bindgen::Builder::default()
        .header(wrapper.to_string_lossy())
        // Only the kernel's own exported headers: host libc headers describe glibc's types,
        // not the kernel's, and must not be mixed in. The shim supplies the one libc header
        // (sys/socket.h) that UAPI headers include, with the kernel's definition.
        .clang_arg("-nostdinc")
        .clang_arg(format!("-I{}", built.join("include").display()))
        .clang_arg(format!("-I{}", shim.display()))
        .use_core()
        .ctypes_prefix("::core::ffi")
        // Macros with casts (EPOLLIN is `(__poll_t)0x1`) are beyond bindgen's own evaluator.
        .clang_macro_fallback()
        // Its scratch files go to OUT_DIR; in the crate directory they would retrigger the
        // build script (the directory is watched).
        .clang_macro_fallback_build_dir(&out_dir)
        .parse_callbacks(Box::new(SelfNamedMacros::scan(&built.join("include"))))
        // Plain `IFF_UP`, not `net_device_flags_IFF_UP`: the names C code uses.
        .prepend_enum_name(false)
        .derive_default(true)
        .layout_tests(true)
        .generate()
        .unwrap_or_else(|e| panic!("bindgen over {} failed: {e}", wrapper.display()));
    let out =
        PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("bindings.rs");
    bindings
        .write_to_file(&out)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}

/// UAPI headers mark enumerators for libc with `#define IPPROTO_TCP IPPROTO_TCP`. The clang
/// fallback evaluates such a macro, which would define the constant a second time next to the
/// enumerator, so these macros are skipped and the enumerator stands.
#[derive(Debug)]
struct SelfNamedMacros(BTreeSet<String>);

impl SelfNamedMacros {
    fn scan(include: &Path) -> SelfNamedMacros {
        let mut headers = Vec::new();
        walk_files(include, &mut headers)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", include.display()));
        let mut names = BTreeSet::new();
        for h in headers {
            for line in String::from_utf8_lossy(&read(&h)).lines() {
                let mut words = line.split_whitespace();
                if let (Some("#define"), Some(name), Some(value), None) =
                    (words.next(), words.next(), words.next(), words.next())
                {
                    if name == value {
                        names.insert(name.to_string());
                    }
                }
            }
        }
        SelfNamedMacros(names)
    }
}

impl bindgen::callbacks::ParseCallbacks for SelfNamedMacros {
    fn will_parse_macro(&self, name: &str) -> bindgen::callbacks::MacroParsingBehavior {
        if self.0.contains(name) {
            bindgen::callbacks::MacroParsingBehavior::Ignore
        } else {
            bindgen::callbacks::MacroParsingBehavior::Default
        }
    }
}

fn arg_eq(name: &str, path: &Path) -> OsString {
    let mut s = OsString::from(format!("{name}="));
    s.push(path.as_os_str());
    s
}

fn tool_version(tool: &str) -> Vec<u8> {
    match Command::new(tool).arg("--version").output() {
        Ok(out) if out.status.success() => out.stdout,
        _ => panic!("`{tool} --version` failed: the kernel build needs {tool} (scripts/setup.sh installs it)"),
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

fn walk_files(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk_files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &dest)?;
        } else {
            fs::copy(entry.path(), dest)?;
        }
    }
    Ok(())
}

fn read_dir(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .and_then(|rd| rd.map(|e| e.map(|e| e.path())).collect())
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn copy_file(from: &Path, to: &Path) {
    fs::copy(from, to)
        .unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", from.display(), to.display()));
}

fn remove_dir_all(path: &Path) {
    fs::remove_dir_all(path).unwrap_or_else(|e| panic!("cannot remove {}: {e}", path.display()));
}
