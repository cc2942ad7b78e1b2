//! Property tests: random valid topologies build and round-trip through TOML
//! and JSON; random corruptions are reported as errors, never a panic.

mod common;

use flatcar_topology::{Cluster, Format};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn valid_topologies_roundtrip(s in common::shape()) {
        let c = common::build(&s);
        for f in [Format::Toml, Format::Json] {
            let text = c.to_string_as(f).expect("serializes");
            let back = Cluster::from_str_as(&text, f).expect("loads");
            prop_assert_eq!(&back, &c);
            prop_assert_eq!(back.to_string_as(f).expect("serializes"), text);
        }
    }

    #[test]
    fn corrupted_text_never_panics(s in common::shape(), cuts in proptest::collection::vec((any::<prop::sample::Index>(), 0usize..8, ".{0,6}"), 1..4), json in any::<bool>()) {
        let c = common::build(&s);
        let f = if json { Format::Json } else { Format::Toml };
        let mut text = c.to_string_as(f).expect("serializes");
        for (at, len, insert) in cuts {
            let mut i = at.index(text.len().max(1));
            while !text.is_char_boundary(i) { i -= 1; }
            let mut j = (i + len).min(text.len());
            while !text.is_char_boundary(j) { j -= 1; }
            text.replace_range(i..j, &insert);
        }
        // Either it still loads (and then validates), or it is an error with a message.
        match Cluster::from_str_as(&text, f) {
            Ok(back) => { let _ = back.summary(); }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn corrupted_models_are_errors_not_panics(s in common::shape(), vm in any::<prop::sample::Index>(), octet in any::<u8>(), nic_net in any::<prop::sample::Index>()) {
        let c = common::build(&s);
        let mut spec = c.into_spec();
        let nets: Vec<_> = spec.networks.iter().map(|n| n.name.clone()).collect();
        let v = vm.index(spec.vms.len().max(1));
        if let Some(vm) = spec.vms.get_mut(v) {
            if let Some(nic) = vm.nics.first_mut() {
                let mut o = nic.address.octets();
                o[3] = octet;
                nic.address = o.into();
                nic.network = nets[nic_net.index(nets.len())].clone();
            }
        }
        match Cluster::try_from(spec) {
            Ok(_) => {}
            Err(p) => prop_assert!(!p.0.is_empty()),
        }
    }
}

#[test]
fn file_errors_carry_line_and_column() {
    let err =
        Cluster::from_str_as("name = \"x\"\n[host]\nname = 5\n", Format::Toml).expect_err("bad");
    let text = err.to_string();
    assert!(text.contains("line 3"), "{text}");
    let err =
        Cluster::from_str_as("{\"name\": \"x\",\n \"host\": 7}", Format::Json).expect_err("bad");
    assert!(err.to_string().contains("line 2"), "{err}");
    let err = Cluster::from_str_as("name = \"Bad Name\"\n", Format::Toml).expect_err("bad");
    assert!(err.to_string().contains("line 1"), "{err}");
    // Unknown fields are rejected, not ignored.
    let c = common::build(&common::Shape {
        nats: 1,
        masters: 0,
        workers: 0,
        extra: vec![],
        lbs: 0,
        with_vpn: false,
    });
    let text = c
        .to_string_as(Format::Toml)
        .expect("toml")
        .replace("[host]\n", "[host]\nsurprise = 1\n");
    let err = Cluster::from_str_as(&text, Format::Toml).expect_err("unknown field");
    assert!(err.to_string().contains("surprise"), "{err}");
}
