//! How long the long-running tests run: short forms by default, long ones on request.

/// `LKL_SOAK=1` selects the long forms (10-minute soak, long fuzz runs, 30 s blackhole).
pub fn soak() -> bool {
    std::env::var("LKL_SOAK").is_ok_and(|v| !v.is_empty() && v != "0")
}
