//! Plan/apply/destroy against libvirt's in-process `test:///default`
//! driver. The real daemon (`qemu:///system`) is exercised through the
//! example in the root crate's `tests/libvirt_live.rs`.
#![cfg(feature = "libvirt")]

use flatcar_libvirt::apply::{
    apply, apply_with, connect, destroy, destroy_plan, inventory, plan, Action, Connect, Kind,
    Plan, Step,
};
use flatcar_libvirt::Error;
use flatcar_microcloud::reference::{cluster_with, AddressPlan};
use flatcar_topology::{Cluster, GiB, Name, PoolPath};

/// The reference cloud on test addresses, with its own cluster and pool.
fn cloud(cluster: &str, pool: &str, pool_path: &str) -> Cluster {
    let mut spec = cluster_with(&AddressPlan::test())
        .expect("valid")
        .into_spec();
    spec.name = Name::new(cluster).expect("name");
    spec.host.pool.name = Name::new(pool).expect("name");
    spec.host.pool.path = PoolPath::new(pool_path).expect("path");
    Cluster::try_from(spec).expect("valid")
}

fn find<'a>(p: &'a Plan, kind: Kind, name: &str) -> &'a Step {
    p.steps
        .iter()
        .find(|s| s.kind == kind && s.name == name)
        .unwrap_or_else(|| panic!("no step for {kind} {name}:\n{p}"))
}

fn changed(p: &Plan) -> Vec<String> {
    p.steps
        .iter()
        .filter(|s| s.action != Action::Unchanged)
        .map(|s| s.to_string())
        .collect()
}

fn edit(c: &Cluster, f: impl FnOnce(&mut flatcar_topology::Spec)) -> Cluster {
    let mut spec = c.clone().into_spec();
    f(&mut spec);
    Cluster::try_from(spec).expect("valid")
}

/// Removes what a test defined, also when it fails.
struct Cleanup<'a> {
    conn: &'a Connect,
    clusters: Vec<Cluster>,
    networks: Vec<String>,
    domains: Vec<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for c in &self.clusters {
            let _ = destroy(self.conn, c);
        }
        for n in &self.networks {
            if let Ok(n) = self.conn.lookup_network_by_name(n) {
                let _ = n.undefine();
            }
        }
        for d in &self.domains {
            if let Ok(d) = self.conn.lookup_domain_by_name(d) {
                let _ = d.undefine();
            }
        }
    }
}

const FOREIGN_NET: &str = "<network><name>fmc-foreign-net</name><bridge name='fmcfor0'/></network>";
const FOREIGN_DOM: &str = "<domain type='test'><name>fmc-foreign-vm</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>";

#[test]
fn test_driver_lifecycle() {
    let conn = connect("test:///default").expect("test driver");
    let pristine = inventory(&conn).expect("inventory");
    assert!(
        pristine.domains.contains(&"test".to_string()),
        "{pristine:?}"
    );
    let c = cloud(
        "microcloud",
        "microcloud",
        "/var/lib/libvirt/images/microcloud",
    );
    let mut guard = Cleanup {
        conn: &conn,
        clusters: vec![c.clone()],
        networks: vec!["fmc-foreign-net".into()],
        domains: vec!["fmc-foreign-vm".into()],
    };
    conn.define_network_xml(FOREIGN_NET)
        .expect("foreign network");
    conn.define_domain_xml(FOREIGN_DOM).expect("foreign domain");
    let foreign_net_xml = conn
        .lookup_network_by_name("fmc-foreign-net")
        .and_then(|n| n.xml_desc(0))
        .expect("xml");
    let foreign_dom_xml = conn
        .lookup_domain_by_name("fmc-foreign-vm")
        .and_then(|d| d.xml_desc(0))
        .expect("xml");
    let before = inventory(&conn).expect("inventory");

    // 1. Create everything, in dependency order, with progress.
    let p = plan(&conn, &c).expect("plan");
    println!("{p}");
    assert!(p.steps.iter().all(|s| s.action == Action::Create), "{p}");
    let order: Vec<Kind> = p.steps.iter().map(|s| s.kind).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "pool, volumes, networks, domains");
    let base = find(&p, Kind::Volume, &c.spec().image.volume_name());
    assert!(base.reason().contains("placeholder"), "{base}");
    let mut seen = Vec::new();
    let r = apply_with(&conn, &p, &mut |i, n, s| seen.push((i, n, s.name.clone()))).expect("apply");
    assert_eq!(seen.len(), p.changes());
    assert_eq!(
        seen.last().map(|s| (s.0, s.1)),
        Some((p.changes(), p.changes()))
    );
    assert!(r.mutations >= p.changes(), "{r:?}");

    // 2. Second run: nothing to do, zero mutating calls.
    let p2 = plan(&conn, &c).expect("plan");
    assert_eq!(p2.changes(), 0, "{:#?}", changed(&p2));
    assert_eq!(apply(&conn, &p2).expect("apply").mutations, 0);

    // 3. Changes: an update in place, a resize, a recreate, a removed VM.
    let c2 = edit(&c, |s| {
        s.vms
            .iter_mut()
            .find(|v| v.name.as_str() == "master1")
            .expect("master1")
            .vcpus = 4;
        let w1 = s
            .vms
            .iter_mut()
            .find(|v| v.name.as_str() == "worker1")
            .expect("worker1");
        w1.root_disk = GiB(w1.root_disk.0 + 10);
        let mut img = s.image.clone();
        img.version = flatcar_topology::FlatcarVersion::new("4152.2.1").expect("v");
        s.vms
            .iter_mut()
            .find(|v| v.name.as_str() == "worker2")
            .expect("worker2")
            .image = Some(img);
        s.vms.retain(|v| v.name.as_str() != "worker3");
    });
    guard.clusters.push(c2.clone());
    // Drift: master2's live definition edited behind our back (chipset).
    let m2 = conn.lookup_domain_by_name("master2").expect("master2");
    let drifted = m2
        .xml_desc(0)
        .expect("xml")
        .replace("machine=\"q35\"", "machine=\"pc\"")
        .replace("machine='q35'", "machine='pc'");
    assert!(drifted.contains("pc"), "{drifted}");
    conn.define_domain_xml(&drifted).expect("drift");

    let p3 = plan(&conn, &c2).expect("plan");
    println!("{p3}");
    let m1 = find(&p3, Kind::Domain, "master1");
    assert!(
        matches!(&m1.action, Action::UpdateInPlace { what } if what.contains("vcpu 2 -> 4")),
        "{m1}"
    );
    let m2 = find(&p3, Kind::Domain, "master2");
    assert!(
        matches!(&m2.action, Action::Recreate { reason } if reason.contains("machine pc -> q35") && reason.contains("drifted")),
        "{m2}"
    );
    let w1 = find(&p3, Kind::Volume, "worker1-root.qcow2");
    assert!(
        matches!(&w1.action, Action::UpdateInPlace { what } if what.contains("(resize)")),
        "{w1}"
    );
    let w2 = find(&p3, Kind::Volume, "worker2-root.qcow2");
    assert!(
        matches!(&w2.action, Action::Recreate { reason } if reason.contains("backing image") && reason.contains("4152.2.1")),
        "{w2}"
    );
    assert_eq!(
        find(&p3, Kind::Volume, "flatcar-stable-4152.2.1.qcow2").action,
        Action::Create
    );
    assert_eq!(find(&p3, Kind::Domain, "worker3").action, Action::Delete);
    let w3: Vec<&Step> = p3
        .steps
        .iter()
        .filter(|s| s.kind == Kind::Volume && s.name.starts_with("worker3-"))
        .collect();
    assert!(
        !w3.is_empty() && w3.iter().all(|s| s.action == Action::Delete),
        "{p3}"
    );
    // worker3's DHCP reservation leaves the k8s network: in place.
    let k8s = find(&p3, Kind::Network, "k8s");
    assert!(
        matches!(&k8s.action, Action::UpdateInPlace { what } if what.contains("dhcp host removed: worker3")),
        "{k8s}"
    );
    // Deletions come after every create/update (domains before volumes).
    let first_delete = p3
        .steps
        .iter()
        .position(|s| s.action == Action::Delete)
        .expect("deletes");
    assert!(p3.steps[first_delete..]
        .iter()
        .all(|s| s.action == Action::Delete));
    // The test driver cannot resize volumes: apply stops right there with
    // libvirt's message, after the steps before it, before the ones after.
    match apply(&conn, &p3) {
        Err(e @ Error::Partial { .. }) => {
            let message = e.to_string();
            assert!(
                std::error::Error::source(&e).is_some(),
                "libvirt's error is kept"
            );
            assert!(
                message.starts_with("libvirt: volume worker1-root.qcow2: "),
                "{message}"
            );
            assert!(message.contains("not supported"), "{message}");
            assert!(message.contains("1 of "), "{message}");
        }
        other => panic!("expected the test driver to refuse a resize: {other:?}"),
    }
    let m1_xml = conn
        .lookup_domain_by_name("master1")
        .and_then(|d| d.xml_desc(0))
        .expect("xml");
    assert!(
        m1_xml.contains(">2</vcpu>"),
        "nothing after the failure ran"
    );
    // Without the resize the rest applies.
    let c2 = edit(&c2, |s| {
        let w1 = s
            .vms
            .iter_mut()
            .find(|v| v.name.as_str() == "worker1")
            .expect("worker1");
        w1.root_disk = GiB(w1.root_disk.0 - 10);
    });
    let p3 = plan(&conn, &c2).expect("plan");
    assert_eq!(
        find(&p3, Kind::Volume, "flatcar-stable-4152.2.1.qcow2").action,
        Action::Unchanged
    );
    let r = apply(&conn, &p3).expect("apply");
    assert!(r.mutations > 0);
    let p4 = plan(&conn, &c2).expect("plan");
    assert_eq!(p4.changes(), 0, "{:#?}", changed(&p4));
    assert!(conn.lookup_domain_by_name("worker3").is_err());
    let vcpus = conn
        .lookup_domain_by_name("master1")
        .and_then(|d| d.xml_desc(0))
        .expect("xml");
    assert!(vcpus.contains(">4</vcpu>"), "{vcpus}");

    // 4. Same names, another cluster: conflicts, refused, nothing changed.
    let other = cloud(
        "othercloud",
        "microcloud",
        "/var/lib/libvirt/images/microcloud",
    );
    let p5 = plan(&conn, &other).expect("plan");
    let lb1 = find(&p5, Kind::Domain, "lb1");
    assert!(
        matches!(&lb1.action, Action::Conflict { reason } if reason.contains("microcloud")),
        "{lb1}"
    );
    let inv = inventory(&conn).expect("inventory");
    match apply(&conn, &p5) {
        Err(Error::Refused { object, reason }) => {
            assert!(
                object.starts_with("volume ")
                    || object.starts_with("network ")
                    || object.starts_with("domain "),
                "{object}"
            );
            assert!(reason.contains("nothing was changed"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(inventory(&conn).expect("inventory"), inv);
    // The other cluster owns nothing here: its destroy plan is empty.
    assert_eq!(destroy_plan(&conn, &other).expect("plan").steps, vec![]);

    // 5. destroy removes only what this cluster owns.
    let dp = destroy_plan(&conn, &c2).expect("plan");
    println!("destroy plan:\n{dp}");
    destroy(&conn, &c2).expect("destroy");
    let after = inventory(&conn).expect("inventory");
    assert_eq!(
        after.domains,
        pristine_plus(&pristine.domains, "fmc-foreign-vm")
    );
    assert_eq!(
        after.networks,
        pristine_plus(&pristine.networks, "fmc-foreign-net")
    );
    assert_eq!(after.pools, pristine.pools);
    assert_eq!(before.domains, after.domains);
    assert_eq!(
        conn.lookup_network_by_name("fmc-foreign-net")
            .and_then(|n| n.xml_desc(0))
            .expect("xml"),
        foreign_net_xml
    );
    assert_eq!(
        conn.lookup_domain_by_name("fmc-foreign-vm")
            .and_then(|d| d.xml_desc(0))
            .expect("xml"),
        foreign_dom_xml
    );

    // 6. A document libvirt rejects: typed error naming the object and
    // carrying libvirt's message; earlier steps done, later ones not.
    let mut p6 = plan(&conn, &c).expect("plan");
    let at = p6
        .steps
        .iter()
        .position(|s| s.kind == Kind::Domain && s.name == "lb2")
        .expect("lb2");
    p6.steps[at].xml = Some("<domain type='kvm'><name>lb2</name><vcpu>many</vcpu></domain>".into());
    match apply(&conn, &p6) {
        Err(e @ Error::Partial { .. }) => {
            let message = e.to_string();
            assert!(message.starts_with("libvirt: domain lb2: "), "{message}");
            assert!(
                message.contains("changes were applied before this one"),
                "{message}"
            );
            println!("libvirt rejected: {message}");
        }
        other => panic!("expected a libvirt error, got {other:?}"),
    }
    assert!(
        conn.lookup_domain_by_name("lb1").is_ok(),
        "steps before lb2 ran"
    );
    assert!(conn.lookup_domain_by_name("lb2").is_err());
    assert!(
        conn.lookup_domain_by_name("master1").is_err(),
        "stopped at lb2"
    );
    destroy(&conn, &c).expect("destroy");
    assert_eq!(inventory(&conn).expect("inventory"), before);
    drop(guard);
    assert_eq!(inventory(&conn).expect("inventory"), pristine);
}

fn pristine_plus(names: &[String], extra: &str) -> Vec<String> {
    let mut v = names.to_vec();
    v.push(extra.to_string());
    v.sort();
    v
}

/// A scratch directory, removed also when the test fails.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A test-driver connection of the test's own (`test:///<file>`, so the
/// shared `test:///default` state of the other tests is untouched) with the
/// reference cloud named `name` applied to it.
fn own_test_driver(name: &str) -> (Scratch, Connect, Cluster) {
    let dir = Scratch(std::env::temp_dir().join(format!("{name}-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).expect("dir");
    let host = dir.0.join("host.xml");
    std::fs::write(&host, "<node>\n</node>\n").expect("host file");
    let conn = connect(&format!("test://{}", host.display())).expect("test driver");
    let c = cloud(name, name, &format!("/var/lib/libvirt/images/{name}"));
    apply(&conn, &plan(&conn, &c).expect("plan")).expect("applies");
    (dir, conn, c)
}

/// A running domain that the plan would delete (its VM left the model) or
/// recreate is named by `running_removals`, so a deploy can refuse before
/// stopping it undrained; a defined, stopped one is not. Own test-driver
/// connection (`test:///<file>`), so the shared `test:///default` state of
/// the other test is untouched.
#[test]
fn running_domains_that_a_plan_removes_are_named() {
    use flatcar_libvirt::apply::running_removals;
    let (_dir, conn, c) = own_test_driver("fmc-running");
    conn.lookup_domain_by_name("worker3")
        .and_then(|d| d.create())
        .expect("test driver starts worker3");
    let without = edit(&c, |s| {
        s.vms
            .retain(|v| v.name.as_str() != "worker3" && v.name.as_str() != "worker2")
    });
    let p = plan(&conn, &without).expect("plan");
    assert_eq!(find(&p, Kind::Domain, "worker3").action, Action::Delete);
    assert_eq!(find(&p, Kind::Domain, "worker2").action, Action::Delete);
    assert_eq!(
        running_removals(&conn, &p).expect("reads"),
        vec!["worker3".to_string()],
        "{p}"
    );
}

/// A running NAT network takes DHCP reservations and DNS hosts that change
/// live: `virNetworkUpdate` element by element, next to the new
/// definition. Before, apply only redefined it: the running network (its
/// dnsmasq) kept the old hosts until a restart, and every later plan showed
/// the same change again. worker3 leaves the model, then comes back; each
/// time the live XML holds exactly the model's hosts and the next plan is
/// empty. Own test-driver connection (`test:///<file>`).
#[test]
fn running_network_takes_host_changes_live() {
    let (_dir, conn, c) = own_test_driver("fmc-netupdate");
    let k8s = conn.lookup_network_by_name("k8s").expect("k8s network");
    k8s.create().expect("test driver starts k8s");
    let live_hosts = || {
        let xml = k8s.xml_desc(0).expect("live xml");
        let f = flatcar_libvirt::live::network("network k8s", &xml).expect("facts");
        (f.dhcp_hosts, f.dns_hosts)
    };
    let before = live_hosts();
    assert!(
        before.0.iter().any(|(_, name, _)| name == "worker3"),
        "{before:?}"
    );

    let without = edit(&c, |s| s.vms.retain(|v| v.name.as_str() != "worker3"));
    for (step, model) in [("worker3 leaves", &without), ("worker3 comes back", &c)] {
        let p = plan(&conn, model).expect("plan");
        let net = find(&p, Kind::Network, "k8s");
        assert!(
            matches!(&net.action, Action::UpdateInPlace { what }
                if what.contains("worker3") && what.contains("updated live") && !what.contains("drifted")),
            "{step}: {net}"
        );
        apply(&conn, &p).expect("applies");
        let now = live_hosts();
        let want = flatcar_libvirt::live::network(
            "network k8s",
            &flatcar_libvirt::network::xml(
                model,
                model
                    .networks()
                    .iter()
                    .find(|n| n.name.as_str() == "k8s")
                    .expect("k8s"),
            )
            .expect("xml"),
        )
        .expect("facts");
        assert_eq!(now, (want.dhcp_hosts, want.dns_hosts), "{step}: live hosts");
        let again = plan(&conn, model).expect("plan");
        assert_eq!(again.changes(), 0, "{step}: {:#?}", changed(&again));
        println!(
            "{step}: the running k8s network holds {} DHCP reservations, the next plan is empty",
            now.0.len()
        );
    }
    assert_eq!(live_hosts(), before);
}
