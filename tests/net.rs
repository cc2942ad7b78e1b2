//! flatcar-net on the reference cloud: the ruleset states the security
//! claims (pure Rust; the real tools judge the same output in `net_live.rs`).

use flatcar_microcloud::reference::cluster;
use flatcar_net::ruleset;

#[test]
fn ruleset_states_the_security_claims() {
    use ruleset::{Dir, Family, Match, Op, Verdict};
    let c = cluster().expect("valid");
    let r = ruleset::build(&c, &[]);
    let t = r.to_text();
    let inside = "{ 10.17.3.0/24, 10.17.4.0/24, 10.17.9.0/24, 192.168.0.0/24 }";
    for chain in ["input", "forward"] {
        let rules = r.rules(Family::Inet, chain);
        let api = rules
            .iter()
            .position(|r| {
                r.to_string()
                    .starts_with(&format!("ip saddr != {inside} tcp dport 6443 drop"))
            })
            .unwrap_or_else(|| panic!("{chain}: 6443 from outside dropped\n{t}"));
        let first_accept_of_outside = rules.iter().position(|r| {
            r.verdict == Verdict::Accept
                && r.matches
                    .iter()
                    .any(|m| matches!(m, Match::Addr(Dir::Source, Op::Ne, _)))
        });
        assert!(
            first_accept_of_outside.is_none_or(|i| i > api),
            "{chain}: drop before any accept"
        );
    }
    assert!(
        t.contains("ip saddr 192.168.0.0/24 tcp dport 22 accept"),
        "{t}"
    );
    assert!(
        t.contains("ip saddr 10.17.9.0/24 tcp dport 22 accept"),
        "{t}"
    );
    assert!(t.contains("udp dport 51820 accept"), "{t}");
    assert!(
        t.contains(&format!(
            "ip saddr 10.17.4.0/24 ip daddr != {inside} masquerade"
        )),
        "{t}"
    );
    // LB -> masters: a forward rule exists (routed path), besides the bridge.
    assert!(
        t.contains("ip saddr { 10.17.4.11, 10.17.4.12, 192.168.0.11, 192.168.0.12 } ip daddr { 10.17.4.21, 10.17.4.22, 10.17.4.23 } tcp dport 6443 accept"),
        "{t}"
    );
    // Workers -> database crosses NAT networks; masters -> database does not exist.
    assert!(
        t.contains("ip daddr 10.17.3.14 tcp dport 5432 accept"),
        "{t}"
    );
    assert!(!t.contains("flush ruleset"), "never flush libvirt's tables");
    for chain in ["input", "forward"] {
        let fw = &r.tables[0]
            .chains
            .iter()
            .find(|ch| ch.name == chain)
            .expect("chain");
        assert_eq!(fw.policy, ruleset::Policy::Drop);
    }
    // Only the web VIP's ports are open from the internet side on the LAN bridge.
    let bridge: Vec<String> = r
        .rules(Family::Bridge, "forward")
        .iter()
        .map(|r| r.to_string())
        .collect();
    let bridge = bridge.join("\n");
    assert!(
        bridge.contains("ip daddr 192.168.0.14 tcp dport != { 80, 443 } drop"),
        "{bridge}"
    );
    assert!(
        bridge.contains(&format!("ip saddr != {inside} ip daddr 192.168.0.10 drop")),
        "{bridge}"
    );
    assert!(bridge.contains("tcp dport 6443 drop"), "{bridge}");
    // Services' flows are honoured.
    let extra = flatcar_topology::Flow {
        from: flatcar_topology::Endpoint::Lan,
        to: flatcar_topology::Endpoint::Role(flatcar_topology::Role::Storage),
        proto: flatcar_topology::Proto::Tcp,
        ports: vec![flatcar_topology::PortRange::one(
            flatcar_topology::Port::of(2049),
        )],
        why: None,
    };
    let with = ruleset::render(&c, &[extra]);
    assert!(
        with.contains("ip saddr 192.168.0.0/24 ip daddr 10.17.4.27 tcp dport 2049 accept"),
        "{with}"
    );
    assert_eq!(ruleset::render(&c, &[]), t, "deterministic");
    let json = ruleset::render_json(&c, &[]).expect("json");
    let v: serde_json::Value = serde_json::from_str(&json).expect("valid json");
    assert_eq!(v["nftables"][1]["delete"]["table"]["name"], "microcloud");
}

/// The reference cloud with its artifacts fetched through `files` (and
/// images through `registry`): the flows the composition derives and the
/// host ruleset's text.
fn mirrored(files: Option<&str>, registry: Option<&str>) -> (Vec<String>, String) {
    use flatcar_topology::artifact::{RegistryHost, SourceUrl};
    use flatcar_topology::provision::MemorySecrets;
    let mut spec = cluster().expect("valid").into_spec();
    spec.artifacts.mirror.files = files.map(|f| SourceUrl::new(f).expect("url"));
    spec.artifacts.mirror.registry = registry.map(|r| RegistryHost::new(r).expect("registry"));
    let c = flatcar_topology::Cluster::try_from(spec).expect("valid");
    let composed =
        flatcar_microcloud::services::compose(&c, &mut MemorySecrets::default()).expect("composes");
    let flows: Vec<String> = composed
        .flows
        .iter()
        .filter(|f| f.why.as_ref().is_some_and(|w| w.as_str() == "artifacts"))
        .map(|f| f.to_string())
        .collect();
    (flows, ruleset::render(&c, &composed.flows))
}

#[test]
fn a_lan_mirror_gets_fetch_flows_from_the_nat_networks_and_is_masqueraded() {
    let (flows, text) = mirrored(Some("http://192.168.0.5:8080/dl"), None);
    // Files come through the mirror for the VMs whose Ignition config names
    // one: the K3s nodes (primary NIC on the k8s NAT network) fetch K3s;
    // lb1/lb2 fetch their system extensions on the LAN (switched, no rule);
    // infra and postgresql1 fetch no file (their images are pulled).
    assert_eq!(
        flows,
        ["net:k8s -> addr:192.168.0.5 tcp/8080 (artifacts)"],
        "{flows:#?}"
    );
    assert!(
        text.contains("ip saddr 10.17.4.0/24 ip daddr 192.168.0.5 tcp dport 8080 accept"),
        "{text}"
    );
    assert!(
        text.contains("ip saddr 10.17.4.0/24 ip daddr 192.168.0.5 masquerade"),
        "{text}"
    );
    // Nothing else on the mirror is opened.
    assert_eq!(
        text.lines().filter(|l| l.contains("192.168.0.5")).count(),
        2,
        "{text}"
    );
}

#[test]
fn a_mirror_on_the_host_opens_its_port_on_input_and_a_named_one_opens_nothing() {
    let host = cluster().expect("valid").host().address;
    let (flows, text) = mirrored(Some(&format!("http://{host}:8080/dl")), None);
    assert!(
        flows.contains(&"net:k8s -> host tcp/8080 (artifacts)".to_string())
            && flows
                .iter()
                .all(|f| f.ends_with("-> host tcp/8080 (artifacts)")),
        "{flows:#?}"
    );
    let input = text
        .split("chain forward")
        .next()
        .expect("input chain first");
    assert!(
        input.contains("ip saddr 10.17.4.0/24 tcp dport 8080 accept"),
        "{input}"
    );
    // By name: the address is the resolver's answer, not the model's.
    let (flows, _) = mirrored(Some("https://mirror.lan/dl"), Some("mirror.lan:5000"));
    assert!(flows.is_empty(), "{flows:#?}");
}

#[test]
fn a_registry_mirror_on_the_lan_is_reached_by_every_network_pulling_images() {
    let (flows, text) = mirrored(None, Some("192.168.0.6:5000"));
    assert_eq!(
        flows,
        [
            "net:infra -> addr:192.168.0.6 tcp/5000 (artifacts)",
            "net:k8s -> addr:192.168.0.6 tcp/5000 (artifacts)"
        ],
        "{flows:#?}"
    );
    assert!(
        text.contains("ip daddr 192.168.0.6 tcp dport 5000 accept"),
        "{text}"
    );
}

#[test]
fn an_address_endpoint_reads_and_writes_as_addr() {
    use flatcar_topology::Endpoint;
    let e: Endpoint = "addr:192.168.0.5".parse().expect("parses");
    assert_eq!(e, Endpoint::Addr([192, 168, 0, 5].into()));
    assert_eq!(e.to_string(), "addr:192.168.0.5");
    let err = "addr:mirror.lan"
        .parse::<Endpoint>()
        .expect_err("not an address");
    assert!(
        err.contains("\"mirror.lan\" is not an IPv4 address"),
        "{err}"
    );
}
