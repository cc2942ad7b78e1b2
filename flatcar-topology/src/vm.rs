//! Virtual machines, their NICs and disks, and the OS image.

use crate::{GiB, MacAddr, MiB, Name, Role};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

/// A network interface of a VM: which network, which static address, which MAC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nic {
    /// The network (by name).
    pub network: Name,
    /// The static address; must be inside the network and outside its DHCP range.
    pub address: Ipv4Addr,
    /// A fixed MAC; when absent one is derived from the cluster name, VM name
    /// and NIC index ([`MacAddr::derive`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
}

/// An extra virtio data disk (a raw volume, formatted by Ignition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataDisk {
    /// Name (volume `<vm>-<name>`, filesystem label, mount point `/var/mnt/<name>`).
    pub name: Name,
    /// Size.
    pub size: GiB,
}

/// Flatcar release channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Channel {
    /// `stable`
    Stable,
    /// `beta`
    Beta,
    /// `alpha`
    Alpha,
    /// `lts`
    Lts,
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Channel::Stable => "stable",
            Channel::Beta => "beta",
            Channel::Alpha => "alpha",
            Channel::Lts => "lts",
        })
    }
}

/// Why an OS image version was rejected (the text is shown escaped and shortened).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a Flatcar version like 4081.2.0")]
pub struct VersionError(pub String);

crate::validated_string! {
    /// A Flatcar release version (`4081.2.0`).
    pub struct FlatcarVersion;
    error = VersionError;
    validate = flatcar_version;
}

fn flatcar_version(s: &str) -> Result<(), VersionError> {
    let parts: Vec<&str> = s.split('.').collect();
    let ok = parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 6 && p.bytes().all(|b| b.is_ascii_digit()));
    ok.then_some(())
        .ok_or_else(|| VersionError(crate::text::shown(s)))
}

/// The Flatcar QEMU base image VMs boot from (each VM gets a qcow2 overlay).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OsImage {
    /// Release channel.
    pub channel: Channel,
    /// Release version.
    pub version: FlatcarVersion,
}

impl Default for OsImage {
    fn default() -> Self {
        OsImage {
            channel: Channel::Stable,
            version: FlatcarVersion::unchecked("4081.2.0"),
        }
    }
}

impl OsImage {
    /// Name of the base image volume in the storage pool.
    pub fn volume_name(&self) -> String {
        format!("flatcar-{}-{}.qcow2", self.channel, self.version)
    }

    /// Where the image is published.
    pub fn url(&self) -> String {
        format!(
            "https://{}.release.flatcar-linux.net/amd64-usr/{}/flatcar_production_qemu_image.img",
            self.channel, self.version
        )
    }
}

/// A virtual machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vm {
    /// Name: hostname, libvirt domain name, DNS label.
    pub name: Name,
    /// What it does.
    pub roles: BTreeSet<Role>,
    /// Virtual CPUs.
    pub vcpus: u16,
    /// Memory.
    pub memory: MiB,
    /// Root disk size (qcow2 overlay on the base image).
    pub root_disk: GiB,
    /// Extra data disks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_disks: Vec<DataDisk>,
    /// NICs; the first carries the default route.
    pub nics: Vec<Nic>,
    /// OS image override (default: the cluster's image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<OsImage>,
}

impl Vm {
    /// Whether the VM has `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Its address on `network`, if it has a NIC there.
    pub fn address_on(&self, network: &str) -> Option<Ipv4Addr> {
        self.nics
            .iter()
            .find(|n| n.network.as_str() == network)
            .map(|n| n.address)
    }

    /// The address of its first NIC.
    pub fn primary_address(&self) -> Option<Ipv4Addr> {
        self.nics.first().map(|n| n.address)
    }
}

/// Why an SSH public key was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not an SSH public key line (type, base64 key, optional comment; printable ASCII, one line)"
)]
pub struct SshKeyError;

crate::validated_string! {
    /// One `authorized_keys` line: `ssh-ed25519 AAAA… comment`.
    pub struct SshKey;
    error = SshKeyError;
    validate = ssh_key;
}

fn ssh_key(s: &str) -> Result<(), SshKeyError> {
    let printable = s.bytes().all(|b| (0x20..0x7f).contains(&b));
    let mut parts = s.split(' ');
    let kind = parts.next().unwrap_or_default();
    let key = parts.next().unwrap_or_default();
    let kind_ok = matches!(
        kind,
        "ssh-ed25519"
            | "ssh-rsa"
            | "ecdsa-sha2-nistp256"
            | "ecdsa-sha2-nistp384"
            | "ecdsa-sha2-nistp521"
            | "sk-ssh-ed25519@openssh.com"
    );
    let key_ok = key.len() >= 16
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    (printable && kind_ok && key_ok && s.len() <= 16 * 1024)
        .then_some(())
        .ok_or(SshKeyError)
}

/// The administrative login on every VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// User name (Flatcar's default user is `core`).
    pub user: Name,
    /// Authorized SSH keys.
    #[serde(default)]
    pub ssh_keys: Vec<SshKey>,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            user: Name::unchecked("core"),
            ssh_keys: Vec::new(),
        }
    }
}
