//! The rows of docs/hostile-input.md, checked.

mod common;

use flatcar_topology::{
    net4, Cluster, Cron, DomainName, Format, HostBuilder, IfName, K3sVersion, Name, PoolPath,
    PortRange, Role, SshKey,
};

#[test]
fn names() {
    for bad in [
        "lb\n1",
        "lb\"1",
        "lb'1",
        "lb{1}",
        "lb;1",
        "lb 1",
        "lb/1",
        "\u{430}pi",
        "a\u{200b}b",
        "Master1",
        "1lb",
        "-lb",
        "lb-",
        &"a".repeat(64),
        "",
    ] {
        let e = Name::new(bad).expect_err(bad);
        let shown = e.to_string();
        assert!(!shown.contains('\n'), "{shown:?}");
    }
    assert!(Name::new("a".repeat(63)).is_ok());
}

#[test]
fn domains_and_interfaces_and_paths() {
    for bad in [
        "a..b",
        "a.b.",
        ".a",
        &format!("{}.b", "a".repeat(64)),
        &"a.".repeat(127),
    ] {
        assert!(DomainName::new(bad).is_err(), "{bad}");
    }
    for bad in ["br0/x", "a b", "0123456789abcdef", ""] {
        assert!(IfName::new(bad).is_err(), "{bad}");
    }
    for bad in ["relative", "/a/../b", "/a b", "/a\"b"] {
        assert!(PoolPath::new(bad).is_err(), "{bad}");
    }
}

#[test]
fn ports_and_values() {
    for bad in ["0", "65536", "2380-2379", "-1", "x"] {
        assert!(bad.parse::<PortRange>().is_err(), "{bad}");
    }
    assert!("1-65535".parse::<PortRange>().is_ok());
    for bad in [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA x\nssh-rsa AAAA",
        "evil AAAAC3NzaC1lZDI1NTE5AAAAIA",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA \u{7}",
    ] {
        assert!(SshKey::new(bad).is_err(), "{bad:?}");
    }
    assert!(Cron::new("@hourly; reboot").is_err());
    assert!(Cron::new("0 */6 * * *").is_ok());
    assert!(K3sVersion::new("v1.31.4+k3s1\nx").is_err());
}

#[test]
fn address_boundaries_in_the_builder() {
    let mut c = Cluster::builder("t", HostBuilder::new("h"));
    let lan = c.lan("lan", net4!("198.18.0.0/24"), |n| {
        n.host_at(40).dhcp(100, 200)
    });
    c.vm("a", |v| v.nic(&lan, 0));
    c.vm("b", |v| v.nic(&lan, 255));
    c.vm("c", |v| v.nic(&lan, 256));
    c.vm("d", |v| v.nic(&lan, 1));
    c.vm("e", |v| v.nic(&lan, 100));
    c.vm("f", |v| v.role(Role::Worker).nic(&lan, 254));
    let p = c.build().expect_err("invalid").to_string();
    for needle in [
        "vm \"a\" nic 0: address host 0",
        "vm \"b\" nic 0: address host 255",
        "vm \"c\" nic 0: address host 256",
        "gateway address",
        "DHCP range",
    ] {
        assert!(p.contains(needle), "missing {needle:?}:\n{p}");
    }
    assert!(!p.contains("vm \"f\""), "{p}");
}

fn toml_text() -> String {
    common::build(&common::Shape {
        nats: 1,
        masters: 0,
        workers: 1,
        extra: vec![],
        lbs: 0,
        with_vpn: false,
    })
    .to_string_as(Format::Toml)
    .expect("toml")
}

#[test]
fn files_with_duplicate_keys_unknown_fields_wrong_types() {
    let base = toml_text();
    let dup = base.replacen("name = \"prop\"", "name = \"prop\"\nname = \"again\"", 1);
    let e = Cluster::from_str_as(&dup, Format::Toml)
        .expect_err("dup")
        .to_string();
    assert!(e.contains("line 2") && e.contains("duplicate"), "{e}");
    let unknown = base.replacen("[[vms]]\n", "[[vms]]\nsurprise = true\n", 1);
    let e = Cluster::from_str_as(&unknown, Format::Toml)
        .expect_err("unknown")
        .to_string();
    assert!(e.contains("surprise") && e.contains("line"), "{e}");
    let wrong = base.replacen("vcpus = 1", "vcpus = \"two\"", 1);
    let e = Cluster::from_str_as(&wrong, Format::Toml)
        .expect_err("type")
        .to_string();
    assert!(e.contains("line") && e.contains("expected u16"), "{e}");
    let json = "{\"name\": \"x\", \"name\": \"y\"}";
    let e = Cluster::from_str_as(json, Format::Json)
        .expect_err("dup")
        .to_string();
    assert!(e.contains("duplicate field") && e.contains("line 1"), "{e}");
    let newline_name = base.replacen("name = \"worker0\"", "name = \"worker0\\nevil\"", 1);
    let e = Cluster::from_str_as(&newline_name, Format::Toml)
        .expect_err("name")
        .to_string();
    assert!(e.contains("'\\n'") && !e.contains("worker0\nevil"), "{e}");
}

// ---- Round two (issue 16): every class has its own test. ----

use flatcar_topology::text::is_clean;
use flatcar_topology::{Error, ImageRef, MacAddr, Preempt};

/// The JSON form of a small valid cloud with a VPN, masters and workers.
fn json_text() -> String {
    common::build(&common::Shape {
        nats: 2,
        masters: 3,
        workers: 2,
        extra: vec![],
        lbs: 2,
        with_vpn: true,
    })
    .to_string_as(Format::Json)
    .expect("json")
}

fn spec() -> serde_json::Value {
    serde_json::from_str(&json_text()).expect("json")
}

/// Loads a mutated spec; returns the error text (asserting it is clean).
fn load_err(v: &serde_json::Value) -> String {
    let text = serde_json::to_string_pretty(v).expect("json");
    let e = Cluster::from_str_as(&text, Format::Json).expect_err("rejected");
    let shown = e.to_string();
    assert!(is_clean(&shown), "control character in {shown:?}");
    shown
}

#[test]
fn sizes_that_overflow_are_problems_naming_the_vm() {
    let mut v = spec();
    v["vms"][0]["memory"] = serde_json::json!(u64::MAX);
    v["vms"][1]["root_disk"] = serde_json::json!(u64::MAX / 2);
    let e = load_err(&v);
    let vm0 = v["vms"][0]["name"].as_str().expect("name").to_string();
    assert!(
        e.contains(&format!("vm \"{vm0}\": memory")) && e.contains("above the maximum"),
        "{e}"
    );
    assert!(e.contains("root disk") && e.contains("qcow2"), "{e}");
}

#[test]
fn subnets_with_host_bits_or_leading_zeros_are_rejected_in_files() {
    let mut v = spec();
    v["networks"][0]["cidr"] = serde_json::json!("198.18.0.1/24");
    let e = load_err(&v);
    assert!(
        e.contains("networks[0].cidr") && e.contains("host bits"),
        "{e}"
    );
    let mut v = spec();
    v["networks"][0]["cidr"] = serde_json::json!("198.018.0.0/24");
    let e = load_err(&v);
    assert!(
        e.contains("networks[0].cidr") && e.contains("leading zero"),
        "{e}"
    );
    // The builder (a runtime Ipv4Net) gets a problem naming the network.
    let mut c = Cluster::builder("t", HostBuilder::new("h"));
    let net: flatcar_topology::Ipv4Net = "198.18.0.1/24".parse().expect("ipnet");
    c.lan("lan", net, |n| n.host_at(40));
    let p = c.build().expect_err("invalid").to_string();
    assert!(
        p.contains(
            "network \"lan\": subnet 198.18.0.1/24 has host bits set; the subnet is 198.18.0.0/24"
        ),
        "{p}"
    );
}

#[test]
fn names_that_resolvers_read_as_addresses_are_rejected() {
    for bad in [
        "010.0.0.1",
        "0x7f.0.0.1",
        "2130706433",
        "1.2.3.4",
        "a.0x1f",
        "example.123",
    ] {
        assert!(DomainName::new(bad).is_err(), "{bad}");
        assert!(
            bad.parse::<flatcar_topology::DialAddr>().is_err() || bad.contains("0x"),
            "{bad}"
        );
        assert!(
            format!("{bad}:51820")
                .parse::<flatcar_topology::DialAddr>()
                .is_err()
                || bad == "1.2.3.4",
            "{bad}"
        );
    }
    assert!(DomainName::new("0.flatcar.pool.ntp.org").is_ok());
    let mut v = spec();
    v["ntp"] = serde_json::json!({"upstreams": ["2130706433"]});
    let e = load_err(&v);
    assert!(
        e.contains("ntp.upstreams[0]") && e.contains("address"),
        "{e}"
    );
    let mut v = spec();
    v["vpn"]["public_endpoint"] = serde_json::json!("010.0.0.1:51820");
    let e = load_err(&v);
    assert!(e.contains("vpn.public_endpoint"), "{e}");
    assert!(Name::new("2130706433").is_err());
}

#[test]
fn one_name_one_a_record() {
    let mut v = spec();
    let vm0 = v["vms"][0]["name"].clone();
    v["host"]["name"] = vm0.clone();
    let e = load_err(&v);
    assert!(
        e.contains(&format!("name {vm0} is already used by host")),
        "{e}"
    );
    let mut v = spec();
    v["vms"][1]["name"] = vm0.clone();
    let e = load_err(&v);
    assert!(
        e.contains("vms[1]: name") && e.contains("is already used by vms[0]"),
        "{e}"
    );
}

#[test]
fn volumes_never_collide() {
    let mut v = spec();
    v["vms"][0]["data_disks"] = serde_json::json!([{"name": "root", "size": 10}]);
    let e = load_err(&v);
    assert!(
        e.contains("disk \"root\": volume") && e.contains("is also the volume of vm"),
        "{e}"
    );
    let mut v = spec();
    let a = v["vms"][0]["name"].as_str().expect("name").to_string();
    v["vms"][1]["name"] = serde_json::json!(format!("{a}-x"));
    v["vms"][0]["data_disks"] = serde_json::json!([{"name": "x-root", "size": 10}]);
    let e = load_err(&v);
    assert!(
        e.contains(&format!("volume {a}-x-root.qcow2 is also the volume of")),
        "{e}"
    );
}

#[test]
fn host_interfaces_never_clash() {
    let mut v = spec();
    v["vpn"]["interface"] = v["networks"][1]["bridge"].clone();
    let e = load_err(&v);
    assert!(
        e.contains("vpn: interface") && e.contains("is also the bridge of network"),
        "{e}"
    );
    let mut v = spec();
    v["host"]["uplink"] = v["networks"][1]["bridge"].clone();
    let e = load_err(&v);
    assert!(
        e.contains("bridge") && e.contains("is also the uplink of host"),
        "{e}"
    );
}

#[test]
fn values_the_consuming_tool_rejects() {
    let mut v = spec();
    v["k3s"]["ingress"]["web"] = serde_json::json!(8080);
    let e = load_err(&v);
    assert!(
        e.contains("k3s ingress: web port 8080 is outside the NodePort range 30000-32767"),
        "{e}"
    );

    let mut v = spec();
    v["vips"][0]["preempt"] = serde_json::json!({"after-secs": 1001});
    let e = load_err(&v);
    assert!(
        e.contains("preempt delay 1001 s is above Keepalived's maximum of 1000 s"),
        "{e}"
    );

    let mut v = spec();
    let fw: Vec<String> = (1..=16).map(|i| format!("198.18.9.{i}")).collect();
    v["dns"]["forwarders"] = serde_json::json!(fw);
    let e = load_err(&v);
    assert!(
        e.contains("dns: 16 forwarders; CoreDNS's forward plugin accepts at most 15"),
        "{e}"
    );

    for (cron, field) in [
        ("61 * * * *", "minute"),
        ("0 24 * * *", "hour"),
        ("0 0 0 * *", "day of month"),
        ("0 0 * 13 *", "month"),
        ("0 0 * * 8", "day of week"),
        ("*/0 * * * *", "minute"),
    ] {
        let e = Cron::new(cron).expect_err(cron).to_string();
        assert!(e.contains(field), "{cron}: {e}");
    }
    let mut v = spec();
    v["k3s"]["etcd_snapshots"]["schedule"] = serde_json::json!("0 */25 * * *");
    let e = load_err(&v);
    assert!(
        e.contains("k3s.etcd_snapshots.schedule") && e.contains("hour"),
        "{e}"
    );

    for (mac, why) in [
        ("ff:ff:ff:ff:ff:ff", "broadcast"),
        ("01:00:5e:00:00:01", "multicast"),
        ("33:33:00:00:00:01", "multicast"),
    ] {
        let mut v = spec();
        v["vms"][0]["nics"][0]["mac"] = serde_json::json!(mac);
        let e = load_err(&v);
        assert!(e.contains(&format!("MAC {mac} is {why}")), "{e}");
        assert!(mac.parse::<MacAddr>().is_ok());
    }

    for dir in [
        "/",
        "/etc",
        "/usr",
        "/var/lib",
        "/var/lib/libvirt",
        "/boot/",
        "/a//b",
        "/a/./b",
    ] {
        assert!(PoolPath::new(dir).is_err(), "{dir}");
    }
    assert!(PoolPath::new("/var/lib/libvirt/images/microcloud").is_ok());
    let mut v = spec();
    v["host"]["pool"]["path"] = serde_json::json!("/");
    let e = load_err(&v);
    assert!(
        e.contains("host.pool.path") && e.contains("system directory"),
        "{e}"
    );
    let _ = Preempt::default();
}

#[test]
fn image_references_cannot_carry_a_newline_space_or_quote() {
    let d = "1".repeat(64);
    for bad in [
        format!("docker.io/library/haproxy:lts@sha256:{d}\nExecStartPre=/bin/sh -c id"),
        format!("docker.io/library/haproxy lts@sha256:{d}"),
        format!("docker.io/library/\"haproxy\"@sha256:{d}"),
        "docker.io/library/haproxy:lts".into(),
    ] {
        let e = ImageRef::new(bad.clone()).expect_err(&bad).to_string();
        assert!(is_clean(&e) && !e.contains('\n'), "{e}");
    }
}

#[test]
fn errors_escape_and_shorten_echoed_input_and_name_the_field() {
    // A bad name in a file is a field error naming the field, not a syntax error.
    let mut v = spec();
    v["vms"][2]["name"] = serde_json::json!("evil\u{1b}[2J\nforged: line");
    let e = load_err(&v);
    assert!(e.starts_with("JSON invalid value in vms[2].name"), "{e}");
    assert!(!e.contains("syntax"), "{e}");
    assert!(!e.contains('\u{1b}') && !e.contains("\nforged"), "{e}");
    // Unknown fields and values are echoed escaped and shortened.
    let huge = format!("\u{1b}]0;pwned\u{7}{}", "A".repeat(1_000_000));
    let mut v = spec();
    v["vms"][0][huge.as_str()] = serde_json::json!(1);
    let e = load_err(&v);
    assert!(
        e.contains("unknown field") && e.len() < 2_000,
        "{} bytes",
        e.len()
    );
    let mut v = spec();
    v["vms"][0]["roles"] = serde_json::json!([huge]);
    let e = load_err(&v);
    assert!(
        e.contains("vms[0].roles") && e.len() < 2_000,
        "{} bytes",
        e.len()
    );
    // TOML too.
    let base = toml_text();
    let bad = base.replacen("name = \"worker0\"", "name = \"w\\u001b[31m\\nx\"", 1);
    let e = Cluster::from_str_as(&bad, Format::Toml).expect_err("bad");
    let shown = e.to_string();
    assert!(matches!(e, Error::Field { .. }), "{shown}");
    assert!(is_clean(&shown) && shown.contains("vms[0].name"), "{shown}");
    // A syntax error is one.
    let e = Cluster::from_str_as("name = \n", Format::Toml).expect_err("syntax");
    assert!(matches!(e, Error::Toml { .. }), "{e}");
    assert!(e.to_string().starts_with("TOML syntax error"), "{e}");
    // Collisions name two distinct entries.
    let mut v = spec();
    v["vpn"]["peers"][1]["name"] = v["vpn"]["peers"][0]["name"].clone();
    let e = load_err(&v);
    assert!(
        e.contains("vpn.peers[1]: name") && e.contains("already used by vpn.peers[0]"),
        "{e}"
    );
}

#[test]
fn the_k3s_token_cannot_name_another_secret() {
    let mut v = spec();
    v["k3s"]["token"] = serde_json::json!("wg-endpoint");
    let e = load_err(&v);
    assert!(
        e.contains("k3s.token") && e.contains("cannot name another"),
        "{e}"
    );
    let mut v = spec();
    v["k3s"]["token"] = serde_json::json!("k3s-token");
    let text = serde_json::to_string(&v).expect("json");
    assert!(Cluster::from_str_as(&text, Format::Json).is_ok());
}

#[test]
fn secret_identities_are_unambiguous() {
    use flatcar_topology::SecretId;
    let ids = [
        SecretId::K3sToken,
        SecretId::WgEndpoint,
        SecretId::WgPeer(Name::new("endpoint").expect("name")),
        SecretId::WgPeer(Name::new("k3s-token").expect("name")),
        SecretId::WgPeer(Name::new("peer-a").expect("name")),
        SecretId::service("wg", "endpoint").expect("id"),
        SecretId::service("wg-peer", "a").expect("id"),
        SecretId::service("wg", "peer-a").expect("id"),
    ];
    let files: std::collections::BTreeSet<String> = ids.iter().map(|i| i.file_name()).collect();
    assert_eq!(files.len(), ids.len(), "{files:?}");
    for f in &files {
        assert!(
            f.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'),
            "{f}"
        );
        assert!(!f.starts_with('.') && !f.contains(".."), "{f}");
    }
}
