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
            nft.contains("ip saddr 10.17.4.0/24 ip daddr != 10.17.4.0/24 masquerade"),
            "{dir}: k8s leaves as this host\n{nft}"
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
