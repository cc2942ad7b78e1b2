//! What a change of the model means for a running VM: the typed
//! classification (pure data) and the model-side half of computing it.
//!
//! A VM's change is one of [`VmChange::None`], [`VmChange::Live`] (files
//! that may change on the running VM, each with the [`Reload`] that makes it
//! effective), [`VmChange::Replace`] (something only a first boot applies:
//! NICs, disks, the OS image, roles, K3s version, any other file or unit;
//! each [`ReplaceReason`] says which), [`VmChange::Create`] and
//! [`VmChange::Remove`]. [`model_reasons`] compares two models' views of
//! one VM; the rendered files are compared where they are rendered (the
//! facade's `change` module), which also guarantees that a VM whose
//! rendered configuration differs in any byte is never [`VmChange::None`].

use crate::{Name, OsImage, Role, Spec, Vm};
use std::collections::BTreeSet;
use std::fmt;

/// A command that makes a changed file effective on a running VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Reload {
    /// HAProxy re-reads its configuration without dropping connections.
    Haproxy,
    /// Keepalived re-reads its configuration (SIGHUP); VRRP state is kept.
    Keepalived,
    /// CoreDNS re-reads its Corefile and zones on SIGUSR1 (its listeners
    /// stay; the `file` plugin would also pick up a zone whose SOA serial
    /// grew within a minute, and the bundle raises the serial).
    CoreDns,
    /// PostgreSQL re-reads `pg_hba.conf` on SIGHUP. The file is bind-mounted
    /// into the container as a single file, so a push writes it in place
    /// (a rename would leave the container on the old inode).
    Postgres,
    /// K3s's deploy controller applies a changed file in its manifests
    /// directory by itself; the command only checks that K3s runs.
    K3sManifests,
    /// The kernel NFS server re-exports `/etc/exports`.
    NfsExports,
    /// Chrony restarts with its new configuration (clients keep time).
    Chrony,
    /// locksmithd re-reads its reboot window (`/etc/flatcar/update.conf`).
    Locksmithd,
}

impl Reload {
    /// The command run on the VM (as root) after the files are in place.
    pub fn command(self) -> &'static str {
        match self {
            // The server states first (see `flatcar_lb::haproxy::STATE_FILE`):
            // without them the new process starts every server as up, and a
            // down one takes requests until its checks fail again. A failed
            // dump leaves an empty state (version line `1`, no servers: no
            // stale state, and HAProxy does not warn about a missing file).
            Reload::Haproxy => {
                "s=/run/haproxy/server-state; echo 'show servers state' | socat stdio unix-connect:/run/haproxy/admin.sock > $s.new && mv -f $s.new $s || { rm -f $s.new; echo 1 > $s; }; systemctl reload haproxy.service"
            }
            Reload::Keepalived => "systemctl reload keepalived.service",
            Reload::CoreDns => "docker kill --signal=USR1 coredns",
            Reload::Postgres => "docker kill --signal=HUP postgres",
            Reload::K3sManifests => "systemctl is-active k3s.service",
            Reload::NfsExports => "exportfs -ra",
            Reload::Chrony => "systemctl restart chronyd.service",
            Reload::Locksmithd => "systemctl restart locksmithd.service",
        }
    }
}

impl Reload {
    /// The configuration check run on the VM against a staged file before
    /// it replaces the live one (the file's path is appended), where the
    /// daemon has one: `haproxy -c`, `keepalived -t`. A file that fails it
    /// never reaches the running daemon.
    pub fn check(self) -> Option<&'static str> {
        match self {
            Reload::Haproxy => Some("haproxy -c -q -f"),
            Reload::Keepalived => Some("keepalived -t -l -f"),
            _ => None,
        }
    }

    /// The command run after the reload that fails unless the service still
    /// runs (the reload took, or the daemon survived it).
    pub fn verify(self) -> Option<&'static str> {
        match self {
            Reload::Haproxy => Some("systemctl is-active --quiet haproxy.service"),
            Reload::Keepalived => Some("systemctl is-active --quiet keepalived.service"),
            Reload::CoreDns => {
                Some("test \"$(docker inspect -f '{{.State.Running}}' coredns)\" = true")
            }
            Reload::Postgres => {
                Some("test \"$(docker inspect -f '{{.State.Running}}' postgres)\" = true")
            }
            Reload::NfsExports => Some("systemctl is-active --quiet nfs-server.service"),
            Reload::Chrony => Some("systemctl is-active --quiet chronyd.service"),
            Reload::Locksmithd => Some("systemctl is-active --quiet locksmithd.service"),
            Reload::K3sManifests => None,
        }
    }

    /// Whether the file is rewritten in place instead of renamed over the
    /// target (a single-file bind mount, see [`Reload::Postgres`]).
    pub fn in_place(self) -> bool {
        matches!(self, Reload::Postgres)
    }
}

impl fmt::Display for Reload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.command())
    }
}

/// A file that changes on a running VM, and what makes it effective.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LiveFile {
    /// Absolute path on the VM.
    pub path: String,
    /// What makes it effective.
    pub reload: Reload,
}

/// Why a VM must be replaced (re-provisioned from its new Ignition config)
/// rather than changed while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplaceReason {
    /// Its NICs changed (network, address or MAC): networkd is first-boot.
    Nics,
    /// Its data disks changed (Ignition formats them at first boot).
    DataDisks,
    /// Its OS image changed (a Flatcar version upgrade).
    Image {
        /// Before.
        from: OsImage,
        /// After.
        to: OsImage,
    },
    /// Its roles changed (e.g. worker to master).
    Roles {
        /// Before.
        from: BTreeSet<Role>,
        /// After.
        to: BTreeSet<Role>,
    },
    /// The cluster's K3s version changed and the VM is a K3s node.
    K3sVersion {
        /// Before.
        from: String,
        /// After.
        to: String,
    },
    /// vCPUs, memory or root disk size changed (the domain definition).
    Resources,
    /// It moves to another KVM host.
    Host {
        /// Before.
        from: Name,
        /// After.
        to: Name,
    },
    /// A file that only first boot writes changed (no running service
    /// re-reads it, or it holds a secret).
    FirstBootFile {
        /// Path on the VM.
        path: String,
    },
    /// A systemd unit or drop-in changed.
    Unit {
        /// Unit name.
        name: String,
    },
    /// Hostname, admin user or SSH keys changed.
    Identity,
    /// Sysctls, links or disk setup changed.
    System,
    /// The libvirt domain definition changed in a way none of the above
    /// names.
    Domain,
    /// The rendered Ignition config differs and nothing above explains it
    /// (the guard that keeps a changed VM from ever being "unchanged").
    Ignition,
}

impl fmt::Display for ReplaceReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let roles = |r: &BTreeSet<Role>| r.iter().map(|r| r.as_str()).collect::<Vec<_>>().join("+");
        match self {
            ReplaceReason::Nics => f.write_str("NICs changed"),
            ReplaceReason::DataDisks => f.write_str("data disks changed"),
            ReplaceReason::Image { from, to } => write!(
                f,
                "OS image {}-{} -> {}-{}",
                from.channel, from.version, to.channel, to.version
            ),
            ReplaceReason::Roles { from, to } => {
                write!(f, "roles {} -> {}", roles(from), roles(to))
            }
            ReplaceReason::K3sVersion { from, to } => write!(f, "K3s {from} -> {to}"),
            ReplaceReason::Resources => f.write_str("vCPUs, memory or root disk changed"),
            ReplaceReason::Host { from, to } => write!(f, "moves from host {from} to {to}"),
            ReplaceReason::FirstBootFile { path } => write!(f, "first-boot file {path}"),
            ReplaceReason::Unit { name } => write!(f, "unit {name}"),
            ReplaceReason::Identity => f.write_str("hostname, admin user or SSH keys"),
            ReplaceReason::System => f.write_str("sysctls, links or disk setup"),
            ReplaceReason::Domain => f.write_str("libvirt domain definition"),
            ReplaceReason::Ignition => f.write_str("Ignition config"),
        }
    }
}

/// What a change of the model means for one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VmChange {
    /// Nothing of the VM changes.
    None,
    /// Files change on the running VM; the reloads make them effective.
    Live {
        /// The files, by path.
        files: Vec<LiveFile>,
        /// The reloads to run afterwards (each once).
        reloads: BTreeSet<Reload>,
    },
    /// The VM is replaced: stopped, re-provisioned from its new Ignition
    /// config, started (rolling, see [`crate::rollout`]).
    Replace {
        /// Why, never empty.
        reasons: Vec<ReplaceReason>,
    },
    /// The VM is new.
    Create,
    /// The VM left the model.
    Remove,
}

impl VmChange {
    /// `none`, `live`, `replace`, `create` or `remove`.
    pub fn label(&self) -> &'static str {
        match self {
            VmChange::None => "none",
            VmChange::Live { .. } => "live",
            VmChange::Replace { .. } => "replace",
            VmChange::Create => "create",
            VmChange::Remove => "remove",
        }
    }
}

impl fmt::Display for VmChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())?;
        match self {
            VmChange::Live { files, reloads } => {
                let files: Vec<&str> = files.iter().map(|l| l.path.as_str()).collect();
                let reloads: Vec<&str> = reloads.iter().map(|r| r.command()).collect();
                write!(
                    f,
                    "  files {}; then {}",
                    files.join(", "),
                    reloads.join("; ")
                )
            }
            VmChange::Replace { reasons } => {
                let r: Vec<String> = reasons.iter().map(ToString::to_string).collect();
                write!(f, "  ({})", r.join("; "))
            }
            _ => Ok(()),
        }
    }
}

fn image<'a>(spec: &'a Spec, vm: &'a Vm) -> &'a OsImage {
    vm.image.as_ref().unwrap_or(&spec.image)
}

fn host_of<'a>(spec: &'a Spec, vm: &Vm) -> &'a Name {
    spec.placement.get(&vm.name).unwrap_or(&spec.host.name)
}

/// The model-side reasons to replace a VM present in both models: NICs,
/// data disks, effective OS image, roles, K3s version (for K3s nodes),
/// resources, host. Empty when the model's view of the VM is the same
/// (its rendered files may still differ: the facade compares those).
pub fn model_reasons(old: &Spec, new: &Spec, before: &Vm, after: &Vm) -> Vec<ReplaceReason> {
    let mut out = Vec::new();
    if before.nics != after.nics {
        out.push(ReplaceReason::Nics);
    }
    if before.data_disks != after.data_disks {
        out.push(ReplaceReason::DataDisks);
    }
    let (a, b) = (image(old, before), image(new, after));
    if a != b {
        out.push(ReplaceReason::Image {
            from: a.clone(),
            to: b.clone(),
        });
    }
    if before.roles != after.roles {
        out.push(ReplaceReason::Roles {
            from: before.roles.clone(),
            to: after.roles.clone(),
        });
    }
    let k3s = |v: &Vm| v.roles.iter().any(|r| r.is_k3s_node());
    if (k3s(before) || k3s(after)) && old.k3s.version != new.k3s.version {
        out.push(ReplaceReason::K3sVersion {
            from: old.k3s.version.to_string(),
            to: new.k3s.version.to_string(),
        });
    }
    if (before.vcpus, before.memory, before.root_disk)
        != (after.vcpus, after.memory, after.root_disk)
    {
        out.push(ReplaceReason::Resources);
    }
    let (ha, hb) = (host_of(old, before), host_of(new, after));
    if ha != hb {
        out.push(ReplaceReason::Host {
            from: ha.clone(),
            to: hb.clone(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_files_reloads_and_reasons() {
        let live = VmChange::Live {
            files: vec![LiveFile {
                path: "/etc/haproxy/haproxy.cfg".into(),
                reload: Reload::Haproxy,
            }],
            reloads: [Reload::Haproxy].into(),
        };
        assert_eq!(
            live.to_string(),
            format!(
                "live  files /etc/haproxy/haproxy.cfg; then {}",
                Reload::Haproxy.command()
            )
        );
        let r = VmChange::Replace {
            reasons: vec![ReplaceReason::Nics, ReplaceReason::Resources],
        };
        assert_eq!(
            r.to_string(),
            "replace  (NICs changed; vCPUs, memory or root disk changed)"
        );
    }
}
