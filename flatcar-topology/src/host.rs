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

/// Why a pool path was rejected (the text is shown escaped and shortened).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not an absolute, normalized path of safe characters.
    #[error(
        "{0} is not an absolute path of [A-Za-z0-9/._-] without '..', '.', '//' or a trailing '/'"
    )]
    Syntax(String),
    /// A directory of the operating system: libvirt would create, chown or
    /// fill it with VM disks.
    #[error("{0} is a system directory; use a directory of its own such as /var/lib/libvirt/images/<cluster>")]
    System(String),
}

/// Directories a storage pool must not be: the root and the operating
/// system's own trees (libvirt chowns and fills a pool's directory).
pub const SYSTEM_DIRS: &[&str] = &[
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/lib",
    "/usr/local",
    "/usr/sbin",
    "/usr/share",
    "/var",
    "/var/lib",
    "/var/lib/libvirt",
    "/var/log",
    "/var/run",
    "/var/tmp",
    "/var/cache",
];

crate::validated_string! {
    /// An absolute directory path safe to embed in any generated file, and
    /// not a system directory (see [`SYSTEM_DIRS`]).
    pub struct PoolPath;
    error = PathError;
    validate = pool_path;
}

fn pool_path(s: &str) -> Result<(), PathError> {
    let ok = s.starts_with('/')
        && s.len() <= 4096
        && (s == "/" || !s.ends_with('/'))
        && !s.contains("//")
        && !s.split('/').any(|c| c == ".." || c == ".")
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'));
    if !ok {
        return Err(PathError::Syntax(crate::text::shown(s)));
    }
    if SYSTEM_DIRS.contains(&s) {
        return Err(PathError::System(crate::text::shown(s)));
    }
    Ok(())
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
    /// How QEMU runs the guests: `kvm` (default) or `qemu` (TCG, for
    /// hosts without usable KVM); the domain type of every VM on the host.
    #[serde(default, skip_serializing_if = "crate::Accelerator::is_default")]
    pub accelerator: crate::Accelerator,
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
