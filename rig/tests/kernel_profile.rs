//! Kernel profiles: a program under one sees the old kernel's answers for what it lacks, and
//! the running kernel's for everything else.

use std::path::PathBuf;
use std::process::Command;

use lkl_rig::KernelProfile;

/// Asks the kernel for close_range, epoll_pwait2 and two SOL_PACKET options, and prints each
/// answer as `name result` (`ok` or the errno's name). The calls are made so that a kernel
/// which has them answers with something other than ENOSYS/ENOPROTOOPT.
const PROBE: &str = r#"
import ctypes, errno, socket
libc = ctypes.CDLL(None, use_errno=True)
def call(nr, *args):
    return "ok" if libc.syscall(nr, *args) >= 0 else errno.errorcode[ctypes.get_errno()]
print("close_range", call(436, 100000, 100001, 0))
print("epoll_pwait2", call(441, -1, 0, 0, 0, 0, 0))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
for name, opt in (("PACKET_IGNORE_OUTGOING", 23), ("PACKET_VNET_HDR", 15)):
    try:
        s.setsockopt(263, opt, 1)
        print(name, "ok")
    except OSError as e:
        print(name, errno.errorcode[e.errno])
"#;

fn answers(mut cmd: Command) -> Vec<String> {
    let out = cmd.output().expect("run python3");
    assert!(
        out.status.success(),
        "probe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn probe_under(profile: Option<&str>) -> Vec<String> {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", PROBE]);
    if let Some(name) = profile {
        KernelProfile::named(name).unwrap().confine(&mut cmd);
    }
    answers(cmd)
}

#[test]
fn without_a_profile_the_running_kernel_answers() {
    assert_eq!(
        probe_under(None),
        [
            "close_range ok",
            "epoll_pwait2 EBADF",
            "PACKET_IGNORE_OUTGOING ok",
            "PACKET_VNET_HDR ok"
        ]
    );
}

#[test]
fn profile_3_10_refuses_close_range_epoll_pwait2_and_ignore_outgoing() {
    assert_eq!(
        probe_under(Some("3.10")),
        [
            "close_range ENOSYS",
            "epoll_pwait2 ENOSYS",
            "PACKET_IGNORE_OUTGOING ENOPROTOOPT",
            "PACKET_VNET_HDR ok"
        ]
    );
}

#[test]
fn profile_5_4_has_ignore_outgoing_but_not_close_range() {
    assert_eq!(
        probe_under(Some("5.4")),
        [
            "close_range ENOSYS",
            "epoll_pwait2 ENOSYS",
            "PACKET_IGNORE_OUTGOING ok",
            "PACKET_VNET_HDR ok"
        ]
    );
}

#[test]
fn profile_5_10_lacks_only_epoll_pwait2_of_these() {
    assert_eq!(
        probe_under(Some("5.10")),
        [
            "close_range ok",
            "epoll_pwait2 ENOSYS",
            "PACKET_IGNORE_OUTGOING ok",
            "PACKET_VNET_HDR ok"
        ]
    );
}

fn rig_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lkl-rig"))
}

#[test]
fn lkl_rig_kernel_profile_runs_a_program_under_the_profile_and_its_children_too() {
    // The probe runs as a grandchild (sh starts python3): the filter is inherited.
    let mut cmd = Command::new(rig_bin());
    cmd.args([
        "kernel-profile",
        "4.18",
        "--",
        "sh",
        "-c",
        "exec python3 -c \"$0\"",
        PROBE,
    ]);
    assert_eq!(
        answers(cmd),
        [
            "close_range ENOSYS",
            "epoll_pwait2 ENOSYS",
            "PACKET_IGNORE_OUTGOING ENOPROTOOPT",
            "PACKET_VNET_HDR ok"
        ]
    );
}

#[test]
fn lkl_rig_kernel_profile_refuses_an_unknown_version() {
    let out = Command::new(rig_bin())
        .args(["kernel-profile", "2.6", "--", "true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown kernel profile \"2.6\""), "{err}");
}
