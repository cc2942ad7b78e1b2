//! Validation problems: each names the element and the rule it breaks.

use crate::text::shown;
use crate::{NameError, Role};
use ipnet::Ipv4Net;
use std::fmt;
use std::net::Ipv4Addr;

/// A part of the model a problem is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Element {
    /// The cluster itself.
    Cluster,
    /// The KVM host.
    Host,
    /// A network.
    Network(String),
    /// A VM.
    Vm(String),
    /// NIC `index` of a VM.
    Nic {
        /// VM name.
        vm: String,
        /// NIC index.
        index: usize,
    },
    /// A data disk of a VM.
    Disk {
        /// VM name.
        vm: String,
        /// Disk name.
        disk: String,
    },
    /// A VIP.
    Vip(String),
    /// A flow, by position.
    Flow(usize),
    /// The VPN.
    Vpn,
    /// A VPN peer.
    VpnPeer(String),
    /// A K3s setting.
    K3s(&'static str),
    /// An NFS share.
    Share(String),
    /// The DNS settings.
    Dns,
    /// The admin settings.
    Admin,
    /// Entry `index` of a list of the document (`vms[3]`): names one of two
    /// entries that share a name.
    Entry {
        /// The list (`vms`, `vips`, `networks`, `vpn.peers`, `shares`).
        list: &'static str,
        /// Position in the list.
        index: usize,
    },
    /// The LAN router (its port forwards).
    Router,
    /// A KVM host, by name (multi-host clouds).
    KvmHost(String),
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names are printed with `shown`: quoted, escaped and shortened, so
        // a newline, quote or terminal escape in an invalid name is never
        // emitted raw and a huge one is not echoed whole.
        match self {
            Element::Cluster => f.write_str("cluster"),
            Element::Host => f.write_str("host"),
            Element::Network(n) => write!(f, "network {}", shown(n)),
            Element::Vm(n) => write!(f, "vm {}", shown(n)),
            Element::Nic { vm, index } => write!(f, "vm {} nic {index}", shown(vm)),
            Element::Disk { vm, disk } => write!(f, "vm {} disk {}", shown(vm), shown(disk)),
            Element::Vip(n) => write!(f, "vip {}", shown(n)),
            Element::Flow(i) => write!(f, "flow #{i}"),
            Element::Vpn => f.write_str("vpn"),
            Element::VpnPeer(n) => write!(f, "vpn peer {}", shown(n)),
            Element::K3s(field) => write!(f, "k3s {field}"),
            Element::Share(n) => write!(f, "share {}", shown(n)),
            Element::Dns => f.write_str("dns"),
            Element::Admin => f.write_str("admin"),
            Element::Entry { list, index } => write!(f, "{list}[{index}]"),
            Element::Router => f.write_str("lan router"),
            Element::KvmHost(n) => write!(f, "kvm host {n:?}"),
        }
    }
}

/// One broken rule. `Display` is one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A name is not valid as a hostname / libvirt name.
    #[error("{element}: name {} {reason}", shown(.name))]
    InvalidName {
        /// Where.
        element: Element,
        /// The rejected text.
        name: String,
        /// Why.
        reason: NameError,
    },
    /// A value given to the builder is not valid.
    #[error("{element}: {field} {}", crate::text::clean(.reason, 400))]
    InvalidValue {
        /// Where.
        element: Element,
        /// Which field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// Two elements of the same kind share a name.
    #[error("{second}: name {} is already used by {first}", shown(.name))]
    DuplicateName {
        /// The name.
        name: String,
        /// The first user.
        first: Element,
        /// The second user.
        second: Element,
    },
    /// Two elements share an address.
    #[error("{second}: address {address} is already used by {first}")]
    DuplicateAddress {
        /// The address.
        address: Ipv4Addr,
        /// The first user.
        first: Element,
        /// The second user.
        second: Element,
    },
    /// Two NICs share a MAC.
    #[error("{second}: MAC {mac} is already used by {first}")]
    DuplicateMac {
        /// The MAC.
        mac: String,
        /// The first user.
        first: Element,
        /// The second user.
        second: Element,
    },
    /// An address lies outside its network.
    #[error("{element}: address {address} is outside network {} ({cidr})", shown(.network))]
    OutsideNetwork {
        /// Where.
        element: Element,
        /// The address.
        address: Ipv4Addr,
        /// Network name.
        network: String,
        /// Its subnet.
        cidr: Ipv4Net,
    },
    /// An address is the network's network, broadcast or gateway address.
    #[error("{element}: address {address} is the {what} address of network {}", shown(.network))]
    ReservedAddress {
        /// Where.
        element: Element,
        /// The address.
        address: Ipv4Addr,
        /// `network`, `broadcast` or `gateway`.
        what: &'static str,
        /// Network name.
        network: String,
    },
    /// A static address lies inside a DHCP range.
    #[error(
        "{element}: address {address} is inside the DHCP range {range} of network {}", shown(.network)
    )]
    InDhcpRange {
        /// Where.
        element: Element,
        /// The address.
        address: Ipv4Addr,
        /// The range.
        range: String,
        /// Network name.
        network: String,
    },
    /// A reference to a network that does not exist.
    #[error("{element}: network {} does not exist", shown(.network))]
    UnknownNetwork {
        /// Where.
        element: Element,
        /// The missing name.
        network: String,
    },
    /// A reference to a VM that does not exist.
    #[error("{element}: vm {} does not exist", shown(.vm))]
    UnknownVm {
        /// Where.
        element: Element,
        /// The missing name.
        vm: String,
    },
    /// A reference to a VIP that does not exist.
    #[error("{element}: vip {} does not exist", shown(.vip))]
    UnknownVip {
        /// Where.
        element: Element,
        /// The missing name.
        vip: String,
    },
    /// A VM has no NIC.
    #[error("{element}: has no NIC")]
    NoNic {
        /// The VM.
        element: Element,
    },
    /// A VM has two NICs on one network.
    #[error("{element}: second NIC on network {}", shown(.network))]
    SecondNicOnNetwork {
        /// The NIC.
        element: Element,
        /// Network name.
        network: String,
    },
    /// Two address ranges overlap.
    #[error("{second} ({second_cidr}) overlaps {first} ({first_cidr})")]
    Overlap {
        /// One.
        first: Element,
        /// Its range.
        first_cidr: Ipv4Net,
        /// The other.
        second: Element,
        /// Its range.
        second_cidr: Ipv4Net,
    },
    /// etcd needs an odd number of servers, at least 3.
    #[error(
        "cluster: {count} VMs have role master (etcd servers); need an odd number, at least 3"
    )]
    EtcdCount {
        /// How many masters there are.
        count: usize,
    },
    /// A VIP port is served by a role no VM has.
    #[error("{element}: port {port} is served by role {role}, but no VM has that role")]
    RoleWithoutVm {
        /// The VIP.
        element: Element,
        /// The port.
        port: u16,
        /// The role.
        role: Role,
    },
    /// A VIP holder is not a load balancer on the VIP's network.
    #[error("{element}: holder {} {why}", shown(.vm))]
    BadHolder {
        /// The VIP.
        element: Element,
        /// The holder.
        vm: String,
        /// Why.
        why: &'static str,
    },
    /// A first-boot need that no earlier step meets: a cycle, a VM that
    /// depends on itself, or a need nothing provides (see [`crate::bringup`]).
    #[error("vm {vm:?}: {daemon} needs {need} at first boot, {why}")]
    BringUp {
        /// The VM whose daemon cannot start.
        vm: String,
        /// The daemon.
        daemon: crate::bringup::Daemon,
        /// The unmet need.
        need: crate::bringup::Need,
        /// Why, naming the provider it waits for.
        why: String,
    },
    /// A placement names a KVM host that does not exist.
    #[error("{element}: kvm host {host:?} does not exist")]
    UnknownHost {
        /// The VM placed there.
        element: Element,
        /// The missing host.
        host: String,
    },
    /// The VMs placed on a host need more than it offers.
    #[error("{element}: {resource} over capacity: the VMs need {used}, the host offers {available} ({how})")]
    OverCapacity {
        /// The host.
        element: Element,
        /// What runs out (`vCPUs`, `memory MiB`, `disk GiB`).
        resource: &'static str,
        /// What the VMs placed there need.
        used: u64,
        /// What the host offers, overcommit included.
        available: u64,
        /// How `available` is computed.
        how: String,
    },
    /// A spread rule does not hold.
    #[error("spread rule for {rule}: {why}")]
    Spread {
        /// The group (`etcd members`, `holders of vip api`, …).
        rule: String,
        /// Why it does not hold.
        why: String,
    },
    /// Some rule about a single element.
    #[error("{element}: {}", crate::text::clean(.rule, 400))]
    Rule {
        /// Where.
        element: Element,
        /// The rule broken.
        rule: String,
    },
}

/// Every problem found, in a stable order. `Display` prints one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} problem(s) in the cluster description:", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

impl Problems {
    /// Whether some problem matches `pred`.
    pub fn any(&self, pred: impl Fn(&Problem) -> bool) -> bool {
        self.0.iter().any(pred)
    }
}
