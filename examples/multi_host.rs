//! The reference cloud over three KVM hosts, placed by the library:
//! `cargo run --example multi_host [-- --model-out cloud.json]`.
//!
//! No VM is pinned with `.on()`: the spread rules (etcd members, VIP
//! holders, storage replicas each survive the loss of any one host) and the
//! hosts' capacities decide. Prints the placement table, the libvirt URI of
//! each host and every spread rule with the hosts its members are on.
//! The placements are recorded in the model (`placement`), so saving it and
//! adding a host later moves nothing. Then the networks that span the
//! hosts (VXLAN segment per NAT network: VNI, bridge, anycast gateway, MTU;
//! the routed transit between the hosts and each host's routes on it)
//! and, with `--out DIR`, the bundle with a directory per host
//! (`hosts/<host>/`: its nftables ruleset and systemd-networkd files;
//! `host/playbook.yml` with `host/inventory.yml` applies them all).

use flatcar_microcloud::multi_host::three_hosts;
use flatcar_microcloud::topology::Format;
use flatcar_microcloud::{Bundle, BundleSecrets};
use std::collections::BTreeSet;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cluster = match three_hosts() {
        Ok(c) => c,
        Err(problems) => {
            eprintln!("{problems}");
            return ExitCode::FAILURE;
        }
    };
    let hosts = cluster.kvm_hosts();
    println!(
        "{} KVM hosts, {} VMs placed by the library:",
        hosts.len(),
        cluster.vms().len()
    );
    for (i, h) in hosts.iter().enumerate() {
        println!(
            "  {:<8} libvirt {}, domain type {}",
            h.name.as_str(),
            h.libvirt_uri(i == 0),
            h.accelerator
        );
    }
    println!();
    println!("placement (vCPU and memory: used/usable, overcommit included):");
    for row in cluster.placement_table() {
        println!("  {row}");
    }
    println!();
    println!("spread rules (each survives the loss of any one host):");
    let mut all_hold = true;
    for rule in cluster.spread_rules() {
        let on: Vec<String> = rule
            .members
            .iter()
            .filter_map(|m| cluster.vm(m.as_str()))
            .map(|vm| format!("{}@{}", vm.name.as_str(), cluster.host_of(vm).name.as_str()))
            .collect();
        let distinct: BTreeSet<&str> = rule
            .members
            .iter()
            .filter_map(|m| cluster.vm(m.as_str()))
            .map(|vm| cluster.host_of(vm).name.as_str())
            .collect();
        let assignment = cluster.spec().placement.clone();
        let broken = rule.violations(&assignment, hosts.len());
        all_hold &= broken.is_empty();
        println!(
            "  [{}] {rule}\n        on {} host(s): {}",
            if broken.is_empty() { "holds" } else { "BROKEN" },
            distinct.len(),
            on.join(" ")
        );
        for b in broken {
            println!("        {b}");
        }
    }
    if let Some(f) = cluster.fabric() {
        println!();
        println!(
            "networks spanning the hosts (VXLAN over the LAN, UDP {}; MTU {} = LAN {} - 50):",
            f.port,
            f.overlay_mtu(),
            f.underlay_mtu
        );
        for seg in &f.segments {
            println!(
                "  {:<6} VNI {:<4} bridge {:<12} port {:<6} anycast gateway {} ({}) on every host",
                seg.network.name.as_str(),
                seg.vni,
                seg.network.bridge.as_str(),
                seg.vxlan.as_str(),
                seg.network.gateway,
                seg.gateway_mac
            );
        }
        for h in &hosts {
            let peers: Vec<String> = f.peers(h).iter().map(|a| a.to_string()).collect();
            println!(
                "  {:<8} VXLAN from {} only (hosts/{}/nftables.nft)",
                h.name.as_str(),
                peers.join(", "),
                h.name.as_str()
            );
        }
        println!(
            "  transit {} (VNI {}): between two spanning networks, through the hosts of both ends:",
            f.transit.ifname.as_str(),
            f.transit.vni
        );
        for h in &hosts {
            let routes = f.remote_routes(&cluster, h);
            let mut by: std::collections::BTreeMap<&str, usize> = Default::default();
            for (_, via) in &routes {
                *by.entry(via.name.as_str()).or_default() += 1;
            }
            let text: Vec<String> = by.iter().map(|(n, c)| format!("{c} via {n}")).collect();
            println!(
                "  {:<8} {} route(s) to other hosts' VMs: {}",
                h.name.as_str(),
                routes.len(),
                text.join(", ")
            );
        }
    }
    if let Some(dir) = std::env::args().skip_while(|a| a != "--out").nth(1) {
        let mut secrets = BundleSecrets::from_bundle_dir(std::path::Path::new(&dir));
        let bundle = match Bundle::render(&cluster, &mut secrets) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = bundle.write_to(std::path::Path::new(&dir)) {
            eprintln!("writing {dir}: {e}");
            return ExitCode::FAILURE;
        }
        let per_host: Vec<&String> = bundle
            .files()
            .keys()
            .filter(|p| p.starts_with("hosts/"))
            .collect();
        println!(
            "\nbundle written to {dir}: {} files, {} of them per host under hosts/",
            bundle.files().len(),
            per_host.len()
        );
    }
    if let Some(path) = std::env::args().skip_while(|a| a != "--model-out").nth(1) {
        match cluster.to_string_as(Format::Json) {
            Ok(text) => {
                if let Err(e) = std::fs::write(&path, text) {
                    eprintln!("writing {path}: {e}");
                    return ExitCode::FAILURE;
                }
                println!("\nmodel with recorded placements written to {path}");
            }
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if all_hold {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
