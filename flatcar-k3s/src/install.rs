//! Installing K3s on Flatcar through the provisioning model: the pinned
//! binary fetched and verified by Ignition, systemd units with the right
//! ordering and the bootstrap wait, the token as a 0600 secret, the storage
//! node's NFS exports and the Longhorn prerequisites.

use crate::{config, manifests};
use flatcar_topology::provision::{random_hex, Contributions, File, Service, Unit};
use flatcar_topology::{
    Cluster, Endpoint, Error as TopologyError, Flannel, Flow, Name, PortRange, Proto, Role,
};

/// SHA-512 of the K3s amd64 binary per pinned version. K3s publishes SHA-256
/// sums; this project has no internet access to compute the SHA-512, so the
/// entry is a placeholder and Ignition's verification fails at first boot —
/// an unverified binary never runs. Fill it with `sha512sum k3s` of the
/// release asset when bumping the version.
pub const K3S_SHA512: &[(&str, &str)] = &[(
    "v1.31.4+k3s1",
    "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
)];

/// Download URL of the K3s binary.
pub fn binary_url(version: &str) -> String {
    format!(
        "https://github.com/k3s-io/k3s/releases/download/{}/k3s",
        version.replace('+', "%2B")
    )
}

/// The K3s service: servers, agents, storage node, manifests, flows.
#[derive(Debug, Clone, Default)]
pub struct K3sCluster;

fn unit(server: bool, wait_for: Option<&str>) -> String {
    let (desc, cmd) = if server {
        ("server", "server")
    } else {
        ("agent", "agent")
    };
    let wait = wait_for
        .map(|url| {
            format!(
                "# Bootstrap order: the first server initialises etcd; every other node\n# joins through the API VIP, so it waits until the VIP answers.\nExecStartPre=/bin/sh -c 'until /usr/bin/curl -ksf --max-time 2 {url}/ping >/dev/null; do echo waiting for {url}; sleep 5; done'\n"
            )
        })
        .unwrap_or_default();
    format!(
        "[Unit]
Description=K3s {desc} (flatcar-microcloud)
Documentation=https://docs.k3s.io
Wants=network-online.target time-sync.target
After=network-online.target time-sync.target

[Service]
Type=notify
ExecStartPre=-/sbin/modprobe br_netfilter
ExecStartPre=-/sbin/modprobe overlay
{wait}ExecStart=/opt/bin/k3s {cmd}
KillMode=process
Delegate=yes
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s

[Install]
WantedBy=multi-user.target
"
    )
}

fn role(r: Role) -> Endpoint {
    Endpoint::Role(r)
}

fn flow(from: Endpoint, to: Endpoint, proto: Proto, ports: &[(u16, u16)], why: &str) -> Flow {
    Flow {
        from,
        to,
        proto,
        ports: ports
            .iter()
            .filter_map(|&(a, b)| {
                let a = flatcar_topology::Port::new(a).ok()?;
                let b = flatcar_topology::Port::new(b).ok()?;
                PortRange::new(a, b).ok()
            })
            .collect(),
        why: Name::new(why).ok(),
    }
}

/// Every flow K3s needs, for the firewall.
pub fn flows(cluster: &Cluster) -> Vec<Flow> {
    let mut out = Vec::new();
    let nodes = [Role::Master, Role::Worker, Role::Storage];
    if let Some(vip) = cluster.api_vip() {
        for r in nodes {
            out.push(flow(
                role(r),
                Endpoint::Vip(vip.name.clone()),
                Proto::Tcp,
                &[(6443, 6443)],
                "k3s-join",
            ));
        }
    }
    out.push(flow(
        role(Role::Master),
        role(Role::Master),
        Proto::Tcp,
        &[(2379, 2380), (6443, 6443)],
        "etcd",
    ));
    for a in nodes {
        for b in nodes {
            out.push(flow(
                role(a),
                role(b),
                Proto::Tcp,
                &[(10250, 10250)],
                "kubelet",
            ));
            match cluster.k3s().flannel {
                Flannel::Vxlan => out.push(flow(
                    role(a),
                    role(b),
                    Proto::Udp,
                    &[(8472, 8472)],
                    "flannel-vxlan",
                )),
                Flannel::WireguardNative => out.push(flow(
                    role(a),
                    role(b),
                    Proto::Udp,
                    &[(51820, 51821)],
                    "flannel-wireguard",
                )),
            }
        }
        if a != Role::Master {
            out.push(flow(
                role(a),
                role(Role::Master),
                Proto::Tcp,
                &[(6443, 6443)],
                "k3s-api",
            ));
        }
    }
    for share in &cluster.spec().shares {
        for c in &share.clients {
            out.push(flow(
                c.clone(),
                role(Role::Storage),
                Proto::Tcp,
                &[(2049, 2049)],
                "nfs",
            ));
        }
    }
    out.retain(|f| f.from != f.to || matches!(f.from, Endpoint::Role(_)));
    out
}

/// `/etc/exports` of the storage node.
pub fn exports(cluster: &Cluster) -> String {
    let mut s = String::from("# Generated by flatcar-microcloud; do not edit.\n");
    for share in &cluster.spec().shares {
        let mut clients: Vec<String> = share
            .clients
            .iter()
            .filter_map(|c| cluster.endpoint_nets(c))
            .flatten()
            .map(|n| format!("{n}(rw,sync,no_subtree_check,root_squash)"))
            .collect();
        clients.sort();
        clients.dedup();
        if !clients.is_empty() {
            s.push_str(&format!("/srv/nfs/{} {}\n", share.name, clients.join(" ")));
        }
    }
    s
}

impl Service for K3sCluster {
    fn name(&self) -> &'static str {
        "flatcar-k3s"
    }

    fn contribute(
        &self,
        cluster: &Cluster,
        out: &mut Contributions<'_>,
    ) -> Result<(), TopologyError> {
        let err = |e: crate::Error| TopologyError::service("flatcar-k3s", e);
        let version = cluster.k3s().version.as_str();
        let nodes: Vec<_> = cluster
            .vms()
            .iter()
            .filter(|v| v.roles.iter().any(|r| r.is_k3s_node()))
            .collect();
        if nodes.is_empty() {
            return Ok(());
        }
        let token = out.secret(cluster.k3s().token.as_str(), &|| random_hex(32))?;
        let sha = K3S_SHA512
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, h)| *h)
            .unwrap_or("00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000");
        let url = config::api_url(cluster).map_err(err)?;
        for vm in nodes {
            let Some(text) = config::render(cluster, vm).map_err(err)? else {
                continue;
            };
            let server = vm.has(Role::Master);
            let first = config::is_first_server(cluster, vm);
            out.artifact(&format!("k3s/{}/config.yaml", vm.name), text.clone(), false);
            out.file(&vm.name, File::text(config::CONFIG_FILE, 0o600, text));
            out.file(
                &vm.name,
                File::secret(config::TOKEN_FILE, 0o600, token.clone()),
            );
            out.file(
                &vm.name,
                File::remote("/opt/bin/k3s", 0o755, &binary_url(version), sha),
            );
            let name = if server {
                "k3s.service"
            } else {
                "k3s-agent.service"
            };
            out.unit(
                &vm.name,
                Unit::enabled(name, unit(server, (!first).then_some(url.as_str()))),
            );
            out.sysctl(&vm.name, "net.ipv4.ip_forward", "1");
            out.sysctl(&vm.name, "net.bridge.bridge-nf-call-iptables", "1");
            if vm.has(Role::Worker) || vm.has(Role::Storage) {
                // Longhorn prerequisites: iSCSI initiator and the data path.
                out.unit(
                    &vm.name,
                    Unit {
                        name: "iscsid.service".into(),
                        enabled: Some(true),
                        ..Unit::default()
                    },
                );
            }
            if first {
                out.file(
                    &vm.name,
                    File::text(
                        &format!("{}/traefik-config.yaml", manifests::MANIFEST_DIR),
                        0o600,
                        manifests::traefik(cluster).map_err(err)?,
                    ),
                );
                out.file(
                    &vm.name,
                    File::text(
                        &format!("{}/longhorn.yaml", manifests::MANIFEST_DIR),
                        0o600,
                        manifests::longhorn(cluster).map_err(err)?,
                    ),
                );
            }
            if vm.has(Role::Storage) && !cluster.spec().shares.is_empty() {
                let data = vm
                    .data_disks
                    .first()
                    .map(|d| format!("/var/mnt/{}", d.name))
                    .unwrap_or_else(|| "/var/mnt/data".into());
                let mut dirs: Vec<String> = cluster
                    .spec()
                    .shares
                    .iter()
                    .map(|sh| format!("{data}/nfs/{}", sh.name))
                    .collect();
                dirs.push(format!("{data}/longhorn"));
                out.unit(
                    &vm.name,
                    Unit::enabled(
                        "microcloud-storage-dirs.service",
                        format!("[Unit]\nDescription=Share and Longhorn directories on the data disk\nDefaultDependencies=no\nRequiresMountsFor={data}\nBefore=srv-nfs.mount var-mnt-longhorn.mount\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/usr/bin/mkdir -p -m 0770 {}\n\n[Install]\nWantedBy=local-fs.target\n", dirs.join(" ")),
                    ),
                );
                out.unit(
                    &vm.name,
                    Unit::enabled(
                        "srv-nfs.mount",
                        format!("[Unit]\nDescription=NFS exports on the data disk\nRequires=microcloud-storage-dirs.service\nAfter=microcloud-storage-dirs.service\n\n[Mount]\nWhat={data}/nfs\nWhere=/srv/nfs\nType=none\nOptions=bind\n\n[Install]\nWantedBy=local-fs.target\n"),
                    ),
                );
                out.unit(
                    &vm.name,
                    Unit::enabled(
                        "var-mnt-longhorn.mount",
                        format!("[Unit]\nDescription=Longhorn data path on the data disk\nRequires=microcloud-storage-dirs.service\nAfter=microcloud-storage-dirs.service\n\n[Mount]\nWhat={data}/longhorn\nWhere={}\nType=none\nOptions=bind\n\n[Install]\nWantedBy=local-fs.target\n", manifests::LONGHORN_DATA_PATH),
                    ),
                );
                let ex = exports(cluster);
                out.file(&vm.name, File::text("/etc/exports", 0o644, ex.clone()));
                out.artifact(&format!("k3s/{}/exports", vm.name), ex, false);
                out.unit(
                    &vm.name,
                    Unit {
                        name: "nfs-server.service".into(),
                        enabled: Some(true),
                        ..Unit::default()
                    },
                );
            }
        }
        out.artifact(
            "k3s/manifests/traefik-config.yaml",
            manifests::traefik(cluster).map_err(err)?,
            false,
        );
        out.artifact(
            "k3s/manifests/longhorn.yaml",
            manifests::longhorn(cluster).map_err(err)?,
            false,
        );
        for f in flows(cluster) {
            out.flow(f);
        }
        Ok(())
    }
}
