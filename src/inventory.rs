//! Ansible inventory (YAML): groups by role, host vars with addresses and VIPs.

use crate::Error;
use flatcar_topology::{Cluster, NetworkKind, Role};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize)]
struct Inventory {
    all: Group,
}

#[derive(Serialize, Default)]
struct Group {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    vars: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    hosts: BTreeMap<String, Option<HostVars>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    children: BTreeMap<String, Group>,
}

#[derive(Serialize)]
struct HostVars {
    ansible_host: String,
    ansible_user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ansible_ssh_common_args: Option<String>,
    fqdn: String,
    microcloud_roles: Vec<String>,
    addresses: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    vips: Vec<String>,
}

/// Ansible group name of a role (`load-balancer` → `load_balancer`).
pub fn group_name(role: Role) -> String {
    role.as_str().replace('-', "_")
}

/// Renders the inventory. VMs only on NAT networks are reached through the
/// KVM host (`ProxyJump`).
pub fn render(cluster: &Cluster) -> Result<String, Error> {
    let user = cluster.spec().admin.user.to_string();
    let host = cluster.host();
    let mut hosts: BTreeMap<String, HostVars> = BTreeMap::new();
    for vm in cluster.vms() {
        let on_lan = vm.nics.iter().find(|n| {
            cluster
                .network(n.network.as_str())
                .is_some_and(|net| net.kind == NetworkKind::Lan)
        });
        let target = on_lan.or(vm.nics.first());
        let Some(target) = target else { continue };
        hosts.insert(
            vm.name.to_string(),
            HostVars {
                ansible_host: target.address.to_string(),
                ansible_user: user.clone(),
                ansible_ssh_common_args: on_lan
                    .is_none()
                    .then(|| format!("-o ProxyJump={user}@{}", host.address)),
                fqdn: cluster.fqdn(&vm.name).to_string(),
                microcloud_roles: vm.roles.iter().map(|r| r.to_string()).collect(),
                addresses: vm
                    .nics
                    .iter()
                    .map(|n| (n.network.to_string(), n.address.to_string()))
                    .collect(),
                vips: cluster
                    .vips_held_by(vm)
                    .map(|(v, _)| v.name.to_string())
                    .collect(),
            },
        );
    }
    let mut children = BTreeMap::new();
    for role in Role::ALL {
        let members: BTreeMap<String, Option<HostVars>> = cluster
            .with_role(role)
            .filter(|vm| hosts.contains_key(vm.name.as_str()))
            .map(|vm| (vm.name.to_string(), None))
            .collect();
        if !members.is_empty() {
            children.insert(
                group_name(role),
                Group {
                    hosts: members,
                    ..Group::default()
                },
            );
        }
    }
    let mut vars = BTreeMap::new();
    vars.insert("cluster".into(), cluster.name().to_string());
    vars.insert("domain".into(), cluster.domain().to_string());
    vars.insert("kvm_host".into(), host.address.to_string());
    for vip in cluster.vips() {
        vars.insert(
            format!("vip_{}", vip.name.as_str().replace('-', "_")),
            vip.address.to_string(),
        );
    }
    // Roles are groups; a VM's host vars live once under `all.hosts`
    // (Ansible merges them), and groups list it again by name.
    let inv = Inventory {
        all: Group {
            vars,
            hosts: hosts.into_iter().map(|(k, v)| (k, Some(v))).collect(),
            children,
        },
    };
    serde_saphyr::to_string(&inv).map_err(Error::Inventory)
}
