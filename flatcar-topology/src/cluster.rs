//! The validated, immutable cluster and the queries service crates use.

use crate::problem::Problems;
use crate::validate::validate;
use crate::{
    BackendPort, DomainName, Endpoint, Flow, IfName, K3s, KvmHost, MacAddr, Name, Network, Port,
    Proto, Role, Spec, Vip, VipPort, Vm, Vpn,
};
use ipnet::Ipv4Net;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// A cluster description that passed every rule. Immutable: it is only
/// created by [`Cluster::try_from`] (or the builder's `build`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    spec: Spec,
    vm_index: BTreeMap<Name, usize>,
    net_index: BTreeMap<Name, usize>,
}

/// A NIC with everything derived: MAC, interface name, network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicView<'a> {
    /// Position on the VM (0 = primary, carries the default route).
    pub index: usize,
    /// The network.
    pub network: &'a Network,
    /// Static address.
    pub address: Ipv4Addr,
    /// Prefix length of the network.
    pub prefix: u8,
    /// Effective MAC (fixed or derived).
    pub mac: MacAddr,
    /// Interface name inside the VM (`eth0`, `eth1`, … pinned by MAC).
    pub ifname: IfName,
}

/// A backend of a VIP port: a VM, the address the load balancers reach it
/// at, and the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend<'a> {
    /// The VM.
    pub vm: &'a Vm,
    /// Its address as seen from the VIP holders.
    pub address: Ipv4Addr,
    /// Its port.
    pub port: Port,
}

impl TryFrom<Spec> for Cluster {
    type Error = Problems;
    fn try_from(mut spec: Spec) -> Result<Self, Problems> {
        crate::placement::place(&mut spec);
        crate::fabric::allocate(&mut spec);
        let problems = validate(&spec);
        if !problems.is_empty() {
            return Err(Problems(problems));
        }
        let vm_index = spec
            .vms
            .iter()
            .enumerate()
            .map(|(i, v)| (v.name.clone(), i))
            .collect();
        let net_index = spec
            .networks
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), i))
            .collect();
        Ok(Cluster {
            spec,
            vm_index,
            net_index,
        })
    }
}

impl Cluster {
    /// The underlying description.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Gives the description back (to edit and re-validate).
    pub fn into_spec(self) -> Spec {
        self.spec
    }

    /// Cluster name.
    pub fn name(&self) -> &Name {
        &self.spec.name
    }

    /// The KVM host.
    pub fn host(&self) -> &KvmHost {
        &self.spec.host
    }

    /// All networks, in declaration order.
    pub fn networks(&self) -> &[Network] {
        &self.spec.networks
    }

    /// A network by name.
    pub fn network(&self, name: &str) -> Option<&Network> {
        self.net_index
            .get(name)
            .and_then(|&i| self.spec.networks.get(i))
    }

    /// The LAN network (validation guarantees it exists).
    pub fn lan(&self) -> Option<&Network> {
        self.network(self.spec.host.lan.as_str())
    }

    /// All VMs, in declaration order.
    pub fn vms(&self) -> &[Vm] {
        &self.spec.vms
    }

    /// A VM by name.
    pub fn vm(&self, name: &str) -> Option<&Vm> {
        self.vm_index.get(name).and_then(|&i| self.spec.vms.get(i))
    }

    /// VMs with `role`, in declaration order.
    pub fn with_role(&self, role: Role) -> impl Iterator<Item = &Vm> + '_ {
        self.spec.vms.iter().filter(move |v| v.has(role))
    }

    /// All VIPs.
    pub fn vips(&self) -> &[Vip] {
        &self.spec.vips
    }

    /// A VIP by name.
    pub fn vip(&self, name: &str) -> Option<&Vip> {
        self.spec.vips.iter().find(|v| v.name.as_str() == name)
    }

    /// The first-boot bring-up order (validation has proved it exists).
    pub fn bring_up(&self) -> crate::bringup::BringUp {
        crate::bringup::plan(&self.spec).unwrap_or_default()
    }

    /// The resolvers of `vm` in `DNS=` order (see [`crate::bringup::resolvers`]).
    pub fn resolvers(&self, vm: &Vm) -> Vec<crate::bringup::Resolver> {
        crate::bringup::resolvers(&self.spec, vm)
    }

    /// The time sources of `vm` in order (see [`crate::bringup::time_sources`]).
    pub fn time_sources(&self, vm: &Vm) -> Vec<crate::bringup::TimeSource> {
        crate::bringup::time_sources(&self.spec, vm)
    }

    /// The VIP that serves the K3s API (a port served by role master), if any.
    pub fn api_vip(&self) -> Option<&Vip> {
        self.spec
            .vips
            .iter()
            .find(|v| v.ports.iter().any(|p| p.role == Role::Master))
    }

    /// The VIP that serves ingress traffic (a port whose backend is an ingress entry point).
    pub fn web_vip(&self) -> Option<&Vip> {
        self.spec.vips.iter().find(|v| {
            v.ports.iter().any(|p| {
                matches!(
                    p.backend,
                    BackendPort::IngressWeb | BackendPort::IngressWebsecure
                )
            })
        })
    }

    /// VIPs that `vm` holds, with its priority rank (0 = preferred holder).
    pub fn vips_held_by<'a>(&'a self, vm: &'a Vm) -> impl Iterator<Item = (&'a Vip, usize)> + 'a {
        self.spec.vips.iter().filter_map(move |vip| {
            vip.holders
                .iter()
                .position(|h| *h == vm.name)
                .map(|rank| (vip, rank))
        })
    }

    /// K3s settings.
    pub fn k3s(&self) -> &K3s {
        &self.spec.k3s
    }

    /// Mirror and overrides for downloaded artifacts.
    pub fn artifacts(&self) -> &crate::artifact::ArtifactSettings {
        &self.spec.artifacts
    }

    /// `pinned` as this cluster fetches it (override, else through the mirror).
    pub fn artifact(&self, pinned: &crate::artifact::Artifact) -> crate::artifact::Artifact {
        pinned.resolve(&self.spec.artifacts)
    }

    /// The VPN, if any.
    pub fn vpn(&self) -> Option<&Vpn> {
        self.spec.vpn.as_ref()
    }

    /// The LAN router's port forwards, if the model has any.
    pub fn router(&self) -> Option<&crate::LanRouter> {
        self.spec.router.as_ref()
    }

    /// The DNS domain.
    pub fn domain(&self) -> &DomainName {
        &self.spec.dns.domain
    }

    /// `name.<domain>`.
    pub fn fqdn(&self, name: &Name) -> DomainName {
        self.spec.dns.domain.child(name)
    }

    /// The NICs of `vm` with derived MAC and interface name.
    pub fn nics<'a>(&'a self, vm: &'a Vm) -> Vec<NicView<'a>> {
        vm.nics
            .iter()
            .enumerate()
            .filter_map(|(index, nic)| {
                let network = self.network(nic.network.as_str())?;
                Some(NicView {
                    index,
                    network,
                    address: nic.address,
                    prefix: network.cidr.prefix_len(),
                    mac: nic.mac.unwrap_or_else(|| {
                        MacAddr::derive(self.spec.name.as_str(), vm.name.as_str(), index)
                    }),
                    ifname: IfName::unchecked(format!("eth{index}")),
                })
            })
            .collect()
    }

    /// The port backends of `port` listen on (ingress ports resolved from the K3s settings).
    pub fn backend_port(&self, port: &VipPort) -> Port {
        match port.backend {
            BackendPort::Port(p) => p,
            BackendPort::IngressWeb => self.spec.k3s.ingress.web,
            BackendPort::IngressWebsecure => self.spec.k3s.ingress.websecure,
        }
    }

    /// The backends of one VIP port: every VM with the serving role, at its
    /// address on a network the VIP's first holder shares (else its primary
    /// address), on the resolved backend port.
    pub fn backends<'a>(&'a self, vip: &'a Vip, port: &'a VipPort) -> Vec<Backend<'a>> {
        let holder = vip.holders.first().and_then(|h| self.vm(h.as_str()));
        let bport = self.backend_port(port);
        self.with_role(port.role)
            .filter_map(|vm| {
                let shared = holder.and_then(|h| {
                    vm.nics
                        .iter()
                        .find(|n| h.address_on(n.network.as_str()).is_some())
                        .map(|n| n.address)
                });
                let address = shared.or_else(|| vm.primary_address())?;
                Some(Backend {
                    vm,
                    address,
                    port: bport,
                })
            })
            .collect()
    }

    /// Primary addresses of the VMs with `role` (e.g. DNS or NTP servers).
    pub fn role_addresses(&self, role: Role) -> Vec<Ipv4Addr> {
        self.with_role(role)
            .filter_map(|v| v.primary_address())
            .collect()
    }

    /// Declared flows plus the flows the VIPs imply (each holder to each
    /// backend port), deduplicated and sorted.
    pub fn flows(&self) -> Vec<Flow> {
        let mut out: Vec<Flow> = self.spec.flows.clone();
        for vip in &self.spec.vips {
            for port in &vip.ports {
                out.push(Flow {
                    from: Endpoint::Role(Role::LoadBalancer),
                    to: Endpoint::Role(port.role),
                    proto: Proto::Tcp,
                    ports: vec![self.backend_port(port).into()],
                    why: Some(vip.name.clone()),
                });
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// The address ranges an endpoint stands for. `Internet` is everything
    /// not covered by the LAN, the VPN and the networks, so it maps to `None`.
    pub fn endpoint_nets(&self, e: &Endpoint) -> Option<Vec<Ipv4Net>> {
        let host32 = |a: Ipv4Addr| Ipv4Net::new(a, 32).ok();
        Some(match e {
            Endpoint::Internet => return None,
            Endpoint::Addr(a) => host32(*a).into_iter().collect(),
            Endpoint::Lan => self.lan().map(|n| n.cidr).into_iter().collect(),
            Endpoint::Vpn => self.vpn().map(|v| v.subnet).into_iter().collect(),
            Endpoint::Host => {
                let mut v: Vec<Ipv4Net> = host32(self.spec.host.address).into_iter().collect();
                v.extend(
                    self.spec
                        .networks
                        .iter()
                        .filter(|n| !n.is_lan())
                        .filter_map(|n| host32(n.gateway)),
                );
                v
            }
            Endpoint::Network(n) => self
                .network(n.as_str())
                .map(|n| n.cidr)
                .into_iter()
                .collect(),
            Endpoint::Role(r) => self
                .with_role(*r)
                .flat_map(|vm| vm.nics.iter().filter_map(|n| host32(n.address)))
                .collect(),
            Endpoint::Vm(n) => self
                .vm(n.as_str())
                .map(|vm| vm.nics.iter().filter_map(|n| host32(n.address)).collect())
                .unwrap_or_default(),
            Endpoint::Vip(n) => self
                .vip(n.as_str())
                .and_then(|v| host32(v.address))
                .into_iter()
                .collect(),
        })
    }
}
