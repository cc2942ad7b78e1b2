//! One plan across several KVM hosts (feature `live`): each host's
//! connection is planned and applied in its own thread, results are kept
//! per host, and a VM whose placement changed shows as a recreate: deleted
//! on the host it leaves, created on the host it moves to, both steps
//! carrying the reason.
//!
//! Every host gets the pool, the base image and the networks; a VM's
//! domain and volumes only on the host the model places it on
//! ([`Cluster::host_of`]). Ignition files reach a remote host through
//! libvirt itself: [`upload_ignition`] creates `<vm>.ign` as a volume in that
//! host's pool and streams the content with `virStorageVolUpload`, so the
//! path the domain's fw_cfg entry names exists on that host.
//!
//! A `test:///path/host.xml` connection keeps its state only as long as
//! that connection is open (each open parses the file afresh), so the
//! functions here take open connections, not URIs: plan, apply and re-plan
//! on the same [`Connect`] per host.

use crate::apply::{apply, plan, Action, Connect, Kind, Plan, Report, Step};
use crate::{volume, Error};
use flatcar_topology::{Cluster, Vm};
use std::collections::BTreeMap;
use std::fmt;

/// Host name to that host's value.
pub type PerHost<T> = BTreeMap<String, T>;

/// The plan of every host, each narrowed to what belongs on it.
#[derive(Debug, Default)]
pub struct HostsPlan {
    /// Per host: its plan, or why planning it failed.
    pub hosts: PerHost<Result<Plan, Error>>,
    /// VMs that move: `(vm, from host, to host)`.
    pub moves: Vec<(String, String, String)>,
}

impl HostsPlan {
    /// Changing steps over every host that could be planned.
    pub fn changes(&self) -> usize {
        self.hosts
            .values()
            .filter_map(|p| p.as_ref().ok())
            .map(Plan::changes)
            .sum()
    }
}

impl fmt::Display for HostsPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (vm, from, to) in &self.moves {
            writeln!(
                f,
                "recreate domain {vm}: {from} -> {to} (placement changed)"
            )?;
        }
        for (host, p) in &self.hosts {
            match p {
                Ok(p) => {
                    writeln!(f, "== {host}: {} change(s)", p.changes())?;
                    for s in p.steps.iter().filter(|s| s.action != Action::Unchanged) {
                        writeln!(f, "  {s}")?;
                    }
                }
                Err(e) => writeln!(f, "== {host}: planning failed: {e}")?,
            }
        }
        Ok(())
    }
}

/// The VM a step's object belongs to (domain, root or data volume,
/// Ignition volume), if any.
fn owner<'a>(cluster: &'a Cluster, step: &Step) -> Option<&'a Vm> {
    cluster.vms().iter().find(|vm| match step.kind {
        Kind::Domain => step.name == vm.name.as_str(),
        Kind::Volume => {
            step.name == volume::root_volume(vm)
                || step.name == ignition_volume(vm)
                || vm
                    .data_disks
                    .iter()
                    .any(|d| step.name == volume::data_volume(vm, d))
        }
        _ => false,
    })
}

/// Name of a VM's Ignition volume (`<vm>.ign`, at [`crate::ignition_path`]).
pub fn ignition_volume(vm: &Vm) -> String {
    format!("{}.ign", vm.name)
}

/// Joins one thread per host; a thread that panicked is that host's
/// `Refused` error (`what`: which step the thread ran).
fn join_hosts<T>(
    handles: Vec<(String, std::thread::ScopedJoinHandle<'_, Result<T, Error>>)>,
    what: &str,
) -> PerHost<Result<T, Error>> {
    handles
        .into_iter()
        .map(|(host, h)| {
            let r = h.join().unwrap_or_else(|_| {
                Err(Error::Refused {
                    object: format!("host {host}"),
                    reason: format!("the {what} thread panicked"),
                })
            });
            (host, r)
        })
        .collect()
}

/// Plans every host in parallel (one thread per connection in `conns`,
/// keyed by host name) and narrows each plan to that host.
pub fn plan_hosts(cluster: &Cluster, conns: &PerHost<Connect>) -> HostsPlan {
    let raw: PerHost<Result<Plan, Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = conns
            .iter()
            .map(|(host, conn)| (host.clone(), s.spawn(move || plan(conn, cluster))))
            .collect();
        join_hosts(handles, "planning")
    });
    // Where each VM's domain exists today.
    let mut present: BTreeMap<String, String> = BTreeMap::new();
    for (host, p) in &raw {
        for s in p.iter().flat_map(|p| &p.steps) {
            if s.kind == Kind::Domain && !matches!(s.action, Action::Create) {
                present.insert(s.name.clone(), host.clone());
            }
        }
    }
    let mut moves = Vec::new();
    let hosts = raw
        .into_iter()
        .map(|(host, p)| {
            let p = p.map(|mut p| {
                p.steps = p
                    .steps
                    .into_iter()
                    .filter_map(|mut s| {
                        let Some(vm) = owner(cluster, &s) else {
                            return Some(s);
                        };
                        let target = cluster.host_of(vm).name.to_string();
                        if target == host {
                            if let (Action::Create, Some(from)) =
                                (&s.action, present.get(vm.name.as_str()))
                            {
                                if from != &host {
                                    s.note = Some(format!("recreated: moved from {from}"));
                                    if s.kind == Kind::Domain {
                                        moves.push((s.name.clone(), from.clone(), host.clone()));
                                    }
                                }
                            }
                            Some(s)
                        } else if matches!(s.action, Action::Create) {
                            None
                        } else {
                            s.action = Action::Delete;
                            s.note = Some(format!("recreated: moved to {target}"));
                            Some(s)
                        }
                    })
                    .collect();
                p
            });
            (host, p)
        })
        .collect();
    HostsPlan { hosts, moves }
}

/// What an apply across hosts did, per host.
#[derive(Debug, Default)]
pub struct HostsReport {
    /// Per host: what was done, or the error (an [`Error::Partial`] says how
    /// many of the host's changes were applied before the failure).
    pub hosts: PerHost<Result<Report, Error>>,
}

impl HostsReport {
    /// Whether every host applied its whole plan.
    pub fn ok(&self) -> bool {
        self.hosts.values().all(Result::is_ok)
    }
}

impl fmt::Display for HostsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (host, r) in &self.hosts {
            match r {
                Ok(r) => writeln!(f, "{host}: done, {} mutating call(s)", r.mutations)?,
                Err(Error::Partial {
                    object,
                    applied,
                    total,
                    source,
                }) => writeln!(
                    f,
                    "{host}: FAILED at {object} after {applied} of {total} change(s); \
                     the other {} not done: {source}",
                    total - applied
                )?,
                Err(e) => writeln!(f, "{host}: FAILED, nothing done: {e}")?,
            }
        }
        Ok(())
    }
}

/// Applies every host's plan in parallel (hosts whose planning failed are
/// reported as not done). One host failing does not stop the others.
pub fn apply_hosts(conns: &PerHost<Connect>, plans: &HostsPlan) -> HostsReport {
    let hosts = std::thread::scope(|s| {
        let handles: Vec<_> = plans
            .hosts
            .iter()
            .map(|(host, p)| {
                let conn = conns.get(host);
                let h = s.spawn(move || match (p, conn) {
                    (Ok(p), Some(conn)) => apply(conn, p),
                    (Err(e), _) => Err(Error::Refused {
                        object: format!("host {host}"),
                        reason: format!("not planned, nothing done: {e}"),
                    }),
                    (_, None) => Err(Error::Refused {
                        object: format!("host {host}"),
                        reason: "no connection, nothing done".into(),
                    }),
                });
                (host.clone(), h)
            })
            .collect();
        join_hosts(handles, "apply")
    });
    HostsReport { hosts }
}

/// Puts `vm`'s Ignition config on the host the connection reaches: a raw
/// volume `<vm>.ign` in the cluster's pool (replaced if it exists), content
/// streamed with `virStorageVolUpload`. The pool must exist and be active.
pub fn upload_ignition(
    conn: &Connect,
    cluster: &Cluster,
    vm: &Vm,
    content: &[u8],
) -> Result<(), Error> {
    use virt::storage_vol::StorageVol;
    use virt::stream::Stream;
    let name = ignition_volume(vm);
    let object = format!("volume {name}");
    let lv = |e: virt::error::Error| Error::Libvirt {
        object: object.clone(),
        source: e,
    };
    let pool = conn
        .lookup_storage_pool_by_name(cluster.host_of(vm).pool.name.as_str())
        .map_err(&lv)?;
    if let Ok(old) = pool.lookup_storage_vol_by_name(&name) {
        old.delete(0).map_err(&lv)?;
    }
    let xml = format!(
        "<volume><name>{name}</name><capacity unit='bytes'>{}</capacity>\
         <target><format type='raw'/><permissions><mode>0600</mode></permissions></target></volume>",
        content.len()
    );
    let vol = StorageVol::create_xml(&pool, &xml, 0).map_err(&lv)?;
    let stream = Stream::new(conn, 0).map_err(&lv)?;
    vol.upload(&stream, 0, content.len() as u64, 0)
        .map_err(&lv)?;
    let mut sent = 0;
    while sent < content.len() {
        let n = stream.send(&content[sent..]).map_err(&lv)?;
        sent += usize::try_from(n).unwrap_or(0).max(1);
    }
    stream.finish().map_err(&lv)
}
