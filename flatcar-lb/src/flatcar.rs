//! Running HAProxy and Keepalived on Flatcar: host-network containers pinned
//! by digest, config files and sysctls, contributed through the
//! provisioning model.

use crate::{haproxy, keepalived, Settings};
use flatcar_topology::provision::{Contributions, File, Service, Unit};
use flatcar_topology::{Cluster, Error as TopologyError, Role};

/// HAProxy image, pinned by digest: the multi-arch index that the Docker
/// Official Images `repo-info` recorded for `haproxy:lts` when it was HAProxy
/// 2.8.5 (December 2023). It cannot be verified offline; check it with
/// `docker buildx imagetools inspect docker.io/library/haproxy:lts` (or pin a
/// newer 2.8 release) before deploying. Docker pulls by the digest and ignores
/// the tag, so a moved tag never changes what runs.
pub const HAPROXY_IMAGE: &str = "docker.io/library/haproxy:lts@sha256:d19bc3c72bb56be5ac512d1d0e9518b92795edc45f2b5aab01a0d71541ab19be";
/// Keepalived image (`osixia/keepalived:2.0.20`: Alpine, keepalived built
/// into `/usr/local/sbin`, VRRPv3 and sub-second adverts supported).
/// **The digest is a placeholder** (all zeros): no public record of its real
/// digest was available to this project offline, and an invented one would
/// be worse than an obvious gap. Set [`LoadBalancers::keepalived_image`] to
/// the digest printed by `docker buildx imagetools inspect
/// osixia/keepalived:2.0.20`; until then the pull fails and nothing unpinned
/// ever runs.
pub const KEEPALIVED_IMAGE: &str = "docker.io/osixia/keepalived:2.0.20@sha256:0000000000000000000000000000000000000000000000000000000000000000";
/// Keepalived's binary inside [`KEEPALIVED_IMAGE`] (run directly, bypassing
/// the image's env-var templating entrypoint).
pub const KEEPALIVED_BIN: &str = "/usr/local/sbin/keepalived";

/// The load-balancer service: HAProxy + Keepalived on every VIP holder.
#[derive(Debug, Clone)]
pub struct LoadBalancers {
    /// Failure-detection settings.
    pub settings: Settings,
    /// HAProxy image reference (with digest).
    pub haproxy_image: String,
    /// Keepalived image reference (with digest).
    pub keepalived_image: String,
}

impl Default for LoadBalancers {
    fn default() -> Self {
        LoadBalancers {
            settings: Settings::default(),
            haproxy_image: HAPROXY_IMAGE.into(),
            keepalived_image: KEEPALIVED_IMAGE.into(),
        }
    }
}

/// HAProxy as a host-network container. `--pid host` matters: Keepalived's
/// track script reads HAProxy's pid file and probes it with `kill -0`, so the
/// pid must be a host pid (in a private pid namespace it would be `1`, which
/// is always alive in Keepalived's view — HAProxy's death would go unseen).
fn haproxy_unit(image: &str) -> String {
    format!(
        "[Unit]
Description=HAProxy for the VIPs (flatcar-microcloud)
Wants=network-online.target
After=docker.service network-online.target
Requires=docker.service

[Service]
RuntimeDirectory=haproxy
RuntimeDirectoryPreserve=yes
ExecStartPre=-/usr/bin/docker rm -f haproxy
ExecStart=/usr/bin/docker run --rm --name haproxy --network host --pid host --ulimit nofile=65536:65536 --user 0 --cap-drop ALL --cap-add NET_BIND_SERVICE -v /etc/haproxy:/usr/local/etc/haproxy:ro -v {run}:{run} {image} haproxy -W -db -f /usr/local/etc/haproxy/haproxy.cfg
ExecReload=/usr/bin/docker kill --signal USR2 haproxy
ExecStop=/usr/bin/docker stop -t 5 haproxy
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
",
        run = haproxy::RUN_DIR,
        image = image
    )
}

/// Keepalived as a host-network container with the capabilities VRRP needs
/// (raw sockets, address changes; `SYS_NICE` for `vrrp_rt_priority`) and
/// the host pid namespace (see
/// [`haproxy_unit`]); VRRP only (`--vrrp`: no checker or BFD process).
fn keepalived_unit(image: &str) -> String {
    format!(
        "[Unit]
Description=Keepalived VRRP for the VIPs (flatcar-microcloud)
Wants=network-online.target haproxy.service
After=docker.service network-online.target haproxy.service
Requires=docker.service

[Service]
ExecStartPre=-/usr/bin/docker rm -f keepalived
ExecStart=/usr/bin/docker run --rm --name keepalived --network host --pid host --cap-drop ALL --cap-add NET_ADMIN --cap-add NET_BROADCAST --cap-add NET_RAW --cap-add SYS_NICE -v /etc/keepalived:/etc/keepalived:ro -v {run}:{run}:ro --entrypoint {bin} {image} --dont-fork --log-console --vrrp -f /etc/keepalived/keepalived.conf
ExecStop=/usr/bin/docker stop -t 5 keepalived
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
",
        run = haproxy::RUN_DIR,
        bin = KEEPALIVED_BIN,
        image = image
    )
}

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
        for vm in cluster.with_role(Role::LoadBalancer) {
            if cluster.vips_held_by(vm).next().is_none() {
                continue;
            }
            let hap = haproxy::render(cluster, vm, &self.settings).map_err(err)?;
            let kad = keepalived::render(cluster, vm, &self.settings).map_err(err)?;
            out.artifact(&format!("lb/{}/haproxy.cfg", vm.name), hap.clone(), false);
            out.artifact(
                &format!("lb/{}/keepalived.conf", vm.name),
                kad.clone(),
                false,
            );
            out.file(&vm.name, File::text("/etc/haproxy/haproxy.cfg", 0o644, hap));
            out.file(
                &vm.name,
                File::text("/etc/keepalived/keepalived.conf", 0o644, kad),
            );
            out.unit(
                &vm.name,
                Unit::enabled("haproxy.service", haproxy_unit(&self.haproxy_image)),
            );
            out.unit(
                &vm.name,
                Unit::enabled(
                    "keepalived.service",
                    keepalived_unit(&self.keepalived_image),
                ),
            );
            if let Some(watch) = haproxy::watch_script(&self.settings) {
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
