//! Live (validator): random topologies produce Ignition configs that
//! `ignition-validate` accepts (feature `live`; the tool must be installed).

#[path = "../../flatcar-topology/tests/common/mod.rs"]
mod common;

use flatcar_ignition::{compose, IgnitionJson};
use flatcar_topology::provision::MemorySecrets;
use proptest::prelude::*;
use std::process::Command;

fn ignition_validate(json: &str) -> Result<(), String> {
    let path = std::env::temp_dir().join(format!(
        "fmc-prop-{}-{:x}.ign",
        std::process::id(),
        rand_suffix(json)
    ));
    std::fs::write(&path, json.replace("\"3.4.0\"", "\"3.4.0-experimental\""))
        .map_err(|e| e.to_string())?;
    let out = Command::new("ignition-validate")
        .arg(&path)
        .output()
        .map_err(|e| format!("ignition-validate must be installed: {e}"))?;
    let _ = std::fs::remove_file(&path);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn rand_suffix(s: &str) -> u64 {
    s.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ b as u64).wrapping_mul(1099511628211)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn random_topologies_yield_valid_ignition(s in common::shape()) {
        let c = common::build(&s);
        let composed = compose(&c, &[], &mut MemorySecrets::default()).expect("composes");
        for (name, node) in &composed.nodes {
            let json = node.ignition_json().expect("renders");
            if let Err(e) = ignition_validate(&json) {
                prop_assert!(false, "{name}: {e}\n{json}");
            }
            prop_assert!(json.contains("\"path\": \"/etc/hostname\""));
        }
    }
}
