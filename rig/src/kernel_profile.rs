//! Host-kernel profiles: run a program as it would run on an older host kernel.
//!
//! Users run lkl-hijack on the host kernels VPS providers have: OpenVZ 7's 3.10 (RHEL 7),
//! Virtuozzo 8's 4.18 (RHEL 8), Ubuntu 20.04's 5.4, Debian 11's 5.10. A profile is a seccomp
//! filter that answers what such a kernel lacks the way that kernel would: a system call it
//! does not have fails with ENOSYS, a `SOL_PACKET` option it does not know with ENOPROTOOPT.
//! Everything else reaches the running kernel unchanged.
//!
//! The tables are the vanilla releases' (kernel.org). RHEL's kernels carry backports, which
//! only ever add features, so the vanilla profile is the stricter test of a fallback.
//! Features that seccomp cannot see (a path such as `/proc/thread-self`, a flag inside a
//! structure) are not modelled.
//!
//! The filter is inherited across fork and exec, so a launcher under a profile passes it to
//! the program it starts.

use std::io;
use std::os::unix::process::CommandExt as _;
use std::process::Command;

/// A kernel release, as (major, minor).
pub type Release = (u8, u8);

/// x86-64 system calls added after 3.10: number, name, the release that added it.
const SYSCALLS: &[(u32, &str, Release)] = &[
    (317, "seccomp", (3, 17)),
    (318, "getrandom", (3, 17)),
    (319, "memfd_create", (3, 17)),
    (320, "kexec_file_load", (3, 17)),
    (321, "bpf", (3, 18)),
    (322, "execveat", (3, 19)),
    (323, "userfaultfd", (4, 3)),
    (324, "membarrier", (4, 3)),
    (325, "mlock2", (4, 4)),
    (326, "copy_file_range", (4, 5)),
    (327, "preadv2", (4, 6)),
    (328, "pwritev2", (4, 6)),
    (329, "pkey_mprotect", (4, 9)),
    (330, "pkey_alloc", (4, 9)),
    (331, "pkey_free", (4, 9)),
    (332, "statx", (4, 11)),
    (333, "io_pgetevents", (4, 18)),
    (334, "rseq", (4, 18)),
    (424, "pidfd_send_signal", (5, 1)),
    (425, "io_uring_setup", (5, 1)),
    (426, "io_uring_enter", (5, 1)),
    (427, "io_uring_register", (5, 1)),
    (428, "open_tree", (5, 2)),
    (429, "move_mount", (5, 2)),
    (430, "fsopen", (5, 2)),
    (431, "fsconfig", (5, 2)),
    (432, "fsmount", (5, 2)),
    (433, "fspick", (5, 2)),
    (434, "pidfd_open", (5, 3)),
    (435, "clone3", (5, 3)),
    (436, "close_range", (5, 9)),
    (437, "openat2", (5, 6)),
    (438, "pidfd_getfd", (5, 6)),
    (439, "faccessat2", (5, 8)),
    (440, "process_madvise", (5, 10)),
    (441, "epoll_pwait2", (5, 11)),
    (442, "mount_setattr", (5, 12)),
    (443, "quotactl_fd", (5, 14)),
    (444, "landlock_create_ruleset", (5, 13)),
    (445, "landlock_add_rule", (5, 13)),
    (446, "landlock_restrict_self", (5, 13)),
    (447, "memfd_secret", (5, 14)),
    (448, "process_mrelease", (5, 15)),
    (449, "futex_waitv", (5, 16)),
    (450, "set_mempolicy_home_node", (5, 17)),
    (451, "cachestat", (6, 5)),
    (452, "fchmodat2", (6, 6)),
    (453, "map_shadow_stack", (6, 6)),
    (454, "futex_wake", (6, 7)),
    (455, "futex_wait", (6, 7)),
    (456, "futex_requeue", (6, 7)),
    (457, "statmount", (6, 8)),
    (458, "listmount", (6, 8)),
    (459, "lsm_get_self_attr", (6, 8)),
    (460, "lsm_set_self_attr", (6, 8)),
    (461, "lsm_list_modules", (6, 8)),
    (462, "mseal", (6, 10)),
];

/// `SOL_PACKET` socket options added after 3.10: value, name, the release that added it.
const PACKET_OPTIONS: &[(u32, &str, Release)] = &[
    (20, "PACKET_QDISC_BYPASS", (3, 14)),
    (21, "PACKET_ROLLOVER_STATS", (4, 3)),
    (22, "PACKET_FANOUT_DATA", (4, 2)),
    (23, "PACKET_IGNORE_OUTGOING", (4, 20)),
    (24, "PACKET_VNET_HDR_SZ", (6, 2)),
];

/// The profiles offered, by the name they are asked for with.
const PROFILES: &[(&str, Release, &str)] = &[
    ("3.10", (3, 10), "OpenVZ 7 / Virtuozzo 7, RHEL 7, CentOS 7"),
    ("4.18", (4, 18), "Virtuozzo Hybrid Server 8, RHEL 8"),
    ("5.4", (5, 4), "Ubuntu 20.04"),
    ("5.10", (5, 10), "Debian 11"),
];

/// What a kernel of one release lacks, as a seccomp filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelProfile {
    name: &'static str,
    release: Release,
    hosts: &'static str,
}

impl KernelProfile {
    /// Every profile, oldest first.
    pub fn all() -> impl Iterator<Item = KernelProfile> {
        PROFILES
            .iter()
            .map(|&(name, release, hosts)| KernelProfile {
                name,
                release,
                hosts,
            })
    }

    /// The profile called `name` ("3.10", "4.18", "5.4", "5.10").
    pub fn named(name: &str) -> Result<KernelProfile, String> {
        Self::all().find(|p| p.name == name).ok_or_else(|| {
            let names: Vec<&str> = PROFILES.iter().map(|p| p.0).collect();
            format!(
                "unknown kernel profile {name:?} (one of {})",
                names.join(", ")
            )
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The hosts that run this kernel.
    pub fn hosts(&self) -> &'static str {
        self.hosts
    }

    /// The system calls refused with ENOSYS: name and the release that added it.
    pub fn missing_syscalls(&self) -> impl Iterator<Item = (&'static str, Release)> + '_ {
        SYSCALLS
            .iter()
            .filter(|s| s.2 > self.release)
            .map(|&(_, name, since)| (name, since))
    }

    /// The `SOL_PACKET` options refused with ENOPROTOOPT: name and the release that added it.
    pub fn missing_packet_options(&self) -> impl Iterator<Item = (&'static str, Release)> + '_ {
        PACKET_OPTIONS
            .iter()
            .filter(|o| o.2 > self.release)
            .map(|&(_, name, since)| (name, since))
    }

    /// The classic BPF program of the seccomp filter.
    ///
    /// Every jump is short (a test and a return next to each other), so the program can grow
    /// without a jump offset overflowing its 8 bits.
    fn program(&self) -> Vec<libc::sock_filter> {
        const NR: u32 = 0;
        const ARCH: u32 = 4;
        // seccomp_data.args[i] is a u64 at 16 + 8 i; its low half comes first on x86-64.
        const ARG1_LOW: u32 = 16 + 8;
        const ARG2_LOW: u32 = 16 + 8 * 2;
        const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
        let errno = |e: i32| libc::SECCOMP_RET_ERRNO | (e as u32 & libc::SECCOMP_RET_DATA);
        let allow = ret(libc::SECCOMP_RET_ALLOW);

        let mut p = vec![
            load(ARCH),
            // Another ABI's numbers mean other calls: leave them alone.
            jeq(AUDIT_ARCH_X86_64, 1, 0),
            allow,
            load(NR),
        ];
        for &(nr, _, since) in SYSCALLS {
            if since > self.release {
                p.extend([jeq(nr, 0, 1), ret(errno(libc::ENOSYS))]);
            }
        }
        p.extend([
            jeq(libc::SYS_setsockopt as u32, 2, 0),
            jeq(libc::SYS_getsockopt as u32, 1, 0),
            allow,
            load(ARG1_LOW),
            jeq(libc::SOL_PACKET as u32, 1, 0),
            allow,
            load(ARG2_LOW),
        ]);
        for &(opt, _, since) in PACKET_OPTIONS {
            if since > self.release {
                p.extend([jeq(opt, 0, 1), ret(errno(libc::ENOPROTOOPT))]);
            }
        }
        p.push(allow);
        p
    }

    /// Makes `cmd` start its program under this profile.
    pub fn confine(&self, cmd: &mut Command) {
        // Built here: the hook runs between fork and exec, where allocating is not safe.
        let program = self.program();
        // SAFETY: the hook only makes the prctl and seccomp system calls, which are
        // async-signal-safe, on a program the closure owns.
        unsafe {
            cmd.pre_exec(move || install(&program));
        }
    }

    /// Puts the calling thread (and what it starts from now on) under this profile. Call it
    /// before other threads exist, or they stay unconfined.
    pub fn confine_self(&self) -> io::Result<()> {
        install(&self.program())
    }
}

fn load(offset: u32) -> libc::sock_filter {
    stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, offset)
}

fn ret(value: u32) -> libc::sock_filter {
    stmt(libc::BPF_RET | libc::BPF_K, value)
}

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jeq(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    }
}

/// Installs a seccomp filter on the calling thread (no_new_privs first, as an unprivileged
/// caller needs, and as keeps a later setuid program from shedding it).
fn install(program: &[libc::sock_filter]) -> io::Result<()> {
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integers only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // prctl rather than seccomp(2), which a 3.10 kernel (and so an outer 3.10 profile) lacks.
    // SAFETY: `prog` points at `program`, which outlives the call; the kernel copies it.
    let ret = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_profiles_refuse_more() {
        let counts: Vec<usize> = KernelProfile::all()
            .map(|p| p.missing_syscalls().count() + p.missing_packet_options().count())
            .collect();
        assert!(counts.windows(2).all(|w| w[0] > w[1]), "{counts:?}");
    }

    #[test]
    fn each_profile_refuses_exactly_what_came_after_it() {
        let p = KernelProfile::named("4.18").unwrap();
        let calls: Vec<&str> = p.missing_syscalls().map(|s| s.0).collect();
        assert!(calls.contains(&"pidfd_open") && calls.contains(&"epoll_pwait2"));
        assert!(!calls.contains(&"rseq") && !calls.contains(&"statx"));
        let opts: Vec<&str> = p.missing_packet_options().map(|o| o.0).collect();
        assert_eq!(opts, ["PACKET_IGNORE_OUTGOING", "PACKET_VNET_HDR_SZ"]);
        assert!(KernelProfile::named("5.10")
            .unwrap()
            .missing_syscalls()
            .any(|s| s.0 == "epoll_pwait2"));
        assert!(!KernelProfile::named("5.10")
            .unwrap()
            .missing_syscalls()
            .any(|s| s.0 == "close_range"));
    }

    #[test]
    fn unknown_profile_names_the_known_ones() {
        let err = KernelProfile::named("2.6").unwrap_err();
        assert!(err.contains("3.10, 4.18, 5.4, 5.10"), "{err}");
    }
}
