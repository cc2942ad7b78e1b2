//! The host's own part, live: the example's `--apply-host` run inside a
//! network namespace this test creates (`ip netns exec`), never in the
//! machine's own namespace; and the generated Ansible playbook accepted by
//! `ansible-playbook --syntax-check`. Needs root, nft, ip, wg, wireguard-go.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

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
        help.is_ok_and(|h| String::from_utf8_lossy(&h.stdout).contains("--apply-host")),
        "{} is missing: cargo test builds examples unless a --test filter is given",
        bin.display()
    );
    bin
}

/// Kills every process left in `ns` (wireguard-go daemonizes itself there).
fn kill_ns_processes(ns: &str) {
    let out = Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .expect("ip netns pids");
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        let _ = Command::new("kill").arg(pid).status();
    }
}

#[test]
fn apply_host_in_a_namespace_replaces_only_our_tables_and_brings_up_wireguard() {
    for t in ["nft", "ip", "wg", "wireguard-go"] {
        require(t);
    }
    let ns = Netns::new(&unique("fmchost"));
    // A table that is not ours: it must survive both applies untouched.
    ns.exec(&["nft", "add table inet foreign"]);
    ns.exec(&[
        "nft",
        "add chain inet foreign keep { type filter hook input priority 10; policy accept; }",
    ]);
    ns.exec(&[
        "nft",
        "add rule inet foreign keep tcp dport 9999 counter accept",
    ]);
    let tmp = TempDir::new("apply-host");
    let out = tmp.path().join("out");
    // The reference cloud on test addresses (198.18.0.0/15), as a model file.
    let model = tmp.path().join("cloud.toml");
    let test_cloud = flatcar_microcloud::reference::cluster_with(
        &flatcar_microcloud::reference::AddressPlan::test(),
    )
    .expect("valid");
    flatcar_microcloud::model::save(&test_cloud, &model).expect("saves");
    let run = |label: &str| -> String {
        let o = Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(example())
            .arg("--model")
            .arg(&model)
            .args(["--out"])
            .arg(&out)
            .args(["--apply-host", "--wg-backend", "userspace"])
            .output()
            .expect("example runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        println!("--- {label}:\n{text}");
        assert!(o.status.success(), "{label} failed:\n{text}");
        text
    };
    let first = run("first --apply-host");
    assert!(first.contains("host plan:"), "{first}");
    assert!(
        first.contains("nftables: create table inet microcloud"),
        "{first}"
    );
    assert!(
        first.contains("nftables: keep table inet foreign (not ours)"),
        "{first}"
    );
    // The plan is printed before anything is applied.
    let plan_at = first.find("host plan:").expect("plan");
    let applied_at = first.find("nftables: applied").expect("applied");
    assert!(plan_at < applied_at, "{first}");
    let tables = String::from_utf8_lossy(&ns.exec(&["nft", "list", "tables"]).stdout).to_string();
    assert!(tables.contains("table inet microcloud"), "{tables}");
    assert!(tables.contains("table inet foreign"), "{tables}");
    let wg = String::from_utf8_lossy(&ns.exec(&["wg", "show", "wg0"]).stdout).to_string();
    assert!(wg.contains("listening port: 51820"), "{wg}");
    assert_eq!(wg.matches("peer: ").count(), 2, "{wg}");
    let addr =
        String::from_utf8_lossy(&ns.exec(&["ip", "-4", "addr", "show", "wg0"]).stdout).to_string();
    assert!(addr.contains("198.18.9.1/24"), "{addr}");

    // Second run: our tables are replaced (one transaction), not duplicated;
    // the foreign table and its rule are still there.
    kill_ns_processes(&ns.name);
    let _ = ns.try_exec(&["ip", "link", "del", "wg0"]);
    let second = run("second --apply-host");
    assert!(
        second.contains("nftables: replace table inet microcloud"),
        "{second}"
    );
    let ruleset = String::from_utf8_lossy(&ns.exec(&["nft", "list", "ruleset"]).stdout).to_string();
    assert_eq!(
        ruleset.matches("table inet microcloud").count(),
        1,
        "{ruleset}"
    );
    assert!(ruleset.contains("tcp dport 9999 counter"), "{ruleset}");
    kill_ns_processes(&ns.name);
}

#[test]
fn ansible_playbook_syntax_check_accepts_the_host_playbook() {
    let venv = "/opt/flatcar-microcloud-venv/bin/ansible-playbook";
    let tool = if Path::new(venv).exists() {
        venv.to_string()
    } else {
        "ansible-playbook".to_string()
    };
    require(&tool);
    let tmp = TempDir::new("playbook");
    let c = flatcar_microcloud::reference::cluster().expect("valid");
    let mut secrets = flatcar_microcloud::BundleSecrets::from_bundle_dir(&tmp.path().join("x"));
    let b = flatcar_microcloud::Bundle::render(&c, &mut secrets).expect("renders");
    b.write_to(&tmp.path().join("out")).expect("writes");
    let out = Command::new(&tool)
        .args(["--syntax-check", "-i", "localhost,"])
        .arg(tmp.path().join("out/host/playbook.yml"))
        .output()
        .expect("ansible-playbook");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "ansible-playbook --syntax-check: {}",
        String::from_utf8_lossy(&out.stdout).trim()
    );
}

#[test]
fn ssh_keygen_reads_the_generated_admin_key() {
    require("ssh-keygen");
    let tmp = TempDir::new("adminkey");
    let mut secrets = flatcar_microcloud::BundleSecrets::from_bundle_dir(tmp.path());
    let public = flatcar_microcloud::admin_key::load_or_generate(&mut secrets, "admin@microcloud")
        .expect("key");
    let c = flatcar_microcloud::reference::cluster_for(
        &flatcar_microcloud::reference::AddressPlan::test(),
        &[public.as_str()],
    )
    .expect("valid");
    let b = flatcar_microcloud::Bundle::render(&c, &mut secrets).expect("renders");
    let out = tmp.path().join("out");
    b.write_to(&out).expect("writes");
    let key = out
        .join("secrets")
        .join(flatcar_microcloud::admin_key::SECRET_NAME);
    let derived = Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&key)
        .output()
        .expect("ssh-keygen");
    assert!(
        derived.status.success(),
        "{}",
        String::from_utf8_lossy(&derived.stderr)
    );
    let line = String::from_utf8_lossy(&derived.stdout);
    // OpenSSH derives the same public key (and comment) from our private key file.
    assert_eq!(line.trim(), public.as_str());
    for vm in c.vms() {
        let ign = std::fs::read_to_string(out.join(format!("vms/{}/ignition.json", vm.name)))
            .expect("ignition");
        assert!(ign.contains(public.as_str()), "{}", vm.name);
    }
}
