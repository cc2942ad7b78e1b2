//! Running HAProxy and Keepalived on Flatcar: host-network containers pinned
//! by digest, config files and sysctls, contributed through the
//! provisioning model.

use crate::{haproxy, keepalived, Settings};
use flatcar_topology::provision::{Contributions, File, Service, Unit};
use flatcar_topology::{Cluster, Error as TopologyError, Role};

/// HAProxy image, pinned by digest. **The digest is a placeholder**: this
/// project has no registry access to read the real one. Set
/// [`LoadBalancers::haproxy_image`] to the digest printed by `docker buildx
/// imagetools inspect haproxy:2.8.14-alpine`; until then a pull fails — an
/// unpinned image never runs.
pub const HAPROXY_IMAGE: &str =
    "docker.io/library/haproxy:2.8.14-alpine@sha256:0000000000000000000000000000000000000000000000000000000000000000";
/// Keepalived image, pinned by digest (placeholder, see [`HAPROXY_IMAGE`]).
pub const KEEPALIVED_IMAGE: &str =
    "docker.io/osixia/keepalived:2.0.20@sha256:0000000000000000000000000000000000000000000000000000000000000000";

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
ExecStart=/usr/bin/docker run --rm --name haproxy --network host --user 0 --cap-drop ALL --cap-add NET_BIND_SERVICE -v /etc/haproxy:/usr/local/etc/haproxy:ro -v {run}:{run} {image} haproxy -W -db -f /usr/local/etc/haproxy/haproxy.cfg
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

fn keepalived_unit(image: &str) -> String {
    format!(
        "[Unit]
Description=Keepalived VRRP for the VIPs (flatcar-microcloud)
Wants=network-online.target haproxy.service
After=docker.service network-online.target haproxy.service
Requires=docker.service

[Service]
ExecStartPre=-/usr/bin/docker rm -f keepalived
ExecStart=/usr/bin/docker run --rm --name keepalived --network host --pid host --cap-drop ALL --cap-add NET_ADMIN --cap-add NET_BROADCAST --cap-add NET_RAW -v /etc/keepalived:/etc/keepalived:ro -v {run}:{run}:ro --entrypoint /usr/sbin/keepalived {image} --dont-fork --log-console --vrrp -f /etc/keepalived/keepalived.conf
ExecStop=/usr/bin/docker stop -t 5 keepalived
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
",
        run = haproxy::RUN_DIR,
        image = image
    )
}

impl Service for LoadBalancers {
    fn name(&self) -> &'static str {
        "flatcar-lb"
    }

    fn contribute(
        &self,
        cluster: &Cluster,
        out: &mut Contributions<'_>,
    ) -> Result<(), TopologyError> {
        let err = |e: crate::Error| TopologyError::Serialize(format!("flatcar-lb: {e}"));
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
            // HAProxy on the backup binds VIP addresses it does not hold yet.
            out.sysctl(&vm.name, "net.ipv4.ip_nonlocal_bind", "1");
            // VRRP adverts to unicast peers must not be dropped as martians/asymmetric.
            out.sysctl(&vm.name, "net.ipv4.conf.all.rp_filter", "2");
        }
        Ok(())
    }
}
