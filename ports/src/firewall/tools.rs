//! Which firewall tools there are here, and the order they are tried in.

use std::path::{Path, PathBuf};

use super::PATH;

/// The rule language in use.
pub(super) enum Tool {
    Nft(PathBuf),
    Iptables { v4: PathBuf, v6: PathBuf },
}

impl Tool {
    /// The program's name, for messages.
    pub(super) fn name(&self) -> String {
        let path = match self {
            Tool::Nft(nft) => nft,
            Tool::Iptables { v4, .. } => v4,
        };
        path.file_name().map_or(path.display().to_string(), |n| {
            n.to_string_lossy().into_owned()
        })
    }
}

/// The tools to try, in order, of those `find` finds: nft; then the legacy iptables, which
/// works where nf_tables is missing (OpenVZ 7 and RHEL 7 kernels, containers whose host limits
/// netfilter) but the nft command and iptables-nft (Debian's and RHEL 8's `iptables`) fail;
/// then whatever `iptables` is. An iptables tool needs its ip6tables too.
fn candidates_from(find: impl Fn(&str) -> Option<PathBuf>) -> Vec<Tool> {
    let iptables = [
        ("iptables-legacy", "ip6tables-legacy"),
        ("iptables", "ip6tables"),
    ]
    .into_iter()
    .filter_map(|(v4, v6)| {
        Some(Tool::Iptables {
            v4: find(v4)?,
            v6: find(v6)?,
        })
    });
    find("nft")
        .map(Tool::Nft)
        .into_iter()
        .chain(iptables)
        .collect()
}

pub(super) fn candidates() -> Vec<Tool> {
    candidates_from(find_program)
}

/// The firewall tools found here, in the order [`Firewall::install`](super::Firewall::install)
/// tries them (the first that works is used).
pub fn tools_found() -> Vec<String> {
    candidates().iter().map(Tool::name).collect()
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(PATH.split(':'))
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_are_tried_nft_then_legacy_iptables_then_iptables_each_iptables_with_its_ip6tables() {
        let names = |present: &[&str]| {
            let tools = candidates_from(|name| {
                present
                    .contains(&name)
                    .then(|| PathBuf::from(format!("/usr/sbin/{name}")))
            });
            tools
                .iter()
                .map(|t| match t {
                    Tool::Nft(p) => p.display().to_string(),
                    Tool::Iptables { v4, v6 } => format!("{} {}", v4.display(), v6.display()),
                })
                .collect::<Vec<_>>()
        };
        let all = [
            "iptables",
            "ip6tables",
            "nft",
            "ip6tables-legacy",
            "iptables-legacy",
        ];
        assert_eq!(
            names(&all),
            [
                "/usr/sbin/nft",
                "/usr/sbin/iptables-legacy /usr/sbin/ip6tables-legacy",
                "/usr/sbin/iptables /usr/sbin/ip6tables",
            ]
        );
        assert_eq!(
            names(&["iptables", "ip6tables", "iptables-legacy"]),
            ["/usr/sbin/iptables /usr/sbin/ip6tables"]
        );
        assert!(names(&["iptables-legacy", "ip6tables"]).is_empty());
    }
}
