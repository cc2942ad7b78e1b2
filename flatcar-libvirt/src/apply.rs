//! Plan and apply against a live libvirt (feature `live`).
//!
//! [`plan`] compares the cluster's desired objects with what a connection
//! has and gives one [`Step`] per object: [`Action::Create`],
//! [`Action::UpdateInPlace`] (what changes), [`Action::Recreate`] (why),
//! [`Action::Unchanged`], [`Action::Delete`], or [`Action::Conflict`] for a
//! same-named object that is not this cluster's. Only objects carrying this
//! cluster's ownership metadata are ever updated, recreated or deleted (see
//! [`crate::metadata`] for pools and volumes); foreign objects are never
//! touched, and [`apply`] refuses a plan with a conflict before changing
//! anything.
//!
//! [`apply`] runs the steps in dependency order (pool, volumes, networks,
//! domains; deletions domains first) and stops at the first failure with an
//! [`Error::Partial`] naming the object and carrying libvirt's error. A
//! second apply of the same cluster plans no change and makes zero mutating
//! calls ([`Report::mutations`] counts them). [`destroy`] removes only owned
//! objects.
//!
//! Networks and domains are only *defined*, never started. The storage pool
//! is started (volumes exist only in an active pool). A missing base image
//! gets an empty qcow2 placeholder so the overlays can be created; upload
//! the real Flatcar image over it before starting VMs.

use crate::diff::{self, Change};
use crate::{domain, live, network, ownership, pool as pool_doc, volume, Error, Ownership};
use flatcar_topology::Cluster;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
pub use virt::connect::Connect;
use virt::storage_pool::StoragePool;
use virt::storage_vol::StorageVol;

/// Opens a connection (`test:///default`, `qemu:///system`, …) with
/// libvirt's own error printing silenced (errors are returned, typed).
pub fn connect(uri: &str) -> Result<Connect, Error> {
    virt::error::clear_error_callback();
    Connect::open(Some(uri)).map_err(|e| lv(&format!("connection {uri}"), &e))
}

/// Names of the objects on a connection, owned or not, sorted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inventory {
    /// Domains.
    pub domains: Vec<String>,
    /// Networks.
    pub networks: Vec<String>,
    /// Storage pools.
    pub pools: Vec<String>,
}

/// Every domain, network and pool on the connection.
pub fn inventory(conn: &Connect) -> Result<Inventory, Error> {
    let mut inv = Inventory::default();
    for d in conn.list_all_domains(0).map_err(|e| lv("domains", &e))? {
        inv.domains.push(d.name().map_err(|e| lv("domain", &e))?);
    }
    for n in conn.list_all_networks(0).map_err(|e| lv("networks", &e))? {
        inv.networks.push(n.name().map_err(|e| lv("network", &e))?);
    }
    for p in conn
        .list_all_storage_pools(0)
        .map_err(|e| lv("pools", &e))?
    {
        inv.pools.push(p.name().map_err(|e| lv("pool", &e))?);
    }
    inv.domains.sort();
    inv.networks.sort();
    inv.pools.sort();
    Ok(inv)
}

/// What kind of libvirt object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Storage pool.
    Pool,
    /// Storage volume.
    Volume,
    /// Network.
    Network,
    /// Domain.
    Domain,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Pool => "pool",
            Kind::Volume => "volume",
            Kind::Network => "network",
            Kind::Domain => "domain",
        })
    }
}

/// What happens to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// It does not exist: define (or create) it.
    Create,
    /// It is ours and differs in what libvirt changes in place.
    UpdateInPlace {
        /// What changes.
        what: String,
    },
    /// It is ours and must be removed and defined again.
    Recreate {
        /// Why.
        reason: String,
    },
    /// It matches the model.
    Unchanged,
    /// It is ours and no longer in the model.
    Delete,
    /// An object of that name exists and is not ours (or cannot be changed
    /// safely): never touched; apply refuses the plan.
    Conflict {
        /// Why.
        reason: String,
    },
}

impl Action {
    /// Short name: `create`, `update`, `recreate`, `unchanged`, `delete`, `conflict`.
    pub fn label(&self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::UpdateInPlace { .. } => "update",
            Action::Recreate { .. } => "recreate",
            Action::Unchanged => "unchanged",
            Action::Delete => "delete",
            Action::Conflict { .. } => "conflict",
        }
    }
}

/// One object's step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Kind.
    pub kind: Kind,
    /// Name.
    pub name: String,
    /// Action.
    pub action: Action,
    /// Why, for actions that carry no reason of their own (a delete, a
    /// placeholder, an adopted volume).
    pub note: Option<String>,
    /// The document the step defines or creates (with the live object's
    /// uuid when it redefines one).
    pub xml: Option<String>,
}

impl Step {
    /// The step's reason: what changes, why it is recreated, or its note.
    pub fn reason(&self) -> &str {
        match &self.action {
            Action::UpdateInPlace { what } => what,
            Action::Recreate { reason } | Action::Conflict { reason } => reason,
            _ => self.note.as_deref().unwrap_or(""),
        }
    }

    fn object(&self) -> String {
        format!("{} {}", self.kind, self.name)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<9} {:<7} {}",
            self.action.label(),
            self.kind,
            self.name
        )?;
        match self.reason() {
            "" => Ok(()),
            r => write!(f, "  ({r})"),
        }
    }
}

/// A plan: one step per object, in the order apply runs them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Owning cluster.
    pub cluster: String,
    /// The cluster's storage pool.
    pub pool: String,
    /// Steps.
    pub steps: Vec<Step>,
}

impl Plan {
    /// Steps that would change something (conflicts included).
    pub fn changes(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| s.action != Action::Unchanged)
            .count()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.steps {
            writeln!(f, "{s}")?;
        }
        Ok(())
    }
}

/// One DHCP or DNS host change on a running network, live only (the
/// persistent definition was already replaced as a whole).
fn update_running(
    n: &virt::network::Network,
    object: &str,
    u: &diff::HostUpdate,
    calls: &mut Calls,
) -> Result<(), Error> {
    use diff::HostUpdate as U;
    use virt::sys;
    let command = if matches!(u, U::AddDhcp(_) | U::AddDns(_)) {
        sys::VIR_NETWORK_UPDATE_COMMAND_ADD_LAST
    } else {
        sys::VIR_NETWORK_UPDATE_COMMAND_DELETE
    };
    let (section, element) = match u {
        U::RemoveDhcp(h) | U::AddDhcp(h) => (
            sys::VIR_NETWORK_SECTION_IP_DHCP_HOST,
            network::dhcp_host_xml(h)?,
        ),
        U::RemoveDns(h) | U::AddDns(h) => {
            (sys::VIR_NETWORK_SECTION_DNS_HOST, network::dns_host_xml(h)?)
        }
    };
    calls.run(object, || {
        n.update(
            command,
            section,
            -1,
            &element,
            sys::VIR_NETWORK_UPDATE_AFFECT_LIVE,
        )
    })
}

/// Held around every validating domain define in this process.
///
/// With `VIR_DOMAIN_DEFINE_VALIDATE`, an in-process driver (the test
/// driver; any local one) checks the XML against libvirt's RelaxNG schema
/// with libxml2, whose XML Schema datatypes (`integer`, `unsignedInt`) are
/// set up lazily on first use and without a lock (libxml2 2.9). Two threads
/// validating at once in a fresh process (as [`crate::hosts::apply_hosts`]
/// does, one thread per host) can see a half-filled type table: "Error type
/// 'integer' is not exported by type library", seen in CI. A define takes
/// milliseconds, so holding one lock costs nothing worth the race.
static VALIDATING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Defines (or redefines) a domain, validated against libvirt's schema.
fn define_validated(conn: &Connect, xml: &str) -> Result<virt::domain::Domain, virt::error::Error> {
    // A panic elsewhere while holding the lock leaves nothing to repair.
    let _one_at_a_time = VALIDATING.lock().unwrap_or_else(|p| p.into_inner());
    conn.define_domain_xml_flags(xml, virt::sys::VIR_DOMAIN_DEFINE_VALIDATE)
}

fn lv(object: &str, e: &virt::error::Error) -> Error {
    Error::Libvirt {
        object: object.to_string(),
        source: e.clone(),
    }
}

/// Re-labels a parse error with the object it came from.
fn named(object: &str, e: Error) -> Error {
    e.about(object)
}

fn owner_of(object: &str, xml: &str) -> Result<Option<Ownership>, Error> {
    ownership(xml).map_err(|e| named(object, e))
}

fn step(kind: Kind, name: &str, action: Action, xml: Option<String>) -> Step {
    Step {
        kind,
        name: name.to_string(),
        action,
        note: None,
        xml,
    }
}

fn joined(v: Vec<String>) -> String {
    v.join("; ")
}

/// An owned object of the cluster found on the connection.
struct OwnedDomain {
    facts: live::DomainFacts,
}

/// Domains on the connection: this cluster's by name, and the volumes of
/// `pool` that any other domain (foreign or another cluster's) uses.
fn domains(
    conn: &Connect,
    cluster: &str,
    pool: &str,
) -> Result<(BTreeMap<String, OwnedDomain>, BTreeSet<String>), Error> {
    let mut owned = BTreeMap::new();
    let mut others = BTreeSet::new();
    for d in conn.list_all_domains(0).map_err(|e| lv("domains", &e))? {
        let name = d.name().map_err(|e| lv("domain", &e))?;
        let object = format!("domain {name}");
        let xml = d.xml_desc(0).map_err(|e| lv(&object, &e))?;
        if owner_of(&object, &xml)?.is_some_and(|o| o.cluster == cluster) {
            let facts = live::domain(&object, &xml)?;
            owned.insert(name, OwnedDomain { facts });
        } else if let Ok(f) = live::domain(&object, &xml) {
            // A foreign definition we cannot read uses nothing we know of.
            others.extend(
                f.disks
                    .into_iter()
                    .filter(|(p, _, _)| p == pool)
                    .map(|(_, v, _)| v),
            );
        }
    }
    Ok((owned, others))
}

/// Owned networks on the connection.
fn owned_networks(conn: &Connect, cluster: &str) -> Result<BTreeSet<String>, Error> {
    let mut out = BTreeSet::new();
    for n in conn.list_all_networks(0).map_err(|e| lv("networks", &e))? {
        let name = n.name().map_err(|e| lv("network", &e))?;
        let object = format!("network {name}");
        let xml = n.xml_desc(0).map_err(|e| lv(&object, &e))?;
        if owner_of(&object, &xml)?.is_some_and(|o| o.cluster == cluster) {
            out.insert(name);
        }
    }
    Ok(out)
}

/// The cluster's pool: `Ok(None)` when missing; its facts and state.
fn pool_state(
    conn: &Connect,
    cluster: &Cluster,
) -> Result<Option<(StoragePool, live::PoolFacts, bool)>, Error> {
    let name = cluster.host().pool.name.as_str();
    let Ok(p) = conn.lookup_storage_pool_by_name(name) else {
        return Ok(None);
    };
    let object = format!("pool {name}");
    let facts = live::pool(&object, &p.xml_desc(0).map_err(|e| lv(&object, &e))?)?;
    let active = p.is_active().map_err(|e| lv(&object, &e))?;
    Ok(Some((p, facts, active)))
}

fn volume_facts(vol: &StorageVol, name: &str) -> Result<live::VolumeFacts, Error> {
    let object = format!("volume {name}");
    live::volume(&object, &vol.xml_desc(0).map_err(|e| lv(&object, &e))?)
}

/// Compares the cluster's objects with what `conn` has. Read-only.
pub fn plan(conn: &Connect, cluster: &Cluster) -> Result<Plan, Error> {
    virt::error::clear_error_callback();
    let me = cluster.name().to_string();
    let pool_name = cluster.host().pool.name.to_string();
    let pool_path = cluster.host().pool.path.to_string();
    let mut steps = Vec::new();

    // Pool.
    let pool = pool_state(conn, cluster)?;
    let pool_xml = pool_doc::xml(cluster)?;
    let (pool_action, listable) = match &pool {
        None => (Action::Create, None),
        Some((_, f, _)) if f.kind != "dir" || f.path != pool_path => (
            Action::Conflict {
                reason: format!(
                    "a {} pool with target path {} exists (the model wants a dir pool at {pool_path})",
                    f.kind, f.path
                ),
            },
            None,
        ),
        Some((p, _, true)) => (Action::Unchanged, Some(p)),
        Some((_, _, false)) => (
            Action::UpdateInPlace {
                what: "start the inactive pool (its volumes are checked again at apply)".into(),
            },
            None,
        ),
    };
    steps.push(step(Kind::Pool, &pool_name, pool_action, Some(pool_xml)));
    let lookup = |name: &str| listable.and_then(|p| p.lookup_storage_vol_by_name(name).ok());

    // Volumes: base images, then each VM's.
    let (owned, used_by_others) = domains(conn, &me, &pool_name)?;
    let owned_volumes: BTreeSet<&str> = owned
        .values()
        .flat_map(|d| d.facts.disks.iter())
        .filter(|(p, _, _)| *p == pool_name)
        .map(|(_, v, _)| v.as_str())
        .collect();
    for base in volume::base_images(cluster) {
        let mut s = step(
            Kind::Volume,
            &base,
            Action::Unchanged,
            Some(volume::base_xml(&base)?),
        );
        if lookup(&base).is_none() {
            s.action = Action::Create;
            s.note = Some(
                "empty placeholder for the base image: upload the Flatcar image (virsh vol-upload) before starting VMs"
                    .into(),
            );
        } else {
            s.note = Some("base image, never modified".into());
        }
        steps.push(s);
    }
    let mut wanted_volumes = BTreeSet::new();
    for (name, xml) in volume::xmls(cluster)? {
        wanted_volumes.insert(name.clone());
        let mut s = step(Kind::Volume, &name, Action::Create, Some(xml));
        if let Some(vol) = lookup(&name) {
            let live = volume_facts(&vol, &name)?;
            let want = live::volume(&format!("volume {name}"), s.xml.as_deref().unwrap_or(""))?;
            let is_ours = owned_volumes.contains(name.as_str());
            s.action = match (diff::volume(&live, &want), is_ours) {
                _ if !is_ours && used_by_others.contains(&name) => Action::Conflict {
                    reason: format!("used by a domain that is not cluster {me}'s"),
                },
                (Change::Same, _) => Action::Unchanged,
                (Change::InPlace(w), true) => Action::UpdateInPlace { what: joined(w) },
                (Change::Recreate(r), true) => Action::Recreate { reason: joined(r) },
                (Change::InPlace(r) | Change::Recreate(r), false) => Action::Conflict {
                    reason: format!(
                        "exists, differs ({}) and no domain of cluster {me} uses it",
                        joined(r)
                    ),
                },
            };
            if !is_ours && s.action == Action::Unchanged {
                s.note = Some("exists as wanted; adopted".into());
            }
        } else if pool.as_ref().is_some_and(|(_, _, active)| !active) {
            s.note = Some("pool inactive: existence checked at apply".into());
        }
        steps.push(s);
    }

    // Networks.
    for net in cluster.networks() {
        let name = net.name.to_string();
        let want = network::xml(cluster, net)?;
        let s = match conn.lookup_network_by_name(&name) {
            Err(_) => step(Kind::Network, &name, Action::Create, Some(want)),
            Ok(n) => {
                let object = format!("network {name}");
                let xml = n.xml_desc(0).map_err(|e| lv(&object, &e))?;
                let live = live::network(&object, &xml)?;
                let active = n.is_active().map_err(|e| lv(&object, &e))?;
                let action = compare(&me, &object, &xml, &want, active, "network", || {
                    Ok(diff::network(&live, &live::network(&object, &want)?))
                })?;
                let xml = match (&action, &live.uuid) {
                    (Action::UpdateInPlace { .. } | Action::Recreate { .. }, Some(u)) => {
                        network::xml_with_uuid(cluster, net, u)?
                    }
                    _ => want,
                };
                step(Kind::Network, &name, action, Some(xml))
            }
        };
        steps.push(s);
    }

    // Domains.
    for vm in cluster.vms() {
        let name = vm.name.to_string();
        let want = domain::xml(cluster, vm)?;
        let s = match conn.lookup_domain_by_name(&name) {
            Err(_) => step(Kind::Domain, &name, Action::Create, Some(want)),
            Ok(d) => {
                let object = format!("domain {name}");
                let xml = d.xml_desc(0).map_err(|e| lv(&object, &e))?;
                let live = live::domain(&object, &xml)?;
                let active = d.is_active().map_err(|e| lv(&object, &e))?;
                let action = compare(&me, &object, &xml, &want, active, "domain", || {
                    Ok(diff::domain(&live, &live::domain(&object, &want)?))
                })?;
                let xml = match (&action, &live.uuid) {
                    (Action::UpdateInPlace { .. } | Action::Recreate { .. }, Some(u)) => {
                        domain::xml_with_uuid(cluster, vm, u)?
                    }
                    _ => want,
                };
                step(Kind::Domain, &name, action, Some(xml))
            }
        };
        steps.push(s);
    }

    // Owned objects no longer in the model: domains, their volumes, networks.
    let gone = format!("owned by cluster {me}, no longer in the model");
    let mut deleted_volumes = Vec::new();
    for (name, d) in &owned {
        if cluster.vm(name).is_some() {
            continue;
        }
        let mut s = step(Kind::Domain, name, Action::Delete, None);
        s.note = Some(gone.clone());
        steps.push(s);
        for (p, v, _) in &d.facts.disks {
            if *p == pool_name && !wanted_volumes.contains(v) && lookup(v).is_some() {
                deleted_volumes.push(v.clone());
            }
        }
        // Its Ignition config (`<vm>.ign`, see [`crate::ignition`]).
        let ign = format!("{name}.ign");
        if lookup(&ign).is_some() {
            deleted_volumes.push(ign);
        }
    }
    deleted_volumes.sort();
    deleted_volumes.dedup();
    for v in deleted_volumes {
        let mut s = step(Kind::Volume, &v, Action::Delete, None);
        s.note = Some(format!("volume of a deleted domain of cluster {me}"));
        steps.push(s);
    }
    for name in owned_networks(conn, &me)? {
        if cluster.network(&name).is_none() {
            let mut s = step(Kind::Network, &name, Action::Delete, None);
            s.note = Some(gone.clone());
            steps.push(s);
        }
    }
    Ok(Plan {
        cluster: me,
        pool: pool_name,
        steps,
    })
}

/// Ownership check, hash and fact comparison shared by networks and domains.
/// Equal hashes mean the desired state has not changed since the object was
/// defined; the facts are compared anyway, so a live definition edited
/// behind our back (drift) is put right too.
fn compare(
    me: &str,
    object: &str,
    live_xml: &str,
    want_xml: &str,
    active: bool,
    kind: &str,
    changed: impl FnOnce() -> Result<Change, Error>,
) -> Result<Action, Error> {
    let o = match owner_of(object, live_xml)? {
        None => {
            return Ok(Action::Conflict {
                reason: "exists and is not managed by flatcar-microcloud".into(),
            })
        }
        Some(o) if o.cluster != me => {
            return Ok(Action::Conflict {
                reason: format!("owned by cluster {:?}", o.cluster),
            })
        }
        Some(o) => o,
    };
    let same_hash = owner_of(object, want_xml)?.is_some_and(|w| w.hash == o.hash);
    let drift = if same_hash {
        "; the live definition drifted from the model"
    } else {
        ""
    };
    let when = match (active, kind) {
        (false, _) => "",
        (true, "network") => "; running network: updated live (virNetworkUpdate)",
        (true, _) => "; running domain: takes effect at its next boot",
    };
    Ok(match changed()? {
        Change::Same if same_hash => Action::Unchanged,
        Change::Same => Action::UpdateInPlace {
            what: "definition changed (content hash differs)".into(),
        },
        // A network's in-place changes (its DHCP and DNS hosts) are left
        // out of its hash: an equal hash says nothing about drift there.
        Change::InPlace(w) => Action::UpdateInPlace {
            what: format!(
                "{}{}{when}",
                joined(w),
                if kind == "network" { "" } else { drift }
            ),
        },
        Change::Recreate(r) => Action::Recreate {
            reason: format!("{}{drift}", joined(r)),
        },
    })
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// Mutating libvirt calls made.
    pub mutations: usize,
    /// Steps completed, in order (`"<action> <kind> <name>"`).
    pub done: Vec<String>,
}

/// Applies `plan` without progress reporting. See [`apply_with`] (the
/// caller draws progress from its callback).
pub fn apply(conn: &Connect, plan: &Plan) -> Result<Report, Error> {
    apply_with(conn, plan, &mut |_, _, _| {})
}

/// Counts mutating calls.
struct Calls {
    n: usize,
}

impl Calls {
    fn run<T>(
        &mut self,
        object: &str,
        f: impl FnOnce() -> Result<T, virt::error::Error>,
    ) -> Result<T, Error> {
        self.n += 1;
        f().map_err(|e| lv(object, &e))
    }
}

/// Applies `plan` in its order (pool, volumes, networks, domains, then
/// deletions), calling `progress(i, n, step)` before the i-th of n changing
/// steps. Refuses a plan with a conflict before changing anything; stops at
/// the first failure with [`Error::Partial`] naming the object. Unchanged
/// steps make no calls.
pub fn apply_with(
    conn: &Connect,
    plan: &Plan,
    progress: &mut dyn FnMut(usize, usize, &Step),
) -> Result<Report, Error> {
    virt::error::clear_error_callback();
    if let Some(c) = plan
        .steps
        .iter()
        .find(|s| matches!(s.action, Action::Conflict { .. }))
    {
        return Err(Error::Refused {
            object: c.object(),
            reason: format!("{} (nothing was changed)", c.reason()),
        });
    }
    let total = plan.changes();
    let mut calls = Calls { n: 0 };
    let mut done = Vec::new();
    for s in plan.steps.iter().filter(|s| s.action != Action::Unchanged) {
        progress(done.len() + 1, total, s);
        let object = s.object();
        run_step(conn, plan, s, &mut calls).map_err(|e| match e {
            Error::Libvirt { object, source } => Error::Partial {
                object,
                applied: done.len(),
                total,
                source,
            },
            other => other,
        })?;
        done.push(format!("{} {object}", s.action.label()));
    }
    Ok(Report {
        mutations: calls.n,
        done,
    })
}

fn run_step(conn: &Connect, plan: &Plan, s: &Step, calls: &mut Calls) -> Result<(), Error> {
    let object = s.object();
    let o = object.as_str();
    let xml = s.xml.as_deref().unwrap_or_default();
    let pool = || {
        conn.lookup_storage_pool_by_name(&plan.pool)
            .map_err(|e| lv(&format!("pool {}", plan.pool), &e))
    };
    match (s.kind, &s.action) {
        (Kind::Pool, Action::Create) => {
            let p = calls.run(o, || conn.define_storage_pool_xml(xml, 0))?;
            calls.run(o, || p.build(0))?;
            calls.run(o, || p.set_autostart(true))?;
            calls.run(o, || p.create(0))?;
        }
        (Kind::Pool, Action::UpdateInPlace { .. }) => {
            let p = pool()?;
            calls.run(o, || p.create(0))?;
        }
        (Kind::Pool, Action::Delete) => {
            let p = pool()?;
            if p.is_active().map_err(|e| lv(o, &e))? {
                calls.run(o, || p.destroy())?;
            }
            calls.run(o, || p.undefine())?;
        }
        (Kind::Volume, Action::Create) => {
            let p = pool()?;
            if let Ok(v) = p.lookup_storage_vol_by_name(&s.name) {
                // Only reachable when the pool was inactive at plan time.
                let want = live::volume(o, xml)?;
                if diff::volume(&volume_facts(&v, &s.name)?, &want) != Change::Same {
                    return Err(Error::Refused {
                        object,
                        reason: "exists in the pool and differs from the model".into(),
                    });
                }
            } else {
                calls.run(o, || StorageVol::create_xml(&p, xml, 0))?;
            }
        }
        (Kind::Volume, Action::UpdateInPlace { .. }) => {
            let v = pool()?
                .lookup_storage_vol_by_name(&s.name)
                .map_err(|e| lv(o, &e))?;
            let want = live::volume(o, xml)?;
            calls.run(o, || v.resize(want.capacity, 0))?;
        }
        (Kind::Volume, Action::Recreate { .. }) => {
            let p = pool()?;
            let v = p
                .lookup_storage_vol_by_name(&s.name)
                .map_err(|e| lv(o, &e))?;
            calls.run(o, || v.delete(0))?;
            calls.run(o, || StorageVol::create_xml(&p, xml, 0))?;
        }
        (Kind::Volume, Action::Delete) => {
            if let Ok(v) = pool()?.lookup_storage_vol_by_name(&s.name) {
                calls.run(o, || v.delete(0))?;
            }
        }
        (Kind::Network, Action::Create) => {
            calls.run(o, || conn.define_network_xml(xml))?;
        }
        (Kind::Network, Action::UpdateInPlace { .. }) => {
            // The definition takes the new reservations at once; a running
            // network (its dnsmasq) only through virNetworkUpdate, element
            // by element: without it the change waits for a network
            // restart, and every later plan shows it again.
            let n = conn
                .lookup_network_by_name(&s.name)
                .map_err(|e| lv(o, &e))?;
            let running = if n.is_active().map_err(|e| lv(o, &e))? {
                let now = n.xml_desc(0).map_err(|e| lv(o, &e))?;
                Some(live::network(o, &now)?)
            } else {
                None
            };
            calls.run(o, || conn.define_network_xml(xml))?;
            if let Some(now) = running {
                for u in diff::host_updates(&now, &live::network(o, xml)?) {
                    update_running(&n, o, &u, calls)?;
                }
            }
        }
        (Kind::Network, Action::Recreate { .. }) => {
            let n = conn
                .lookup_network_by_name(&s.name)
                .map_err(|e| lv(o, &e))?;
            if n.is_active().map_err(|e| lv(o, &e))? {
                return Err(Error::Refused {
                    object,
                    reason: format!(
                        "{}: the network is running; stop it first (virsh net-destroy), its VMs lose connectivity",
                        s.reason()
                    ),
                });
            }
            calls.run(o, || n.undefine())?;
            calls.run(o, || conn.define_network_xml(xml))?;
        }
        (Kind::Network, Action::Delete) => {
            let n = conn
                .lookup_network_by_name(&s.name)
                .map_err(|e| lv(o, &e))?;
            if n.is_active().map_err(|e| lv(o, &e))? {
                calls.run(o, || n.destroy())?;
            }
            calls.run(o, || n.undefine())?;
        }
        (Kind::Domain, Action::Create | Action::UpdateInPlace { .. }) => {
            calls.run(o, || define_validated(conn, xml))?;
        }
        (Kind::Domain, Action::Recreate { .. }) => {
            let d = conn.lookup_domain_by_name(&s.name).map_err(|e| lv(o, &e))?;
            calls.run(o, || d.undefine())?;
            calls.run(o, || define_validated(conn, xml))?;
        }
        (Kind::Domain, Action::Delete) => {
            let d = conn.lookup_domain_by_name(&s.name).map_err(|e| lv(o, &e))?;
            if d.is_active().map_err(|e| lv(o, &e))? {
                calls.run(o, || d.destroy())?;
            }
            calls.run(o, || d.undefine())?;
        }
        (_, Action::Unchanged | Action::Conflict { .. }) => {}
        (Kind::Pool, Action::Recreate { .. }) => {
            return Err(Error::Refused {
                object,
                reason: "pools are never recreated".into(),
            })
        }
    }
    Ok(())
}

/// Domains that `plan` would delete or recreate and that are running now:
/// deleting one stops it on the spot (a K3s node undrained, a load balancer
/// still in its peers' configs). A deploy should refuse such a plan and let
/// the rolling plan drain and stop them first; [`destroy`] does not ask.
/// Read-only.
pub fn running_removals(conn: &Connect, plan: &Plan) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for s in &plan.steps {
        if s.kind != Kind::Domain || !matches!(s.action, Action::Delete | Action::Recreate { .. }) {
            continue;
        }
        let object = s.object();
        if let Ok(d) = conn.lookup_domain_by_name(&s.name) {
            if d.is_active().map_err(|e| lv(&object, &e))? {
                out.push(s.name.clone());
            }
        }
    }
    Ok(out)
}

/// The plan [`destroy`] runs: every owned domain and the volumes it uses in
/// the cluster's pool, every owned network; then the base images and the
/// pool itself, only when nothing but those would be left in it (a foreign
/// volume keeps both). Read-only.
pub fn destroy_plan(conn: &Connect, cluster: &Cluster) -> Result<Plan, Error> {
    virt::error::clear_error_callback();
    let me = cluster.name().to_string();
    let pool_name = cluster.host().pool.name.to_string();
    let pool = pool_state(conn, cluster)?;
    let pool_is_ours = pool
        .as_ref()
        .is_some_and(|(_, f, _)| f.kind == "dir" && f.path == cluster.host().pool.path.as_str());
    let (owned, used_by_others) = domains(conn, &me, &pool_name)?;
    let mut steps = Vec::new();
    let mut volumes = BTreeSet::new();
    for (name, d) in &owned {
        let mut s = step(Kind::Domain, name, Action::Delete, None);
        s.note = Some(format!("owned by cluster {me}"));
        steps.push(s);
        volumes.extend(
            d.facts
                .disks
                .iter()
                .filter(|(p, _, _)| *p == pool_name)
                .map(|(_, v, _)| v.clone()),
        );
    }
    let existing: BTreeSet<String> = match &pool {
        Some((p, _, true)) => p
            .list_volumes()
            .map_err(|e| lv(&format!("pool {pool_name}"), &e))?
            .into_iter()
            .collect(),
        _ => BTreeSet::new(),
    };
    // Ignition configs (`<vm>.ign`, see [`crate::ignition`]) of owned
    // domains and of the model's VMs: in the cluster's own pool, named
    // after its VMs.
    volumes.extend(
        owned
            .keys()
            .map(|d| format!("{d}.ign"))
            .chain(cluster.vms().iter().map(|vm| format!("{}.ign", vm.name)))
            .filter(|v| existing.contains(v) && !used_by_others.contains(v)),
    );
    for v in volumes.iter().filter(|v| existing.contains(*v)) {
        let mut s = step(Kind::Volume, v, Action::Delete, None);
        s.note = Some(format!("used by a domain of cluster {me}"));
        steps.push(s);
    }
    // Volumes of the model that no owned domain uses (an apply stopped
    // before defining their domain): the plan adopts them when they are
    // exactly as wanted, so destroy removes them on the same terms.
    if let Some((p, _, true)) = &pool {
        for (name, xml) in volume::xmls(cluster)? {
            if volumes.contains(&name)
                || !existing.contains(&name)
                || used_by_others.contains(&name)
            {
                continue;
            }
            let Ok(v) = p.lookup_storage_vol_by_name(&name) else {
                continue;
            };
            let want = live::volume(&format!("volume {name}"), &xml)?;
            if diff::volume(&volume_facts(&v, &name)?, &want) == Change::Same {
                let mut s = step(Kind::Volume, &name, Action::Delete, None);
                s.note = Some(format!(
                    "a volume of cluster {me} whose domain was never defined"
                ));
                steps.push(s);
                volumes.insert(name);
            }
        }
    }
    for name in owned_networks(conn, &me)? {
        let mut s = step(Kind::Network, &name, Action::Delete, None);
        s.note = Some(format!("owned by cluster {me}"));
        steps.push(s);
    }
    let bases: BTreeSet<String> = volume::base_images(cluster).into_iter().collect();
    let left: Vec<&String> = existing.difference(&volumes).collect();
    if pool_is_ours && left.iter().all(|v| bases.contains(*v)) {
        for v in left {
            let mut s = step(Kind::Volume, v, Action::Delete, None);
            s.note = Some("base image of the cluster's pool".into());
            steps.push(s);
        }
        let mut s = step(Kind::Pool, &pool_name, Action::Delete, None);
        s.note = Some("the cluster's pool, now empty (its directory is left in place)".into());
        steps.push(s);
    }
    Ok(Plan {
        cluster: me,
        pool: pool_name,
        steps,
    })
}

/// Removes every object this cluster owns ([`destroy_plan`]); foreign
/// objects are never touched.
pub fn destroy(conn: &Connect, cluster: &Cluster) -> Result<Report, Error> {
    let p = destroy_plan(conn, cluster)?;
    apply_with(conn, &p, &mut |_, _, _| {})
}
