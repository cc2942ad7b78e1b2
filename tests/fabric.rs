//! Networks that span hosts (fast tier): the reference cloud on three hosts
//! gets a VXLAN segment per NAT network with recorded VNIs, the overlay MTU
//! everywhere a frame of the segment passes, an anycast gateway and one
//! ruleset and networkd set per host; the single-host cloud gets none of it.

use flatcar_microcloud::multi_host::three_hosts;
use flatcar_microcloud::reference;
use flatcar_microcloud::{Bundle, BundleSecrets};
use flatcar_net::ruleset::{self, Family};
use flatcar_topology::fabric::{Vni, VXLAN_OVERHEAD};
use flatcar_topology::{Cluster, Format, Name, Problem};

fn vni(n: u32) -> Vni {
    Vni::new(n).expect("vni")
}

#[test]
fn three_hosts_record_a_vni_per_nat_network() {
    let c = three_hosts().expect("valid");
    let f = c.fabric().expect("multi-host");
    let vnis: Vec<(String, u32)> = f
        .segments
        .iter()
        .map(|s| (s.network.name.to_string(), s.vni.get()))
        .collect();
    assert_eq!(vnis, [("infra".into(), 100), ("k8s".into(), 101)]);
    assert_eq!(f.overlay_mtu(), 1500 - VXLAN_OVERHEAD);
    assert_eq!(f.port.get(), 4789);
    // Recorded in the model file, and kept when a network is added in front.
    let text = c.to_string_as(Format::Json).expect("json");
    assert!(text.contains("\"vnis\""), "{text}");
    let mut spec = Cluster::from_str_as(&text, Format::Json)
        .expect("loads")
        .into_spec();
    let mut extra = spec.networks[1].clone();
    extra.name = Name::new("aaa").expect("name");
    extra.bridge = "virbr-aaa".parse().expect("ifname");
    extra.cidr = "10.17.7.0/24".parse().expect("net");
    extra.gateway = "10.17.7.1".parse().expect("addr");
    extra.dhcp = None;
    spec.networks.insert(0, extra);
    let c2 = Cluster::try_from(spec).expect("valid");
    let v2 = &c2.spec().fabric.as_ref().expect("fabric").vnis;
    assert_eq!(v2.get(&Name::new("infra").expect("n")), Some(&vni(100)));
    assert_eq!(v2.get(&Name::new("k8s").expect("n")), Some(&vni(101)));
    assert_eq!(v2.get(&Name::new("aaa").expect("n")), Some(&vni(102)));
}

#[test]
fn bad_fabric_is_reported_with_numbers() {
    let mut spec = three_hosts().expect("valid").into_spec();
    let f = spec.fabric.as_mut().expect("fabric");
    f.underlay_mtu = 1300;
    let k8s = Name::new("k8s").expect("n");
    let infra = Name::new("infra").expect("n");
    let v = f.vnis[&infra];
    f.vnis.insert(k8s, v);
    f.vnis.insert(Name::new("lan").expect("n"), vni(7));
    let p = Cluster::try_from(spec).expect_err("invalid");
    let text = p.to_string();
    assert!(text.contains("1300 is outside 1330..=9216"), "{text}");
    assert!(text.contains("VNI 100 is already used"), "{text}");
    assert!(text.contains("only NAT networks span hosts"), "{text}");
    assert!(p.0.len() >= 3, "{text}");
    assert!(p.any(
        |p| matches!(p, Problem::InvalidValue { field, .. } if *field == "fabric.underlay_mtu")
    ));
}

#[test]
fn single_host_has_no_fabric() {
    let c = reference::cluster().expect("valid");
    assert!(c.fabric().is_none());
    assert!(c.spec().fabric.is_none());
    let text = c.to_string_as(Format::Json).expect("json");
    assert!(!text.contains("fabric"), "{text}");
    let b = Bundle::render(&c, &mut BundleSecrets::default()).expect("renders");
    assert!(b.files().keys().all(|p| !p.starts_with("hosts/")));
    let rules = ruleset::build(&c, &[]).to_text();
    assert!(!rules.contains("4789") && !rules.contains("ether saddr"));
    for (path, f) in b.files() {
        if path.starts_with("libvirt/") {
            let t = String::from_utf8_lossy(&f.contents);
            assert!(!t.contains("<mtu"), "{path}");
        }
    }
}

#[test]
fn every_host_gets_its_ruleset_and_networkd_files() {
    let c = three_hosts().expect("valid");
    let b = Bundle::render(&c, &mut BundleSecrets::default()).expect("renders");
    let f = c.fabric().expect("fabric");
    for h in c.kvm_hosts() {
        let dir = format!("hosts/{}", h.name);
        let nft = String::from_utf8_lossy(&b.files()[&format!("{dir}/nftables.nft")].contents)
            .to_string();
        let peers: Vec<String> = f.peers(h).iter().map(|a| a.to_string()).collect();
        assert_eq!(peers.len(), 2);
        let accept = format!("ip saddr {{ {} }} udp dport 4789 accept", peers.join(", "));
        assert!(nft.contains(&accept), "{dir}: {accept}\n{nft}");
        assert!(nft.contains("udp dport 4789 drop"), "{nft}");
        assert!(
            nft.contains(
                "ip saddr 10.17.4.0/24 ip daddr != { 10.17.3.0/24, 10.17.4.0/24 } masquerade"
            ),
            "{dir}: k8s leaves as this host, except to another spanning network\n{nft}"
        );
        assert!(
            !nft.contains(&format!("{} ", h.address)),
            "{dir}: own address listed"
        );
        for seg in &f.segments {
            let mac = seg.gateway_mac.to_string();
            assert!(
                nft.contains(&format!("oifname \"{}\" ether saddr {mac} drop", seg.vxlan)),
                "{nft}"
            );
            assert!(
                nft.contains(&format!("iifname \"{}\" ether saddr {mac} drop", seg.vxlan)),
                "{nft}"
            );
            let netdev = String::from_utf8_lossy(
                &b.files()[&format!("{dir}/network/51-{}.netdev", seg.vxlan)].contents,
            )
            .to_string();
            assert!(
                netdev.contains(&format!("Local={}\n", h.address)),
                "{netdev}"
            );
            assert!(netdev.contains(&format!("VNI={}\n", seg.vni)), "{netdev}");
            assert!(netdev.contains("MTUBytes=1450\n"), "{netdev}");
            let br = String::from_utf8_lossy(
                &b.files()[&format!("{dir}/network/50-{}.netdev", seg.network.bridge)].contents,
            )
            .to_string();
            assert!(br.contains(&format!("MACAddress={mac}\n")), "{br}");
        }
        // Same typed ruleset in JSON.
        assert!(b.files().contains_key(&format!("{dir}/nftables.json")));
        let r = ruleset::build_for(&c, &[], h);
        assert_eq!(r.rules(Family::Bridge, "output").len(), f.segments.len());
    }
    // The gateway MAC and address are the same on every host.
    let macs: std::collections::BTreeSet<String> = c
        .kvm_hosts()
        .iter()
        .map(|h| {
            String::from_utf8_lossy(
                &b.files()[&format!("hosts/{}/network/50-virbr-k8s.netdev", h.name)].contents,
            )
            .lines()
            .filter(|l| l.starts_with("MACAddress="))
            .collect::<String>()
        })
        .collect();
    assert_eq!(macs.len(), 1, "{macs:?}");
    assert!(String::from_utf8_lossy(&b.files()["README.md"].contents).contains("hosts/<host>/"));
}

#[test]
fn vms_on_spanning_networks_use_the_overlay_mtu() {
    let c = three_hosts().expect("valid");
    let b = Bundle::render(&c, &mut BundleSecrets::default()).expect("renders");
    let net = String::from_utf8_lossy(&b.files()["libvirt/networks/k8s.xml"].contents).to_string();
    assert!(net.contains("<forward mode=\"bridge\"/>"), "{net}");
    assert!(!net.contains("<ip "), "{net}");
    let lan = String::from_utf8_lossy(&b.files()["libvirt/networks/lan.xml"].contents).to_string();
    assert!(!lan.contains("mtu"), "{lan}");
    let dom =
        String::from_utf8_lossy(&b.files()["libvirt/domains/master1.xml"].contents).to_string();
    assert!(dom.contains("<mtu size=\"1450\"/>"), "{dom}");
    let composed = flatcar_microcloud::services::compose(
        &c,
        &mut flatcar_topology::provision::MemorySecrets::default(),
    )
    .expect("composes");
    let file = &composed.nodes["master1"].files["/etc/systemd/network/10-eth0.network"];
    let flatcar_topology::provision::Contents::Inline(text) = &file.contents else {
        panic!("inline")
    };
    let text = String::from_utf8_lossy(text);
    assert!(text.contains("[Link]\nMTUBytes=1450\n"), "{text}");
    // lb1's LAN NIC keeps the LAN's MTU, its k8s NIC gets the overlay's.
    let lb = c.vm("lb1").expect("lb1");
    let mtus: Vec<Option<u16>> = c.nics(lb).iter().map(|n| c.nic_mtu(n.network)).collect();
    assert_eq!(mtus, [None, Some(1450)]);
}

fn text(b: &Bundle, path: &str) -> String {
    String::from_utf8_lossy(&b.files()[path].contents).to_string()
}

#[test]
fn the_transit_routes_each_remote_vm_through_its_host() {
    let c = three_hosts().expect("valid");
    let f = c.fabric().expect("fabric");
    assert_eq!(f.transit.vni.get(), 99);
    assert_eq!(f.transit.ifname.as_str(), "vx99");
    let b = Bundle::render(&c, &mut BundleSecrets::default()).expect("renders");
    let hosts = c.kvm_hosts();
    let host_of = |vm: &str| c.host_of(c.vm(vm).expect("vm")).name.to_string();
    let pg = c.vm("postgresql1").expect("pg");
    let pg_host = c.host_of(pg);
    let pg_addr = c.nics(pg)[0].address;
    for h in &hosts {
        let dir = format!("hosts/{}", h.name);
        let netdev = text(&b, &format!("{dir}/network/52-vx99.netdev"));
        assert!(
            netdev.contains("Kind=vxlan\n") && netdev.contains("VNI=99\n"),
            "{netdev}"
        );
        assert!(
            netdev.contains(&format!("Local={}\n", h.address)),
            "{netdev}"
        );
        assert!(
            netdev.contains(&format!("MACAddress={}\n", f.transit_mac(h))),
            "{netdev}"
        );
        let net = text(&b, &format!("{dir}/network/52-vx99.network"));
        for peer in hosts.iter().filter(|p| p.name != h.name) {
            let mac = f.transit_mac(peer);
            assert!(
                net.contains(&format!(
                    "[BridgeFDB]\nMACAddress={mac}\nDestination={}\n",
                    peer.address
                )),
                "{net}"
            );
            assert!(
                net.contains(&format!(
                    "[Neighbor]\nAddress={}\nLinkLayerAddress={mac}\n",
                    peer.address
                )),
                "{net}"
            );
        }
        // postgresql1 (infra) through its own host, from every other host;
        // no route for a VM the host runs itself.
        let route = format!(
            "[Route]\nDestination={pg_addr}/32\nGateway={}\nGatewayOnLink=yes\n",
            pg_host.address
        );
        assert!(
            net.contains(&format!("Address={}/32\n", h.address)),
            "{net}"
        );
        assert_eq!(net.contains(&route), h.name != pg_host.name, "{dir}: {net}");
        for vm in c.vms() {
            let on = c.host_of(vm);
            for nic in c.nics(vm) {
                if f.segment(nic.network.name.as_str()).is_none() {
                    continue;
                }
                let routed = f
                    .remote_routes(&c, h)
                    .iter()
                    .any(|(p, via)| p.contains(&nic.address) && via.name == on.name);
                assert_eq!(
                    routed,
                    on.name != h.name,
                    "{dir}: {} {}",
                    vm.name,
                    nic.address
                );
            }
        }
        // VPN clients' replies go back to the first host, where the VPN ends.
        let vpn = format!("Destination=10.17.9.0/24\nGateway={}\n", hosts[0].address);
        assert_eq!(net.contains(&vpn), h.name != hosts[0].name, "{net}");
        // The ruleset lets spanning networks' addresses in from the transit.
        let nft = text(&b, &format!("{dir}/nftables.nft"));
        assert!(
            nft.contains("ip saddr 10.17.3.0/24 iifname != { \"virbr-infra\", \"vx99\" } drop"),
            "{nft}"
        );
    }
    assert_ne!(
        host_of("worker1"),
        host_of("postgresql1"),
        "a cross-host worker"
    );
}

#[test]
fn a_network_vni_equal_to_the_transit_is_reported() {
    let mut spec = three_hosts().expect("valid").into_spec();
    let f = spec.fabric.as_mut().expect("fabric");
    f.vnis.insert(Name::new("k8s").expect("n"), vni(99));
    let text = Cluster::try_from(spec).expect_err("invalid").to_string();
    assert!(text.contains("VNI 99 is the transit's"), "{text}");
}

#[test]
fn lan_vms_route_each_nat_vm_through_the_host_it_runs_on() {
    let c = three_hosts().expect("valid");
    let composed = flatcar_microcloud::services::compose(
        &c,
        &mut flatcar_topology::provision::MemorySecrets::default(),
    )
    .expect("composes");
    let file = &composed.nodes["infra"].files["/etc/systemd/network/10-eth0.network"];
    let flatcar_topology::provision::Contents::Inline(bytes) = &file.contents else {
        panic!("inline")
    };
    let net = String::from_utf8_lossy(bytes).to_string();
    assert!(!net.contains("Destination=10.17.4.0/24"), "{net}");
    assert!(!net.contains("Destination=10.17.3.0/24"), "{net}");
    for vm in c.vms() {
        let host = c.host_of(vm);
        for nic in c.nics(vm) {
            if nic.network.kind != flatcar_topology::NetworkKind::Nat || vm.name.as_str() == "infra"
            {
                continue;
            }
            let covered = net
                .split("[Route]\n")
                .skip(1)
                .filter(|r| r.contains(&format!("Gateway={}\n", host.address)))
                .filter_map(|r| {
                    r.lines()
                        .find_map(|l| l.strip_prefix("Destination="))
                        .and_then(|d| d.parse::<ipnet::Ipv4Net>().ok())
                })
                .any(|p| p.contains(&nic.address));
            assert!(
                covered,
                "{} {} via {}: {net}",
                vm.name, nic.address, host.name
            );
        }
    }
    // The single-host cloud keeps one route per network through the host.
    let single = reference::cluster().expect("valid");
    let composed = flatcar_microcloud::services::compose(
        &single,
        &mut flatcar_topology::provision::MemorySecrets::default(),
    )
    .expect("composes");
    let file = &composed.nodes["infra"].files["/etc/systemd/network/10-eth0.network"];
    let flatcar_topology::provision::Contents::Inline(bytes) = &file.contents else {
        panic!("inline")
    };
    let net = String::from_utf8_lossy(bytes).to_string();
    assert!(
        net.contains("[Route]\nDestination=10.17.4.0/24\nGateway=192.168.0.40\n"),
        "{net}"
    );
}

#[test]
fn the_host_playbook_covers_every_host() {
    let c = three_hosts().expect("valid");
    let b = Bundle::render(&c, &mut BundleSecrets::default()).expect("renders");
    let inv = text(&b, "host/inventory.yml");
    let parsed: serde_yaml::Value = serde_yaml::from_str(&inv).expect("yaml");
    let hosts = &parsed["all"]["children"]["kvm_hosts"]["hosts"];
    for (i, h) in c.kvm_hosts().iter().enumerate() {
        let v = &hosts[h.name.as_str()];
        assert_eq!(
            v["ansible_host"].as_str(),
            Some(h.address.to_string().as_str()),
            "{inv}"
        );
        assert_eq!(
            v["microcloud_libvirt"].as_str(),
            Some(h.libvirt_uri(i == 0).as_str()),
            "{inv}"
        );
        // Everything the playbook installs on that host is in the bundle.
        assert!(b
            .files()
            .contains_key(&format!("hosts/{}/nftables.nft", h.name)));
        assert!(b
            .files()
            .keys()
            .any(|p| p.starts_with(&format!("hosts/{}/network/", h.name))));
    }
    let play = text(&b, "host/playbook.yml");
    let parsed: serde_yaml::Value = serde_yaml::from_str(&play).expect("yaml");
    assert_eq!(parsed[0]["hosts"].as_str(), Some("kvm_hosts"), "{play}");
    for needle in [
        "{{ playbook_dir }}/../hosts/{{ inventory_hostname }}",
        "src: \"{{ host_dir }}/network/\"",
        "networkctl reload",
        "src: \"{{ host_dir }}/nftables.nft\"",
        "validate: nft -c -f %s",
        "net.ipv4.ip_forward=1",
        "when: inventory_hostname == \"kvm1\"",
    ] {
        assert!(play.contains(needle), "{needle}:\n{play}");
    }
    // One host: the playbook of before, no inventory of hosts.
    let single = reference::cluster().expect("valid");
    let b = Bundle::render(&single, &mut BundleSecrets::default()).expect("renders");
    assert!(!b.files().contains_key("host/inventory.yml"));
    let play = text(&b, "host/playbook.yml");
    assert!(
        play.contains("src: nftables.nft") && !play.contains("kvm_hosts"),
        "{play}"
    );
}

#[test]
fn each_hosts_plan_has_its_networkd_files_and_wireguard_only_on_the_first() {
    use flatcar_microcloud::host;
    let c = three_hosts().expect("valid");
    for (i, h) in c.kvm_hosts().into_iter().enumerate() {
        let r = ruleset::build_for(&c, &[], h);
        let p = host::plan_for(&c, h, &r, &[]);
        assert_eq!(p.wireguard.is_some(), i == 0, "{}", h.name);
        let n = p.networkd.as_ref().expect("several hosts");
        assert_eq!(n.host, h.name.as_str());
        assert_eq!(n.files, flatcar_net::fabric::networkd(&c, h));
        let text = p.to_string();
        assert!(
            text.contains(&format!("host plan ({0}, from hosts/{0}/):", h.name)),
            "{text}"
        );
        assert!(text.contains("sysctl: net.ipv4.ip_forward=1"), "{text}");
    }
    let single = reference::cluster().expect("valid");
    let r = ruleset::build(&single, &[]);
    let p = host::plan(&single, &r, &[]);
    assert!(p.networkd.is_none() && p.wireguard.is_some());
    assert!(p.to_string().starts_with("host plan:\n"), "{p}");
}
