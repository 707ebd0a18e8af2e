//! Test rig for lkl-hijack: network namespaces emulating an OpenVZ container's `venet0`.
//!
//! * [`VenetTopology`]: a "container" namespace holding a tun device `venet0` typed like
//!   OpenVZ's (`link/void`, L3, NOARP, POINTOPOINT, MTU 1500), a "peer" namespace with
//!   another tun, and the [`forwarder`] process (`lkl-forwarder`, the "host node") moving
//!   packets between the two, optionally with delay, loss, burst loss, reordering,
//!   duplication, a rate limit and a blackhole.
//! * [`VethTopology`]: the same two namespaces joined by a veth pair.
//! * [`KernelProfile`]: runs a program as on an older host kernel (3.10, 4.18, 5.4, 5.10),
//!   refusing what that kernel lacks.
//!
//! Both use one address plan ([`Addrs`]): the container's host stack, an address reserved for
//! LKL and the peer, in IPv4 and IPv6, all private and existing only inside the namespaces.
//! Everything is torn down when the topology is dropped, and what a killed process left behind
//! is removed by the next topology built (namespace names carry the creator's pid, and the
//! forwarder exits with its owner).
//!
//! [`PacketSocket`] sees an interface's packets (both directions) and sends raw ones out of it,
//! through the kind of socket LKL's backend uses.
//!
//! ```no_run
//! use lkl_rig::{Topology, VenetTopology};
//! let topo = VenetTopology::builder().delay_ms(20.0).loss_pct(2.0).build()?;
//! let out = topo.peer_ns().run("ping", &["-c1", &topo.addrs().host_v4.to_string()])?;
//! let stats = topo.forwarder_stats()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Needs root, iproute2 (`ip`) and `/dev/net/tun`.

pub mod forwarder;
pub mod kernel_profile;
pub mod netns;
mod packet_socket;
mod sys;
mod topology;

pub use kernel_profile::KernelProfile;
pub use netns::Netns;
pub use packet_socket::{Captured, PacketSocket};
pub use topology::{
    destroy_named, forwarder_bin, Addrs, Topology, VenetBuilder, VenetTopology, VethTopology,
    VENET_IF, VENET_PEER_IF, VETH_IF, VETH_PEER_IF,
};
