//! Networks that span hosts: with more than one KVM host, every NAT-side
//! network (k8s, infra) reaches every host as one VXLAN segment over the
//! LAN, with a gateway that survives the loss of any one host.
//!
//! * **Segment.** Each NAT network gets a VXLAN network identifier (VNI),
//!   recorded in the model file (`fabric.vnis`) the first time the cloud
//!   has several hosts and never changed afterwards, like placements. On
//!   each host the segment is a Linux bridge (the network's `bridge`) with
//!   a VXLAN port `vx<VNI>` whose local address is the host's LAN address
//!   and whose flood list holds the other hosts' LAN addresses (head-end
//!   replication over unicast UDP, [`VXLAN_PORT`] by default; no multicast
//!   needed on the LAN).
//! * **MTU.** VXLAN over IPv4 adds [`VXLAN_OVERHEAD`] bytes (outer
//!   Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8), so the segment's MTU is the
//!   LAN's (`fabric.underlay_mtu`, 1500 by default) minus 50. Bridges,
//!   VXLAN ports, the VMs' NICs (networkd `MTUBytes=` written into Ignition,
//!   libvirt `<mtu>`) all use it, so no frame is silently dropped by a
//!   bridge port whose MTU is smaller.
//! * **Gateway: distributed anycast.** Every host's bridge carries the same
//!   gateway address and the same MAC ([`Segment::gateway_mac`], derived
//!   from the cluster and network names). A VM always talks to the gateway
//!   of the host it runs on; each host's bridge table keeps frames from the
//!   gateway MAC off the VXLAN port, so the gateways never answer each
//!   other's ARP or see each other's frames. Losing a host loses only its
//!   own VMs: the others keep their gateway with no failover at all (VRRP
//!   would need a daemon per host and a takeover of seconds, and would
//!   route every VM's traffic through one host).
//! * **What the anycast gateway costs.** A host's gateway reaches only the
//!   VMs it runs (another host's VM answers the shared MAC to its own
//!   host). So each host masquerades connections leaving a spanning
//!   network (to the LAN, the VPN, the internet, another network) as
//!   itself, and their replies come back to it; traffic from the LAN into
//!   a spanning network enters through the VIPs (whose holders have a NIC
//!   on the segment), not through host routing. Not solved yet: a routed
//!   connection from one spanning network to a VM of *another* spanning
//!   network on a different host (k8s → postgresql1 on infra when they
//!   are placed apart) — that needs per-VM routes over the LAN between the
//!   hosts (the model knows every placement) or a NIC on both networks.
//!
//! A single-host cloud has no fabric: nothing here changes its artifacts.

use crate::placement::hosts;
use crate::problem::{Element, Problem};
use crate::{Cluster, IfName, KvmHost, MacAddr, Name, Network, NetworkKind, Port, Spec};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

/// The IANA VXLAN port.
pub const VXLAN_PORT: Port = Port::of(4789);
/// Bytes VXLAN over IPv4 adds to every frame: outer Ethernet 14, IPv4 20,
/// UDP 8, VXLAN 8.
pub const VXLAN_OVERHEAD: u16 = 50;
/// The LAN MTU assumed when none is declared.
pub const DEFAULT_UNDERLAY_MTU: u16 = 1500;
/// The smallest overlay MTU accepted (IPv6's minimum link MTU; K3s' own
/// flannel VXLAN inside the VMs takes another 50 from it).
pub const MIN_OVERLAY_MTU: u16 = 1280;
/// The largest underlay MTU accepted (jumbo frames).
pub const MAX_UNDERLAY_MTU: u16 = 9216;
/// The first VNI handed out.
pub const FIRST_VNI: u32 = 100;

/// Why a number is not a VNI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a VXLAN network identifier (1..=16777215)")]
pub struct VniError(pub u32);

/// A VXLAN network identifier, 1–16,777,215 (24 bits, 0 reserved).
///
/// ```
/// use flatcar_topology::fabric::Vni;
/// assert_eq!(Vni::new(100).map(|v| v.get()), Ok(100));
/// assert!(Vni::new(0).is_err());
/// assert!(Vni::new(1 << 24).is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Vni(u32);

impl Vni {
    /// A VNI from a number.
    pub fn new(n: u32) -> Result<Self, VniError> {
        if (1..(1 << 24)).contains(&n) {
            Ok(Vni(n))
        } else {
            Err(VniError(n))
        }
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Vni {
    type Error = VniError;
    fn try_from(n: u32) -> Result<Self, VniError> {
        Vni::new(n)
    }
}

impl From<Vni> for u32 {
    fn from(v: Vni) -> u32 {
        v.0
    }
}

impl fmt::Display for Vni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Vni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Vni({})", self.0)
    }
}

fn default_mtu() -> u16 {
    DEFAULT_UNDERLAY_MTU
}

fn default_port() -> Port {
    VXLAN_PORT
}

/// The document form of the fabric: recorded when the cloud has more than
/// one host (absent from single-host model files).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FabricSpec {
    /// The LAN's MTU (the VXLAN underlay).
    #[serde(default = "default_mtu")]
    pub underlay_mtu: u16,
    /// The UDP port VXLAN uses on the LAN.
    #[serde(default = "default_port")]
    pub port: Port,
    /// NAT network name to VNI; recorded entries are never changed.
    #[serde(default)]
    pub vnis: BTreeMap<Name, Vni>,
}

impl Default for FabricSpec {
    /// MTU 1500, port 4789, no VNI recorded yet.
    fn default() -> Self {
        FabricSpec {
            underlay_mtu: DEFAULT_UNDERLAY_MTU,
            port: VXLAN_PORT,
            vnis: BTreeMap::new(),
        }
    }
}

impl FabricSpec {
    /// The MTU of every spanning segment: the underlay's minus
    /// [`VXLAN_OVERHEAD`] (0 when the underlay is smaller, reported by
    /// validation).
    pub fn overlay_mtu(&self) -> u16 {
        self.underlay_mtu.saturating_sub(VXLAN_OVERHEAD)
    }
}

/// Records a fabric with a VNI for every NAT network when the cloud has
/// more than one host: VNIs already recorded stay, new networks get the
/// lowest free VNI from [`FIRST_VNI`] on. A single-host spec is left as is.
pub fn allocate(spec: &mut Spec) {
    if spec.extra_hosts.is_empty() {
        return;
    }
    let fabric = spec.fabric.get_or_insert_with(FabricSpec::default);
    let mut used: BTreeSet<Vni> = fabric.vnis.values().copied().collect();
    let mut next = FIRST_VNI;
    for net in spec.networks.iter().filter(|n| n.kind == NetworkKind::Nat) {
        if fabric.vnis.contains_key(&net.name) {
            continue;
        }
        while let Ok(v) = Vni::new(next) {
            next += 1;
            if used.insert(v) {
                fabric.vnis.insert(net.name.clone(), v);
                break;
            }
        }
    }
}

/// Problems of the fabric: a VNI for a network that is not a NAT network,
/// a VNI used twice, an MTU that leaves the overlay below
/// [`MIN_OVERLAY_MTU`] or exceeds [`MAX_UNDERLAY_MTU`], a NAT network
/// without a VNI in a multi-host cloud.
pub fn problems(spec: &Spec) -> Vec<Problem> {
    let mut out = Vec::new();
    let Some(f) = &spec.fabric else {
        return out;
    };
    let rule = |element, rule: String| Problem::Rule { element, rule };
    let min = MIN_OVERLAY_MTU + VXLAN_OVERHEAD;
    if !(min..=MAX_UNDERLAY_MTU).contains(&f.underlay_mtu) {
        out.push(Problem::InvalidValue {
            element: Element::Host,
            field: "fabric.underlay_mtu",
            reason: format!(
                "{} is outside {min}..={MAX_UNDERLAY_MTU}: the overlay MTU is the LAN's minus {VXLAN_OVERHEAD} (VXLAN over IPv4) and must stay at least {MIN_OVERLAY_MTU}",
                f.underlay_mtu
            ),
        });
    }
    let mut seen: BTreeMap<Vni, &Name> = BTreeMap::new();
    for (name, vni) in &f.vnis {
        match spec.networks.iter().find(|n| &n.name == name) {
            None => out.push(Problem::UnknownNetwork {
                element: Element::Host,
                network: name.to_string(),
            }),
            Some(n) if n.kind != NetworkKind::Nat => out.push(rule(
                Element::Network(name.to_string()),
                format!(
                    "VNI {vni}: only NAT networks span hosts (the LAN already reaches every host)"
                ),
            )),
            Some(_) => {}
        }
        if let Some(first) = seen.insert(*vni, name) {
            out.push(rule(
                Element::Network(name.to_string()),
                format!("VNI {vni} is already used by network {first:?}"),
            ));
        }
    }
    if !spec.extra_hosts.is_empty() {
        for n in spec.networks.iter().filter(|n| n.kind == NetworkKind::Nat) {
            if !f.vnis.contains_key(&n.name) {
                out.push(rule(
                    Element::Network(n.name.to_string()),
                    "spans several hosts but has no VNI in fabric.vnis".into(),
                ));
            }
        }
    }
    out
}

/// One NAT network as a VXLAN segment on every host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment<'a> {
    /// The network.
    pub network: &'a Network,
    /// Its VNI.
    pub vni: Vni,
    /// The VXLAN port on each host's bridge (`vx<VNI>`).
    pub vxlan: IfName,
    /// The gateway's MAC, the same on every host's bridge.
    pub gateway_mac: MacAddr,
}

/// The spanning networks of a multi-host cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fabric<'a> {
    /// The LAN MTU.
    pub underlay_mtu: u16,
    /// The UDP port.
    pub port: Port,
    /// Every host, the first one first (their LAN addresses are the VXLAN
    /// endpoints).
    pub hosts: Vec<&'a KvmHost>,
    /// One segment per NAT network, in declaration order.
    pub segments: Vec<Segment<'a>>,
}

impl Fabric<'_> {
    /// The MTU of every segment (underlay − 50).
    pub fn overlay_mtu(&self) -> u16 {
        self.underlay_mtu.saturating_sub(VXLAN_OVERHEAD)
    }

    /// The LAN addresses of every host but `host`: its VXLAN peers, the
    /// only sources its ruleset accepts VXLAN from.
    pub fn peers(&self, host: &KvmHost) -> Vec<Ipv4Addr> {
        self.hosts
            .iter()
            .filter(|h| h.name != host.name)
            .map(|h| h.address)
            .collect()
    }

    /// The segment of network `name`, if it spans hosts.
    pub fn segment(&self, name: &str) -> Option<&Segment<'_>> {
        self.segments
            .iter()
            .find(|s| s.network.name.as_str() == name)
    }
}

/// The gateway MAC of network `network` in cluster `cluster`: derived like
/// NIC MACs (`52:` + 40 bits of SHA-256) from a name no VM can have.
pub fn gateway_mac(cluster: &str, network: &str) -> MacAddr {
    MacAddr::derive(cluster, &format!("gateway/{network}"), 0)
}

impl Cluster {
    /// The spanning networks, `None` for a single-host cloud.
    pub fn fabric(&self) -> Option<Fabric<'_>> {
        let spec = self.spec();
        if spec.extra_hosts.is_empty() {
            return None;
        }
        let f = spec.fabric.as_ref()?;
        let segments = self
            .networks()
            .iter()
            .filter(|n| n.kind == NetworkKind::Nat)
            .filter_map(|n| {
                let vni = *f.vnis.get(&n.name)?;
                Some(Segment {
                    network: n,
                    vni,
                    vxlan: IfName::unchecked(format!("vx{vni}")),
                    gateway_mac: gateway_mac(self.name().as_str(), n.name.as_str()),
                })
            })
            .collect();
        Some(Fabric {
            underlay_mtu: f.underlay_mtu,
            port: f.port,
            hosts: hosts(spec).collect(),
            segments,
        })
    }

    /// The MTU a NIC on `network` must use when it differs from the
    /// default: the overlay MTU on a spanning network, `None` otherwise
    /// (always `None` in a single-host cloud).
    pub fn nic_mtu(&self, network: &Network) -> Option<u16> {
        let f = self.fabric()?;
        f.segment(network.name.as_str()).map(|_| f.overlay_mtu())
    }
}
