//! An eighth of the kernel's memory stays free for atomic allocations (what received packets
//! use), with no watermark boosting: the zone's min watermark is that size.

mod common;

use lkl::sys::O_RDONLY;
use lkl::BootOptions;

#[test]
fn min_free_is_an_eighth_of_mem_and_never_boosted() {
    let k = common::kernel_with(|| BootOptions {
        mem_mib: 32,
        ..BootOptions::default()
    });
    assert_eq!(k.sysctl_read("vm.min_free_kbytes").unwrap(), "4096");
    assert_eq!(k.sysctl_read("vm.watermark_boost_factor").unwrap(), "0");

    let fd = k.open("/proc/zoneinfo", O_RDONLY, 0).unwrap();
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match k.read(fd, &mut buf).unwrap() {
            0 => break,
            n => text.extend_from_slice(&buf[..n]),
        }
    }
    k.close(fd).unwrap();
    let text = String::from_utf8(text).unwrap();
    // The first zone with pages is the kernel's one zone.
    let zone = text
        .split("Node 0, zone")
        .find(|z| z.contains("managed") && !z.contains("managed  0"))
        .unwrap_or_else(|| panic!("no populated zone in:\n{text}"));
    let field = |name: &str| -> u64 {
        zone.lines()
            .map(str::split_whitespace)
            .find_map(|mut w| (w.next() == Some(name)).then(|| w.next().unwrap().parse().unwrap()))
            .unwrap_or_else(|| panic!("no {name} in:\n{zone}"))
    };
    assert_eq!(
        field("min"),
        4096 / 4,
        "min watermark in 4 KiB pages:\n{zone}"
    );
}
