//! Networks: the LAN (a host bridge) and libvirt NAT networks.

use crate::Name;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;

/// What kind of network this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkKind {
    /// The physical LAN; VMs attach to the host's LAN bridge. Its gateway is
    /// the (unmanaged) LAN router.
    Lan,
    /// A libvirt-managed network behind the host, which routes and
    /// masquerades it; its gateway is the host's address on the bridge.
    Nat,
}

/// A range of addresses handed out by DHCP (inclusive). Static VM addresses
/// must stay outside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DhcpRange {
    /// First address.
    pub start: Ipv4Addr,
    /// Last address.
    pub end: Ipv4Addr,
}

impl DhcpRange {
    /// Whether `a` is inside the range.
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        self.start <= a && a <= self.end
    }
}

impl fmt::Display for DhcpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// Why a text is not a Linux interface name (the text is shown escaped and shortened).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not an interface name (1-15 characters of a-z, A-Z, 0-9, '-', '_', '.')")]
pub struct IfNameError(pub String);

crate::validated_string! {
    /// A Linux network interface name (1–15 characters, `[A-Za-z0-9_.-]`).
    pub struct IfName;
    error = IfNameError;
    validate = ifname;
}

fn ifname(s: &str) -> Result<(), IfNameError> {
    let ok = !s.is_empty()
        && s.len() <= 15
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    ok.then_some(())
        .ok_or_else(|| IfNameError(crate::text::shown(s)))
}

/// A network VMs attach to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Name (also the libvirt network name).
    pub name: Name,
    /// LAN or NAT.
    pub kind: NetworkKind,
    /// The subnet.
    #[serde(with = "crate::addr::subnet")]
    pub cidr: Ipv4Net,
    /// Default gateway for VMs on this network: the LAN router, or the host's
    /// address on a NAT network's bridge.
    pub gateway: Ipv4Addr,
    /// Bridge device on the host (`br0` for the LAN, `virbr-…` for NAT).
    pub bridge: IfName,
    /// DHCP pool, if any (on the LAN: the router's pool, to keep clear of).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<DhcpRange>,
}

impl Network {
    /// Whether this is the LAN.
    pub fn is_lan(&self) -> bool {
        self.kind == NetworkKind::Lan
    }
}
