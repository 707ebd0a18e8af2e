//! Finding the Linux 6.12 source: `LKL_KERNEL_SRC` (a directory or tarball), else Debian's
//! linux-source-6.12 tarball; its version, and what identifies it for the cache key.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::UNIX_EPOCH;

use crate::hash::Fnv1a;

const WANTED_VERSION: (u32, u32) = (6, 12);
const DEBIAN_TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";

pub enum Source {
    Tarball(PathBuf),
    Dir(PathBuf),
}

pub struct Version {
    major: u32,
    minor: u32,
    /// e.g. "6.12.117"
    pub full: String,
}

impl Source {
    pub fn find() -> Source {
        let missing = || -> ! {
            panic!(
                "\n\nlkl-sys needs the Linux 6.12 source to build the kernel library.\n\
                 On Debian: `apt-get install linux-source-6.12` (or run scripts/setup.sh), which \
                 installs {DEBIAN_TARBALL}.\n\
                 Elsewhere: set LKL_KERNEL_SRC to a Linux 6.12.y source directory or tarball \
                 (.tar.xz / .tar.gz).\n"
            )
        };
        let path = match env::var_os("LKL_KERNEL_SRC").filter(|v| !v.is_empty()) {
            Some(p) => {
                let p = PathBuf::from(p);
                if !p.exists() {
                    panic!("LKL_KERNEL_SRC={} does not exist", p.display());
                }
                p
            }
            None if Path::new(DEBIAN_TARBALL).is_file() => PathBuf::from(DEBIAN_TARBALL),
            None => missing(),
        };
        let path = fs::canonicalize(&path)
            .unwrap_or_else(|e| panic!("cannot resolve {}: {e}", path.display()));
        if path.is_dir() {
            if !path.join("Makefile").is_file() || !path.join("arch").is_dir() {
                panic!(
                    "LKL_KERNEL_SRC={} is a directory but not a Linux source tree",
                    path.display()
                );
            }
            println!("cargo:rerun-if-changed={}", path.join("Makefile").display());
            Source::Dir(path)
        } else {
            let name = path.to_string_lossy();
            if ![".tar.xz", ".tar.gz", ".tgz", ".tar"]
                .iter()
                .any(|s| name.ends_with(s))
            {
                panic!(
                    "LKL_KERNEL_SRC={name} is neither a directory nor a .tar.xz/.tar.gz tarball"
                );
            }
            println!("cargo:rerun-if-changed={name}");
            Source::Tarball(path)
        }
    }

    /// The tarball, if the source is one (reading and unpacking it need tar and its
    /// decompressor).
    pub fn tarball(&self) -> Option<&Path> {
        match self {
            Source::Tarball(t) => Some(t),
            Source::Dir(_) => None,
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            Source::Tarball(p) | Source::Dir(p) => p,
        }
    }

    /// Reads VERSION/PATCHLEVEL/SUBLEVEL from the top Makefile and insists on 6.12.
    pub fn version(&self) -> Version {
        let makefile = match self {
            Source::Dir(d) => fs::read_to_string(d.join("Makefile"))
                .unwrap_or_else(|e| panic!("cannot read {}/Makefile: {e}", d.display())),
            // The top Makefile is one level down and near the start of the archive: tar stops
            // at the first match, so this does not decompress the whole tarball.
            Source::Tarball(t) => {
                let out = Command::new("tar")
                    .arg("-xOf")
                    .arg(t)
                    .args([
                        "--wildcards",
                        "--no-wildcards-match-slash",
                        "--occurrence=1",
                        "*/Makefile",
                    ])
                    .stderr(Stdio::inherit())
                    .output()
                    .unwrap_or_else(|e| {
                        panic!("cannot run tar (needed to unpack the kernel source): {e}")
                    });
                if !out.status.success() || out.stdout.is_empty() {
                    panic!(
                        "{} does not look like a Linux source tarball (no top-level Makefile)",
                        t.display()
                    );
                }
                String::from_utf8_lossy(&out.stdout).into_owned()
            }
        };
        let field = |name: &str| -> Option<String> {
            makefile.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == name).then(|| v.trim().to_string())
            })
        };
        let num = |name: &str| field(name).and_then(|v| v.parse::<u32>().ok());
        let (Some(major), Some(minor)) = (num("VERSION"), num("PATCHLEVEL")) else {
            panic!(
                "{}: no VERSION/PATCHLEVEL in the top Makefile; is this a Linux source?",
                self.path().display()
            );
        };
        let sub = num("SUBLEVEL").unwrap_or(0);
        let extra = field("EXTRAVERSION").unwrap_or_default();
        let version = Version {
            major,
            minor,
            full: format!("{major}.{minor}.{sub}{extra}"),
        };
        if (version.major, version.minor) != WANTED_VERSION {
            panic!(
                "{} is Linux {}, but the lkl arch port is written for Linux {}.{}.y; \
                 point LKL_KERNEL_SRC at a 6.12 tree or install linux-source-6.12",
                self.path().display(),
                version.full,
                WANTED_VERSION.0,
                WANTED_VERSION.1
            );
        }
        version
    }

    /// What identifies this source for the cache key without reading 150 MB or 1.7 GB.
    pub fn identity(&self, version: &Version, h: &mut Fnv1a) {
        h.field(self.path().as_os_str().as_encoded_bytes());
        h.field(version.full.as_bytes());
        let stamped = match self {
            Source::Tarball(t) => t.clone(),
            Source::Dir(d) => d.join("Makefile"),
        };
        let meta = fs::metadata(&stamped)
            .unwrap_or_else(|e| panic!("cannot stat {}: {e}", stamped.display()));
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .unwrap_or_default();
        h.field(&meta.len().to_le_bytes());
        h.field(&mtime.as_nanos().to_le_bytes());
    }
}
