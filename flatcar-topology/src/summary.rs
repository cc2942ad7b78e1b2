//! A human-readable summary of a cluster (tables of VMs and VIPs).

use crate::Cluster;
use std::fmt::Write;

/// Backends listed per VIP port; more are counted.
const MAX_BACKENDS_SHOWN: usize = 8;

fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                // Padded by hand: `{:<w$}` panics for widths above u16::MAX,
                // which a cell of a cloud with thousands of VMs reaches.
                let w = widths.get(i).copied().unwrap_or(0);
                let mut c = cell.clone();
                c.extend(std::iter::repeat_n(
                    ' ',
                    w.saturating_sub(cell.chars().count()),
                ));
                c
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

impl Cluster {
    /// Tables of the host, networks, VMs (name, roles, network, address,
    /// vCPU, memory, disks) and VIPs (address, ports, backends, holders).
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let h = self.host();
        let _ = writeln!(
            out,
            "cluster {} — host {} at {} on {} (uplink {}, domain type {})\n",
            self.name(),
            h.name,
            h.address,
            h.lan,
            h.uplink,
            h.accelerator
        );
        if let Some(f) = self.spec().failover.describe() {
            let _ = writeln!(out, "{f}\n");
        }
        let mut rows = vec![vec![
            "NETWORK".into(),
            "KIND".into(),
            "SUBNET".into(),
            "GATEWAY".into(),
            "BRIDGE".into(),
            "DHCP".into(),
        ]];
        for n in self.networks() {
            rows.push(vec![
                n.name.to_string(),
                format!("{:?}", n.kind).to_lowercase(),
                n.cidr.to_string(),
                n.gateway.to_string(),
                n.bridge.to_string(),
                n.dhcp.map(|d| d.to_string()).unwrap_or_else(|| "-".into()),
            ]);
        }
        out.push_str(&table(&rows));
        out.push('\n');
        let mut rows = vec![vec![
            "VM".into(),
            "ROLES".into(),
            "NETWORK".into(),
            "ADDRESS".into(),
            "VCPU".into(),
            "MEMORY".into(),
            "DISKS".into(),
        ]];
        for vm in self.vms() {
            let roles: Vec<&str> = vm.roles.iter().map(|r| r.as_str()).collect();
            let mut disks = vec![format!("root {}", vm.root_disk)];
            disks.extend(
                vm.data_disks
                    .iter()
                    .map(|d| format!("{} {}", d.name, d.size)),
            );
            for (i, nic) in vm.nics.iter().enumerate() {
                if i == 0 {
                    rows.push(vec![
                        vm.name.to_string(),
                        roles.join(","),
                        nic.network.to_string(),
                        nic.address.to_string(),
                        vm.vcpus.to_string(),
                        vm.memory.to_string(),
                        disks.join(" + "),
                    ]);
                } else {
                    rows.push(vec![
                        String::new(),
                        String::new(),
                        nic.network.to_string(),
                        nic.address.to_string(),
                    ]);
                }
            }
        }
        out.push_str(&table(&rows));
        out.push('\n');
        let mut rows = vec![vec![
            "VIP".into(),
            "ADDRESS".into(),
            "PORT".into(),
            "BACKENDS".into(),
            "HOLDERS".into(),
        ]];
        for vip in self.vips() {
            let holders: Vec<&str> = vip.holders.iter().map(|h| h.as_str()).collect();
            for (i, p) in vip.ports.iter().enumerate() {
                let backends: Vec<String> = self
                    .backends(vip, p)
                    .iter()
                    .map(|b| format!("{}:{}", b.address, b.port))
                    .collect();
                let first = i == 0;
                rows.push(vec![
                    if first {
                        vip.name.to_string()
                    } else {
                        String::new()
                    },
                    if first {
                        vip.address.to_string()
                    } else {
                        String::new()
                    },
                    format!("tcp/{} -> {} ({})", p.port, p.role, p.backend),
                    if backends.len() > MAX_BACKENDS_SHOWN {
                        format!(
                            "{} … (+{} more)",
                            backends[..MAX_BACKENDS_SHOWN].join(" "),
                            backends.len() - MAX_BACKENDS_SHOWN
                        )
                    } else {
                        backends.join(" ")
                    },
                    if first {
                        holders.join(" > ")
                    } else {
                        String::new()
                    },
                ]);
            }
        }
        out.push_str(&table(&rows));
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn wide_cells_do_not_panic() {
        let wide = "x".repeat(70_000);
        let t = super::table(&[vec![wide.clone(), "a".into()], vec!["b".into(), "c".into()]]);
        assert!(t.starts_with(&wide));
        assert_eq!(t.lines().nth(1).map(str::len), Some(70_000 + 3));
    }
}
