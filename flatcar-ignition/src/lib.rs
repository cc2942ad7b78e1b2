//! Provisioning for a flatcar-microcloud: each VM's composed
//! [`Node`](flatcar_topology::provision::Node) rendered to an Ignition v3
//! config ([`config`], serde types, never hand-built JSON), the [`base`]
//! service that contributes what the model alone implies (hostname,
//! systemd-networkd, the admin user, time, data disks, update strategy), and
//! the on-disk secret store ([`DirSecrets`]: 0600 files, generated once).
//!
//! ```
//! use flatcar_ignition::{compose, IgnitionJson};
//! use flatcar_topology::provision::MemorySecrets;
//! use flatcar_topology::{net4, Cluster, HostBuilder, Role};
//!
//! let mut c = Cluster::builder("demo", HostBuilder::new("kvm1"));
//! let lan = c.lan("lan", net4!("198.18.0.0/24"), |n| n.host_at(40));
//! c.vm("web1", |vm| vm.role(Role::Worker).nic(&lan, 21));
//! c.dns("demo.home.arpa", &[std::net::Ipv4Addr::new(198, 18, 250, 53)]); // an upstream resolver for first boot
//! c.ssh_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJNBE0yGR9doLSjjPtPCkgpn6fWfiNVJ44xnctKvgyUU admin");
//! let cluster = c.build().expect("valid");
//! // The base service alone: hostname, networkd, users, time, updates.
//! let composed = compose(&cluster, &[], &mut MemorySecrets::default()).expect("composes");
//! let json = composed.nodes["web1"].ignition_json().expect("renders");
//! assert!(json.contains("\"version\": \"3.3.0\"") && json.contains("/etc/hostname"));
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod base;
pub mod config;
mod error;
pub mod fs;
mod secrets;

pub use base::Base;
pub use config::{render, SPEC_VERSION, SPEC_VERSION_SPECIAL_MODES};
pub use error::Error;
pub use secrets::DirSecrets;

use flatcar_topology::provision::{Composed, SecretStore, Service};
use flatcar_topology::Cluster;

/// Runs the [`Base`] service and then every service in order: every node's
/// provisioning, or every collision and invalid item at once.
pub fn compose(
    cluster: &Cluster,
    services: &[&dyn Service],
    secrets: &mut dyn SecretStore,
) -> Result<Composed, flatcar_topology::Error> {
    let mut all: Vec<&dyn Service> = Vec::with_capacity(services.len() + 1);
    all.push(&Base);
    all.extend_from_slice(services);
    Composed::from_services(cluster, &all, secrets)
}

/// A node's Ignition config as pretty JSON (deterministic bytes):
/// `node.ignition_json()`, the same as [`render`].
pub trait IgnitionJson {
    /// The Ignition config as pretty JSON with a trailing newline.
    fn ignition_json(&self) -> Result<String, Error>;
}

impl IgnitionJson for flatcar_topology::provision::Node {
    fn ignition_json(&self) -> Result<String, Error> {
        render(self)
    }
}
