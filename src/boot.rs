//! Starting the kernel from the configuration: its memory and command line, the packet
//! backend (opened while Linux boots), the interface, sysctls and the ports LKL owns. Every
//! failure names the variable to fix, and a configuration error ends the program (`fatal`).

use std::ffi::{c_int, c_long};
use std::sync::Arc;

use lkl::netdev::NetBackend;
use lkl::packet::{PacketBackend, PacketConfig, Split, Take};
use lkl::{BootOptions, InterfaceConfig, Ipv4Net, Ipv6Net, Kernel};

use crate::config::HijackConfig;
use crate::firewall::Firewall;
use crate::host;
use crate::ownership::{self, Ownership};
use crate::policy::FirewallMode;

/// What a forked child's boot takes over from its fork handler (fork.rs), when the child
/// has the parent's listeners to serve.
pub struct ChildBoot {
    /// Its packet socket (the boot adopts it), opened before the child could drop
    /// privileges; `None` if that failed (the boot then opens one itself and says why if it
    /// cannot).
    pub sock: Option<c_int>,
    /// The ports of the listeners it serves with the others.
    pub listeners: Vec<u16>,
    /// Its place among the program's processes, which picks its share of the client ports
    /// (see [`client_ports_of`]).
    pub slot: u32,
}

/// Processes of one program whose kernels make client connections from the same address
/// must not pick the same local port (their peers would see one connection): each takes
/// one of this many slices of the client port range, by the order it was forked in.
const CLIENT_PORT_SLICES: u32 = 8;

/// The slice of `range` for the process forked `slot`th (the first process is 0).
pub fn client_ports_of(range: (u16, u16), slot: u32) -> (u16, u16) {
    let (lo, hi) = (u32::from(range.0), u32::from(range.1));
    let width = (hi - lo + 1) / CLIENT_PORT_SLICES;
    if width == 0 {
        return range;
    }
    let start = lo + (slot % CLIENT_PORT_SLICES) * width;
    (start as u16, (start + width - 1) as u16)
}

/// The local ports the kernel's client connections take (its ip_local_port_range).
pub fn set_client_ports(kernel: &Kernel, (lo, hi): (u16, u16)) -> Result<(), lkl::Errno> {
    kernel.sysctl_write("net.ipv4.ip_local_port_range", &format!("{lo} {hi}"))
}

/// The kernel's way to the host network: the packet device and the ports LKL owns on it.
pub struct Network {
    pub backend: Arc<PacketBackend>,
    pub ownership: Ownership,
}

/// Exit status for a configuration error (EX_CONFIG in sysexits.h).
const EX_CONFIG: c_int = 78;

/// Microseconds a thread about to wait polls LKL's device itself first: `busy_read` for a
/// blocking receive or accept, `busy_poll` for epoll (Linux's defaults are 0, off). Chosen by
/// `scripts/bench.sh` on 1 and 2 CPUs; `LKL_HIJACK_SYSCTL` overrides them.
const BUSY_POLL_DEFAULTS: [(&str, &str); 2] =
    [("net.core.busy_read", "50"), ("net.core.busy_poll", "50")];

/// One line on stderr and exit status 78: the program must not run on the wrong stack.
pub fn fatal(msg: &str) -> ! {
    host::write_stderr(format!("lkl-hijack: {msg}\n").as_bytes());
    // SAFETY: _exit ends the process without running anything of the program.
    unsafe { libc::_exit(EX_CONFIG) }
}

/// Boots the kernel and connects it to the host interface; the error says what to fix. A
/// forked child (`child`) takes the packet socket its fork handler opened, and leaves the
/// firewall to the parent, whose rules already cover the listeners' ports.
pub fn boot(cfg: &HijackConfig, child: Option<&ChildBoot>) -> Result<(Kernel, Network), String> {
    let started = std::time::Instant::now();
    let net = &cfg.net;
    let policy = &cfg.policy;
    let shared = ownership::is_shared(net.ip, net.ipv6);
    let (tcp, udp) = ownership::initial_ports(policy);
    // A child's own socket leaves the parent's listeners to the group, which it joins once
    // it has made them again.
    let split = child.map(|c| Split {
        listeners: c.listeners.clone(),
        take: Take::Nothing,
        serving: c.listeners.clone(),
    });
    // Opened while the kernel boots: the host makes the socket's setup wait.
    let opening = PacketBackend::open_in_background(
        PacketConfig {
            ifname: net.host_if.clone(),
            ipv4: net.ip,
            ipv6: net.ipv6,
            next_hop: net.gateway,
            admit: ownership::admit(shared, &tcp, &udp),
            split: split.clone(),
            offload: net.offload,
            rx_ring: true,
            rx_coalesce: std::time::Duration::from_micros(net.rx_usecs.into()),
            rx_ring_bytes: lkl::packet::rx_ring_bytes_for(cfg.mem_mib),
        },
        match child {
            Some(c) => c.sock,
            None => net.fd,
        },
    );
    let kernel = Kernel::boot(BootOptions {
        mem_mib: cfg.mem_mib,
        cmdline_extra: cfg.boot_cmdline.clone(),
    })
    .map_err(|e| match e {
        lkl::Error::NotEnoughMemory { .. } => format!("LKL_HIJACK_MEMSIZE={}M: {e}", cfg.mem_mib),
        _ => format!("LKL_HIJACK_BOOT_CMDLINE={}: {e}", cfg.boot_cmdline),
    })?;
    if let Some(q) = &cfg.qdisc {
        // The device gets the default qdisc when it comes up, below.
        kernel
            .sysctl_write("net.core.default_qdisc", q)
            .map_err(|e| format!("LKL_HIJACK_NET_QDISC={q}: not a qdisc of this kernel ({e})"))?;
    }
    // LKL's own fd limit (1024 by default) would cap a server's connections long before the
    // host's: every LKL socket also holds a host placeholder, so the host limit still rules.
    let unlimited = libc::rlimit64 {
        rlim_cur: 1 << 20,
        rlim_max: 1 << 20,
    };
    // SAFETY: prlimit64 reads the new limit from a live struct; no old one is asked for.
    unsafe {
        kernel.syscall(
            lkl::sys::__NR_prlimit64,
            [
                0,
                libc::RLIMIT_NOFILE as c_long,
                &unlimited as *const _ as c_long,
                0,
                0,
                0,
            ],
        )
    }
    .map_err(|e| format!("cannot raise the kernel's fd limit: {e}"))?;
    // LKL's own clients take ports the host's do not (its ip_local_port_range); a forked
    // child its share of them.
    let (lo, hi) = match child {
        Some(c) => client_ports_of(policy.client_ports, c.slot),
        None => policy.client_ports,
    };
    set_client_ports(&kernel, (lo, hi))
        .map_err(|e| format!("LKL_HIJACK_CLIENT_PORTS={lo}-{hi}: the kernel refused it ({e})"))?;
    let backend = opening
        .wait()
        .map_err(|e| crate::config::backend_open_error(&e))?;
    let mtu = net.mtu.unwrap_or_else(|| backend.mtu());
    let dev = kernel
        .netdev_add(None, mtu, Arc::clone(&backend))
        .map_err(|e| format!("LKL_HIJACK_NET_MTU={mtu}: the kernel refused the device: {e}"))?;
    backend
        .start_rx(dev.irq)
        .map_err(|e| format!("cannot start the packet receive thread: {e}"))?;
    log::debug!(
        "{} on host interface {}: {}",
        dev.name,
        net.host_if,
        if backend.tso() {
            "offloads on (the host segments TCP and finishes checksums)"
        } else {
            "offloads off (TCP segmented and checksummed in LKL)"
        }
    );
    if let Some(note) = backend.link_note() {
        log::debug!("{note}");
    }
    for f in backend
        .fallbacks()
        .iter()
        .chain(&lkl::host_features::fallbacks())
    {
        log::debug!("{f}");
    }
    let iface = InterfaceConfig {
        mtu: None,
        ipv4: net.ip.map(|addr| Ipv4Net {
            addr,
            prefix_len: net.netmask_len,
        }),
        ipv4_peer: None,
        ipv4_gateway: net.gateway,
        ipv6: net.ipv6.map(|addr| Ipv6Net {
            addr,
            prefix_len: net.netmask6_len,
        }),
        ipv6_gateway: net.gateway6,
    };
    kernel.configure_interface(&dev.name, &iface).map_err(|e| {
        format!(
            "LKL_HIJACK_NET_IP/IPV6/GATEWAY: configuring {} failed: {e}",
            dev.name
        )
    })?;
    // Busy polling (see busy.rs) on unless the program's sysctls say otherwise: sockets take
    // busy_read when made, so it is set before any.
    for (key, value) in BUSY_POLL_DEFAULTS {
        kernel
            .sysctl_write(key, value)
            .map_err(|e| format!("cannot set {key}: {e}"))?;
    }
    for (key, value) in &cfg.sysctls {
        if kernel.sysctl_read(key).is_err() {
            return Err(format!(
                "LKL_HIJACK_SYSCTL: {key}: no such sysctl in this kernel"
            ));
        }
        kernel.sysctl_write(key, value).map_err(|e| {
            format!("LKL_HIJACK_SYSCTL: {key}={value}: the kernel refused the value ({e})")
        })?;
    }
    let mode = if child.is_some() {
        FirewallMode::Off
    } else {
        policy.firewall
    };
    let mut firewall = Firewall::new(mode, &net.host_if, net.ip, net.ipv6);
    // Pre-fork servers: the rules stay while any process forked from this one serves.
    firewall.follow_forks();
    let ownership = Ownership::new(
        policy.clone(),
        net.ip,
        net.ipv6,
        shared,
        Arc::clone(&backend),
        firewall,
        split.as_ref(),
    );
    log::debug!(
        "booted Linux in {:.1} ms: {} on host {} ({:?}, {:?}){}",
        started.elapsed().as_secs_f64() * 1e3,
        dev.name,
        net.host_if,
        net.ip,
        net.ipv6,
        if shared {
            ", address shared with the host"
        } else {
            ""
        }
    );
    Ok((kernel, Network { backend, ownership }))
}

#[cfg(test)]
mod tests {
    use super::client_ports_of;

    #[test]
    fn forked_processes_get_client_port_slices_that_do_not_overlap() {
        let range = (61000, 65535);
        let slices: Vec<_> = (0..8).map(|s| client_ports_of(range, s)).collect();
        assert_eq!(slices[0], (61000, 61566));
        assert_eq!(slices[7], (64969, 65535));
        for pair in slices.windows(2) {
            assert_eq!(pair[0].1 + 1, pair[1].0);
        }
        assert_eq!(
            client_ports_of(range, 9),
            slices[1],
            "the ninth wraps around"
        );
        assert_eq!(
            client_ports_of((100, 104), 3),
            (100, 104),
            "too few ports to split"
        );
    }
}
