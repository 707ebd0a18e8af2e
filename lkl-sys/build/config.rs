//! Comparing the configured kernel with the project's config fragment.

use std::fs;
use std::path::Path;

/// kbuild silently drops options whose dependencies are unmet; say which ones did not stick.
pub fn check_config(fragment: &Path, full: &Path) {
    let full =
        fs::read_to_string(full).unwrap_or_else(|e| panic!("cannot read {}: {e}", full.display()));
    let value_of = |sym: &str| {
        full.lines()
            .find_map(|l| l.strip_prefix(sym)?.strip_prefix('='))
    };
    for line in fs::read_to_string(fragment)
        .expect("read kernel.config")
        .lines()
    {
        let line = line.trim();
        let (sym, want) = if let Some(sym) = line
            .strip_prefix("# ")
            .and_then(|l| l.strip_suffix(" is not set"))
        {
            (sym, "n")
        } else if let Some((sym, want)) = line
            .split_once('=')
            .filter(|(s, _)| s.starts_with("CONFIG_"))
        {
            (sym, want)
        } else {
            continue;
        };
        let got = value_of(sym).unwrap_or("n");
        if got != want {
            println!("cargo:warning=lkl-sys: kernel.config asks for {sym}={want} but the build has {sym}={got} (unmet dependency?)");
        }
    }
}
