//! Terraform export for the dmacvicar/libvirt provider (`.tf.json`): the
//! same pool, volumes, networks, Ignition and domains the built-in apply
//! manages — an alternative for teams that already run Terraform.

use crate::Error;
use flatcar_topology::{Cluster, NetworkKind};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize)]
struct Doc {
    #[serde(rename = "//")]
    comment: &'static str,
    terraform: Terraform,
    provider: Provider,
    resource: Resources,
}

#[derive(Serialize)]
struct Terraform {
    required_providers: RequiredProviders,
}

#[derive(Serialize)]
struct RequiredProviders {
    libvirt: ProviderSource,
}

#[derive(Serialize)]
struct ProviderSource {
    source: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct Provider {
    libvirt: ProviderConfig,
}

#[derive(Serialize)]
struct ProviderConfig {
    uri: &'static str,
}

#[derive(Serialize)]
struct Resources {
    libvirt_pool: BTreeMap<String, Pool>,
    libvirt_volume: BTreeMap<String, Volume>,
    libvirt_network: BTreeMap<String, Network>,
    libvirt_ignition: BTreeMap<String, Ignition>,
    libvirt_domain: BTreeMap<String, Domain>,
}

#[derive(Serialize)]
struct Pool {
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    path: String,
}

#[derive(Serialize)]
struct Volume {
    name: String,
    pool: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    base_volume_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    format: &'static str,
}

#[derive(Serialize)]
struct Network {
    name: String,
    mode: &'static str,
    bridge: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    addresses: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dhcp: Option<Dhcp>,
    autostart: bool,
}

#[derive(Serialize)]
struct Dhcp {
    enabled: bool,
}

#[derive(Serialize)]
struct Ignition {
    name: String,
    pool: String,
    content: String,
}

#[derive(Serialize)]
struct Domain {
    name: String,
    vcpu: u16,
    memory: u64,
    machine: &'static str,
    cpu: Cpu,
    fw_cfg_name: &'static str,
    coreos_ignition: String,
    disk: Vec<Disk>,
    network_interface: Vec<Nic>,
    console: Vec<Console>,
}

#[derive(Serialize)]
struct Cpu {
    mode: &'static str,
}

#[derive(Serialize)]
struct Disk {
    volume_id: String,
}

#[derive(Serialize)]
struct Nic {
    network_id: String,
    mac: String,
    addresses: Vec<String>,
}

#[derive(Serialize)]
struct Console {
    #[serde(rename = "type")]
    kind: &'static str,
    target_type: &'static str,
    target_port: &'static str,
}

fn tf_id(s: &str) -> String {
    s.replace(['.', '-'], "_")
}

/// Renders `terraform/main.tf.json` (paths relative to the `terraform/` directory).
pub fn render(cluster: &Cluster) -> Result<String, Error> {
    let pool = &cluster.host().pool;
    let pool_ref = format!("${{libvirt_pool.{}.name}}", tf_id(pool.name.as_str()));
    let mut r = Resources {
        libvirt_pool: BTreeMap::new(),
        libvirt_volume: BTreeMap::new(),
        libvirt_network: BTreeMap::new(),
        libvirt_ignition: BTreeMap::new(),
        libvirt_domain: BTreeMap::new(),
    };
    r.libvirt_pool.insert(
        tf_id(pool.name.as_str()),
        Pool {
            name: pool.name.to_string(),
            kind: "dir",
            path: pool.path.to_string(),
        },
    );
    for vm in cluster.vms() {
        let image = vm.image.as_ref().unwrap_or(&cluster.spec().image);
        let base = tf_id(&image.volume_name());
        if !r.libvirt_volume.contains_key(&base) {
            r.libvirt_volume.insert(
                base.clone(),
                Volume {
                    name: image.volume_name(),
                    pool: pool_ref.clone(),
                    source: Some(image.url()),
                    base_volume_id: None,
                    size: None,
                    format: "qcow2",
                },
            );
        }
        let id = tf_id(vm.name.as_str());
        let root = format!("{id}_root");
        r.libvirt_volume.insert(
            root.clone(),
            Volume {
                name: format!("{}-root.qcow2", vm.name),
                pool: pool_ref.clone(),
                source: None,
                base_volume_id: Some(format!("${{libvirt_volume.{base}.id}}")),
                size: Some(vm.root_disk.bytes()),
                format: "qcow2",
            },
        );
        let mut disk = vec![Disk {
            volume_id: format!("${{libvirt_volume.{root}.id}}"),
        }];
        for d in &vm.data_disks {
            let did = format!("{id}_{}", tf_id(d.name.as_str()));
            disk.push(Disk {
                volume_id: format!("${{libvirt_volume.{did}.id}}"),
            });
            r.libvirt_volume.insert(
                did,
                Volume {
                    name: format!("{}-{}.qcow2", vm.name, d.name),
                    pool: pool_ref.clone(),
                    source: None,
                    base_volume_id: None,
                    size: Some(d.size.bytes()),
                    format: "qcow2",
                },
            );
        }
        r.libvirt_ignition.insert(
            id.clone(),
            Ignition {
                name: format!("{}.ign", vm.name),
                pool: pool_ref.clone(),
                content: format!(
                    "${{file(\"${{path.module}}/../vms/{}/ignition.json\")}}",
                    vm.name
                ),
            },
        );
        let network_interface = cluster
            .nics(vm)
            .iter()
            .map(|n| Nic {
                network_id: format!("${{libvirt_network.{}.id}}", tf_id(n.network.name.as_str())),
                mac: n.mac.to_string(),
                addresses: vec![n.address.to_string()],
            })
            .collect();
        r.libvirt_domain.insert(
            id.clone(),
            Domain {
                name: vm.name.to_string(),
                vcpu: vm.vcpus,
                memory: vm.memory.0,
                machine: "q35",
                cpu: Cpu { mode: "host-model" },
                fw_cfg_name: "opt/org.flatcar-linux/config",
                coreos_ignition: format!("${{libvirt_ignition.{id}.id}}"),
                disk,
                network_interface,
                console: vec![Console {
                    kind: "pty",
                    target_type: "serial",
                    target_port: "0",
                }],
            },
        );
    }
    for net in cluster.networks() {
        let n = match net.kind {
            NetworkKind::Lan => Network {
                name: net.name.to_string(),
                mode: "bridge",
                bridge: net.bridge.to_string(),
                addresses: Vec::new(),
                domain: None,
                dhcp: None,
                autostart: true,
            },
            NetworkKind::Nat => Network {
                name: net.name.to_string(),
                mode: "open",
                bridge: net.bridge.to_string(),
                addresses: vec![net.cidr.to_string()],
                domain: Some(cluster.domain().to_string()),
                dhcp: Some(Dhcp {
                    enabled: net.dhcp.is_some(),
                }),
                autostart: true,
            },
        };
        r.libvirt_network.insert(tf_id(net.name.as_str()), n);
    }
    let doc = Doc {
        comment: "Generated by flatcar-microcloud from the cluster model; an alternative to the built-in libvirt apply.",
        terraform: Terraform {
            required_providers: RequiredProviders {
                libvirt: ProviderSource {
                    source: "dmacvicar/libvirt",
                    version: "~> 0.8",
                },
            },
        },
        provider: Provider {
            libvirt: ProviderConfig { uri: "qemu:///system" },
        },
        resource: r,
    };
    let mut s = serde_json::to_string_pretty(&doc).map_err(Error::Terraform)?;
    s.push('\n');
    Ok(s)
}
