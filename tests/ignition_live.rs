//! Live (validator, feature `live`): every VM of the reference cloud gets an
//! Ignition config that the real `ignition-validate` (Debian's 2.14, which
//! knows 3.4.0 only as "3.4.0-experimental") accepts byte for byte: the
//! renderer declares the lowest spec version the config needs, 3.3.0 for
//! every reference VM. A missing tool fails.

use flatcar_ignition::IgnitionJson;
use flatcar_microcloud::reference::cluster;
use flatcar_topology::provision::MemorySecrets;
use std::process::Command;

fn validate(json: &str, label: &str) {
    let dir = std::env::temp_dir().join(format!("fmc-ign-{}-{label}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tempdir");
    assert!(
        json.contains("\"version\": \"3.3.0\""),
        "{label}: expected spec 3.3.0 (no 3.4-only field is used)"
    );
    let (ver, text) = ("3.3.0-unchanged", json);
    let path = dir.join(format!("{label}-{ver}.ign"));
    std::fs::write(&path, text).expect("write");
    let out = Command::new("ignition-validate")
        .arg(&path)
        .output()
        .expect("ignition-validate must be installed (scripts/test installs package ignition)");
    assert!(
        out.status.success(),
        "{label} ({ver}) rejected: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_reference_vm_validates() {
    let c = cluster().expect("valid");
    let composed =
        flatcar_microcloud::services::compose(&c, &mut MemorySecrets::default()).expect("composes");
    assert_eq!(composed.nodes.len(), c.vms().len());
    for (name, node) in &composed.nodes {
        validate(&node.ignition_json().expect("renders"), name);
    }
}
