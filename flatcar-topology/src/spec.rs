//! The document form of a cluster: plain data, loaded from and saved to files.

use crate::artifact::ArtifactSettings;
use crate::{Admin, Dns, Flow, K3s, KvmHost, Name, Network, NfsShare, Ntp, OsImage, Vip, Vm, Vpn};
use serde::{Deserialize, Serialize};

/// Everything that describes a cluster, unvalidated.
///
/// The builder produces one, files load into one, and
/// [`Cluster::try_from`](crate::Cluster) validates it. Unknown fields in a
/// file are errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Cluster name (seeds derived MACs, names owned libvirt objects).
    pub name: Name,
    /// The physical KVM host.
    pub host: KvmHost,
    /// Default OS image.
    #[serde(default)]
    pub image: OsImage,
    /// Admin login on every VM.
    #[serde(default)]
    pub admin: Admin,
    /// DNS zone and forwarders.
    #[serde(default)]
    pub dns: Dns,
    /// Time sources.
    #[serde(default)]
    pub ntp: Ntp,
    /// K3s settings.
    #[serde(default)]
    pub k3s: K3s,
    /// Networks.
    #[serde(default)]
    pub networks: Vec<Network>,
    /// Virtual machines.
    #[serde(default)]
    pub vms: Vec<Vm>,
    /// Virtual IPs.
    #[serde(default)]
    pub vips: Vec<Vip>,
    /// Allowed flows declared by the user (services add their own).
    #[serde(default)]
    pub flows: Vec<Flow>,
    /// The VPN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpn: Option<Vpn>,
    /// NFS shares on the storage node.
    #[serde(default)]
    pub shares: Vec<NfsShare>,
    /// Mirror and per-artifact overrides for everything the cloud downloads.
    #[serde(default, skip_serializing_if = "ArtifactSettings::is_default")]
    pub artifacts: ArtifactSettings,
    /// Failure-detection timing of the load balancers (absent: the
    /// load-balancer service's defaults).
    #[serde(default, skip_serializing_if = "crate::failover::Failover::is_default")]
    pub failover: crate::failover::Failover,
    /// The LAN router's port forwards to the VIPs (the router itself is
    /// not managed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<crate::LanRouter>,
    /// Further KVM hosts, beyond `host` (empty: a single-host cloud).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<KvmHost>,
    /// Which host runs which VM (VM name to host name). Recorded by
    /// [`place`](crate::placement::place) when there is more than one host;
    /// recorded entries are never moved.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub placement: std::collections::BTreeMap<Name, Name>,
    /// The networks that span hosts (VNIs, LAN MTU, VXLAN port). Recorded
    /// by [`allocate`](crate::fabric::allocate) when there is more than one
    /// host; absent in a single-host cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fabric: Option<crate::fabric::FabricSpec>,
}
