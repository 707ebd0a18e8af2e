//! An unknown kernel command-line option is an error from boot, not a hang or a crash.

use lkl::{BootOptions, Error, Kernel};

#[test]
fn unknown_option_is_a_clear_error() {
    let _ = env_logger::builder().is_test(true).try_init();
    let options = BootOptions {
        cmdline_extra: "no_such_option=1".into(),
        ..Default::default()
    };
    let err = Kernel::boot(options).expect_err("the kernel must refuse an unknown option");
    assert!(
        matches!(&err, Error::BadOptions { cmdline } if cmdline.contains("no_such_option=1")),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with("kernel refused boot options"),
        "{err}"
    );
}
