//! flatcar-microcloud: a highly available K3s cloud on KVM/libvirt with
//! Flatcar VMs, described as typed Rust values.
//!
//! ```
//! use flatcar_microcloud::prelude::*;
//! let cluster = flatcar_microcloud::reference::cluster().expect("the reference cloud is valid");
//! assert_eq!(cluster.vms().len(), 11);
//! ```
#![deny(missing_docs)]

pub mod bundle;
pub mod diagram;
mod error;
pub mod inventory;
pub mod reference;
pub mod scale;
pub mod services;
pub mod terraform;

pub use bundle::{Bundle, BundleSecrets, Plan, RenderOptions};

/// Every pinned artifact (K3s, system extensions, images) with its version,
/// hash and the public source the hash was taken from; how they are
/// delivered on Flatcar; mirror and overrides. (`docs/artifacts.md`)
#[doc = include_str!("../docs/artifacts.md")]
pub mod artifacts {}
pub use error::Error;

/// libvirt XML documents of the cluster, by bundle path.
pub fn libvirt_files(cluster: &flatcar_topology::Cluster) -> Result<Vec<(String, String)>, Error> {
    Ok(flatcar_topology::libvirt::documents(cluster)?
        .into_iter()
        .map(|(path, _, xml)| (format!("libvirt/{path}"), xml))
        .collect())
}

/// The README's code samples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Everything needed to describe a cluster.
pub mod prelude {
    pub use flatcar_topology::{
        host, ipv4, net4, BackendPort, Channel, Cluster, Endpoint, Flannel, GiB, HostBuilder,
        Ipv4Net, MiB, Preempt, Proto, Role,
    };
    pub use std::net::Ipv4Addr;
}
