//! Live (validator, feature `live`): every generated libvirt document passes
//! `virt-xml-validate`, for the reference cloud and for random topologies.
//! A missing tool fails.

mod support;

use flatcar_libvirt as libvirt;
use flatcar_microcloud::reference::cluster;
use flatcar_topology::Cluster;
use std::process::Command;
use support::{require, TempDir};

fn validate_all(c: &Cluster) {
    require("virt-xml-validate");
    let tmp = TempDir::new("virtxml");
    let docs = libvirt::documents(c).expect("renders");
    assert!(!docs.is_empty());
    for (path, kind, xml) in docs {
        let file = tmp.path().join(path.replace('/', "_"));
        std::fs::write(&file, &xml).expect("write");
        let out = Command::new("virt-xml-validate")
            .arg(&file)
            .arg(kind)
            .output()
            .expect("virt-xml-validate");
        assert!(
            out.status.success(),
            "{path} ({kind}) rejected: {}{}\n{xml}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn reference_cloud_validates() {
    validate_all(&cluster().expect("valid"));
}

/// On three hosts the NAT networks are bridge-mode networks on the VXLAN
/// segments' bridges and the NICs on them carry `<mtu size='1450'/>`.
#[test]
fn three_host_cloud_validates() {
    let c = flatcar_microcloud::multi_host::three_hosts().expect("valid");
    assert!(c.fabric().is_some());
    validate_all(&c);
}

#[path = "../flatcar-topology/tests/common/mod.rs"]
mod common;

mod random {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]
        #[test]
        fn random_topologies_validate(s in common::shape()) {
            validate_all(&common::build(&s));
        }
    }
}
