//! Live (validators, feature `live`): the real `haproxy -c` and
//! `keepalived -t` accept the generated files of both load balancers.

mod support;

use flatcar_lb::{haproxy, keepalived, Settings};
use flatcar_microcloud::reference::cluster;
use std::process::Command;
use support::{require, unique, Netns, TempDir};

fn check(tool: &str, args: &[&str], text: &str, label: &str) {
    check_in(None, tool, args, text, label)
}

/// Runs `tool args… file` (inside namespace `ns` when given) and asserts it
/// accepts `text` without a warning.
fn check_in(ns: Option<&Netns>, tool: &str, args: &[&str], text: &str, label: &str) {
    require(tool);
    let tmp = TempDir::new("lbchk");
    let path = tmp.path().join(label);
    std::fs::write(&path, text).expect("write");
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &ns.name, tool]);
            c
        }
        None => Command::new(tool),
    };
    for a in args {
        cmd.arg(a);
    }
    let out = cmd.arg(&path).output().expect(tool);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !said.to_lowercase().contains("warn"),
        "{tool} warned about {label}: {said}\n{text}"
    );
    assert!(
        out.status.success(),
        "{tool} rejected {label}: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn real_tools_accept_both_load_balancers() {
    let c = cluster().expect("valid");
    let tmp = TempDir::new("lbstate");
    for name in ["lb1", "lb2"] {
        let vm = c.vm(name).expect("lb");
        // Keepalived checks that the interfaces exist: a namespace with the
        // VM's NIC names (the LAN one and the k8s one of the internal VIP).
        let ns = Netns::new(&unique("lbk"));
        for (i, nic) in c.nics(vm).iter().enumerate() {
            let peer = format!("peer{i}");
            ns.ip(&[
                "link",
                "add",
                nic.ifname.as_str(),
                "type",
                "veth",
                "peer",
                "name",
                &peer,
            ]);
        }
        // The defaults, the hand-written ones, and the boot lab's TCG
        // timing with a 2 s realtime budget (`vrrp_rlimit_rttime`).
        let tcg = Settings {
            vrrp_rlimit_rttime: Some(std::time::Duration::from_secs(2)),
            track_interval_secs: 5,
            ..Settings::fast(
                std::time::Duration::from_millis(300),
                std::time::Duration::from_secs(1),
            )
        };
        // The server-state file the unit writes before HAProxy starts
        // (`1`: the format's version line, no servers), here in a temp file.
        let state = tmp.path().join(format!("{name}-server-state"));
        std::fs::write(&state, "1\n").expect("state file");
        for settings in [Settings::default(), Settings::hand_written(), tcg] {
            let h = haproxy::render(&c, vm, &settings)
                .expect("haproxy")
                .replace(haproxy::STATE_FILE, state.to_str().expect("utf8"));
            check("haproxy", &["-c", "-f"], &h, &format!("{name}-haproxy.cfg"));
            let k = keepalived::render(&c, vm, &settings).expect("keepalived");
            check_in(
                Some(&ns),
                "keepalived",
                &["-t", "-f"],
                &k,
                &format!("{name}-keepalived.conf"),
            );
        }
    }
    let watch = haproxy::watch_script(&Settings::default()).expect("a watcher");
    check("sh", &["-n"], &watch, "haproxy-watch");
    assert!(haproxy::watch_script(&Settings::hand_written()).is_none());
}
