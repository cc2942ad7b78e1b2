//! Which KVM host runs which VM, and the spread rules that make the cloud
//! survive the loss of any one host.
//!
//! Placement is *recorded*: [`place`] fills [`Spec::placement`] for every VM
//! that has no host yet and never changes an entry that is there, so a saved
//! model file keeps its placements when a host or a VM is added (this is the
//! stability guarantee; `tests/placement.rs` checks it with proptest). The
//! greedy choice for a new VM is deterministic: VMs in declaration order,
//! each to the host that keeps its spread groups most even, then the least
//! loaded (memory share), then the first declared.
//!
//! With a single host nothing is recorded and no spread rule applies: the
//! single-host cloud renders exactly as before.

use crate::problem::{Element, Problem};
use crate::{Cluster, GiB, KvmHost, MiB, Name, Role, Spec, Vm};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A group of VMs that must survive the loss of any one host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SpreadGroup {
    /// The etcd members (role master): a quorum must survive.
    Etcd,
    /// The holders of one VIP: one must survive.
    VipHolders(Name),
    /// The VMs holding storage replicas (role storage, or a K3s node with a
    /// data disk, where Longhorn keeps replicas): one must survive.
    StorageReplicas,
}

impl fmt::Display for SpreadGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpreadGroup::Etcd => f.write_str("etcd members"),
            SpreadGroup::VipHolders(v) => write!(f, "holders of vip {v}"),
            SpreadGroup::StorageReplicas => f.write_str("storage replicas"),
        }
    }
}

/// A spread rule: at most `max_per_host` of `members` on any one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpreadRule {
    /// The group.
    pub group: SpreadGroup,
    /// Its members, in declaration order.
    pub members: Vec<Name>,
    /// How many may share a host so that losing one host leaves enough.
    pub max_per_host: usize,
}

impl SpreadRule {
    /// How many hosts the rule needs (`None`: no number of hosts suffices).
    pub fn hosts_needed(&self) -> Option<usize> {
        (self.max_per_host > 0).then(|| self.members.len().div_ceil(self.max_per_host))
    }

    /// What breaks the rule under `assignment` (VM → host), one line each.
    pub fn violations(&self, assignment: &BTreeMap<Name, Name>, hosts: usize) -> Vec<String> {
        let mut out = Vec::new();
        match self.hosts_needed() {
            None => out.push(format!(
                "cannot hold with {} member(s): losing the host of one leaves too few",
                self.members.len()
            )),
            Some(n) if n > hosts => out.push(format!(
                "needs {n} hosts for {} members at most {} per host, there are {hosts}",
                self.members.len(),
                self.max_per_host
            )),
            Some(_) => {}
        }
        let mut per_host: BTreeMap<&Name, Vec<&str>> = BTreeMap::new();
        for m in &self.members {
            if let Some(h) = assignment.get(m) {
                per_host.entry(h).or_default().push(m.as_str());
            }
        }
        for (host, vms) in per_host {
            if vms.len() > self.max_per_host {
                out.push(format!(
                    "host {host} has {} of them ({}), at most {} allowed",
                    vms.len(),
                    vms.join(", "),
                    self.max_per_host
                ));
            }
        }
        out
    }
}

impl fmt::Display for SpreadRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.members.len();
        let names: Vec<&str> = self.members.iter().map(Name::as_str).collect();
        write!(f, "{} ({}): ", self.group, names.join(", "))?;
        match self.group {
            SpreadGroup::Etcd => write!(
                f,
                "losing one host keeps quorum {} of {n}, so at most {} per host",
                n / 2 + 1,
                self.max_per_host
            ),
            _ => write!(
                f,
                "losing one host leaves one of {n}, so at most {} per host",
                self.max_per_host
            ),
        }
    }
}

/// The spread rules of `spec`: etcd, each VIP's holders, storage replicas.
pub fn spread_rules(spec: &Spec) -> Vec<SpreadRule> {
    let mut rules = Vec::new();
    let masters: Vec<Name> = spec
        .vms
        .iter()
        .filter(|v| v.has(Role::Master))
        .map(|v| v.name.clone())
        .collect();
    if !masters.is_empty() {
        let n = masters.len();
        rules.push(SpreadRule {
            group: SpreadGroup::Etcd,
            max_per_host: n - (n / 2 + 1),
            members: masters,
        });
    }
    for vip in &spec.vips {
        if !vip.holders.is_empty() {
            rules.push(SpreadRule {
                group: SpreadGroup::VipHolders(vip.name.clone()),
                max_per_host: vip.holders.len() - 1,
                members: vip.holders.clone(),
            });
        }
    }
    let storage: Vec<Name> = spec
        .vms
        .iter()
        .filter(|v| {
            v.has(Role::Storage)
                || (!v.data_disks.is_empty() && v.roles.iter().any(|r| r.is_k3s_node()))
        })
        .map(|v| v.name.clone())
        .collect();
    if !storage.is_empty() {
        rules.push(SpreadRule {
            group: SpreadGroup::StorageReplicas,
            max_per_host: storage.len() - 1,
            members: storage,
        });
    }
    rules
}

/// Every KVM host of `spec`: the first (`host`) then the others.
pub fn hosts(spec: &Spec) -> impl Iterator<Item = &KvmHost> + '_ {
    std::iter::once(&spec.host).chain(spec.extra_hosts.iter())
}

/// What the VMs on one host use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// vCPUs.
    pub vcpus: u64,
    /// Memory.
    pub memory: MiB,
    /// Disk (root disks at full size plus data disks).
    pub disk: GiB,
    /// Number of VMs.
    pub vms: usize,
}

impl Default for Load {
    fn default() -> Self {
        Load {
            vcpus: 0,
            memory: MiB(0),
            disk: GiB(0),
            vms: 0,
        }
    }
}

impl Load {
    fn add(&mut self, vm: &Vm) {
        self.vcpus += u64::from(vm.vcpus);
        self.memory.0 += vm.memory.0;
        self.disk.0 += vm_disk(vm).0;
        self.vms += 1;
    }

    fn fits(&self, vm: &Vm, host: &KvmHost) -> bool {
        host.capacity.is_none_or(|c| {
            self.vcpus + u64::from(vm.vcpus) <= c.usable_vcpus()
                && self.memory.0 + vm.memory.0 <= c.usable_memory().0
                && self.disk.0 + vm_disk(vm).0 <= c.disk.0
        })
    }

    /// Memory share in per-mille after adding `vm` (hosts without a declared
    /// capacity are scored as 64 GiB hosts; they are never reported full).
    fn share_after(&self, vm: &Vm, host: &KvmHost) -> u64 {
        let cap = host
            .capacity
            .map_or(MiB::gib(64).0, |c| c.usable_memory().0)
            .max(1);
        (self.memory.0 + vm.memory.0) * 1000 / cap
    }
}

fn vm_disk(vm: &Vm) -> GiB {
    GiB(vm.root_disk.0 + vm.data_disks.iter().map(|d| d.size.0).sum::<u64>())
}

/// The host of every VM: the recorded placements (also those naming hosts
/// that do not exist, for validation to report), and for the others the
/// deterministic greedy choice. With one host, every VM is on it.
pub fn assignments(spec: &Spec) -> BTreeMap<Name, Name> {
    let hosts: Vec<&KvmHost> = hosts(spec).collect();
    if hosts.len() == 1 {
        return spec
            .vms
            .iter()
            .map(|v| {
                let h = spec.placement.get(&v.name).unwrap_or(&spec.host.name);
                (v.name.clone(), h.clone())
            })
            .collect();
    }
    let rules = spread_rules(spec);
    let mut out: BTreeMap<Name, Name> = BTreeMap::new();
    let mut load: BTreeMap<&Name, Load> =
        hosts.iter().map(|h| (&h.name, Load::default())).collect();
    let mut in_group: Vec<BTreeMap<&Name, usize>> = vec![BTreeMap::new(); rules.len()];
    let groups_of = |vm: &Name| -> Vec<usize> {
        rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.members.contains(vm))
            .map(|(i, _)| i)
            .collect()
    };
    let pinned: BTreeSet<&Name> = spec.placement.keys().collect();
    for vm in spec.vms.iter().filter(|v| pinned.contains(&v.name)) {
        if let Some(h) = spec.placement.get(&vm.name) {
            if let Some(l) = load.get_mut(h) {
                l.add(vm);
            }
            for g in groups_of(&vm.name) {
                *in_group[g].entry(h).or_default() += 1;
            }
            out.insert(vm.name.clone(), h.clone());
        }
    }
    for vm in spec.vms.iter().filter(|v| !pinned.contains(&v.name)) {
        let groups = groups_of(&vm.name);
        let best = hosts
            .iter()
            .enumerate()
            .min_by_key(|(i, h)| {
                let l = load.get(&h.name).copied().unwrap_or_default();
                let fits = l.fits(vm, h);
                let counts: Vec<usize> = groups
                    .iter()
                    .map(|&g| in_group[g].get(&h.name).copied().unwrap_or(0))
                    .collect();
                let spread_ok = groups
                    .iter()
                    .zip(&counts)
                    .all(|(&g, &c)| c < rules[g].max_per_host);
                let tier = match (fits, spread_ok) {
                    (true, true) => 0,
                    (true, false) => 1,
                    (false, true) => 2,
                    (false, false) => 3,
                };
                (
                    tier,
                    counts.iter().sum::<usize>(),
                    l.share_after(vm, h),
                    l.vms,
                    *i,
                )
            })
            .map(|(_, h)| *h);
        if let Some(h) = best {
            if let Some(l) = load.get_mut(&h.name) {
                l.add(vm);
            }
            for g in groups {
                *in_group[g].entry(&h.name).or_default() += 1;
            }
            out.insert(vm.name.clone(), h.name.clone());
        }
    }
    out
}

/// Records a host for every VM that has none (more than one host only);
/// recorded placements are never changed.
pub fn place(spec: &mut Spec) {
    if spec.extra_hosts.is_empty() {
        return;
    }
    let all = assignments(spec);
    let vms: BTreeSet<&Name> = spec.vms.iter().map(|v| &v.name).collect();
    for (vm, host) in all {
        if vms.contains(&vm) {
            spec.placement.entry(vm).or_insert(host);
        }
    }
}

/// The placement problems of `spec`: placements naming a VM or host that
/// does not exist, capacity exceeded per host, spread rules that cannot hold.
pub(crate) fn problems(spec: &Spec) -> Vec<Problem> {
    let mut out = Vec::new();
    let host_names: BTreeSet<&Name> = hosts(spec).map(|h| &h.name).collect();
    let vm_names: BTreeSet<&Name> = spec.vms.iter().map(|v| &v.name).collect();
    for (vm, host) in &spec.placement {
        if !vm_names.contains(vm) {
            out.push(Problem::UnknownVm {
                element: Element::KvmHost(host.to_string()),
                vm: vm.to_string(),
            });
        }
        if !host_names.contains(host) {
            out.push(Problem::UnknownHost {
                element: Element::Vm(vm.to_string()),
                host: host.to_string(),
            });
        }
    }
    let assignment = assignments(spec);
    for host in hosts(spec) {
        let Some(cap) = host.capacity else { continue };
        let mut l = Load::default();
        for vm in spec
            .vms
            .iter()
            .filter(|v| assignment.get(&v.name) == Some(&host.name))
        {
            l.add(vm);
        }
        let el = Element::KvmHost(host.name.to_string());
        let over = |resource: &'static str, used: u64, available: u64, how: String| {
            (used > available).then(|| Problem::OverCapacity {
                element: el.clone(),
                resource,
                used,
                available,
                how,
            })
        };
        out.extend(over(
            "vCPUs",
            l.vcpus,
            cap.usable_vcpus(),
            format!("{} threads × {} %", cap.vcpus, cap.overcommit.vcpu_percent),
        ));
        out.extend(over(
            "memory MiB",
            l.memory.0,
            cap.usable_memory().0,
            format!("{} × {} %", cap.memory, cap.overcommit.memory_percent),
        ));
        out.extend(over(
            "disk GiB",
            l.disk.0,
            cap.disk.0,
            "never overcommitted".to_string(),
        ));
    }
    if host_names.len() > 1 {
        for rule in spread_rules(spec) {
            for why in rule.violations(&assignment, host_names.len()) {
                out.push(Problem::Spread {
                    rule: rule.group.to_string(),
                    why,
                });
            }
        }
    }
    out
}

/// One row of the placement table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostUsage<'a> {
    /// The host.
    pub host: &'a KvmHost,
    /// Its VMs, in declaration order.
    pub vms: Vec<&'a Vm>,
    /// What they use.
    pub load: Load,
}

impl fmt::Display for HostUsage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.vms.iter().map(|v| v.name.as_str()).collect();
        let (cpu, mem) = match self.host.capacity {
            Some(c) => (
                format!("{}/{}", self.load.vcpus, c.usable_vcpus()),
                format!("{}/{}", self.load.memory, c.usable_memory()),
            ),
            None => (
                format!("{}/-", self.load.vcpus),
                format!("{}/-", self.load.memory),
            ),
        };
        write!(
            f,
            "{:<8} {:<15} vCPU {:<7} memory {:<17} {}",
            self.host.name.as_str(),
            self.host.address,
            cpu,
            mem,
            names.join(" ")
        )
    }
}

impl Cluster {
    /// Every KVM host, the first one first.
    pub fn kvm_hosts(&self) -> Vec<&KvmHost> {
        hosts(self.spec()).collect()
    }

    /// Whether the cloud spans more than one KVM host.
    pub fn is_multi_host(&self) -> bool {
        !self.spec().extra_hosts.is_empty()
    }

    /// The host that runs `vm` (the first host when nothing is recorded).
    pub fn host_of(&self, vm: &Vm) -> &KvmHost {
        let spec = self.spec();
        spec.placement
            .get(&vm.name)
            .and_then(|h| hosts(spec).find(|k| &k.name == h))
            .unwrap_or(&spec.host)
    }

    /// The VMs on `host`, in declaration order.
    pub fn vms_on<'a>(&'a self, host: &'a KvmHost) -> impl Iterator<Item = &'a Vm> + 'a {
        self.vms()
            .iter()
            .filter(move |v| self.host_of(v).name == host.name)
    }

    /// The placement table: per host, its VMs and what they use.
    pub fn placement_table(&self) -> Vec<HostUsage<'_>> {
        self.kvm_hosts()
            .into_iter()
            .map(|host| {
                let vms: Vec<&Vm> = self.vms_on(host).collect();
                let mut load = Load::default();
                for vm in &vms {
                    load.add(vm);
                }
                HostUsage { host, vms, load }
            })
            .collect()
    }

    /// The spread rules (they are enforced only with more than one host).
    pub fn spread_rules(&self) -> Vec<SpreadRule> {
        spread_rules(self.spec())
    }
}
