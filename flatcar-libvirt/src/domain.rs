//! libvirt domain XML: q35, host-model CPU, virtio disks from the pool,
//! NICs with the model's MACs, serial console, Ignition through fw_cfg.

use crate::metadata::{render, Document, Metadata};
use crate::{ignition_path, volume, Error};
use flatcar_topology::{Accelerator, Cluster, Vm};
use serde::Serialize;

/// The fw_cfg key Flatcar's QEMU image reads its Ignition config from.
pub const FW_CFG_KEY: &str = "opt/org.flatcar-linux/config";

/// Where libvirt (virtlogd) logs a domain's serial console: the VM's
/// report that it is up ([`flatcar_topology::provision::ready`]) is read
/// from there. Rewritten on every start (`append='off'`).
pub fn console_log_path(vm: &Vm) -> String {
    format!("/var/log/libvirt/qemu/{}-serial.log", vm.name)
}

#[derive(Serialize)]
struct DomainXml {
    #[serde(rename = "@type")]
    kind: &'static str,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    uuid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata>,
    memory: Memory,
    vcpu: u16,
    sysinfo: Sysinfo,
    os: Os,
    features: Features,
    /// `host-model` under KVM; absent under TCG (QEMU's default model).
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu: Option<Cpu>,
    on_poweroff: &'static str,
    on_reboot: &'static str,
    on_crash: &'static str,
    devices: Devices,
}

#[derive(Serialize)]
struct Memory {
    #[serde(rename = "@unit")]
    unit: &'static str,
    #[serde(rename = "$text")]
    value: u64,
}

#[derive(Serialize)]
struct Sysinfo {
    #[serde(rename = "@type")]
    kind: &'static str,
    entry: Vec<Entry>,
}

#[derive(Serialize)]
struct Entry {
    #[serde(rename = "@name")]
    name: &'static str,
    #[serde(rename = "@file")]
    file: String,
}

#[derive(Serialize)]
struct Os {
    #[serde(rename = "type")]
    kind: OsType,
    boot: Boot,
}

#[derive(Serialize)]
struct OsType {
    #[serde(rename = "@arch")]
    arch: &'static str,
    #[serde(rename = "@machine")]
    machine: &'static str,
    #[serde(rename = "$text")]
    value: &'static str,
}

#[derive(Serialize)]
struct Boot {
    #[serde(rename = "@dev")]
    dev: &'static str,
}

#[derive(Serialize)]
struct Features {
    acpi: (),
    apic: (),
}

#[derive(Serialize)]
struct Cpu {
    #[serde(rename = "@mode")]
    mode: &'static str,
}

#[derive(Serialize)]
struct Devices {
    disk: Vec<Disk>,
    interface: Vec<Interface>,
    serial: Serial,
    console: Console,
    rng: Rng,
}

#[derive(Serialize)]
struct Disk {
    #[serde(rename = "@type")]
    kind: &'static str,
    #[serde(rename = "@device")]
    device: &'static str,
    driver: Driver,
    source: DiskSource,
    target: DiskTarget,
    #[serde(skip_serializing_if = "Option::is_none")]
    serial: Option<String>,
}

#[derive(Serialize)]
struct Driver {
    #[serde(rename = "@name")]
    name: &'static str,
    #[serde(rename = "@type")]
    kind: &'static str,
    #[serde(rename = "@discard")]
    discard: &'static str,
}

#[derive(Serialize)]
struct DiskSource {
    #[serde(rename = "@pool")]
    pool: String,
    #[serde(rename = "@volume")]
    volume: String,
}

#[derive(Serialize)]
struct DiskTarget {
    #[serde(rename = "@dev")]
    dev: String,
    #[serde(rename = "@bus")]
    bus: &'static str,
}

#[derive(Serialize)]
struct Interface {
    #[serde(rename = "@type")]
    kind: &'static str,
    mac: Mac,
    source: NetSource,
    model: Model,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<Mtu>,
}

/// `<mtu size='…'/>`: the overlay MTU on a network that spans hosts.
#[derive(Serialize)]
struct Mtu {
    #[serde(rename = "@size")]
    size: u16,
}

#[derive(Serialize)]
struct Mac {
    #[serde(rename = "@address")]
    address: String,
}

#[derive(Serialize)]
struct NetSource {
    #[serde(rename = "@network")]
    network: String,
}

#[derive(Serialize)]
struct Model {
    #[serde(rename = "@type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct Serial {
    #[serde(rename = "@type")]
    kind: &'static str,
    log: SerialLog,
    target: SerialTarget,
}

#[derive(Serialize)]
struct SerialLog {
    #[serde(rename = "@file")]
    file: String,
    #[serde(rename = "@append")]
    append: &'static str,
}

#[derive(Serialize)]
struct SerialTarget {
    #[serde(rename = "@port")]
    port: u8,
}

#[derive(Serialize)]
struct Console {
    #[serde(rename = "@type")]
    kind: &'static str,
    target: ConsoleTarget,
}

#[derive(Serialize)]
struct ConsoleTarget {
    #[serde(rename = "@type")]
    kind: &'static str,
    #[serde(rename = "@port")]
    port: u8,
}

#[derive(Serialize)]
struct Rng {
    #[serde(rename = "@model")]
    model: &'static str,
    backend: RngBackend,
}

#[derive(Serialize)]
struct RngBackend {
    #[serde(rename = "@model")]
    model: &'static str,
    #[serde(rename = "$text")]
    path: &'static str,
}

/// A virtio qcow2 disk backed by `volume` in `pool`.
fn volume_disk(pool: &str, volume: String, dev: String, serial: Option<String>) -> Disk {
    Disk {
        kind: "volume",
        device: "disk",
        driver: Driver {
            name: "qemu",
            kind: "qcow2",
            discard: "unmap",
        },
        source: DiskSource {
            pool: pool.to_string(),
            volume,
        },
        target: DiskTarget { dev, bus: "virtio" },
        serial,
    }
}

fn build(cluster: &Cluster, vm: &Vm) -> DomainXml {
    let pool = cluster.host().pool.name.to_string();
    let mut disks = vec![volume_disk(
        &pool,
        volume::root_volume(vm),
        "vda".into(),
        None,
    )];
    for (i, d) in vm.data_disks.iter().enumerate() {
        // Ignition finds it at /dev/disk/by-id/virtio-<name>.
        disks.push(volume_disk(
            &pool,
            volume::data_volume(vm, d),
            disk_dev(i + 1),
            Some(d.name.to_string()),
        ));
    }
    let interface = cluster
        .nics(vm)
        .into_iter()
        .map(|n| Interface {
            kind: "network",
            mac: Mac {
                address: n.mac.to_string(),
            },
            source: NetSource {
                network: n.network.name.to_string(),
            },
            model: Model { kind: "virtio" },
            mtu: cluster.nic_mtu(n.network).map(|size| Mtu { size }),
        })
        .collect();
    DomainXml {
        kind: cluster.host_of(vm).accelerator.domain_type(),
        name: vm.name.to_string(),
        uuid: None,
        metadata: None,
        memory: Memory {
            unit: "MiB",
            value: vm.memory.0,
        },
        vcpu: vm.vcpus,
        sysinfo: Sysinfo {
            kind: "fwcfg",
            entry: vec![Entry {
                name: FW_CFG_KEY,
                file: ignition_path(cluster, vm),
            }],
        },
        os: Os {
            kind: OsType {
                arch: "x86_64",
                machine: "q35",
                value: "hvm",
            },
            boot: Boot { dev: "hd" },
        },
        features: Features { acpi: (), apic: () },
        // Under TCG there is no host CPU to model: libvirt's host-model
        // becomes an EPYC-based model with features TCG emulates poorly
        // (la57, …), and the boot lab's guests stalled in modprobe right
        // after the switch root (soft lockups for minutes). QEMU's default
        // model (qemu64) boots them.
        cpu: match cluster.host_of(vm).accelerator {
            Accelerator::Kvm => Some(Cpu { mode: "host-model" }),
            Accelerator::Qemu => None,
        },
        on_poweroff: "destroy",
        on_reboot: "restart",
        on_crash: "restart",
        devices: Devices {
            disk: disks,
            interface,
            serial: Serial {
                kind: "pty",
                log: SerialLog {
                    file: console_log_path(vm),
                    append: "off",
                },
                target: SerialTarget { port: 0 },
            },
            console: Console {
                kind: "pty",
                target: ConsoleTarget {
                    kind: "serial",
                    port: 0,
                },
            },
            rng: Rng {
                model: "virtio",
                backend: RngBackend {
                    model: "random",
                    path: "/dev/urandom",
                },
            },
        },
    }
}

/// Linux-style virtio disk name of the `i`-th disk: `vda` … `vdz`, `vdaa` …
/// (the root disk is 0, data disk `k` is `k + 1`; the Terraform export
/// addresses data disks by the same names).
pub fn disk_dev(i: usize) -> String {
    let mut n = i + 1;
    let mut letters = Vec::new();
    while n > 0 {
        n -= 1;
        letters.push(char::from(b'a' + (n % 26) as u8));
        n /= 26;
    }
    letters.iter().rev().fold(String::from("vd"), |mut s, c| {
        s.push(*c);
        s
    })
}

impl Document for DomainXml {
    const ROOT: &'static str = "domain";
    fn identity(&mut self) -> (&mut Option<String>, &mut Option<Metadata>) {
        (&mut self.uuid, &mut self.metadata)
    }
}

/// The domain's XML with ownership metadata.
pub fn xml(cluster: &Cluster, vm: &Vm) -> Result<String, Error> {
    render(cluster, build(cluster, vm), None)
}

/// The domain's XML carrying the `uuid` of the live domain it redefines.
pub fn xml_with_uuid(cluster: &Cluster, vm: &Vm, uuid: &str) -> Result<String, Error> {
    render(cluster, build(cluster, vm), Some(uuid))
}

#[cfg(test)]
mod tests {
    #[test]
    fn disk_names() {
        let names: Vec<String> = [0, 1, 25, 26, 27, 701, 702].map(super::disk_dev).to_vec();
        assert_eq!(
            names,
            ["vda", "vdb", "vdz", "vdaa", "vdab", "vdzz", "vdaaa"]
        );
    }
}
