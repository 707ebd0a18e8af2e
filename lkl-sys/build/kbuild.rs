//! The kernel build proper: unpack the source, lay the arch port and patches over it,
//! configure, compile, install the UAPI headers, archive `liblkl.a`, publish the entry.

use std::env;
use std::ffi::OsString;
use std::fs::{self, File};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::config::check_config;
use crate::files::{copy_dir, copy_file, read_dir, remove_dir_all};
use crate::inputs::Inputs;
use crate::runner::Build;
use crate::source::{Source, Version};
use crate::tools::{self, Tool};

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

// The kbuild step lives here with `make_command`; the runner itself knows no make.
impl Build {
    /// An out-of-tree kbuild invocation for the lkl arch.
    pub fn make(&mut self, src: &Path, obj: &Path, args: &[OsString]) {
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

/// What `build_kernel` runs: kbuild's own programs, tar for the source and patch if there are
/// patches.
pub fn tools(source: &Source, inputs: &Inputs) -> Vec<Tool> {
    tools::for_kbuild(source.tarball(), !inputs.patches.is_empty())
}

pub fn build_kernel(cache: &Path, key: &str, source: &Source, version: &Version, inputs: &Inputs) {
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

fn arg_eq(name: &str, path: &Path) -> OsString {
    let mut s = OsString::from(format!("{name}="));
    s.push(path.as_os_str());
    s
}
