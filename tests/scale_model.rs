//! The README's promise at 10,000 VMs, as `full_cluster --model` does it:
//! save the model file, load it, print the summary, render, plan and write
//! the whole bundle.

#[path = "../benches/common/scale.rs"]
#[allow(dead_code)]
mod scale;
mod support;

use flatcar_microcloud::{Bundle, BundleSecrets};
use flatcar_topology::Cluster;
use support::TempDir;

#[test]
fn ten_thousand_vms_load_print_plan_and_write() {
    let tmp = TempDir::new("scale-model");
    let model = tmp.path().join("cloud.json");
    let text = scale::cloud(10_000)
        .expect("valid")
        .to_string_as(flatcar_topology::Format::Json)
        .expect("json");
    std::fs::write(&model, text).expect("saves");
    let c = Cluster::load(&model).expect("loads");
    assert_eq!(c.vms().len(), 10_000);
    let summary = c.summary();
    assert!(summary.lines().count() > 10_000, "summary lists every VM");
    let out = tmp.path().join("out");
    let b = Bundle::render(&c, &mut BundleSecrets::from_bundle_dir(&out)).expect("renders");
    let plan = b.plan(&out).expect("plans");
    assert_eq!(plan.changes.len(), b.files().len());
    b.write_to(&out).expect("writes");
    assert!(b.plan(&out).expect("re-plans").is_empty());
    // The bundle's own model loads again, as `--model out/cluster.json`.
    let again = Cluster::load(out.join("cluster.json")).expect("reloads");
    assert_eq!(again, c);
}
