//! One plan across three KVM hosts, each a libvirt test-driver connection
//! of its own (`test:///<dir>/kvmN.xml`): plan and apply in parallel,
//! domains only on the host the model places them on, a moved VM shown as a
//! recreate with its reason, a failure on one host reported per host, and
//! an Ignition file uploaded into a host's pool through libvirt.
//!
//! Stand-in: libvirt's test driver stands in for three remote qemu hosts
//! (it runs the real libvirt API and XML parsing, but no QEMU). A
//! `test:///file` connection keeps its state only while it is open (a
//! second open parses the file afresh; checked below), so every step here
//! uses the same connection per host.

mod support;

use flatcar_libvirt::apply::{connect, inventory, Action, Connect, Kind};
use flatcar_libvirt::hosts::{apply_hosts, ignition_volume, plan_hosts, upload_ignition, PerHost};
use flatcar_microcloud::multi_host::three_hosts_with;
use flatcar_microcloud::reference::AddressPlan;
use flatcar_topology::{Cluster, LibvirtUri, Name};
use std::collections::BTreeSet;

struct Lab {
    dir: std::path::PathBuf,
    uris: Vec<String>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn lab() -> Lab {
    let dir = std::env::temp_dir().join(format!("fmc-hosts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("lab dir");
    let uris = (1..=3)
        .map(|i| {
            let path = dir.join(format!("kvm{i}.xml"));
            std::fs::write(&path, "<node>\n</node>\n").expect("host file");
            format!("test://{}", path.display())
        })
        .collect();
    Lab { dir, uris }
}

fn cloud(lab: &Lab) -> Cluster {
    let uri = |i: usize| Some(LibvirtUri::new(lab.uris[i].clone()).expect("uri"));
    three_hosts_with(&AddressPlan::test(), [uri(0), uri(1), uri(2)]).expect("valid")
}

fn connections(cluster: &Cluster) -> PerHost<Connect> {
    cluster
        .kvm_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let uri = h.libvirt_uri(i == 0);
            (
                h.name.to_string(),
                connect(uri.as_str()).expect("test driver"),
            )
        })
        .collect()
}

fn domains(conn: &Connect) -> BTreeSet<String> {
    inventory(conn)
        .expect("inventory")
        .domains
        .into_iter()
        .collect()
}

fn placed(cluster: &Cluster, host: &str) -> BTreeSet<String> {
    cluster
        .vms()
        .iter()
        .filter(|v| cluster.host_of(v).name.as_str() == host)
        .map(|v| v.name.to_string())
        .collect()
}

#[test]
fn one_plan_over_three_hosts() {
    let lab = lab();
    let cluster = cloud(&lab);
    let conns = connections(&cluster);
    println!("stand-in: libvirt test driver, one test:///file connection per host");

    let t = std::time::Instant::now();
    let plan = plan_hosts(&cluster, &conns);
    println!("planned 3 hosts in parallel in {:?}:\n{plan}", t.elapsed());
    assert!(plan.moves.is_empty());
    for (host, p) in &plan.hosts {
        let p = p.as_ref().expect("planned");
        let doms: BTreeSet<String> = p
            .steps
            .iter()
            .filter(|s| s.kind == Kind::Domain)
            .map(|s| s.name.clone())
            .collect();
        assert_eq!(doms, placed(&cluster, host), "{host}");
        assert!(p.steps.iter().any(|s| s.kind == Kind::Pool));
        assert_eq!(
            p.steps.iter().filter(|s| s.kind == Kind::Network).count(),
            3
        );
    }

    let report = apply_hosts(&conns, &plan);
    println!("{report}");
    assert!(report.ok(), "{report}");
    for (host, conn) in &conns {
        assert_eq!(domains(conn), placed(&cluster, host), "{host}");
    }
    let again = plan_hosts(&cluster, &conns);
    assert_eq!(again.changes(), 0, "{again}");

    // The test driver's state lives in the connection: a fresh open of the
    // same file sees none of it.
    let fresh = connect(&lab.uris[0]).expect("reopen");
    assert!(
        domains(&fresh).is_empty(),
        "state shared between connections?"
    );

    // The test driver has no virStorageVolUpload: the upload is checked
    // against the real qemu:///system below; here it must say so, typed.
    let vm = cluster
        .vms()
        .iter()
        .find(|v| cluster.host_of(v).name.as_str() == "kvm2")
        .expect("a VM on kvm2");
    let err = upload_ignition(&conns["kvm2"], &cluster, vm, b"{}").expect_err("no upload");
    assert!(
        format!("{err:?}").contains("virStorageVolUpload"),
        "{err:?}"
    );

    // Move one worker to another host: recreate with its reason.
    let mover = "worker1";
    let from = cluster
        .host_of(cluster.vm(mover).expect("vm"))
        .name
        .to_string();
    let to = ["kvm1", "kvm2", "kvm3"]
        .into_iter()
        .find(|h| *h != from)
        .expect("another host");
    let mut spec = cluster.clone().into_spec();
    spec.placement.insert(
        Name::new(mover).expect("name"),
        Name::new(to).expect("name"),
    );
    let moved = Cluster::try_from(spec).expect("still valid");
    let plan = plan_hosts(&moved, &conns);
    println!("after moving {mover}:\n{plan}");
    assert_eq!(
        plan.moves,
        vec![(mover.to_string(), from.clone(), to.to_string())]
    );
    let old = plan.hosts[&from].as_ref().expect("planned");
    let del = old
        .steps
        .iter()
        .find(|s| s.kind == Kind::Domain && s.name == mover)
        .expect("delete step");
    assert_eq!(del.action, Action::Delete);
    assert!(del.reason().contains(&format!("moved to {to}")), "{del}");
    let new = plan.hosts[to].as_ref().expect("planned");
    let cre = new
        .steps
        .iter()
        .find(|s| s.kind == Kind::Domain && s.name == mover)
        .expect("create step");
    assert_eq!(cre.action, Action::Create);
    assert!(
        cre.reason().contains(&format!("moved from {from}")),
        "{cre}"
    );
    let report = apply_hosts(&conns, &plan);
    assert!(report.ok(), "{report}");
    assert!(!domains(&conns[&from]).contains(mover));
    assert!(domains(&conns[to]).contains(mover));

    // A failure on one host: a foreign domain with a name the model wants
    // on kvm3 makes kvm3 refuse; kvm1 and kvm2 still apply, and the report
    // says which host did what.
    let extra = moved.vms().iter().find(|v| v.name.as_str() == "master1");
    let target = extra
        .map(|v| moved.host_of(v).name.to_string())
        .expect("m1");
    let conn = &conns[&target];
    if let Ok(d) = conn.lookup_domain_by_name("master1") {
        d.undefine().expect("undefine");
    }
    let foreign = "<domain type='test'><name>master1</name><memory unit='MiB'>64</memory>\
                   <vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>";
    conn.define_domain_xml(foreign).expect("foreign domain");
    // Another host also has work to do: remove one of its domains behind
    // the planner's back.
    let busy = ["kvm1", "kvm2", "kvm3"]
        .into_iter()
        .find(|h| *h != target)
        .expect("host");
    let victim = placed(&moved, busy).into_iter().next().expect("a VM");
    conns[busy]
        .lookup_domain_by_name(&victim)
        .expect("domain")
        .undefine()
        .expect("undefine");
    let plan = plan_hosts(&moved, &conns);
    let report = apply_hosts(&conns, &plan);
    println!("with a foreign master1 on {target}:\n{report}");
    assert!(!report.ok());
    assert!(report.hosts[&target].is_err());
    assert!(report.hosts[busy].is_ok());
    assert!(
        domains(&conns[busy]).contains(&victim),
        "{busy} was repaired"
    );
    let text = report.to_string();
    assert!(text.contains(&format!("{target}: FAILED")), "{text}");
}

/// Ignition through libvirt itself, on the real daemon (`qemu:///system`,
/// root): a dir pool of this test's own under /tmp, `<vm>.ign` created as a
/// volume and filled with `virStorageVolUpload`; the file at the path the
/// domain's fw_cfg names holds exactly the bytes sent. Pool removed after.
#[test]
fn ignition_upload_through_libvirt() {
    let conn = support::system_daemon();
    let name = format!("fmc-upload-{}", std::process::id());
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir).expect("pool dir");
    let mut spec = three_hosts_with(&AddressPlan::test(), [None, None, None])
        .expect("valid")
        .into_spec();
    for h in std::iter::once(&mut spec.host).chain(spec.extra_hosts.iter_mut()) {
        h.pool.name = Name::new(name.clone()).expect("name");
        h.pool.path = flatcar_topology::PoolPath::new(dir.display().to_string()).expect("path");
    }
    let cluster = Cluster::try_from(spec).expect("valid");
    let pool_xml = format!(
        "<pool type='dir'><name>{name}</name><target><path>{}</path></target></pool>",
        dir.display()
    );
    let pool = conn
        .create_storage_pool_xml(&pool_xml, 0)
        .expect("transient pool");
    let vm = cluster.vm("master1").expect("vm");
    let ign = br#"{"ignition":{"version":"3.4.0"},"storage":{}}"#;
    let result = upload_ignition(&conn, &cluster, vm, ign);
    let path = flatcar_libvirt::ignition_path(&cluster, vm);
    let read = std::fs::read(&path);
    let _ = pool.destroy();
    let _ = std::fs::remove_dir_all(&dir);
    result.expect("upload");
    assert_eq!(
        read.expect("ignition file at the fw_cfg path"),
        ign.to_vec()
    );
    println!(
        "uploaded {} ({} bytes) to {path} with virStorageVolUpload",
        ignition_volume(vm),
        ign.len()
    );
}

/// How many first-ever validating defines the child below races.
const RACERS: usize = 12;

/// The child of [`first_validating_defines_race_in_fresh_processes`]: in a
/// fresh process (libxml2's schema datatypes not yet set up), `RACERS`
/// threads, each with a test-driver connection of its own, plan the
/// reference cloud's domains, wait at one barrier, then apply: their first
/// validating domain defines start together. Run alone it proves nothing, so it only
/// runs when asked for.
#[test]
#[ignore = "run by first_validating_defines_race_in_fresh_processes, one fresh process each time"]
fn child_first_validating_defines_at_once() {
    let lab = lab();
    let cluster = cloud(&lab);
    let barrier = std::sync::Barrier::new(RACERS);
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..RACERS)
            .map(|_| {
                let (lab, cluster, barrier) = (&lab, &cluster, &barrier);
                s.spawn(move || {
                    let conn = connect(&lab.uris[0]).expect("test driver");
                    let mut plan = flatcar_libvirt::apply::plan(&conn, cluster).expect("plan");
                    // Domains only (a define does not look for its networks
                    // or volumes), so the first validation follows the
                    // barrier at once.
                    plan.steps.retain(|s| s.kind == Kind::Domain);
                    assert!(plan.steps.len() >= 10, "{plan}");
                    barrier.wait();
                    flatcar_libvirt::apply::apply(&conn, &plan).map(|_| ())
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().expect("racer").err())
            .map(|e| e.to_string())
            .collect()
    });
    assert!(failures.is_empty(), "{failures:#?}");
}

/// libxml2 (2.9) sets up its XML Schema datatypes lazily and without a
/// lock, at the first RelaxNG validation in a process; libvirt's in-process
/// drivers validate with it. CI once saw all three hosts of
/// `one_plan_over_three_hosts` fail their first domain define with "Error
/// type 'integer' is not exported by type library". `apply` holds one lock
/// around validating defines; this runs the racing child in 15 fresh
/// processes, each with its first validations started at once. The race is
/// rare: without the lock, this machine showed it in none of 15 such runs
/// nor in 126 runs of `one_plan_over_three_hosts`, so a pass here is a
/// guard, not a proof; CI's one hit and libxml2's code are the evidence.
#[test]
fn first_validating_defines_race_in_fresh_processes() {
    let exe = std::env::current_exe().expect("test binary");
    const RUNS: usize = 15;
    for run in 1..=RUNS {
        let out = std::process::Command::new(&exe)
            .args([
                "--exact",
                "child_first_validating_defines_at_once",
                "--ignored",
                "--nocapture",
            ])
            .output()
            .expect("child");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "run {run} of {RUNS}: {text}"
        );
    }
    println!("{RUNS} fresh processes, {RACERS} racing first validating defines each: all applied");
}
