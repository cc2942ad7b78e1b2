//! Every rule a cluster description must satisfy; all problems are collected.

use crate::addr::{contains, overlaps};
use crate::problem::{Element, Problem};
use crate::{Endpoint, MacAddr, Network, Proto, Role, Spec, VpnEndpoint};
use ipnet::Ipv4Net;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// Minimum root disk: the Flatcar QEMU image's virtual size is about 8.5 GiB.
pub const MIN_ROOT_DISK_GIB: u64 = 9;
/// Minimum memory per VM.
pub const MIN_MEMORY_MIB: u64 = 256;

/// Checks `spec` against every rule and returns all problems (empty if valid).
pub fn validate(spec: &Spec) -> Vec<Problem> {
    let mut v = Validator {
        spec,
        out: Vec::new(),
        addrs: BTreeMap::new(),
        nets: BTreeMap::new(),
    };
    v.networks();
    v.host();
    v.vms();
    v.vips();
    v.vpn();
    v.k3s_and_overlaps();
    v.flows();
    v.shares();
    v.admin();
    v.out
}

struct Validator<'a> {
    spec: &'a Spec,
    out: Vec<Problem>,
    addrs: BTreeMap<Ipv4Addr, Element>,
    nets: BTreeMap<&'a str, &'a Network>,
}

fn rule(element: Element, rule: impl Into<String>) -> Problem {
    Problem::Rule {
        element,
        rule: rule.into(),
    }
}

impl<'a> Validator<'a> {
    fn claim_addr(&mut self, address: Ipv4Addr, element: Element) {
        if let Some(first) = self.addrs.get(&address) {
            self.out.push(Problem::DuplicateAddress {
                address,
                first: first.clone(),
                second: element,
            });
        } else {
            self.addrs.insert(address, element);
        }
    }

    /// Address inside `net`, not its network/broadcast/gateway, not in DHCP.
    fn check_in_network(&mut self, element: &Element, address: Ipv4Addr, net: &Network) {
        let name = net.name.to_string();
        if !contains(net.cidr, address) {
            self.out.push(Problem::OutsideNetwork {
                element: element.clone(),
                address,
                network: name,
                cidr: net.cidr,
            });
            return;
        }
        let reserved = if net.cidr.prefix_len() < 31 && address == net.cidr.network() {
            Some("network")
        } else if net.cidr.prefix_len() < 31 && address == net.cidr.broadcast() {
            Some("broadcast")
        } else if address == net.gateway {
            Some("gateway")
        } else {
            None
        };
        if let Some(what) = reserved {
            self.out.push(Problem::ReservedAddress {
                element: element.clone(),
                address,
                what,
                network: name,
            });
            return;
        }
        if let Some(r) = net.dhcp.filter(|r| r.contains(address)) {
            self.out.push(Problem::InDhcpRange {
                element: element.clone(),
                address,
                range: r.to_string(),
                network: name,
            });
        }
    }

    fn networks(&mut self) {
        let mut bridges: BTreeMap<&str, Element> = BTreeMap::new();
        let mut lans = 0;
        for net in &self.spec.networks {
            let el = Element::Network(net.name.to_string());
            if let Some(first) = self.nets.get(net.name.as_str()) {
                self.out.push(Problem::DuplicateName {
                    name: net.name.to_string(),
                    first: Element::Network(first.name.to_string()),
                    second: el.clone(),
                });
                continue;
            }
            self.nets.insert(net.name.as_str(), net);
            if net.is_lan() {
                lans += 1;
                if lans > 1 {
                    self.out.push(rule(
                        el.clone(),
                        "a second LAN network; the model has one LAN per host",
                    ));
                }
            }
            if let Some(first) = bridges.get(net.bridge.as_str()) {
                self.out.push(rule(
                    el.clone(),
                    format!(
                        "bridge {:?} is already used by {first}",
                        net.bridge.as_str()
                    ),
                ));
            } else {
                bridges.insert(net.bridge.as_str(), el.clone());
            }
            if net.cidr.prefix_len() > 30 {
                self.out.push(rule(
                    el.clone(),
                    format!("subnet {} is too small for VMs (at most /30)", net.cidr),
                ));
            }
            if !contains(net.cidr, net.gateway)
                || net.gateway == net.cidr.network()
                || net.gateway == net.cidr.broadcast()
            {
                self.out.push(rule(
                    el.clone(),
                    format!(
                        "gateway {} is not a host address of {}",
                        net.gateway, net.cidr
                    ),
                ));
            }
            if let Some(r) = net.dhcp {
                if r.start > r.end {
                    self.out
                        .push(rule(el.clone(), format!("DHCP range {r} is reversed")));
                } else if !contains(net.cidr, r.start)
                    || !contains(net.cidr, r.end)
                    || r.start == net.cidr.network()
                    || r.end == net.cidr.broadcast()
                {
                    self.out.push(rule(
                        el.clone(),
                        format!(
                            "DHCP range {r} is not inside the host addresses of {}",
                            net.cidr
                        ),
                    ));
                } else if r.contains(net.gateway) {
                    self.out.push(rule(
                        el.clone(),
                        format!("DHCP range {r} contains the gateway {}", net.gateway),
                    ));
                }
            }
        }
    }

    fn host(&mut self) {
        let h = &self.spec.host;
        match self.nets.get(h.lan.as_str()).copied() {
            None => self.out.push(Problem::UnknownNetwork {
                element: Element::Host,
                network: h.lan.to_string(),
            }),
            Some(net) if !net.is_lan() => self.out.push(rule(
                Element::Host,
                format!("lan network {:?} is not of kind lan", h.lan.as_str()),
            )),
            Some(net) => {
                self.check_in_network(&Element::Host, h.address, net);
                if net.bridge.as_str() == h.uplink.as_str() {
                    self.out.push(rule(
                        Element::Host,
                        "uplink and LAN bridge are the same interface",
                    ));
                }
            }
        }
        self.claim_addr(h.address, Element::Host);
    }

    fn vms(&mut self) {
        let mut names: BTreeMap<&str, ()> = BTreeMap::new();
        let mut macs: BTreeMap<MacAddr, Element> = BTreeMap::new();
        let mut masters = 0;
        for vm in &self.spec.vms {
            let el = Element::Vm(vm.name.to_string());
            if names.insert(vm.name.as_str(), ()).is_some() {
                self.out.push(Problem::DuplicateName {
                    name: vm.name.to_string(),
                    first: el.clone(),
                    second: el.clone(),
                });
                continue;
            }
            if vm.has(Role::Master) {
                masters += 1;
            }
            if vm.vcpus == 0 || vm.vcpus > 512 {
                self.out.push(rule(
                    el.clone(),
                    format!("vcpus {} is not 1..=512", vm.vcpus),
                ));
            }
            if vm.memory.0 < MIN_MEMORY_MIB {
                self.out.push(rule(
                    el.clone(),
                    format!("memory {} is below {MIN_MEMORY_MIB} MiB", vm.memory),
                ));
            }
            if vm.root_disk.0 < MIN_ROOT_DISK_GIB {
                self.out.push(rule(
                    el.clone(),
                    format!("root disk {} is below {MIN_ROOT_DISK_GIB} GiB (the Flatcar image is ~8.5 GiB)", vm.root_disk),
                ));
            }
            let mut disks = BTreeSet::new();
            for d in &vm.data_disks {
                let del = Element::Disk {
                    vm: vm.name.to_string(),
                    disk: d.name.to_string(),
                };
                if !disks.insert(d.name.as_str()) {
                    self.out
                        .push(rule(del.clone(), "disk name used twice on this VM"));
                }
                if d.size.0 == 0 {
                    self.out.push(rule(del, "size is 0"));
                }
            }
            if vm.nics.is_empty() {
                self.out.push(Problem::NoNic {
                    element: el.clone(),
                });
            }
            let mut on = BTreeSet::new();
            for (index, nic) in vm.nics.iter().enumerate() {
                let nel = Element::Nic {
                    vm: vm.name.to_string(),
                    index,
                };
                match self.nets.get(nic.network.as_str()).copied() {
                    None => self.out.push(Problem::UnknownNetwork {
                        element: nel.clone(),
                        network: nic.network.to_string(),
                    }),
                    Some(net) => {
                        if !on.insert(nic.network.as_str()) {
                            self.out.push(Problem::SecondNicOnNetwork {
                                element: nel.clone(),
                                network: nic.network.to_string(),
                            });
                        }
                        self.check_in_network(&nel, nic.address, net);
                    }
                }
                self.claim_addr(nic.address, nel.clone());
                let mac = nic.mac.unwrap_or_else(|| {
                    MacAddr::derive(self.spec.name.as_str(), vm.name.as_str(), index)
                });
                if let Some(first) = macs.get(&mac) {
                    self.out.push(Problem::DuplicateMac {
                        mac: mac.to_string(),
                        first: first.clone(),
                        second: nel,
                    });
                } else {
                    macs.insert(mac, nel);
                }
            }
        }
        if masters > 0 && (masters < 3 || masters % 2 == 0) {
            self.out.push(Problem::EtcdCount { count: masters });
        }
    }

    fn vm_exists(&self, name: &str) -> Option<&'a crate::Vm> {
        self.spec.vms.iter().find(|v| v.name.as_str() == name)
    }

    fn vips(&mut self) {
        let mut names: BTreeSet<&str> = BTreeSet::new();
        let vm_names: BTreeSet<&str> = self.spec.vms.iter().map(|v| v.name.as_str()).collect();
        for vip in &self.spec.vips {
            let el = Element::Vip(vip.name.to_string());
            if !names.insert(vip.name.as_str()) {
                self.out.push(Problem::DuplicateName {
                    name: vip.name.to_string(),
                    first: el.clone(),
                    second: el.clone(),
                });
                continue;
            }
            if vm_names.contains(vip.name.as_str()) {
                self.out.push(Problem::DuplicateName {
                    name: vip.name.to_string(),
                    first: Element::Vm(vip.name.to_string()),
                    second: el.clone(),
                });
            }
            match self.nets.get(vip.network.as_str()).copied() {
                None => self.out.push(Problem::UnknownNetwork {
                    element: el.clone(),
                    network: vip.network.to_string(),
                }),
                Some(net) => self.check_in_network(&el, vip.address, net),
            }
            self.claim_addr(vip.address, el.clone());
            if vip.ports.is_empty() {
                self.out.push(rule(el.clone(), "has no ports"));
            }
            let mut ports = BTreeSet::new();
            for p in &vip.ports {
                if !ports.insert(p.port) {
                    self.out
                        .push(rule(el.clone(), format!("port {} is listed twice", p.port)));
                }
                if !self.spec.vms.iter().any(|v| v.has(p.role)) {
                    self.out.push(Problem::RoleWithoutVm {
                        element: el.clone(),
                        port: p.port.get(),
                        role: p.role,
                    });
                }
            }
            if vip.holders.is_empty() {
                self.out.push(rule(el.clone(), "has no holders"));
            }
            if vip.holders.len() > crate::vip::MAX_VIP_HOLDERS {
                self.out.push(rule(
                    el.clone(),
                    format!(
                        "has {} holders; at most {} fit distinct VRRP priorities",
                        vip.holders.len(),
                        crate::vip::MAX_VIP_HOLDERS
                    ),
                ));
            }
            let mut seen = BTreeSet::new();
            for h in &vip.holders {
                if !seen.insert(h.as_str()) {
                    self.out.push(Problem::BadHolder {
                        element: el.clone(),
                        vm: h.to_string(),
                        why: "is listed twice",
                    });
                    continue;
                }
                match self.vm_exists(h.as_str()) {
                    None => self.out.push(Problem::UnknownVm {
                        element: el.clone(),
                        vm: h.to_string(),
                    }),
                    Some(vm) => {
                        if !vm.has(Role::LoadBalancer) {
                            self.out.push(Problem::BadHolder {
                                element: el.clone(),
                                vm: h.to_string(),
                                why: "does not have role load-balancer",
                            });
                        }
                        if vm.address_on(vip.network.as_str()).is_none() {
                            self.out.push(Problem::BadHolder {
                                element: el.clone(),
                                vm: h.to_string(),
                                why: "has no NIC on the VIP's network",
                            });
                        }
                    }
                }
            }
        }
        let apps = self.spec.dns.apps.as_str();
        if vm_names.contains(apps) || names.contains(apps) {
            self.out.push(rule(
                Element::Dns,
                format!("apps label {apps:?} is also a VM or VIP name"),
            ));
        }
    }

    fn vpn(&mut self) {
        let Some(vpn) = &self.spec.vpn else { return };
        if let VpnEndpoint::Vm(n) = &vpn.endpoint {
            if self.vm_exists(n.as_str()).is_none() {
                self.out.push(Problem::UnknownVm {
                    element: Element::Vpn,
                    vm: n.to_string(),
                });
            }
        }
        let subnet = vpn.subnet;
        let check = |addr: Ipv4Addr| {
            contains(subnet, addr)
                && (subnet.prefix_len() >= 31
                    || (addr != subnet.network() && addr != subnet.broadcast()))
        };
        if !check(vpn.address) {
            self.out.push(rule(
                Element::Vpn,
                format!("address {} is not a host address of {subnet}", vpn.address),
            ));
        }
        self.claim_addr(vpn.address, Element::Vpn);
        let mut names = BTreeSet::new();
        for p in &vpn.peers {
            let el = Element::VpnPeer(p.name.to_string());
            if !names.insert(p.name.as_str()) {
                self.out.push(Problem::DuplicateName {
                    name: p.name.to_string(),
                    first: el.clone(),
                    second: el.clone(),
                });
            }
            if !check(p.address) {
                self.out.push(rule(
                    el.clone(),
                    format!("address {} is not a host address of {subnet}", p.address),
                ));
            }
            self.claim_addr(p.address, el);
        }
    }

    fn k3s_and_overlaps(&mut self) {
        let k = &self.spec.k3s;
        let mut ranges: Vec<(Element, Ipv4Net)> = self
            .spec
            .networks
            .iter()
            .map(|n| (Element::Network(n.name.to_string()), n.cidr))
            .collect();
        if let Some(vpn) = &self.spec.vpn {
            ranges.push((Element::Vpn, vpn.subnet));
        }
        let has_k3s = self
            .spec
            .vms
            .iter()
            .any(|v| v.roles.iter().any(|r| r.is_k3s_node()));
        if has_k3s {
            ranges.push((Element::K3s("cluster_cidr"), k.cluster_cidr));
            ranges.push((Element::K3s("service_cidr"), k.service_cidr));
        }
        // Sort by start address so each range is compared only with the
        // ranges that can overlap it: O(n log n) instead of O(n²).
        ranges.sort_by_key(|(_, c)| (c.network(), c.prefix_len()));
        let mut open: Vec<(Element, Ipv4Net)> = Vec::new();
        for (el, cidr) in ranges {
            open.retain(|(_, o)| o.broadcast() >= cidr.network());
            for (oel, o) in &open {
                if overlaps(*o, cidr) && *oel != el {
                    self.out.push(Problem::Overlap {
                        first: oel.clone(),
                        first_cidr: *o,
                        second: el.clone(),
                        second_cidr: cidr,
                    });
                }
            }
            open.push((el, cidr));
        }
        if k.ingress.web == k.ingress.websecure {
            self.out.push(rule(
                Element::K3s("ingress"),
                "web and websecure use the same port",
            ));
        }
        if k.etcd_snapshots.retention == 0 {
            self.out.push(rule(
                Element::K3s("etcd_snapshots"),
                "retention 0 keeps no snapshot",
            ));
        }
    }

    fn endpoint(&mut self, element: &Element, e: &Endpoint) {
        match e {
            Endpoint::Network(n) if !self.nets.contains_key(n.as_str()) => {
                self.out.push(Problem::UnknownNetwork {
                    element: element.clone(),
                    network: n.to_string(),
                })
            }
            Endpoint::Vm(n) if self.vm_exists(n.as_str()).is_none() => {
                self.out.push(Problem::UnknownVm {
                    element: element.clone(),
                    vm: n.to_string(),
                })
            }
            Endpoint::Vip(n) if !self.spec.vips.iter().any(|v| v.name == *n) => {
                self.out.push(Problem::UnknownVip {
                    element: element.clone(),
                    vip: n.to_string(),
                })
            }
            Endpoint::Vpn if self.spec.vpn.is_none() => self.out.push(rule(
                element.clone(),
                "refers to the VPN, but there is none",
            )),
            _ => {}
        }
    }

    fn flows(&mut self) {
        for (i, f) in self.spec.flows.iter().enumerate() {
            let el = Element::Flow(i);
            self.endpoint(&el, &f.from);
            self.endpoint(&el, &f.to);
            if matches!(f.proto, Proto::Icmp | Proto::Any) && !f.ports.is_empty() {
                self.out.push(rule(
                    el.clone(),
                    format!("{} has no ports, but ports are given", f.proto),
                ));
            }
            if f.from == f.to {
                self.out
                    .push(rule(el, "source and destination are the same"));
            }
        }
    }

    fn shares(&mut self) {
        let mut names = BTreeSet::new();
        for s in &self.spec.shares {
            let el = Element::Share(s.name.to_string());
            if !names.insert(s.name.as_str()) {
                self.out.push(Problem::DuplicateName {
                    name: s.name.to_string(),
                    first: el.clone(),
                    second: el.clone(),
                });
            }
            for c in &s.clients {
                self.endpoint(&el, c);
            }
        }
        if !self.spec.shares.is_empty() && !self.spec.vms.iter().any(|v| v.has(Role::Storage)) {
            self.out.push(rule(
                Element::Cluster,
                "NFS shares are declared, but no VM has role storage",
            ));
        }
    }

    fn admin(&mut self) {
        if self.spec.admin.user.as_str() == "root" {
            self.out
                .push(rule(Element::Admin, "the admin user must not be root"));
        }
    }
}
