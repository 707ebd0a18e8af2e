//! The build cache outside the checkout: one directory per cache key, published by an atomic
//! rename once complete, built under a lock so concurrent cargo processes build it once.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

use crate::files::{read_dir, remove_dir_all};
use crate::inputs::Inputs;
use crate::kbuild::{self, build_kernel};
use crate::lock::FileLock;
use crate::source::{Source, Version};
use crate::tools;

pub fn cache_root() -> PathBuf {
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

pub fn ensure_built(
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
    // A miss: only now do the kernel build's own tools matter, so a warm cache needs none.
    let path = env::var_os("PATH").unwrap_or_default();
    if let Some(line) = tools::report(&tools::missing(&kbuild::tools(source, inputs), &path)) {
        panic!("{line}");
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
