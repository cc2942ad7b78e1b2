//! Running HAProxy and Keepalived on Flatcar as system extensions from the
//! Flatcar sysext-bakery (downloaded by Ignition, merged by
//! `systemd-sysext`, patch-updated by `systemd-sysupdate`), with the
//! generated config files and sysctls, contributed through the
//! provisioning model.

use crate::{haproxy, keepalived, Settings};
use flatcar_topology::artifact::{Artifact, ArtifactError};
use flatcar_topology::provision::{sysext, Contributions, File, Service, Unit};
use flatcar_topology::{Cluster, Error as TopologyError, Role};

/// HAProxy release of the bakery's `haproxy` extension this project pins
/// (the version the bakery's own `docs/haproxy.md` documents).
pub const HAPROXY_VERSION: &str = "3.2.5";
/// Keepalived release of the bakery's `keepalived` extension this project
/// pins (the version the bakery's `docs/keepalived.md` documents).
pub const KEEPALIVED_VERSION: &str = "v2.3.1";
/// Keepalived's binary inside the extension (`--sbindir=/usr/sbin`).
pub const KEEPALIVED_BIN: &str = "/usr/sbin/keepalived";
/// Options the extension's unit passes to Keepalived (VRRP only: no
/// checker or BFD process), read from this environment file.
pub const KEEPALIVED_ENV: &str = "/etc/sysconfig/keepalived";

/// The HAProxy system extension (unverified: the bakery's SHA-256 sums are
/// not quoted in any public source this project could read).
pub fn haproxy_sysext() -> Result<Artifact, ArtifactError> {
    sysext::bakery("haproxy", HAPROXY_VERSION)
}

/// The Keepalived system extension (unverified, like [`haproxy_sysext`]).
pub fn keepalived_sysext() -> Result<Artifact, ArtifactError> {
    sysext::bakery("keepalived", KEEPALIVED_VERSION)
}

/// The load-balancer service: HAProxy + Keepalived on every VIP holder.
#[derive(Debug, Clone, Default)]
pub struct LoadBalancers {
    /// Failure-detection settings.
    pub settings: Settings,
}

/// HAProxy's unit drop-in: ~2 fds per connection of [`haproxy::MAXCONN`],
/// and the nice value of [`Settings::haproxy_nice`].
///
/// It also creates [`haproxy::RUN_DIR`] (stats socket, pid file, the
/// watcher's down file) before HAProxy starts: the extension's tmpfiles.d
/// entry only applies at the boot after the one that merged it, so the
/// first start failed without it. The directory outlives a stop, so the
/// watcher's "down" verdict stays readable for Keepalived.
///
/// And it points the unit's pid file at [`haproxy::PID_FILE`], which the
/// watcher and the track script read: HAProxy's own unit (upstream's
/// `admin/systemd/haproxy.service.in`, which Debian ships and extensions
/// built from upstream carry) passes `-p $PIDFILE` with
/// `PIDFILE=/run/haproxy.pid`, and `-p` wins over the config's `pidfile`;
/// in the boot lab HAProxy ran, the watcher found no pid, wrote "down",
/// and every VRRP instance stayed in FAULT.
///
/// Before HAProxy starts it writes an empty server-state file
/// ([`haproxy::STATE_FILE`], version line `1`, no servers) unless one is
/// there: HAProxy warns at every start and every `haproxy -c` when the file
/// the config names is missing or empty, and a reload's dump (see
/// `flatcar_topology::change::Reload::Haproxy`) only replaces it.
fn haproxy_dropin(settings: &Settings) -> String {
    let mut s = format!(
        "[Service]\nLimitNOFILE=65536\nRuntimeDirectory={}\nRuntimeDirectoryPreserve=yes\nEnvironment=PIDFILE={}\nExecStartPre=/bin/sh -c 'test -s {state} || echo 1 > {state}'\n",
        haproxy::RUN_DIR.trim_start_matches("/run/"),
        haproxy::PID_FILE,
        state = haproxy::STATE_FILE
    );
    if let Some(n) = settings.haproxy_nice {
        s.push_str(&format!("Nice={n}\n"));
    }
    s
}

/// Keepalived starts after HAProxy (its track script watches HAProxy's pid).
const KEEPALIVED_ORDER: &str = "[Unit]\nWants=haproxy.service\nAfter=haproxy.service\n";

/// The HAProxy watcher ([`haproxy::watch_script`]) on the host: POSIX sh
/// and GNU coreutils, both part of Flatcar; it needs the host pid namespace,
/// where HAProxy runs (`--pid host`).
fn watch_unit() -> String {
    format!(
        "[Unit]
Description=HAProxy watcher: tells Keepalived at once when HAProxy exits (flatcar-microcloud)
After=haproxy.service

[Service]
ExecStartPre=/usr/bin/mkdir -p {run}
ExecStart=/bin/sh {script}
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
",
        run = haproxy::RUN_DIR,
        script = haproxy::WATCH_SCRIPT,
    )
}

impl Service for LoadBalancers {
    fn name(&self) -> &'static str {
        "flatcar-lb"
    }

    /// Files, units and sysctls on every VIP holder. No flow is contributed:
    /// HAProxy → backend ports is implied by the VIPs in
    /// [`Cluster::flows`], clients → VIP ports are declared in the model,
    /// and VRRP (IP protocol 112, unicast between the holders) stays on the
    /// VIP's own network segment, switched at L2 — it never crosses a
    /// routed firewall hop, and the model's [`flatcar_topology::Proto`]
    /// has no VRRP variant to open it narrowly anyway.
    fn contribute(
        &self,
        cluster: &Cluster,
        out: &mut Contributions<'_>,
    ) -> Result<(), TopologyError> {
        let err = |e: crate::Error| TopologyError::service("flatcar-lb", e);
        // The model's failure-detection timing, when it states one.
        let settings = &self.settings.with_model(cluster);
        let aerr = |e: ArtifactError| TopologyError::service("flatcar-lb", e);
        let holders: Vec<_> = cluster
            .with_role(Role::LoadBalancer)
            .filter(|vm| cluster.vips_held_by(vm).next().is_some())
            .collect();
        if holders.is_empty() {
            return Ok(());
        }
        let hap_ext = out.uses(cluster.artifact(&haproxy_sysext().map_err(aerr)?));
        let kad_ext = out.uses(cluster.artifact(&keepalived_sysext().map_err(aerr)?));
        for vm in holders {
            let hap = haproxy::render(cluster, vm, settings).map_err(err)?;
            let kad = keepalived::render(cluster, vm, settings).map_err(err)?;
            out.artifact(&format!("lb/{}/haproxy.cfg", vm.name), hap.clone(), false);
            out.artifact(
                &format!("lb/{}/keepalived.conf", vm.name),
                kad.clone(),
                false,
            );
            sysext::install(
                out,
                &vm.name,
                &[
                    (&hap_ext, &["haproxy.service"]),
                    (&kad_ext, &["keepalived.service"]),
                ],
            )?;
            // The extension's unit reads /etc/haproxy/haproxy.cfg and writes
            // its pid to /run/haproxy/haproxy.pid, as the config says.
            out.file(&vm.name, File::text("/etc/haproxy/haproxy.cfg", 0o644, hap));
            out.file(
                &vm.name,
                File::text("/etc/keepalived/keepalived.conf", 0o644, kad),
            );
            out.file(
                &vm.name,
                File::text(KEEPALIVED_ENV, 0o644, "KEEPALIVED_OPTIONS=\"--vrrp\"\n"),
            );
            out.unit(
                &vm.name,
                Unit::dropin(
                    "haproxy.service",
                    "20-microcloud.conf",
                    haproxy_dropin(settings),
                ),
            );
            out.unit(
                &vm.name,
                Unit::dropin("keepalived.service", "20-microcloud.conf", KEEPALIVED_ORDER),
            );
            if let Some(watch) = haproxy::watch_script(settings) {
                out.file(
                    &vm.name,
                    File::text(haproxy::WATCH_SCRIPT, 0o755, watch.clone()),
                );
                out.unit(
                    &vm.name,
                    Unit::enabled("haproxy-watch.service", watch_unit()),
                );
                out.artifact(&format!("lb/{}/haproxy-watch", vm.name), watch, false);
            }
            // HAProxy on the backup binds VIP addresses it does not hold yet.
            out.sysctl(&vm.name, "net.ipv4.ip_nonlocal_bind", "1");
            // VRRP adverts to unicast peers must not be dropped as martians/asymmetric.
            out.sysctl(&vm.name, "net.ipv4.conf.all.rp_filter", "2");
        }
        Ok(())
    }
}

#[cfg(test)]
mod sysext_tests {
    #[test]
    fn pinned_extensions_are_artifacts() {
        assert!(super::haproxy_sysext().is_ok());
        assert!(super::keepalived_sysext().is_ok());
    }
}
