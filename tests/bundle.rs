//! The bundle: every artifact kind, deterministic bytes, atomic writes that
//! leave the previous bundle intact when the writer is killed or crashes
//! between renames, plans with diffs. (Full disks, read-only targets and the
//! real `ansible-inventory`/`dot` are the live target `bundle_live.rs`.)

mod support;

use flatcar_ignition::compose;
use flatcar_microcloud::bundle::ChangeKind;
use flatcar_microcloud::reference::cluster;
use flatcar_microcloud::{Bundle, BundleSecrets};
use flatcar_net::coredns::Serial;
use flatcar_topology::provision::{Contents, Contributions, MemorySecrets, Service};
use flatcar_topology::{Cluster, Error, Role};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use support::TempDir;

fn render(dir: &std::path::Path) -> Bundle {
    Bundle::render(
        &cluster().expect("valid"),
        &mut BundleSecrets::from_bundle_dir(dir),
    )
    .expect("renders")
}

#[test]
fn every_artifact_kind_exists_and_is_deterministic() {
    let tmp = TempDir::new("bundle");
    let out = tmp.path().join("out");
    let b = render(&out);
    let files = b.files();
    let c = cluster().expect("valid");
    for vm in c.vms() {
        assert!(
            files.contains_key(&format!("vms/{}/ignition.json", vm.name)),
            "{}",
            vm.name
        );
    }
    for p in [
        "README.md",
        "cluster.json",
        "inventory/hosts.yml",
        "terraform/main.tf.json",
        "diagram/cloud.dot",
        "diagram/cloud.mmd",
        "host/nftables.nft",
        "host/nftables.json",
    ] {
        assert!(files.contains_key(p), "{p} missing");
    }
    b.write_to(&out).expect("writes");
    let again = render(&out);
    assert_eq!(
        again, b,
        "same model, same bytes (secrets reused from the bundle)"
    );
    assert!(again.plan(&out).expect("plan").is_empty());
    again.write_to(&out).expect("writes");
    for (path, f) in files {
        let on_disk = std::fs::read(out.join(path)).expect("read");
        assert_eq!(on_disk, f.contents, "{path}");
        let mode = std::fs::metadata(out.join(path))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, if f.secret { 0o600 } else { 0o644 }, "{path}");
    }
    // The model in the bundle loads back to the same cluster.
    assert_eq!(Cluster::load(out.join("cluster.json")).expect("loads"), c);
}

struct Big(usize);
impl Service for Big {
    fn name(&self) -> &'static str {
        "big"
    }
    fn contribute(&self, _: &Cluster, out: &mut Contributions<'_>) -> Result<(), Error> {
        out.artifact("big/blob.txt", "x".repeat(self.0), false);
        Ok(())
    }
}

#[test]
fn ignition_configs_are_each_vms_config_by_name() {
    let tmp = TempDir::new("bundle-ign");
    let b = render(&tmp.path().join("out"));
    let configs = b.ignition_configs();
    let c = cluster().expect("valid");
    let names: std::collections::BTreeSet<String> =
        c.vms().iter().map(|v| v.name.to_string()).collect();
    assert_eq!(
        configs
            .keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        names
    );
    for (vm, json) in &configs {
        assert_eq!(
            json,
            &b.files()[&format!("vms/{vm}/ignition.json")].contents,
            "{vm}"
        );
    }
}

#[test]
fn plan_shows_diffs_but_never_secret_contents() {
    let tmp = TempDir::new("plan");
    let out = tmp.path().join("out");
    let b = render(&out);
    b.write_to(&out).expect("writes");
    std::fs::write(out.join("inventory/hosts.yml"), "edited: by hand\n").expect("edit");
    std::fs::write(out.join("stray.txt"), "left over\n").expect("stray");
    let plan = b.plan(&out).expect("plan");
    let changed = plan
        .changes
        .iter()
        .find(|c| c.path == "inventory/hosts.yml")
        .expect("changed");
    assert_eq!(changed.kind, ChangeKind::Changed);
    let diff = changed.diff.as_deref().expect("diff");
    assert!(
        diff.contains("-edited: by hand") && diff.contains("+all:"),
        "{diff}"
    );
    assert!(plan
        .changes
        .iter()
        .any(|c| c.path == "stray.txt" && c.kind == ChangeKind::Removed));
    for (path, f) in b.files().iter().filter(|(_, f)| f.secret) {
        std::fs::write(out.join(path), "tampered\n").expect("tamper");
        let plan = b.plan(&out).expect("plan");
        let c = plan
            .changes
            .iter()
            .find(|c| &c.path == path)
            .expect("secret change listed");
        assert!(c.diff.is_none(), "secret diff shown for {path}");
        let text = format!("{plan}{plan:?}");
        assert!(
            !text.contains(std::str::from_utf8(&f.contents).expect("utf8").trim()),
            "secret leaked in plan"
        );
    }
}

#[test]
fn terraform_export_has_every_vm() {
    let tmp = TempDir::new("tf");
    let b = render(&tmp.path().join("out"));
    let v: serde_json::Value =
        serde_json::from_slice(&b.files()["terraform/main.tf.json"].contents).expect("json");
    let c = cluster().expect("valid");
    let domains = v["resource"]["libvirt_domain"]
        .as_object()
        .expect("domains");
    assert_eq!(domains.len(), c.vms().len());
    assert_eq!(
        v["resource"]["libvirt_domain"]["lb1"]["network_interface"][1]["addresses"][0],
        "10.17.4.11"
    );
    assert_eq!(v["resource"]["libvirt_network"]["k8s"]["mode"], "open");
}

/// Child half of `killed_mid_write_leaves_the_previous_bundle`: writes a
/// huge bundle to `$FMC_CHILD_OUT` (only when that is set).
#[test]
fn child_writer() {
    let Ok(out) = std::env::var("FMC_CHILD_OUT") else {
        return;
    };
    let out = std::path::PathBuf::from(out);
    let c = cluster().expect("valid");
    let huge = Bundle::render_with(
        &c,
        &[&Big(256 << 20)],
        &mut BundleSecrets::from_bundle_dir(&out),
    )
    .expect("renders");
    std::fs::write(out.with_extension("started"), "").expect("marker");
    huge.write_to(&out).expect("writes");
}

#[test]
fn killed_mid_write_leaves_the_previous_bundle() {
    let tmp = TempDir::new("kill");
    let out = tmp.path().join("out");
    let c = cluster().expect("valid");
    let small = Bundle::render_with(&c, &[&Big(10)], &mut BundleSecrets::from_bundle_dir(&out))
        .expect("renders");
    small.write_to(&out).expect("writes");
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", "child_writer", "--nocapture"])
        .env("FMC_CHILD_OUT", &out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    support::wait_until(std::time::Duration::from_secs(60), || {
        out.with_extension("started").exists()
    })
    .expect("child started");
    std::thread::sleep(std::time::Duration::from_millis(30));
    child.kill().expect("kill");
    child.wait().expect("wait");
    let interrupted = std::fs::read_dir(tmp.path())
        .expect("ls")
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with(".out.staging-"));
    assert!(
        interrupted,
        "the writer was not killed mid-write (no staging directory left)"
    );
    assert!(
        small.plan(&out).expect("plan").is_empty(),
        "previous bundle damaged by a killed writer"
    );
    // The next write cleans the interrupted staging directory up.
    small.write_to(&out).expect("writes");
    let stray: Vec<String> = std::fs::read_dir(tmp.path())
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".out."))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn crash_between_renames_is_recovered() {
    let tmp = TempDir::new("swap");
    let out = tmp.path().join("out");
    let b = render(&out);
    b.write_to(&out).expect("writes");
    // Simulate a crash after `out` was moved aside and before the new one arrived.
    std::fs::rename(&out, tmp.path().join(".out.old-99999")).expect("rename");
    b.write_to(&out).expect("writes");
    assert!(b.plan(&out).expect("plan").is_empty());
    assert!(!tmp.path().join(".out.old-99999").exists());
}

#[test]
fn mermaid_names_every_vm() {
    let tmp = TempDir::new("mmd");
    let b = render(&tmp.path().join("out"));
    let mmd = String::from_utf8(b.files()["diagram/cloud.mmd"].contents.clone()).expect("utf8");
    for vm in cluster().expect("valid").vms() {
        assert!(
            mmd.contains(&format!("vm_{}[", vm.name.as_str().replace('-', "_"))),
            "{}",
            vm.name
        );
    }
}

/// A service composed *after* flatcar-net that asks for a DNS record.
struct Registry;
impl Service for Registry {
    fn name(&self) -> &'static str {
        "registry"
    }
    fn contribute(&self, _: &Cluster, out: &mut Contributions<'_>) -> Result<(), Error> {
        out.dns_record("registry", std::net::Ipv4Addr::new(192, 168, 0, 99));
        Ok(())
    }
}

/// The DNS node's zone file and the bundle's `dns/<domain>.zone` are one
/// value, with the records of every service (also those composed after
/// flatcar-net).
#[test]
fn the_dns_node_serves_the_bundles_zone_with_every_services_records() {
    let c = cluster().expect("valid");
    let all = flatcar_microcloud::services::all();
    let mut services: Vec<&dyn Service> = all.iter().map(|s| s.as_ref()).collect();
    services.push(&Registry);
    let zone_path = format!("dns/{}.zone", c.domain());
    let node_path = format!("{}/{}.zone", flatcar_net::coredns::ZONE_DIR, c.domain());
    let composed = compose(&c, &services, &mut MemorySecrets::default()).expect("composes");
    let dns_vm = c.with_role(Role::Dns).next().expect("a DNS node");
    let on_node = match &composed.nodes[dns_vm.name.as_str()].files[&node_path].contents {
        Contents::Inline(b) => String::from_utf8(b.clone()).expect("utf8"),
        other => panic!("{other:?}"),
    };
    assert!(
        on_node
            .lines()
            .any(|l| l.starts_with("registry ") && l.ends_with(" 192.168.0.99")),
        "the DNS node's zone lacks the registry record:\n{on_node}"
    );
    assert_eq!(
        composed.artifacts[&zone_path].contents,
        on_node.as_bytes(),
        "artifact and node file differ"
    );
    let b = Bundle::render_with(&c, &services, &mut BundleSecrets::default()).expect("renders");
    assert_eq!(b.files()[&zone_path].contents, on_node.as_bytes());
}

/// A record asked for in `finish` (after the zone's records were collected)
/// is rejected, not silently missing from the zone.
#[test]
fn a_record_asked_for_too_late_is_an_error() {
    struct Late;
    impl Service for Late {
        fn name(&self) -> &'static str {
            "late"
        }
        fn contribute(&self, _: &Cluster, _: &mut Contributions<'_>) -> Result<(), Error> {
            Ok(())
        }
        fn finish(&self, _: &Cluster, out: &mut Contributions<'_>) -> Result<(), Error> {
            out.dns_record("late", std::net::Ipv4Addr::new(192, 168, 0, 98));
            Ok(())
        }
    }
    let c = cluster().expect("valid");
    let err = compose(&c, &[&Late], &mut MemorySecrets::default()).expect_err("too late");
    assert!(err.to_string().contains("late"), "{err}");
}

fn serial_of(b: &Bundle, zone: &str) -> Serial {
    let text =
        String::from_utf8(b.files()[&format!("dns/{zone}.zone")].contents.clone()).expect("utf8");
    Serial::of_zone(&text).expect("a SOA serial")
}

/// The SOA serial of each zone grows by one when its content changes and
/// stays (byte-identical files) when it does not, continued from the
/// previous bundle on disk.
#[test]
fn zone_serials_grow_on_change_and_stay_otherwise() {
    let tmp = TempDir::new("serial");
    let out = tmp.path().join("out");
    let c = cluster().expect("valid");
    let (fwd, k8s, lan) = (
        c.domain().to_string(),
        "4.17.10.in-addr.arpa",
        "0.168.192.in-addr.arpa",
    );
    let first = render(&out);
    for z in [fwd.as_str(), k8s, lan] {
        assert_eq!(serial_of(&first, z), Serial::FIRST, "{z}");
    }
    first.write_to(&out).expect("writes");
    // Unchanged model: same serials, same bytes, nothing to write.
    let again = render(&out);
    assert_eq!(again, first);
    assert!(again.plan(&out).expect("plan").is_empty());

    // worker3 moves from .26 to .28 on k8s: the forward zone and the k8s
    // reverse zone change (serial + 1); the LAN reverse zone does not.
    let mut spec = c.clone().into_spec();
    let w3 = spec
        .vms
        .iter_mut()
        .find(|v| v.name.as_str() == "worker3")
        .expect("worker3");
    w3.nics[0].address = std::net::Ipv4Addr::new(10, 17, 4, 28);
    let moved = Cluster::try_from(spec).expect("still valid");
    let render_moved =
        || Bundle::render(&moved, &mut BundleSecrets::from_bundle_dir(&out)).expect("renders");
    let second = render_moved();
    assert_eq!(serial_of(&second, &fwd), Serial::FIRST.next());
    assert_eq!(serial_of(&second, k8s), Serial::FIRST.next());
    assert_eq!(serial_of(&second, lan), Serial::FIRST);
    let lan_path = format!("dns/{lan}.zone");
    assert_eq!(second.files()[&lan_path], first.files()[&lan_path]);
    // The DNS node's Ignition carries the new zone too.
    assert_ne!(
        second.files()["vms/infra/ignition.json"],
        first.files()["vms/infra/ignition.json"]
    );
    second.write_to(&out).expect("writes");
    // Rendering the moved cloud again: serials stay at 2, bytes identical.
    let third = render_moved();
    assert_eq!(third, second);
    assert!(third.plan(&out).expect("plan").is_empty());
    // Back to the original cloud: a change again, so 3 — never back to 1.
    let back = render(&out);
    assert_eq!(serial_of(&back, &fwd), Serial::new(3));
    assert_eq!(serial_of(&back, lan), Serial::FIRST);
}
