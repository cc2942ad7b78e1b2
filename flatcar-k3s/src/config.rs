//! `/etc/rancher/k3s/config.yaml` for servers and agents.

use crate::keys;
use crate::Error;
use flatcar_topology::{Cluster, Flannel, Role, Vm};
use serde::Serialize;

/// Where the token file lives on every node (0600, from the secret store).
pub const TOKEN_FILE: &str = "/etc/rancher/k3s/token";
/// Where the config lives.
pub const CONFIG_FILE: &str = "/etc/rancher/k3s/config.yaml";

/// A server's config (keys as K3s spells them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ServerConfig {
    /// Only on the first server: bootstrap embedded etcd.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_init: Option<bool>,
    /// On the others: join through the API VIP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The join token, by file.
    pub token_file: String,
    /// Node name (the VM name).
    pub node_name: String,
    /// The VM's address.
    pub node_ip: String,
    /// What the API server advertises to peers.
    pub advertise_address: String,
    /// Interface flannel uses.
    pub flannel_iface: String,
    /// Extra names on the serving certificate: the API VIP and `api.<domain>`.
    pub tls_san: Vec<String>,
    /// Kubeconfig readable by root only.
    pub write_kubeconfig_mode: String,
    /// Pod network.
    pub cluster_cidr: String,
    /// Service network.
    pub service_cidr: String,
    /// Flannel backend.
    pub flannel_backend: String,
    /// Packaged components not used (servicelb: the load balancers front ingress).
    pub disable: Vec<String>,
    /// etcd snapshot schedule.
    pub etcd_snapshot_schedule_cron: String,
    /// etcd snapshots kept.
    pub etcd_snapshot_retention: u32,
    /// Labels.
    pub node_label: Vec<String>,
    /// Taints.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub node_taint: Vec<String>,
}

/// An agent's config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct AgentConfig {
    /// The API VIP.
    pub server: String,
    /// The join token, by file.
    pub token_file: String,
    /// Node name.
    pub node_name: String,
    /// The VM's address.
    pub node_ip: String,
    /// Interface flannel uses.
    pub flannel_iface: String,
    /// Labels.
    pub node_label: Vec<String>,
    /// Taints.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub node_taint: Vec<String>,
}

/// `https://<API VIP>:<port>`.
pub fn api_url(cluster: &Cluster) -> Result<String, Error> {
    let vip = cluster.api_vip().ok_or(Error::NoApiVip)?;
    let port = vip
        .ports
        .iter()
        .find(|p| p.role == Role::Master)
        .map(|p| p.port.get())
        .unwrap_or(6443);
    Ok(format!("https://{}:{port}", vip.address))
}

/// The first server (first master in model order) bootstraps etcd.
pub fn is_first_server(cluster: &Cluster, vm: &Vm) -> bool {
    cluster
        .with_role(Role::Master)
        .next()
        .is_some_and(|m| m.name == vm.name)
}

fn address(vm: &Vm) -> Result<String, Error> {
    vm.primary_address()
        .map(|a| a.to_string())
        .ok_or_else(|| Error::NoAddress(vm.name.to_string()))
}

fn labels(vm: &Vm) -> Vec<String> {
    let mut l: Vec<String> = vm
        .roles
        .iter()
        .map(|r| format!("microcloud.dev/role-{}=true", r.as_str()))
        .collect();
    if vm.has(Role::Worker) || vm.has(Role::Storage) {
        l.push("node.longhorn.io/create-default-disk=true".into());
    }
    if vm.has(Role::Worker) {
        l.push("microcloud.dev/ingress=true".into());
    }
    l
}

/// Config of master `vm`.
pub fn server(cluster: &Cluster, vm: &Vm) -> Result<ServerConfig, Error> {
    let k = cluster.k3s();
    let first = is_first_server(cluster, vm);
    let vip = cluster.api_vip().ok_or(Error::NoApiVip)?;
    let ip = address(vm)?;
    Ok(ServerConfig {
        cluster_init: first.then_some(true),
        server: if first { None } else { Some(api_url(cluster)?) },
        token_file: TOKEN_FILE.into(),
        node_name: vm.name.to_string(),
        node_ip: ip.clone(),
        advertise_address: ip,
        flannel_iface: "eth0".into(),
        tls_san: {
            let mut sans = vec![
                vip.address.to_string(),
                cluster.fqdn(&vip.name).to_string(),
                format!("api.{}", cluster.domain()),
            ];
            sans.dedup();
            sans
        },
        write_kubeconfig_mode: "0600".into(),
        cluster_cidr: k.cluster_cidr.to_string(),
        service_cidr: k.service_cidr.to_string(),
        flannel_backend: match k.flannel {
            Flannel::Vxlan => "vxlan".into(),
            Flannel::WireguardNative => "wireguard-native".into(),
        },
        disable: vec!["servicelb".into()],
        etcd_snapshot_schedule_cron: k.etcd_snapshots.schedule.as_str().into(),
        etcd_snapshot_retention: k.etcd_snapshots.retention,
        node_label: labels(vm),
        node_taint: if k.masters_schedulable {
            Vec::new()
        } else {
            vec!["node-role.kubernetes.io/control-plane=true:NoSchedule".into()]
        },
    })
}

/// Config of agent `vm` (worker or storage node).
pub fn agent(cluster: &Cluster, vm: &Vm) -> Result<AgentConfig, Error> {
    Ok(AgentConfig {
        server: api_url(cluster)?,
        token_file: TOKEN_FILE.into(),
        node_name: vm.name.to_string(),
        node_ip: address(vm)?,
        flannel_iface: "eth0".into(),
        node_label: labels(vm),
        node_taint: if vm.has(Role::Storage) && !vm.has(Role::Worker) {
            vec!["microcloud.dev/storage=true:NoSchedule".into()]
        } else {
            Vec::new()
        },
    })
}

fn to_yaml<T: Serialize>(what: &str, v: &T) -> Result<String, Error> {
    let body = serde_saphyr::to_string(v).map_err(|source| Error::Yaml {
        what: what.into(),
        source,
    })?;
    Ok(format!(
        "# Generated by flatcar-microcloud for {what}; do not edit.\n{body}"
    ))
}

/// Checks a config against the keys K3s accepts: the top-level keys `config`
/// serializes to (the same keys its YAML has). The key set is fixed by
/// [`ServerConfig`]/[`AgentConfig`], so tests check it once per type instead
/// of every render paying for it.
pub fn check_keys<T: Serialize>(cluster: &Cluster, config: &T, server: bool) -> Result<(), Error> {
    let value = serde_json::to_value(config).map_err(|source| Error::Keys {
        config: "config.yaml".into(),
        source,
    })?;
    let unknown = match value.as_object() {
        Some(map) => keys::unknown_keys(map.keys().map(String::as_str), server),
        None => vec!["<not a mapping>".into()],
    };
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(Error::UnknownKeys {
            config: "config.yaml".into(),
            version: cluster.k3s().version.to_string(),
            keys: unknown,
        })
    }
}

/// The config file text for a K3s node, checked against the accepted keys.
pub fn render(cluster: &Cluster, vm: &Vm) -> Result<Option<String>, Error> {
    if vm.has(Role::Master) {
        to_yaml(vm.name.as_str(), &server(cluster, vm)?).map(Some)
    } else if vm.has(Role::Worker) || vm.has(Role::Storage) {
        to_yaml(vm.name.as_str(), &agent(cluster, vm)?).map(Some)
    } else {
        Ok(None)
    }
}
