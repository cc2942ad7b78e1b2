//! Saving and loading model files: the facade writes atomically, the model
//! crate only reads.

#[path = "../flatcar-topology/tests/common/mod.rs"]
mod common;

use flatcar_topology::Cluster;

#[test]
fn save_and_load_files_atomically() {
    let dir = std::env::temp_dir().join(format!("fmc-save-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let c = common::build(&common::Shape {
        nats: 2,
        masters: 3,
        workers: 2,
        extra: vec![(0, 1)],
        lbs: 2,
        with_vpn: true,
    });
    for ext in ["toml", "json"] {
        let p = dir.join(format!("cloud.{ext}"));
        flatcar_microcloud::model::save(&c, &p).expect("save");
        assert_eq!(Cluster::load(&p).expect("load"), c);
    }
    assert!(Cluster::load(dir.join("cloud.yaml")).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
