//! The built-in TCP forwarder (`lkl-run --forward`), for programs that cannot be preloaded
//! (gc-built Go, static binaries): they listen on the host stack, and this process, preloaded,
//! publishes their ports on LKL.
//!
//! The launcher re-executes itself as `lkl-run __forward [--proxy-protocol v1|v2]
//! PORT=HOST:PORT...` with the library preloaded and `LKL_HIJACK_PORTS` set to the listen
//! ports, so plain std sockets land where they should: the listeners on LKL, the connections
//! to the targets on the host stack (the library's default for clients).

mod proxy;

use std::collections::HashSet;
use std::env;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use proxy::Version;

/// The hidden first argument under which the launcher re-executes itself as the forwarder.
pub const INTERNAL_COMMAND: &str = "__forward";

/// Pending connections per listener: std listens with 128, too few for a burst of clients
/// (SYNs beyond it are dropped and retried only after a second).
const BACKLOG: libc::c_int = 1024;
/// Stack of the two threads of a connection. They copy through a heap buffer, but LKL runs
/// its network stack on the calling thread, so this leaves room for kernel frames.
const STACK: usize = 128 << 10;
/// Copy buffer per direction.
const BUFFER: usize = 64 << 10;
/// How long a target may take to accept a connection before the client is dropped.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after an accept error other than a vanished client (out of fds or memory), so that
/// connections can end instead of the acceptor spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// At most one log line per this interval for repeated accept errors.
const COMPLAINT_INTERVAL: Duration = Duration::from_secs(5);

/// One `PORT=HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub port: u16,
    pub target: SocketAddr,
}

#[derive(Debug, PartialEq, Eq)]
struct Config {
    proxy: Option<Version>,
    rules: Vec<Rule>,
}

pub fn main(args: &[String]) -> ExitCode {
    let lkl_addrs = lkl_addresses();
    let config = match parse(args, &lkl_addrs) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("lkl-run: {e}");
            return ExitCode::from(2);
        }
    };
    // Every port is listened on before the first one is served: a port that cannot be taken
    // stops the forwarder at once rather than leaving it half working.
    let mut bound = Vec::new();
    for rule in &config.rules {
        match listen(rule.port) {
            Ok(listeners) => bound.push((rule.clone(), listeners)),
            Err(e) => {
                eprintln!("lkl-run: cannot listen on port {}: {e}", rule.port);
                return ExitCode::FAILURE;
            }
        }
    }
    let suffix = match config.proxy {
        Some(v) => format!(" (proxy protocol {})", v.name()),
        None => String::new(),
    };
    let mut acceptors = Vec::new();
    for (rule, listeners) in bound {
        eprintln!(
            "lkl-run: forwarding {} -> {}{suffix}",
            rule.port, rule.target
        );
        let rule = Arc::new(rule);
        for listener in listeners {
            let acceptor_rule = Arc::clone(&rule);
            let proxy = config.proxy;
            let spawned = thread::Builder::new()
                .name(format!("accept-{}", rule.port))
                .spawn(move || accept_loop(listener, &acceptor_rule, proxy));
            match spawned {
                Ok(handle) => acceptors.push(handle),
                Err(e) => {
                    eprintln!(
                        "lkl-run: cannot start the acceptor of port {}: {e}",
                        rule.port
                    );
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    for handle in acceptors {
        let _ = handle.join();
    }
    // Acceptors only end by panicking.
    ExitCode::FAILURE
}

/// LKL's own addresses, from the library's configuration: a target there, on a listen port,
/// would be this forwarder itself.
fn lkl_addresses() -> Vec<IpAddr> {
    ["LKL_HIJACK_NET_IP", "LKL_HIJACK_NET_IPV6"]
        .iter()
        .filter_map(|var| env::var(var).ok()?.parse().ok())
        .collect()
}

fn parse(args: &[String], lkl_addrs: &[IpAddr]) -> Result<Config, String> {
    let mut proxy = None;
    let mut rules: Vec<Rule> = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = if arg == "--proxy-protocol" {
            Some(
                args.next()
                    .ok_or("--proxy-protocol needs a version: v1 or v2")?
                    .as_str(),
            )
        } else {
            arg.strip_prefix("--proxy-protocol=")
        };
        if let Some(value) = value {
            if proxy.is_some() {
                return Err("--proxy-protocol given twice".into());
            }
            proxy = Some(
                Version::parse(value)
                    .ok_or_else(|| format!("bad --proxy-protocol {value:?}: expected v1 or v2"))?,
            );
        } else if arg.starts_with('-') {
            return Err(format!("{INTERNAL_COMMAND}: unknown option {arg:?}"));
        } else {
            let rule = parse_rule(arg)?;
            if rules.iter().any(|r| r.port == rule.port) {
                return Err(format!("port {} is forwarded twice", rule.port));
            }
            rules.push(rule);
        }
    }
    if rules.is_empty() {
        return Err(format!(
            "{INTERNAL_COMMAND}: no forwarding rule given (PORT=HOST:PORT)"
        ));
    }
    // Under the library a connection to a port this process listens on, at a local address,
    // goes to its own LKL listener: the forwarder would connect to itself without end.
    let ports: HashSet<u16> = rules.iter().map(|r| r.port).collect();
    for rule in &rules {
        let ip = rule.target.ip().to_canonical();
        let local = ip.is_loopback() || ip.is_unspecified() || lkl_addrs.contains(&ip);
        if local && ports.contains(&rule.target.port()) {
            return Err(format!(
                "target {} of port {} is this forwarder's own port {} (on LKL)",
                rule.target,
                rule.port,
                rule.target.port()
            ));
        }
    }
    Ok(Config { proxy, rules })
}

/// `PORT=HOST:PORT`: a listen port and a socket address (IPv6 in brackets).
pub fn parse_rule(arg: &str) -> Result<Rule, String> {
    let bad = |why: &str| format!("bad forwarding rule {arg:?}: {why} (expected PORT=HOST:PORT)");
    let (port, target) = arg.split_once('=').ok_or_else(|| bad("no '='"))?;
    let port = parse_port(port).ok_or_else(|| bad("the listen port must be 1-65535"))?;
    let target: SocketAddr = target
        .parse()
        .map_err(|_| bad("the target must be an IP address and port, IPv6 as [::1]:8443"))?;
    if target.port() == 0 {
        return Err(bad("the target port must be 1-65535"));
    }
    Ok(Rule { port, target })
}

fn parse_port(s: &str) -> Option<u16> {
    // Digits only: u16's parser would also take "+443".
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&p| p != 0)
}

/// Listeners on every address of `port`: `[::]`, which on Linux takes IPv4 clients too (as
/// v4-mapped addresses), and `0.0.0.0` when `[::]` is IPv6-only (`net.ipv6.bindv6only`) or
/// IPv6 is unavailable.
fn listen(port: u16) -> io::Result<Vec<TcpListener>> {
    let mut listeners = Vec::new();
    match TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)) {
        Ok(l) => listeners.push(l),
        Err(e) if no_ipv6(&e) => {}
        Err(e) => return Err(e),
    }
    match TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)) {
        Ok(l) => listeners.push(l),
        // The dual-stack listener holds the IPv4 port already.
        Err(e) if e.kind() == io::ErrorKind::AddrInUse && !listeners.is_empty() => {}
        Err(e) => return Err(e),
    }
    for l in &listeners {
        // SAFETY: listen(2) on a socket owned by `l`; on a listening socket it only changes
        // the backlog.
        if unsafe { libc::listen(l.as_raw_fd(), BACKLOG) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(listeners)
}

fn no_ipv6(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL | libc::EPROTONOSUPPORT)
    )
}

fn accept_loop(listener: TcpListener, rule: &Arc<Rule>, proxy: Option<Version>) {
    let mut last_complaint: Option<Instant> = None;
    loop {
        match listener.accept() {
            Ok((client, peer)) => {
                // IPv4 clients of the dual-stack listener come as v4-mapped addresses.
                let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
                let conn_rule = Arc::clone(rule);
                let spawned = thread::Builder::new()
                    .stack_size(STACK)
                    .spawn(move || serve(client, peer, &conn_rule, proxy));
                if let Err(e) = spawned {
                    // The client is closed with the closure that held it.
                    eprintln!(
                        "lkl-run: port {}: cannot start a thread for {peer}: {e}",
                        rule.port
                    );
                }
            }
            // A client that left before it was accepted, or a signal.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                if last_complaint.map_or(true, |t| t.elapsed() >= COMPLAINT_INTERVAL) {
                    eprintln!("lkl-run: port {}: accept: {e}", rule.port);
                    last_complaint = Some(Instant::now());
                }
                thread::sleep(ACCEPT_BACKOFF);
            }
        }
    }
}

/// One connection: connect to the target, send the PROXY header, then copy both ways until
/// both directions have ended. Both sockets close when this returns.
fn serve(client: TcpStream, peer: SocketAddr, rule: &Rule, proxy: Option<Version>) {
    let target = rule.target;
    let server = match TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "lkl-run: port {}: cannot connect to {target} for {peer}: {e}",
                rule.port
            );
            return;
        }
    };
    // The peers' own writes already decided the segmenting; Nagle here would only add a
    // round trip to each small message passed on.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    if let Some(version) = proxy {
        // The address the client reached (LKL's); gone only if the client is too.
        let Ok(local) = client.local_addr() else {
            return;
        };
        if let Err(e) = (&server).write_all(&proxy::header(version, peer, local)) {
            eprintln!(
                "lkl-run: port {}: cannot send the PROXY header to {target} for {peer}: {e}",
                rule.port
            );
            return;
        }
    }
    let client = Arc::new(client);
    let server = Arc::new(server);
    let upstream = {
        let (client, server) = (Arc::clone(&client), Arc::clone(&server));
        thread::Builder::new()
            .stack_size(STACK)
            .spawn(move || pump(&client, &server))
    };
    match upstream {
        Ok(handle) => {
            pump(&server, &client);
            let _ = handle.join();
        }
        Err(e) => eprintln!(
            "lkl-run: port {}: cannot start a thread for {peer}: {e}",
            rule.port
        ),
    }
}

/// Copies `from` to `to` until `from` ends. An end of stream is passed on as a half-close (the
/// other direction goes on); an error on either socket (a reset) aborts both connections,
/// waking the other thread.
fn pump(from: &TcpStream, to: &TcpStream) {
    let mut buf = vec![0u8; BUFFER];
    let mut from_r = from;
    let mut to_w = to;
    loop {
        let n = match from_r.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if to_w.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    abort(from);
    abort(to);
}

/// Makes the socket's close send a reset, as the peer on the other side did, then wakes any
/// thread blocked on it. A plain close would send a FIN: once shut for reading a socket no
/// longer opens its window, so a peer still sending would be held at a zero window until the
/// orphan times out, a minute later.
fn abort(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt(2) on a socket owned by `stream`, reading a `linger` that lives for
    // the call, with its exact size.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    let _ = stream.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn parse_ok(list: &[&str]) -> Config {
        parse(&args(list), &[]).unwrap_or_else(|e| panic!("{list:?}: {e}"))
    }

    fn parse_err(list: &[&str]) -> String {
        match parse(&args(list), &["10.0.0.3".parse().unwrap()]) {
            Ok(c) => panic!("{list:?} parsed as {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn rules_and_proxy_versions_parse() {
        let c = parse_ok(&[
            "443=127.0.0.1:8443",
            "--proxy-protocol",
            "v2",
            "80=[::1]:8080",
        ]);
        assert_eq!(c.proxy, Some(Version::V2));
        assert_eq!(
            c.rules,
            vec![
                Rule {
                    port: 443,
                    target: "127.0.0.1:8443".parse().unwrap()
                },
                Rule {
                    port: 80,
                    target: "[::1]:8080".parse().unwrap()
                },
            ]
        );
        assert_eq!(
            parse_ok(&["--proxy-protocol=v1", "1=10.1.2.3:65535"]).proxy,
            Some(Version::V1)
        );
        assert_eq!(parse_ok(&["65535=10.1.2.3:1"]).proxy, None);
    }

    #[test]
    fn bad_usage_is_one_line_errors() {
        for bad in [
            &[][..],
            &["--proxy-protocol", "v2"],
            &["--proxy-protocol"],
            &["--proxy-protocol", "v3", "1=1.2.3.4:5"],
            &["--proxy-protocol=v1", "--proxy-protocol=v2", "1=1.2.3.4:5"],
            &["--verbose", "1=1.2.3.4:5"],
            &["0=1.2.3.4:5"],
            &["65536=1.2.3.4:5"],
            &["+443=1.2.3.4:5"],
            &["443"],
            &["443=1.2.3.4"],
            &["443=1.2.3.4:0"],
            &["443=localhost:8443"],
            &["443=::1:8443"],
            &["443=1.2.3.4:5", "443=1.2.3.4:6"],
            // The forwarder's own listeners.
            &["443=127.0.0.1:443"],
            &["443=[::]:80", "80=1.2.3.4:5"],
            &["443=10.0.0.3:443"],
        ] {
            let e = parse_err(bad);
            assert!(!e.is_empty() && !e.contains('\n'), "{bad:?}: {e:?}");
        }
    }

    #[test]
    fn a_target_on_another_port_of_a_local_address_is_fine() {
        parse_ok(&["443=127.0.0.1:8443", "80=[::1]:8080"]);
        assert!(parse(
            &args(&["443=10.0.0.3:8443"]),
            &["10.0.0.3".parse().unwrap()]
        )
        .is_ok());
    }
}
