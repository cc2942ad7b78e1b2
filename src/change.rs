//! What a new model means for the running cloud: each VM's change
//! ([`VmChange`]: none, live, replace, create, remove) computed by comparing
//! the previous model (the `cluster.json` of the previous bundle) with the
//! new one, both as models and as rendered files, and the rolling plan that
//! carries it out ([`flatcar_topology::rollout`]).
//!
//! A file may change on a running VM when a running service re-reads it
//! ([`live_reload`]: HAProxy, Keepalived, CoreDNS, NFS exports, Chrony,
//! PostgreSQL's `pg_hba.conf`, K3s's auto-applied manifests, locksmithd's
//! window); anything else a VM gets only at first boot (NICs,
//! disks, the OS image, roles, K3s version and config, units, secrets), so
//! such a VM is replaced. The KVM host's own part (nftables, WireGuard) is
//! compared too ([`Changes::host`]). A VM whose rendered Ignition config or
//! libvirt domain differs in any byte is never [`VmChange::None`].
//!
//! Live changes are pushed over SSH with the cluster's admin key (the one
//! every VM authorizes): each file is written atomically next to its target
//! and renamed over it, then the reloads run (see `docs/day-two.md`).
//!
//! ```
//! use flatcar_microcloud::change::classify;
//! use flatcar_topology::provision::MemorySecrets;
//! let c = flatcar_microcloud::reference::cluster().expect("valid");
//! let changes = classify(&c, &c, &mut MemorySecrets::default()).expect("classifies");
//! assert!(changes.is_empty());
//! ```

use crate::Error;
use flatcar_ignition::IgnitionJson;
use flatcar_topology::change::{model_reasons, LiveFile, Reload, ReplaceReason, VmChange};
use flatcar_topology::provision::{Node, SecretStore};
use flatcar_topology::rollout::{self, Rollout};
use flatcar_topology::Cluster;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The reload that makes a changed file at `path` effective on a running
/// VM, or `None` when only a first boot applies it.
pub fn live_reload(path: &str) -> Option<Reload> {
    let coredns = format!("{}/", flatcar_net::coredns::ZONE_DIR);
    let manifests = format!("{}/", flatcar_k3s::manifests::MANIFEST_DIR);
    match path {
        "/etc/haproxy/haproxy.cfg" => Some(Reload::Haproxy),
        "/etc/keepalived/keepalived.conf" => Some(Reload::Keepalived),
        "/etc/exports" => Some(Reload::NfsExports),
        flatcar_net::CHRONY_CONF => Some(Reload::Chrony),
        "/etc/flatcar/update.conf" => Some(Reload::Locksmithd),
        flatcar_db::HBA_FILE => Some(Reload::Postgres),
        p if p.starts_with(&manifests) => Some(Reload::K3sManifests),
        p if p.starts_with(&coredns) => Some(Reload::CoreDns),
        _ => None,
    }
}

/// Every VM's change and whether the host's part changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Changes {
    /// VM name → change (every VM of either model).
    pub vms: BTreeMap<String, VmChange>,
    /// The KVM host's nftables ruleset or WireGuard endpoint changed.
    pub host: bool,
}

impl Changes {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        !self.host && self.vms.values().all(|c| *c == VmChange::None)
    }

    /// The rolling plan that carries the changes out.
    pub fn rollout(&self, old: &Cluster, new: &Cluster) -> Rollout {
        rollout::plan(old.spec(), new.spec(), &self.vms, self.host)
    }
}

impl fmt::Display for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |l: &str| self.vms.values().filter(|c| c.label() == l).count();
        writeln!(
            f,
            "running cloud: {} unchanged, {} live, {} replace, {} create, {} remove; host part {}",
            n("none"),
            n("live"),
            n("replace"),
            n("create"),
            n("remove"),
            if self.host { "changes" } else { "unchanged" }
        )?;
        for (vm, c) in &self.vms {
            writeln!(f, "  {vm:<10} {c}")?;
        }
        Ok(())
    }
}

fn differs<T: PartialEq>(a: Option<&T>, b: Option<&T>) -> bool {
    a != b
}

/// Compares one VM's composed provisioning: live files and first-boot
/// reasons.
fn node_diff(a: &Node, b: &Node) -> (Vec<LiveFile>, Vec<ReplaceReason>) {
    let mut live = Vec::new();
    let mut reasons = Vec::new();
    let paths: BTreeSet<&String> = a.files.keys().chain(b.files.keys()).collect();
    for p in paths {
        let (fa, fb) = (a.files.get(p), b.files.get(p));
        if !differs(fa, fb) {
            continue;
        }
        let reload = match (fa, fb) {
            (Some(x), Some(y))
                if !x.is_secret() && !y.is_secret() && (x.mode, &x.owner) == (y.mode, &y.owner) =>
            {
                live_reload(p)
            }
            _ => None,
        };
        match reload {
            Some(reload) => live.push(LiveFile {
                path: p.clone(),
                reload,
            }),
            None => reasons.push(ReplaceReason::FirstBootFile { path: p.clone() }),
        }
    }
    let units: BTreeSet<&String> = a.units.keys().chain(b.units.keys()).collect();
    for u in units {
        if differs(a.units.get(u), b.units.get(u)) {
            reasons.push(ReplaceReason::Unit { name: u.clone() });
        }
    }
    if (&a.hostname, &a.user, &a.ssh_keys) != (&b.hostname, &b.user, &b.ssh_keys) {
        reasons.push(ReplaceReason::Identity);
    }
    if (&a.sysctls, &a.disks, &a.links) != (&b.sysctls, &b.disks, &b.links) {
        reasons.push(ReplaceReason::System);
    }
    (live, reasons)
}

/// Classifies every VM's change from `old` to `new`. Both models are
/// composed with `secrets` (open it on the previous bundle, so both see the
/// same secrets).
pub fn classify(
    old: &Cluster,
    new: &Cluster,
    secrets: &mut dyn SecretStore,
) -> Result<Changes, Error> {
    let a = crate::services::compose(old, secrets)?;
    let b = crate::services::compose(new, secrets)?;
    let mut vms = BTreeMap::new();
    for vm in old.vms() {
        if new.vm(vm.name.as_str()).is_none() {
            vms.insert(vm.name.to_string(), VmChange::Remove);
        }
    }
    for after in new.vms() {
        let name = after.name.to_string();
        let Some(before) = old.vm(&name) else {
            vms.insert(name, VmChange::Create);
            continue;
        };
        let mut reasons = model_reasons(old.spec(), new.spec(), before, after);
        let (na, nb) = (a.nodes.get(&name), b.nodes.get(&name));
        let mut live = Vec::new();
        if let (Some(na), Some(nb)) = (na, nb) {
            let (l, r) = node_diff(na, nb);
            live = l;
            for r in r {
                if !reasons.contains(&r) {
                    reasons.push(r);
                }
            }
        }
        let domain_changed = flatcar_libvirt::domain::xml(old, before)?
            != flatcar_libvirt::domain::xml(new, after)?
            || flatcar_libvirt::volume::vm_xmls(old, before)?
                != flatcar_libvirt::volume::vm_xmls(new, after)?;
        if domain_changed && reasons.is_empty() {
            reasons.push(ReplaceReason::Domain);
        }
        let ignition_changed = match (na, nb) {
            (Some(x), Some(y)) => x.ignition_json()? != y.ignition_json()?,
            _ => na.is_some() != nb.is_some(),
        };
        if ignition_changed && reasons.is_empty() && live.is_empty() {
            // Nothing above explains it: replace rather than call it unchanged.
            reasons.push(ReplaceReason::Ignition);
        }
        let change = if !reasons.is_empty() {
            VmChange::Replace { reasons }
        } else if !live.is_empty() {
            let reloads = live.iter().map(|l| l.reload).collect();
            VmChange::Live {
                files: live,
                reloads,
            }
        } else {
            VmChange::None
        };
        vms.insert(name, change);
    }
    let host = flatcar_net::ruleset::render(old, &a.flows)
        != flatcar_net::ruleset::render(new, &b.flows)
        || old.vpn() != new.vpn();
    Ok(Changes { vms, host })
}
