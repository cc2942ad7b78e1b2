//! The whole cloud as one bundle: relative path → file, deterministic bytes,
//! written atomically, planned (with a unified diff) before writing.

use crate::error::io;
use crate::Error;
use flatcar_ignition::{compose, IgnitionJson};
use flatcar_topology::provision::Service;
use flatcar_topology::{Cluster, Format, Secret};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// One file of the bundle.
#[derive(Clone, PartialEq, Eq)]
pub struct BundleFile {
    /// Bytes.
    pub contents: Vec<u8>,
    /// Holds a secret: written 0600 and never shown in a diff.
    pub secret: bool,
}

impl fmt::Debug for BundleFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            write!(f, "BundleFile(secret, {} bytes)", self.contents.len())
        } else {
            write!(f, "BundleFile({} bytes)", self.contents.len())
        }
    }
}

impl BundleFile {
    /// The file mode it is written with.
    pub fn mode(&self) -> u32 {
        if self.secret {
            0o600
        } else {
            0o644
        }
    }
}

/// Every artifact of a cloud, by relative path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bundle {
    files: BTreeMap<String, BundleFile>,
}

/// A secret store that reads the secrets a previous bundle wrote (so a
/// re-render is byte-identical) and remembers every secret used, so the
/// bundle can write them (0600) under `secrets/`.
#[derive(Debug, Default)]
pub struct BundleSecrets {
    dir: Option<PathBuf>,
    used: BTreeMap<String, Secret>,
}

impl BundleSecrets {
    /// Reuses the secrets under `<bundle dir>/secrets/` when present.
    pub fn from_bundle_dir(dir: &Path) -> Self {
        BundleSecrets {
            dir: Some(dir.join("secrets")),
            used: BTreeMap::new(),
        }
    }
}

impl flatcar_topology::provision::SecretStore for BundleSecrets {
    fn get_or_create(
        &mut self,
        name: &str,
        generate: &dyn Fn() -> Result<Secret, flatcar_topology::Error>,
    ) -> Result<Secret, flatcar_topology::Error> {
        if let Some(s) = self.used.get(name) {
            return Ok(s.clone());
        }
        flatcar_topology::Name::new(name).map_err(|source| {
            flatcar_topology::Error::SecretName {
                name: name.into(),
                source,
            }
        })?;
        let existing = self
            .dir
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.join(name)).ok())
            .map(|s| Secret::new(s.trim_end_matches('\n')));
        let s = match existing {
            Some(s) => s,
            None => generate()?,
        };
        self.used.insert(name.into(), s.clone());
        Ok(s)
    }
}

/// What writing a bundle would do to one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// New file.
    Added,
    /// Different bytes.
    Changed,
    /// File no longer produced.
    Removed,
}

/// One planned change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Relative path.
    pub path: String,
    /// What happens.
    pub kind: ChangeKind,
    /// Unified diff (never for secret files).
    pub diff: Option<String>,
}

/// Everything writing a bundle would change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Changes, by path.
    pub changes: Vec<Change>,
    /// Files that stay byte-identical.
    pub unchanged: usize,
}

impl Plan {
    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = |k: ChangeKind| self.changes.iter().filter(|c| c.kind == k).count();
        writeln!(
            f,
            "plan: {} to add, {} to change, {} to remove, {} unchanged",
            count(ChangeKind::Added),
            count(ChangeKind::Changed),
            count(ChangeKind::Removed),
            self.unchanged
        )?;
        for c in &self.changes {
            let sign = match c.kind {
                ChangeKind::Added => '+',
                ChangeKind::Changed => '~',
                ChangeKind::Removed => '-',
            };
            writeln!(f, "  {sign} {}", c.path)?;
        }
        Ok(())
    }
}

const README: &str = "# flatcar-microcloud bundle

Generated from the cluster model (`cluster.json`); do not edit by hand —
change the model and render again. Same model, same bytes.

Layout:
- `cluster.json`               the model itself (load with `Cluster::load`)
- `vms/<vm>/ignition.json`     first-boot config of each Flatcar VM (0600 when it holds a secret)
- `libvirt/`                   pool, volume, network and domain XML (`virsh define` order: pool, volumes, networks, domains)
- `host/`                      the KVM host's nftables ruleset and WireGuard endpoint
- `lb/`, `dns/`, `ntp/`, `k3s/`, `vpn/`  reference copies of service configs and client configs
- `inventory/hosts.yml`        Ansible inventory (groups by role)
- `terraform/main.tf.json`     the same VMs for the dmacvicar/libvirt Terraform provider
- `diagram/cloud.dot`, `.mmd`  the cloud as Graphviz and Mermaid
- `secrets/`                   generated secrets (0600); keep them, re-renders reuse them

Deploy: copy `vms/<vm>/ignition.json` to the path in each domain's fw_cfg
entry (the storage pool), apply `host/nftables.nft` with `nft -f`, then
either `cargo run --example full_cluster --features libvirt -- --apply qemu:///system`
or `virsh pool-define`, `vol-create`, `net-define`, `define` with `libvirt/`,
or `terraform apply` in `terraform/`. Start masters first (master1 bootstraps
etcd), then the load balancers, then the rest.
";

impl Bundle {
    /// Renders every artifact of `cluster` with the default services.
    pub fn render(cluster: &Cluster, secrets: &mut BundleSecrets) -> Result<Bundle, Error> {
        let services = crate::services::all();
        let refs: Vec<&dyn Service> = services.iter().map(|s| s.as_ref()).collect();
        Bundle::render_with(cluster, &refs, secrets)
    }

    /// Renders with an explicit list of services.
    pub fn render_with(
        cluster: &Cluster,
        services: &[&dyn Service],
        secrets: &mut BundleSecrets,
    ) -> Result<Bundle, Error> {
        let composed = compose(cluster, services, secrets)?;
        let mut b = Bundle::default();
        b.add("README.md", README, false);
        b.add("cluster.json", cluster.to_string_as(Format::Json)?, false);
        for (name, node) in &composed.nodes {
            b.add(
                &format!("vms/{name}/ignition.json"),
                node.ignition_json()?,
                node.has_secrets(),
            );
        }
        b.add(
            "host/nftables.nft",
            flatcar_net::ruleset::render(cluster, &composed.flows),
            false,
        );
        b.add(
            "host/nftables.json",
            flatcar_net::ruleset::render_json(cluster, &composed.flows)?,
            false,
        );
        for (path, a) in &composed.artifacts {
            b.add(path, a.contents.clone(), a.secret);
        }
        // The zone with the records every service asked for (a service
        // cannot see the records of services composed after it).
        b.add(
            &format!("dns/{}.zone", cluster.domain()),
            flatcar_net::coredns::zone(cluster, &composed.records),
            false,
        );
        for (path, text) in crate::libvirt_files(cluster)? {
            b.add(&path, text, false);
        }
        b.add(
            "inventory/hosts.yml",
            crate::inventory::render(cluster)?,
            false,
        );
        b.add(
            "terraform/main.tf.json",
            crate::terraform::render(cluster)?,
            false,
        );
        b.add("diagram/cloud.dot", crate::diagram::dot(cluster), false);
        b.add("diagram/cloud.mmd", crate::diagram::mermaid(cluster), false);
        for (name, s) in &secrets.used {
            b.add(
                &format!("secrets/{name}"),
                format!("{}\n", s.expose()),
                true,
            );
        }
        Ok(b)
    }

    fn add(&mut self, path: &str, contents: impl Into<Vec<u8>>, secret: bool) {
        self.files.insert(
            path.to_string(),
            BundleFile {
                contents: contents.into(),
                secret,
            },
        );
    }

    /// The files, by relative path.
    pub fn files(&self) -> &BTreeMap<String, BundleFile> {
        &self.files
    }

    /// Compares with what is in `dir` (which may not exist).
    pub fn plan(&self, dir: &Path) -> Result<Plan, Error> {
        let existing = read_tree(dir)?;
        let mut plan = Plan::default();
        for (path, f) in &self.files {
            match existing.get(path) {
                None => plan.changes.push(Change {
                    path: path.clone(),
                    kind: ChangeKind::Added,
                    diff: None,
                }),
                Some(old) if *old == f.contents => plan.unchanged += 1,
                Some(old) => plan.changes.push(Change {
                    path: path.clone(),
                    kind: ChangeKind::Changed,
                    diff: (!f.secret).then(|| unified(path, old, &f.contents)),
                }),
            }
        }
        for path in existing.keys().filter(|p| !self.files.contains_key(*p)) {
            plan.changes.push(Change {
                path: path.clone(),
                kind: ChangeKind::Removed,
                diff: None,
            });
        }
        plan.changes.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(plan)
    }

    /// Writes the bundle to `dir` atomically: everything is written and
    /// fsynced into a staging directory next to `dir`, which then replaces
    /// `dir` by rename. Any failure before the swap leaves the previous
    /// bundle untouched and removes the staging directory.
    pub fn write_to(&self, dir: &Path) -> Result<(), Error> {
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::NotADirectory(dir.to_path_buf()))?;
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        recover(parent, name, dir)?;
        let staging = parent.join(format!(".{name}.staging-{}", std::process::id()));
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        let result = self.write_tree(&staging);
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
        if dir.exists() {
            let _ = std::fs::remove_dir_all(&old);
            std::fs::rename(dir, &old).map_err(|e| {
                let _ = std::fs::remove_dir_all(&staging);
                io(dir)(e)
            })?;
            if let Err(e) = std::fs::rename(&staging, dir) {
                let _ = std::fs::rename(&old, dir);
                let _ = std::fs::remove_dir_all(&staging);
                return Err(io(dir)(e));
            }
            let _ = std::fs::remove_dir_all(&old);
        } else {
            std::fs::rename(&staging, dir).map_err(|e| {
                let _ = std::fs::remove_dir_all(&staging);
                io(dir)(e)
            })?;
        }
        if let Ok(d) = std::fs::File::open(parent) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    fn write_tree(&self, root: &Path) -> Result<(), Error> {
        use std::io::Write;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::create_dir_all(root).map_err(io(root))?;
        for (path, f) in &self.files {
            let p = root.join(path);
            if let Some(d) = p.parent() {
                std::fs::create_dir_all(d).map_err(io(d))?;
            }
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(f.mode())
                .open(&p)
                .map_err(io(&p))?;
            file.write_all(&f.contents).map_err(io(&p))?;
            file.sync_all().map_err(io(&p))?;
        }
        let secrets = root.join("secrets");
        if secrets.exists() {
            std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o700))
                .map_err(io(&secrets))?;
        }
        Ok(())
    }
}

/// Cleans up after an interrupted write: stale staging directories are
/// removed, and if the process died between the two renames of a swap (no
/// `dir`, but `.name.old-*` present), the previous bundle is put back.
fn recover(parent: &Path, name: &str, dir: &Path) -> Result<(), Error> {
    let staging = format!(".{name}.staging-");
    let old = format!(".{name}.old-");
    for entry in std::fs::read_dir(parent).map_err(io(parent))?.flatten() {
        let file_name = entry.file_name();
        let f = file_name.to_string_lossy();
        if f.starts_with(&staging) {
            let _ = std::fs::remove_dir_all(entry.path());
        } else if f.starts_with(&old) {
            if dir.exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            } else {
                std::fs::rename(entry.path(), dir).map_err(io(dir))?;
            }
        }
    }
    Ok(())
}

fn unified(path: &str, old: &[u8], new: &[u8]) -> String {
    let old = String::from_utf8_lossy(old);
    let new = String::from_utf8_lossy(new);
    similar::TextDiff::from_lines(old.as_ref(), new.as_ref())
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string()
}

fn read_tree(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return Ok(out);
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(io(&d))? {
            let entry = entry.map_err(io(&d))?;
            let p = entry.path();
            if entry.file_type().map_err(io(&p))?.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                let bytes = std::fs::read(&p).map_err(io(&p))?;
                out.insert(rel.to_string_lossy().into_owned(), bytes);
            }
        }
    }
    Ok(out)
}
