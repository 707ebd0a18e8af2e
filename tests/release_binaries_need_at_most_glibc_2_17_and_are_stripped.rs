//! The release's two binaries load on CentOS 7 (glibc 2.17) and everything newer: no symbol
//! version above GLIBC_2.17 among their references. They are stripped (the library within
//! 8 MB), each with its debug info in a file beside it that `.gnu_debuglink` names.

mod release;

use std::path::{Path, PathBuf};
use std::process::Command;

use release::{checked, top_dir_name, TempDir};

const BINARIES: [&str; 2] = ["lkl-run", "liblkl_hijack.so"];

/// The tarball unpacked into `into`; returns the top directory it made there.
fn unpack(into: &TempDir) -> PathBuf {
    checked(
        Command::new("tar")
            .arg("-xzf")
            .arg(release::tarball())
            .arg("-C")
            .arg(into.path()),
        "tar",
    );
    into.path().join(top_dir_name())
}

fn readelf(args: &[&str], file: &Path) -> String {
    let out = checked(Command::new("readelf").args(args).arg(file), "readelf");
    // Lossy: a string dump of .gnu_debuglink ends in the CRC's raw bytes.
    String::from_utf8_lossy(&out.stdout).into_owned()
}

type Version = (u32, u32, u32);

/// "2.17" or "2.3.4" as (major, minor, patch); None for GLIBC_PRIVATE and the like.
fn parse_glibc(v: &str) -> Option<Version> {
    let mut n = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((n.next()??, n.next()??, n.next().unwrap_or(Some(0))?))
}

/// The glibc versions `file` needs, from its version-needs section.
fn glibc_versions_needed(file: &Path) -> Vec<Version> {
    let info = readelf(&["--version-info", "--wide"], file);
    let needs = info
        .split_once("Version needs section")
        .unwrap_or_else(|| panic!("{}: no version needs section:\n{info}", file.display()))
        .1;
    let mut versions: Vec<Version> = needs
        .split_whitespace()
        .filter_map(|w| parse_glibc(w.strip_prefix("GLIBC_")?))
        .collect();
    versions.sort();
    versions.dedup();
    versions
}

#[test]
fn no_release_binary_references_a_glibc_version_above_2_17() {
    let dir = TempDir::new("release-glibc");
    let top = unpack(&dir);
    for bin in BINARIES {
        let file = top.join(bin);
        let versions = glibc_versions_needed(&file);
        let highest = *versions
            .last()
            .unwrap_or_else(|| panic!("{bin}: no GLIBC versions found at all"));
        eprintln!("{bin}: highest glibc version needed {highest:?}");
        if highest > (2, 17, 0) {
            // Name the symbols (`name@GLIBC_2.34 (5)`), which is what one needs to fix it.
            let dynsyms = readelf(&["--dyn-syms", "--wide"], &file);
            let culprits: Vec<&str> = dynsyms
                .split_whitespace()
                .filter(|w| {
                    w.split_once("@GLIBC_")
                        .and_then(|(_, v)| parse_glibc(v))
                        .is_some_and(|v| v > (2, 17, 0))
                })
                .collect();
            panic!(
                "{bin} needs glibc {highest:?}, above 2.17, for: {}",
                culprits.join(" ")
            );
        }
    }
}

#[test]
fn release_binaries_are_stripped_with_debug_info_beside_them_and_the_library_within_8_mb() {
    let dir = TempDir::new("release-strip");
    let top = unpack(&dir);
    for bin in BINARIES {
        let file = top.join(bin);
        let sections = readelf(&["--sections", "--wide"], &file);
        for gone in [".symtab", ".debug_info", ".debug_line"] {
            assert!(
                !sections.contains(&format!(" {gone} ")),
                "{bin} still has {gone}"
            );
        }
        let link = readelf(&["--string-dump=.gnu_debuglink"], &file);
        assert!(
            link.contains(&format!("{bin}.debug")),
            "{bin}'s .gnu_debuglink does not name {bin}.debug:\n{link}"
        );
        let debug = readelf(&["--sections", "--wide"], &top.join(format!("{bin}.debug")));
        assert!(
            debug.contains(" .debug_info ") && debug.contains(" .debug_line "),
            "{bin}.debug lacks the debug info"
        );
    }
    let size = std::fs::metadata(top.join("liblkl_hijack.so"))
        .unwrap()
        .len();
    eprintln!("stripped liblkl_hijack.so: {size} bytes");
    assert!(
        size <= 8_000_000,
        "liblkl_hijack.so is {size} bytes, over 8 MB"
    );
}
