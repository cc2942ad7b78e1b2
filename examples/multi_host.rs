//! The reference cloud over three KVM hosts, placed by the library:
//! `cargo run --example multi_host [-- --model-out cloud.json]`.
//!
//! No VM is pinned with `.on()`: the spread rules (etcd members, VIP
//! holders, storage replicas each survive the loss of any one host) and the
//! hosts' capacities decide. Prints the placement table, the libvirt URI of
//! each host and every spread rule with the hosts its members are on.
//! The placements are recorded in the model (`placement`), so saving it and
//! adding a host later moves nothing.

use flatcar_microcloud::multi_host::three_hosts;
use flatcar_microcloud::topology::Format;
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
        println!("  {:<8} libvirt {}", h.name.as_str(), h.libvirt_uri(i == 0));
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
