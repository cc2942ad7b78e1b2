//! A rolling plan: the ordered steps that take a running cloud from one
//! model to the next, one failure domain at a time. Pure planning: the
//! steps are values; running them (libvirt, SSH, `kubectl`) is the
//! caller's.
//!
//! [`plan`] orders the work as
//! 1. the KVM host's part when it changed (the firewall admits the flows of
//!    new VMs before they boot; when VMs only leave, it goes last instead);
//! 2. new VMs are created one at a time (load balancers, DNS/NTP,
//!    databases, masters, storage, workers), each waited for until it is
//!    ready (a K3s node until it joined);
//! 3. live changes are pushed to running VMs one at a time (files, then
//!    their reloads: HAProxy, Keepalived and `exportfs` reload without
//!    dropping service);
//! 4. replacements run one VM at a time, in the same role order (so a K3s
//!    upgrade does servers before agents): a VIP holder first hands its VIPs
//!    over to another holder (and the plan waits until that one holds them),
//!    a K3s node is cordoned and drained, the VM is replaced, and the next
//!    one starts only after it is ready again (and uncordoned);
//! 5. VMs leaving the model are removed one at a time, after the pushes
//!    that took them out of the load balancers, DNS and exports; a K3s node
//!    is cordoned and drained first.
//!
//! Because at most one VM is ever down (between its drain or replace and its
//! ready), no two etcd members, VIP holders or storage replicas are down
//! together; [`check`] proves it for any plan by walking its steps. A
//! failure group with one member (a single DNS server) cannot avoid an
//! outage: [`Rollout::outages`] names it.
//!
//! ```
//! use flatcar_topology::{net4, Cluster, HostBuilder, Role};
//! use flatcar_topology::change::{ReplaceReason, VmChange};
//! use flatcar_topology::rollout::{check, plan, Step};
//! let mut c = Cluster::builder("demo", HostBuilder::new("kvm1"));
//! let lan = c.lan("lan", net4!("198.18.0.0/24"), |n| n.host_at(40));
//! let lb1 = c.vm("lb1", |v| v.role(Role::LoadBalancer).nic(&lan, 11));
//! let lb2 = c.vm("lb2", |v| v.role(Role::LoadBalancer).nic(&lan, 12));
//! c.vm("w1", |v| v.role(Role::Worker).nic(&lan, 21));
//! c.vip("web", &lan, 14, |v| v.tcp(80, Role::Worker, 80).holders([&lb1, &lb2]));
//! c.dns("demo.home.arpa", &[std::net::Ipv4Addr::new(198, 18, 250, 53)]);
//! c.ssh_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJNBE0yGR9doLSjjPtPCkgpn6fWfiNVJ44xnctKvgyUU admin");
//! let spec = c.build().expect("valid").into_spec();
//! let replace = || VmChange::Replace { reasons: vec![ReplaceReason::Nics] };
//! let changes = [("lb1".to_string(), replace()), ("lb2".to_string(), replace())].into();
//! let r = plan(&spec, &spec, &changes, false);
//! assert!(check(&spec, &spec, &changes, &r).is_empty());
//! // lb1 hands the VIPs to lb2 before it goes, and the other way round.
//! assert!(r.steps.iter().any(|s| matches!(s, Step::HandOver { from, to, .. } if from == "lb1" && to == "lb2")));
//! ```

use crate::change::{Reload, ReplaceReason, VmChange};
use crate::{Name, Role, Spec, Vm};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One step of a rolling plan.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Apply the KVM host's part (nftables in one transaction, WireGuard).
    Host,
    /// Define a new VM, place its Ignition config, start it.
    Create {
        /// The VM.
        vm: String,
    },
    /// Wait until the VM is ready: Ignition succeeded, its services run, and
    /// a K3s node has (re)joined and is `Ready`.
    WaitReady {
        /// The VM.
        vm: String,
    },
    /// `kubectl cordon`: no new pods.
    Cordon {
        /// The node.
        vm: String,
    },
    /// `kubectl drain --ignore-daemonsets --delete-emptydir-data`, waiting
    /// until its pods run elsewhere (Longhorn replicas rebuilt).
    Drain {
        /// The node.
        vm: String,
    },
    /// `kubectl uncordon`.
    Uncordon {
        /// The node.
        vm: String,
    },
    /// Copy changed files to a running VM, then run their reloads.
    Push {
        /// The VM.
        vm: String,
        /// Paths on the VM.
        files: Vec<String>,
        /// Reloads, in order.
        reloads: Vec<Reload>,
    },
    /// Move the VIPs `from` holds to `to` (stop Keepalived on `from`) and
    /// wait until `to` holds every one of them.
    HandOver {
        /// The VM about to go.
        from: String,
        /// The holder that takes over.
        to: String,
        /// The VIPs.
        vips: Vec<String>,
    },
    /// Stop the VM, give it a fresh root overlay and its new Ignition
    /// config (and definition), start it.
    Replace {
        /// The VM.
        vm: String,
        /// Why.
        reasons: Vec<ReplaceReason>,
    },
    /// Stop and undefine a VM that left the model, with its volumes.
    Remove {
        /// The VM.
        vm: String,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Host => f.write_str("host      apply the host part (nftables, WireGuard)"),
            Step::Create { vm } => write!(f, "create    {vm}"),
            Step::WaitReady { vm } => write!(f, "wait      {vm} ready"),
            Step::Cordon { vm } => write!(f, "cordon    {vm}"),
            Step::Drain { vm } => write!(f, "drain     {vm}"),
            Step::Uncordon { vm } => write!(f, "uncordon  {vm}"),
            Step::Push { vm, files, reloads } => {
                let r: Vec<&str> = reloads.iter().map(|r| r.command()).collect();
                write!(f, "push      {vm}: {}; {}", files.join(", "), r.join("; "))
            }
            Step::HandOver { from, to, vips } => {
                write!(f, "handover  {} from {from} to {to}", vips.join(", "))
            }
            Step::Replace { vm, reasons } => {
                let r: Vec<String> = reasons.iter().map(ToString::to_string).collect();
                write!(f, "replace   {vm} ({})", r.join("; "))
            }
            Step::Remove { vm } => write!(f, "remove    {vm}"),
        }
    }
}

/// A failure group whose only member goes down during the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    /// The group (`dns`, `ntp`, `load-balancers`, …).
    pub group: &'static str,
    /// Its only member.
    pub vm: String,
}

/// An ordered rolling plan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rollout {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// Groups with one member that is replaced: unavoidable outages.
    pub outages: Vec<Outage>,
}

impl fmt::Display for Rollout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.steps.iter().enumerate() {
            writeln!(f, "  {:>3}. {s}", i + 1)?;
        }
        for o in &self.outages {
            writeln!(
                f,
                "  note: {} is the only member of {}: it is unavailable while replaced",
                o.vm, o.group
            )?;
        }
        Ok(())
    }
}

/// The failure groups a VM belongs to (as in [`crate::reboot`]).
fn groups_of(vm: &Vm) -> Vec<&'static str> {
    let mut g = Vec::new();
    if vm.has(Role::Master) {
        g.push("etcd");
    }
    if vm.has(Role::LoadBalancer) {
        g.push("load-balancers");
    }
    if vm.has(Role::Worker) || vm.has(Role::Storage) {
        g.push("longhorn-replicas");
    }
    if vm.has(Role::Dns) {
        g.push("dns");
    }
    if vm.has(Role::Ntp) {
        g.push("ntp");
    }
    g
}

fn k3s_node(vm: &Vm) -> bool {
    vm.roles.iter().any(|r| r.is_k3s_node())
}

/// Role rank for ordering: load balancers, DNS/NTP, databases, masters,
/// storage, workers.
fn rank(vm: &Vm) -> u8 {
    let order = [
        Role::LoadBalancer,
        Role::Dns,
        Role::Ntp,
        Role::Database,
        Role::Master,
        Role::Storage,
        Role::Worker,
    ];
    order
        .iter()
        .position(|r| vm.has(*r))
        .map_or(u8::MAX, |p| u8::try_from(p).unwrap_or(u8::MAX))
}

/// VIP name → holders, in the new model (holders that left it dropped).
fn holders(spec: &Spec) -> BTreeMap<String, Vec<String>> {
    spec.vips
        .iter()
        .map(|v| {
            (
                v.name.to_string(),
                v.holders.iter().map(Name::to_string).collect(),
            )
        })
        .collect()
}

/// Orders VMs by role rank, then: among VIP holders, the ones that hold
/// VIPs at a lower priority (later in a VIP's holder list) go first, so the
/// primary holder is replaced last and the VIPs move once at most.
fn ordered<'a>(spec: &'a Spec, names: &BTreeSet<&str>) -> Vec<&'a Vm> {
    let prio = |vm: &Vm| {
        spec.vips
            .iter()
            .filter_map(|v| v.holders.iter().position(|h| h == &vm.name))
            .min()
            .map_or(0, |p| usize::MAX - p)
    };
    let mut vms: Vec<&Vm> = spec
        .vms
        .iter()
        .filter(|v| names.contains(v.name.as_str()))
        .collect();
    vms.sort_by_key(|v| (rank(v), prio(v)));
    vms
}

/// The rolling plan from `old` to `new` for the per-VM `changes` (VM name
/// → change; VMs not in the map are unchanged). `host_changed`: the KVM
/// host's part differs.
pub fn plan(
    old: &Spec,
    new: &Spec,
    changes: &BTreeMap<String, VmChange>,
    host_changed: bool,
) -> Rollout {
    let mut r = Rollout::default();
    let with = |pred: fn(&VmChange) -> bool| -> BTreeSet<&str> {
        changes
            .iter()
            .filter(|(_, c)| pred(c))
            .map(|(n, _)| n.as_str())
            .collect()
    };
    let creates = with(|c| matches!(c, VmChange::Create));
    let removes = with(|c| matches!(c, VmChange::Remove));
    let replaces = with(|c| matches!(c, VmChange::Replace { .. }));
    // The host's part goes first when VMs are created (the firewall admits
    // their flows before they boot), last when VMs only leave (their flows
    // stay open until they are gone).
    let host_last = host_changed && creates.is_empty() && !removes.is_empty();
    if host_changed && !host_last {
        r.steps.push(Step::Host);
    }
    for vm in ordered(new, &creates) {
        r.steps.push(Step::Create {
            vm: vm.name.to_string(),
        });
        r.steps.push(Step::WaitReady {
            vm: vm.name.to_string(),
        });
    }
    for vm in &new.vms {
        if let Some(VmChange::Live { files, reloads }) = changes.get(vm.name.as_str()) {
            r.steps.push(Step::Push {
                vm: vm.name.to_string(),
                files: files.iter().map(|f| f.path.clone()).collect(),
                reloads: reloads.iter().copied().collect(),
            });
        }
    }
    let vips = holders(new);
    let old_vms: BTreeMap<&str, &Vm> = old.vms.iter().map(|v| (v.name.as_str(), v)).collect();
    for vm in ordered(new, &replaces) {
        let name = vm.name.to_string();
        let Some(VmChange::Replace { reasons }) = changes.get(&name) else {
            continue;
        };
        // Another holder takes every VIP this one may hold.
        let mut handover: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (vip, hs) in &vips {
            if !hs.contains(&name) {
                continue;
            }
            match hs
                .iter()
                .find(|h| **h != name && !creates.contains(h.as_str()))
            {
                Some(other) => handover.entry(other.clone()).or_default().push(vip.clone()),
                None => match hs.iter().find(|h| **h != name) {
                    Some(other) => handover.entry(other.clone()).or_default().push(vip.clone()),
                    None => r.outages.push(Outage {
                        group: "load-balancers",
                        vm: name.clone(),
                    }),
                },
            }
        }
        for (to, vips) in handover {
            r.steps.push(Step::HandOver {
                from: name.clone(),
                to,
                vips,
            });
        }
        // Drained as the node it is now (its old roles).
        let was_k3s = old_vms.get(name.as_str()).is_some_and(|v| k3s_node(v));
        if was_k3s {
            r.steps.push(Step::Cordon { vm: name.clone() });
            r.steps.push(Step::Drain { vm: name.clone() });
        }
        r.steps.push(Step::Replace {
            vm: name.clone(),
            reasons: reasons.clone(),
        });
        r.steps.push(Step::WaitReady { vm: name.clone() });
        if k3s_node(vm) {
            r.steps.push(Step::Uncordon { vm: name.clone() });
        }
        for g in groups_of(vm) {
            let members = new.vms.iter().filter(|v| groups_of(v).contains(&g)).count();
            if members == 1 && g != "load-balancers" {
                r.outages.push(Outage {
                    group: g,
                    vm: name.clone(),
                });
            }
        }
    }
    for vm in ordered(old, &removes) {
        if k3s_node(vm) {
            r.steps.push(Step::Cordon {
                vm: vm.name.to_string(),
            });
            r.steps.push(Step::Drain {
                vm: vm.name.to_string(),
            });
        }
        r.steps.push(Step::Remove {
            vm: vm.name.to_string(),
        });
    }
    if host_last {
        r.steps.push(Step::Host);
    }
    r
}

/// A rule a rolling plan broke.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// Two members of one failure group down at once.
    TwoDown {
        /// The group.
        group: &'static str,
        /// The members down at that step.
        vms: Vec<String>,
        /// Step index.
        step: usize,
    },
    /// A K3s node replaced or removed without being drained first.
    NotDrained {
        /// The node.
        vm: String,
        /// Step index.
        step: usize,
    },
    /// A VIP holder replaced while no other holder was made to hold its VIPs.
    VipNotHandedOver {
        /// The holder.
        vm: String,
        /// Step index.
        step: usize,
    },
    /// A VM's change has no step (or the wrong one).
    Missing {
        /// The VM.
        vm: String,
        /// Its change's label.
        change: &'static str,
    },
}

/// Walks `rollout` and returns every rule it breaks: never two members of
/// a failure group down together (a VM is down from its drain, replace or
/// remove until it is ready again), every K3s node drained before it is
/// replaced or removed, every VIP holder replaced only after another holder
/// that is up took its VIPs, and every VM's change carried out.
pub fn check(
    old: &Spec,
    new: &Spec,
    changes: &BTreeMap<String, VmChange>,
    rollout: &Rollout,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let vm_of = |n: &str| {
        new.vms
            .iter()
            .find(|v| v.name.as_str() == n)
            .or_else(|| old.vms.iter().find(|v| v.name.as_str() == n))
    };
    let mut down: BTreeSet<String> = BTreeSet::new();
    let mut drained: BTreeSet<String> = BTreeSet::new();
    let mut handed: BTreeSet<String> = BTreeSet::new();
    let mut done: BTreeMap<String, &'static str> = BTreeMap::new();
    let vips = holders(new);
    for (i, s) in rollout.steps.iter().enumerate() {
        match s {
            Step::Drain { vm } => {
                drained.insert(vm.clone());
                down.insert(vm.clone());
            }
            Step::HandOver { from, to, .. } => {
                if !down.contains(to) {
                    handed.insert(from.clone());
                }
            }
            Step::Replace { vm, .. } | Step::Remove { vm } => {
                let was_k3s = old
                    .vms
                    .iter()
                    .find(|v| v.name.as_str() == vm)
                    .is_some_and(k3s_node);
                if was_k3s && !drained.contains(vm) {
                    out.push(Violation::NotDrained {
                        vm: vm.clone(),
                        step: i,
                    });
                }
                let holder = vips.values().any(|h| h.contains(vm) && h.len() > 1);
                if matches!(s, Step::Replace { .. }) && holder && !handed.contains(vm) {
                    out.push(Violation::VipNotHandedOver {
                        vm: vm.clone(),
                        step: i,
                    });
                }
                down.insert(vm.clone());
                done.insert(
                    vm.clone(),
                    if matches!(s, Step::Remove { .. }) {
                        "remove"
                    } else {
                        "replace"
                    },
                );
            }
            Step::WaitReady { vm } => {
                down.remove(vm);
                drained.remove(vm);
                handed.remove(vm);
            }
            Step::Create { vm } => {
                done.insert(vm.clone(), "create");
            }
            Step::Push { vm, .. } => {
                done.insert(vm.clone(), "live");
            }
            Step::Host | Step::Cordon { .. } | Step::Uncordon { .. } => {}
        }
        // Members down now, per group (removed VMs stay down: they left).
        let mut per_group: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for d in &down {
            if let Some(vm) = vm_of(d) {
                for g in groups_of(vm) {
                    per_group.entry(g).or_default().push(d.clone());
                }
            }
        }
        for (g, vms) in per_group {
            if vms.len() > 1 {
                out.push(Violation::TwoDown {
                    group: g,
                    vms,
                    step: i,
                });
            }
        }
        // A removed VM has left its groups once removed.
        if let Step::Remove { vm } = s {
            down.remove(vm);
        }
    }
    for (vm, c) in changes {
        let want = c.label();
        if want != "none" && done.get(vm).copied() != Some(want) {
            out.push(Violation::Missing {
                vm: vm.clone(),
                change: want,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::LiveFile;

    fn vm(name: &str, roles: &[Role]) -> Vm {
        Vm {
            name: Name::unchecked(name),
            roles: roles.iter().copied().collect(),
            vcpus: 1,
            memory: crate::MiB(512),
            root_disk: crate::GiB(10),
            data_disks: vec![],
            nics: vec![],
            image: None,
        }
    }

    fn spec(vms: Vec<Vm>) -> Spec {
        let mut c = crate::Cluster::builder("t", crate::HostBuilder::new("kvm1"));
        let lan = c.lan("lan", crate::net4!("198.18.0.0/24"), |n| n.host_at(40));
        let lb1 = c.vm("lb1", |v| v.role(Role::LoadBalancer).nic(&lan, 11));
        let lb2 = c.vm("lb2", |v| v.role(Role::LoadBalancer).nic(&lan, 12));
        c.vip("web", &lan, 14, |v| {
            v.tcp(80, Role::Worker, 80).holders([&lb1, &lb2])
        });
        c.dns("t.home.arpa", &[std::net::Ipv4Addr::new(198, 18, 250, 53)]);
        c.vm("w0", |v| v.role(Role::Worker).nic(&lan, 20));
        c.ssh_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJNBE0yGR9doLSjjPtPCkgpn6fWfiNVJ44xnctKvgyUU admin");
        let mut s = c.build().expect("valid").into_spec();
        s.vms.extend(vms);
        s
    }

    fn replace() -> VmChange {
        VmChange::Replace {
            reasons: vec![ReplaceReason::Ignition],
        }
    }

    #[test]
    fn masters_are_replaced_one_at_a_time_drained_first() {
        let s = spec(vec![
            vm("m1", &[Role::Master]),
            vm("m2", &[Role::Master]),
            vm("m3", &[Role::Master]),
        ]);
        let changes: BTreeMap<String, VmChange> = ["m1", "m2", "m3", "w0"]
            .iter()
            .map(|n| (n.to_string(), replace()))
            .collect();
        let r = plan(&s, &s, &changes, false);
        assert!(check(&s, &s, &changes, &r).is_empty(), "{r}");
        let names: Vec<String> = r.steps.iter().map(ToString::to_string).collect();
        let pos = |t: &str| names.iter().position(|n| n == t).expect(t);
        // Servers before agents; each drained before it goes.
        assert!(pos("drain     m1") < pos("replace   m1 (Ignition config)"));
        assert!(pos("wait      m1 ready") < pos("cordon    m2"));
        assert!(pos("uncordon  m3") < pos("cordon    w0"));
    }

    #[test]
    fn the_checker_catches_two_members_down_and_missing_drains() {
        let s = spec(vec![vm("m1", &[Role::Master]), vm("m2", &[Role::Master])]);
        let changes: BTreeMap<String, VmChange> = ["m1", "m2"]
            .iter()
            .map(|n| (n.to_string(), replace()))
            .collect();
        let bad = Rollout {
            steps: vec![
                Step::Replace {
                    vm: "m1".into(),
                    reasons: vec![],
                },
                Step::Replace {
                    vm: "m2".into(),
                    reasons: vec![],
                },
            ],
            outages: vec![],
        };
        let v = check(&s, &s, &changes, &bad);
        assert!(
            v.iter()
                .any(|v| matches!(v, Violation::TwoDown { group: "etcd", .. })),
            "{v:?}"
        );
        assert!(
            v.iter().any(|v| matches!(v, Violation::NotDrained { .. })),
            "{v:?}"
        );
        let lb = Rollout {
            steps: vec![
                Step::Replace {
                    vm: "lb1".into(),
                    reasons: vec![],
                },
                Step::WaitReady { vm: "lb1".into() },
            ],
            outages: vec![],
        };
        let changes: BTreeMap<String, VmChange> = [("lb1".to_string(), replace())].into();
        assert!(matches!(
            check(&s, &s, &changes, &lb).as_slice(),
            [Violation::VipNotHandedOver { .. }]
        ));
        // A plan that forgets a change.
        assert!(matches!(
            check(&s, &s, &changes, &Rollout::default()).as_slice(),
            [Violation::Missing { .. }]
        ));
    }

    #[test]
    fn adding_and_removing_workers_orders_drain_push_remove() {
        let old = spec(vec![vm("w1", &[Role::Worker])]);
        let new = spec(vec![vm("w2", &[Role::Worker])]);
        let live = VmChange::Live {
            files: vec![LiveFile {
                path: "/etc/haproxy/haproxy.cfg".into(),
                reload: Reload::Haproxy,
            }],
            reloads: [Reload::Haproxy].into(),
        };
        let changes: BTreeMap<String, VmChange> = [
            ("w1".to_string(), VmChange::Remove),
            ("w2".to_string(), VmChange::Create),
            ("lb1".to_string(), live.clone()),
            ("lb2".to_string(), live),
        ]
        .into();
        let r = plan(&old, &new, &changes, true);
        assert!(check(&old, &new, &changes, &r).is_empty(), "{r}");
        let names: Vec<String> = r.steps.iter().map(ToString::to_string).collect();
        let pos = |p: &str| names.iter().position(|n| n.starts_with(p)).expect(p);
        assert_eq!(pos("host"), 0);
        // Only removals: the host's part goes last.
        let gone: BTreeMap<String, VmChange> = [("w1".to_string(), VmChange::Remove)].into();
        let r = plan(&old, &new, &gone, true);
        assert_eq!(r.steps.last(), Some(&Step::Host), "{r}");
        assert!(pos("wait      w2 ready") < pos("push      lb1"));
        assert!(pos("push      lb2") < pos("drain     w1"));
        assert!(pos("drain     w1") < pos("remove    w1"));
    }
}
