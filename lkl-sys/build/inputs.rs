//! The project-side inputs of the kernel build, and the hash of everything that shapes the
//! library: the cache key.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::files::{read, read_dir, walk_files};
use crate::hash::Fnv1a;
use crate::source::{Source, Version};

/// Every project-side input of the kernel build.
pub struct Inputs {
    /// `lkl-sys/arch`, laid over the source's `arch/`.
    pub arch_dir: PathBuf,
    /// Files under `arch_dir`, sorted, so the hash does not depend on directory order.
    arch_files: Vec<PathBuf>,
    pub config: PathBuf,
    /// `lkl-sys/patches/*.patch` in the order they are applied.
    pub patches: Vec<PathBuf>,
    /// `lkl-sys/build`, this build script's own sources.
    build_dir: PathBuf,
    /// Files under `build_dir`, sorted like `arch_files`.
    build_files: Vec<PathBuf>,
}

impl Inputs {
    pub fn collect(manifest: &Path) -> Inputs {
        let arch_dir = manifest.join("arch");
        let config = manifest.join("kernel.config");
        let patches_dir = manifest.join("patches");
        let build_dir = manifest.join("build");
        for p in [&arch_dir, &config, &build_dir] {
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
        let arch_files = watched_files(&arch_dir);
        let build_files = watched_files(&build_dir);
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
            build_dir,
            build_files,
        }
    }

    pub fn hash(&self, source: &Source, version: &Version) -> u64 {
        let mut h = Fnv1a::new();
        h.field(b"source");
        source.identity(version, &mut h);
        h.field(b"arch");
        hash_tree(&mut h, &self.arch_dir, &self.arch_files);
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
        h.field(b"build");
        hash_tree(&mut h, &self.build_dir, &self.build_files);
        h.finish()
    }
}

/// The files under `dir`, sorted, so the hash does not depend on directory order; each one is
/// watched, since a directory entry only notices added and removed files, not edited ones.
fn watched_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    walk_files(dir, &mut files).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    files.sort();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    files
}

/// Each file's path relative to `dir` (a rename changes the key) and its content.
fn hash_tree(h: &mut Fnv1a, dir: &Path, files: &[PathBuf]) {
    for f in files {
        h.field(
            f.strip_prefix(dir)
                .expect("walked under dir")
                .as_os_str()
                .as_encoded_bytes(),
        );
        h.field(&read(f));
    }
}

fn tool_version(tool: &str) -> Vec<u8> {
    match Command::new(tool).arg("--version").output() {
        Ok(out) if out.status.success() => out.stdout,
        _ => panic!("`{tool} --version` failed: the kernel build needs {tool} (scripts/setup.sh installs it)"),
    }
}
