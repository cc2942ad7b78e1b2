//! The example against a real libvirtd (`qemu:///system`, started here when
//! no daemon answers; the test script installs `libvirt-daemon-system`):
//! `full_cluster --model cloud.toml --apply qemu:///system`, run inside a
//! network namespace this test creates (so the host part, the nftables
//! ruleset and the WireGuard endpoint, lands only there; the libvirt socket
//! is reached by path), deploys the reference cloud (test address plan, its
//! own cluster name and a pool in a temp dir): the bundle, every object, and
//! each VM's Ignition config at its fw_cfg path (0600, byte for byte the
//! bundle's). `--apply --dry-run` with worker4 added prints lb1/lb2 as live
//! changes and worker4 as created and changes nothing (libvirt objects,
//! Ignition files, bundle, ruleset compared before and after); applying it
//! with `--no-rollout` defines worker4 and keeps the live changes pending (`running.json`), so
//! the next plan lists them again; back to the unchanged model, worker4
//! goes, and another apply changes nothing; `--destroy` leaves no owned object and every
//! foreign one as it was. Networks and domains are only defined, never
//! started (a started NAT network would add addresses to this machine).
#![cfg(feature = "libvirt")]

mod support;

use flatcar_libvirt::apply::{destroy, destroy_plan, inventory, Connect};
use flatcar_microcloud::reference::{cluster_with, AddressPlan};
use flatcar_topology::{Cluster, Name, PoolPath};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use support::{unique, with_worker4, Netns, TempDir};

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

/// Runs the example inside `ns`; (success, stdout + stderr).
fn run_example(ns: &Netns, args: &[&str]) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(example())
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

/// Kills every process left in `ns` (wireguard-go daemonizes itself there)
/// and removes the WireGuard interface, so the host part can run again.
fn reset_wireguard(ns: &Netns) {
    let out = Command::new("ip")
        .args(["netns", "pids", &ns.name])
        .output()
        .expect("ip netns pids");
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        let _ = Command::new("kill").arg(pid).status();
    }
    let _ = ns.try_exec(&["ip", "link", "del", "wg0"]);
}

/// Every file under `dir` (relative path → mode and bytes; for volumes
/// other than Ignition configs, which may be large sparse files, size and
/// modification time instead of bytes).
fn tree(dir: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let meta = e.metadata().expect("metadata");
                let mode = meta.permissions().mode();
                let rel = p.strip_prefix(dir).expect("under dir");
                let volume = matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("qcow2" | "raw" | "img")
                ) || p.extension().is_none();
                let content = if volume {
                    let mtime = meta.modified().expect("mtime");
                    format!("{} bytes, modified {mtime:?}", meta.len()).into_bytes()
                } else {
                    std::fs::read(&p).expect("read")
                };
                out.insert(rel.to_string_lossy().into_owned(), (mode & 0o7777, content));
            }
        }
    }
    out
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

/// Removes what the test defined, also when it fails (the namespace,
/// with wireguard-go in it, goes with its own guard).
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
fn one_apply_deploys_dry_run_changes_nothing_and_destroy_cleans_up_on_a_real_daemon() {
    for t in ["nft", "ip", "wg", "wireguard-go"] {
        support::require(t);
    }
    let conn = support::system_daemon();
    let tmp = TempDir::new("lvlive");
    let pool_dir = tmp.path().join("pool");
    let out_dir = tmp.path().join("out");
    let out = out_dir.to_str().expect("utf8");
    let c = cloud(&pool_dir);
    let model = tmp.path().join("cloud.toml");
    flatcar_microcloud::model::save(&c, &model).expect("model saved");
    let model = model.to_str().expect("utf8");
    let grown = tmp.path().join("cloud-worker4.toml");
    flatcar_microcloud::model::save(&with_worker4(&c), &grown).expect("model saved");
    let grown = grown.to_str().expect("utf8");
    // Leftovers of an interrupted earlier run (this test's objects only).
    remove_pool(&conn);
    destroy(&conn, &c).expect("destroy leftovers");
    if let Ok(n) = conn.lookup_network_by_name("fmc-foreign-net") {
        n.undefine().expect("old foreign network");
    }
    let _guard = Cleanup(&conn, c.clone());
    let ns = Netns::new(&unique("fmcdeploy"));
    conn.define_network_xml(FOREIGN_NET)
        .expect("foreign network");
    let foreign_xml = conn
        .lookup_network_by_name("fmc-foreign-net")
        .and_then(|n| n.xml_desc(0))
        .expect("xml");
    let before = inventory(&conn).expect("inventory");
    let apply = |label: &str, m: &str, extra: &[&str]| -> String {
        let mut args = vec!["--model", m, "--out", out, "--apply", URI];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--wg-backend", "userspace"]);
        let t = Instant::now();
        let (ok, text) = run_example(&ns, &args);
        println!("--- {label} ({:.1?}):\n{text}", t.elapsed());
        assert!(ok, "{label} failed:\n{text}");
        text
    };

    // One apply deploys: bundle, objects, Ignition configs, host part.
    let first = apply("first --apply", model, &[]);
    let creates = first.lines().filter(|l| l.starts_with("create")).count();
    let objects = 1 + c.networks().len() + 2 * c.vms().len();
    assert!(
        creates > objects,
        "{creates} creates for {objects}+ objects:\n{first}"
    );
    assert!(
        first.contains(&format!("Ignition: {} config(s) uploaded", c.vms().len())),
        "{first}"
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
        // The fw_cfg path holds the bundle's Ignition config, 0600.
        let path = flatcar_libvirt::ignition_path(&c, vm);
        let domain_xml = conn
            .lookup_domain_by_name(vm.name.as_str())
            .and_then(|d| d.xml_desc(0))
            .expect("xml");
        assert!(domain_xml.contains(&path), "{domain_xml}");
        let placed = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let bundled = std::fs::read(out_dir.join(format!("vms/{}/ignition.json", vm.name)))
            .expect("bundle ignition");
        assert_eq!(placed, bundled, "{path}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{path}");
    }
    for n in c.networks() {
        let net = conn
            .lookup_network_by_name(n.name.as_str())
            .expect("network");
        assert!(!net.is_active().expect("state"), "{} must not run", n.name);
    }
    // The host part ran in the namespace: our table there.
    let tables = String::from_utf8_lossy(&ns.exec(&["nft", "list", "tables"]).stdout).to_string();
    assert!(tables.contains("table inet microcloud"), "{tables}");
    assert!(first.contains("nftables: applied"), "{first}");
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

    // A dry run with worker4 added: the plan, and nothing changes anywhere.
    let inv = inventory(&conn).expect("inventory");
    let pool_files = tree(&pool_dir);
    let bundle = tree(&out_dir);
    let ruleset = ns.exec(&["nft", "list", "ruleset"]).stdout;
    let dry = apply("--apply --dry-run with worker4", grown, &["--dry-run"]);
    for line in [
        "lb1        live",
        "lb2        live",
        "systemctl reload haproxy.service",
        "storage1   live",
        "worker4    create",
        "create    domain worker4",
        "create    volume worker4.ign",
        "dry run: nothing written, nothing applied",
    ] {
        assert!(dry.contains(line), "{line:?} missing:\n{dry}");
    }
    assert!(!dry.contains("lb1        none"), "{dry}");
    assert_eq!(inventory(&conn).expect("inventory"), inv, "libvirt objects");
    assert!(conn.lookup_domain_by_name("worker4").is_err());
    assert_eq!(tree(&pool_dir), pool_files, "pool files (Ignition configs)");
    assert_eq!(tree(&out_dir), bundle, "bundle");
    assert_eq!(
        ns.exec(&["nft", "list", "ruleset"]).stdout,
        ruleset,
        "ruleset"
    );

    // Applying worker4 with --no-rollout defines it and places the new
    // configs, but leaves the live pushes (no VM runs here; tests/rollout_live.rs
    // carries a rollout out): the bundle keeps recording the model the
    // running VMs have, and the next plan lists them again.
    reset_wireguard(&ns);
    let grow = apply(
        "--apply --no-rollout with worker4",
        grown,
        &["--no-rollout"],
    );
    assert!(
        grow.contains(
            "pending on running VMs (--no-rollout; see the rolling plan): infra, lb1, lb2"
        ),
        "{grow}"
    );
    assert!(conn.lookup_domain_by_name("worker4").is_ok());
    let running =
        flatcar_microcloud::model::load(out_dir.join("running.json")).expect("running model");
    assert_eq!(
        running, c,
        "running.json still records the model the VMs run"
    );
    let again = apply(
        "--apply --dry-run with worker4 again",
        grown,
        &["--dry-run"],
    );
    assert!(again.contains("lb1        live"), "{again}");
    // Back to the unchanged model: worker4 and its volumes go.
    reset_wireguard(&ns);
    let back = apply(
        "--apply --no-rollout without worker4",
        model,
        &["--no-rollout"],
    );
    assert!(back.contains("delete    domain worker4"), "{back}");
    assert!(conn.lookup_domain_by_name("worker4").is_err());
    let pool_files = tree(&pool_dir);

    // Another apply of the unchanged model: nothing changes.
    reset_wireguard(&ns);
    let second = apply("second --apply", model, &[]);
    assert!(
        second.contains(&format!("libvirt apply plan at {URI}: 0 change(s)"))
            && second.contains("Ignition: 0 config(s) uploaded")
            && second.contains("running cloud: nothing changes"),
        "{second}"
    );
    assert_eq!(
        tree(&pool_dir),
        pool_files,
        "pool files after a second apply"
    );
    reset_wireguard(&ns);

    // Destroy: nothing owned left (Ignition volumes included), every
    // foreign object as it was.
    let (ok, gone) = run_example(&ns, &["--model", model, "--out", out, "--destroy", URI]);
    println!("{gone}");
    assert!(ok, "{gone}");
    let after = inventory(&conn).expect("inventory");
    assert_eq!(destroy_plan(&conn, &c).expect("plan").steps, vec![]);
    for vm in c.vms() {
        assert!(!after.domains.contains(&vm.name.to_string()), "{after:?}");
        let ign = flatcar_libvirt::ignition_path(&c, vm);
        assert!(!Path::new(&ign).exists(), "{ign} left behind");
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
