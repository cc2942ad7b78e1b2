//! The VM lifecycle the rollout executor drives ([`crate::deploy::Machines`])
//! through libvirt (feature `libvirt`): start a new domain, wait for its
//! serial console's ready line ([`flatcar_topology::provision::ready`]),
//! replace a VM (stop it, delete its root overlay, apply its part of the
//! libvirt plan, upload its new Ignition config, start it: Ignition runs
//! again on the fresh disk) and remove one (stop, then delete its domain
//! and volumes).
//!
//! `full_cluster --apply` defers every libvirt step of a VM that the
//! rolling plan replaces or removes ([`owned_objects`]) to this module, so
//! such a VM is stopped only at its step, after its drain or handover.

use crate::deploy::{BoxError, Machines};
use flatcar_libvirt::apply::{self, Action, Connect, Kind, Plan};
use flatcar_topology::provision::ready;
use flatcar_topology::Cluster;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The names of the libvirt objects that belong to `vm` in either model:
/// its domain, its volumes (root overlay, data disks) and its Ignition
/// volume `<vm>.ign`.
pub fn owned_objects(new: &Cluster, old: &Cluster, vm: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::from([vm.to_string(), format!("{vm}.ign")]);
    for c in [new, old] {
        if let Some(v) = c.vm(vm) {
            if let Ok(vols) = flatcar_libvirt::volume::vm_xmls(c, v) {
                out.extend(vols.into_iter().map(|(name, _)| name));
            }
        }
    }
    out
}

/// The libvirt side of the executor.
pub struct Libvirt<'a> {
    conn: &'a Connect,
    new: &'a Cluster,
    old: &'a Cluster,
    configs: &'a BTreeMap<String, Vec<u8>>,
    /// How long a VM may take to report ready.
    pub timeout: Duration,
    /// How long a VM may take to shut down before it is destroyed.
    pub shutdown: Duration,
    host: Box<dyn FnMut() -> Result<(), BoxError> + 'a>,
    /// Console log length when each VM was (re)started: its ready line must
    /// come after it.
    console_from: BTreeMap<String, u64>,
}

impl<'a> Libvirt<'a> {
    /// For the rollout from `old` to `new` at `conn`; `configs`: every VM's
    /// new Ignition config; `host`: applies the KVM host's part.
    pub fn new(
        conn: &'a Connect,
        old: &'a Cluster,
        new: &'a Cluster,
        configs: &'a BTreeMap<String, Vec<u8>>,
        host: Box<dyn FnMut() -> Result<(), BoxError> + 'a>,
    ) -> Self {
        Libvirt {
            conn,
            new,
            old,
            configs,
            timeout: Duration::from_secs(900),
            shutdown: Duration::from_secs(120),
            host,
            console_from: BTreeMap::new(),
        }
    }

    fn console(&self, vm: &str) -> Option<String> {
        let v = self.new.vm(vm).or_else(|| self.old.vm(vm))?;
        Some(flatcar_libvirt::domain::console_log_path(v))
    }

    fn mark_console(&mut self, vm: &str) {
        let len = self
            .console(vm)
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len());
        self.console_from.insert(vm.to_string(), len);
    }

    fn start(&mut self, vm: &str) -> Result<(), BoxError> {
        let d = self.conn.lookup_domain_by_name(vm)?;
        if !d.is_active()? {
            self.mark_console(vm);
            d.create()?;
        }
        Ok(())
    }

    /// Asks the guest to shut down, waits, then pulls the plug.
    fn stop(&mut self, vm: &str) -> Result<(), BoxError> {
        let Ok(d) = self.conn.lookup_domain_by_name(vm) else {
            return Ok(());
        };
        if !d.is_active()? {
            return Ok(());
        }
        let _ = d.shutdown();
        let start = Instant::now();
        while d.is_active()? {
            if start.elapsed() > self.shutdown {
                d.destroy()?;
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Ok(())
    }

    /// Applies the steps of the current libvirt plan that concern `vm`.
    fn apply_own(&self, vm: &str, keep: impl Fn(&Action) -> bool) -> Result<(), BoxError> {
        let own = owned_objects(self.new, self.old, vm);
        let plan = apply::plan(self.conn, self.new)?;
        let steps = plan
            .steps
            .iter()
            .filter(|s| {
                own.contains(&s.name)
                    && matches!(s.kind, Kind::Domain | Kind::Volume)
                    && s.action != Action::Unchanged
                    && keep(&s.action)
            })
            .cloned()
            .collect();
        let sub = Plan {
            steps,
            ..plan.clone()
        };
        apply::apply(self.conn, &sub)?;
        Ok(())
    }
}

impl Machines for Libvirt<'_> {
    fn host(&mut self) -> Result<(), BoxError> {
        (self.host)()
    }

    fn create(&mut self, vm: &str) -> Result<(), BoxError> {
        self.start(vm)
    }

    fn wait_ready(&mut self, vm: &str) -> Result<(), BoxError> {
        let log = self.console(vm).ok_or("not in the model")?;
        let from = usize::try_from(self.console_from.get(vm).copied().unwrap_or(0)).unwrap_or(0);
        let start = Instant::now();
        loop {
            let bytes = std::fs::read(&log).unwrap_or_default();
            // A console log that was truncated at the start is read whole.
            let tail = bytes.get(from..).unwrap_or(&bytes);
            match ready::last_report(&String::from_utf8_lossy(tail)) {
                Some(r) if r.failed.is_empty() => return Ok(()),
                Some(r) => {
                    return Err(format!("failed units: {} (see {log})", r.failed.join(", ")).into())
                }
                None => {}
            }
            let d = self.conn.lookup_domain_by_name(vm)?;
            if !d.is_active()? {
                return Err(format!("the domain stopped; see {log}").into());
            }
            if start.elapsed() > self.timeout {
                return Err(format!(
                    "no ready line after {} s; see {log}",
                    self.timeout.as_secs()
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn replace(&mut self, vm: &str) -> Result<(), BoxError> {
        let v = self.new.vm(vm).ok_or("not in the new model")?;
        self.stop(vm)?;
        // A fresh root overlay: Ignition runs only on a first boot.
        let pool = self
            .conn
            .lookup_storage_pool_by_name(self.new.host().pool.name.as_str())?;
        if let Ok(vol) = pool.lookup_storage_vol_by_name(&flatcar_libvirt::volume::root_volume(v)) {
            vol.delete(0)?;
        }
        pool.refresh(0)?;
        self.apply_own(vm, |_| true)?;
        let config = self.configs.get(vm).ok_or("no Ignition config")?;
        flatcar_libvirt::hosts::upload_ignition(self.conn, self.new, v, config)?;
        self.start(vm)
    }

    fn remove(&mut self, vm: &str) -> Result<(), BoxError> {
        self.stop(vm)?;
        self.apply_own(vm, |a| *a == Action::Delete)
    }
}
