//! flatcar-net on a small model built here: typed ruleset, WireGuard
//! secrets, CoreDNS zones, Chrony, and the service's contributions. The same
//! outputs checked by `nft -c`, `named-checkzone` and `chronyd -p` are the
//! live target `render_live.rs`. (The full reference cloud is tested in the
//! root crate's `tests/net.rs`.)

mod common;

use common::small;
use flatcar_ignition::{compose, IgnitionJson};
use flatcar_net::{chrony, coredns, ruleset, wireguard, NetServices};
use flatcar_topology::provision::{MemorySecrets, Service};

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
    let kp = wireguard::keypair(wireguard::generate().expect("random")).expect("key");
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
fn zone_has_every_name() {
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
    // Serial from the content: same model, same serial; new record, new serial.
    assert_eq!(coredns::zone(&c, &extra), zone);
    assert_ne!(coredns::zone(&c, &[]), zone);
    let corefile = coredns::corefile(&c);
    assert!(corefile.contains("forward . 198.18.250.53"), "{corefile}");
    assert!(corefile.contains("4.18.198.in-addr.arpa"), "{corefile}");
}

#[test]
fn chrony_and_the_service_contribute_without_collisions() {
    let c = small();
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
    assert!(
        ign.contains(flatcar_net::CHRONY_IMAGE),
        "chrony runs as a pinned container"
    );
    assert!(ign.contains(flatcar_net::COREDNS_IMAGE));
    assert!(ign.contains("systemd-timesyncd.service"));
    for img in [flatcar_net::CHRONY_IMAGE, flatcar_net::COREDNS_IMAGE] {
        let digest = img.split("@sha256:").nth(1).expect("pinned by digest");
        assert_eq!(digest.len(), 64);
    }
}
