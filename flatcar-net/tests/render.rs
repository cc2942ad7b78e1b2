//! flatcar-net on a small model built here: typed ruleset (text and JSON
//! checked by `nft -c`), WireGuard secrets, CoreDNS zones, Chrony, and the
//! service's contributions. (The full reference cloud is tested in the root
//! crate's `tests/net.rs` and live in `tests/net_live.rs`.)

use flatcar_net::{chrony, coredns, ruleset, wireguard, NetServices};
use flatcar_topology::provision::{compose, MemorySecrets, Service};
use flatcar_topology::{net4, Cluster, Endpoint, HostBuilder, Proto, Role};
use std::process::Command;

fn small() -> Cluster {
    let mut c = Cluster::builder("small", HostBuilder::new("kvm1").uplink("eno1"));
    c.dns("small.home.arpa", &["198.18.250.53".parse().expect("ip")]);
    let lan = c.lan("lan", net4!("198.18.0.0/24"), |n| {
        n.bridge("br0").gateway(1).host_at(40)
    });
    let k8s = c.nat("k8s", net4!("198.18.4.0/24"), |n| n.bridge("virbr-k8s"));
    c.vm("infra", |v| v.roles([Role::Dns, Role::Ntp]).nic(&lan, 30));
    let lb1 = c.vm("lb1", |v| {
        v.role(Role::LoadBalancer).nic(&lan, 11).nic(&k8s, 11)
    });
    for (i, m) in ["master1", "master2", "master3"].into_iter().enumerate() {
        c.vm(m, |v| v.role(Role::Master).nic(&k8s, 21 + i as u32));
    }
    let api = c.vip("api", &lan, 10, |v| {
        v.tcp(6443, Role::Master, 6443).holders([&lb1])
    });
    c.vpn(net4!("198.18.9.0/24"), |v| {
        v.listen(51820)
            .address(1)
            .public_endpoint("198.18.0.40:51820")
            .peer("laptop", 3, |p| p.keepalive(25))
    });
    c.allow(Endpoint::Lan, Endpoint::Host, Proto::Tcp, &[22])
        .allow(Endpoint::Vpn, &api, Proto::Tcp, &[6443])
        .allow(&k8s, Endpoint::Internet, Proto::Any, &[]);
    c.build().expect("valid small cloud")
}

fn nft_c(args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new("nft")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nft (apt-get install nftables)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    child.wait_with_output().expect("nft")
}

#[test]
fn ruleset_text_and_json_pass_nft_check() {
    let c = small();
    let r = ruleset::build(&c, &[]);
    let text = r.to_text();
    let out = nft_c(&["-c", "-f", "-"], &text);
    assert!(
        out.status.success(),
        "{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    ruleset::check(&r).expect("JSON dry run (nft -c -j)");
    ruleset::check_text(&text).expect("text dry run");
    // A rule nft refuses is reported with nft's own words.
    let mut bad = r.clone();
    bad.tables[0].chains[0].rules.push(ruleset::Rule {
        matches: vec![],
        verdict: ruleset::Verdict::Accept,
        comment: Some("x".repeat(300)),
    });
    let e = ruleset::check(&bad).expect_err("comment too long");
    println!("{e}");
    assert!(e.to_string().contains("nft rejected"), "{e}");
    assert!(ruleset::check_text(&bad.to_text()).is_err());
}

#[test]
fn ruleset_follows_zones_and_flows() {
    use ruleset::Family;
    let c = small();
    let r = ruleset::build(&c, &[]);
    let input: Vec<String> = r
        .rules(Family::Inet, "input")
        .iter()
        .map(|r| r.to_string())
        .collect();
    let forward: Vec<String> = r
        .rules(Family::Inet, "forward")
        .iter()
        .map(|r| r.to_string())
        .collect();
    let has = |v: &[String], s: &str| v.iter().any(|l| l.starts_with(s));
    assert!(
        has(&input, "ct state established,related accept"),
        "{input:#?}"
    );
    assert!(has(&input, "iifname \"lo\" accept"));
    assert!(
        has(&input, "ip saddr 198.18.0.0/24 tcp dport 22 accept"),
        "{input:#?}"
    );
    assert!(has(&input, "udp dport 51820 accept"), "{input:#?}");
    let inside = "{ 198.18.0.0/24, 198.18.4.0/24, 198.18.9.0/24 }";
    assert!(
        has(&input, &format!("ip saddr != {inside} tcp dport 6443 drop")),
        "{input:#?}"
    );
    assert!(
        has(
            &forward,
            "ip saddr 198.18.9.0/24 ip daddr 198.18.0.10 tcp dport 6443 accept"
        ),
        "{forward:#?}"
    );
    assert!(
        has(&forward, "ip saddr { 198.18.0.11, 198.18.4.11 } ip daddr { 198.18.4.21, 198.18.4.22, 198.18.4.23 } tcp dport 6443 accept"),
        "{forward:#?}"
    );
    assert!(
        has(
            &forward,
            "ip saddr 198.18.4.0/24 iifname != \"virbr-k8s\" drop"
        ),
        "{forward:#?}"
    );
    let post = r.rules(Family::Inet, "postrouting");
    assert_eq!(post.len(), 1);
    assert_eq!(
        post[0].to_string(),
        format!("ip saddr 198.18.4.0/24 ip daddr != {inside} masquerade comment \"k8s to the internet side\"")
    );
    // Nothing in the model is open from the internet: the API VIP is closed on the bridge.
    let bridge: Vec<String> = r
        .rules(Family::Bridge, "forward")
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert!(
        has(
            &bridge,
            &format!("ip saddr != {inside} ip daddr 198.18.0.10 drop")
        ),
        "{bridge:#?}"
    );
    // JSON: a single transaction that adds/deletes/adds our tables only.
    let v: serde_json::Value = serde_json::from_str(&r.to_json().expect("json")).expect("json");
    let cmds = v["nftables"].as_array().expect("array");
    assert_eq!(cmds[0]["add"]["table"]["family"], "inet");
    assert_eq!(cmds[1]["delete"]["table"]["name"], "microcloud");
    assert!(cmds.iter().all(|c| c.get("flush").is_none()));
}

#[test]
fn wireguard_keys_are_generated_once_and_never_printed() {
    let c = small();
    let mut secrets = MemorySecrets::default();
    let svc = NetServices::default();
    let a = compose(&c, &[&svc as &dyn Service], &mut secrets).expect("compose");
    let b = compose(&c, &[&svc as &dyn Service], &mut secrets).expect("compose");
    let host = &a.artifacts["host/wg0.conf"];
    assert!(host.secret, "endpoint config is 0600");
    assert_eq!(
        host.contents, b.artifacts["host/wg0.conf"].contents,
        "keys generated once"
    );
    let laptop = String::from_utf8(a.artifacts["vpn/laptop.conf"].contents.clone()).expect("utf8");
    assert!(a.artifacts["vpn/laptop.conf"].secret);
    assert!(
        laptop.contains("AllowedIPs = 198.18.0.0/24, 198.18.4.0/24, 198.18.9.0/24"),
        "{laptop}"
    );
    assert!(laptop.contains("PersistentKeepalive = 25"));
    assert!(laptop.contains("Endpoint = 198.18.0.40:51820"));
    let host = String::from_utf8(host.contents.clone()).expect("utf8");
    assert!(host.contains("AllowedIPs = 198.18.9.3/32"), "{host}");
    // Keys: the public one matches, the private one never appears in Debug.
    let kp = wireguard::keypair(wireguard::generate()).expect("key");
    let dbg = format!("{kp:?}");
    assert!(!dbg.contains(kp.private.expose()), "{dbg}");
    assert!(dbg.contains(&kp.public));
    assert!(!format!("{a:?}").contains(kp.private.expose()));
    let private = host
        .lines()
        .find_map(|l| l.strip_prefix("PrivateKey = "))
        .expect("key");
    assert!(!format!("{:?}", a.artifacts).contains(private) || a.artifacts["host/wg0.conf"].secret);
    assert!(!a.artifacts["vpn/endpoint.pub"].secret);
}

#[test]
fn zone_has_every_name_and_passes_named_checkzone() {
    let c = small();
    let extra = [flatcar_topology::provision::DnsRecord {
        name: "registry".into(),
        address: "198.18.4.21".parse().expect("ip"),
    }];
    let zone = coredns::zone(&c, &extra);
    for (name, addr) in [
        ("infra", "198.18.0.30"),
        ("lb1", "198.18.0.11"),
        ("lb1.k8s", "198.18.4.11"),
        ("master1", "198.18.4.21"),
        ("api", "198.18.0.10"),
        ("kvm1", "198.18.0.40"),
        ("registry", "198.18.4.21"),
    ] {
        assert!(
            zone.lines()
                .any(|l| l.starts_with(&format!("{name} ")) && l.ends_with(addr)),
            "{name} -> {addr}\n{zone}"
        );
    }
    let dir = std::env::temp_dir().join(format!("fnet-zone-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut zones = vec![("small.home.arpa".to_string(), zone.clone())];
    zones.extend(coredns::reverse_zones(&c));
    for (name, text) in &zones {
        let p = dir.join(format!("{name}.zone"));
        std::fs::write(&p, text).expect("write");
        let out = Command::new("named-checkzone")
            .arg(name)
            .arg(&p)
            .output()
            .expect("named-checkzone (apt-get install bind9-utils)");
        assert!(
            out.status.success(),
            "{name}: {}\n{text}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    // Serial from the content: same model, same serial; new record, new serial.
    assert_eq!(coredns::zone(&c, &extra), zone);
    assert_ne!(coredns::zone(&c, &[]), zone);
    let corefile = coredns::corefile(&c);
    assert!(corefile.contains("forward . 198.18.250.53"), "{corefile}");
    assert!(corefile.contains("4.18.198.in-addr.arpa"), "{corefile}");
}

#[test]
fn chrony_configs_parse_and_the_service_contributes_without_collisions() {
    let c = small();
    let dir = std::env::temp_dir().join(format!("fnet-chrony-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for (name, text) in [
        ("server", chrony::server(&c)),
        ("client", chrony::client(&c)),
    ] {
        let p = dir.join(format!("{name}.conf"));
        std::fs::write(&p, &text).expect("write");
        let out = Command::new("chronyd")
            .args(["-p", "-f"])
            .arg(&p)
            .output()
            .expect("chronyd (apt-get install chrony)");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    let server = chrony::server(&c);
    for net in ["198.18.0.0/24", "198.18.4.0/24", "198.18.9.0/24"] {
        assert!(server.contains(&format!("allow {net}")), "{server}");
    }
    assert!(server.contains("local stratum 10 orphan"));
    let svc = NetServices::default();
    let composed = compose(&c, &[&svc as &dyn Service], &mut MemorySecrets::default())
        .expect("no collision with the base service");
    let infra = &composed.nodes["infra"];
    assert!(infra.files.contains_key(flatcar_net::CHRONY_CONF));
    let ign = infra.ignition_json().expect("ignition");
    // Chrony: the bakery's system extension, linked into /etc/extensions,
    // patch-updated by systemd-sysupdate, enabled before the merge.
    assert!(
        ign.contains("/opt/extensions/chrony/chrony-4.8-x86-64.raw"),
        "{ign}"
    );
    assert!(ign.contains("\"/etc/extensions/chrony.raw\""));
    assert!(ign.contains("/etc/sysupdate.chrony.d/chrony.conf"));
    assert!(ign.contains("/etc/systemd/system/multi-user.target.wants/chronyd.service"));
    assert!(ign.contains("systemd-timesyncd.service"));
    // CoreDNS: a container pinned by digest (no extension exists).
    assert!(ign.contains(&format!(
        "{}@{}",
        flatcar_net::COREDNS_IMAGE,
        flatcar_net::COREDNS_DIGEST
    )));
    let names: Vec<&str> = composed.downloads.keys().map(String::as_str).collect();
    assert_eq!(names, ["chrony", "coredns"]);
    assert!(composed.downloads["coredns"].is_verified());
    assert!(!composed.downloads["chrony"].is_verified());
}
