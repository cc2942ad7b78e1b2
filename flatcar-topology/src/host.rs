//! The physical KVM host.

use crate::network::IfName;
use crate::Name;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// The libvirt storage pool holding base images, overlays and data disks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoragePool {
    /// Pool name.
    pub name: Name,
    /// Directory on the host (absolute, no whitespace or quotes).
    pub path: PoolPath,
}

/// Why a pool path was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an absolute path of [A-Za-z0-9/._-] without '..'")]
pub struct PathError(pub String);

/// An absolute directory path safe to embed in any generated file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PoolPath(String);

impl PoolPath {
    /// Validates a path.
    pub fn new(s: impl Into<String>) -> Result<Self, PathError> {
        let s = s.into();
        let ok = s.starts_with('/')
            && s.len() <= 4096
            && !s.split('/').any(|c| c == "..")
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'));
        if ok {
            Ok(PoolPath(s))
        } else {
            Err(PathError(s))
        }
    }

    /// The path text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps a path already reported invalid, so a `Cluster` never holds it.
    pub(crate) fn unchecked(s: impl Into<String>) -> Self {
        PoolPath(s.into())
    }
}

impl TryFrom<String> for PoolPath {
    type Error = PathError;
    fn try_from(s: String) -> Result<Self, PathError> {
        PoolPath::new(s)
    }
}

impl From<PoolPath> for String {
    fn from(p: PoolPath) -> String {
        p.0
    }
}

impl std::fmt::Display for PoolPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The physical KVM host: on the LAN through its bridge, runs libvirt, the
/// firewall and (by default) the VPN endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvmHost {
    /// Host name.
    pub name: Name,
    /// The physical uplink enslaved to the LAN bridge (`eno1`).
    pub uplink: IfName,
    /// The LAN network (by name); its bridge is the host's LAN bridge.
    pub lan: Name,
    /// The host's own address on the LAN.
    pub address: Ipv4Addr,
    /// Storage pool for VM disks.
    pub pool: StoragePool,
    /// The libvirt connection that reaches this host (default: `qemu:///system`
    /// for the first host, `qemu+ssh://root@<address>/system` for the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub libvirt: Option<crate::LibvirtUri>,
    /// What the host can give to VMs (absent: not checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<crate::Capacity>,
}

impl KvmHost {
    /// The libvirt URI of this host, declared or the default for `first`
    /// (the first host: local) or another host (SSH to its LAN address).
    pub fn libvirt_uri(&self, first: bool) -> crate::LibvirtUri {
        match &self.libvirt {
            Some(u) => u.clone(),
            None if first => crate::LibvirtUri::local(),
            None => {
                crate::LibvirtUri::unchecked(format!("qemu+ssh://root@{}/system", self.address))
            }
        }
    }
}
