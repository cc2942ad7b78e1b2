//! What a KVM host offers beyond its LAN identity: the libvirt connection
//! that reaches it and the capacity VMs are placed against.

use crate::{GiB, MiB};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a libvirt URI was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a libvirt URI (driver[+transport]://[user@host]/path; printable ASCII, no spaces or quotes)"
)]
pub struct UriError(pub String);

/// A libvirt connection URI: `qemu:///system`,
/// `qemu+ssh://root@kvm2/system`, `test:///path/to/host.xml`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LibvirtUri(String);

impl LibvirtUri {
    /// Validates a URI: a driver (`[a-z0-9+]`), `://`, then URI characters only.
    pub fn new(s: impl Into<String>) -> Result<Self, UriError> {
        let s = s.into();
        let ok = match s.split_once("://") {
            Some((scheme, rest)) => {
                !scheme.is_empty()
                    && scheme
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'+')
                    && s.len() <= 1024
                    && rest.bytes().all(|b| {
                        b.is_ascii_alphanumeric()
                            || matches!(
                                b,
                                b'-' | b'.'
                                    | b'_'
                                    | b'~'
                                    | b':'
                                    | b'/'
                                    | b'?'
                                    | b'='
                                    | b'&'
                                    | b'@'
                                    | b'%'
                                    | b'+'
                                    | b','
                                    | b'['
                                    | b']'
                            )
                    })
            }
            None => false,
        };
        if ok {
            Ok(LibvirtUri(s))
        } else {
            Err(UriError(s))
        }
    }

    /// The local system connection, `qemu:///system`.
    pub fn local() -> Self {
        LibvirtUri("qemu:///system".into())
    }

    /// The URI text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps a URI already reported invalid, so a `Cluster` never holds it.
    pub(crate) fn unchecked(s: impl Into<String>) -> Self {
        LibvirtUri(s.into())
    }
}

impl TryFrom<String> for LibvirtUri {
    type Error = UriError;
    fn try_from(s: String) -> Result<Self, UriError> {
        LibvirtUri::new(s)
    }
}

impl From<LibvirtUri> for String {
    fn from(u: LibvirtUri) -> String {
        u.0
    }
}

impl fmt::Display for LibvirtUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for LibvirtUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// How far the VMs of one host may exceed its physical vCPUs and memory, in
/// percent (`400` = four virtual CPUs per physical thread). Disk is never
/// overcommitted: data disks are raw and overlays may grow to full size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overcommit {
    /// vCPUs, percent of the physical threads.
    pub vcpu_percent: u16,
    /// Memory, percent of the physical memory.
    pub memory_percent: u16,
}

impl Default for Overcommit {
    /// No overcommit (100 % each).
    fn default() -> Self {
        Overcommit {
            vcpu_percent: 100,
            memory_percent: 100,
        }
    }
}

/// What a host can give to VMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capacity {
    /// Physical CPU threads available to VMs.
    pub vcpus: u16,
    /// Memory available to VMs.
    pub memory: MiB,
    /// Disk in the storage pool.
    pub disk: GiB,
    /// The declared overcommit ratio.
    #[serde(default)]
    pub overcommit: Overcommit,
}

impl Capacity {
    /// vCPUs the VMs may use in total (threads × overcommit).
    pub fn usable_vcpus(&self) -> u64 {
        u64::from(self.vcpus) * u64::from(self.overcommit.vcpu_percent) / 100
    }

    /// Memory the VMs may use in total (memory × overcommit).
    pub fn usable_memory(&self) -> MiB {
        MiB(self.memory.0 * u64::from(self.overcommit.memory_percent) / 100)
    }
}

/// How the host's QEMU runs guests: libvirt's domain type.
///
/// `kvm` (the default) runs guests on the CPU through `/dev/kvm`; `qemu`
/// emulates the CPU (TCG) for hosts without usable KVM — nested clouds
/// whose KVM exposes too few CPU features for a Linux guest, or a lab
/// machine. TCG guests are many times slower: give them VRRP and health
/// check settings to match.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Accelerator {
    /// Hardware virtualization (`<domain type='kvm'>`).
    #[default]
    Kvm,
    /// CPU emulation, TCG (`<domain type='qemu'>`).
    Qemu,
}

/// Why an accelerator name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a domain type (kvm, qemu)")]
pub struct AcceleratorError(pub String);

impl Accelerator {
    /// libvirt's domain type: `kvm` or `qemu`.
    pub fn domain_type(self) -> &'static str {
        match self {
            Accelerator::Kvm => "kvm",
            Accelerator::Qemu => "qemu",
        }
    }

    /// Whether this is the default (`kvm`), left out of model files.
    pub fn is_default(&self) -> bool {
        *self == Accelerator::Kvm
    }
}

impl std::str::FromStr for Accelerator {
    type Err = AcceleratorError;
    fn from_str(s: &str) -> Result<Self, AcceleratorError> {
        match s {
            "kvm" => Ok(Accelerator::Kvm),
            "qemu" => Ok(Accelerator::Qemu),
            other => Err(AcceleratorError(crate::text::shown(other))),
        }
    }
}

impl fmt::Display for Accelerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.domain_type())
    }
}

#[cfg(test)]
mod accelerator_tests {
    use super::Accelerator;

    #[test]
    fn parses_both_domain_types_and_rejects_others() {
        assert_eq!("kvm".parse::<Accelerator>(), Ok(Accelerator::Kvm));
        assert_eq!("qemu".parse::<Accelerator>(), Ok(Accelerator::Qemu));
        let e = "tcg".parse::<Accelerator>().expect_err("not a domain type");
        assert!(e.to_string().contains("kvm, qemu"), "{e}");
        assert_eq!(Accelerator::default().domain_type(), "kvm");
    }
}
