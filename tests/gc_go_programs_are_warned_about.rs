//! A program built by the gc Go toolchain bypasses libc, so its sockets cannot be moved: the
//! library says so once at start. gccgo-built programs go through glibc and get no warning.
//! No gc toolchain is packaged for the tests, so a C program carrying the section gc writes
//! into every binary (`.go.buildinfo`) stands in for one.

mod common;

use common::{check_output, command_in, lkl_env, venet};
use lkl_rig::Topology;

const WARNING: &str = "built by the gc Go toolchain";

fn build(dir: &std::path::Path, name: &str, compiler: &str, source: &str, ext: &str) -> String {
    let src = dir.join(format!("{name}.{ext}"));
    std::fs::write(&src, source).unwrap();
    let out = dir.join(name);
    check_output(
        std::process::Command::new(compiler)
            .arg("-o")
            .arg(&out)
            .arg(&src),
    );
    out.display().to_string()
}

#[test]
fn gc_marked_binary_gets_one_warning_and_gccgo_binary_none() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("gocheck");
    std::fs::create_dir_all(&dir).unwrap();
    let gc_like = build(
        &dir,
        "gc_like",
        "cc",
        "__attribute__((section(\".go.buildinfo\"), used)) static const char info[32] = \"\\xff Go buildinf:\";\n\
         int main(void) { return 0; }\n",
        "c",
    );
    let gccgo = build(
        &dir,
        "gccgo_hello",
        "gccgo-12",
        "package main\nimport \"fmt\"\nfunc main() { fmt.Println(\"hello\") }\n",
        "go",
    );
    let topo = venet();
    let env = lkl_env(&topo);
    let run = |program: &str| {
        let out = command_in(topo.container_ns(), program, &[], &env)
            .output()
            .unwrap();
        assert!(out.status.success(), "{program}: {out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = run(&gc_like);
    assert_eq!(stderr.matches(WARNING).count(), 1, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let stderr = run(&gccgo);
    assert!(!stderr.contains(WARNING), "{stderr}");
}
