//! Network services on the nodes and the host, contributed through the
//! provisioning model: WireGuard keys and configs, CoreDNS on the DNS-role
//! VMs, Chrony on the NTP-role VMs. (The host's nftables ruleset needs the
//! flows of every service, so the bundle renders it after composition with
//! [`crate::ruleset::render`].)

use crate::{chrony, coredns as dns, wireguard};
use flatcar_topology::provision::{Contributions, File, Service, Unit};
use flatcar_topology::{Cluster, Error as TopologyError, Role, VpnEndpoint};

/// CoreDNS image, pinned by its index digest (the digest of
/// `coredns/coredns:1.11.3` as pinned by several public repositories; not
/// re-resolved from here, the test machine has no registry access).
pub const COREDNS_IMAGE: &str = "docker.io/coredns/coredns:1.11.3@sha256:9caabbf6238b189a65d0d6e6ac138de60d6a1c419e5a341fbbb7c78382559c6e";

/// Chrony image (Alpine + chrony), pinned by digest (as pinned by several
/// public repositories). Flatcar's generic/QEMU image ships no chronyd (it
/// comes only in some cloud OEM sysexts), so the NTP role runs it as a
/// container with the generated config.
pub const CHRONY_IMAGE: &str =
    "docker.io/cturra/ntp@sha256:7224d4e7c7833aabbcb7dd70c46c8a8dcccda365314c6db047b9b10403ace3bc";

/// Where the NTP server's config lives on the VM (mounted into the container).
pub const CHRONY_CONF: &str = "/etc/chrony/chrony.conf";

/// WireGuard, CoreDNS and Chrony.
#[derive(Debug, Clone)]
pub struct NetServices {
    /// CoreDNS image reference (with digest).
    pub coredns_image: String,
    /// Chrony image reference (with digest).
    pub chrony_image: String,
}

impl Default for NetServices {
    fn default() -> Self {
        NetServices {
            coredns_image: COREDNS_IMAGE.into(),
            chrony_image: CHRONY_IMAGE.into(),
        }
    }
}

fn coredns_unit(image: &str) -> String {
    format!(
        "[Unit]
Description=CoreDNS for the cluster zone (flatcar-microcloud)
Wants=network-online.target
After=docker.service network-online.target
Requires=docker.service

[Service]
ExecStartPre=-/usr/bin/docker rm -f coredns
ExecStart=/usr/bin/docker run --rm --name coredns --network host --cap-drop ALL --cap-add NET_BIND_SERVICE -v {dir}:{dir}:ro {image} -conf {dir}/Corefile
ExecStop=/usr/bin/docker stop -t 5 coredns
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
",
        dir = dns::ZONE_DIR
    )
}

fn chrony_unit(image: &str) -> String {
    format!(
        "[Unit]
Description=Chrony NTP server for the cluster (flatcar-microcloud)
Wants=network-online.target
After=docker.service network-online.target
Requires=docker.service
Conflicts=systemd-timesyncd.service

[Service]
ExecStartPre=-/usr/bin/docker rm -f chronyd
ExecStartPre=/usr/bin/mkdir -p /var/lib/chrony
ExecStart=/usr/bin/docker run --rm --name chronyd --network host --cap-drop ALL --cap-add SYS_TIME --cap-add NET_BIND_SERVICE -v {conf}:/etc/chrony/chrony.conf:ro -v /var/lib/chrony:/var/lib/chrony --entrypoint /usr/sbin/chronyd {image} -d -u root -f /etc/chrony/chrony.conf
ExecStop=/usr/bin/docker stop -t 5 chronyd
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
",
        conf = CHRONY_CONF
    )
}

impl Service for NetServices {
    fn name(&self) -> &'static str {
        "flatcar-net"
    }

    fn contribute(
        &self,
        cluster: &Cluster,
        out: &mut Contributions<'_>,
    ) -> Result<(), TopologyError> {
        let werr = |e: crate::Error| TopologyError::service("flatcar-net", e);
        // WireGuard.
        if let Some(vpn) = cluster.vpn() {
            let endpoint = wireguard::keypair(out.secret(wireguard::ENDPOINT_SECRET, &|| {
                wireguard::generate().map_err(werr)
            })?)
            .map_err(werr)?;
            let mut peers = Vec::new();
            for p in &vpn.peers {
                let kp = wireguard::keypair(out.secret(&wireguard::peer_secret(p), &|| {
                    wireguard::generate().map_err(werr)
                })?)
                .map_err(werr)?;
                if let Some(text) = wireguard::peer_config(cluster, p, &kp, &endpoint) {
                    out.artifact(&format!("vpn/{}.conf", p.name), text, true);
                }
                peers.push((p.clone(), kp));
            }
            if let Some(text) = wireguard::endpoint_config(cluster, &endpoint, &peers) {
                match &vpn.endpoint {
                    VpnEndpoint::Host => {
                        out.artifact(&format!("host/{}.conf", vpn.interface), text, true)
                    }
                    VpnEndpoint::Vm(vm) => {
                        out.file(
                            vm,
                            File::secret(
                                &format!("/etc/wireguard/{}.conf", vpn.interface),
                                0o600,
                                flatcar_topology::Secret::new(text),
                            ),
                        );
                        out.unit(
                            vm,
                            Unit {
                                name: format!("wg-quick@{}.service", vpn.interface),
                                enabled: Some(true),
                                ..Unit::default()
                            },
                        );
                        out.sysctl(vm, "net.ipv4.ip_forward", "1");
                    }
                }
            }
            out.artifact("vpn/endpoint.pub", format!("{}\n", endpoint.public), false);
        }
        // CoreDNS.
        let zone = dns::zone(cluster, &[]);
        let corefile = dns::corefile(cluster);
        let reverse = dns::reverse_zones(cluster);
        out.artifact("dns/Corefile", corefile.clone(), false);
        out.artifact(
            &format!("dns/{}.zone", cluster.domain()),
            zone.clone(),
            false,
        );
        for (name, text) in &reverse {
            out.artifact(&format!("dns/{name}.zone"), text.clone(), false);
        }
        for vm in cluster.with_role(Role::Dns) {
            out.file(
                &vm.name,
                File::text(
                    &format!("{}/Corefile", dns::ZONE_DIR),
                    0o644,
                    corefile.clone(),
                ),
            );
            out.file(
                &vm.name,
                File::text(
                    &format!("{}/{}.zone", dns::ZONE_DIR, cluster.domain()),
                    0o644,
                    zone.clone(),
                ),
            );
            for (name, text) in &reverse {
                out.file(
                    &vm.name,
                    File::text(
                        &format!("{}/{name}.zone", dns::ZONE_DIR),
                        0o644,
                        text.clone(),
                    ),
                );
            }
            out.unit(
                &vm.name,
                Unit::enabled("coredns.service", coredns_unit(&self.coredns_image)),
            );
            // systemd-resolved's stub listener would hold port 53.
            out.file(
                &vm.name,
                File::text(
                    "/etc/systemd/resolved.conf.d/10-no-stub.conf",
                    0o644,
                    "[Resolve]\nDNSStubListener=no\n",
                ),
            );
        }
        // Chrony.
        let server = chrony::server(cluster);
        out.artifact("ntp/chrony-server.conf", server.clone(), false);
        out.artifact("ntp/chrony-client.conf", chrony::client(cluster), false);
        for vm in cluster.with_role(Role::Ntp) {
            out.file(&vm.name, File::text(CHRONY_CONF, 0o644, server.clone()));
            out.unit(
                &vm.name,
                Unit::enabled("chronyd.service", chrony_unit(&self.chrony_image)),
            );
            out.unit(
                &vm.name,
                Unit {
                    name: "systemd-timesyncd.service".into(),
                    mask: true,
                    ..Unit::default()
                },
            );
        }
        Ok(())
    }
}
