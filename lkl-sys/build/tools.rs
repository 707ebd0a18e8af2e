//! The programs the build runs, and the check that they are there before anything starts: one
//! line naming every missing tool with its Debian package, instead of a kernel build that
//! fails minutes in. It reads no environment and talks no cargo, so a test can include it.

use std::env;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A program the build runs (or, for libclang, a library it loads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tool {
    /// The command looked up on PATH (for libclang, the library's name).
    pub name: &'static str,
    /// The Debian package that provides it.
    pub package: &'static str,
}

const fn tool(name: &'static str, package: &'static str) -> Tool {
    Tool { name, package }
}

const TAR: Tool = tool("tar", "tar");
const GCC: Tool = tool("gcc", "gcc");
const LD: Tool = tool("ld", "binutils");

/// What kbuild runs for our config (allnoconfig, all, headers_install; found by tracing its
/// execve calls) beyond Debian's essential packages (coreutils, sed, grep, the shells,
/// diffutils, findutils): make, the compiler and binutils, flex and bison for kconfig's
/// parser, bc for timeconst.h, rsync for headers_install. Its probes for optional tools
/// (rustc, python3, git, pahole) do not fail when those are absent, so they are not listed.
const KBUILD: [Tool; 11] = [
    tool("make", "make"),
    GCC,
    tool("as", "binutils"),
    LD,
    tool("ar", "binutils"),
    tool("nm", "binutils"),
    tool("objcopy", "binutils"),
    tool("flex", "flex"),
    tool("bison", "bison"),
    tool("bc", "bc"),
    tool("rsync", "rsync"),
];

/// tar, and the decompressor tar runs for a tarball named like `tarball`.
fn tar_for(tarball: Option<&Path>) -> Vec<Tool> {
    let name = tarball.map(|t| t.to_string_lossy()).unwrap_or_default();
    let mut tools = vec![TAR];
    if name.ends_with(".xz") {
        tools.push(tool("xz", "xz-utils"));
    } else if name.ends_with(".gz") || name.ends_with(".tgz") {
        tools.push(tool("gzip", "gzip"));
    }
    tools
}

/// What computing the cache key runs, on every build: `gcc --version` and `ld --version` are
/// part of the key, and tar reads the kernel version out of a tarball source.
pub fn for_key(tarball: Option<&Path>) -> Vec<Tool> {
    let mut tools = vec![GCC, LD];
    if tarball.is_some() {
        tools.extend(tar_for(tarball));
    }
    tools
}

/// What building the kernel runs, only on a cache miss: tar unpacks a tarball or copies a
/// source directory, patch applies the patches, then kbuild.
pub fn for_kbuild(tarball: Option<&Path>, patches: bool) -> Vec<Tool> {
    let mut tools = tar_for(tarball);
    if patches {
        tools.push(tool("patch", "patch"));
    }
    tools.extend(KBUILD);
    tools
}

/// The tools of `tools` that no directory of `path` (a PATH value) holds as an executable file.
pub fn missing(tools: &[Tool], path: &OsStr) -> Vec<Tool> {
    tools
        .iter()
        .filter(|t| {
            !env::split_paths(path).any(|dir| {
                dir.join(t.name)
                    .metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
        })
        .copied()
        .collect()
}

/// The one line naming each missing tool once with its package, or `None` if none is missing.
pub fn report(missing: &[Tool]) -> Option<String> {
    let mut named: Vec<Tool> = Vec::new();
    for t in missing {
        if !named.contains(t) {
            named.push(*t);
        }
    }
    if named.is_empty() {
        return None;
    }
    let list: Vec<String> = named
        .iter()
        .map(|t| format!("{} (apt-get install {})", t.name, t.package))
        .collect();
    Some(format!(
        "missing tools: {}; scripts/setup.sh installs them all",
        list.join(", ")
    ))
}
