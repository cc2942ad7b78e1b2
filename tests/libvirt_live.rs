//! The example against a real libvirtd (`qemu:///system`, started here when
//! no daemon answers; the test script installs `libvirt-daemon-system`):
//! `full_cluster --model cloud.toml --apply qemu:///system` defines the
//! reference cloud (test address plan, its own cluster name and a pool in a
//! temp dir), a second run reports that nothing changes, and `--destroy`
//! leaves no owned object and every foreign one as it was. Networks and
//! domains are only defined, never started (no KVM here; a started NAT
//! network would add addresses to this machine).
#![cfg(feature = "libvirt")]

mod support;

use flatcar_libvirt::apply::{destroy, destroy_plan, inventory, Connect};
use flatcar_microcloud::reference::{cluster_with, AddressPlan};
use flatcar_topology::{Cluster, Name, PoolPath};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use support::TempDir;

const URI: &str = "qemu:///system";
const CLUSTER: &str = "fmc-livetest";
const POOL: &str = "fmc-livetest-pool";
const FOREIGN_NET: &str = "<network><name>fmc-foreign-net</name><bridge name='fmcfor0'/></network>";

/// The reference cloud on test addresses, with its own cluster and pool.
fn cloud(pool_path: &Path) -> Cluster {
    let mut spec = cluster_with(&AddressPlan::test())
        .expect("valid")
        .into_spec();
    spec.name = Name::new(CLUSTER).expect("name");
    spec.host.pool.name = Name::new(POOL).expect("name");
    spec.host.pool.path = PoolPath::new(pool_path.to_str().expect("utf8")).expect("path");
    Cluster::try_from(spec).expect("valid")
}

/// The `full_cluster` example `cargo test` built next to this test.
fn example() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("examples/full_cluster");
    let help = Command::new(&bin).arg("--help").output();
    assert!(
        help.is_ok_and(|h| String::from_utf8_lossy(&h.stdout).contains("--apply")),
        "{} is missing or was built without feature libvirt: cargo test builds \
         examples with the test's features unless a --test filter is given",
        bin.display()
    );
    bin
}

/// Runs the example; (success, stdout + stderr).
fn run_example(args: &[&str]) -> (bool, String) {
    let out = Command::new(example())
        .args(args)
        .output()
        .expect("example runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Deletes the pool this test owns by name, with its volumes, whatever its
/// target path (an interrupted run leaves one behind in /etc/libvirt).
fn remove_pool(conn: &Connect) {
    let Ok(p) = conn.lookup_storage_pool_by_name(POOL) else {
        return;
    };
    if p.is_active().expect("pool state") {
        for v in p.list_volumes().expect("volumes") {
            if let Ok(v) = p.lookup_storage_vol_by_name(&v) {
                v.delete(0).expect("delete leftover volume");
            }
        }
        p.destroy().expect("stop leftover pool");
    }
    p.undefine().expect("undefine leftover pool");
}

/// Removes what the test defined, also when it fails.
struct Cleanup<'a>(&'a Connect, Cluster);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = destroy(self.0, &self.1);
        remove_pool(self.0);
        if let Ok(n) = self.0.lookup_network_by_name("fmc-foreign-net") {
            let _ = n.undefine();
        }
    }
}

#[test]
fn example_applies_twice_and_destroys_on_a_real_daemon() {
    let conn = support::system_daemon();
    let tmp = TempDir::new("lvlive");
    let pool_dir = tmp.path().join("pool");
    let c = cloud(&pool_dir);
    let model = tmp.path().join("cloud.toml");
    flatcar_microcloud::model::save(&c, &model).expect("model saved");
    let model = model.to_str().expect("utf8");
    // Leftovers of an interrupted earlier run (this test's objects only).
    remove_pool(&conn);
    destroy(&conn, &c).expect("destroy leftovers");
    if let Ok(n) = conn.lookup_network_by_name("fmc-foreign-net") {
        n.undefine().expect("old foreign network");
    }
    let _guard = Cleanup(&conn, c.clone());
    conn.define_network_xml(FOREIGN_NET)
        .expect("foreign network");
    let foreign_xml = conn
        .lookup_network_by_name("fmc-foreign-net")
        .and_then(|n| n.xml_desc(0))
        .expect("xml");
    let before = inventory(&conn).expect("inventory");

    // First run: every object created, then a re-plan with zero changes.
    let t = Instant::now();
    let (ok, first) = run_example(&["--model", model, "--apply", URI]);
    println!("{first}\nfirst apply took {:.0?}", t.elapsed());
    assert!(ok, "{first}");
    let creates = first.lines().filter(|l| l.starts_with("create")).count();
    let objects = 1 + c.networks().len() + c.vms().len();
    assert!(
        creates > objects,
        "{creates} creates for {objects}+ objects:\n{first}"
    );
    assert!(
        first.contains(&format!("re-plan at {URI}: 0 change(s)")),
        "{first}"
    );
    for vm in c.vms() {
        assert!(
            conn.lookup_domain_by_name(vm.name.as_str()).is_ok(),
            "{}",
            vm.name
        );
    }
    for n in c.networks() {
        let net = conn
            .lookup_network_by_name(n.name.as_str())
            .expect("network");
        assert!(!net.is_active().expect("state"), "{} must not run", n.name);
    }
    // The overlay really is a qcow2 backed by the base image.
    let info = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(pool_dir.join("master1-root.qcow2"))
        .output()
        .expect("qemu-img (Debian qemu-utils) must be installed");
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.contains("\"format\": \"qcow2\"") && info.contains(&c.spec().image.volume_name()),
        "{info}"
    );

    // Second run: nothing changes.
    let (ok, second) = run_example(&["--model", model, "--apply", URI]);
    println!("{second}");
    assert!(ok, "{second}");
    assert!(
        second.contains("0 change(s)") && second.contains("nothing changes"),
        "{second}"
    );

    // Destroy: nothing owned left, every foreign object as it was.
    let (ok, gone) = run_example(&["--model", model, "--destroy", URI]);
    println!("{gone}");
    assert!(ok, "{gone}");
    let after = inventory(&conn).expect("inventory");
    assert_eq!(destroy_plan(&conn, &c).expect("plan").steps, vec![]);
    for vm in c.vms() {
        assert!(!after.domains.contains(&vm.name.to_string()), "{after:?}");
    }
    for n in c.networks() {
        assert!(!after.networks.contains(&n.name.to_string()), "{after:?}");
    }
    assert!(!after.pools.contains(&POOL.to_string()));
    assert_eq!(
        conn.lookup_network_by_name("fmc-foreign-net")
            .and_then(|n| n.xml_desc(0))
            .expect("xml"),
        foreign_xml
    );
    let mut rest = before.clone();
    rest.domains.retain(|d| c.vm(d).is_none());
    rest.networks.retain(|n| c.network(n).is_none());
    rest.pools.retain(|p| p != POOL);
    assert_eq!(after, rest, "only this cluster's objects were removed");
}
