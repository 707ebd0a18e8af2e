//! `lkl-forwarder`: the venet topology's "host node" (see `lkl_rig::forwarder`).

use std::process::ExitCode;

use lkl_rig::forwarder::{self, Config};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{}", forwarder::usage());
        return ExitCode::SUCCESS;
    }
    let cfg = match Config::parse(args) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("lkl-forwarder: {e}\n{}", forwarder::usage());
            return ExitCode::from(2);
        }
    };
    match forwarder::run(&cfg) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lkl-forwarder: {e}");
            ExitCode::FAILURE
        }
    }
}
