//! Programs built by the gc Go toolchain make their system calls themselves, not through
//! libc, so preloading cannot move their sockets (gccgo-built ones go through glibc and
//! work). They are recognised by the `.go.buildinfo` section gc writes into every binary.

use std::ffi::{c_int, c_void, CStr};

use crate::host;

/// Whether the ELF file at `path` has a `.go.buildinfo` section. Unreadable or non-ELF-64
/// files are not Go binaries as far as this goes.
pub fn built_by_gc_go(path: &CStr) -> bool {
    // SAFETY: open(2) with a NUL-terminated path (not one of our hooks).
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return false;
    }
    let found = has_section(fd, b".go.buildinfo").unwrap_or(false);
    // SAFETY: our own descriptor, closed once.
    unsafe { host::close(fd) };
    found
}

fn read_at(fd: c_int, buf: &mut [u8], offset: u64) -> Option<()> {
    // SAFETY: reads into a live buffer of buf.len() bytes.
    let n = unsafe {
        host::pread64(
            fd,
            buf.as_mut_ptr().cast::<c_void>(),
            buf.len(),
            offset as libc::off_t,
        )
    };
    (n == buf.len() as isize).then_some(())
}

fn u16_at(b: &[u8], at: usize) -> u64 {
    u64::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn u32_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32::from_le_bytes(
        b[at..at + 4].try_into().expect("4 bytes"),
    ))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Looks `name` up among the section names of a little-endian ELF-64 file.
fn has_section(fd: c_int, name: &[u8]) -> Option<bool> {
    let mut eh = [0u8; 64];
    read_at(fd, &mut eh, 0)?;
    if &eh[..4] != b"\x7fELF" || eh[4] != 2 || eh[5] != 1 {
        return Some(false);
    }
    let (shoff, shentsize, shnum, shstrndx) = (
        u64_at(&eh, 0x28),
        u16_at(&eh, 0x3a),
        u16_at(&eh, 0x3c),
        u16_at(&eh, 0x3e),
    );
    if shentsize < 64 || shnum == 0 || shnum > 4096 || shstrndx >= shnum {
        return Some(false);
    }
    let mut headers = vec![0u8; (shentsize * shnum) as usize];
    read_at(fd, &mut headers, shoff)?;
    let section = |i: u64| &headers[(i * shentsize) as usize..][..64];
    let strtab = section(shstrndx);
    let (str_off, str_size) = (u64_at(strtab, 0x18), u64_at(strtab, 0x20));
    if str_size > 1 << 20 {
        return Some(false);
    }
    let mut names = vec![0u8; str_size as usize];
    read_at(fd, &mut names, str_off)?;
    Some((0..shnum).any(|i| {
        let at = u32_at(section(i), 0) as usize;
        names
            .get(at..)
            .and_then(|rest| rest.split(|&b| b == 0).next())
            .is_some_and(|n| n == name)
    }))
}
