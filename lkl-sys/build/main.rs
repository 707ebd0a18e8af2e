//! Builds Linux 6.12 with the project's `lkl` architecture into `liblkl.a` and generates Rust
//! bindings for its entry points and UAPI headers.
//!
//! The kernel build takes minutes and its source tree is 1.7 GB, so it happens outside the
//! checkout, in a cache directory keyed by a hash of every input (source, arch port, patches,
//! config, compiler, every file of this build script). A cache hit costs only the hashing;
//! concurrent cargo invocations serialize on a lock file, and a finished entry appears by one
//! atomic rename.
//!
//! The rooms: `tools` (what the build runs, checked before anything starts), `source` (finding
//! the kernel source), `inputs` and `hash` (the cache key), `cache` and `lock` (the cache
//! directory), `kbuild`, `runner` and `config` (the kernel build), `bindings` (bindgen),
//! `files` (file-system helpers).

mod bindings;
mod cache;
mod config;
mod files;
mod hash;
mod inputs;
mod kbuild;
mod lock;
mod runner;
mod source;
mod tools;

use std::env;
use std::path::PathBuf;

use inputs::Inputs;
use source::Source;

fn main() {
    let manifest =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-env-changed=LKL_KERNEL_SRC");
    println!("cargo:rerun-if-env-changed=LKL_BUILD_CACHE");
    println!("cargo:rerun-if-env-changed=XDG_CACHE_HOME");

    let inputs = Inputs::collect(&manifest);
    let source = Source::find();
    require_tools_for_every_build(&source, &inputs);
    let version = source.version();
    let key = format!(
        "linux-{}-{:016x}",
        version.full,
        inputs.hash(&source, &version)
    );
    let cache = cache::cache_root();
    let built = cache::ensure_built(&cache, &key, &source, &version, &inputs);

    println!("cargo:rustc-link-search=native={}", built.display());
    println!("cargo:rustc-link-lib=static=lkl");
    // For crates and tests that want to look at the library and headers (symbol-hygiene tests).
    println!("cargo:rustc-env=LKL_LIB_DIR={}", built.display());
    println!("cargo:include={}", built.join("include").display());

    bindings::generate_bindings(&manifest, &built);
}

/// Stops the build, in one line, if a tool that every build needs is missing: those that
/// compute the cache key, and libclang for the bindings. Without them the key cannot be
/// computed, so whether the kernel must be built is unknown: the line then names the kernel
/// build's missing tools too, so that one run lists everything to install.
fn require_tools_for_every_build(source: &Source, inputs: &Inputs) {
    let path = env::var_os("PATH").unwrap_or_default();
    let mut missing = tools::missing(&tools::for_key(source.tarball()), &path);
    missing.extend(bindings::libclang_missing());
    if !missing.is_empty() {
        missing.extend(tools::missing(&kbuild::tools(source, inputs), &path));
    }
    if let Some(line) = tools::report(&missing) {
        panic!("{line}");
    }
}
