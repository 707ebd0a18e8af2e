//! What a program's ELF file says about whether preloading can move its sockets: it must be
//! dynamically linked against glibc (LD_PRELOAD needs the dynamic loader, and the library
//! replaces glibc's functions), and not built by the gc Go toolchain (whose binaries make
//! their system calls themselves; gc writes a `.go.buildinfo` section into every binary).

use std::path::Path;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Linkage {
    /// Dynamically linked, loaded by glibc's ld-linux.
    Glibc,
    /// Dynamically linked with another loader (e.g. musl's), named here.
    OtherLoader(String),
    /// No program interpreter: a static binary.
    Static,
    /// A script or an ELF file this does not read (not 64-bit little-endian).
    NotElf,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    pub linkage: Linkage,
    pub gc_go: bool,
}

pub fn inspect(path: &Path) -> std::io::Result<Program> {
    Ok(parse(&std::fs::read(path)?))
}

fn u16_at(b: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?).into())
}

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    usize::try_from(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?)).ok()
}

fn u64_at(b: &[u8], at: usize) -> Option<usize> {
    usize::try_from(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?)).ok()
}

fn parse(file: &[u8]) -> Program {
    if file.len() < 64 || &file[..4] != b"\x7fELF" || file[4] != 2 || file[5] != 1 {
        return Program {
            linkage: Linkage::NotElf,
            gc_go: false,
        };
    }
    Program {
        linkage: match interpreter(file) {
            None => Linkage::Static,
            Some(i) if i.contains("ld-linux") => Linkage::Glibc,
            Some(i) => Linkage::OtherLoader(i),
        },
        gc_go: has_section(file, b".go.buildinfo").unwrap_or(false),
    }
}

/// The PT_INTERP path, if the file has one.
fn interpreter(file: &[u8]) -> Option<String> {
    const PT_INTERP: usize = 3;
    let (phoff, phentsize, phnum) = (
        u64_at(file, 0x20)?,
        u16_at(file, 0x36)?,
        u16_at(file, 0x38)?,
    );
    (0..phnum).find_map(|i| {
        let ph = file.get(i.checked_mul(phentsize)?.checked_add(phoff)?..)?;
        if u32_at(ph, 0)? != PT_INTERP {
            return None;
        }
        let (off, size) = (u64_at(ph, 0x08)?, u64_at(ph, 0x20)?);
        let raw = file.get(off..off.checked_add(size)?)?;
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        Some(String::from_utf8_lossy(&raw[..end]).into_owned())
    })
}

/// Whether a section called `name` exists.
fn has_section(file: &[u8], name: &[u8]) -> Option<bool> {
    let (shoff, shentsize, shnum, shstrndx) = (
        u64_at(file, 0x28)?,
        u16_at(file, 0x3a)?,
        u16_at(file, 0x3c)?,
        u16_at(file, 0x3e)?,
    );
    let section = |i: usize| file.get(i.checked_mul(shentsize)?.checked_add(shoff)?..);
    let strtab = section(shstrndx)?;
    let (str_off, str_size) = (u64_at(strtab, 0x18)?, u64_at(strtab, 0x20)?);
    let names = file.get(str_off..str_off.checked_add(str_size)?)?;
    Some((0..shnum).any(|i| {
        section(i)
            .and_then(|s| u32_at(s, 0))
            .and_then(|at| names.get(at..))
            .and_then(|rest| rest.split(|&b| b == 0).next())
            .is_some_and(|n| n == name)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_is_a_glibc_program_not_gc_go() {
        let me = inspect(&std::env::current_exe().unwrap()).unwrap();
        assert_eq!(
            me,
            Program {
                linkage: Linkage::Glibc,
                gc_go: false
            }
        );
    }

    #[test]
    fn scripts_and_garbage_are_not_elf() {
        assert_eq!(parse(b"#!/bin/sh\necho hi\n").linkage, Linkage::NotElf);
        let mut junk = b"\x7fELF\x02\x01".to_vec();
        junk.resize(80, 0xff);
        // Offsets pointing nowhere: no interpreter found, no section, no panic.
        assert_eq!(
            parse(&junk),
            Program {
                linkage: Linkage::Static,
                gc_go: false
            }
        );
    }
}
