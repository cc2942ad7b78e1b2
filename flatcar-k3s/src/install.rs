//! Installing K3s on Flatcar through the provisioning model: the pinned
//! binary fetched and verified by Ignition, systemd units with the right
//! ordering and the bootstrap wait, the token as a 0600 secret, the storage
//! node's NFS exports and the Longhorn prerequisites.

use crate::Error;
use crate::{config, manifests};
use flatcar_topology::artifact::Artifact;
use flatcar_topology::provision::{random_hex, Contributions, File, Service, Unit};
use flatcar_topology::{
    Cluster, Endpoint, Error as TopologyError, Flannel, Flow, K3sVersion, Name, PortRange, Proto,
    Role,
};

/// K3s amd64 binaries this project pins, with the SHA-256 each release
/// publishes in its `sha256sum-amd64.txt` (sources in `docs/artifacts.md`).
/// Newest first; the reference cloud runs the first.
pub const K3S_BINARIES: &[(&str, &str)] = &[
    (
        "v1.36.5+k3s1",
        "d73847bcd3c5fccef0115b372e2f9a91f3032dc84bbf71518a4617565294d313",
    ),
    (
        "v1.36.4+k3s1",
        "835873f37245fc615f547a2fe2af9402a347875f13fa64a1f136de644955ea3f",
    ),
];

/// Name of the K3s binary artifact (what an override refers to).
pub const K3S_ARTIFACT: &str = "k3s";

/// Download URL of the K3s binary.
pub fn binary_url(version: &str) -> String {
    format!(
        "https://github.com/k3s-io/k3s/releases/download/{}/k3s",
        version.replace('+', "%2B")
    )
}

/// The pinned K3s binary of `version`, verified by its published SHA-256.
/// A version without a pin is an error, never a silent fallback: pin it
/// here or give the cluster an artifact override named `k3s`.
pub fn binary(version: &K3sVersion) -> Result<Artifact, Error> {
    let v = version.as_str();
    let unknown = || Error::UnpinnedVersion(v.to_string());
    let (_, sha) = K3S_BINARIES
        .iter()
        .find(|(p, _)| *p == v)
        .ok_or_else(unknown)?;
    Artifact::file(K3S_ARTIFACT, v, &binary_url(v), &format!("sha256-{sha}")).map_err(|e| {
        Error::Artifact {
            name: K3S_ARTIFACT.into(),
            source: e,
        }
    })
}

/// The K3s binary as `cluster` fetches it: its override when there is one
/// (then any version works), else the pinned binary through the mirror.
pub fn cluster_binary(cluster: &Cluster) -> Result<Artifact, Error> {
    let version = &cluster.k3s().version;
    let has_override = Name::new(K3S_ARTIFACT)
        .map(|n| cluster.artifacts().overrides.contains_key(&n))
        .unwrap_or(false);
    let pinned = match binary(version) {
        Ok(a) => a,
        Err(Error::UnpinnedVersion(_)) if has_override => Artifact::unverified_file(
            K3S_ARTIFACT,
            version.as_str(),
            &binary_url(version.as_str()),
        )
        .map_err(|e| Error::Artifact {
            name: K3S_ARTIFACT.into(),
            source: e,
        })?,
        Err(e) => return Err(e),
    };
    Ok(cluster.artifact(&pinned))
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
    for r in nodes {
        // Each role to the API VIPs its nodes join through (config::join_vip).
        let vips: std::collections::BTreeMap<&str, u16> = cluster
            .with_role(r)
            .filter_map(|vm| config::join_vip(cluster, vm).ok())
            .map(|v| (v.name.as_str(), config::api_port(v)))
            .collect();
        for (name, port) in vips {
            let Ok(vip) = Name::new(name) else { continue };
            out.push(flow(
                role(r),
                Endpoint::Vip(vip),
                Proto::Tcp,
                &[(port, port)],
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

/// The owner every NFS client is squashed to (`all_squash`,
/// `anonuid`/`anongid`): each share directory belongs to it, so whatever
/// user a client writes as — root in a pod, postgres on the database VM —
/// the write lands as this owner and is allowed.
pub const NFS_OWNER: (u32, u32) = (2049, 2049);

/// Where a non-K3s client VM mounts share `name` (K3s nodes use shares as
/// Kubernetes NFS volumes instead).
pub fn share_mount_point(name: &str) -> String {
    format!("/var/mnt/nfs/{name}")
}

/// Mount units on the non-K3s VMs a share names as clients (the database VM
/// mounts its backup share), from the first storage node: an enabled
/// `.automount` and its `.mount`, so the share is mounted on first use and
/// the boot never waits for the storage node.
fn share_mounts(cluster: &Cluster, out: &mut Contributions<'_>) {
    let Some(server) = cluster
        .with_role(Role::Storage)
        .next()
        .and_then(|v| v.primary_address())
    else {
        return;
    };
    for share in &cluster.spec().shares {
        for vm in cluster.vms().iter().filter(|v| {
            !v.roles.iter().any(|r| r.is_k3s_node())
                && share.clients.iter().any(|c| match c {
                    Endpoint::Role(r) => v.has(*r),
                    Endpoint::Vm(n) => v.name == *n,
                    Endpoint::Network(n) => v.address_on(n.as_str()).is_some(),
                    _ => false,
                })
        }) {
            let mount = share_mount_point(share.name.as_str());
            let unit = flatcar_topology::provision::systemd_escape_path(&mount);
            // Mounted on first use through an automount point: the boot
            // never waits for the storage node (a hard NFS mount at boot
            // held remote-fs.target, and with it the VM's up report, until
            // the storage node's NFS answered, and failed the unit if it
            // did not within mount.nfs's two minutes). The share stays a
            // hard mount: a backup writing to it blocks rather than losing
            // writes while the storage node is away.
            out.unit(
                &vm.name,
                Unit {
                    name: format!("{unit}.mount"),
                    contents: Some(format!(
                        "[Unit]\nDescription=NFS share {name} from the storage node\nWants=network-online.target\nAfter=network-online.target\n\n[Mount]\nWhat={server}:/srv/nfs/{name}\nWhere={mount}\nType=nfs\nOptions=rw,hard,noatime,_netdev\n",
                        name = share.name
                    )),
                    ..Unit::default()
                },
            );
            out.unit(
                &vm.name,
                Unit::enabled(
                    &format!("{unit}.automount"),
                    format!(
                        "[Unit]\nDescription=NFS share {name} from the storage node, mounted on first use\n\n[Automount]\nWhere={mount}\n\n[Install]\nWantedBy=remote-fs.target\n",
                        name = share.name
                    ),
                ),
            );
        }
    }
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
            .map(|n| {
                format!(
                    "{n}(rw,sync,no_subtree_check,all_squash,anonuid={},anongid={})",
                    NFS_OWNER.0, NFS_OWNER.1
                )
            })
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
        let err = |e: Error| TopologyError::service("flatcar-k3s", e);
        let nodes: Vec<_> = cluster
            .vms()
            .iter()
            .filter(|v| v.roles.iter().any(|r| r.is_k3s_node()))
            .collect();
        if nodes.is_empty() {
            return Ok(());
        }
        let token = out.secret(&cluster.k3s().token.id(), &|| random_hex(32))?;
        let agent_token = out.secret(&config::agent_token_secret(cluster), &|| random_hex(32))?;
        let binary = out.uses(cluster_binary(cluster).map_err(err)?);
        for vm in nodes {
            let Some(text) = config::render(cluster, vm).map_err(err)? else {
                continue;
            };
            let server = vm.has(Role::Master);
            let first = config::is_first_server(cluster, vm);
            out.artifact(&format!("k3s/{}/config.yaml", vm.name), text.clone(), false);
            out.file(&vm.name, File::text(config::CONFIG_FILE, 0o600, text));
            if server {
                out.file(
                    &vm.name,
                    File::secret(config::TOKEN_FILE, 0o600, token.clone()),
                );
            }
            out.file(
                &vm.name,
                File::secret(config::AGENT_TOKEN_FILE, 0o600, agent_token.clone()),
            );
            // Upstream binary with its published SHA-256: the sysext-bakery's
            // k3s extension has no hash published anywhere we could find.
            if let Some(f) = File::remote("/opt/bin/k3s", 0o755, &binary) {
                out.file(&vm.name, f);
            }
            let name = if server {
                "k3s.service"
            } else {
                "k3s-agent.service"
            };
            let url = config::join_url(cluster, vm).map_err(err)?;
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
                        &format!("{}/fluo.yaml", manifests::MANIFEST_DIR),
                        0o600,
                        manifests::fluo(cluster),
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
                let share_dirs = dirs.clone();
                dirs.push(format!("{data}/longhorn"));
                out.unit(
                    &vm.name,
                    Unit::enabled(
                        "microcloud-storage-dirs.service",
                        format!("[Unit]\nDescription=Share and Longhorn directories on the data disk\nDefaultDependencies=no\nRequiresMountsFor={data}\nBefore=srv-nfs.mount var-mnt-longhorn.mount\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/usr/bin/mkdir -p -m 0770 {}\nExecStart=/usr/bin/chown {}:{} {}\n\n[Install]\nWantedBy=local-fs.target\n", dirs.join(" "), NFS_OWNER.0, NFS_OWNER.1, share_dirs.join(" ")),
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
        share_mounts(cluster, out);
        out.artifact(
            "k3s/manifests/traefik-config.yaml",
            manifests::traefik(cluster).map_err(err)?,
            false,
        );
        out.artifact("k3s/manifests/fluo.yaml", manifests::fluo(cluster), false);
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
