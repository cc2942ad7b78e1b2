//! Coordinated reboots after Flatcar updates, derived from the model.
//!
//! Failure groups are the sets of VMs of which no two may be down together:
//! the etcd members (masters), the load balancers, the Longhorn replica
//! holders (workers and storage nodes), and the DNS and NTP servers.
//!
//! - Every K3s node is rebooted by FLUO (Flatcar Linux Update Operator):
//!   locksmithd is masked and `REBOOT_STRATEGY=off`; FLUO drains a node
//!   before rebooting it and reboots one node at a time, cluster-wide, only
//!   inside [`FLUO_WINDOW`] (Mondays).
//! - Every other VM reboots through locksmithd in its own one-hour window on
//!   Tuesday to Sunday; VMs that share a failure group get different windows
//!   (greedy colouring in model order), and no window touches FLUO's day.
//!
//! So two members of a group are never down together: two K3s nodes are
//! serialised by FLUO, a K3s node and another VM reboot on different days,
//! and two other VMs in different windows.
//!
//! ```
//! use flatcar_topology::{net4, Cluster, HostBuilder, Role};
//! use flatcar_topology::reboot::{plan, Reboot};
//! let mut c = Cluster::builder("demo", HostBuilder::new("kvm1"));
//! let lan = c.lan("lan", net4!("198.18.0.0/24"), |n| n.host_at(40));
//! c.vm("lb1", |v| v.role(Role::LoadBalancer).nic(&lan, 11));
//! c.vm("lb2", |v| v.role(Role::LoadBalancer).nic(&lan, 12));
//! c.ssh_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJNBE0yGR9doLSjjPtPCkgpn6fWfiNVJ44xnctKvgyUU admin");
//! let cluster = c.build().expect("valid");
//! let p = plan(cluster.spec());
//! assert_ne!(p["lb1"], p["lb2"]);
//! assert!(matches!(p["lb1"], Reboot::Window { .. }));
//! ```

use crate::{Role, Spec, Vm};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// FLUO's reboot window: every K3s node reboots only then, one at a time.
pub const FLUO_WINDOW: (&str, &str) = ("Mon 00:00", "24h");

/// The days locksmithd windows use (FLUO has Monday).
const DAYS: [&str; 6] = ["Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
/// Window starts per day: one-hour windows every two hours from 01:00.
const HOURS: [u8; 12] = [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23];
/// Distinct locksmithd windows per week.
pub const WINDOWS: usize = DAYS.len() * HOURS.len();

/// How one VM reboots after an update.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reboot {
    /// Drained and rebooted by FLUO, one K3s node at a time, in [`FLUO_WINDOW`].
    Fluo,
    /// Rebooted by locksmithd in its own one-hour window.
    Window {
        /// Window number (`0..WINDOWS`); equal numbers mean the same window.
        slot: usize,
    },
}

impl Reboot {
    /// `LOCKSMITHD_REBOOT_WINDOW_START` of a window (`Tue 01:00`).
    pub fn window_start(&self) -> Option<String> {
        match self {
            Reboot::Fluo => None,
            Reboot::Window { slot } => {
                let s = slot % WINDOWS;
                Some(format!(
                    "{} {:02}:00",
                    DAYS[s / HOURS.len()],
                    HOURS[s % HOURS.len()]
                ))
            }
        }
    }

    /// Whether two VMs with these reboot settings can be down at the same time.
    pub fn may_overlap(&self, other: &Reboot) -> bool {
        match (self, other) {
            // FLUO reboots one node at a time.
            (Reboot::Fluo, Reboot::Fluo) => false,
            // FLUO has Monday; windows are Tuesday to Sunday.
            (Reboot::Fluo, Reboot::Window { .. }) | (Reboot::Window { .. }, Reboot::Fluo) => false,
            (Reboot::Window { slot: a }, Reboot::Window { slot: b }) => a % WINDOWS == b % WINDOWS,
        }
    }
}

impl fmt::Display for Reboot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reboot::Fluo => write!(
                f,
                "FLUO (drained, one node at a time, {} for {})",
                FLUO_WINDOW.0, FLUO_WINDOW.1
            ),
            Reboot::Window { .. } => write!(
                f,
                "locksmithd window {} for 1h",
                self.window_start().unwrap_or_default()
            ),
        }
    }
}

/// A failure group: its name and who is a member.
type Group = (&'static str, fn(&Vm) -> bool);

/// The failure groups of `spec`: name → members (model order), groups with
/// fewer than two members left out.
pub fn failure_groups(spec: &Spec) -> BTreeMap<&'static str, Vec<&Vm>> {
    let groups: [Group; 5] = [
        ("etcd", |v| v.has(Role::Master)),
        ("load-balancers", |v| v.has(Role::LoadBalancer)),
        ("longhorn-replicas", |v| {
            v.has(Role::Worker) || v.has(Role::Storage)
        }),
        ("dns", |v| v.has(Role::Dns)),
        ("ntp", |v| v.has(Role::Ntp)),
    ];
    groups
        .into_iter()
        .map(|(name, member)| {
            (
                name,
                spec.vms.iter().filter(|v| member(v)).collect::<Vec<_>>(),
            )
        })
        .filter(|(_, m)| m.len() > 1)
        .collect()
}

/// Whether `vm` is a K3s node (rebooted by FLUO).
fn fluo(vm: &Vm) -> bool {
    vm.roles.iter().any(|r| r.is_k3s_node())
}

/// How every VM reboots, by VM name.
pub fn plan(spec: &Spec) -> BTreeMap<String, Reboot> {
    // Per VM, the groups it is in (only the window-managed ones matter for colouring).
    let groups = failure_groups(spec);
    let mut member_of: BTreeMap<&str, Vec<&'static str>> = BTreeMap::new();
    for (g, members) in &groups {
        for m in members {
            member_of.entry(m.name.as_str()).or_default().push(g);
        }
    }
    let mut used: BTreeMap<&'static str, BTreeSet<usize>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    // A VM in no group still gets a window of its own; spread them.
    let mut next_free = 0usize;
    for vm in &spec.vms {
        if fluo(vm) {
            out.insert(vm.name.to_string(), Reboot::Fluo);
            continue;
        }
        let mine = member_of.get(vm.name.as_str()).cloned().unwrap_or_default();
        let slot = if mine.is_empty() {
            next_free += 1;
            next_free - 1
        } else {
            // More members than windows cannot be kept apart; `conflicts`
            // reports it (validation rejects it).
            (0..WINDOWS)
                .find(|s| {
                    mine.iter()
                        .all(|g| !used.get(g).is_some_and(|u| u.contains(s)))
                })
                .unwrap_or(0)
        };
        for g in mine {
            used.entry(g).or_default().insert(slot % WINDOWS);
        }
        out.insert(vm.name.to_string(), Reboot::Window { slot });
    }
    out
}

/// Every pair of VMs in one failure group whose reboots may overlap:
/// `(group, first, second)`. Empty when reboots are coordinated.
pub fn conflicts(spec: &Spec) -> Vec<(&'static str, String, String)> {
    let p = plan(spec);
    let mut out = Vec::new();
    for (g, members) in failure_groups(spec) {
        for (i, a) in members.iter().enumerate() {
            for b in &members[i + 1..] {
                if let (Some(ra), Some(rb)) = (p.get(a.name.as_str()), p.get(b.name.as_str())) {
                    if ra.may_overlap(rb) {
                        out.push((g, a.name.to_string(), b.name.to_string()));
                    }
                }
            }
        }
    }
    out
}
