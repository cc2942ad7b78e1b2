//! Each VM's Ignition config at the path its domain's `fw_cfg` entry names
//! ([`crate::ignition_path`]), placed through libvirt itself (feature `live`).
//!
//! The file is a raw volume `<vm>.ign` in the cluster's directory pool
//! (mode 0600 in the volume's `<permissions>`), its content streamed with
//! `virStorageVolUpload`. Going through libvirt rather than writing the
//! file directly means the same code places it on a remote host
//! (`qemu+ssh://…`) as on this one, the pool's ownership and SELinux/DAC
//! labelling stay libvirt's, and libvirt's DAC driver hands the 0600 file
//! to QEMU only while the domain runs. The volume belongs to the cluster as
//! its domain does: [`crate::apply::plan`] deletes it with a domain that
//! left the model, [`crate::apply::destroy`] with every owned domain.
//!
//! [`plan`] is read-only: it downloads each existing `<vm>.ign`
//! (`virStorageVolDownload`, a few KiB) and compares bytes, so a second
//! apply of the same configs uploads nothing.

use crate::apply::{Action, Connect, Kind, Step};
use crate::hosts::ignition_volume;
use crate::Error;
use flatcar_topology::Cluster;
use std::collections::BTreeMap;

fn lv(object: &str) -> impl Fn(virt::error::Error) -> Error + '_ {
    move |source| Error::Libvirt {
        object: object.to_string(),
        source,
    }
}

/// The bytes of volume `name` in `pool`, or `None` when it does not exist.
fn download(
    conn: &Connect,
    pool: &virt::storage_pool::StoragePool,
    name: &str,
) -> Result<Option<Vec<u8>>, Error> {
    use virt::stream::Stream;
    let object = format!("volume {name}");
    let Ok(vol) = pool.lookup_storage_vol_by_name(name) else {
        return Ok(None);
    };
    let stream = Stream::new(conn, 0).map_err(lv(&object))?;
    vol.download(&stream, 0, 0, 0).map_err(lv(&object))?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stream.recv(&mut buf).map_err(lv(&object))?;
        let n = usize::try_from(n).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n.min(buf.len())]);
    }
    stream.finish().map_err(lv(&object))?;
    Ok(Some(out))
}

/// One step per VM of `configs` (VM name → Ignition bytes): `create` when
/// `<vm>.ign` is missing (or the pool does not exist or run yet), `update`
/// when its bytes differ, `unchanged` when they are equal. The step's `xml`
/// is unused; its note says the mode and size. Read-only.
pub fn plan(
    conn: &Connect,
    cluster: &Cluster,
    configs: &BTreeMap<String, Vec<u8>>,
) -> Result<Vec<Step>, Error> {
    virt::error::clear_error_callback();
    let pool = conn
        .lookup_storage_pool_by_name(cluster.host().pool.name.as_str())
        .ok()
        .filter(|p| p.is_active().unwrap_or(false));
    let mut steps = Vec::new();
    for vm in cluster.vms() {
        let Some(content) = configs.get(vm.name.as_str()) else {
            continue;
        };
        let name = ignition_volume(vm);
        let existing = match &pool {
            Some(p) => download(conn, p, &name)?,
            None => None,
        };
        let action = match existing {
            None => Action::Create,
            Some(old) if old == *content => Action::Unchanged,
            Some(old) => Action::UpdateInPlace {
                what: format!(
                    "Ignition config changed ({} -> {} bytes); read at the VM's next first boot",
                    old.len(),
                    content.len()
                ),
            },
        };
        steps.push(Step {
            kind: Kind::Volume,
            name,
            action,
            note: Some(format!(
                "Ignition config, {} bytes, 0600 at {}",
                content.len(),
                crate::ignition_path(cluster, vm)
            )),
            xml: None,
        });
    }
    Ok(steps)
}

/// Uploads every config whose step in `steps` is not unchanged (see
/// [`crate::hosts::upload_ignition`]); the pool must exist and run (apply
/// the libvirt plan first). Returns how many were uploaded.
pub fn apply(
    conn: &Connect,
    cluster: &Cluster,
    configs: &BTreeMap<String, Vec<u8>>,
    steps: &[Step],
) -> Result<usize, Error> {
    let mut n = 0;
    for vm in cluster.vms() {
        let name = ignition_volume(vm);
        let changed = steps
            .iter()
            .any(|s| s.name == name && s.action != Action::Unchanged);
        if let (true, Some(content)) = (changed, configs.get(vm.name.as_str())) {
            crate::hosts::upload_ignition(conn, cluster, vm, content)?;
            n += 1;
        }
    }
    Ok(n)
}
