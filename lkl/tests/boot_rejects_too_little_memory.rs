//! Too little memory for the kernel is an error from boot, not a hang or a crash.

use lkl::{BootOptions, Error, Kernel};

#[test]
fn too_little_memory_is_a_clear_error() {
    let _ = env_logger::builder().is_test(true).try_init();
    // A later mem= wins over the one BootOptions puts first.
    let options = BootOptions {
        cmdline_extra: "mem=1K".into(),
        ..Default::default()
    };
    let err = Kernel::boot(options).expect_err("1 KiB is not enough for Linux");
    assert!(matches!(err, Error::NotEnoughMemory { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("not enough memory for the kernel: `mem="),
        "{err}"
    );
}
