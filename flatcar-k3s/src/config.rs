//! `/etc/rancher/k3s/config.yaml` for servers and agents.

use crate::keys;
use crate::Error;
use flatcar_topology::{Cluster, Flannel, Role, Vip, Vm};
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
    /// On the others: join through the API VIP on their own network.
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
    /// Extra names on the serving certificate: every API VIP (address and
    /// name) and `api.<domain>`.
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
    /// The API VIP on the agent's own network.
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

/// The port of `vip` that masters serve (the API port).
pub fn api_port(vip: &Vip) -> u16 {
    vip.ports
        .iter()
        .find(|p| p.role == Role::Master)
        .map(|p| p.port.get())
        .unwrap_or(6443)
}

/// `https://<API VIP>:<port>` of the cluster's (first) API VIP.
pub fn api_url(cluster: &Cluster) -> Result<String, Error> {
    let vip = cluster.api_vip().ok_or(Error::NoApiVip)?;
    Ok(format!("https://{}:{}", vip.address, api_port(vip)))
}

/// Every VIP with a port served by masters, in model order.
pub fn api_vips(cluster: &Cluster) -> impl Iterator<Item = &Vip> {
    cluster
        .vips()
        .iter()
        .filter(|v| v.ports.iter().any(|p| p.role == Role::Master))
}

/// The API VIP node `vm` joins through: one on a network `vm` itself is on
/// (its primary network first), so the request and the answer stay on that
/// network (the load balancers hold it on their NIC there; the host routes
/// nothing and sees no half connection); otherwise the cluster's API VIP.
pub fn join_vip<'a>(cluster: &'a Cluster, vm: &Vm) -> Result<&'a Vip, Error> {
    vm.nics
        .iter()
        .find_map(|nic| api_vips(cluster).find(|v| v.network == nic.network))
        .or_else(|| cluster.api_vip())
        .ok_or(Error::NoApiVip)
}

/// `https://<join VIP>:<port>`: what node `vm` joins (see [`join_vip`]).
pub fn join_url(cluster: &Cluster, vm: &Vm) -> Result<String, Error> {
    let vip = join_vip(cluster, vm)?;
    Ok(format!("https://{}:{}", vip.address, api_port(vip)))
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
    if cluster.api_vip().is_none() {
        return Err(Error::NoApiVip);
    }
    let ip = address(vm)?;
    Ok(ServerConfig {
        cluster_init: first.then_some(true),
        server: if first {
            None
        } else {
            Some(join_url(cluster, vm)?)
        },
        token_file: TOKEN_FILE.into(),
        node_name: vm.name.to_string(),
        node_ip: ip.clone(),
        advertise_address: ip,
        flannel_iface: "eth0".into(),
        tls_san: {
            // Every API VIP (the LAN one and one on the nodes' own network)
            // by address and name, and `api.<domain>`.
            let mut sans: Vec<String> = Vec::new();
            for vip in api_vips(cluster) {
                sans.push(vip.address.to_string());
                sans.push(cluster.fqdn(&vip.name).to_string());
            }
            sans.push(format!("api.{}", cluster.domain()));
            let mut seen = std::collections::BTreeSet::new();
            sans.retain(|s| seen.insert(s.clone()));
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
        server: join_url(cluster, vm)?,
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

/// Renders `value` as the K3s config file of node `what`, checked first
/// against the keys K3s accepts for a server (`server`) or an agent: an
/// unknown key is [`Error::UnknownKeys`], naming it and the node. Every
/// config this crate renders goes through here.
pub fn to_checked_yaml<T: Serialize>(
    cluster: &Cluster,
    what: &str,
    value: &T,
    server: bool,
) -> Result<String, Error> {
    check(cluster, &format!("{what} config.yaml"), value, server)?;
    let body = serde_saphyr::to_string(value).map_err(|source| Error::Yaml {
        what: what.into(),
        source,
    })?;
    Ok(format!(
        "# Generated by flatcar-microcloud for {what}; do not edit.\n{body}"
    ))
}

/// Checks a config against the keys K3s accepts: the top-level keys `config`
/// serializes to (the same keys its YAML has). [`render`] calls it for every
/// config ([`to_checked_yaml`]).
pub fn check_keys<T: Serialize>(cluster: &Cluster, config: &T, server: bool) -> Result<(), Error> {
    check(cluster, "config.yaml", config, server)
}

/// [`check_keys`] for the config called `label` in errors.
fn check<T: Serialize>(
    cluster: &Cluster,
    label: &str,
    config: &T,
    server: bool,
) -> Result<(), Error> {
    let value = serde_json::to_value(config).map_err(|source| Error::Keys {
        config: label.into(),
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
            config: label.into(),
            version: cluster.k3s().version.to_string(),
            keys: unknown,
        })
    }
}

/// The config file text for a K3s node, checked against the accepted keys.
pub fn render(cluster: &Cluster, vm: &Vm) -> Result<Option<String>, Error> {
    let what = vm.name.as_str();
    if vm.has(Role::Master) {
        to_checked_yaml(cluster, what, &server(cluster, vm)?, true).map(Some)
    } else if vm.has(Role::Worker) || vm.has(Role::Storage) {
        to_checked_yaml(cluster, what, &agent(cluster, vm)?, false).map(Some)
    } else {
        Ok(None)
    }
}
