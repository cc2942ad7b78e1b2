//! flatcar-k3s on the reference cloud: one bootstrap server, the others and
//! all agents joining through the API VIP, only accepted keys, the token only
//! in 0600 secret files, manifests of the right kinds, Ignition valid.

use flatcar_ignition::compose;
use flatcar_k3s::{config, keys, manifests, K3sCluster};
use flatcar_microcloud::reference::cluster;
use flatcar_topology::provision::{Contents, MemorySecrets};
use flatcar_topology::{Cluster, Role};

fn yaml(text: &str) -> serde_yaml::Value {
    serde_yaml::from_str(text).expect("parses as YAML")
}

/// The top-level keys of a YAML mapping.
fn top_keys(v: &serde_yaml::Value) -> Vec<&str> {
    v.as_mapping()
        .expect("a mapping")
        .keys()
        .filter_map(|k| k.as_str())
        .collect()
}

#[test]
fn one_bootstrap_server_everyone_else_joins_the_vip() {
    let c = cluster().expect("valid");
    let mut init = 0;
    for vm in c.with_role(Role::Master) {
        let text = config::render(&c, vm).expect("renders").expect("server");
        let typed = config::server(&c, vm).expect("server config");
        config::check_keys(&c, &typed, true).expect("only keys K3s accepts");
        let v = yaml(&text);
        assert!(keys::unknown_keys(top_keys(&v), true).is_empty(), "{text}");
        if v["cluster-init"] == true {
            init += 1;
            assert!(v.get("server").is_none());
        } else {
            assert_eq!(v["server"], "https://192.168.0.10:6443", "{}", vm.name);
        }
        let sans: Vec<&str> = v["tls-san"]
            .as_sequence()
            .expect("sans")
            .iter()
            .filter_map(|s| s.as_str())
            .collect();
        assert!(
            sans.contains(&"192.168.0.10") && sans.contains(&"api.microcloud.home.arpa"),
            "{sans:?}"
        );
        assert_eq!(v["write-kubeconfig-mode"], "0600");
        assert_eq!(v["token-file"], config::TOKEN_FILE);
        assert_eq!(v["node-ip"], vm.primary_address().expect("ip").to_string());
        assert_eq!(v["cluster-cidr"], "10.42.0.0/16");
        assert_eq!(
            v["node-taint"][0],
            "node-role.kubernetes.io/control-plane=true:NoSchedule"
        );
        assert_eq!(v["etcd-snapshot-retention"], 10);
    }
    assert_eq!(init, 1);
    let agents: Vec<_> = c
        .vms()
        .iter()
        .filter(|v| v.has(Role::Worker) || v.has(Role::Storage))
        .collect();
    assert_eq!(agents.len(), 4);
    for vm in agents {
        let text = config::render(&c, vm).expect("renders").expect("agent");
        let typed = config::agent(&c, vm).expect("agent config");
        config::check_keys(&c, &typed, false).expect("only keys K3s accepts");
        let v = yaml(&text);
        assert!(keys::unknown_keys(top_keys(&v), false).is_empty(), "{text}");
        assert_eq!(v["server"], "https://192.168.0.10:6443");
        assert_eq!(v.get("cluster-init"), None);
        if vm.has(Role::Storage) {
            assert_eq!(v["node-taint"][0], "microcloud.dev/storage=true:NoSchedule");
        }
    }
    for vm in c
        .vms()
        .iter()
        .filter(|v| !v.roles.iter().any(|r| r.is_k3s_node()))
    {
        assert!(
            config::render(&c, vm).expect("renders").is_none(),
            "{}",
            vm.name
        );
    }
}

#[test]
fn unknown_keys_are_caught() {
    let v = yaml("server: x\ncluster-init: true\nno-such-key: 1\n");
    assert_eq!(keys::unknown_keys(top_keys(&v), true), ["no-such-key"]);
    assert_eq!(
        keys::unknown_keys(top_keys(&v), false),
        ["cluster-init", "no-such-key"]
    );
}

#[test]
fn manifests_are_the_right_kinds_and_use_the_model_ports() {
    let c = cluster().expect("valid");
    let t = yaml(&manifests::traefik(&c).expect("traefik"));
    assert_eq!(
        (t["apiVersion"].as_str(), t["kind"].as_str()),
        (Some("helm.cattle.io/v1"), Some("HelmChartConfig"))
    );
    let values = yaml(t["spec"]["valuesContent"].as_str().expect("values"));
    assert_eq!(
        values["ports"]["web"]["nodePort"],
        c.k3s().ingress.web.get()
    );
    assert_eq!(
        values["ports"]["websecure"]["nodePort"],
        c.k3s().ingress.websecure.get()
    );
    let l = yaml(&manifests::longhorn(&c).expect("longhorn"));
    assert_eq!(l["kind"], "HelmChart");
    assert_eq!(l["spec"]["version"], manifests::LONGHORN_CHART_VERSION);
    // The load balancers forward to exactly these ports.
    let h = flatcar_lb::haproxy::render(&c, c.vm("lb1").expect("lb1"), &Default::default())
        .expect("haproxy");
    assert!(h.contains(&format!(":{} check", c.k3s().ingress.web)));
}

#[test]
fn token_only_in_secret_files_and_binary_verified() {
    let c = cluster().expect("valid");
    let composed = compose(&c, &[&K3sCluster], &mut MemorySecrets::default()).expect("composes");
    let mut token = None;
    for (name, node) in &composed.nodes {
        let vm = c.vm(name).expect("vm");
        let k3s = vm.roles.iter().any(|r| r.is_k3s_node());
        assert_eq!(node.has_secrets(), k3s, "{name}");
        if let Some(f) = node.files.get(config::TOKEN_FILE) {
            assert_eq!(f.mode, 0o600);
            let Contents::Secret(s) = &f.contents else {
                panic!("token not secret")
            };
            token = Some(s.expose().to_string());
            let Contents::Remote { url, sha512 } = &node.files["/opt/bin/k3s"].contents else {
                panic!("k3s not fetched")
            };
            assert!(
                url.starts_with("https://github.com/k3s-io/k3s/releases/download/v1.31.4%2Bk3s1/")
            );
            assert_eq!(sha512.len(), 128);
            assert_eq!(node.files[config::CONFIG_FILE].mode, 0o600);
        }
    }
    let token = token.expect("a token");
    assert_eq!(token.len(), 64);
    for (name, node) in &composed.nodes {
        for f in node.files.values() {
            if let Contents::Inline(b) = &f.contents {
                assert!(
                    !String::from_utf8_lossy(b).contains(&token),
                    "token in {name}:{}",
                    f.path
                );
            }
        }
    }
    for a in composed.artifacts.values() {
        assert!(!String::from_utf8_lossy(&a.contents).contains(&token));
    }
    assert!(!format!("{composed:?}").contains(&token));
    // Only the first server carries the manifests.
    let with_manifests: Vec<&String> = composed
        .nodes
        .iter()
        .filter(|(_, n)| {
            n.files
                .keys()
                .any(|p| p.starts_with(manifests::MANIFEST_DIR))
        })
        .map(|(k, _)| k)
        .collect();
    assert_eq!(with_manifests, ["master1"]);
    assert!(composed.nodes["storage1"].files["/etc/exports"].path == "/etc/exports");
}

#[test]
fn overlapping_pod_network_is_rejected() {
    let mut spec = cluster().expect("valid").into_spec();
    spec.k3s.cluster_cidr = "10.17.0.0/16".parse().expect("net");
    let p = Cluster::try_from(spec).expect_err("overlap");
    assert!(p.to_string().contains("k3s cluster_cidr"), "{p}");
}

#[test]
fn exports_follow_shares() {
    let c = cluster().expect("valid");
    let e = flatcar_k3s::exports(&c);
    assert!(
        e.contains("/srv/nfs/pgdata 10.17.3.14/32(rw,sync,no_subtree_check,root_squash)"),
        "{e}"
    );
    assert!(e.contains("/srv/nfs/shared 10.17.4.24/32("), "{e}");
    let flows = flatcar_k3s::flows(&c);
    assert!(flows.iter().any(|f| f
        .to_string()
        .contains("role:master -> role:master tcp/2379-2380,6443")));
}
