//! Plan and apply against a live libvirt (feature `libvirt`).
//!
//! [`plan`] compares the desired objects with what the connection has:
//! create, update in place (redefine), unchanged, delete (only objects
//! carrying this cluster's ownership metadata), or conflict (an object of
//! the same name that is not ours — never touched). [`apply`] runs a plan in
//! dependency order and stops at the first failure naming the object;
//! applying the same cluster twice makes zero mutating calls the second
//! time. [`destroy`] removes only owned objects. Nothing is ever started:
//! networks and domains are only defined.

use super::{documents, storage};
use crate::{Cluster, Error};
use std::fmt;
pub use virt::connect::Connect;
use virt::storage_pool::StoragePool;
use virt::storage_vol::StorageVol;

/// Opens a connection (`test:///default`, `qemu:///system`, …) with
/// libvirt's own error printing silenced (errors are returned, typed).
pub fn connect(uri: &str) -> Result<Connect, Error> {
    virt::error::clear_error_callback();
    Connect::open(Some(uri)).map_err(|e| lv(uri, e))
}

/// Names of every domain and network on the connection (owned or not).
pub fn inventory(conn: &Connect) -> Result<(Vec<String>, Vec<String>), Error> {
    let d = conn
        .list_all_domains(0)
        .map_err(|e| lv("domains", e))?
        .iter()
        .filter_map(|d| d.name().ok())
        .collect();
    let n = conn
        .list_all_networks(0)
        .map_err(|e| lv("networks", e))?
        .iter()
        .filter_map(|n| n.name().ok())
        .collect();
    Ok((d, n))
}

/// What kind of libvirt object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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
    /// It does not exist: define/create it.
    Create,
    /// It is ours and differs: redefine it (reason given).
    Update(String),
    /// It is ours and matches.
    Unchanged,
    /// It is ours and no longer wanted.
    Delete,
    /// An object of that name exists and is not ours: left alone, apply refuses.
    Conflict(String),
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
    xml: Option<String>,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, why) = match &self.action {
            Action::Create => ("create", String::new()),
            Action::Update(r) => ("update", r.clone()),
            Action::Unchanged => ("unchanged", String::new()),
            Action::Delete => (
                "delete",
                "owned by this cluster, no longer in the model".into(),
            ),
            Action::Conflict(r) => ("conflict", r.clone()),
        };
        write!(f, "{a:<9} {:<8} {}", self.kind, self.name)?;
        if !why.is_empty() {
            write!(f, "  ({why})")?;
        }
        Ok(())
    }
}

/// A plan: steps in the order they are applied.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Steps.
    pub steps: Vec<Step>,
}

impl Plan {
    /// Steps that would change something.
    pub fn changes(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| !matches!(s.action, Action::Unchanged))
            .count()
    }
}

fn lv(object: &str, e: virt::error::Error) -> Error {
    Error::Libvirt {
        object: object.to_string(),
        message: e.message().to_string(),
    }
}

fn attr<'a>(xml: &'a str, element: &str, name: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{element} "))?;
    let rest = &xml[start..];
    let end = rest.find('>')?;
    let tag = &rest[..end];
    let key = format!("{name}=");
    let at = tag.find(&key)? + key.len();
    let quote = tag[at..].chars().next()?;
    let v = &tag[at + 1..];
    v.find(quote).map(|e| &v[..e])
}

/// The owning cluster and hash in an object's XML, if it is ours at all.
pub fn ownership(xml: &str) -> Option<(String, String)> {
    Some((
        attr(xml, "fmc:owner", "cluster")?.to_string(),
        attr(xml, "fmc:owner", "hash")?.to_string(),
    ))
}

fn text_of<'a>(xml: &'a str, element: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{element}"))?;
    let rest = &xml[start..];
    let open_end = rest.find('>')? + 1;
    let close = rest.find(&format!("</{element}>"))?;
    rest.get(open_end..close)
}

fn reason(kind: Kind, live: &str, want: &str) -> String {
    if kind == Kind::Domain {
        let mut r = Vec::new();
        if let (Some(a), Some(b)) = (text_of(live, "vcpu"), text_of(want, "vcpu")) {
            if a.trim() != b.trim() {
                r.push(format!("vcpu {} -> {}", a.trim(), b.trim()));
            }
        }
        let mem = |x: &str, kib: bool| {
            text_of(x, "memory")
                .and_then(|m| m.trim().parse::<u64>().ok())
                .map(|m| if kib { m / 1024 } else { m })
        };
        if let (Some(a), Some(b)) = (mem(live, true), mem(want, false)) {
            if a != b {
                r.push(format!("memory {a} MiB -> {b} MiB"));
            }
        }
        let nics = |x: &str| x.matches("<interface ").count();
        if nics(live) != nics(want) {
            r.push(format!("nics {} -> {}", nics(live), nics(want)));
        }
        if !r.is_empty() {
            return format!(
                "{}; redefined in place, applies at next start",
                r.join(", ")
            );
        }
    }
    "definition changed (content hash differs); redefined in place".into()
}

fn compare(cluster: &Cluster, kind: Kind, name: &str, live: Option<String>, want: String) -> Step {
    let action = match live {
        None => Action::Create,
        Some(live) => match ownership(&live) {
            Some((c, h)) if c == cluster.name().as_str() => {
                if ownership(&want).map(|(_, w)| w) == Some(h) {
                    Action::Unchanged
                } else {
                    // libvirt redefines an object by name only with its UUID.
                    if let (Some(uuid), Some(at)) = (text_of(&live, "uuid"), want.find("</name>\n"))
                    {
                        let at = at + "</name>\n".len();
                        let xml = format!(
                            "{}  <uuid>{}</uuid>\n{}",
                            &want[..at],
                            uuid.trim(),
                            &want[at..]
                        );
                        return Step {
                            kind,
                            name: name.to_string(),
                            action: Action::Update(reason(kind, &live, &want)),
                            xml: Some(xml),
                        };
                    }
                    Action::Update(reason(kind, &live, &want))
                }
            }
            Some((c, _)) => Action::Conflict(format!("owned by cluster {c:?}")),
            None => Action::Conflict("exists and is not managed by flatcar-microcloud".into()),
        },
    };
    Step {
        kind,
        name: name.to_string(),
        action,
        xml: Some(want),
    }
}

fn pool_of(conn: &Connect, cluster: &Cluster) -> Option<StoragePool> {
    conn.lookup_storage_pool_by_name(cluster.host().pool.name.as_str())
        .ok()
}

/// The Flatcar base image volume for the cluster's default image: an empty
/// qcow2 placeholder when missing (upload the real image with `virsh
/// vol-upload` before starting VMs).
fn base_volume_xml(cluster: &Cluster) -> Result<(String, String), Error> {
    let name = cluster.spec().image.volume_name();
    let xml = format!(
        "<volume>\n  <name>{name}</name>\n  <capacity unit=\"GiB\">9</capacity>\n  <allocation unit=\"GiB\">0</allocation>\n  <target>\n    <format type=\"qcow2\"/>\n  </target>\n</volume>\n"
    );
    Ok((name, xml))
}

/// Compares the cluster's objects with what `conn` has.
pub fn plan(conn: &Connect, cluster: &Cluster) -> Result<Plan, Error> {
    virt::error::clear_error_callback();
    let mut steps = Vec::new();
    let docs = documents(cluster)?;
    let pool_name = cluster.host().pool.name.to_string();
    let pool = pool_of(conn, cluster);
    for (_, kind, xml) in &docs {
        match *kind {
            "storagepool" => {
                let action = match &pool {
                    None => Action::Create,
                    Some(p) => {
                        let live = p.xml_desc(0).map_err(|e| lv(&pool_name, e))?;
                        let path = text_of(&live, "path")
                            .unwrap_or_default()
                            .trim()
                            .to_string();
                        if path == cluster.host().pool.path.as_str() {
                            Action::Unchanged
                        } else {
                            Action::Conflict(format!("pool exists with path {path}"))
                        }
                    }
                };
                steps.push(Step {
                    kind: Kind::Pool,
                    name: pool_name.clone(),
                    action,
                    xml: Some(xml.clone()),
                });
                let (base, base_xml) = base_volume_xml(cluster)?;
                let exists = pool
                    .as_ref()
                    .is_some_and(|p| p.lookup_storage_vol_by_name(&base).is_ok());
                steps.push(Step {
                    kind: Kind::Volume,
                    name: base,
                    action: if exists {
                        Action::Unchanged
                    } else {
                        Action::Create
                    },
                    xml: Some(base_xml),
                });
            }
            "storagevol" => {
                let name = text_of(xml, "name").unwrap_or_default().to_string();
                let exists = pool
                    .as_ref()
                    .is_some_and(|p| p.lookup_storage_vol_by_name(&name).is_ok());
                steps.push(Step {
                    kind: Kind::Volume,
                    name,
                    action: if exists {
                        Action::Unchanged
                    } else {
                        Action::Create
                    },
                    xml: Some(xml.clone()),
                });
            }
            "network" => {
                let name = text_of(xml, "name").unwrap_or_default().to_string();
                let live = match conn.lookup_network_by_name(&name) {
                    Ok(n) => Some(n.xml_desc(0).map_err(|e| lv(&name, e))?),
                    Err(_) => None,
                };
                steps.push(compare(cluster, Kind::Network, &name, live, xml.clone()));
            }
            _ => {
                let name = text_of(xml, "name").unwrap_or_default().to_string();
                let live = match conn.lookup_domain_by_name(&name) {
                    Ok(d) => Some(d.xml_desc(0).map_err(|e| lv(&name, e))?),
                    Err(_) => None,
                };
                steps.push(compare(cluster, Kind::Domain, &name, live, xml.clone()));
            }
        }
    }
    steps.extend(owned_leftovers(conn, cluster, &docs)?);
    Ok(Plan { steps })
}

/// Owned domains and networks no longer in the model, and the volumes of
/// those domains.
fn owned_leftovers(
    conn: &Connect,
    cluster: &Cluster,
    docs: &[(String, &'static str, String)],
) -> Result<Vec<Step>, Error> {
    let wanted: std::collections::BTreeSet<String> = docs
        .iter()
        .filter_map(|(_, _, xml)| text_of(xml, "name").map(str::to_string))
        .collect();
    let mine = |xml: &str| ownership(xml).is_some_and(|(c, _)| c == cluster.name().as_str());
    let mut out = Vec::new();
    for d in conn.list_all_domains(0).map_err(|e| lv("domains", e))? {
        let name = d.name().map_err(|e| lv("domain", e))?;
        let xml = d.xml_desc(0).map_err(|e| lv(&name, e))?;
        if mine(&xml) && !wanted.contains(&name) {
            let pool = cluster.host().pool.name.as_str();
            let mut rest = xml.as_str();
            while let Some(i) = rest.find("<source pool=") {
                let tag = &rest[i..];
                if attr(tag, "source", "pool") == Some(pool) {
                    if let Some(v) = attr(tag, "source", "volume") {
                        out.push(Step {
                            kind: Kind::Volume,
                            name: v.to_string(),
                            action: Action::Delete,
                            xml: None,
                        });
                    }
                }
                rest = &rest[i + 1..];
            }
            out.push(Step {
                kind: Kind::Domain,
                name,
                action: Action::Delete,
                xml: None,
            });
        }
    }
    for n in conn.list_all_networks(0).map_err(|e| lv("networks", e))? {
        let name = n.name().map_err(|e| lv("network", e))?;
        let xml = n.xml_desc(0).map_err(|e| lv(&name, e))?;
        if mine(&xml) && !wanted.contains(&name) {
            out.push(Step {
                kind: Kind::Network,
                name,
                action: Action::Delete,
                xml: None,
            });
        }
    }
    Ok(out)
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// Mutating libvirt calls made.
    pub mutations: usize,
    /// Steps completed, in order.
    pub done: Vec<String>,
}

/// Applies `plan`: creates and updates in dependency order (pool, volumes,
/// networks, domains), then deletes (domains, volumes, networks). Refuses a
/// plan with conflicts before changing anything; stops at the first failure
/// with an error naming the object (the report of what was done so far is
/// in the error message).
pub fn apply(
    conn: &Connect,
    cluster: &Cluster,
    plan: &Plan,
    progress: &mut dyn FnMut(usize, usize, &Step),
) -> Result<Report, Error> {
    virt::error::clear_error_callback();
    if let Some(c) = plan
        .steps
        .iter()
        .find(|s| matches!(s.action, Action::Conflict(_)))
    {
        return Err(Error::Libvirt {
            object: format!("{} {}", c.kind, c.name),
            message: format!("refusing to apply: {c}"),
        });
    }
    let mut report = Report::default();
    let total = plan.changes();
    let mut order: Vec<&Step> = plan
        .steps
        .iter()
        .filter(|s| !matches!(s.action, Action::Unchanged | Action::Delete))
        .collect();
    let mut deletes: Vec<&Step> = plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Delete)
        .collect();
    deletes.sort_by_key(|s| match s.kind {
        Kind::Domain => 0,
        Kind::Volume => 1,
        Kind::Network => 2,
        Kind::Pool => 3,
    });
    order.extend(deletes);
    let pool_name = cluster.host().pool.name.to_string();
    for step in order {
        let object = format!("{} {}", step.kind, step.name);
        let fail = |e: virt::error::Error, report: &Report| Error::Libvirt {
            object: object.clone(),
            message: format!(
                "{} (already done: {})",
                e.message(),
                if report.done.is_empty() {
                    "nothing".into()
                } else {
                    report.done.join(", ")
                }
            ),
        };
        let xml = step.xml.as_deref().unwrap_or_default();
        progress(report.done.len() + 1, total, step);
        match (&step.kind, &step.action) {
            (Kind::Pool, Action::Create) => {
                let p = conn
                    .define_storage_pool_xml(xml, 0)
                    .map_err(|e| fail(e, &report))?;
                p.build(0).map_err(|e| fail(e, &report))?;
                p.create(0).map_err(|e| fail(e, &report))?;
                report.mutations += 3;
            }
            (Kind::Volume, Action::Create) => {
                let pool = conn
                    .lookup_storage_pool_by_name(&pool_name)
                    .map_err(|e| fail(e, &report))?;
                if !pool.is_active().map_err(|e| fail(e, &report))? {
                    pool.create(0).map_err(|e| fail(e, &report))?;
                    report.mutations += 1;
                }
                StorageVol::create_xml(&pool, xml, 0).map_err(|e| fail(e, &report))?;
                report.mutations += 1;
            }
            (Kind::Network, Action::Create | Action::Update(_)) => {
                conn.define_network_xml(xml).map_err(|e| fail(e, &report))?;
                report.mutations += 1;
            }
            (Kind::Domain, Action::Create | Action::Update(_)) => {
                conn.define_domain_xml(xml).map_err(|e| fail(e, &report))?;
                report.mutations += 1;
            }
            (Kind::Domain, Action::Delete) => {
                let d = conn
                    .lookup_domain_by_name(&step.name)
                    .map_err(|e| fail(e, &report))?;
                if d.is_active().map_err(|e| fail(e, &report))? {
                    d.destroy().map_err(|e| fail(e, &report))?;
                    report.mutations += 1;
                }
                d.undefine().map_err(|e| fail(e, &report))?;
                report.mutations += 1;
            }
            (Kind::Volume, Action::Delete) => {
                if let Ok(pool) = conn.lookup_storage_pool_by_name(&pool_name) {
                    if let Ok(v) = pool.lookup_storage_vol_by_name(&step.name) {
                        v.delete(0).map_err(|e| fail(e, &report))?;
                        report.mutations += 1;
                    }
                }
            }
            (Kind::Network, Action::Delete) => {
                let n = conn
                    .lookup_network_by_name(&step.name)
                    .map_err(|e| fail(e, &report))?;
                if n.is_active().map_err(|e| fail(e, &report))? {
                    n.destroy().map_err(|e| fail(e, &report))?;
                    report.mutations += 1;
                }
                n.undefine().map_err(|e| fail(e, &report))?;
                report.mutations += 1;
            }
            _ => {}
        }
        report.done.push(object);
    }
    Ok(report)
}

/// Removes every object this cluster owns (domains and their volumes,
/// networks, the base image and the pool if it then holds nothing else).
/// Foreign objects are never touched.
pub fn destroy(conn: &Connect, cluster: &Cluster) -> Result<Report, Error> {
    virt::error::clear_error_callback();
    let mine = |xml: &str| ownership(xml).is_some_and(|(c, _)| c == cluster.name().as_str());
    let mut steps = Vec::new();
    let pool_name = cluster.host().pool.name.to_string();
    for d in conn.list_all_domains(0).map_err(|e| lv("domains", e))? {
        let name = d.name().map_err(|e| lv("domain", e))?;
        if mine(&d.xml_desc(0).map_err(|e| lv(&name, e))?) {
            if let Some(vm) = cluster.vm(&name) {
                steps.push(Step {
                    kind: Kind::Volume,
                    name: storage::root_volume(vm),
                    action: Action::Delete,
                    xml: None,
                });
                for disk in &vm.data_disks {
                    steps.push(Step {
                        kind: Kind::Volume,
                        name: storage::data_volume(vm, disk),
                        action: Action::Delete,
                        xml: None,
                    });
                }
            }
            steps.push(Step {
                kind: Kind::Domain,
                name,
                action: Action::Delete,
                xml: None,
            });
        }
    }
    for n in conn.list_all_networks(0).map_err(|e| lv("networks", e))? {
        let name = n.name().map_err(|e| lv("network", e))?;
        if mine(&n.xml_desc(0).map_err(|e| lv(&name, e))?) {
            steps.push(Step {
                kind: Kind::Network,
                name,
                action: Action::Delete,
                xml: None,
            });
        }
    }
    let mut report = apply(conn, cluster, &Plan { steps }, &mut |_, _, _| {})?;
    if let Ok(pool) = conn.lookup_storage_pool_by_name(&pool_name) {
        if pool.path_matches(cluster) {
            if let Ok(v) = pool.lookup_storage_vol_by_name(&cluster.spec().image.volume_name()) {
                v.delete(0).map_err(|e| lv("base image", e))?;
                report.mutations += 1;
            }
            if pool
                .list_all_volumes(0)
                .map(|v| v.is_empty())
                .unwrap_or(false)
            {
                if pool.is_active().unwrap_or(false) {
                    pool.destroy().map_err(|e| lv(&pool_name, e))?;
                    report.mutations += 1;
                }
                pool.undefine().map_err(|e| lv(&pool_name, e))?;
                report.mutations += 1;
            }
        }
    }
    Ok(report)
}

trait PathMatches {
    fn path_matches(&self, cluster: &Cluster) -> bool;
}

impl PathMatches for StoragePool {
    fn path_matches(&self, cluster: &Cluster) -> bool {
        self.xml_desc(0)
            .ok()
            .and_then(|x| {
                text_of(&x, "path").map(|p| p.trim() == cluster.host().pool.path.as_str())
            })
            .unwrap_or(false)
    }
}
