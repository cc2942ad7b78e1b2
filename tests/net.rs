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
