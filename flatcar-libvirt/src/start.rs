//! Starting a defined cloud: its domains in the model's bring-up order
//! ([`flatcar_topology::bringup`]), each waited for until it reports on its
//! serial console that it is up ([`flatcar_topology::provision::ready`]),
//! with progress through a callback and per-VM times. A VM that reports
//! failed units, stops, or does not report within the timeout ends the
//! start with an error naming it (and the failed units).
//!
//! The order is a list of waves: a VM belongs to the wave of its *first*
//! step in the bring-up stages (load balancers, DNS/NTP and the database
//! first, then the first master, then the rest); a wave starts once every
//! VM of the waves before it has reported. VMs without a step (nothing to
//! run) start in the first wave.
//!
//! ```
//! use flatcar_topology::{net4, Cluster, HostBuilder, Role};
//! let mut c = Cluster::builder("demo", HostBuilder::new("kvm1"));
//! let lan = c.lan("lan", net4!("198.18.0.0/24"), |n| n.host_at(40));
//! c.vm("web1", |vm| vm.role(Role::Worker).nic(&lan, 21));
//! c.dns("demo.home.arpa", &[std::net::Ipv4Addr::new(198, 18, 250, 53)]);
//! c.ssh_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJNBE0yGR9doLSjjPtPCkgpn6fWfiNVJ44xnctKvgyUU admin");
//! let cluster = c.build().expect("valid");
//! assert_eq!(flatcar_libvirt::start::waves(&cluster), vec![vec!["web1".to_string()]]);
//! ```

use flatcar_topology::Cluster;
use std::collections::BTreeMap;

/// The VMs of `cluster` in start waves (see the module documentation);
/// names within a wave are sorted.
pub fn waves(cluster: &Cluster) -> Vec<Vec<String>> {
    let mut first: BTreeMap<String, usize> = BTreeMap::new();
    for (i, stage) in cluster.bring_up().stages.iter().enumerate() {
        for step in stage {
            first.entry(step.vm.to_string()).or_insert(i);
        }
    }
    for vm in cluster.vms() {
        first.entry(vm.name.to_string()).or_insert(0);
    }
    let mut by_wave: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (vm, wave) in first {
        by_wave.entry(wave).or_default().push(vm);
    }
    by_wave.into_values().collect()
}

#[cfg(feature = "live")]
pub use live_start::*;

#[cfg(feature = "live")]
mod live_start {
    use super::waves;
    use crate::domain::console_log_path;
    use crate::Error;
    use flatcar_topology::provision::ready;
    use flatcar_topology::Cluster;
    use std::time::{Duration, Instant};
    use virt::connect::Connect;

    /// How often the console logs are read while waiting.
    const POLL: Duration = Duration::from_millis(500);

    /// Progress of [`start`].
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[non_exhaustive]
    pub enum Event {
        /// A network of the cloud was inactive and was started (a domain
        /// cannot start on an inactive network; `apply` only defines them).
        NetworkStarted(String),
        /// A wave begins (index from 0, its VMs).
        Wave(usize, Vec<String>),
        /// The domain was started.
        Starting(String),
        /// The domain was already running: only its report is waited for.
        AlreadyRunning(String),
        /// Still waiting for the VM's report (sent about every 10 s).
        Waiting(String, Duration),
        /// The VM reported up with no failed unit after this long.
        Up(String, Duration),
    }

    /// One VM started (or found running) and up.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Started {
        /// VM name.
        pub vm: String,
        /// Its wave (0 = first).
        pub wave: usize,
        /// From its start (or from when waiting began) to its report.
        pub took: Duration,
        /// It was running before [`start`] was called.
        pub already_running: bool,
    }

    fn lv(object: &str, e: &virt::error::Error) -> Error {
        Error::Libvirt {
            object: object.to_string(),
            source: e.clone(),
        }
    }

    /// Starts every domain of `cluster` at `conn` in bring-up order and
    /// waits for each to report up (`timeout` per VM, from its start).
    /// Domains must be defined (`apply`) and their Ignition files placed;
    /// the cloud's networks are started first when inactive.
    pub fn start(
        conn: &Connect,
        cluster: &Cluster,
        timeout: Duration,
        progress: &mut dyn FnMut(Event),
    ) -> Result<Vec<Started>, Error> {
        start_only(conn, cluster, &[], timeout, progress)
    }

    /// [`start`] for the VMs named in `only` (all when empty), in the same
    /// waves and order; the other domains stay as they are (a lab that
    /// cannot run every VM at once boots a subset of the defined cloud).
    pub fn start_only(
        conn: &Connect,
        cluster: &Cluster,
        only: &[&str],
        timeout: Duration,
        progress: &mut dyn FnMut(Event),
    ) -> Result<Vec<Started>, Error> {
        start_with(
            conn,
            cluster,
            &Options {
                only,
                timeout,
                parallel: None,
            },
            progress,
        )
    }

    /// What [`start_with`] starts and how.
    #[derive(Debug, Clone, Copy)]
    pub struct Options<'a> {
        /// The VMs to start (all when empty).
        pub only: &'a [&'a str],
        /// Per VM, from its start to its report.
        pub timeout: Duration,
        /// At most this many VMs booting at once within a wave (a host
        /// whose cores or disks a boot storm would starve: boots slow down
        /// until units time out); `None`: the whole wave at once.
        pub parallel: Option<std::num::NonZeroUsize>,
    }

    /// [`start_only`] with [`Options`]: a VM of a wave is started once
    /// fewer than `parallel` VMs of that wave are still booting.
    pub fn start_with(
        conn: &Connect,
        cluster: &Cluster,
        opts: &Options<'_>,
        progress: &mut dyn FnMut(Event),
    ) -> Result<Vec<Started>, Error> {
        let (only, timeout) = (opts.only, opts.timeout);
        let limit = opts.parallel.map_or(usize::MAX, |n| n.get());
        virt::error::clear_error_callback();
        for net in cluster.networks() {
            let object = format!("network {}", net.name);
            let n = conn
                .lookup_network_by_name(net.name.as_str())
                .map_err(|e| lv(&object, &e))?;
            if !n.is_active().map_err(|e| lv(&object, &e))? {
                n.create().map_err(|e| lv(&object, &e))?;
                progress(Event::NetworkStarted(net.name.to_string()));
            }
        }
        let mut done = Vec::new();
        let chosen = waves(cluster).into_iter().map(|names| {
            names
                .into_iter()
                .filter(|n| only.is_empty() || only.contains(&n.as_str()))
                .collect::<Vec<_>>()
        });
        for (w, names) in chosen.filter(|names| !names.is_empty()).enumerate() {
            progress(Event::Wave(w, names.clone()));
            let mut pending = Vec::new();
            let mut queue = names.iter();
            let mut last_note = Instant::now();
            loop {
                while pending.len() < limit {
                    let Some(name) = queue.next() else { break };
                    let object = format!("domain {name}");
                    let vm = cluster.vm(name).ok_or_else(|| Error::Refused {
                        object: object.clone(),
                        reason: "not in the model".into(),
                    })?;
                    let d = conn
                        .lookup_domain_by_name(name)
                        .map_err(|e| lv(&object, &e))?;
                    let running = d.is_active().map_err(|e| lv(&object, &e))?;
                    if running {
                        progress(Event::AlreadyRunning(name.clone()));
                    } else {
                        d.create().map_err(|e| lv(&object, &e))?;
                        progress(Event::Starting(name.clone()));
                    }
                    pending.push((
                        name.clone(),
                        console_log_path(vm),
                        d,
                        Instant::now(),
                        running,
                    ));
                }
                if pending.is_empty() {
                    break;
                }
                let mut still = Vec::new();
                for (name, log, d, since, running) in pending {
                    let text = match std::fs::read(&log) {
                        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                        Err(source) => {
                            return Err(Error::Console {
                                vm: name,
                                path: log,
                                source,
                            })
                        }
                    };
                    match ready::last_report(&text) {
                        Some(r) if r.failed.is_empty() => {
                            let took = since.elapsed();
                            progress(Event::Up(name.clone(), took));
                            done.push(Started {
                                vm: name,
                                wave: w,
                                took,
                                already_running: running,
                            });
                        }
                        Some(r) => {
                            return Err(Error::UnitsFailed {
                                vm: name,
                                units: r.failed,
                            })
                        }
                        None => {
                            let object = format!("domain {name}");
                            if !d.is_active().map_err(|e| lv(&object, &e))? {
                                return Err(Error::NotUp {
                                    vm: name,
                                    why: format!("the domain stopped; see {log}"),
                                });
                            }
                            if since.elapsed() > timeout {
                                return Err(Error::NotUp {
                                    vm: name,
                                    why: format!(
                                        "no report after {} s; see {log}",
                                        timeout.as_secs()
                                    ),
                                });
                            }
                            still.push((name, log, d, since, running));
                        }
                    }
                }
                pending = still;
                if !pending.is_empty() {
                    if last_note.elapsed() >= Duration::from_secs(10) {
                        for (name, _, _, since, _) in &pending {
                            progress(Event::Waiting(name.clone(), since.elapsed()));
                        }
                        last_note = Instant::now();
                    }
                    std::thread::sleep(POLL);
                }
            }
        }
        Ok(done)
    }
}
