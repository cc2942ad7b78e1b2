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

/// Several KVM hosts: each host's part is applied on its own machine (here
/// a namespace each): the host whose libvirt URI is local is found by
/// itself, another is named with `--host`; each gets its own ruleset and
/// networkd files, forwarding on, and the WireGuard endpoint stays on the
/// first host (neither of these). The playbook for every host passes
/// `ansible-playbook --syntax-check` with the generated inventory.
#[test]
fn apply_host_with_several_hosts_applies_each_hosts_own_part() {
    require("nft");
    let plan = flatcar_microcloud::reference::AddressPlan::test();
    let ssh = flatcar_topology::LibvirtUri::new("qemu+ssh://root@198.18.0.40/system").expect("uri");
    let local = flatcar_topology::LibvirtUri::new("qemu:///system").expect("uri");
    // kvm2 is this machine by its URI; kvm3 is named with --host.
    let c = flatcar_microcloud::multi_host::three_hosts_with(&plan, [Some(ssh), Some(local), None])
        .expect("valid");
    let tmp = TempDir::new("apply-hosts");
    let model = tmp.path().join("cloud.json");
    flatcar_microcloud::model::save(&c, &model).expect("saves");
    let out = tmp.path().join("out");
    let bundle = flatcar_microcloud::Bundle::render(
        &c,
        &mut flatcar_microcloud::BundleSecrets::from_bundle_dir(&out),
    )
    .expect("renders");
    let run = |ns: &Netns, extra: &[&str], dir: &Path| -> String {
        let o = Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(example())
            .arg("--model")
            .arg(&model)
            .arg("--out")
            .arg(&out)
            .arg("--apply-host")
            .arg("--networkd-dir")
            .arg(dir)
            .args(extra)
            .output()
            .expect("example runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "{extra:?} failed:\n{text}");
        text
    };
    for (name, extra) in [("kvm2", &[][..]), ("kvm3", &["--host", "kvm3"][..])] {
        let ns = Netns::new(&unique(&format!("fmc{name}")));
        ns.sysctl("net.ipv4.ip_forward", "0");
        let dir = tmp.path().join(format!("{name}-network"));
        let text = run(&ns, extra, &dir);
        println!("--- {name}:\n{text}");
        assert!(
            text.contains(&format!("host plan ({name}, from hosts/{name}/):")),
            "{text}"
        );
        assert!(
            text.contains("wireguard: the host is not the VPN endpoint"),
            "{text}"
        );
        for other in ["kvm1", "kvm2", "kvm3"].iter().filter(|o| **o != name) {
            assert!(
                text.contains(&format!("host part of {other} (")),
                "{other}: {text}"
            );
        }
        // Its own ruleset, exactly: the bundle's hosts/<name>/nftables.nft
        // loaded into a scratch namespace lists the same.
        let want = Netns::new(&unique(&format!("fmw{name}")));
        let f = tmp.path().join(format!("{name}.nft"));
        std::fs::write(
            &f,
            &bundle.files()[&format!("hosts/{name}/nftables.nft")].contents,
        )
        .expect("write");
        want.exec(&["nft", "-f", &f.display().to_string()]);
        let list = |n: &Netns| {
            String::from_utf8_lossy(
                &n.exec(&["nft", "list", "table", "inet", "microcloud"])
                    .stdout,
            )
            .to_string()
        };
        assert_eq!(list(&ns), list(&want), "{name}: applied ruleset");
        let ours = list(&ns);
        let h = c
            .kvm_hosts()
            .into_iter()
            .find(|h| h.name.as_str() == name)
            .expect("host");
        assert!(!ours.contains(&format!("{} ", h.address)), "{name}: {ours}");
        // Its own networkd files, and forwarding on.
        let prefix = format!("hosts/{name}/network/");
        let mut n = 0;
        for (path, file) in bundle.files() {
            if let Some(file_name) = path.strip_prefix(&prefix) {
                let got = std::fs::read_to_string(dir.join(file_name)).expect("installed");
                assert_eq!(got, String::from_utf8_lossy(&file.contents), "{path}");
                n += 1;
            }
        }
        assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), n);
        let fwd =
            String::from_utf8_lossy(&ns.exec(&["sysctl", "-n", "net.ipv4.ip_forward"]).stdout)
                .trim()
                .to_string();
        assert_eq!(fwd, "1", "{name}: forwarding");
        assert!(ns
            .try_exec(&["ip", "link", "show", "wg0"])
            .stdout
            .is_empty());
        // Second run: nothing changes.
        let again = run(&ns, extra, &dir);
        assert!(
            again.contains(&format!("networkd: 0 of {n} file(s) changed")),
            "{again}"
        );
    }

    // The playbook for every host, with its inventory.
    let venv = "/opt/flatcar-microcloud-venv/bin/ansible-playbook";
    let tool = if Path::new(venv).exists() {
        venv.to_string()
    } else {
        "ansible-playbook".to_string()
    };
    require(&tool);
    let o = Command::new(&tool)
        .arg("--syntax-check")
        .arg("-i")
        .arg(out.join("host/inventory.yml"))
        .arg(out.join("host/playbook.yml"))
        .output()
        .expect("ansible-playbook");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{text}");
    let inv = tool.replace("ansible-playbook", "ansible-inventory");
    let o = Command::new(&inv)
        .arg("-i")
        .arg(out.join("host/inventory.yml"))
        .arg("--list")
        .output()
        .expect("ansible-inventory");
    let listed = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{listed}");
    for h in c.kvm_hosts() {
        assert!(
            listed.contains(&format!("\"ansible_host\": \"{}\"", h.address)),
            "{listed}"
        );
    }
    println!("ansible-playbook --syntax-check -i host/inventory.yml host/playbook.yml: ok; ansible-inventory lists 3 hosts");
}
