//! Service composition: what each VM gets at first boot, and how services
//! contribute to it.
//!
//! Every service crate reaches a node through [`Contributions`]: it adds
//! files, systemd units, sysctls, firewall flows, DNS records, bundle
//! artifacts and secrets, and never writes a provisioning format itself.
//! Two services contributing the same item is a collision, reported naming
//! both. Rendering a [`Node`] (Ignition v3 for Flatcar) and the base service
//! the model alone implies (hostname, networkd, users) live in
//! `flatcar-ignition`, whose `compose` runs that base service first.
//!
//! ```
//! use flatcar_topology::provision::{Composed, File, MemorySecrets, Service, Contributions};
//! use flatcar_topology::{net4, Cluster, HostBuilder, Role};
//!
//! struct Motd;
//! impl Service for Motd {
//!     fn name(&self) -> &'static str { "motd" }
//!     fn contribute(&self, cluster: &Cluster, out: &mut Contributions<'_>) -> Result<(), flatcar_topology::Error> {
//!         for vm in cluster.vms() {
//!             out.file(&vm.name, File::text("/etc/motd", 0o644, format!("{} of {}\n", vm.name, cluster.name())));
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let mut c = Cluster::builder("demo", HostBuilder::new("kvm1"));
//! let lan = c.lan("lan", net4!("198.18.0.0/24"), |n| n.host_at(40));
//! c.vm("web1", |vm| vm.role(Role::Worker).nic(&lan, 21));
//! c.dns("demo.home.arpa", &[std::net::Ipv4Addr::new(198, 18, 250, 53)]); // an upstream resolver for first boot
//! c.ssh_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJNBE0yGR9doLSjjPtPCkgpn6fWfiNVJ44xnctKvgyUU admin");
//! let cluster = c.build().expect("valid");
//! let mut secrets = MemorySecrets::default();
//! let out = Composed::from_services(&cluster, &[&Motd, &Motd], &mut secrets).expect_err("collision");
//! assert!(out.to_string().contains("\"/etc/motd\" is contributed twice by motd"), "{out}");
//! let out = Composed::from_services(&cluster, &[&Motd], &mut secrets).expect("no collisions");
//! assert!(out.nodes["web1"].files.contains_key("/etc/motd"));
//! ```

pub mod ready;
mod secrets;
pub mod sysext;

pub use secrets::{random_hex, MemorySecrets, SecretStore};

use crate::artifact::{Artifact as ArtifactRef, FileHash, SourceUrl};
use crate::{Cluster, Error, Flow, Name, Secret, SecretId};
use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

/// Why a provisioning item was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProvisionError {
    /// Two services (or one, twice) wrote the same item.
    #[error("{}: {kind} {} is contributed {}", crate::text::shown(.node), crate::text::shown(.item), contributors(.first, .second))]
    Collision {
        /// VM name, or `bundle` for artifacts.
        node: String,
        /// `file`, `unit`, `sysctl`, `artifact`, `dns record`.
        kind: &'static str,
        /// Path or name.
        item: String,
        /// First service.
        first: &'static str,
        /// Second service.
        second: &'static str,
    },
    /// A contribution names a VM that does not exist.
    #[error("service {service}: vm {} does not exist", crate::text::shown(.vm))]
    UnknownVm {
        /// The service.
        service: &'static str,
        /// The VM name.
        vm: String,
    },
    /// A path, unit name, sysctl or URL is not acceptable.
    #[error("service {service}: {what} {} {why}", crate::text::shown(.value))]
    Invalid {
        /// The service.
        service: &'static str,
        /// What was rejected.
        what: &'static str,
        /// The value.
        value: String,
        /// Why.
        why: &'static str,
    },
}

/// systemd path escaping for unit names (`/var/mnt/pg-data` →
/// `var-mnt-pg\x2ddata`): the name of the `.mount` unit for a mount point.
pub fn systemd_escape_path(path: &str) -> String {
    use std::fmt::Write;
    let trimmed = path.trim_matches('/');
    let mut out = String::new();
    for (i, c) in trimmed.chars().enumerate() {
        match c {
            '/' => out.push('-'),
            '.' if i == 0 => out.push_str("\\x2e"),
            c if c.is_ascii_alphanumeric() || c == '_' || c == '.' => out.push(c),
            c => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
        }
    }
    out
}

/// File contents.
#[derive(Clone, PartialEq, Eq)]
pub enum Contents {
    /// Text or bytes known at render time.
    Inline(Vec<u8>),
    /// A secret: the node's Ignition config (and any artifact holding it)
    /// is written 0600.
    Secret(Secret),
    /// Fetched by Ignition at first boot, verified against the hash when
    /// one is published (an unverified download is listed by the plan and
    /// refused by strict rendering).
    Remote {
        /// `http(s)://` URL.
        url: SourceUrl,
        /// SHA-256/SHA-512, or `None` for an unverified artifact.
        hash: Option<FileHash>,
    },
}

impl fmt::Debug for Contents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Contents::Inline(b) => write!(f, "Inline({} bytes)", b.len()),
            Contents::Secret(_) => f.write_str("Secret(<redacted>)"),
            Contents::Remote { url, hash: Some(h) } => write!(f, "Remote({url}, {h})"),
            Contents::Remote { url, hash: None } => write!(f, "Remote({url}, unverified)"),
        }
    }
}

/// A file on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Absolute path.
    pub path: String,
    /// Permission bits (e.g. `0o644`).
    pub mode: u32,
    /// Owner user name (default root).
    pub owner: Option<String>,
    /// Contents.
    pub contents: Contents,
}

impl File {
    /// A text file.
    pub fn text(path: &str, mode: u32, text: impl Into<String>) -> Self {
        File {
            path: path.into(),
            mode,
            owner: None,
            contents: Contents::Inline(text.into().into_bytes()),
        }
    }

    /// A secret file (always mode 0600 unless `mode` is stricter).
    pub fn secret(path: &str, mode: u32, secret: Secret) -> Self {
        File {
            path: path.into(),
            mode: mode & 0o600,
            owner: None,
            contents: Contents::Secret(secret),
        }
    }

    /// A file fetched at first boot from a file artifact (`None` for an
    /// image artifact).
    pub fn remote(path: &str, mode: u32, artifact: &ArtifactRef) -> Option<Self> {
        let (url, hash) = artifact.as_file()?;
        Some(File {
            path: path.into(),
            mode,
            owner: None,
            contents: Contents::Remote {
                url: url.clone(),
                hash: hash.copied(),
            },
        })
    }

    /// Whether the contents are secret.
    pub fn is_secret(&self) -> bool {
        matches!(self.contents, Contents::Secret(_))
    }
}

/// A systemd unit on a node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Unit {
    /// Unit name (`haproxy.service`).
    pub name: String,
    /// Enable it (`WantedBy` of its `[Install]`).
    pub enabled: Option<bool>,
    /// Mask it.
    pub mask: bool,
    /// Full unit text; `None` for a unit shipped by Flatcar (only dropins/enable).
    pub contents: Option<String>,
    /// Dropins: file name → text.
    pub dropins: BTreeMap<String, String>,
}

impl Unit {
    /// A new enabled unit with `contents`.
    pub fn enabled(name: &str, contents: impl Into<String>) -> Self {
        Unit {
            name: name.into(),
            enabled: Some(true),
            contents: Some(contents.into()),
            ..Unit::default()
        }
    }

    /// A dropin for an existing unit.
    pub fn dropin(name: &str, dropin: &str, contents: impl Into<String>) -> Self {
        let mut dropins = BTreeMap::new();
        dropins.insert(dropin.to_string(), contents.into());
        Unit {
            name: name.into(),
            dropins,
            ..Unit::default()
        }
    }
}

/// A data disk to partition, format and mount persistently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSetup {
    /// Device (`/dev/disk/by-id/virtio-<name>`).
    pub device: String,
    /// Partition and filesystem label.
    pub label: String,
    /// Mount point (`/var/mnt/<name>`).
    pub mount: String,
    /// Filesystem type.
    pub format: String,
}

/// A DNS A record a service wants in the cluster zone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DnsRecord {
    /// Label relative to the zone (`api`, `*.apps`).
    pub name: String,
    /// Address.
    pub address: Ipv4Addr,
}

/// A file of the bundle that is not on a VM (host firewall, client configs,
/// reference copies of daemon configs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Bytes.
    pub contents: Vec<u8>,
    /// Written 0600 if true.
    pub secret: bool,
}

/// Everything one VM gets at first boot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    /// Hostname.
    pub hostname: String,
    /// Admin user.
    pub user: String,
    /// Authorized SSH keys of the admin user.
    pub ssh_keys: Vec<String>,
    /// Files by path.
    pub files: BTreeMap<String, File>,
    /// Units by name.
    pub units: BTreeMap<String, Unit>,
    /// Sysctls by key (written to `/etc/sysctl.d/90-microcloud.conf`).
    pub sysctls: BTreeMap<String, String>,
    /// Data disks.
    pub disks: Vec<DiskSetup>,
    /// Symbolic links, path → target.
    pub links: BTreeMap<String, String>,
    /// Which service contributed each item (collision bookkeeping, not rendered).
    claims: BTreeMap<(&'static str, String), &'static str>,
}

impl Node {
    /// Whether any file holds a secret (then the Ignition config is 0600).
    pub fn has_secrets(&self) -> bool {
        self.files.values().any(File::is_secret)
    }
}

/// The composed result: every node, flow, record and artifact, with the
/// service that contributed each.
#[derive(Debug, Default)]
pub struct Composed {
    /// Per VM name.
    pub nodes: BTreeMap<String, Node>,
    /// Flows services need (beyond the model's own).
    pub flows: Vec<Flow>,
    /// DNS records services want.
    pub records: Vec<DnsRecord>,
    /// Bundle artifacts by relative path.
    pub artifacts: BTreeMap<String, Artifact>,
    /// Every downloaded thing (files fetched by Ignition, images pulled),
    /// by artifact name, as resolved through the mirror and overrides.
    pub downloads: BTreeMap<String, ArtifactRef>,
}

/// A service: a function from the model to contributions.
pub trait Service {
    /// Short name, used in collision reports (`flatcar-lb`).
    fn name(&self) -> &'static str;
    /// Adds this service's contributions.
    fn contribute(&self, cluster: &Cluster, out: &mut Contributions<'_>) -> Result<(), Error>;

    /// Runs after *every* service's [`Service::contribute`], for what is
    /// derived from all contributions together: the DNS zone, which must
    /// carry every service's records ([`Contributions::records`]), rendered
    /// once for the bundle and for the DNS nodes. Records asked for here
    /// would come too late and are rejected. Does nothing by default.
    fn finish(&self, _cluster: &Cluster, _out: &mut Contributions<'_>) -> Result<(), Error> {
        Ok(())
    }
}

/// Where services put what they contribute. Collisions are recorded and
/// reported together by [`compose`].
pub struct Contributions<'a> {
    service: &'static str,
    composed: Composed,
    // Who claimed what outside the nodes (zone records, bundle artifacts);
    // per-node claims live in each Node.
    origin: BTreeMap<String, BTreeMap<(&'static str, String), &'static str>>,
    problems: Vec<ProvisionError>,
    secrets: &'a mut dyn SecretStore,
    // In the finish phase: every record is known, no more may be asked for.
    finishing: bool,
}

impl fmt::Debug for Contributions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contributions")
            .field("service", &self.service)
            .field("nodes", &self.composed.nodes.len())
            .field("problems", &self.problems)
            .finish_non_exhaustive()
    }
}

fn safe_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.split('/').any(|c| c == "..")
        && p.len() < 4096
        && p.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '@' | '+' | ':')
        })
}

fn safe_unit(n: &str) -> bool {
    let kinds = [
        ".service",
        ".mount",
        ".automount",
        ".timer",
        ".socket",
        ".path",
        ".target",
        ".conf",
    ];
    kinds.iter().any(|k| n.ends_with(k))
        && n.len() < 256
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '\\' | ':'))
}

/// Who contributed a colliding item: two services, or one service twice
/// (never "both flatcar-net and flatcar-net").
fn contributors(first: &str, second: &str) -> String {
    if first == second {
        format!("twice by {first}")
    } else {
        format!("by both {first} and {second}")
    }
}

/// Claims `item` of `kind` on `node` for `service` in `claims`; a second
/// claim of the same item is recorded as a collision naming both services.
fn record_claim(
    claims: &mut BTreeMap<(&'static str, String), &'static str>,
    problems: &mut Vec<ProvisionError>,
    service: &'static str,
    node: &str,
    kind: &'static str,
    item: &str,
) -> bool {
    match claims.entry((kind, item.to_string())) {
        std::collections::btree_map::Entry::Occupied(first) => {
            problems.push(ProvisionError::Collision {
                node: node.to_string(),
                kind,
                item: item.to_string(),
                first: first.get(),
                second: service,
            });
            false
        }
        std::collections::btree_map::Entry::Vacant(v) => {
            v.insert(service);
            true
        }
    }
}

impl<'a> Contributions<'a> {
    fn claim(&mut self, node: &str, kind: &'static str, item: &str) -> bool {
        let claims = match self.origin.get_mut(node) {
            Some(c) => c,
            None => self.origin.entry(node.to_string()).or_default(),
        };
        record_claim(claims, &mut self.problems, self.service, node, kind, item)
    }

    fn invalid(&mut self, what: &'static str, value: &str, why: &'static str) {
        self.problems.push(ProvisionError::Invalid {
            service: self.service,
            what,
            value: value.to_string(),
            why,
        });
    }

    /// Node `vm` with `item` of `kind` claimed for the current service;
    /// `None` (and a problem recorded) when the VM does not exist or another
    /// service contributed the same item first. One lookup per call.
    fn claimed(&mut self, vm: &Name, kind: &'static str, item: &str) -> Option<&mut Node> {
        let service = self.service;
        let Some(n) = self.composed.nodes.get_mut(vm.as_str()) else {
            self.problems.push(ProvisionError::UnknownVm {
                service,
                vm: vm.to_string(),
            });
            return None;
        };
        record_claim(
            &mut n.claims,
            &mut self.problems,
            service,
            vm.as_str(),
            kind,
            item,
        )
        .then_some(n)
    }

    fn node(&mut self, vm: &Name) -> Option<&mut Node> {
        if !self.composed.nodes.contains_key(vm.as_str()) {
            self.problems.push(ProvisionError::UnknownVm {
                service: self.service,
                vm: vm.to_string(),
            });
            return None;
        }
        self.composed.nodes.get_mut(vm.as_str())
    }

    /// The service currently contributing.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// Adds a file to VM `vm`.
    pub fn file(&mut self, vm: &Name, file: File) {
        if !safe_path(&file.path) {
            return self.invalid(
                "file path",
                &file.path,
                "is not an absolute path of safe characters",
            );
        }
        // Two *different* services agreeing on the same bytes at one path
        // (the sysupdate placeholder every system extension needs) is one
        // file; a service writing a path twice, or different bytes, collides.
        let service = self.service;
        if self.composed.nodes.get(vm.as_str()).is_some_and(|n| {
            n.files.get(&file.path) == Some(&file)
                && n.claims
                    .get(&("file", file.path.clone()))
                    .is_some_and(|first| *first != service)
        }) {
            return;
        }
        if let Some(n) = self.claimed(vm, "file", &file.path) {
            n.files.insert(file.path.clone(), file);
        }
    }

    /// Adds a symbolic link `path -> target` to VM `vm` (sysext activation,
    /// unit enablement for units that only exist once extensions merge).
    pub fn link(&mut self, vm: &Name, path: &str, target: &str) {
        if !safe_path(path) || !safe_path(target) {
            return self.invalid("link", path, "is not an absolute path of safe characters");
        }
        if self
            .composed
            .nodes
            .get(vm.as_str())
            .and_then(|n| n.links.get(path))
            .map(String::as_str)
            == Some(target)
        {
            return;
        }
        if let Some(n) = self.claimed(vm, "file", path) {
            n.links.insert(path.to_string(), target.to_string());
        }
    }

    /// Records that the bundle downloads `artifact` (resolved through the
    /// cluster's mirror and overrides by the caller) and returns it. Every
    /// recorded artifact is listed by [`Composed::downloads`]; strict
    /// rendering refuses unverified ones.
    pub fn uses(&mut self, artifact: ArtifactRef) -> ArtifactRef {
        self.composed
            .downloads
            .insert(artifact.name().to_string(), artifact.clone());
        artifact
    }

    /// Adds a unit (or dropins for a Flatcar unit) to VM `vm`. Two services
    /// may add *different* dropins to the same unit; the same dropin or two
    /// full unit texts collide.
    pub fn unit(&mut self, vm: &Name, unit: Unit) {
        if !safe_unit(&unit.name) || unit.dropins.keys().any(|d| !safe_unit(d)) {
            return self.invalid(
                "unit",
                &unit.name,
                "is not a unit name of safe characters with a unit suffix",
            );
        }
        if self.node(vm).is_none() {
            return;
        }
        if unit.contents.is_some() && self.claimed(vm, "unit", &unit.name).is_none() {
            return;
        }
        for d in unit.dropins.keys() {
            if self
                .claimed(vm, "dropin", &format!("{}.d/{d}", unit.name))
                .is_none()
            {
                return;
            }
        }
        if let Some(n) = self.composed.nodes.get_mut(vm.as_str()) {
            let e = n.units.entry(unit.name.clone()).or_insert_with(|| Unit {
                name: unit.name.clone(),
                ..Unit::default()
            });
            if unit.contents.is_some() {
                e.contents = unit.contents;
            }
            e.enabled = unit.enabled.or(e.enabled);
            e.mask |= unit.mask;
            e.dropins.extend(unit.dropins);
        }
    }

    /// Sets VM `vm`'s hostname, admin user and that user's SSH keys (one
    /// service does: a second is a collision).
    pub fn identity(&mut self, vm: &Name, hostname: &str, user: &str, ssh_keys: Vec<String>) {
        if let Some(n) = self.claimed(vm, "identity", "hostname and admin user") {
            n.hostname = hostname.to_string();
            n.user = user.to_string();
            n.ssh_keys = ssh_keys;
        }
    }

    /// Sets a sysctl on VM `vm`.
    pub fn sysctl(&mut self, vm: &Name, key: &str, value: &str) {
        let ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ' '))
        };
        if !ok(key) || !ok(value) || key.contains(' ') {
            return self.invalid(
                "sysctl",
                &format!("{key}={value}"),
                "has characters outside [A-Za-z0-9._-/]",
            );
        }
        if let Some(n) = self.claimed(vm, "sysctl", key) {
            n.sysctls.insert(key.into(), value.into());
        }
    }

    /// Adds a data disk setup to VM `vm`.
    pub fn disk(&mut self, vm: &Name, disk: DiskSetup) {
        if let Some(n) = self.claimed(vm, "disk", &disk.device) {
            n.disks.push(disk);
        }
    }

    /// Declares a flow this service needs the firewall to allow.
    pub fn flow(&mut self, flow: Flow) {
        self.composed.flows.push(flow);
    }

    /// Asks for an A record in the cluster zone.
    pub fn dns_record(&mut self, name: &str, address: Ipv4Addr) {
        let ok = !name.is_empty()
            && name.len() < 200
            && name.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '*')
            });
        if !ok {
            return self.invalid("dns record", name, "is not a lowercase DNS label");
        }
        if self.finishing {
            return self.invalid(
                "dns record",
                name,
                "is asked for in finish(), after the zone's records were collected",
            );
        }
        if !self.claim("zone", "dns record", &format!("{name} {address}")) {
            return;
        }
        self.composed.records.push(DnsRecord {
            name: name.into(),
            address,
        });
    }

    /// Every DNS record the services asked for so far, in the order asked
    /// (complete in [`Service::finish`]).
    pub fn records(&self) -> &[DnsRecord] {
        &self.composed.records
    }

    /// Adds a bundle artifact at a relative path (`host/nftables.nft`).
    pub fn artifact(&mut self, path: &str, contents: impl Into<Vec<u8>>, secret: bool) {
        let ok = !path.starts_with('/') && safe_path(&format!("/{path}")) && !path.contains("//");
        if !ok {
            return self.invalid(
                "artifact path",
                path,
                "is not a relative path of safe characters",
            );
        }
        if !self.claim("bundle", "artifact", path) {
            return;
        }
        self.composed.artifacts.insert(
            path.into(),
            Artifact {
                contents: contents.into(),
                secret,
            },
        );
    }

    /// The secret `id`, generated by `generate` the first time and the
    /// same value on every later run (the store persists it).
    pub fn secret(
        &mut self,
        id: &SecretId,
        generate: &dyn Fn() -> Result<Secret, Error>,
    ) -> Result<Secret, Error> {
        self.secrets.get_or_create(id, generate)
    }
}

impl Composed {
    /// Runs every service in order, returning every node's provisioning, or
    /// every collision and invalid item at once. A service's own failure
    /// stops the composition ([`Error::Service`] names it).
    /// (`flatcar_ignition::compose` runs its base service first.)
    pub fn from_services(
        cluster: &Cluster,
        services: &[&dyn Service],
        secrets: &mut dyn SecretStore,
    ) -> Result<Composed, Error> {
        let mut out = Contributions {
            service: "",
            composed: Composed::default(),
            origin: BTreeMap::new(),
            problems: Vec::new(),
            secrets,
            finishing: false,
        };
        for vm in cluster.vms() {
            out.composed
                .nodes
                .insert(vm.name.to_string(), Node::default());
        }
        for s in services {
            out.service = s.name();
            s.contribute(cluster, &mut out)?;
        }
        out.finishing = true;
        for s in services {
            out.service = s.name();
            s.finish(cluster, &mut out)?;
        }
        if out.problems.is_empty() {
            let fetches = fetch_flows(cluster, &out.composed);
            out.composed.flows.extend(fetches);
            out.composed.flows.sort();
            out.composed.flows.dedup();
            out.composed.records.sort();
            Ok(out.composed)
        } else {
            Err(Error::Provision(out.problems))
        }
    }
}

/// The flows the VMs' downloads need when an artifact comes from an
/// address inside the cloud, written as an IPv4 address in its URL or
/// registry name (a mirror on the LAN, on the KVM host or on a VM): from
/// the network of each fetching VM's primary NIC (which carries its
/// default route) to that address and port, or to `host` when it is one
/// of the host's addresses. A VM on the mirror's own network reaches it
/// switched and needs none. Files are fetched by the VMs whose Ignition
/// config names them; an image may be pulled by any VM. A mirror given by
/// name is not resolved here (its address is the resolver's answer):
/// declare its flow in the model.
fn fetch_flows(cluster: &Cluster, composed: &Composed) -> Vec<Flow> {
    use crate::artifact::Source;
    use crate::flow::{Endpoint, Proto};
    use std::collections::BTreeSet;
    let host_nets = cluster.endpoint_nets(&Endpoint::Host).unwrap_or_default();
    // A source at `host:port` inside the cloud: its address, port and the
    // flow's destination.
    let inside = |(host, port): (&str, u16)| -> Option<(Ipv4Addr, crate::Port, Endpoint)> {
        let addr: Ipv4Addr = host.parse().ok()?;
        let port = crate::Port::new(port).ok()?;
        let to = if host_nets.iter().any(|n| n.contains(&addr)) {
            Endpoint::Host
        } else if cluster.networks().iter().any(|n| n.cidr.contains(&addr)) {
            Endpoint::Addr(addr)
        } else {
            return None;
        };
        Some((addr, port, to))
    };
    let images: BTreeSet<_> = composed
        .downloads
        .values()
        .filter_map(|a| match a.source() {
            Source::Image { image, .. } => image.registry_endpoint(),
            Source::File { .. } => None,
        })
        .filter_map(inside)
        .collect();
    let why = Name::new("artifacts").ok();
    let mut flows = BTreeSet::new();
    for vm in cluster.vms() {
        let Some(node) = composed.nodes.get(vm.name.as_str()) else {
            continue;
        };
        let nics = cluster.nics(vm);
        let Some(primary) = nics.first() else {
            continue;
        };
        let files = node
            .files
            .values()
            .filter_map(|f| match &f.contents {
                Contents::Remote { url, .. } => url.endpoint(),
                _ => None,
            })
            .filter_map(inside);
        for (addr, port, to) in files.chain(images.iter().cloned()) {
            // A VM on the source's own network reaches it switched.
            if to != Endpoint::Host && nics.iter().any(|n| n.network.cidr.contains(&addr)) {
                continue;
            }
            flows.insert(Flow {
                from: Endpoint::Network(primary.network.name.clone()),
                to,
                proto: Proto::Tcp,
                ports: vec![port.into()],
                why: why.clone(),
            });
        }
    }
    flows.into_iter().collect()
}
