//! The bundle: every artifact kind, deterministic bytes, atomic writes that
//! leave the previous bundle intact on failure, plans with diffs, and the
//! real tools accepting the inventory and the diagram.

mod support;

use flatcar_microcloud::bundle::ChangeKind;
use flatcar_microcloud::reference::cluster;
use flatcar_microcloud::{Bundle, BundleSecrets};
use flatcar_net::coredns::Serial;
use flatcar_topology::provision::{compose, Contents, Contributions, MemorySecrets, Service};
use flatcar_topology::{Cluster, Error, Role};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use support::{require, TempDir};

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

/// Unmounts on drop (also when the test fails).
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A tmpfs of `size` mounted in a fresh temp dir: (dir, unmount guard, mount point).
fn tmpfs(tag: &str, size: &str) -> (TempDir, Unmount, std::path::PathBuf) {
    require("mount");
    let tmp = TempDir::new(tag);
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir_all(&mnt).expect("mkdir");
    support::run(&[
        "mount",
        "-t",
        "tmpfs",
        "-o",
        &format!("size={size}"),
        "tmpfs",
        mnt.to_str().expect("utf8"),
    ]);
    let guard = Unmount(mnt.clone());
    (tmp, guard, mnt)
}

#[test]
fn disk_full_leaves_the_previous_bundle_intact() {
    let (_tmp, _guard, mnt) = tmpfs("full", "512k");
    let out = mnt.join("out");
    let c = cluster().expect("valid");
    let small = Bundle::render_with(&c, &[&Big(10)], &mut BundleSecrets::from_bundle_dir(&out))
        .expect("renders");
    small.write_to(&out).expect("fits");
    let huge = Bundle::render_with(
        &c,
        &[&Big(1 << 20)],
        &mut BundleSecrets::from_bundle_dir(&out),
    )
    .expect("renders");
    let err = huge.write_to(&out).expect_err("disk full");
    assert!(err.to_string().contains("No space left"), "{err}");
    // Previous bundle byte-identical, no staging directory left behind.
    assert!(
        small.plan(&out).expect("plan").is_empty(),
        "previous bundle changed"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&mnt)
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("out")]);
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
fn ansible_inventory_accepts_the_inventory() {
    let venv = "/opt/flatcar-microcloud-venv/bin/ansible-inventory";
    let tool = if std::path::Path::new(venv).exists() {
        venv.to_string()
    } else {
        "ansible-inventory".to_string()
    };
    require(&tool);
    let tmp = TempDir::new("inv");
    let b = render(&tmp.path().join("out"));
    let path = tmp.path().join("hosts.yml");
    std::fs::write(&path, &b.files()["inventory/hosts.yml"].contents).expect("write");
    let out = Command::new(&tool)
        .args(["--list", "-i"])
        .arg(&path)
        .output()
        .expect("ansible-inventory");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("WARNING"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let hosts = |g: &str| -> Vec<String> {
        v[g]["hosts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|h| h.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(hosts("master"), ["master1", "master2", "master3"]);
    assert_eq!(hosts("load_balancer"), ["lb1", "lb2"]);
    assert_eq!(
        v["_meta"]["hostvars"]["master1"]["ansible_host"],
        "10.17.4.21"
    );
    assert_eq!(
        v["_meta"]["hostvars"]["lb1"]["ansible_host"],
        "192.168.0.11"
    );
    assert!(v["_meta"]["hostvars"]["master1"]["ansible_ssh_common_args"]
        .as_str()
        .expect("proxy")
        .contains("192.168.0.40"));
}

#[test]
fn graphviz_renders_the_diagram_and_mermaid_names_everything() {
    require("dot");
    let tmp = TempDir::new("dot");
    let b = render(&tmp.path().join("out"));
    let dot = tmp.path().join("cloud.dot");
    std::fs::write(&dot, &b.files()["diagram/cloud.dot"].contents).expect("write");
    for fmt in ["svg", "png"] {
        let out = Command::new("dot")
            .arg(format!("-T{fmt}"))
            .arg(&dot)
            .output()
            .expect("dot");
        assert!(
            out.status.success() && out.stdout.len() > 1000,
            "{fmt}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mmd = String::from_utf8(b.files()["diagram/cloud.mmd"].contents.clone()).expect("utf8");
    for vm in cluster().expect("valid").vms() {
        assert!(
            mmd.contains(&format!("vm_{}[", vm.name.as_str().replace('-', "_"))),
            "{}",
            vm.name
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
fn read_only_target_fails_and_changes_nothing() {
    let (_tmp, _guard, mnt) = tmpfs("ro", "8m");
    let out = mnt.join("out");
    let b = render(&out);
    b.write_to(&out).expect("writes");
    support::run(&["mount", "-o", "remount,ro", mnt.to_str().expect("utf8")]);
    let changed = Bundle::render_with(
        &cluster().expect("valid"),
        &[&Big(5)],
        &mut BundleSecrets::from_bundle_dir(&out),
    )
    .expect("renders");
    let err = changed.write_to(&out).expect_err("read-only");
    assert!(err.to_string().contains("Read-only file system"), "{err}");
    assert!(
        b.plan(&out).expect("plan").is_empty(),
        "previous bundle changed"
    );
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
