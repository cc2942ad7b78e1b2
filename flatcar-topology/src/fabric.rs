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
//!   host). So each host masquerades connections leaving the spanning
//!   networks (to the LAN, the VPN, the internet) as itself, and their
//!   replies come back to it.
//! * **Routing between spanning networks: on the hosts of both ends.** A
//!   connection from a VM on one spanning network to a VM of *another*
//!   one on a different host (a worker on k8s to postgresql1 on infra) is
//!   routed out of the source's network by the source's host and into the
//!   destination's network by the destination's host, in both directions,
//!   over a routed VXLAN between the hosts (the *transit*, VNI
//!   [`TRANSIT_VNI`] by default, `fabric.transit_vni`; only the host's LAN
//!   address as a `/32` on it, a MAC per host, static neighbours and flood entries). Each host
//!   carries a route per remote VM address ([`Fabric::remote_routes`],
//!   aggregated per host) through the host that runs it. So every host on
//!   the path sees both directions of the flow and the stateful ruleset
//!   stays stateful (conntrack), nothing is masqueraded between spanning
//!   networks, and the destination keeps the client's address. The
//!   alternatives were worse: routing into the destination's network on
//!   the source's host cannot even resolve the remote VM (its ARP answer
//!   goes to the shared gateway MAC on *its* host), and a stateless
//!   ruleset (`notrack`, replies matched by source port) would let any VM
//!   of a network send to any port of another one from a served port.
//! * **LAN VMs reach each VM through its own host.** A VM on the LAN gets
//!   a route per VM address of every spanning network it is not on
//!   (aggregated per host) through the host that runs it
//!   ([`Fabric::residents`]): the path is the same host both ways (the VM
//!   answers through its local gateway, which has the LAN connected), and
//!   losing a host loses only routes to VMs that died with it: no next hop
//!   to fail over (multipath over every host would hash a flow onto a host
//!   that routes the request but never sees the reply; a VRRP-held address
//!   would route everything through one host with the same problem and a
//!   takeover of its own).
//!
//! A single-host cloud has no fabric: nothing here changes its artifacts.

use crate::placement::hosts;
use crate::problem::{Element, Problem};
use crate::{Cluster, IfName, KvmHost, MacAddr, Name, Network, NetworkKind, Port, Spec};
use ipnet::Ipv4Net;
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
/// The VNI of the routed transit between the hosts, unless the model file
/// says otherwise (below [`FIRST_VNI`], so no network is ever given it).
pub const TRANSIT_VNI: Vni = Vni(99);

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

fn default_transit() -> Vni {
    TRANSIT_VNI
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
    /// The VNI of the routed transit between the hosts (routing between
    /// spanning networks on the hosts of both ends).
    #[serde(default = "default_transit")]
    pub transit_vni: Vni,
}

impl Default for FabricSpec {
    /// MTU 1500, port 4789, no VNI recorded yet.
    fn default() -> Self {
        FabricSpec {
            underlay_mtu: DEFAULT_UNDERLAY_MTU,
            port: VXLAN_PORT,
            vnis: BTreeMap::new(),
            transit_vni: TRANSIT_VNI,
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
    used.insert(fabric.transit_vni);
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
        if *vni == f.transit_vni {
            out.push(rule(
                Element::Network(name.to_string()),
                format!("VNI {vni} is the transit's between the hosts (fabric.transit_vni)"),
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

/// The routed VXLAN between the hosts that carries traffic between two
/// spanning networks from the source's host to the destination's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transit {
    /// Its VNI.
    pub vni: Vni,
    /// Its device on each host (`vx<VNI>`; only the host's LAN address
    /// as a `/32`, the source of what the host itself sends over it).
    pub ifname: IfName,
}

/// VM addresses of one spanning network that run on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Residents<'a> {
    /// The network.
    pub network: &'a Network,
    /// The host the VMs run on.
    pub host: &'a KvmHost,
    /// Their addresses, aggregated into the fewest prefixes covering
    /// exactly them.
    pub prefixes: Vec<Ipv4Net>,
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
    /// The routed transit between the hosts.
    pub transit: Transit,
    /// The cluster's name (MACs derive from it).
    cluster: &'a Name,
}

impl<'a> Fabric<'a> {
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

    /// `host`'s MAC on the transit (derived from the cluster and host names).
    pub fn transit_mac(&self, host: &KvmHost) -> MacAddr {
        MacAddr::derive(self.cluster.as_str(), &format!("transit/{}", host.name), 0)
    }

    /// Where the VMs of the spanning networks run: per network and host
    /// (in host order), the addresses of that network's VMs on that host,
    /// aggregated. Hosts without a VM on a network are left out.
    pub fn residents(&self, cluster: &'a Cluster) -> Vec<Residents<'a>> {
        let mut by: BTreeMap<(usize, usize), Vec<Ipv4Net>> = BTreeMap::new();
        for vm in cluster.vms() {
            let host = cluster.host_of(vm);
            let Some(h) = self.hosts.iter().position(|x| x.name == host.name) else {
                continue;
            };
            for nic in cluster.nics(vm) {
                if let Some(s) = self
                    .segments
                    .iter()
                    .position(|s| s.network.name == nic.network.name)
                {
                    by.entry((s, h))
                        .or_default()
                        .push(Ipv4Net::from(nic.address));
                }
            }
        }
        by.into_iter()
            .map(|((s, h), nets)| Residents {
                network: self.segments[s].network,
                host: self.hosts[h],
                prefixes: Ipv4Net::aggregate(&nets),
            })
            .collect()
    }

    /// `host`'s routes over the transit: every VM address of a spanning
    /// network that runs on another host, through that host (aggregated).
    pub fn remote_routes(
        &self,
        cluster: &'a Cluster,
        host: &KvmHost,
    ) -> Vec<(Ipv4Net, &'a KvmHost)> {
        self.residents(cluster)
            .into_iter()
            .filter(|r| r.host.name != host.name)
            .flat_map(|r| {
                let via = r.host;
                r.prefixes.into_iter().map(move |p| (p, via))
            })
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
            transit: Transit {
                vni: f.transit_vni,
                ifname: IfName::unchecked(format!("vx{}", f.transit_vni)),
            },
            cluster: self.name(),
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
