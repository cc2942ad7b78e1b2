//! Live (validators and namespaces, feature `live`): flatcar-net on the
//! reference cloud, judged by the real tools: `nft -c` (and loading the
//! ruleset in a namespace), `named-checkzone`, `chronyd -p`, `wg`.

#[path = "../benches/common/scale.rs"]
mod scale;
mod support;

use flatcar_microcloud::reference::cluster;
use flatcar_microcloud::{Bundle, BundleSecrets};
use flatcar_net::{chrony, coredns as dns, ruleset, wireguard};
use std::process::Command;
use support::{require, run, unique, Netns, TempDir};

fn bundle() -> Bundle {
    Bundle::render(&cluster().expect("valid"), &mut BundleSecrets::default()).expect("renders")
}

fn text(b: &Bundle, path: &str) -> String {
    String::from_utf8(b.files()[path].contents.clone()).expect("utf8")
}

fn nft_in(ns: &Netns, r: &ruleset::Ruleset, extra: &[&str]) -> Result<(), flatcar_net::Error> {
    let mut args = vec!["netns", "exec", ns.name.as_str(), "nft"];
    args.extend_from_slice(extra);
    ruleset::apply_with(r, "ip", &args)
}

fn listed(ns: &Netns) -> String {
    String::from_utf8_lossy(&ns.exec(&["nft", "list", "ruleset"]).stdout).to_string()
}

#[test]
fn nft_accepts_text_and_json_and_both_load_the_same_ruleset() {
    require("nft");
    let b = bundle();
    let text = text(&b, "host/nftables.nft");
    let c = cluster().expect("valid");
    let r = ruleset::build(&c, &[]);
    // The bundle's text is the typed ruleset's text (plus service flows).
    assert!(text.contains("table inet microcloud {"), "{text}");
    let tmp = TempDir::new("nft");
    let path = tmp.path().join("rules.nft");
    std::fs::write(&path, &text).expect("write");
    let path = path.to_str().expect("utf8");

    // Dry runs: the text with `nft -c -f`, the JSON with `nft -c -j -f -`.
    let a = Netns::new(&unique("nfta"));
    a.exec(&["nft", "-c", "-f", path]);
    nft_in(&a, &r, &["-c"]).expect("json dry run");
    assert_eq!(listed(&a), "", "a dry run changes nothing");

    // Text in one namespace, JSON in another: the kernel holds the same ruleset.
    let text_only = r.to_text();
    let tpath = tmp.path().join("typed.nft");
    std::fs::write(&tpath, &text_only).expect("write");
    a.exec(&["nft", "-f", tpath.to_str().expect("utf8")]);
    let j = Netns::new(&unique("nftj"));
    nft_in(&j, &r, &[]).expect("json apply");
    let (lt, lj) = (listed(&a), listed(&j));
    assert_eq!(lt, lj, "text and JSON load different rulesets");
    println!("{lj}");

    // Replacing is idempotent and leaves other tables (libvirt's) alone.
    j.exec(&["nft", "add table ip libvirt_network"]);
    j.exec(&["nft", "add chain ip libvirt_network guest_output"]);
    nft_in(&j, &r, &[]).expect("second apply");
    let again = listed(&j);
    assert_eq!(again.matches("table inet microcloud").count(), 1, "{again}");
    assert!(again.contains("table ip libvirt_network"), "{again}");
    assert!(again.contains("policy drop"));

    // A ruleset the kernel rejects (masquerade in a filter chain) fails as a
    // whole: the delete of our tables in the same transaction is undone.
    let mut broken = r.clone();
    broken.tables[0].chains[0].rules.push(ruleset::Rule {
        matches: vec![],
        verdict: ruleset::Verdict::Masquerade,
        comment: None,
    });
    let err = nft_in(&j, &broken, &[]).expect_err("rejected");
    println!("rejected as expected: {err}");
    assert_eq!(listed(&j), again, "a failed apply changed the ruleset");
    let out = j.try_exec(&[
        "sh",
        "-c",
        &format!("echo '{}' | nft -f -", broken.to_text().replace('\'', "")),
    ]);
    assert!(!out.status.success());
    assert_eq!(listed(&j), again, "a failed text apply changed the ruleset");
}

#[test]
fn zones_pass_named_checkzone() {
    require("named-checkzone");
    let c = cluster().expect("valid");
    let tmp = TempDir::new("zone");
    let mut zones = vec![(c.domain().to_string(), dns::zone(&c, &[]))];
    zones.extend(dns::reverse_zones(&c));
    assert_eq!(zones.len(), 4, "forward + one reverse zone per /24");
    for (name, text) in zones {
        let path = tmp.path().join(format!("{name}.zone"));
        std::fs::write(&path, &text).expect("write");
        let out = Command::new("named-checkzone")
            .arg(&name)
            .arg(&path)
            .output()
            .expect("named-checkzone");
        assert!(
            out.status.success(),
            "{name}: {}\n{text}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let z = dns::zone(&c, &[]);
    for (name, addr) in [
        ("api", "192.168.0.10"),
        ("web", "192.168.0.14"),
        ("*.apps", "192.168.0.14"),
        ("master1", "10.17.4.21"),
        ("lb1.k8s", "10.17.4.11"),
        ("kvm1", "192.168.0.40"),
    ] {
        assert!(
            z.lines()
                .any(|l| l.starts_with(&format!("{name} ")) && l.ends_with(addr)),
            "{name} -> {addr}\n{z}"
        );
    }
    assert_eq!(dns::zone(&c, &[]), z, "deterministic serial");
}

#[test]
fn chronyd_parses_server_and_client() {
    require("chronyd");
    let c = cluster().expect("valid");
    let tmp = TempDir::new("chrony");
    for (name, text) in [
        ("server", chrony::server(&c)),
        ("client", chrony::client(&c)),
    ] {
        let path = tmp.path().join(format!("{name}.conf"));
        std::fs::write(&path, &text).expect("write");
        let out = Command::new("chronyd")
            .args(["-p", "-f"])
            .arg(&path)
            .output()
            .expect("chronyd");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed = String::from_utf8_lossy(&out.stdout);
        if name == "server" {
            assert!(
                printed.contains("allow 10.17.4.0/24")
                    && printed.contains("local stratum 10 orphan"),
                "{printed}"
            );
        } else {
            assert!(printed.contains("server 192.168.0.30 iburst"), "{printed}");
        }
    }
}

#[test]
fn wireguard_configs_are_accepted_by_wg_and_keys_stay_secret() {
    require("wg");
    let b = bundle();
    for path in ["host/wg0.conf", "vpn/laptop.conf", "vpn/vps.conf"] {
        let f = &b.files()[path];
        assert!(f.secret, "{path} must be 0600");
        let t = String::from_utf8_lossy(&f.contents).to_string();
        assert!(t.contains("PrivateKey = "), "{path}");
        // `wg` parses the stripped config (showconf round trip via a private key check).
        let stripped = wireguard::strip(&t);
        let key = stripped
            .lines()
            .find_map(|l| l.strip_prefix("PrivateKey = "))
            .expect("key");
        let out = run(&["sh", "-c", &format!("echo {key} | wg pubkey")]);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim().len(), 44);
    }
    let laptop = text(&b, "vpn/laptop.conf");
    assert!(
        laptop.contains("AllowedIPs = 192.168.0.0/24, 10.17.3.0/24, 10.17.4.0/24, 10.17.9.0/24"),
        "{laptop}"
    );
    assert!(laptop.contains("Endpoint = vpn.microcloud.example.org:51820"));
    let host = text(&b, "host/wg0.conf");
    assert!(
        host.contains("AllowedIPs = 10.17.9.2/32") && host.contains("Endpoint = 203.0.113.7:51820"),
        "{host}"
    );
    let kp = wireguard::keypair(
        &flatcar_topology::SecretId::WgEndpoint,
        wireguard::generate().expect("random"),
    )
    .expect("key");
    assert!(format!("{kp:?}").contains("<redacted>"));
}

/// Large role sets are merged into prefixes covering exactly the role's
/// addresses (no neighbour of another role slips in), and `nft -c` accepts
/// the result in text and JSON form.
#[test]
fn large_address_sets_are_aggregated_exactly() {
    require("nft");
    let c = scale::cloud(2000).expect("valid");
    let composed = flatcar_microcloud::services::compose(
        &c,
        &mut flatcar_topology::provision::MemorySecrets::default(),
    )
    .expect("compose");
    let rs = ruleset::build(&c, &composed.flows);
    let workers: Vec<std::net::Ipv4Addr> = c
        .with_role(flatcar_topology::Role::Worker)
        .filter_map(|v| v.primary_address())
        .collect();
    let others: Vec<std::net::Ipv4Addr> = c
        .vms()
        .iter()
        .filter(|v| !v.has(flatcar_topology::Role::Worker))
        .flat_map(|v| v.nics.iter().map(|n| n.address))
        .collect();
    let rule = rs
        .tables
        .iter()
        .flat_map(|t| &t.chains)
        .flat_map(|ch| &ch.rules)
        .find(|r| {
            r.comment
                .as_deref()
                .is_some_and(|c| c.starts_with("role:load-balancer -> role:worker"))
        })
        .expect("lb -> worker rule");
    let set = rule
        .matches
        .iter()
        .find_map(|m| match m {
            ruleset::Match::Addr(ruleset::Dir::Destination, ruleset::Op::Eq, nets) => Some(nets),
            _ => None,
        })
        .expect("destination set");
    assert!(
        set.len() > ruleset::AGGREGATE_ABOVE && set.len() * 4 < workers.len(),
        "{} prefixes for {} workers",
        set.len(),
        workers.len()
    );
    for w in &workers {
        assert!(set.iter().any(|n| n.contains(w)), "{w} not covered");
    }
    for o in &others {
        assert!(!set.iter().any(|n| n.contains(o)), "{o} wrongly covered");
    }
    ruleset::check(&rs).expect("nft -c accepts the JSON form");
    ruleset::check_text(&rs.to_text()).expect("nft -c accepts the text form");
}

/// A zone rendered after a change carries the next serial, and
/// `named-checkzone` accepts it; the library API takes the previous serial
/// (typed) and the previous text.
#[test]
fn a_changed_zone_has_the_next_serial_and_passes_named_checkzone() {
    require("named-checkzone");
    let c = cluster().expect("valid");
    let first = dns::zone(&c, &[]);
    let prev = dns::PreviousZone::parse(&first).expect("has a serial");
    assert_eq!(prev.serial, dns::Serial::FIRST);
    // Unchanged: the same serial and bytes.
    assert_eq!(dns::zone_after(&c, &[], Some(&prev)), first);
    // Changed (a service's record): the next serial.
    let extra = [flatcar_topology::provision::DnsRecord {
        name: "registry".into(),
        address: std::net::Ipv4Addr::new(192, 168, 0, 99),
    }];
    let changed = dns::zone_after(&c, &extra, Some(&prev));
    assert_eq!(dns::Serial::of_zone(&changed), Some(dns::Serial::new(2)));
    // A caller continuing from a serial of its own (e.g. a zone served before).
    let theirs = dns::PreviousZone {
        serial: dns::Serial::new(2026112500),
        text: first.clone(),
    };
    let cont = dns::zone_after(&c, &[], Some(&theirs));
    assert_eq!(
        dns::Serial::of_zone(&cont),
        Some(dns::Serial::new(2026112501))
    );
    assert_eq!(dns::Serial::new(u32::MAX).next(), dns::Serial::new(1));
    let tmp = TempDir::new("zone2");
    for (name, text) in [
        (c.domain().to_string(), changed),
        (c.domain().to_string(), cont),
    ] {
        let path = tmp.path().join(format!("{name}.zone"));
        std::fs::write(&path, &text).expect("write");
        let out = Command::new("named-checkzone")
            .arg(&name)
            .arg(&path)
            .output()
            .expect("named-checkzone");
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{said}\n{text}");
        let serial = dns::Serial::of_zone(&text).expect("serial");
        assert!(said.contains(&format!("serial {serial}")), "{said}");
    }
}

/// The LAN router's files: a table with both forwards, and a DNAT ruleset
/// `nft -c` accepts (checked in a namespace of its own).
#[test]
fn router_port_forwards_table_and_ruleset() {
    require("nft");
    let b = bundle();
    let table = text(&b, "router/port-forwards.md");
    for row in [
        "| tcp | 8080 | web | 192.168.0.14 | 80 |",
        "| tcp | 2052 | web | 192.168.0.14 | 443 |",
    ] {
        assert!(table.contains(row), "{row}\n{table}");
    }
    let rules = text(&b, "router/nftables.nft");
    assert!(
        rules.contains("iifname \"wan\" tcp dport 8080 dnat to 192.168.0.14:80")
            && rules.contains("iifname \"wan\" tcp dport 2052 dnat to 192.168.0.14:443"),
        "{rules}"
    );
    let tmp = TempDir::new("router");
    let path = tmp.path().join("router.nft");
    std::fs::write(&path, &rules).expect("write");
    let ns = Netns::new(&unique("rtr"));
    let out = ns.try_exec(&["nft", "-c", "-f", path.to_str().expect("utf8")]);
    assert!(
        out.status.success(),
        "nft -c: {}\n{rules}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Loaded twice (the table is replaced, not duplicated).
    ns.exec(&["nft", "-f", path.to_str().expect("utf8")]);
    ns.exec(&["nft", "-f", path.to_str().expect("utf8")]);
    assert_eq!(
        listed(&ns).matches("table ip microcloud-forwards").count(),
        1
    );
}

/// What `from` got from `addr:port` (one TCP connection, 2 s), if anything.
fn fetch(from: &Netns, addr: std::net::Ipv4Addr, port: u16) -> Option<String> {
    support::assert_test_addr(addr);
    let out = from.try_exec(&[
        "socat",
        "-t2",
        "-T2",
        "-",
        &format!("TCP:{addr}:{port},connect-timeout=2"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// An artifact mirror on the LAN, given by address in the model (a machine
/// outside the model, with no route to the NAT networks): worker1, on the
/// k8s NAT network, fetches from it through the bundle's host ruleset
/// loaded in a host namespace. The fetch flows the composition derives
/// admit exactly the mirror's port (8080 answers, 8081 on the same machine
/// does not), and the ruleset masquerades them, so the mirror sees the
/// host's LAN address. The same cloud without the mirror: dropped.
#[test]
fn nat_vms_fetch_from_a_lan_mirror_through_the_host_ruleset() {
    use flatcar_microcloud::reference::{cluster_with, AddressPlan};
    use flatcar_topology::artifact::SourceUrl;
    use flatcar_topology::Cluster;
    use std::net::Ipv4Addr;
    use support::{bridge, enslave, veth, wait_until};
    for t in ["nft", "ip", "socat"] {
        require(t);
    }
    let mirror = Ipv4Addr::new(198, 18, 0, 5);
    let cloud = |mirrored: bool| {
        let mut spec = cluster_with(&AddressPlan::test())
            .expect("valid")
            .into_spec();
        if mirrored {
            spec.artifacts.mirror.files =
                Some(SourceUrl::new(format!("http://{mirror}:8080/dl")).expect("url"));
        }
        Cluster::try_from(spec).expect("valid")
    };
    for mirrored in [true, false] {
        let c = cloud(mirrored);
        let b = Bundle::render(&c, &mut BundleSecrets::default()).expect("renders");
        let rules = text(&b, "host/nftables.nft");
        let p = unique("mir");
        let host = Netns::new(&format!("{p}h"));
        for net in c.networks() {
            bridge(&host, net.bridge.as_str());
            let a = if net.is_lan() {
                c.host().address
            } else {
                net.gateway
            };
            host.addr(net.bridge.as_str(), a, net.cidr.prefix_len());
        }
        host.sysctl("net.ipv4.ip_forward", "1");
        let tmp = TempDir::new("mirror");
        let path = tmp.path().join("host.nft");
        std::fs::write(&path, &rules).expect("write");
        host.exec(&["nft", "-f", path.to_str().expect("utf8")]);
        // worker1's primary NIC, its gateway the host.
        let vm = c.vm("worker1").expect("worker1");
        let nics = c.nics(vm);
        let nic = nics.first().expect("a NIC");
        let w = Netns::new(&format!("{p}w"));
        veth(&w, "eth0", &host, "w1");
        enslave(&host, "w1", nic.network.bridge.as_str());
        w.addr("eth0", nic.address, nic.prefix);
        w.ip(&[
            "route",
            "add",
            "default",
            "via",
            &nic.network.gateway.to_string(),
        ]);
        // The mirror: on the LAN, no route beyond it.
        let lan = c.networks().iter().find(|n| n.is_lan()).expect("lan");
        let m = Netns::new(&format!("{p}m"));
        veth(&m, "eth0", &host, "m1");
        enslave(&host, "m1", lan.bridge.as_str());
        m.addr("eth0", mirror, lan.cidr.prefix_len());
        let _files = m.spawn(&[
            "socat",
            "TCP-LISTEN:8080,fork,reuseaddr",
            "SYSTEM:echo from $SOCAT_PEERADDR",
        ]);
        let _other = m.spawn(&[
            "socat",
            "TCP-LISTEN:8081,fork,reuseaddr",
            "SYSTEM:echo other",
        ]);
        wait_until(std::time::Duration::from_secs(5), || {
            String::from_utf8_lossy(&m.exec(&["ss", "-ltnH"]).stdout)
                .matches(":808")
                .count()
                == 2
        })
        .expect("the mirror listens");
        let got = fetch(&w, mirror, 8080);
        let other = fetch(&w, mirror, 8081);
        println!(
            "mirror {}: worker1 → {mirror}:8080 {got:?}, :8081 {other:?}",
            if mirrored {
                "in the model"
            } else {
                "not in the model"
            }
        );
        if mirrored {
            assert!(
                rules.contains(&format!("ip daddr {mirror} tcp dport 8080 accept")),
                "{rules}"
            );
            assert_eq!(
                got.as_deref(),
                Some(format!("from {}", c.host().address).as_str()),
                "the fetch is admitted and leaves as the host"
            );
        } else {
            assert_eq!(got, None, "no mirror in the model, no path to it");
        }
        assert_eq!(other, None, "only the mirror's port is admitted");
    }
}
