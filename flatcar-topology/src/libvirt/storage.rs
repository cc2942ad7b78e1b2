//! The storage pool and volumes: the Flatcar base image, a qcow2 overlay
//! per VM backed by it, and data disks.

use super::to_xml;
use crate::{Cluster, DataDisk, Error, Vm};
use serde::Serialize;

/// Root overlay volume name of a VM.
pub fn root_volume(vm: &Vm) -> String {
    format!("{}-root.qcow2", vm.name)
}

/// Data disk volume name.
pub fn data_volume(vm: &Vm, disk: &DataDisk) -> String {
    format!("{}-{}.qcow2", vm.name, disk.name)
}

#[derive(Serialize)]
struct Pool {
    #[serde(rename = "@type")]
    kind: &'static str,
    name: String,
    target: Target,
}

#[derive(Serialize)]
struct Target {
    path: String,
}

#[derive(Serialize)]
struct Volume {
    name: String,
    capacity: Capacity,
    /// Sparse: nothing allocated up front.
    allocation: Capacity,
    target: VolTarget,
    #[serde(rename = "backingStore", skip_serializing_if = "Option::is_none")]
    backing_store: Option<Backing>,
}

#[derive(Serialize)]
struct Capacity {
    #[serde(rename = "@unit")]
    unit: &'static str,
    #[serde(rename = "$text")]
    value: u64,
}

#[derive(Serialize)]
struct VolTarget {
    format: Format,
}

#[derive(Serialize)]
struct Format {
    #[serde(rename = "@type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct Backing {
    path: String,
    format: Format,
}

/// The directory pool.
pub fn pool_xml(cluster: &Cluster) -> Result<String, Error> {
    let p = &cluster.host().pool;
    to_xml(
        "pool",
        &Pool {
            kind: "dir",
            name: p.name.to_string(),
            target: Target {
                path: p.path.to_string(),
            },
        },
    )
}

/// Every VM's volumes (name → XML): root overlays backed by the base image
/// (which is uploaded, not created, so it has no XML here) and data disks.
pub fn volume_xmls(cluster: &Cluster) -> Result<Vec<(String, String)>, Error> {
    let pool = &cluster.host().pool;
    let mut out = Vec::new();
    for vm in cluster.vms() {
        let image = vm.image.as_ref().unwrap_or(&cluster.spec().image);
        out.push((
            root_volume(vm),
            to_xml(
                "volume",
                &Volume {
                    name: root_volume(vm),
                    capacity: Capacity {
                        unit: "GiB",
                        value: vm.root_disk.0,
                    },
                    allocation: Capacity {
                        unit: "GiB",
                        value: 0,
                    },
                    target: VolTarget {
                        format: Format { kind: "qcow2" },
                    },
                    backing_store: Some(Backing {
                        path: format!("{}/{}", pool.path, image.volume_name()),
                        format: Format { kind: "qcow2" },
                    }),
                },
            )?,
        ));
        for d in &vm.data_disks {
            out.push((
                data_volume(vm, d),
                to_xml(
                    "volume",
                    &Volume {
                        name: data_volume(vm, d),
                        capacity: Capacity {
                            unit: "GiB",
                            value: d.size.0,
                        },
                        allocation: Capacity {
                            unit: "GiB",
                            value: 0,
                        },
                        target: VolTarget {
                            format: Format { kind: "qcow2" },
                        },
                        backing_store: None,
                    },
                )?,
            ));
        }
    }
    Ok(out)
}
