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
/// Maximum memory per VM: 16 TiB (QEMU/KVM's practical ceiling; any more
/// would not fit in the bytes and KiB that libvirt and Terraform count in).
pub const MAX_MEMORY_MIB: u64 = 16 * 1024 * 1024;
/// Maximum disk size: 64 TiB (qcow2's limit with default clusters; also
/// keeps the size in bytes far from `u64` overflow).
pub const MAX_DISK_GIB: u64 = 64 * 1024;
/// Kubernetes' default NodePort range, which Traefik's entry points use.
pub const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;
/// Keepalived's largest `preempt_delay` (seconds).
pub const MAX_PREEMPT_DELAY_SECS: u16 = 1000;
/// CoreDNS's `forward` plugin accepts at most this many upstreams.
pub const MAX_FORWARDERS: usize = 15;

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
    v.dns_names();
    v.volumes();
    v.interfaces();
    v.router();
    v.extra_hosts();
    for p in spec.failover.problems() {
        v.out.push(rule(Element::Cluster, p));
    }
    v.out.extend(crate::placement::problems(spec));
    v.out.extend(crate::fabric::problems(spec));
    for (group, a, b) in crate::reboot::conflicts(spec) {
        v.out.push(rule(
            Element::Vm(b.clone()),
            format!("reboots in the same window as {a:?}, both in failure group {group} (more members than the {} weekly windows)", crate::reboot::WINDOWS),
        ));
    }
    // The bring-up graph only means something for an otherwise sound model.
    if v.out.is_empty() {
        if let Err(blocked) = crate::bringup::plan(spec) {
            v.out.extend(blocked.into_iter().map(|b| Problem::BringUp {
                vm: b.vm.to_string(),
                daemon: b.daemon,
                need: b.need,
                why: b.why,
            }));
        }
    }
    v.out
}

struct Validator<'a> {
    spec: &'a Spec,
    out: Vec<Problem>,
    addrs: BTreeMap<Ipv4Addr, Element>,
    nets: BTreeMap<&'a str, &'a Network>,
}

/// A subnet whose address has bits set outside its prefix (`10.17.3.1/24`):
/// tools disagree on what it means, so it is written only as `10.17.3.0/24`.
fn host_bits(out: &mut Vec<Problem>, element: &Element, what: &str, net: Ipv4Net) {
    if net.addr() != net.network() {
        out.push(rule(
            element.clone(),
            format!(
                "{what} {net} has host bits set; the subnet is {}",
                net.trunc()
            ),
        ));
    }
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
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (index, net) in self.spec.networks.iter().enumerate() {
            let el = Element::Network(net.name.to_string());
            if let Some(&first) = seen.get(net.name.as_str()) {
                self.out.push(Problem::DuplicateName {
                    name: net.name.to_string(),
                    first: Element::Entry {
                        list: "networks",
                        index: first,
                    },
                    second: Element::Entry {
                        list: "networks",
                        index,
                    },
                });
                continue;
            }
            seen.insert(net.name.as_str(), index);
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
            host_bits(&mut self.out, &el, "subnet", net.cidr);
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

    /// Further KVM hosts: unique names, addresses on the same LAN, unclaimed.
    fn extra_hosts(&mut self) {
        let mut names: BTreeSet<&str> = BTreeSet::new();
        names.insert(self.spec.host.name.as_str());
        for h in &self.spec.extra_hosts {
            let el = Element::KvmHost(h.name.to_string());
            if !names.insert(h.name.as_str()) {
                self.out.push(Problem::DuplicateName {
                    name: h.name.to_string(),
                    first: Element::Host,
                    second: el.clone(),
                });
            }
            if h.lan != self.spec.host.lan {
                self.out.push(rule(
                    el.clone(),
                    format!(
                        "is on LAN {:?}, the first host on {:?}; every host shares one LAN",
                        h.lan.as_str(),
                        self.spec.host.lan.as_str()
                    ),
                ));
            }
            if let Some(net) = self.nets.get(h.lan.as_str()).copied() {
                self.check_in_network(&el, h.address, net);
            }
            self.claim_addr(h.address, el);
        }
    }

    fn vms(&mut self) {
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        let mut macs: BTreeMap<MacAddr, Element> = BTreeMap::new();
        let mut masters = 0;
        for (index, vm) in self.spec.vms.iter().enumerate() {
            let el = Element::Vm(vm.name.to_string());
            if let Some(&first) = names.get(vm.name.as_str()) {
                self.out.push(Problem::DuplicateName {
                    name: vm.name.to_string(),
                    first: Element::Entry {
                        list: "vms",
                        index: first,
                    },
                    second: Element::Entry { list: "vms", index },
                });
                continue;
            }
            names.insert(vm.name.as_str(), index);
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
            if vm.memory.0 > MAX_MEMORY_MIB {
                self.out.push(rule(
                    el.clone(),
                    format!(
                        "memory {} MiB is above the maximum of {MAX_MEMORY_MIB} MiB (16 TiB)",
                        vm.memory.0
                    ),
                ));
            }
            if vm.root_disk.0 > MAX_DISK_GIB {
                self.out.push(rule(
                    el.clone(),
                    format!(
                        "root disk {} GiB is above the maximum of {MAX_DISK_GIB} GiB (64 TiB, the qcow2 limit)",
                        vm.root_disk.0
                    ),
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
                    self.out.push(rule(del.clone(), "size is 0"));
                }
                if d.size.0 > MAX_DISK_GIB {
                    self.out.push(rule(
                        del,
                        format!(
                            "size {} GiB is above the maximum of {MAX_DISK_GIB} GiB (64 TiB, the qcow2 limit)",
                            d.size.0
                        ),
                    ));
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
                if let Some(why) = nic.mac.and_then(|m| m.unusable()) {
                    self.out.push(rule(
                        nel.clone(),
                        format!(
                            "MAC {} is {why}; a NIC needs a unicast address",
                            nic.mac.map(|m| m.to_string()).unwrap_or_default()
                        ),
                    ));
                }
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
        let mut first_at: BTreeMap<&str, usize> = BTreeMap::new();
        let vm_names: BTreeSet<&str> = self.spec.vms.iter().map(|v| v.name.as_str()).collect();
        for (index, vip) in self.spec.vips.iter().enumerate() {
            let el = Element::Vip(vip.name.to_string());
            if !names.insert(vip.name.as_str()) {
                self.out.push(Problem::DuplicateName {
                    name: vip.name.to_string(),
                    first: Element::Entry {
                        list: "vips",
                        index: first_at.get(vip.name.as_str()).copied().unwrap_or(0),
                    },
                    second: Element::Entry {
                        list: "vips",
                        index,
                    },
                });
                continue;
            }
            first_at.insert(vip.name.as_str(), index);
            if let crate::Preempt::AfterSecs(d) = vip.preempt {
                if d > MAX_PREEMPT_DELAY_SECS {
                    self.out.push(rule(
                        el.clone(),
                        format!("preempt delay {d} s is above Keepalived's maximum of {MAX_PREEMPT_DELAY_SECS} s"),
                    ));
                }
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

    /// The LAN router's port forwards: each to a port of a VIP on a LAN,
    /// each public port once, and each opened to the internet by a flow
    /// (otherwise the host's bridge table drops what the router forwards).
    fn router(&mut self) {
        let Some(router) = &self.spec.router else {
            return;
        };
        let el = Element::Router;
        let mut public = BTreeSet::new();
        for f in &router.forwards {
            if !public.insert(f.public) {
                self.out.push(rule(
                    el.clone(),
                    format!("public port {} is forwarded twice", f.public),
                ));
            }
            let Some(vip) = self.spec.vips.iter().find(|v| v.name == f.vip) else {
                self.out.push(Problem::UnknownVip {
                    element: el.clone(),
                    vip: f.vip.to_string(),
                });
                continue;
            };
            if !self
                .nets
                .get(vip.network.as_str())
                .is_some_and(|n| n.is_lan())
            {
                self.out.push(rule(
                    el.clone(),
                    format!(
                        "forwards public port {} to vip {:?}, which is not on a LAN",
                        f.public,
                        vip.name.as_str()
                    ),
                ));
            }
            if !vip.ports.iter().any(|p| p.port == f.port) {
                self.out.push(rule(
                    el.clone(),
                    format!(
                        "forwards public port {} to port {} of vip {:?}, which it does not serve",
                        f.public,
                        f.port,
                        vip.name.as_str()
                    ),
                ));
            }
            let opened = self.spec.flows.iter().any(|fl| {
                fl.from == Endpoint::Internet
                    && fl.to == Endpoint::Vip(vip.name.clone())
                    && matches!(fl.proto, crate::Proto::Tcp | crate::Proto::Any)
                    && (fl.ports.is_empty() || fl.ports.iter().any(|r| r.contains(f.port)))
            });
            if !opened {
                self.out.push(rule(
                    el.clone(),
                    format!(
                        "forwards public port {} to vip {:?} port {}, but no flow opens it to the internet",
                        f.public,
                        vip.name.as_str(),
                        f.port
                    ),
                ));
            }
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
        host_bits(&mut self.out, &Element::Vpn, "subnet", subnet);
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
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        for (index, p) in vpn.peers.iter().enumerate() {
            let el = Element::VpnPeer(p.name.to_string());
            if let Some(&first) = names.get(p.name.as_str()) {
                self.out.push(Problem::DuplicateName {
                    name: p.name.to_string(),
                    first: Element::Entry {
                        list: "vpn.peers",
                        index: first,
                    },
                    second: Element::Entry {
                        list: "vpn.peers",
                        index,
                    },
                });
            } else {
                names.insert(p.name.as_str(), index);
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
        host_bits(
            &mut self.out,
            &Element::K3s("cluster_cidr"),
            "cluster CIDR",
            k.cluster_cidr,
        );
        host_bits(
            &mut self.out,
            &Element::K3s("service_cidr"),
            "service CIDR",
            k.service_cidr,
        );
        for (what, p) in [("web", k.ingress.web), ("websecure", k.ingress.websecure)] {
            if !NODE_PORTS.contains(&p.get()) {
                self.out.push(rule(
                    Element::K3s("ingress"),
                    format!(
                        "{what} port {p} is outside the NodePort range {}-{} that Traefik's service is exposed on",
                        NODE_PORTS.start(),
                        NODE_PORTS.end()
                    ),
                ));
            }
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
            Endpoint::Addr(a) if a.is_unspecified() || a.is_broadcast() || a.is_multicast() => {
                self.out.push(rule(
                    element.clone(),
                    format!("addr:{a} is not the address of one machine"),
                ))
            }
            Endpoint::Addr(a) => {
                let vm = self
                    .spec
                    .vms
                    .iter()
                    .find(|v| v.nics.iter().any(|n| n.address == *a))
                    .map(|v| format!("vm:{}", v.name));
                let vip = self
                    .spec
                    .vips
                    .iter()
                    .find(|v| v.address == *a)
                    .map(|v| format!("vip:{}", v.name));
                if let Some(named) = vm.or(vip) {
                    self.out.push(rule(
                        element.clone(),
                        format!("addr:{a} is {named}'s address: write {named}"),
                    ))
                }
            }
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
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        for (index, s) in self.spec.shares.iter().enumerate() {
            let el = Element::Share(s.name.to_string());
            if let Some(&first) = names.get(s.name.as_str()) {
                self.out.push(Problem::DuplicateName {
                    name: s.name.to_string(),
                    first: Element::Entry {
                        list: "shares",
                        index: first,
                    },
                    second: Element::Entry {
                        list: "shares",
                        index,
                    },
                });
            } else {
                names.insert(s.name.as_str(), index);
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
        if self.spec.admin.ssh_keys.is_empty() && !self.spec.vms.is_empty() {
            self.out.push(rule(
                Element::Admin,
                "no SSH key: nobody could log in to any VM (add one with ssh_key(\"ssh-ed25519 …\"); the example generates one into secrets/)",
            ));
        }
    }

    /// One name, one A record: the host, the VMs, the VIPs and the `api`
    /// alias of the API VIP share the zone, so no two may share a label.
    fn dns_names(&mut self) {
        if self.spec.dns.forwarders.len() > MAX_FORWARDERS {
            self.out.push(rule(
                Element::Dns,
                format!(
                    "{} forwarders; CoreDNS's forward plugin accepts at most {MAX_FORWARDERS}",
                    self.spec.dns.forwarders.len()
                ),
            ));
        }
        let mut labels: BTreeMap<&str, Element> = BTreeMap::new();
        let host = &self.spec.host.name;
        labels.insert(host.as_str(), Element::Host);
        for vm in &self.spec.vms {
            if labels.get(vm.name.as_str()) == Some(&Element::Host) {
                self.out.push(Problem::DuplicateName {
                    name: vm.name.to_string(),
                    first: Element::Host,
                    second: Element::Vm(vm.name.to_string()),
                });
            }
            labels
                .entry(vm.name.as_str())
                .or_insert_with(|| Element::Vm(vm.name.to_string()));
        }
        for vip in &self.spec.vips {
            // VM/VIP clashes are reported by `vips`.
            if labels.get(vip.name.as_str()) == Some(&Element::Host) {
                self.out.push(Problem::DuplicateName {
                    name: vip.name.to_string(),
                    first: Element::Host,
                    second: Element::Vip(vip.name.to_string()),
                });
            }
            labels
                .entry(vip.name.as_str())
                .or_insert_with(|| Element::Vip(vip.name.to_string()));
        }
        let api = self
            .spec
            .vips
            .iter()
            .find(|v| v.ports.iter().any(|p| p.role == Role::Master));
        if let Some(api) = api.filter(|v| v.name.as_str() != "api") {
            if let Some(first) = labels.get("api") {
                self.out.push(rule(
                    Element::Vip(api.name.to_string()),
                    format!("serves the K3s API, so it is also named \"api\" in DNS, which is already {first}"),
                ));
            }
        }
    }

    /// Every volume in the pool has its own name: `<vm>-root.qcow2` and
    /// `<vm>-<disk>.qcow2` must not collide (a disk named `root`, or
    /// `x-root` on VM `a` beside VM `a-x`).
    fn volumes(&mut self) {
        let mut vols: BTreeMap<String, Element> = BTreeMap::new();
        let base = self.spec.image.volume_name();
        for vm in &self.spec.vms {
            let mut own = vec![(
                format!("{}-root.qcow2", vm.name),
                Element::Vm(vm.name.to_string()),
            )];
            own.extend(vm.data_disks.iter().map(|d| {
                (
                    format!("{}-{}.qcow2", vm.name, d.name),
                    Element::Disk {
                        vm: vm.name.to_string(),
                        disk: d.name.to_string(),
                    },
                )
            }));
            for (vol, el) in own {
                if vol == base {
                    self.out.push(rule(
                        el.clone(),
                        format!("volume {vol} is the name of the OS base image"),
                    ));
                }
                match vols.get(&vol) {
                    Some(first) if *first != el => self.out.push(rule(
                        el,
                        format!("volume {vol} is also the volume of {first}"),
                    )),
                    Some(_) => {}
                    None => {
                        vols.insert(vol, el);
                    }
                }
            }
        }
    }

    /// Host interface names: every bridge, the uplink and the VPN interface
    /// (when the VPN ends on the host) are distinct devices.
    fn interfaces(&mut self) {
        fn claim<'s>(
            seen: &mut BTreeMap<&'s str, String>,
            out: &mut Vec<Problem>,
            el: Element,
            what: &str,
            name: &'s str,
        ) {
            match seen.get(name) {
                Some(first) => out.push(rule(el, format!("{what} {name:?} is also the {first}"))),
                None => {
                    seen.insert(name, format!("{what} of {el}"));
                }
            }
        }
        let mut seen: BTreeMap<&str, String> = BTreeMap::new();
        let h = &self.spec.host;
        claim(
            &mut seen,
            &mut self.out,
            Element::Host,
            "uplink",
            h.uplink.as_str(),
        );
        for net in &self.spec.networks {
            let el = Element::Network(net.name.to_string());
            // A second network with the same bridge is reported by `networks`.
            if seen
                .get(net.bridge.as_str())
                .is_some_and(|f| f.starts_with("bridge"))
            {
                continue;
            }
            // The LAN bridge equal to the uplink is reported by `host`.
            if net.name == h.lan && net.bridge.as_str() == h.uplink.as_str() {
                continue;
            }
            claim(&mut seen, &mut self.out, el, "bridge", net.bridge.as_str());
        }
        if let Some(vpn) = &self.spec.vpn {
            match &vpn.endpoint {
                VpnEndpoint::Host => claim(
                    &mut seen,
                    &mut self.out,
                    Element::Vpn,
                    "interface",
                    vpn.interface.as_str(),
                ),
                VpnEndpoint::Vm(_) => {
                    let i = vpn.interface.as_str();
                    if i.strip_prefix("eth")
                        .is_some_and(|n| n.parse::<u32>().is_ok())
                    {
                        self.out.push(rule(
                            Element::Vpn,
                            format!("interface {i:?} is the name of a NIC inside the endpoint VM (eth0, eth1, …)"),
                        ));
                    }
                }
            }
        }
    }
}
