//! Every role does its job (issue 14, item 5), read from the rendered
//! bundle of the reference cloud: PostgreSQL, NFS, Longhorn, SSH keys,
//! agent token, API readiness checks, coordinated reboots.

use flatcar_microcloud::ignition::IgnitionJson;
use flatcar_microcloud::reference::{cluster, cluster_with, AddressPlan, PLACEHOLDER_ADMIN_KEY};
use flatcar_microcloud::{Bundle, BundleSecrets};
use flatcar_topology::provision::{Contents, MemorySecrets};
use flatcar_topology::reboot::{self, Reboot};
use flatcar_topology::{net4, Cluster, Endpoint, GiB, HostBuilder, Proto, Role};
use proptest::prelude::*;

fn composed() -> (Cluster, flatcar_topology::provision::Composed) {
    let c = cluster().expect("valid");
    let out =
        flatcar_microcloud::services::compose(&c, &mut MemorySecrets::default()).expect("composes");
    (c, out)
}

fn text(node: &flatcar_topology::provision::Node, path: &str) -> String {
    match &node
        .files
        .get(path)
        .unwrap_or_else(|| panic!("{path} missing"))
        .contents
    {
        Contents::Inline(b) => String::from_utf8(b.clone()).expect("utf8"),
        other => panic!("{path} is {other:?}"),
    }
}

#[test]
fn postgres_runs_on_its_own_disk_with_a_secret_password_and_hba_from_flows() {
    let (_, out) = composed();
    let db = &out.nodes["postgresql1"];
    let unit = db.units.get("postgres.service").expect("postgres unit");
    assert_eq!(unit.enabled, Some(true));
    let body = unit.contents.as_deref().expect("unit text");
    assert!(body.contains(flatcar_db::POSTGRES_IMAGE), "{body}");
    assert!(flatcar_db::POSTGRES_IMAGE.contains("@sha256:"));
    assert!(body.contains("RequiresMountsFor=/var/mnt/pgdata"), "{body}");
    assert!(
        body.contains("-v /var/mnt/pgdata/data:/var/lib/postgresql/data"),
        "{body}"
    );
    // The data disk: formatted and mounted by Ignition, plus a mount unit.
    assert!(
        db.disks.iter().any(|d| d.mount == "/var/mnt/pgdata"),
        "{:?}",
        db.disks
    );
    assert_eq!(db.units["var-mnt-pgdata.mount"].enabled, Some(true));
    let json = db.ignition_json().expect("renders");
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    let fs = v["storage"]["filesystems"].as_array().expect("filesystems");
    assert!(
        fs.iter()
            .any(|f| f["label"] == "pgdata" && f["format"] == "ext4"),
        "{fs:?}"
    );
    let mount = db.units["var-mnt-pgdata.mount"]
        .contents
        .clone()
        .expect("mount unit");
    assert!(
        mount.contains("What=/dev/disk/by-label/pgdata") && mount.contains("Where=/var/mnt/pgdata"),
        "{mount}"
    );
    // The password: a 0600 secret.
    let pw = &db.files[flatcar_db::PASSWORD_FILE];
    assert!(pw.is_secret() && pw.mode == 0o600);
    assert!(db.has_secrets());
    // pg_hba: the workers' addresses (flow worker -> database 5432), nobody else.
    let hba = text(db, flatcar_db::HBA_FILE);
    for w in ["10.17.4.24/32", "10.17.4.25/32", "10.17.4.26/32"] {
        assert!(
            hba.contains(&format!("host all all {w} scram-sha-256")),
            "{hba}"
        );
    }
    assert!(
        !hba.contains("10.17.4.21"),
        "masters have no flow to postgres:\n{hba}"
    );
    assert!(hba.ends_with("host all all 0.0.0.0/0 reject\n"), "{hba}");
}

#[test]
fn a_database_vm_without_a_data_disk_is_an_error() {
    let mut c = Cluster::builder("demo", HostBuilder::new("kvm1"));
    let lan = c.lan("lan", net4!("198.18.0.0/24"), |n| n.host_at(40));
    c.vm("db1", |v| v.role(Role::Database).nic(&lan, 14));
    c.ssh_key(PLACEHOLDER_ADMIN_KEY);
    c.dns(
        "demo.home.arpa",
        &[std::net::Ipv4Addr::new(198, 18, 250, 53)],
    );
    let c = c.build().expect("valid model");
    let e = flatcar_microcloud::services::compose(&c, &mut MemorySecrets::default())
        .expect_err("no data disk");
    assert!(e.to_string().contains("no data disk"), "{e}");
}

#[test]
fn nfs_shares_are_writable_by_their_clients() {
    let (_, out) = composed();
    let st = &out.nodes["storage1"];
    let exports = text(st, "/etc/exports");
    for line in exports.lines().filter(|l| l.starts_with("/srv/nfs/")) {
        assert!(
            line.contains("all_squash,anonuid=2049,anongid=2049") && !line.contains("root_squash"),
            "{line}"
        );
    }
    let dirs = st.units["microcloud-storage-dirs.service"]
        .contents
        .clone()
        .expect("unit");
    assert!(
        dirs.contains("ExecStart=/usr/bin/chown 2049:2049 /var/mnt/data/nfs/pgbackup /var/mnt/data/nfs/shared"),
        "{dirs}"
    );
    // The database VM mounts its backup share from the storage node.
    let m = out.nodes["postgresql1"].units["var-mnt-nfs-pgbackup.mount"]
        .contents
        .clone()
        .expect("mount");
    assert!(
        m.contains("What=10.17.4.27:/srv/nfs/pgbackup") && m.contains("Type=nfs"),
        "{m}"
    );
    // On first use, not at boot: only the automount point is enabled.
    let units = &out.nodes["postgresql1"].units;
    assert_eq!(units["var-mnt-nfs-pgbackup.mount"].enabled, None);
    assert!(!m.contains("[Install]"), "{m}");
    let auto = &units["var-mnt-nfs-pgbackup.automount"];
    assert_eq!(auto.enabled, Some(true));
    let a = auto.contents.clone().expect("automount");
    assert!(
        a.contains("Where=/var/mnt/nfs/pgbackup\n") && a.contains("WantedBy=remote-fs.target"),
        "{a}"
    );
}

#[test]
fn longhorn_tolerates_the_storage_taint_derived_from_the_model() {
    let c = cluster().expect("valid");
    let storage = c.vm("storage1").expect("storage1");
    let taints = flatcar_k3s::config::taints(&c, storage);
    assert_eq!(taints, [flatcar_k3s::config::STORAGE_TAINT]);
    let tol = flatcar_k3s::manifests::longhorn_tolerations(&c);
    assert_eq!(tol.len(), 1, "{tol:?}");
    assert_eq!(tol[0].key, "microcloud.dev/storage");
    assert_eq!(tol[0].effect, "NoSchedule");
    let yaml = flatcar_k3s::manifests::longhorn(&c).expect("renders");
    let doc: serde_yaml::Value = serde_yaml::from_str(&yaml).expect("yaml");
    let values: serde_yaml::Value =
        serde_yaml::from_str(doc["spec"]["valuesContent"].as_str().expect("values")).expect("yaml");
    assert_eq!(
        values["defaultSettings"]["taintToleration"].as_str(),
        Some("microcloud.dev/storage=true:NoSchedule")
    );
    for part in ["longhornManager", "longhornDriver"] {
        assert_eq!(
            values[part]["tolerations"][0]["key"], "microcloud.dev/storage",
            "{yaml}"
        );
    }
}

#[test]
fn agents_join_with_their_own_token() {
    let (c, out) = composed();
    for vm in c.vms() {
        let n = &out.nodes[vm.name.as_str()];
        let server_token = n.files.get(flatcar_k3s::config::TOKEN_FILE);
        let agent_token = n.files.get(flatcar_k3s::config::AGENT_TOKEN_FILE);
        if vm.has(Role::Master) {
            assert!(server_token.is_some_and(|f| f.is_secret() && f.mode == 0o600));
            assert!(agent_token.is_some());
            let cfg: serde_yaml::Value =
                serde_yaml::from_str(&text(n, flatcar_k3s::config::CONFIG_FILE)).expect("yaml");
            assert_eq!(
                cfg["agent-token-file"],
                flatcar_k3s::config::AGENT_TOKEN_FILE
            );
            assert_eq!(cfg["kube-apiserver-arg"][0], "anonymous-auth=true");
        } else if vm.has(Role::Worker) || vm.has(Role::Storage) {
            assert!(
                server_token.is_none(),
                "{}: agents never see the server token",
                vm.name
            );
            assert!(agent_token.is_some_and(|f| f.is_secret() && f.mode == 0o600));
            let cfg: serde_yaml::Value =
                serde_yaml::from_str(&text(n, flatcar_k3s::config::CONFIG_FILE)).expect("yaml");
            assert_eq!(cfg["token-file"], flatcar_k3s::config::AGENT_TOKEN_FILE);
        }
    }
    // Two secrets with different values.
    let tmp = std::env::temp_dir().join(format!("roles-tokens-{}", std::process::id()));
    let mut secrets = BundleSecrets::from_bundle_dir(&tmp);
    let b = Bundle::render(&c, &mut secrets).expect("renders");
    let files = b.files();
    let server = &files["secrets/k3s-token"].contents;
    let agent = &files["secrets/k3s-token-agent"].contents;
    assert_ne!(server, agent);
}

#[test]
fn haproxy_checks_api_readiness_over_https() {
    let c = cluster().expect("valid");
    let lb1 = c.vm("lb1").expect("lb1");
    let cfg = flatcar_lb::haproxy::render(&c, lb1, &Default::default()).expect("renders");
    let api = cfg
        .split("\nbackend api-6443\n")
        .nth(1)
        .and_then(|s| s.split("frontend").next())
        .expect("api backend");
    assert!(api.contains("option httpchk GET /readyz"), "{api}");
    assert!(api.contains("http-check expect status 200"), "{api}");
    for m in ["master1", "master2", "master3"] {
        assert!(api.contains(&format!("server {m} ")), "{api}");
    }
    assert_eq!(
        api.matches("check check-ssl verify none").count(),
        3,
        "{api}"
    );
    let web = cfg.split("\nbackend web-80\n").nth(1).expect("web backend");
    assert!(!web
        .split("frontend")
        .next()
        .unwrap_or_default()
        .contains("httpchk"));
}

#[test]
fn every_ignition_config_carries_an_ssh_key_and_a_keyless_model_is_rejected() {
    let (c, out) = composed();
    for vm in c.vms() {
        let json = out.nodes[vm.name.as_str()]
            .ignition_json()
            .expect("renders");
        let v: serde_json::Value = serde_json::from_str(&json).expect("json");
        let keys = v["passwd"]["users"][0]["sshAuthorizedKeys"]
            .as_array()
            .expect("keys");
        assert_eq!(keys.len(), 1, "{}", vm.name);
        assert_eq!(keys[0], PLACEHOLDER_ADMIN_KEY);
    }
    let problems = flatcar_microcloud::reference::cluster_for(&AddressPlan::test(), &[])
        .expect_err("no admin key");
    assert!(
        problems.to_string().contains("admin: no SSH key"),
        "{problems}"
    );
}

#[test]
fn the_example_key_is_ed25519_and_reused() {
    let mut s = MemorySecrets::default();
    let a =
        flatcar_microcloud::admin_key::load_or_generate(&mut s, "admin@microcloud").expect("key");
    let b =
        flatcar_microcloud::admin_key::load_or_generate(&mut s, "admin@microcloud").expect("key");
    assert_eq!(a, b);
    assert!(a.as_str().starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"));
    let c = flatcar_microcloud::reference::cluster_for(&AddressPlan::reference(), &[a.as_str()])
        .expect("valid with the generated key");
    assert_eq!(c.spec().admin.ssh_keys, [a]);
}

/// Independent check of a reboot plan: two members of a failure group are
/// never rebooting together, read from what the nodes get (the locksmithd
/// window strings and FLUO's one-node-at-a-time Monday window).
fn assert_coordinated(c: &Cluster) {
    let plan = reboot::plan(c.spec());
    let when = |vm: &str| -> Option<String> {
        let conf = flatcar_microcloud::ignition::base::update_conf(&plan[vm]);
        conf.lines()
            .find_map(|l| l.strip_prefix("LOCKSMITHD_REBOOT_WINDOW_START="))
            .map(|s| s.trim_matches('"').to_string())
    };
    for (group, members) in reboot::failure_groups(c.spec()) {
        for (i, a) in members.iter().enumerate() {
            for b in &members[i + 1..] {
                let (ra, rb) = (&plan[a.name.as_str()], &plan[b.name.as_str()]);
                match (when(a.name.as_str()), when(b.name.as_str())) {
                    (None, None) => assert!(*ra == Reboot::Fluo && *rb == Reboot::Fluo),
                    (Some(w), None) | (None, Some(w)) => {
                        assert!(
                            !w.starts_with(
                                reboot::FLUO_WINDOW.0.split(' ').next().unwrap_or("Mon")
                            ),
                            "{group}: {} and {} overlap with FLUO's day",
                            a.name,
                            b.name
                        )
                    }
                    (Some(x), Some(y)) => {
                        assert_ne!(x, y, "{group}: {} and {} share a window", a.name, b.name)
                    }
                }
            }
        }
    }
    assert!(reboot::conflicts(c.spec()).is_empty());
}

#[test]
fn reference_reboots_never_take_two_of_a_group_down() {
    let c = cluster_with(&AddressPlan::test()).expect("valid");
    assert_coordinated(&c);
    let plan = reboot::plan(c.spec());
    assert_ne!(plan["lb1"], plan["lb2"]);
    assert_eq!(plan["master1"], Reboot::Fluo);
    let (_, out) = composed();
    for m in ["master1", "worker1", "storage1"] {
        assert!(out.nodes[m].units["locksmithd.service"].mask, "{m}");
        assert!(text(&out.nodes[m], "/etc/flatcar/update.conf").contains("REBOOT_STRATEGY=off"));
    }
    let fluo = flatcar_k3s::manifests::fluo(&c);
    assert!(fluo.contains("--reboot-window-start=Mon 00:00"), "{fluo}");
    assert!(fluo.contains("key: microcloud.dev/storage"), "{fluo}");
    for d in fluo.split("\n---\n") {
        serde_yaml::from_str::<serde_yaml::Value>(d).expect("each FLUO document is YAML");
    }
}

/// A random cloud: `roles[i]` is the role set of VM i.
fn random_cloud(roles: &[Vec<Role>]) -> Cluster {
    let mut c = Cluster::builder("prop", HostBuilder::new("kvm1"));
    let lan = c.lan("lan", net4!("198.18.0.0/24"), |n| n.host_at(250));
    c.dns(
        "prop.home.arpa",
        &[std::net::Ipv4Addr::new(198, 18, 250, 53)],
    );
    c.ssh_key(PLACEHOLDER_ADMIN_KEY);
    let mut lbs = Vec::new();
    for (i, rs) in roles.iter().enumerate() {
        let r = c.vm(&format!("vm{i}"), |v| {
            let v = v.roles(rs.iter().copied()).nic(&lan, 10 + i as u32);
            if rs.contains(&Role::Database) {
                v.data_disk("pgdata", GiB(5))
            } else {
                v
            }
        });
        if rs.contains(&Role::LoadBalancer) {
            lbs.push(r);
        }
    }
    c.allow(Endpoint::Lan, Endpoint::Host, Proto::Tcp, &[22]);
    if !lbs.is_empty() && roles.iter().any(|r| r.contains(&Role::Master)) {
        c.vip("api", &lan, 5, |v| {
            // At most 4 holders fit distinct VRRP priorities.
            v.tcp(6443, Role::Master, 6443).holders(lbs.iter().take(4))
        });
    }
    c.build().unwrap_or_else(|p| panic!("{roles:?}:\n{p}"))
}

fn role_sets() -> impl Strategy<Value = Vec<Vec<Role>>> {
    let one = prop::sample::subsequence(Role::ALL.to_vec(), 1..=2);
    prop::collection::vec(one, 1..40).prop_filter("odd masters, at least 3, or none", |v| {
        let m = v.iter().filter(|r| r.contains(&Role::Master)).count();
        m == 0 || (m >= 3 && m % 2 == 1)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn generated_clouds_reboot_coordinated(roles in role_sets()) {
        let c = random_cloud(&roles);
        assert_coordinated(&c);
        prop_assert_eq!(reboot::plan(c.spec()).len(), roles.len());
    }
}
