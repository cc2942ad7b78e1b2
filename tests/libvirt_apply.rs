//! Plan/apply against libvirt: in-process `test:///default`, and a real
//! libvirtd at `qemu:///system` (started by the test if needed). Objects are
//! only defined, never started.
#![cfg(feature = "libvirt")]

mod support;

use flatcar_microcloud::reference::{cluster_with, AddressPlan};
use flatcar_topology::libvirt::apply::{
    apply, connect, destroy, inventory, plan, Action, Connect, Kind,
};
use flatcar_topology::{Cluster, Name, PoolPath};

fn cloud(pool_path: &str) -> Cluster {
    let mut spec = cluster_with(&AddressPlan::test())
        .expect("valid")
        .into_spec();
    spec.host.pool.path = PoolPath::new(pool_path).expect("path");
    Cluster::try_from(spec).expect("valid")
}

fn names(conn: &Connect) -> (Vec<String>, Vec<String>) {
    inventory(conn).expect("inventory")
}

#[test]
fn test_driver_lifecycle() {
    let conn = connect("test:///default").expect("test driver");
    let (foreign_domains, foreign_networks) = names(&conn);
    assert!(
        foreign_domains.contains(&"test".to_string())
            && foreign_networks.contains(&"default".to_string())
    );
    let c = cloud("/var/lib/libvirt/images/microcloud");

    let p = plan(&conn, &c).expect("plan");
    assert!(p.steps.iter().all(|s| s.action == Action::Create), "{p:?}");
    let mut seen = 0;
    let r = apply(&conn, &c, &p, &mut |_, _, _| seen += 1).expect("apply");
    assert!(r.mutations > c.vms().len() + c.networks().len());
    assert_eq!(seen, p.changes());
    // Second run: nothing to do, zero mutating calls.
    let p2 = plan(&conn, &c).expect("plan");
    assert_eq!(
        p2.changes(),
        0,
        "{:#?}",
        p2.steps
            .iter()
            .filter(|s| s.action != Action::Unchanged)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        apply(&conn, &c, &p2, &mut |_, _, _| {})
            .expect("apply")
            .mutations,
        0
    );

    // A changed VM is an update with the reason; a removed VM is deleted with its volumes.
    let mut spec = c.clone().into_spec();
    spec.vms
        .iter_mut()
        .find(|v| v.name.as_str() == "master1")
        .expect("m1")
        .vcpus = 4;
    spec.vms.retain(|v| v.name.as_str() != "worker3");
    let c2 = Cluster::try_from(spec).expect("valid");
    let p3 = plan(&conn, &c2).expect("plan");
    let m1 = p3
        .steps
        .iter()
        .find(|s| s.name == "master1")
        .expect("master1 step");
    assert!(
        matches!(&m1.action, Action::Update(r) if r.contains("vcpu 2 -> 4")),
        "{m1}"
    );
    assert!(p3
        .steps
        .iter()
        .any(|s| s.kind == Kind::Domain && s.name == "worker3" && s.action == Action::Delete));
    assert!(p3.steps.iter().any(|s| s.kind == Kind::Volume
        && s.name == "worker3-root.qcow2"
        && s.action == Action::Delete));
    for s in &p3.steps {
        println!("{s}");
    }
    apply(&conn, &c2, &p3, &mut |_, _, _| {}).expect("apply");
    assert_eq!(plan(&conn, &c2).expect("plan").changes(), 0);

    // A same-named object that is not ours is a conflict: refused, untouched.
    let other = {
        let mut s = c2.clone().into_spec();
        s.name = Name::new("othercloud").expect("name");
        Cluster::try_from(s).expect("valid")
    };
    let p4 = plan(&conn, &other).expect("plan");
    assert!(p4
        .steps
        .iter()
        .any(|s| s.name == "lb1"
            && matches!(&s.action, Action::Conflict(r) if r.contains("microcloud"))));
    let err = apply(&conn, &other, &p4, &mut |_, _, _| {}).expect_err("refused");
    assert!(err.to_string().contains("refusing"), "{err}");

    // destroy removes only what we own.
    let r = destroy(&conn, &c2).expect("destroy");
    assert!(r.mutations > 0);
    let (d, n) = names(&conn);
    assert_eq!(d, foreign_domains);
    assert_eq!(n, foreign_networks);
}

/// A real libvirtd at qemu:///system (started here when not running; the
/// test script installs libvirt-daemon-system and qemu-system-x86). A small
/// cloud (one LAN, one NAT network, one VM with a data disk) keeps it quick:
/// this libvirtd takes ~80 s per domain definition without a system bus.
#[test]
fn real_daemon_define_replan_destroy() {
    support::require("libvirtd");
    if !std::process::Command::new("pgrep")
        .arg("-x")
        .arg("libvirtd")
        .status()
        .is_ok_and(|s| s.success())
    {
        support::run(&["libvirtd", "-d"]);
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    let tmp = support::TempDir::new("pool");
    let mut c = flatcar_topology::Cluster::builder(
        "fmctest",
        flatcar_topology::HostBuilder::new("kvm1").pool(
            "fmctest-pool",
            tmp.path().join("pool").to_str().expect("utf8"),
        ),
    );
    let lan = c.lan(
        "fmctest-lan",
        flatcar_topology::net4!("198.18.0.0/24"),
        |n| n.bridge("fmcbr0").host_at(40),
    );
    let nat = c.nat(
        "fmctest-nat",
        flatcar_topology::net4!("198.18.4.0/24"),
        |n| n.bridge("fmcvb0").dhcp(100, 200),
    );
    let _ = lan;
    c.vm("fmctest-vm1", |v| {
        v.role(flatcar_topology::Role::Worker)
            .data_disk("data", flatcar_topology::GiB(1))
            .nic(&nat, 21)
    });
    let c = c.build().expect("valid");
    let conn = connect("qemu:///system").expect("qemu:///system");
    // Leftovers of an interrupted earlier run of this test (fmctest-* only).
    let _ = destroy(&conn, &c);
    if let Ok(pool) = conn.lookup_storage_pool_by_name("fmctest-pool") {
        for v in pool.list_all_volumes(0).unwrap_or_default() {
            let _ = v.delete(0);
        }
        let _ = pool.destroy();
        let _ = pool.undefine();
    }
    // A foreign network that must survive everything.
    let foreign = "<network><name>fmctest-foreign</name><bridge name='fmcfor0'/></network>";
    let _ = conn
        .lookup_network_by_name("fmctest-foreign")
        .map(|n| n.undefine());
    conn.define_network_xml(foreign).expect("foreign network");
    let (doms_before, nets_before) = names(&conn);
    let p = plan(&conn, &c).expect("plan");
    assert!(p.changes() >= 6, "{p:?}");
    apply(&conn, &c, &p, &mut |_, _, s| println!("  {s}")).expect("apply");
    let p2 = plan(&conn, &c).expect("re-plan");
    assert_eq!(
        p2.changes(),
        0,
        "{:?}",
        p2.steps
            .iter()
            .filter(|s| s.action != Action::Unchanged)
            .collect::<Vec<_>>()
    );
    destroy(&conn, &c).expect("destroy");
    let (doms_after, nets_after) = names(&conn);
    assert_eq!(doms_after, doms_before, "only owned domains removed");
    assert_eq!(nets_after, nets_before, "only owned networks removed");
    assert!(nets_after.contains(&"fmctest-foreign".to_string()));
    assert!(
        conn.lookup_storage_pool_by_name("fmctest-pool").is_err(),
        "empty owned pool removed"
    );
    conn.lookup_network_by_name("fmctest-foreign")
        .expect("foreign")
        .undefine()
        .expect("cleanup");
}
