//! Storage volumes: a qcow2 overlay per VM (`<vm>-root.qcow2`) backed by
//! the Flatcar base image (the VM's own image or the cluster's), qcow2 data
//! disks (`<vm>-<disk>.qcow2`), and the placeholder for a missing base image.

use crate::{to_xml, Error};
use flatcar_topology::{Cluster, DataDisk, OsImage, Vm};
use serde::Serialize;

/// Root overlay volume name of a VM.
pub fn root_volume(vm: &Vm) -> String {
    format!("{}-root.qcow2", vm.name)
}

/// Data disk volume name.
pub fn data_volume(vm: &Vm, disk: &DataDisk) -> String {
    format!("{}-{}.qcow2", vm.name, disk.name)
}

/// The image a VM boots: its own, or the cluster's.
pub fn image_of<'a>(cluster: &'a Cluster, vm: &'a Vm) -> &'a OsImage {
    vm.image.as_ref().unwrap_or(&cluster.spec().image)
}

/// Every base image volume the cluster's VMs need, sorted, without repeats.
pub fn base_images(cluster: &Cluster) -> Vec<String> {
    let mut v: Vec<String> = cluster
        .vms()
        .iter()
        .map(|vm| image_of(cluster, vm).volume_name())
        .chain(std::iter::once(cluster.spec().image.volume_name()))
        .collect();
    v.sort();
    v.dedup();
    v
}

#[derive(Serialize)]
struct Volume {
    name: String,
    capacity: Amount,
    /// Sparse: nothing allocated up front.
    allocation: Amount,
    target: Target,
    #[serde(rename = "backingStore", skip_serializing_if = "Option::is_none")]
    backing_store: Option<Backing>,
}

#[derive(Serialize)]
struct Amount {
    #[serde(rename = "@unit")]
    unit: &'static str,
    #[serde(rename = "$text")]
    value: u64,
}

#[derive(Serialize)]
struct Target {
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

fn qcow2(name: String, gib: u64, backing: Option<String>) -> Volume {
    Volume {
        name,
        capacity: Amount {
            unit: "GiB",
            value: gib,
        },
        allocation: Amount {
            unit: "GiB",
            value: 0,
        },
        target: Target {
            format: Format { kind: "qcow2" },
        },
        backing_store: backing.map(|path| Backing {
            path,
            format: Format { kind: "qcow2" },
        }),
    }
}

/// Capacity of the placeholder created for a missing base image (Flatcar's
/// qcow2 image is 8.5 GiB virtual).
pub const PLACEHOLDER_GIB: u64 = 9;

/// XML of an empty qcow2 placeholder for a base image that is not in the
/// pool yet, so the overlays can be created; upload the real image over it
/// (`virsh vol-upload`) before starting VMs.
pub fn base_xml(image_volume: &str) -> Result<String, Error> {
    to_xml(
        "volume",
        &qcow2(image_volume.to_string(), PLACEHOLDER_GIB, None),
    )
}

/// A VM's volumes (name → XML): the root overlay, then data disks.
pub fn vm_xmls(cluster: &Cluster, vm: &Vm) -> Result<Vec<(String, String)>, Error> {
    let pool = &cluster.host().pool;
    let backing = format!("{}/{}", pool.path, image_of(cluster, vm).volume_name());
    let mut out = vec![(
        root_volume(vm),
        to_xml(
            "volume",
            &qcow2(root_volume(vm), vm.root_disk.0, Some(backing)),
        )?,
    )];
    for d in &vm.data_disks {
        out.push((
            data_volume(vm, d),
            to_xml("volume", &qcow2(data_volume(vm, d), d.size.0, None))?,
        ));
    }
    Ok(out)
}

/// Every VM's volumes (name → XML), VM by VM.
pub fn xmls(cluster: &Cluster) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    for vm in cluster.vms() {
        out.extend(vm_xmls(cluster, vm)?);
    }
    Ok(out)
}
