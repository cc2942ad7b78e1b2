//! Issue 16 at the bundle: no diff shows a secret (a VM changing role drops
//! its K3s token line), a failed render leaves the previous bundle
//! byte-identical and names the broken secret, a peer named like the
//! endpoint has its own key.

mod support;

use flatcar_microcloud::bundle::ChangeKind;
use flatcar_microcloud::reference::cluster;
use flatcar_microcloud::{Bundle, BundleSecrets};
use flatcar_topology::{Cluster, Role};
use std::collections::BTreeMap;
use std::path::Path;
use support::TempDir;

fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("inside").display().to_string();
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

#[test]
fn a_vm_changing_role_never_shows_its_token_in_a_diff() {
    let tmp = TempDir::new("role-diff");
    let out = tmp.path().join("out");
    let c = cluster().expect("valid");
    let b = Bundle::render(&c, &mut BundleSecrets::from_bundle_dir(&out)).expect("renders");
    b.write_to(&out).expect("writes");
    let token = std::fs::read_to_string(out.join("secrets/k3s-token")).expect("token");
    let token = token.trim();
    // worker3 stops being a K3s node: its Ignition loses the token.
    let mut spec = c.into_spec();
    let w = spec
        .vms
        .iter_mut()
        .find(|v| v.name.as_str() == "worker3")
        .expect("worker3");
    w.roles = [Role::LoadBalancer].into_iter().collect();
    w.data_disks.clear();
    let changed = Cluster::try_from(spec).expect("still valid");
    let b2 = Bundle::render(&changed, &mut BundleSecrets::from_bundle_dir(&out)).expect("renders");
    let plan = b2.plan(&out).expect("plan");
    let ign = plan
        .changes
        .iter()
        .find(|c| c.path == "vms/worker3/ignition.json")
        .expect("worker3 changes");
    assert_eq!(ign.kind, ChangeKind::Changed);
    assert!(
        ign.diff.is_none(),
        "a file that held a secret must not be diffed"
    );
    let mut shown = format!("{plan}{plan:?}");
    for c in &plan.changes {
        if let Some(d) = &c.diff {
            shown.push_str(d);
        }
    }
    assert!(!shown.contains(token), "the K3s token leaks through --diff");
}

#[test]
fn diffs_mask_any_line_holding_a_secret_value() {
    let tmp = TempDir::new("mask");
    let out = tmp.path().join("out");
    let c = cluster().expect("valid");
    let b = Bundle::render(&c, &mut BundleSecrets::from_bundle_dir(&out)).expect("renders");
    b.write_to(&out).expect("writes");
    let token = std::fs::read_to_string(out.join("secrets/k3s-token")).expect("token");
    // A non-secret file that (by hand) got a line with the token, 0644.
    let inv = out.join("inventory/hosts.yml");
    let mut text = std::fs::read_to_string(&inv).expect("inventory");
    text.push_str(&format!("# {}", token));
    std::fs::write(&inv, text).expect("write");
    let plan = b.plan(&out).expect("plan");
    let d = plan
        .changes
        .iter()
        .find(|c| c.path == "inventory/hosts.yml")
        .and_then(|c| c.diff.clone())
        .expect("diff");
    assert!(!d.contains(token.trim()), "{d}");
    assert!(d.contains(flatcar_microcloud::bundle::MASKED_LINE), "{d}");
}

#[test]
fn a_broken_wireguard_key_fails_naming_the_secret_and_loses_nothing() {
    let tmp = TempDir::new("badkey");
    let out = tmp.path().join("out");
    let c = cluster().expect("valid");
    Bundle::render(&c, &mut BundleSecrets::from_bundle_dir(&out))
        .expect("renders")
        .write_to(&out)
        .expect("writes");
    std::fs::write(out.join("secrets/wg-peer-laptop"), "not a key\n").expect("corrupt");
    let before = tree(&out);
    let e = Bundle::render(&c, &mut BundleSecrets::from_bundle_dir(&out))
        .expect_err("a broken key fails")
        .to_string();
    assert!(e.contains("wg-peer-laptop"), "{e}");
    assert!(
        !e.contains("not a key"),
        "the stored value is never shown: {e}"
    );
    assert_eq!(tree(&out), before, "the previous bundle changed");
}

#[test]
fn a_peer_named_endpoint_has_its_own_key() {
    let tmp = TempDir::new("peer-endpoint");
    let out = tmp.path().join("out");
    let mut spec = cluster().expect("valid").into_spec();
    let vpn = spec.vpn.as_mut().expect("vpn");
    vpn.peers[1].name = flatcar_topology::Name::new("endpoint").expect("name");
    let c = Cluster::try_from(spec).expect("valid");
    let b = Bundle::render(&c, &mut BundleSecrets::from_bundle_dir(&out)).expect("renders");
    let f = b.files();
    let endpoint = &f["secrets/wg-endpoint"].contents;
    let peer = &f["secrets/wg-peer-endpoint"].contents;
    assert_ne!(endpoint, peer, "the peer shares the endpoint's private key");
}

#[test]
fn an_invalid_model_writes_nothing() {
    let tmp = TempDir::new("invalid");
    let out = tmp.path().join("out");
    let c = cluster().expect("valid");
    Bundle::render(&c, &mut BundleSecrets::from_bundle_dir(&out))
        .expect("renders")
        .write_to(&out)
        .expect("writes");
    let before = tree(&out);
    let mut text = std::fs::read_to_string(out.join("cluster.json")).expect("model");
    text = text.replacen("\"cidr\": \"", "\"cidr\": \"0", 1);
    let e = Cluster::from_str_as(&text, flatcar_topology::Format::Json).expect_err("invalid");
    assert!(e.to_string().contains("networks[0].cidr"), "{e}");
    assert_eq!(tree(&out), before);
}
