//! Live (validator, feature `live`): every generated libvirt document
//! passes the real `virt-xml-validate` (Debian `libvirt-clients`; a missing
//! tool fails the test), for the reference cloud (both address plans), a
//! VM with its own image, and random valid topologies.

#[path = "../flatcar-topology/tests/common/mod.rs"]
mod common;

use flatcar_libvirt::{self as libvirt, domain, network, volume};
use flatcar_microcloud::reference::{cluster, cluster_with, AddressPlan};
use flatcar_topology::Cluster;
use proptest::prelude::*;
use std::path::Path;
use std::process::Command;

/// Runs `virt-xml-validate FILE KIND`; panics with its output on rejection
/// and when the tool is missing (never skips).
fn validate(dir: &Path, name: &str, kind: &str, xml: &str) {
    let file = dir.join(name.replace('/', "_"));
    std::fs::write(&file, xml).expect("write");
    let out = Command::new("virt-xml-validate")
        .arg(&file)
        .arg(kind)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "virt-xml-validate (Debian libvirt-clients + libxml2-utils) must be installed: {e}"
            )
        });
    assert!(
        out.status.success(),
        "{name} ({kind}) rejected: {}{}\n{xml}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn validate_all(c: &Cluster) -> usize {
    let tmp = TempDir::new();
    let docs = libvirt::documents(c).expect("renders");
    for (path, kind, xml) in &docs {
        validate(tmp.path(), path, kind, xml);
    }
    for base in volume::base_images(c) {
        validate(
            tmp.path(),
            &format!("base-{base}"),
            "storagevol",
            &volume::base_xml(&base).expect("renders"),
        );
    }
    // The form used to redefine an existing object (with its uuid).
    let uuid = "0b6c3ac4-5b8e-4f59-9d44-3f0e3c1f6a21";
    if let Some(vm) = c.vms().first() {
        validate(
            tmp.path(),
            "uuid-domain",
            "domain",
            &domain::xml_with_uuid(c, vm, uuid).expect("renders"),
        );
    }
    if let Some(net) = c.networks().first() {
        validate(
            tmp.path(),
            "uuid-network",
            "network",
            &network::xml_with_uuid(c, net, uuid).expect("renders"),
        );
    }
    docs.len()
}

/// A temporary directory removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "fmc-virtxml-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).expect("tempdir");
        TempDir(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn reference_cloud_validates() {
    for c in [
        cluster().expect("valid"),
        cluster_with(&AddressPlan::test()).expect("valid"),
    ] {
        let n = validate_all(&c);
        // pool + networks + domains + one volume per VM disk.
        let disks: usize = c.vms().iter().map(|v| 1 + v.data_disks.len()).sum();
        assert_eq!(n, 1 + c.networks().len() + c.vms().len() + disks);
    }
}

#[test]
fn per_vm_image_validates() {
    let mut spec = cluster().expect("valid").into_spec();
    let mut other = spec.image.clone();
    other.version = flatcar_topology::FlatcarVersion::new("4152.2.1").expect("version");
    spec.vms[0].image = Some(other);
    validate_all(&Cluster::try_from(spec).expect("valid"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn random_topologies_validate(s in common::shape()) {
        let c = common::build(&s);
        validate_all(&c);
    }
}
