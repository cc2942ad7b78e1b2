//! flatcar-microcloud: a highly available K3s cloud on KVM/libvirt with
//! Flatcar VMs, described as typed Rust values.
//!
//! The facade: it re-exports every crate ([`topology`], [`ignition`],
//! [`libvirt`], [`lb`], [`net`], [`k3s`]), composes every service into one
//! [`Bundle`] (render, plan with diffs, atomic write, secrets 0600), and
//! holds the reference cloud, the Ansible inventory, the Terraform export
//! and the diagrams.
//!
//! ```
//! use flatcar_microcloud::prelude::*;
//! let cluster = flatcar_microcloud::reference::cluster().expect("the reference cloud is valid");
//! assert_eq!(cluster.vms().len(), 11);
//! let bundle = Bundle::render(&cluster, &mut BundleSecrets::default()).expect("renders");
//! assert!(bundle.files().contains_key("vms/master1/ignition.json"));
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod admin_key;
pub mod bundle;
pub mod change;
pub mod deploy;
pub mod diagram;
mod error;
pub mod host;
pub mod inventory;
#[cfg(feature = "libvirt")]
pub mod machines;
pub mod model;
pub mod multi_host;
pub mod reference;
pub mod services;
pub mod terraform;

pub use bundle::{Bundle, BundleSecrets, Plan, RenderOptions};

/// Every pinned artifact (K3s, system extensions, images) with its version,
/// hash and the public source the hash was taken from; how they are
/// delivered on Flatcar; mirror and overrides. (`docs/artifacts.md`)
#[doc = include_str!("../docs/artifacts.md")]
pub mod artifacts {}
pub use error::Error;

/// PostgreSQL on the database VMs.
pub use flatcar_db as db;
/// Provisioning: Ignition v3, the base service, the on-disk secret store.
pub use flatcar_ignition as ignition;
/// K3s servers, agents, manifests.
pub use flatcar_k3s as k3s;
/// HAProxy and Keepalived.
pub use flatcar_lb as lb;
/// libvirt XML; plan/apply/destroy with feature `libvirt`/`live`.
pub use flatcar_libvirt as libvirt;
/// nftables, WireGuard, CoreDNS, Chrony.
pub use flatcar_net as net;
/// The model: typed values, builder DSL, validation, document form, service composition.
pub use flatcar_topology as topology;

/// libvirt XML documents of the cluster, by bundle path.
pub fn libvirt_files(cluster: &flatcar_topology::Cluster) -> Result<Vec<(String, String)>, Error> {
    Ok(flatcar_libvirt::documents(cluster)?
        .into_iter()
        .map(|(path, _, xml)| (format!("libvirt/{path}"), xml))
        .collect())
}

/// The README's code samples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Everything needed to describe a cluster and render its bundle.
pub mod prelude {
    pub use crate::{Bundle, BundleSecrets, Error};
    pub use flatcar_topology::{
        host, ipv4, net4, BackendPort, Channel, Cluster, Endpoint, Flannel, GiB, HostBuilder,
        Ipv4Net, MiB, Preempt, Problems, Proto, Role,
    };
    pub use std::net::Ipv4Addr;
}
