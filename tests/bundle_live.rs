//! Live (root, validators; feature `live`): a full disk and a read-only
//! target leave the previous bundle intact (tmpfs mounts), and the real
//! `ansible-inventory` and `dot` accept the inventory and the diagram.

mod support;

use flatcar_microcloud::reference::cluster;
use flatcar_microcloud::{Bundle, BundleSecrets};
use flatcar_topology::provision::{Contributions, Service};
use flatcar_topology::{Cluster, Error};
use std::process::Command;
use support::{require, TempDir};

fn render(dir: &std::path::Path) -> Bundle {
    Bundle::render(
        &cluster().expect("valid"),
        &mut BundleSecrets::from_bundle_dir(dir),
    )
    .expect("renders")
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
