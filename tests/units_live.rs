//! Live (validator, feature `live`): every systemd unit every node gets passes `systemd-analyze verify`
//! (against a root holding the node's own files, so referenced binaries and
//! configs are checked too), and every networkd file parses with known keys.

mod support;

use flatcar_microcloud::reference::cluster;
use flatcar_topology::provision::{Contents, MemorySecrets, Node};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// Programs Flatcar ships that Debian may not have at the same path.
const FLATCAR_BINARIES: &[&str] = &[
    "/usr/bin/docker",
    "/usr/bin/podman",
    "/usr/sbin/iscsid",
    "/usr/bin/wg",
    "/usr/bin/chronyd",
    "/bin/sh",
    "/sbin/modprobe",
    "/usr/bin/curl",
    "/usr/bin/mkdir",
];

/// Units Flatcar ships that Debian's systemd tree lacks (stubs with the
/// same names, so dependencies on them resolve as on Flatcar).
const FLATCAR_UNITS: &[&str] = &[
    "docker.service",
    "containerd.service",
    "iscsid.service",
    "locksmithd.service",
    "update-engine.service",
    "nfs-server.service",
];

fn materialize(root: &Path, node: &Node) {
    let write = |path: &str, bytes: &[u8], mode: u32| {
        let p = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, bytes).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    for f in node.files.values() {
        match &f.contents {
            Contents::Inline(b) => write(&f.path, b, f.mode),
            Contents::Secret(_) => write(&f.path, b"secret", f.mode),
            Contents::Remote { .. } => write(&f.path, b"#!/bin/sh\n", f.mode | 0o111),
        }
    }
    for bin in FLATCAR_BINARIES {
        if !root.join(bin.trim_start_matches('/')).exists() {
            write(bin, b"#!/bin/sh\n", 0o755);
        }
    }
    for unit in FLATCAR_UNITS {
        let p = format!("/usr/lib/systemd/system/{unit}");
        if !root.join(p.trim_start_matches('/')).exists() {
            write(
                &p,
                b"[Unit]\nDescription=Flatcar stub\n\n[Service]\nExecStart=/bin/true\n",
                0o644,
            );
        }
    }
    for u in node.units.values() {
        if let Some(text) = &u.contents {
            write(
                &format!("/etc/systemd/system/{}", u.name),
                text.as_bytes(),
                0o644,
            );
        }
        for (d, text) in &u.dropins {
            write(
                &format!("/etc/systemd/system/{}.d/{d}", u.name),
                text.as_bytes(),
                0o644,
            );
        }
    }
}

fn verify_node(name: &str, node: &Node) {
    if let Err(e) = try_verify_node(name, node) {
        panic!("{e}");
    }
}

fn try_verify_node(name: &str, node: &Node) -> Result<(), String> {
    let tmp = support::TempDir::new("units");
    let root = tmp.path();
    std::fs::create_dir_all(root.join("usr/lib/systemd")).expect("mkdir");
    let status = Command::new("cp")
        .args(["-a", "/lib/systemd/system"])
        .arg(root.join("usr/lib/systemd/"))
        .status()
        .expect("cp");
    assert!(status.success());
    materialize(root, node);
    let units: Vec<&str> = node
        .units
        .values()
        .filter(|u| u.contents.is_some())
        .map(|u| u.name.as_str())
        .collect();
    if units.is_empty() {
        return Ok(());
    }
    support::require("systemd-analyze");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", root.display()))
        .args(&units)
        .output()
        .expect("systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let bad: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("is marked world-inaccessible") && !l.trim().is_empty())
        .collect();
    if out.status.success() && bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{name}: systemd-analyze verify {units:?}:\n{stderr}"
        ))
    }
}

fn check_networkd(name: &str, path: &str, text: &str) {
    let known: &[(&str, &[&str])] = &[
        ("Match", &["Name", "MACAddress"]),
        ("Link", &["Name"]),
        (
            "Network",
            &[
                "Address",
                "Gateway",
                "DNS",
                "Domains",
                "DHCP",
                "LinkLocalAddressing",
                "IPv6AcceptRA",
            ],
        ),
        ("Route", &["Destination", "Gateway"]),
    ];
    let mut section = "";
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            assert!(
                known.iter().any(|(k, _)| *k == s),
                "{name}:{path}:{}: unknown section {s}",
                i + 1
            );
            section = s;
            continue;
        }
        let (k, v) = l
            .split_once('=')
            .unwrap_or_else(|| panic!("{name}:{path}:{}: not key=value: {l}", i + 1));
        let keys = known
            .iter()
            .find(|(s, _)| *s == section)
            .map(|(_, k)| *k)
            .unwrap_or(&[]);
        assert!(
            keys.contains(&k),
            "{name}:{path}:{}: unknown key {k} in [{section}]",
            i + 1
        );
        assert!(!v.is_empty(), "{name}:{path}:{}: empty value", i + 1);
        if matches!(k, "Address" | "Destination") {
            v.parse::<ipnet::Ipv4Net>()
                .unwrap_or_else(|e| panic!("{name}:{path}: {v}: {e}"));
        }
        if matches!(k, "Gateway" | "DNS") {
            v.parse::<std::net::Ipv4Addr>()
                .unwrap_or_else(|e| panic!("{name}:{path}: {v}: {e}"));
        }
    }
}

#[test]
fn every_unit_verifies_and_networkd_parses() {
    let c = cluster().expect("valid");
    let composed =
        flatcar_microcloud::services::compose(&c, &mut MemorySecrets::default()).expect("composes");
    let mut units = 0;
    for (name, node) in &composed.nodes {
        verify_node(name, node);
        units += node.units.len();
        for f in node.files.values() {
            if f.path.starts_with("/etc/systemd/network/") {
                let Contents::Inline(b) = &f.contents else {
                    panic!("networkd file is not inline")
                };
                check_networkd(name, &f.path, &String::from_utf8_lossy(b));
            }
        }
    }
    assert!(
        units >= 4,
        "the reference cloud has data-disk mount units at least"
    );
}

#[test]
fn a_broken_unit_is_caught() {
    let mut node = Node::default();
    node.units.insert(
        "broken.service".into(),
        flatcar_topology::provision::Unit::enabled(
            "broken.service",
            "[Service]\nExecStart=/opt/bin/missing\nBogusKey=1\n",
        ),
    );
    let err = try_verify_node("broken", &node).expect_err("must be rejected");
    assert!(
        err.contains("BogusKey") && err.contains("/opt/bin/missing"),
        "{err}"
    );
}
