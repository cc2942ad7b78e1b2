//! Network services on the nodes and the host, contributed through the
//! provisioning model: WireGuard keys and configs, CoreDNS on the DNS-role
//! VMs, Chrony on the NTP-role VMs. (The host's nftables ruleset needs the
//! flows of every service, so the bundle renders it after composition with
//! [`crate::ruleset::render`].)

use crate::{chrony, coredns as dns, router, wireguard};
use flatcar_topology::artifact::{Artifact, ArtifactError};
use flatcar_topology::provision::{sysext, Contributions, File, Service, Unit};
use flatcar_topology::{Cluster, Error as TopologyError, Role, VpnEndpoint};
use std::collections::BTreeMap;

/// CoreDNS release pinned for the DNS role.
pub const COREDNS_VERSION: &str = "1.14.2";
/// CoreDNS image name (without digest).
pub const COREDNS_IMAGE: &str = "registry.k8s.io/coredns/coredns:v1.14.2";
/// Digest of [`COREDNS_IMAGE`] as CoreDNS publishes it in
/// `coredns/corefile-migration` `migration/versions.go` (the table kubeadm
/// checks released CoreDNS images against).
pub const COREDNS_DIGEST: &str =
    "sha256:fd5079792b93909db3adefa91e41c3995455013394f0197c7346786ae19079fc";

/// CoreDNS runs as a digest-pinned container: the sysext-bakery has no
/// CoreDNS extension.
pub fn coredns_image() -> Result<Artifact, ArtifactError> {
    Artifact::image("coredns", COREDNS_VERSION, COREDNS_IMAGE, COREDNS_DIGEST)
}

/// Chrony release of the bakery's `chrony` extension (the version the
/// bakery's `docs/chrony.md` documents).
pub const CHRONY_VERSION: &str = "4.8";

/// The Chrony system extension (unverified: the bakery's SHA-256 sums are
/// not quoted in any public source this project could read). Flatcar's
/// generic image ships no chronyd.
pub fn chrony_sysext() -> Result<Artifact, ArtifactError> {
    sysext::bakery("chrony", CHRONY_VERSION)
}

/// Where the NTP server's config lives on the VM.
pub const CHRONY_CONF: &str = "/etc/chrony/chrony.conf";

/// The extension's `chronyd.service` with the generated config: the
/// extension installs chronyd as `/usr/bin/chronyd` (`--sbindir=/usr/bin`).
const CHRONY_DROPIN: &str =
    "[Service]\nExecStart=\nExecStart=/usr/bin/chronyd -f /etc/chrony/chrony.conf\n";

/// WireGuard, CoreDNS and Chrony.
#[derive(Debug, Clone, Default)]
pub struct NetServices {
    /// The zones as rendered last time, by zone name (the cluster domain or
    /// a reverse zone): each zone keeps its SOA serial when its content is
    /// unchanged and takes the next one when it changed. Empty: every zone
    /// starts at [`dns::Serial::FIRST`].
    pub previous_zones: BTreeMap<String, dns::PreviousZone>,
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
        let aerr = |e: ArtifactError| TopologyError::service("flatcar-net", e);
        // WireGuard.
        if let Some(vpn) = cluster.vpn() {
            let endpoint = wireguard::keypair(
                &wireguard::ENDPOINT_SECRET,
                out.secret(&wireguard::ENDPOINT_SECRET, &|| {
                    wireguard::generate().map_err(werr)
                })?,
            )
            .map_err(werr)?;
            let mut peers = Vec::new();
            for p in &vpn.peers {
                let id = wireguard::peer_secret(p);
                let kp = wireguard::keypair(
                    &id,
                    out.secret(&id, &|| wireguard::generate().map_err(werr))?,
                )
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
        // The LAN router's port forwards (for the user's router).
        if let (Some(table), Some(rules)) = (router::table(cluster), router::nftables(cluster)) {
            out.artifact("router/port-forwards.md", table, false);
            out.artifact("router/nftables.nft", rules, false);
        }
        // Chrony: the sysext-bakery extension on the NTP role.
        let server = chrony::server(cluster);
        out.artifact("ntp/chrony-server.conf", server.clone(), false);
        out.artifact("ntp/chrony-client.conf", chrony::client(cluster), false);
        let ntp_vms: Vec<_> = cluster.with_role(Role::Ntp).collect();
        if !ntp_vms.is_empty() {
            let ext = out.uses(cluster.artifact(&chrony_sysext().map_err(aerr)?));
            for vm in ntp_vms {
                sysext::install(out, &vm.name, &[(&ext, &["chronyd.service"])])?;
                out.file(&vm.name, File::text(CHRONY_CONF, 0o644, server.clone()));
                out.unit(
                    &vm.name,
                    Unit::dropin("chronyd.service", "20-microcloud.conf", CHRONY_DROPIN),
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
        }
        Ok(())
    }

    fn finish(&self, cluster: &Cluster, out: &mut Contributions<'_>) -> Result<(), TopologyError> {
        let aerr = |e: ArtifactError| TopologyError::service("flatcar-net", e);
        // CoreDNS.
        // Rendered once, after every service asked for its records: the
        // bundle's `dns/` files and the DNS nodes' files are the same values.
        let domain = cluster.domain().to_string();
        let zone = dns::zone_after(cluster, out.records(), self.previous_zones.get(&domain));
        let corefile = dns::corefile(cluster);
        let reverse = dns::reverse_zones_after(cluster, &self.previous_zones);
        out.artifact("dns/Corefile", corefile.clone(), false);
        out.artifact(
            &format!("dns/{}.zone", cluster.domain()),
            zone.clone(),
            false,
        );
        for (name, text) in &reverse {
            out.artifact(&format!("dns/{name}.zone"), text.clone(), false);
        }
        let dns_vms: Vec<_> = cluster.with_role(Role::Dns).collect();
        let coredns = if dns_vms.is_empty() {
            None
        } else {
            let a = out.uses(cluster.artifact(&coredns_image().map_err(aerr)?));
            Some(a.pull_ref().ok_or_else(|| {
                aerr(ArtifactError::Kind {
                    name: "coredns".into(),
                    expected: "an image",
                    hint: "image = \"…\" and digest = \"sha256:…\", not url",
                })
            })?)
        };
        for vm in dns_vms {
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
                Unit::enabled(
                    "coredns.service",
                    coredns_unit(coredns.as_deref().unwrap_or_default()),
                ),
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
        Ok(())
    }
}

#[cfg(test)]
mod image_tests {
    #[test]
    fn pinned_image_is_a_valid_reference() {
        let r = format!("{}@{}", super::COREDNS_IMAGE, super::COREDNS_DIGEST);
        assert!(flatcar_topology::ImageRef::new(r.as_str()).is_ok(), "{r}");
        assert!(super::coredns_image().is_ok());
    }
}
