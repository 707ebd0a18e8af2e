//! Symbol hygiene: the kernel defines memcpy, printk, schedule and thousands more. None of
//! them may be global in liblkl.a, nor exported by liblkl_hijack.so, where they would
//! interpose on the host program's own symbols.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Names that must never be exported: kernel internals and libc names the kernel defines.
const KERNEL_NAMES: &[&str] = &[
    "printk",
    "_printk",
    "kmalloc",
    "__kmalloc",
    "kfree",
    "schedule",
    "__schedule",
    "start_kernel",
    "panic",
    "memcpy",
    "memset",
    "memmove",
    "strcpy",
    "strlen",
    "jiffies",
    "init_task",
    "sock_create",
    "tcp_sendmsg",
];

/// (type letter, name) for every symbol `nm` lists with the given flags.
fn nm(args: &[&str], file: &Path) -> Vec<(char, String)> {
    let out = Command::new("nm")
        .args(args)
        .arg(file)
        .output()
        .expect("run nm (binutils)");
    assert!(
        out.status.success(),
        "nm {args:?} {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            // "address type name"; archive member headers ("lkl.o:") and blank lines have fewer fields.
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields[..] {
                [_, kind, name] => Some((kind.chars().next()?, name.to_string())),
                _ => None,
            }
        })
        .collect()
}

fn liblkl() -> PathBuf {
    Path::new(lkl::sys::LIB_DIR).join("liblkl.a")
}

#[test]
fn liblkl_defines_only_lkl_entry_points_globally() {
    let globals: BTreeSet<String> = nm(&["--defined-only", "-g"], &liblkl())
        .into_iter()
        .map(|(_, name)| name)
        .collect();
    for entry in [
        "lkl_start_kernel",
        "lkl_syscall",
        "lkl_halt",
        "lkl_trigger_irq",
        "lkl_get_free_irq",
        "lkl_put_irq",
    ] {
        assert!(
            globals.contains(entry),
            "{entry} missing from {}",
            liblkl().display()
        );
    }
    let leaked: Vec<&String> = globals
        .iter()
        .filter(|name| !name.starts_with("lkl_"))
        .collect();
    assert!(
        leaked.is_empty(),
        "global non-lkl_ symbols in liblkl.a: {leaked:?}"
    );
}

#[test]
fn cdylib_contains_the_kernel_but_exports_none_of_it() {
    let so = common::hijack_so();
    // The kernel is really inside (its entry points appear in the full symbol table)...
    let all: BTreeSet<String> = nm(&["--defined-only"], &so)
        .into_iter()
        .map(|(_, name)| name)
        .collect();
    assert!(
        all.contains("lkl_start_kernel"),
        "the kernel is not linked into {}",
        so.display()
    );
    // ...but nothing of it is in the dynamic symbol table.
    let exported: BTreeSet<String> = nm(&["-D", "--defined-only"], &so)
        .into_iter()
        .map(|(_, name)| name)
        .collect();
    let leaked: Vec<&&str> = KERNEL_NAMES
        .iter()
        .filter(|name| exported.contains(**name))
        .collect();
    assert!(
        leaked.is_empty(),
        "{} exports kernel symbols: {leaked:?}",
        so.display()
    );
    // Every name the kernel defines, local ones included, stays out of the dynamic table.
    let kernel_names: BTreeSet<String> = nm(&["--defined-only"], &liblkl())
        .into_iter()
        .map(|(_, name)| name)
        .collect();
    let leaked: Vec<&String> = exported.intersection(&kernel_names).collect();
    assert!(
        leaked.is_empty(),
        "{} exports names the kernel defines: {leaked:?}",
        so.display()
    );
}
