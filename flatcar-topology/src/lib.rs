//! The typed model of a flatcar-microcloud: addresses checked at compile
//! time, a builder DSL with typed handles, validation that reports every
//! problem at once, a TOML/JSON document form, and the service-composition
//! model ([`provision`]: what services contribute to each VM, collisions
//! reported naming both). Types only: no file writes, no libvirt, no
//! Ignition JSON (see `flatcar-libvirt`, `flatcar-ignition`).
//!
//! ```
//! use flatcar_topology::{host, ipv4, net4, Cluster, HostBuilder, MiB, GiB, Role};
//! use ipnet::Ipv4Net;
//!
//! const LAN: Ipv4Net = net4!("198.18.0.0/24");
//! const K8S: Ipv4Net = net4!("198.18.4.0/24");
//!
//! let mut c = Cluster::builder("demo", HostBuilder::new("kvm1").uplink("eno1"));
//! let lan = c.lan("lan", LAN, |n| n.bridge("br0").host_at(40));
//! let k8s = c.nat("k8s", K8S, |n| n.dhcp(100, 254));
//! let lb1 = c.vm("lb1", |vm| vm.role(Role::LoadBalancer).nic(&lan, 11).nic(&k8s, 11));
//! for (i, name) in ["master1", "master2", "master3"].iter().enumerate() {
//!     c.vm(name, |vm| vm.role(Role::Master).vcpus(2).memory(MiB::gib(2)).root_disk(GiB(50))
//!         .nic(&k8s, 21 + i as u32));
//! }
//! c.vip("api", &lan, 10, |v| v.tcp(6443, Role::Master, 6443).holders([&lb1]));
//! c.dns("demo.home.arpa", &[std::net::Ipv4Addr::new(198, 18, 250, 53)]); // an upstream resolver for first boot
//! c.allow(&k8s, flatcar_topology::Endpoint::Internet, flatcar_topology::Proto::Any, &[]); // egress for image pulls
//! c.ssh_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJNBE0yGR9doLSjjPtPCkgpn6fWfiNVJ44xnctKvgyUU admin");
//! let cluster = c.build().expect("valid");
//! assert_eq!(cluster.vip("api").map(|v| v.address), Some(host!(LAN, 10)));
//! assert_eq!(cluster.vm("master1").and_then(|v| v.address_on("k8s")), Some(ipv4!("198.18.4.21")));
//! ```
//!
//! Invalid descriptions report every problem, one per line:
//!
//! ```
//! use flatcar_topology::{net4, Cluster, HostBuilder, Role};
//! let mut c = Cluster::builder("demo", HostBuilder::new("kvm1"));
//! let lan = c.lan("lan", net4!("198.18.0.0/24"), |n| n.host_at(40).dhcp(100, 200));
//! c.vm("web\n1", |vm| vm.nic(&lan, 150));
//! c.vm("db", |vm| vm.nic(&lan, 40));
//! let problems = c.build().unwrap_err();
//! let text = problems.to_string();
//! assert!(text.contains(r#"vm "web\n1": name "web\n1" has the character '\n'"#), "{text}");
//! assert!(text.contains("inside the DHCP range"), "{text}");
//! assert!(text.contains("address 198.18.0.40 is already used by host"), "{text}");
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod addr;
pub mod artifact;
pub mod bringup;
mod builder;
pub mod change;
mod cluster;
mod error;
pub mod fabric;
pub mod failover;
mod file;
mod flow;
mod host;
mod image;
mod k3s;
mod kvm_host;
mod mac;
mod name;
mod network;
pub mod placement;
mod port;
pub mod problem;
pub mod provision;
pub mod reboot;
mod role;
pub mod rollout;
mod router;
mod secret;
mod services;
mod size;
mod spec;
mod summary;
pub mod text;
pub mod validate;

/// What hostile input is rejected, where, and why (a table checked by `tests/hostile.rs`).
#[doc = include_str!("../docs/hostile-input.md")]
pub mod hostile_input {}
mod vip;
mod vm;
mod vpn;

pub use builder::{
    ClusterBuilder, HostBuilder, HostRef, K3sBuilder, NetRef, NetworkBuilder, PeerBuilder,
    RouterBuilder, VipBuilder, VipRef, VmBuilder, VmRef, VpnBuilder,
};
pub use cluster::{Backend, Cluster, NicView};
pub use error::{BoxError, Error};
pub use file::Format;
pub use flow::{Endpoint, Flow, Proto};
pub use host::{KvmHost, PathError, PoolPath, StoragePool, SYSTEM_DIRS};
pub use image::{ImageRef, ImageRefError};
pub use k3s::{
    Cron, EtcdSnapshots, Flannel, Ingress, K3s, K3sSettingError, K3sToken, K3sVersion, NfsShare,
};
pub use kvm_host::{Accelerator, AcceleratorError, Capacity, LibvirtUri, Overcommit, UriError};
pub use mac::{MacAddr, MacError};
pub use name::{DomainName, Name, NameError};
pub use network::{DhcpRange, IfName, IfNameError, Network, NetworkKind};
pub use placement::{HostUsage, Load, SpreadGroup, SpreadRule};
pub use port::{Port, PortError, PortRange};
pub use problem::{Element, Problem, Problems};
pub use role::Role;
pub use router::{LanRouter, PortForward};
pub use secret::{Secret, SecretId};
pub use services::{Dns, Ntp};
pub use size::{GiB, MiB};
pub use spec::Spec;
pub use vip::{BackendPort, Preempt, Vip, VipPort, MAX_VIP_HOLDERS};
pub use vm::{
    Admin, Channel, DataDisk, FlatcarVersion, Nic, OsImage, SshKey, SshKeyError, VersionError, Vm,
};
pub use vpn::{DialAddr, DialHost, Vpn, VpnEndpoint, VpnPeer};

#[doc(hidden)]
pub use ipnet as __ipnet;
pub use ipnet::Ipv4Net;
#[doc(hidden)]
pub use serde as __serde;
