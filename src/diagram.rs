//! Diagrams of the cloud: Graphviz DOT and Mermaid.

use flatcar_topology::{Cluster, Endpoint};
use std::fmt::Write;

fn id(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn endpoint_id(e: &Endpoint) -> String {
    match e {
        Endpoint::Internet => "zone_internet".into(),
        Endpoint::Lan => "zone_lan".into(),
        Endpoint::Vpn => "zone_vpn".into(),
        Endpoint::Host => "host".into(),
        Endpoint::Network(n) => format!("zone_net_{}", id(n.as_str())),
        Endpoint::Role(r) => format!("zone_role_{}", id(r.as_str())),
        Endpoint::Vm(n) => format!("vm_{}", id(n.as_str())),
        Endpoint::Vip(n) => format!("vip_{}", id(n.as_str())),
        Endpoint::Addr(a) => format!("addr_{}", id(&a.to_string())),
    }
}

fn flow_zones(cluster: &Cluster) -> Vec<Endpoint> {
    let mut z: Vec<Endpoint> = cluster
        .flows()
        .iter()
        .flat_map(|f| [f.from.clone(), f.to.clone()])
        .filter(|e| !matches!(e, Endpoint::Vm(_) | Endpoint::Vip(_) | Endpoint::Host))
        .collect();
    z.sort();
    z.dedup();
    z
}

/// Graphviz DOT: the host, each network as a cluster with its VMs, VIPs,
/// VIP → backend edges, holder edges, and the allowed flows between zones.
pub fn dot(cluster: &Cluster) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "digraph \"{}\" {{", cluster.name());
    let _ = writeln!(
        s,
        "  rankdir=LR; compound=true; node [shape=box, fontname=\"Helvetica\"];"
    );
    let h = cluster.host();
    let _ = writeln!(
        s,
        "  host [label=\"{}\\n{}\\nKVM host\", shape=box3d];",
        h.name, h.address
    );
    for net in cluster.networks() {
        let _ = writeln!(s, "  subgraph cluster_{} {{", id(net.name.as_str()));
        let _ = writeln!(
            s,
            "    label=\"{} {} ({:?})\";",
            net.name, net.cidr, net.kind
        );
        for vm in cluster.vms() {
            if let Some(nic) = vm.nics.first().filter(|n| n.network == net.name) {
                let roles: Vec<&str> = vm.roles.iter().map(|r| r.as_str()).collect();
                let _ = writeln!(
                    s,
                    "    vm_{} [label=\"{}\\n{}\\n{}\"];",
                    id(vm.name.as_str()),
                    vm.name,
                    nic.address,
                    roles.join(",")
                );
            }
        }
        for vip in cluster.vips().iter().filter(|v| v.network == net.name) {
            let _ = writeln!(s, "    vip_{} [label=\"VIP {}\\n{}\", shape=ellipse, style=filled, fillcolor=lightyellow];", id(vip.name.as_str()), vip.name, vip.address);
        }
        let _ = writeln!(s, "  }}");
    }
    for vm in cluster.vms() {
        for nic in vm.nics.iter().skip(1) {
            let _ = writeln!(
                s,
                "  vm_{} -> zone_net_{} [style=dotted, arrowhead=none, label=\"{}\"];",
                id(vm.name.as_str()),
                id(nic.network.as_str()),
                nic.address
            );
        }
    }
    for vip in cluster.vips() {
        for (rank, holder) in vip.holders.iter().enumerate() {
            let _ = writeln!(
                s,
                "  vm_{} -> vip_{} [style=dashed, label=\"holds (prio {})\"];",
                id(holder.as_str()),
                id(vip.name.as_str()),
                rank + 1
            );
        }
        for port in &vip.ports {
            for b in cluster.backends(vip, port) {
                let _ = writeln!(
                    s,
                    "  vip_{} -> vm_{} [label=\"{}→{}\"];",
                    id(vip.name.as_str()),
                    id(b.vm.name.as_str()),
                    port.port,
                    b.port
                );
            }
        }
    }
    for z in flow_zones(cluster) {
        let _ = writeln!(s, "  {} [label=\"{}\", shape=note];", endpoint_id(&z), z);
    }
    for f in cluster.flows() {
        let ports: Vec<String> = f.ports.iter().map(|p| p.to_string()).collect();
        let _ = writeln!(
            s,
            "  {} -> {} [color=darkgreen, fontcolor=darkgreen, label=\"{} {}\"];",
            endpoint_id(&f.from),
            endpoint_id(&f.to),
            f.proto,
            ports.join(",")
        );
    }
    s.push_str("}\n");
    s
}

/// Mermaid flowchart with the same content as [`dot`].
pub fn mermaid(cluster: &Cluster) -> String {
    let mut s = String::from("flowchart LR\n");
    let h = cluster.host();
    let _ = writeln!(s, "  host[[\"{} {} (KVM host)\"]]", h.name, h.address);
    for net in cluster.networks() {
        let _ = writeln!(
            s,
            "  subgraph net_{} [\"{} {}\"]",
            id(net.name.as_str()),
            net.name,
            net.cidr
        );
        for vm in cluster.vms() {
            if let Some(nic) = vm.nics.first().filter(|n| n.network == net.name) {
                let _ = writeln!(
                    s,
                    "    vm_{}[\"{}<br/>{}\"]",
                    id(vm.name.as_str()),
                    vm.name,
                    nic.address
                );
            }
        }
        for vip in cluster.vips().iter().filter(|v| v.network == net.name) {
            let _ = writeln!(
                s,
                "    vip_{}((\"VIP {}<br/>{}\"))",
                id(vip.name.as_str()),
                vip.name,
                vip.address
            );
        }
        s.push_str("  end\n");
    }
    for vip in cluster.vips() {
        for holder in &vip.holders {
            let _ = writeln!(
                s,
                "  vm_{} -.holds.-> vip_{}",
                id(holder.as_str()),
                id(vip.name.as_str())
            );
        }
        for port in &vip.ports {
            for b in cluster.backends(vip, port) {
                let _ = writeln!(
                    s,
                    "  vip_{} -->|{}→{}| vm_{}",
                    id(vip.name.as_str()),
                    port.port,
                    b.port,
                    id(b.vm.name.as_str())
                );
            }
        }
    }
    for z in flow_zones(cluster) {
        let _ = writeln!(s, "  {}[/\"{}\"/]", endpoint_id(&z), z);
    }
    for f in cluster.flows() {
        let ports: Vec<String> = f.ports.iter().map(|p| p.to_string()).collect();
        let label = format!("{} {}", f.proto, ports.join(","))
            .trim()
            .to_string();
        let _ = writeln!(
            s,
            "  {} ==>|{}| {}",
            endpoint_id(&f.from),
            label,
            endpoint_id(&f.to)
        );
    }
    s
}
