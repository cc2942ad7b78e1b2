//! The reference cloud: addresses of the design, file round-trips.

use flatcar_microcloud::reference::{cluster, cluster_with, AddressPlan};
use flatcar_topology::{Cluster, Format};

#[test]
fn has_every_reference_address() {
    let c = cluster().expect("valid");
    let summary = c.summary();
    for a in [
        "192.168.0.10",
        "192.168.0.11",
        "192.168.0.12",
        "192.168.0.14",
        "192.168.0.30",
        "192.168.0.40",
        "10.17.3.14",
        "10.17.4.21",
        "10.17.4.22",
        "10.17.4.23",
        "10.17.4.24",
        "10.17.4.25",
        "10.17.4.26",
        "10.17.4.27",
    ] {
        assert!(summary.contains(a), "{a} missing from\n{summary}");
    }
    // The issue text says "ten", but lists eleven: lb1-2, infra, postgresql1, master1-3, worker1-3, storage1.
    assert_eq!(c.vms().len(), 11);
    // api and web on the LAN, api-internal on k8s (the nodes' join path).
    assert_eq!(c.vips().len(), 3);
    assert!(summary.contains("10.17.4.10"), "{summary}");
    // The LAN router forwards public 8080 -> web :80 and 2052 -> web :443.
    let forwards: Vec<(u16, &str, u16)> = c
        .router()
        .expect("router")
        .forwards
        .iter()
        .map(|f| (f.public.get(), f.vip.as_str(), f.port.get()))
        .collect();
    assert_eq!(forwards, [(8080, "web", 80), (2052, "web", 443)]);
}

#[test]
fn test_plan_only_uses_benchmark_space() {
    let c = cluster_with(&AddressPlan::test()).expect("valid");
    let bench = flatcar_topology::net4!("198.18.0.0/15");
    for vm in c.vms() {
        for nic in &vm.nics {
            assert!(bench.contains(&nic.address), "{} {}", vm.name, nic.address);
        }
    }
    for vip in c.vips() {
        assert!(bench.contains(&vip.address));
    }
    assert!(bench.contains(&c.host().address));
}

#[test]
fn roundtrips_through_toml_and_json() {
    let c = cluster().expect("valid");
    for f in [Format::Toml, Format::Json] {
        let text = c.to_string_as(f).expect("serializes");
        let back = Cluster::from_str_as(&text, f).unwrap_or_else(|e| panic!("{f:?}: {e}\n{text}"));
        assert_eq!(back, c, "{f:?}");
        assert_eq!(
            back.to_string_as(f).expect("serializes"),
            text,
            "{f:?} bytes stable"
        );
    }
}
