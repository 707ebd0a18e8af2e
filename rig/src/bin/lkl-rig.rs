//! `lkl-rig`: the test rig by hand. `scripts/rig.sh` builds and runs it.

use std::io::{self, Write as _};
use std::process::ExitCode;

use lkl_rig::forwarder::{self, Impairments, IMPAIRMENT_USAGE};
use lkl_rig::{netns, KernelProfile, Topology, VenetTopology, VethTopology};

const DEFAULT_NAME: &str = "rig";

fn usage() -> String {
    format!(
        "usage: lkl-rig venet up [--name NAME] [impairments]   create a venet rig, forwarder in the background
       lkl-rig veth up [--name NAME]                  create a veth rig
       lkl-rig venet|veth down [--name NAME]          remove a rig made by hand
       lkl-rig list                                   the rig's network namespaces
       lkl-rig cleanup                                remove what dead test runs left behind
       lkl-rig forwarder ARGS                         run the forwarder (lkl-forwarder --help)
       lkl-rig kernel-profile VERSION -- PROGRAM [ARGS]  run PROGRAM as on host kernel VERSION
       lkl-rig kernel-profile list                    what each profile refuses
VERSION: 3.10, 4.18, 5.4 or 5.10 (system calls that kernel lacks fail with ENOSYS, SOL_PACKET
options it lacks with ENOPROTOOPT).
NAME: up to 20 of [a-z0-9_], default {DEFAULT_NAME}; namespaces lklc-NAME (container) and lklp-NAME (peer).
Impairments (venet):
{IMPAIRMENT_USAGE}
Forwarder signals: SIGUSR1 blackhole on, SIGUSR2 off, SIGRTMIN random faults off, SIGRTMIN+1 on,
SIGHUP write the stats file."
    )
}

/// `--name NAME` and, for venet, impairment options.
fn parse_up(args: &[String], venet: bool) -> Result<(String, Impairments), String> {
    let mut name = DEFAULT_NAME.to_string();
    let mut link = Impairments::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag}: missing value"))?;
        if flag == "--name" {
            name = value.clone();
        } else if !(venet && link.parse_flag(flag, value)?) {
            return Err(format!("unknown option {flag:?}"));
        }
    }
    link.validate()?;
    Ok((name, link))
}

/// `key=value` lines describing a topology.
fn describe(kind: &str, topo: &dyn Topology) -> String {
    let a = topo.addrs();
    format!(
        "kind={kind}\ncontainer_ns={}\npeer_ns={}\ncontainer_if={}\n\
         host_v4={} lkl_v4={} peer_v4={}\nhost_v6={} lkl_v6={} peer_v6={}\n",
        topo.container_ns().name(),
        topo.peer_ns().name(),
        topo.container_if(),
        a.host_v4,
        a.lkl_v4,
        a.peer_v4,
        a.host_v6,
        a.lkl_v6,
        a.peer_v6
    )
}

/// What each kernel profile refuses, a line per profile.
fn describe_profiles() -> String {
    let since = |(major, minor): (u8, u8)| format!("{major}.{minor}");
    KernelProfile::all()
        .map(|p| {
            let calls: Vec<String> = p
                .missing_syscalls()
                .map(|(name, v)| format!("{name} ({})", since(v)))
                .collect();
            let opts: Vec<String> = p
                .missing_packet_options()
                .map(|(name, v)| format!("{name} ({})", since(v)))
                .collect();
            format!(
                "{} [{}]: ENOSYS for {}; ENOPROTOOPT for {}\n",
                p.name(),
                p.hosts(),
                calls.join(", "),
                opts.join(", ")
            )
        })
        .collect()
}

/// Prints what `up` made. The rig is kept before this, so a closed stdout loses only the text.
fn show(text: &str) {
    let _ = io::stdout().write_all(text.as_bytes());
}

fn run(args: &[String]) -> Result<(), String> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let io_err = |e: io::Error| e.to_string();
    match words.as_slice() {
        ["venet", "up", ..] => {
            let (name, link) = parse_up(&args[2..], true)?;
            let topo = VenetTopology::builder()
                .impairments(link)
                .name(&name)
                .build()
                .map_err(io_err)?;
            let mut text = describe("venet", &topo);
            text += &format!(
                "forwarder_pid={}\nstats_file={}\n",
                topo.forwarder_pid(),
                topo.stats_file().display()
            );
            if let Some(log) = topo.forwarder_log() {
                text += &format!("forwarder_log={}\n", log.display());
            }
            topo.keep();
            show(&text);
        }
        ["veth", "up", ..] => {
            let (name, _) = parse_up(&args[2..], false)?;
            let topo = VethTopology::with_name(&name).map_err(io_err)?;
            let text = describe("veth", &topo);
            topo.keep();
            show(&text);
        }
        ["venet" | "veth", "down", ..] => {
            let (name, _) = parse_up(&args[2..], false)?;
            lkl_rig::destroy_named(&name).map_err(io_err)?;
        }
        ["list"] => {
            let names = netns::list().map_err(io_err)?;
            show(&names.iter().map(|n| format!("{n}\n")).collect::<String>());
        }
        ["cleanup"] => netns::remove_stale(),
        ["kernel-profile", "list"] => show(&describe_profiles()),
        ["kernel-profile", version, "--", program, ..] => {
            let profile = KernelProfile::named(version)?;
            let mut cmd = std::process::Command::new(program);
            cmd.args(&args[4..]);
            profile.confine(&mut cmd);
            // exec returns only on failure.
            let e = std::os::unix::process::CommandExt::exec(&mut cmd);
            return Err(format!("cannot run {program}: {e}"));
        }
        ["forwarder", ..] => {
            let cfg = forwarder::Config::parse(args[1..].iter().cloned())?;
            forwarder::run(&cfg).map_err(io_err)?;
        }
        _ => return Err(usage()),
    }
    Ok(())
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{}", usage());
        return ExitCode::SUCCESS;
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lkl-rig: {e}");
            ExitCode::FAILURE
        }
    }
}
