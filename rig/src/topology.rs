//! The two topologies: venet (tun devices joined by the forwarder) and veth.

use std::env;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::forwarder::{Config, Endpoint, Impairments, Stats, Switches};
use crate::netns::{self, ip_batch, Netns, CONTAINER_PREFIX, PEER_PREFIX};
use crate::sys;

/// Name of the container's interface in the venet topology.
pub const VENET_IF: &str = "venet0";
/// Name of the peer's tun device in the venet topology.
pub const VENET_PEER_IF: &str = "tun0";
/// Name of the container's interface in the veth topology.
pub const VETH_IF: &str = "veth0";
/// Name of the peer's interface in the veth topology.
pub const VETH_PEER_IF: &str = "veth1";

/// The address plan of one topology, subnet X (1..=254) chosen per topology:
/// IPv4 10.213.X.0/24 and IPv6 fd00:213:X::/64. These addresses exist only inside the
/// topology's namespaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addrs {
    /// The container's host-stack address (10.213.X.2), configured on its interface.
    pub host_v4: Ipv4Addr,
    /// The address reserved for LKL (10.213.X.3): routed to the container, configured nowhere.
    pub lkl_v4: Ipv4Addr,
    /// The peer's address (10.213.X.1).
    pub peer_v4: Ipv4Addr,
    /// fd00:213:X::2
    pub host_v6: Ipv6Addr,
    /// fd00:213:X::3
    pub lkl_v6: Ipv6Addr,
    /// fd00:213:X::1
    pub peer_v6: Ipv6Addr,
}

impl Addrs {
    fn for_subnet(x: u8) -> Addrs {
        // X's decimal digits read as hex, so that 10.213.42.2 pairs with fd00:213:42::2.
        let group = x
            .to_string()
            .chars()
            .fold(0u16, |acc, d| acc * 16 + d as u16 - u16::from(b'0'));
        let v6 = |host| Ipv6Addr::new(0xfd00, 0x213, group, 0, 0, 0, 0, host);
        Addrs {
            host_v4: Ipv4Addr::new(10, 213, x, 2),
            lkl_v4: Ipv4Addr::new(10, 213, x, 3),
            peer_v4: Ipv4Addr::new(10, 213, x, 1),
            host_v6: v6(2),
            lkl_v6: v6(3),
            peer_v6: v6(1),
        }
    }
}

/// What the venet and veth topologies have in common.
pub trait Topology {
    /// The "container" namespace: the host stack LKL shares its interface with.
    fn container_ns(&self) -> &Netns;
    /// The "peer" namespace: the rest of the network.
    fn peer_ns(&self) -> &Netns;
    /// The container's interface (`venet0` or `veth0`).
    fn container_if(&self) -> &str;
    fn addrs(&self) -> &Addrs;
}

/// Names and subnet of one topology.
struct Naming {
    container: String,
    peer: String,
    /// `PID-N` for automatic names, the given name otherwise; used in file names too.
    tag: String,
    subnet: u8,
    /// The process whose exit tears the topology down (automatic names only).
    owner: Option<u32>,
}

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

impl Naming {
    /// `lklc-PID-N` / `lklp-PID-N` for `None`, `lklc-NAME` / `lklp-NAME` for a given name.
    fn new(name: Option<&str>) -> io::Result<Naming> {
        let (tag, subnet, owner) = match name {
            None => {
                let pid = std::process::id();
                let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
                let subnet = (u64::from(pid) * 31 + u64::from(n)) % 254 + 1;
                (format!("{pid}-{n}"), subnet as u8, Some(pid))
            }
            Some(name) => {
                let valid = name.len() <= 20
                    && name.starts_with(|c: char| c.is_ascii_lowercase())
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                if !valid {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("bad rig name {name:?}: expected up to 20 of [a-z0-9_], starting with a letter"),
                    ));
                }
                // FNV-1a: a stable subnet per name.
                let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                });
                (name.to_string(), (hash % 254 + 1) as u8, None)
            }
        };
        Ok(Naming {
            container: format!("{CONTAINER_PREFIX}{tag}"),
            peer: format!("{PEER_PREFIX}{tag}"),
            tag,
            subnet,
            owner,
        })
    }

    fn file(&self, ext: &str) -> PathBuf {
        env::temp_dir().join(format!("lkl-rig-{}.{ext}", self.tag))
    }
}

/// Removes stats files of automatic topologies whose owner is no longer `alive`.
pub(crate) fn remove_stale_files(alive: fn(u32) -> bool) {
    let Ok(entries) = fs::read_dir(env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(tag) = name.to_str().and_then(|n| n.strip_prefix("lkl-rig-")) else {
            continue;
        };
        let tag = tag.trim_end_matches(".tmp").trim_end_matches(".stats");
        if netns::owner_of(tag).is_some_and(|pid| !alive(pid)) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn prepare(name: Option<&str>) -> io::Result<Naming> {
    if !sys::is_root() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the rig needs root (network namespaces, tun and veth devices)",
        ));
    }
    netns::remove_stale();
    Naming::new(name)
}

/// Waits until `dev` in `ns` carries packets: carrier on, operstate UP and its qdisc attached.
/// Carrier changes take effect asynchronously (linkwatch); until then the device has the
/// `noop` qdisc, which drops everything sent through it.
fn wait_link_ready(ns: &Netns, dev: &str) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let link = ns.run("ip", &["-o", "link", "show", "dev", dev])?;
        if link.contains("LOWER_UP") && link.contains("state UP") && !link.contains("qdisc noop") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "{dev} in {} is not up after 5 s: {}",
                ns.name(),
                link.trim()
            )));
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// The `lkl-forwarder` binary: `$LKL_FORWARDER`, or next to the running executable (or one
/// directory up, for test binaries in `target/*/deps`).
pub fn forwarder_bin() -> io::Result<PathBuf> {
    if let Some(path) = env::var_os("LKL_FORWARDER") {
        return Ok(path.into());
    }
    let exe = env::current_exe()?;
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("lkl-forwarder"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "lkl-forwarder not found next to {} (build it: cargo build -p lkl-rig; or set LKL_FORWARDER)",
                    exe.display()
                ),
            )
        })
}

/// A running `lkl-forwarder`, stopped (SIGTERM, then SIGKILL) when dropped.
struct ForwarderProc {
    child: Child,
    stats_file: PathBuf,
    armed: bool,
}

impl ForwarderProc {
    /// Starts the forwarder (writing its counters to `stats_file`) and waits until it has
    /// attached to both devices. With `log`, its stderr goes there and it gets its own process
    /// group (it outlives the caller).
    fn start(
        bin: &Path,
        mut cfg: Config,
        stats_file: PathBuf,
        log: Option<&Path>,
    ) -> io::Result<ForwarderProc> {
        cfg.stats_file = Some(stats_file.clone());
        let mut cmd = Command::new(bin);
        cmd.args(cfg.to_args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        if let Some(log) = log {
            let file = File::create(log).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot create {}: {e}", log.display()))
            })?;
            cmd.stderr(file).process_group(0);
        }
        let child = cmd.spawn().map_err(|e| {
            io::Error::new(e.kind(), format!("cannot start {}: {e}", bin.display()))
        })?;
        // From here on, an early return stops it.
        let mut proc = ForwarderProc {
            child,
            stats_file,
            armed: true,
        };
        let mut line = String::new();
        if let Some(out) = proc.child.stdout.take() {
            BufReader::new(out).read_line(&mut line)?;
        }
        if line.trim() != "ready" {
            // It closed stdout without a word: it has exited.
            let status = proc.child.wait()?;
            let see = log.map_or("its stderr".to_string(), |l| l.display().to_string());
            return Err(io::Error::other(format!(
                "lkl-forwarder failed to start ({status}); see {see}"
            )));
        }
        Ok(proc)
    }

    fn read_stats(&self) -> io::Result<Option<Stats>> {
        match fs::read_to_string(&self.stats_file) {
            Ok(text) => Stats::parse(&text).map(Some).map_err(io::Error::other),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Asks the forwarder for a fresh stats dump and returns it.
    fn stats(&self) -> io::Result<Stats> {
        let before = self.read_stats()?.map_or(0, |s| s.seq);
        sys::kill(self.child.id(), libc::SIGHUP)?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(stats) = self.read_stats()?.filter(|s| s.seq > before) {
                return Ok(stats);
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "lkl-forwarder did not write {} within 5 s",
                    self.stats_file.display()
                )));
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn stop(&mut self) -> io::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        sys::kill(self.child.id(), libc::SIGTERM)?;
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(5));
        }
        self.child.kill()?;
        self.child.wait().map(drop)
    }
}

impl Drop for ForwarderProc {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = self.stop() {
                log::warn!("cannot stop lkl-forwarder (pid {}): {e}", self.child.id());
            }
            let _ = fs::remove_file(&self.stats_file);
        }
    }
}

/// Builder of a [`VenetTopology`]: the impairments of the forwarder's link.
#[derive(Clone, Debug, Default)]
pub struct VenetBuilder {
    link: Impairments,
    name: Option<String>,
    plain_tun: bool,
}

impl VenetBuilder {
    /// One-way delay in both directions.
    pub fn delay_ms(mut self, ms: f64) -> Self {
        self.link.delay_ms = ms;
        self
    }
    /// Random loss in both directions.
    pub fn loss_pct(mut self, pct: f64) -> Self {
        self.link.loss_pct = pct;
        self
    }
    /// Each packet starts a burst of `len` consecutive drops with probability `pct`.
    pub fn burst_loss(mut self, pct: f64, len: u32) -> Self {
        self.link.burst_pct = pct;
        self.link.burst_len = len;
        self
    }
    /// Probability that a packet is sent after the next one.
    pub fn reorder_pct(mut self, pct: f64) -> Self {
        self.link.reorder_pct = pct;
        self
    }
    /// Probability that a packet is sent twice.
    pub fn duplicate_pct(mut self, pct: f64) -> Self {
        self.link.duplicate_pct = pct;
        self
    }
    /// Rate limit in Mbit/s in each direction.
    pub fn rate_mbit(mut self, mbit: f64) -> Self {
        self.link.rate_mbit = mbit;
        self
    }
    /// Rate limiter backlog limit (default: one round trip at the rate, at least 64 KiB).
    pub fn queue_bytes(mut self, bytes: u64) -> Self {
        self.link.queue_bytes = Some(bytes);
        self
    }
    /// PRNG seed of the drop decisions.
    pub fn seed(mut self, seed: u64) -> Self {
        self.link.seed = seed;
        self
    }
    /// All impairments at once.
    pub fn impairments(mut self, link: Impairments) -> Self {
        self.link = link;
        self
    }
    /// venet0 left a plain tun (`link/none`) instead of typed like OpenVZ's (`link/void`): a
    /// link type on which the library may use SOCK_RAW with offloads, to compare the two.
    pub fn plain_tun(mut self) -> Self {
        self.plain_tun = true;
        self
    }
    /// A fixed name (`lklc-NAME` / `lklp-NAME`) for a rig made by hand: never removed as stale,
    /// forwarder not tied to this process, its stderr in `$TMPDIR/lkl-rig-NAME.log`.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    /// Creates the namespaces, devices, addresses and routes and starts the forwarder.
    pub fn build(self) -> io::Result<VenetTopology> {
        self.link
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let naming = prepare(self.name.as_deref())?;
        let bin = forwarder_bin()?;
        let container = Netns::create(&naming.container)?;
        let peer = Netns::create(&naming.peer)?;
        let a = Addrs::for_subnet(naming.subnet);
        ip_batch(
            container.name(),
            &[format!("tuntap add dev {VENET_IF} mode tun")],
        )?;
        // OpenVZ's venet0 is ARPHRD_VOID (`link/void`), and the library chooses its packet
        // socket by the link type: give the tun that type (it must be set while down).
        if !self.plain_tun {
            container.in_thread(|| sys::set_tun_link_type(VENET_IF, libc::ARPHRD_VOID))??;
        }
        ip_batch(
            peer.name(),
            &[format!("tuntap add dev {VENET_PEER_IF} mode tun")],
        )?;
        let tun_setup = |dev: &str| {
            [
                // No IPv6 link-local address (venet0 has none, and it would send router
                // solicitations). A tun drops what does not fit its ring (txqueuelen packets)
                // while the forwarder is off the CPU; venet0 never drops that way, so make the
                // ring large (4000: no retransmissions in iperf3 on a loaded 2-core machine,
                // where 500 gave tens of thousands).
                format!(
                    "link set dev {dev} mtu 1500 txqueuelen 4000 addrgenmode none multicast off"
                ),
                format!("link set dev {dev} up"),
            ]
        };
        let mut cmds = tun_setup(VENET_IF).to_vec();
        cmds.extend([
            format!("addr add {}/32 dev {VENET_IF}", a.host_v4),
            format!("addr add {}/128 dev {VENET_IF} nodad", a.host_v6),
            format!("route add default dev {VENET_IF}"),
            format!("route add ::/0 dev {VENET_IF}"),
        ]);
        ip_batch(container.name(), &cmds)?;
        if !self.plain_tun {
            // OpenVZ's venet has no transmit queue (tx_queue_len 0), so Linux gives it the
            // `noqueue` qdisc: packets go straight to the device. The tun keeps its ring.
            container.run(
                "tc",
                &["qdisc", "replace", "dev", VENET_IF, "root", "noqueue"],
            )?;
        }
        let mut cmds = tun_setup(VENET_PEER_IF).to_vec();
        cmds.extend([
            format!("addr add {}/32 dev {VENET_PEER_IF}", a.peer_v4),
            format!("addr add {}/128 dev {VENET_PEER_IF} nodad", a.peer_v6),
            format!("route add {}/32 dev {VENET_PEER_IF}", a.host_v4),
            format!("route add {}/32 dev {VENET_PEER_IF}", a.lkl_v4),
            format!("route add {}/128 dev {VENET_PEER_IF}", a.host_v6),
            format!("route add {}/128 dev {VENET_PEER_IF}", a.lkl_v6),
        ]);
        ip_batch(peer.name(), &cmds)?;
        let cfg = Config {
            a: Endpoint {
                netns: Some(naming.container.clone()),
                dev: VENET_IF.to_string(),
            },
            b: Endpoint {
                netns: Some(naming.peer.clone()),
                dev: VENET_PEER_IF.to_string(),
            },
            link: self.link,
            stats_file: None,
            owner_pid: naming.owner,
        };
        let log = naming.owner.is_none().then(|| naming.file("log"));
        let forwarder = ForwarderProc::start(&bin, cfg, naming.file("stats"), log.as_deref())?;
        wait_link_ready(&container, VENET_IF)?;
        wait_link_ready(&peer, VENET_PEER_IF)?;
        Ok(VenetTopology {
            forwarder,
            peer,
            container,
            addrs: a,
            log,
        })
    }
}

/// Container namespace with a tun `venet0` typed like OpenVZ's (`link/void`: ARPHRD_VOID, L3,
/// NOARP, POINTOPOINT, MTU 1500; the host address, default routes through it), a peer namespace with a tun `tun0`, and `lkl-forwarder` between
/// the two as the "host node". Dropping it stops the forwarder and deletes both namespaces.
///
/// Forwarder stats: direction `a2b` is container to peer, `b2a` peer to container.
pub struct VenetTopology {
    // Dropped in this order: the forwarder lives in the peer namespace.
    forwarder: ForwarderProc,
    peer: Netns,
    container: Netns,
    addrs: Addrs,
    log: Option<PathBuf>,
}

impl VenetTopology {
    pub fn builder() -> VenetBuilder {
        VenetBuilder::default()
    }

    /// The peer's tun device (`tun0`).
    pub fn peer_if(&self) -> &str {
        VENET_PEER_IF
    }

    pub fn forwarder_pid(&self) -> u32 {
        self.forwarder.child.id()
    }

    /// Where the forwarder writes its counters (on [`forwarder_stats`](Self::forwarder_stats)
    /// and on exit).
    pub fn stats_file(&self) -> &Path {
        &self.forwarder.stats_file
    }

    /// The forwarder's stderr, for a [named](VenetBuilder::name) rig.
    pub fn forwarder_log(&self) -> Option<&Path> {
        self.log.as_deref()
    }

    /// The forwarder's counters now.
    pub fn forwarder_stats(&self) -> io::Result<Stats> {
        self.forwarder.stats()
    }

    /// Drops every packet in both directions while on. Returns once the forwarder has
    /// switched.
    pub fn set_blackhole(&self, on: bool) -> io::Result<()> {
        let signal = if on { libc::SIGUSR1 } else { libc::SIGUSR2 };
        self.switch(signal, "blackhole", |s| s.blackhole == on)
    }

    /// Applies the link's random impairments (loss, bursts, duplication, reordering) while
    /// on, as from the start; off, only delay and rate remain. Returns once switched.
    pub fn set_faults(&self, on: bool) -> io::Result<()> {
        let signal = libc::SIGRTMIN() + i32::from(on);
        self.switch(signal, "random faults", |s| s.faults == on)
    }

    fn switch(
        &self,
        signal: libc::c_int,
        what: &str,
        done: impl Fn(&Switches) -> bool,
    ) -> io::Result<()> {
        sys::kill(self.forwarder_pid(), signal)?;
        // A stats dump requested at the same time may be read before the switch: ask again.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done(&self.forwarder.stats()?.switches) {
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "lkl-forwarder did not switch its {what} within 5 s"
                )));
            }
        }
        Ok(())
    }

    /// Leaves the topology (and its forwarder) in place after this value is gone; `lkl-rig
    /// down` removes it.
    pub fn keep(mut self) {
        self.forwarder.armed = false;
        let VenetTopology {
            peer, container, ..
        } = self;
        peer.keep();
        container.keep();
    }
}

impl Topology for VenetTopology {
    fn container_ns(&self) -> &Netns {
        &self.container
    }
    fn peer_ns(&self) -> &Netns {
        &self.peer
    }
    fn container_if(&self) -> &str {
        VENET_IF
    }
    fn addrs(&self) -> &Addrs {
        &self.addrs
    }
}

fn mac_string(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

/// Container and peer namespaces joined by a veth pair (`veth0` in the container, `veth1` in
/// the peer), same address plan as the venet topology, no forwarder. The peer reaches the LKL
/// addresses through permanent neighbour entries pointing at the container's `veth0` MAC.
pub struct VethTopology {
    peer: Netns,
    container: Netns,
    addrs: Addrs,
    container_mac: [u8; 6],
    peer_mac: [u8; 6],
}

impl VethTopology {
    pub fn new() -> io::Result<VethTopology> {
        Self::create(None)
    }

    /// A fixed name for a rig made by hand (see [`VenetBuilder::name`]).
    pub fn with_name(name: &str) -> io::Result<VethTopology> {
        Self::create(Some(name))
    }

    fn create(name: Option<&str>) -> io::Result<VethTopology> {
        let naming = prepare(name)?;
        let container = Netns::create(&naming.container)?;
        let peer = Netns::create(&naming.peer)?;
        let a = Addrs::for_subnet(naming.subnet);
        let container_mac = [0x02, 0x13, naming.subnet, 0, 0, 2];
        let peer_mac = [0x02, 0x13, naming.subnet, 0, 0, 1];
        let (cmac, pmac) = (mac_string(container_mac), mac_string(peer_mac));
        ip_batch(
            container.name(),
            &[
                format!(
                    "link add {VETH_IF} address {cmac} type veth peer name {VETH_PEER_IF} address {pmac} netns {}",
                    peer.name()
                ),
                format!("link set dev {VETH_IF} up"),
                format!("addr add {}/24 dev {VETH_IF}", a.host_v4),
                format!("addr add {}/64 dev {VETH_IF} nodad", a.host_v6),
                format!("route add default via {}", a.peer_v4),
                format!("route add ::/0 via {}", a.peer_v6),
            ],
        )?;
        ip_batch(
            peer.name(),
            &[
                format!("link set dev {VETH_PEER_IF} up"),
                format!("addr add {}/24 dev {VETH_PEER_IF}", a.peer_v4),
                format!("addr add {}/64 dev {VETH_PEER_IF} nodad", a.peer_v6),
                format!(
                    "neigh replace {} lladdr {cmac} dev {VETH_PEER_IF} nud permanent",
                    a.lkl_v4
                ),
                format!(
                    "neigh replace {} lladdr {cmac} dev {VETH_PEER_IF} nud permanent",
                    a.lkl_v6
                ),
            ],
        )?;
        wait_link_ready(&container, VETH_IF)?;
        wait_link_ready(&peer, VETH_PEER_IF)?;
        Ok(VethTopology {
            peer,
            container,
            addrs: a,
            container_mac,
            peer_mac,
        })
    }

    /// The peer's interface (`veth1`).
    pub fn peer_if(&self) -> &str {
        VETH_PEER_IF
    }

    /// MAC address of the container's `veth0` (the address frames for LKL are sent to).
    pub fn container_mac(&self) -> [u8; 6] {
        self.container_mac
    }

    /// MAC address of the peer's `veth1` (the next hop for everything LKL sends).
    pub fn peer_mac(&self) -> [u8; 6] {
        self.peer_mac
    }

    /// Leaves the topology in place after this value is gone; `lkl-rig down` removes it.
    pub fn keep(self) {
        let VethTopology {
            peer, container, ..
        } = self;
        peer.keep();
        container.keep();
    }
}

impl Topology for VethTopology {
    fn container_ns(&self) -> &Netns {
        &self.container
    }
    fn peer_ns(&self) -> &Netns {
        &self.peer
    }
    fn container_if(&self) -> &str {
        VETH_IF
    }
    fn addrs(&self) -> &Addrs {
        &self.addrs
    }
}

/// Removes the rig made by hand under `name` (either kind): kills what runs in its namespaces
/// and deletes them.
pub fn destroy_named(name: &str) -> io::Result<()> {
    let naming = Naming::new(Some(name))?;
    netns::destroy(&naming.container)?;
    netns::destroy(&naming.peer)?;
    for ext in ["stats", "log"] {
        let _ = fs::remove_file(naming.file(ext));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_names_carry_pid_and_counter() {
        let n = Naming::new(None).unwrap();
        let pid = std::process::id();
        assert!(
            n.container.starts_with(&format!("lklc-{pid}-")),
            "{}",
            n.container
        );
        assert_eq!(netns::owner_of(&n.tag), Some(pid));
        assert!(n.subnet >= 1 && n.subnet <= 254);
        assert_ne!(Naming::new(None).unwrap().tag, n.tag);
    }

    #[test]
    fn given_names_are_validated_and_never_look_automatic() {
        let n = Naming::new(Some("bench1")).unwrap();
        assert_eq!(
            (n.container.as_str(), n.peer.as_str(), n.owner),
            ("lklc-bench1", "lklp-bench1", None)
        );
        assert_eq!(netns::owner_of(&n.tag), None);
        for bad in ["1abc", "a-b", "", "Abc", "a/b"] {
            assert!(Naming::new(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn address_plan() {
        let a = Addrs::for_subnet(239);
        assert_eq!(a.host_v4, Ipv4Addr::new(10, 213, 239, 2));
        assert_eq!(a.lkl_v6.to_string(), "fd00:213:239::3");
        assert_eq!(mac_string([2, 0x13, 7, 0, 0, 2]), "02:13:07:00:00:02");
    }
}
