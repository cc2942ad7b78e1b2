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
