//! The bar of `cargo run --example multi_host`: the reference cloud over
//! three hosts, placed by the library, keeps the etcd members on three
//! hosts and the load balancers on two; the recorded placements round-trip
//! through the model file; one host fewer is reported, not papered over.

use flatcar_microcloud::multi_host::three_hosts;
use flatcar_topology::{Cluster, Format, Problem};
use std::collections::BTreeSet;

fn hosts_of(c: &Cluster, vms: &[&str]) -> BTreeSet<String> {
    vms.iter()
        .map(|v| c.host_of(c.vm(v).expect("vm")).name.to_string())
        .collect()
}

#[test]
fn reference_cloud_spreads_over_three_hosts() {
    let c = three_hosts().expect("valid");
    assert_eq!(hosts_of(&c, &["master1", "master2", "master3"]).len(), 3);
    assert_eq!(hosts_of(&c, &["lb1", "lb2"]).len(), 2);
    let text = c.to_string_as(Format::Json).expect("json");
    let back = Cluster::from_str_as(&text, Format::Json).expect("loads");
    assert_eq!(back.spec().placement, c.spec().placement);
}

#[test]
fn two_hosts_cannot_hold_etcd() {
    let mut spec = three_hosts().expect("valid").into_spec();
    spec.extra_hosts.truncate(1);
    spec.placement.clear();
    let p = Cluster::try_from(spec).expect_err("etcd needs three hosts");
    assert!(
        p.any(|p| matches!(p, Problem::Spread { rule, .. } if rule == "etcd members")),
        "{p}"
    );
}
