//! Fuzzing the configuration parser, deterministic: a seeded PRNG makes
//! environments for `HijackConfig::from_vars` from every `LKL_HIJACK_*` variable, with values
//! that are valid, nearly valid (mutated: bytes flipped, inserted, deleted, duplicated
//! separators, Unicode, NULs, huge numbers) or random. The parser must never panic, must name
//! the offending variable in its error, and for `LKL_HIJACK_PORTS`/`_CLIENT_PORTS` (the
//! policy's port-range parser, `PortSet::parse`) must agree with a simple model of the syntax.
//!
//! CI: 200 000 environments and 200 000 port lists (under a second). `LKL_SOAK=1`: 2 000 000
//! each.
//! `LKL_FUZZ_SEED=N` picks another seed.

mod rng;
mod run_length;

use std::panic;

use lkl_hijack::config::HijackConfig;
use rng::Rng;
use run_length::soak;

const VARS: &[&str] = &[
    "LKL_HIJACK_NET_IFTYPE",
    "LKL_HIJACK_NET_IFPARAMS",
    "LKL_HIJACK_NET_IP",
    "LKL_HIJACK_NET_NETMASK_LEN",
    "LKL_HIJACK_NET_GATEWAY",
    "LKL_HIJACK_NET_IPV6",
    "LKL_HIJACK_NET_NETMASK6_LEN",
    "LKL_HIJACK_NET_GATEWAY6",
    "LKL_HIJACK_NET_MTU",
    "LKL_HIJACK_NET_QDISC",
    "LKL_HIJACK_SYSCTL",
    "LKL_HIJACK_MEMSIZE",
    "LKL_HIJACK_BOOT_CMDLINE",
    "LKL_HIJACK_DEBUG",
    "LKL_HIJACK_PORTS",
    "LKL_HIJACK_CLIENTS",
    "LKL_HIJACK_CLIENT_PORTS",
    "LKL_HIJACK_FIREWALL",
];

fn cases() -> u64 {
    if soak() {
        2_000_000
    } else {
        200_000
    }
}

fn seed() -> u64 {
    std::env::var("LKL_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0c0f_f1e5)
}

/// A plausible value for `var`.
fn valid(rng: &Rng, var: &str) -> String {
    let port = |rng: &Rng| rng.range(1, 65535).to_string();
    match var {
        "LKL_HIJACK_NET_IFTYPE" => "packet".into(),
        "LKL_HIJACK_NET_IFPARAMS" => rng.pick(&["venet0", "eth0", "lo", "a"]).to_string(),
        "LKL_HIJACK_NET_IP" | "LKL_HIJACK_NET_GATEWAY" => format!(
            "{}.{}.{}.{}",
            rng.below(256),
            rng.below(256),
            rng.below(256),
            rng.below(256)
        ),
        "LKL_HIJACK_NET_IPV6" | "LKL_HIJACK_NET_GATEWAY6" => rng
            .pick(&["fd00::3", "::1", "2001:db8::1", "fe80::1:2:3:4", "::"])
            .to_string(),
        "LKL_HIJACK_NET_NETMASK_LEN" => rng.below(33).to_string(),
        "LKL_HIJACK_NET_NETMASK6_LEN" => rng.below(129).to_string(),
        "LKL_HIJACK_NET_MTU" => rng.range(68, 65535).to_string(),
        "LKL_HIJACK_NET_QDISC" => rng
            .pick(&["fq", "root|fq", "pfifo_fast", "fq_codel"])
            .to_string(),
        "LKL_HIJACK_SYSCTL" => rng
            .pick(&[
                "net.ipv4.tcp_congestion_control=cubic",
                "net.core.somaxconn=4096;net.ipv4.tcp_rmem=4096 87380 6291456",
                "a=b;c=d;",
            ])
            .to_string(),
        "LKL_HIJACK_MEMSIZE" => rng
            .pick(&["16M", "32M", "256M", "1G", "67108864", "64m"])
            .to_string(),
        "LKL_HIJACK_BOOT_CMDLINE" => rng.pick(&["", "loglevel=8", "quiet"]).to_string(),
        "LKL_HIJACK_DEBUG" => rng.pick(&["1", "0", ""]).to_string(),
        "LKL_HIJACK_PORTS" | "LKL_HIJACK_CLIENT_PORTS" => {
            let n = rng.range(1, 5);
            (0..n)
                .map(|_| {
                    if rng.chance(50) {
                        port(rng)
                    } else {
                        let a = rng.range(1, 65535);
                        let b = rng.range(a, 65535);
                        format!("{a}-{b}")
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        }
        "LKL_HIJACK_CLIENTS" => rng.pick(&["host", "lkl"]).to_string(),
        "LKL_HIJACK_FIREWALL" => rng.pick(&["auto", "print", "off"]).to_string(),
        _ => String::new(),
    }
}

const NASTY: &[&str] = &[
    "",
    " ",
    "\0",
    "-",
    ",",
    ";",
    "=",
    "|",
    "0",
    "-1",
    "65536",
    "99999999999999999999999",
    "18446744073709551616",
    "4294967296",
    "0x10",
    "1e3",
    "+1",
    " 1",
    "1 ",
    "１",
    "é",
    "\u{202e}",
    "%s%n",
    "../",
    "\n",
    "\t",
    "1--2",
    "1-",
    "-2",
    ",,",
    "1,,2",
    "M",
    "G",
    "0M",
    "15M",
    "16777215M",
    "4096G",
    "9999999G",
];

/// `v` mutated a little.
fn mutate(rng: &Rng, v: &str) -> String {
    let mut b: Vec<char> = v.chars().collect();
    for _ in 0..rng.range(1, 4) {
        let at = rng.below(b.len() as u64 + 1) as usize;
        match rng.below(6) {
            0 if at < b.len() => {
                b.remove(at);
            }
            1 => b.insert(at, char::from(rng.below(128) as u8)),
            2 => {
                for c in rng.pick(NASTY).chars().rev() {
                    b.insert(at, c);
                }
            }
            3 if at < b.len() => b[at] = char::from_u32(rng.below(0x3000) as u32).unwrap_or('x'),
            4 => b.extend(b.clone()),
            _ => b.truncate(at),
        }
    }
    b.into_iter().collect()
}

fn value(rng: &Rng, var: &str) -> String {
    match rng.below(20) {
        0..=15 => valid(rng, var),
        16..=17 => mutate(rng, &valid(rng, var)),
        18 => rng.pick(NASTY).to_string(),
        _ => {
            let n = rng.below(40) as usize;
            (0..n)
                .map(|_| char::from_u32(rng.below(0x800) as u32).unwrap_or('?'))
                .collect()
        }
    }
}

#[test]
fn random_environments_never_panic_and_errors_name_the_variable() {
    let rng = Rng::new(seed());
    let (mut ok, mut none, mut err) = (0u64, 0u64, 0u64);
    for case in 0..cases() {
        let mut vars: Vec<(String, String)> = Vec::new();
        if rng.chance(95) {
            vars.push((
                "LKL_HIJACK_NET_IFTYPE".into(),
                value(&rng, "LKL_HIJACK_NET_IFTYPE"),
            ));
        }
        for var in VARS.iter().skip(1) {
            if rng.chance(40) {
                vars.push((var.to_string(), value(&rng, var)));
            }
        }
        if rng.chance(10) {
            // Unrelated and duplicated variables.
            vars.push(("PATH".into(), "/usr/bin".into()));
            let dup = rng.pick(VARS).to_string();
            vars.push((dup.clone(), value(&rng, &dup)));
        }
        let input = vars.clone();
        let result = panic::catch_unwind(|| HijackConfig::from_vars(input));
        match result {
            Err(_) => panic!("case {case}: from_vars panicked on {vars:#?}"),
            Ok(Ok(Some(cfg))) => {
                ok += 1;
                assert!(cfg.mem_mib >= 16, "case {case}: {cfg:?}");
                assert!(!cfg.net.host_if.is_empty() && cfg.net.host_if.len() < 16);
            }
            Ok(Ok(None)) => none += 1,
            Ok(Err(e)) => {
                err += 1;
                assert!(
                    VARS.contains(&e.var),
                    "case {case}: error names {:?}, not a variable: {e}",
                    e.var
                );
                assert!(
                    vars.iter().any(|(k, _)| k == e.var) || e.var == "LKL_HIJACK_NET_IFPARAMS",
                    "case {case}: error about a variable that was not set: {e}\n{vars:#?}"
                );
                let line = e.to_string();
                assert!(
                    !line.contains('\n'),
                    "case {case}: error is not one line: {line:?}"
                );
            }
        }
    }
    eprintln!(
        "{} environments: {ok} accepted, {none} without interface, {err} refused",
        cases()
    );
    assert!(
        ok > cases() / 100 && err > cases() / 100,
        "poor coverage: {ok} ok, {err} errors"
    );
}

/// The model of `PortSet::parse`: comma-separated items, each `P` or `LO-HI` with optional
/// spaces around items and around the dash, ports 1..=65535 in plain decimal digits (leading
/// zeros allowed), LO <= HI.
fn model(text: &str) -> Option<Vec<(u16, u16)>> {
    let mut out = Vec::new();
    for item in text.split(',') {
        let item = item.trim();
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (item, item),
        };
        let port = |s: &str| -> Option<u16> {
            if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            // Leading zeros are allowed ("0080" is 80).
            let digits = s.trim_start_matches('0');
            let v: u64 = if digits.len() > 6 {
                1 << 20
            } else {
                digits.parse().unwrap_or(0)
            };
            (1..=65535).contains(&v).then_some(v as u16)
        };
        let (lo, hi) = (port(lo)?, port(hi)?);
        if lo > hi {
            return None;
        }
        out.push((lo, hi));
    }
    Some(out)
}

fn in_model(ranges: &[(u16, u16)], p: u16) -> bool {
    ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&p))
}

#[test]
fn random_port_lists_parse_as_the_model_says() {
    let rng = Rng::new(seed() ^ 0x9047);
    let base = [
        ("LKL_HIJACK_NET_IFTYPE".to_string(), "packet".to_string()),
        ("LKL_HIJACK_NET_IFPARAMS".to_string(), "venet0".to_string()),
    ];
    let (mut accepted, mut refused) = (0u64, 0u64);
    for case in 0..cases() {
        let text = match rng.below(4) {
            0 => valid(&rng, "LKL_HIJACK_PORTS"),
            1 | 2 => mutate(&rng, &valid(&rng, "LKL_HIJACK_PORTS")),
            _ => {
                let n = rng.below(12) as usize;
                (0..n)
                    .map(|_| *rng.pick(&['1', '9', '0', '6', '5', '-', ',', ' ', 'x', '\t']))
                    .collect()
            }
        };
        let mut vars = base.to_vec();
        vars.push(("LKL_HIJACK_PORTS".into(), text.clone()));
        let got = panic::catch_unwind(|| HijackConfig::from_vars(vars))
            .unwrap_or_else(|_| panic!("case {case}: panicked on LKL_HIJACK_PORTS={text:?}"));
        let want = model(&text);
        match (got, want) {
            // An empty value is the same as an unset variable: the default policy.
            (Ok(Some(cfg)), _) if text.is_empty() => {
                accepted += 1;
                assert_eq!(cfg.policy.listen_ports, None, "case {case}");
            }
            (Ok(Some(cfg)), Some(ranges)) => {
                accepted += 1;
                let set = cfg
                    .policy
                    .listen_ports
                    .as_ref()
                    .unwrap_or_else(|| panic!("case {case}: {text:?} gave no port set"));
                // Membership agrees at the edges of every range and at random ports.
                let mut probes: Vec<u16> = vec![1, 65535];
                for &(lo, hi) in &ranges {
                    probes.extend([lo, hi, lo.saturating_sub(1), hi.saturating_add(1)]);
                }
                for _ in 0..16 {
                    probes.push(rng.range(1, 65535) as u16);
                }
                for p in probes {
                    assert_eq!(
                        set.contains(p),
                        in_model(&ranges, p),
                        "case {case}: port {p} in {text:?}: parser {:?}",
                        set.ranges()
                    );
                }
                // Sorted, merged, disjoint ranges.
                for w in set.ranges().windows(2) {
                    assert!(
                        u32::from(w[0].1) + 1 < u32::from(w[1].0),
                        "{:?}",
                        set.ranges()
                    );
                }
            }
            (Err(e), None) => {
                refused += 1;
                assert_eq!(e.var, "LKL_HIJACK_PORTS", "case {case}: {e}");
            }
            (got, want) => {
                panic!("case {case}: LKL_HIJACK_PORTS={text:?}: parser {got:?}, model {want:?}")
            }
        }
    }
    eprintln!(
        "{} port lists: {accepted} accepted, {refused} refused",
        cases()
    );
    assert!(accepted > 0 && refused > 0);
}
