//! The flow matrix between real VMs: which new TCP connections the
//! generated host ruleset lets through libvirt's bridges, derived from the
//! model's flows (the composition's, as the bundle renders them), and the
//! probe script a VM runs to try them all at once.

use flatcar_topology::{Cluster, Flow, Port, Proto};
use std::net::Ipv4Addr;

/// A service the lab really runs: a booted VM listening on a TCP port.
#[derive(Debug, Clone)]
pub struct Service {
    /// The VM (or "lan client").
    pub vm: String,
    /// Its address.
    pub addr: Ipv4Addr,
    /// The port.
    pub port: u16,
    /// What listens.
    pub what: &'static str,
}

/// Whether `addr` lies in one of the networks of the cloud (LAN, VPN, VM
/// networks): everything else is the internet side.
fn inside(cluster: &Cluster, addr: Ipv4Addr) -> bool {
    cluster.networks().iter().any(|n| n.cidr.contains(&addr))
        || cluster.vpn().is_some_and(|v| v.subnet.contains(&addr))
}

fn covers(cluster: &Cluster, e: &flatcar_topology::Endpoint, addr: Ipv4Addr) -> bool {
    match cluster.endpoint_nets(e) {
        None => !inside(cluster, addr),
        Some(nets) => nets.iter().any(|n| n.contains(&addr)),
    }
}

/// The flow that admits a new TCP connection from `src` to `dst:port`, if
/// any.
pub fn admitted<'a>(
    cluster: &Cluster,
    flows: &'a [Flow],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    port: u16,
) -> Option<&'a Flow> {
    let port = Port::try_from(port).ok()?;
    flows.iter().find(|f| {
        matches!(f.proto, Proto::Tcp | Proto::Any)
            && covers(cluster, &f.from, src)
            && covers(cluster, &f.to, dst)
            && (f.ports.is_empty() || f.ports.iter().any(|r| r.contains(port)))
    })
}

/// Whether two addresses share a network (switched on one bridge, the
/// host's "switched inside" rule accepts everything there).
pub fn same_network(cluster: &Cluster, a: Ipv4Addr, b: Ipv4Addr) -> bool {
    cluster
        .networks()
        .iter()
        .any(|n| n.cidr.contains(&a) && n.cidr.contains(&b))
}

/// A shell script that tries every target at once (bash's `/dev/tcp`, a
/// 4 s budget each) and prints `ok ADDR PORT` or `no ADDR PORT` per target.
pub fn probe_script(targets: &[(Ipv4Addr, u16)]) -> String {
    let mut s = String::new();
    for (a, p) in targets {
        s.push_str(&format!(
            "(timeout 4 bash -c '</dev/tcp/{a}/{p}' 2>/dev/null && echo ok {a} {p} || echo no {a} {p}) & "
        ));
    }
    s.push_str("wait");
    s
}

/// The `ok` targets in a probe script's output.
pub fn opened(output: &str) -> Vec<(Ipv4Addr, u16)> {
    output
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "ok").then_some(())?;
            Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?))
        })
        .collect()
}
