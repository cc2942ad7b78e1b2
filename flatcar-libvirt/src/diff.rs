//! What differs between a live object and its desired state, and whether
//! libvirt can change it in place or the object must be recreated.
//!
//! - **Domains** are redefined in place (an inactive domain takes the new
//!   definition as is; a running one at its next boot) for vCPUs, memory,
//!   disks, NICs and the Ignition entry. A different virtualization type,
//!   architecture or chipset (machine family) means a new definition:
//!   recreate (undefine, define).
//! - **Networks**: DHCP reservations and DNS host entries are what libvirt
//!   updates in place (`virNetworkUpdate` on a running network). Forward
//!   mode, bridge, addressing, DHCP range and domain need the network torn
//!   down: recreate.
//! - **Volumes**: a larger capacity is a resize in place; a smaller one, a
//!   different format or backing image needs a new volume: recreate (the
//!   old contents are discarded).

use crate::live::{DomainFacts, NetworkFacts, VolumeFacts};
use std::collections::BTreeSet;

/// The outcome of a comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing this module compares differs.
    Same,
    /// libvirt can change it in place; what changes.
    InPlace(Vec<String>),
    /// It must be recreated; why.
    Recreate(Vec<String>),
}

fn machine_family(m: &str) -> &str {
    if m == "q35" || m.starts_with("pc-q35") {
        "q35"
    } else if m == "pc" || m.starts_with("pc-i440fx") {
        "i440fx"
    } else {
        m
    }
}

fn gib(bytes: u64) -> String {
    if bytes % (1 << 30) == 0 {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{bytes} bytes")
    }
}

/// What `want` lacks of `live` (removed) and what it adds (added), each in
/// sorted order.
fn removed_added<T: Ord + Clone>(live: &[T], want: &[T]) -> (Vec<T>, Vec<T>) {
    let l: BTreeSet<&T> = live.iter().collect();
    let w: BTreeSet<&T> = want.iter().collect();
    (
        l.difference(&w).map(|x| (*x).clone()).collect(),
        w.difference(&l).map(|x| (*x).clone()).collect(),
    )
}

fn set_diff<T: Ord + Clone>(
    what: &str,
    live: &[T],
    want: &[T],
    show: impl Fn(&T) -> String,
) -> Vec<String> {
    let (removed, added) = removed_added(live, want);
    let list = |v: &[T]| v.iter().map(&show).collect::<Vec<_>>().join(", ");
    let mut out = Vec::new();
    if !added.is_empty() {
        out.push(format!("{what} added: {}", list(&added)));
    }
    if !removed.is_empty() {
        out.push(format!("{what} removed: {}", list(&removed)));
    }
    out
}

/// Compares a live domain with the desired one.
pub fn domain(live: &DomainFacts, want: &DomainFacts) -> Change {
    let mut recreate = Vec::new();
    if live.virt_type != want.virt_type {
        recreate.push(format!("type {} -> {}", live.virt_type, want.virt_type));
    }
    if live.arch != want.arch {
        recreate.push(format!("arch {} -> {}", live.arch, want.arch));
    }
    if machine_family(&live.machine) != machine_family(&want.machine) {
        recreate.push(format!(
            "machine {} -> {} (different chipset)",
            live.machine, want.machine
        ));
    }
    if !recreate.is_empty() {
        return Change::Recreate(recreate);
    }
    let mut what = Vec::new();
    if live.vcpus != want.vcpus {
        what.push(format!("vcpu {} -> {}", live.vcpus, want.vcpus));
    }
    if live.memory_kib != want.memory_kib {
        what.push(format!(
            "memory {} MiB -> {} MiB",
            live.memory_kib >> 10,
            want.memory_kib >> 10
        ));
    }
    what.extend(set_diff("disk", &live.disks, &want.disks, |d| d.1.clone()));
    let nics = set_diff("nic", &live.nics, &want.nics, |n| {
        format!("{} on {}", n.0, n.1)
    });
    if nics.is_empty() && live.nics != want.nics {
        what.push("nic order".into());
    }
    what.extend(nics);
    if live.fw_cfg != want.fw_cfg {
        what.push("ignition fw_cfg entry".into());
    }
    if what.is_empty() {
        Change::Same
    } else {
        Change::InPlace(what)
    }
}

/// Compares a live network with the desired one.
pub fn network(live: &NetworkFacts, want: &NetworkFacts) -> Change {
    let mut recreate = Vec::new();
    if live.forward != want.forward {
        recreate.push(format!(
            "forward mode {:?} -> {:?}",
            live.forward, want.forward
        ));
    }
    if live.bridge != want.bridge {
        recreate.push(format!("bridge {} -> {}", live.bridge, want.bridge));
    }
    if live.address != want.address {
        let show = |a: &Option<(String, u8)>| {
            a.as_ref()
                .map(|(ip, p)| format!("{ip}/{p}"))
                .unwrap_or_else(|| "none".into())
        };
        recreate.push(format!(
            "address {} -> {}",
            show(&live.address),
            show(&want.address)
        ));
    }
    if live.range != want.range {
        recreate.push("dhcp range".into());
    }
    if live.domain != want.domain {
        recreate.push("dns domain".into());
    }
    if !recreate.is_empty() {
        return Change::Recreate(recreate);
    }
    let mut what = set_diff("dhcp host", &live.dhcp_hosts, &want.dhcp_hosts, |h| {
        format!("{} {} {}", h.1, h.2, h.0)
    });
    what.extend(set_diff(
        "dns host",
        &live.dns_hosts,
        &want.dns_hosts,
        |h| format!("{} {}", h.0, h.1.join(" ")),
    ));
    if what.is_empty() {
        Change::Same
    } else {
        Change::InPlace(what)
    }
}

/// A DHCP reservation as libvirt lists it: `(mac, name, ip)`.
pub type DhcpHost = (String, String, String);

/// A DNS host entry as libvirt lists it: `(ip, hostnames)`.
pub type DnsHost = (String, Vec<String>);

/// One change to a running network's DHCP reservations or DNS hosts, the
/// unit `virNetworkUpdate` takes (one `<host>` element at a time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostUpdate {
    /// Remove a DHCP reservation.
    RemoveDhcp(DhcpHost),
    /// Add a DHCP reservation.
    AddDhcp(DhcpHost),
    /// Remove a DNS host entry.
    RemoveDns(DnsHost),
    /// Add a DNS host entry.
    AddDns(DnsHost),
}

/// The element-by-element changes that turn `live`'s DHCP reservations
/// and DNS hosts into `want`'s, for a network that keeps running: every
/// removal first (an address or MAC that moves is free before it is
/// reused), then every addition; a changed entry is a removal and an
/// addition. Empty when the two agree.
pub fn host_updates(live: &NetworkFacts, want: &NetworkFacts) -> Vec<HostUpdate> {
    let (dhcp_gone, dhcp_new) = removed_added(&live.dhcp_hosts, &want.dhcp_hosts);
    let (dns_gone, dns_new) = removed_added(&live.dns_hosts, &want.dns_hosts);
    dhcp_gone
        .into_iter()
        .map(HostUpdate::RemoveDhcp)
        .chain(dns_gone.into_iter().map(HostUpdate::RemoveDns))
        .chain(dhcp_new.into_iter().map(HostUpdate::AddDhcp))
        .chain(dns_new.into_iter().map(HostUpdate::AddDns))
        .collect()
}

/// Compares a live volume with the desired one.
pub fn volume(live: &VolumeFacts, want: &VolumeFacts) -> Change {
    let mut recreate = Vec::new();
    if live.format != want.format {
        recreate.push(format!("format {} -> {}", live.format, want.format));
    }
    if live.backing != want.backing {
        recreate.push(format!(
            "backing image {} -> {}",
            live.backing.as_deref().unwrap_or("none"),
            want.backing.as_deref().unwrap_or("none")
        ));
    }
    if live.capacity > want.capacity {
        recreate.push(format!(
            "capacity {} -> {} (volumes cannot shrink)",
            gib(live.capacity),
            gib(want.capacity)
        ));
    }
    if !recreate.is_empty() {
        recreate.push("contents are discarded".into());
        return Change::Recreate(recreate);
    }
    if live.capacity < want.capacity {
        return Change::InPlace(vec![format!(
            "capacity {} -> {} (resize)",
            gib(live.capacity),
            gib(want.capacity)
        )]);
    }
    Change::Same
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_updates_remove_before_they_add() {
        let host = |m: &str, n: &str, ip: &str| (m.to_string(), n.to_string(), ip.to_string());
        let dns = |ip: &str, n: &str| (ip.to_string(), vec![n.to_string()]);
        let live = NetworkFacts {
            dhcp_hosts: vec![
                host("52:54:00:00:00:01", "a", "198.18.1.10"),
                host("52:54:00:00:00:02", "b", "198.18.1.11"),
            ],
            dns_hosts: vec![dns("198.18.1.10", "a"), dns("198.18.1.11", "b")],
            ..NetworkFacts::default()
        };
        let mut want = live.clone();
        assert!(host_updates(&live, &want).is_empty());
        // b moves to a's old address after a leaves; c is new.
        want.dhcp_hosts = vec![
            host("52:54:00:00:00:02", "b", "198.18.1.10"),
            host("52:54:00:00:00:03", "c", "198.18.1.12"),
        ];
        want.dns_hosts = vec![dns("198.18.1.10", "b"), dns("198.18.1.12", "c")];
        let u = host_updates(&live, &want);
        assert_eq!(u.len(), 8, "{u:#?}");
        let first_add = u
            .iter()
            .position(|x| matches!(x, HostUpdate::AddDhcp(_) | HostUpdate::AddDns(_)))
            .expect("adds");
        assert_eq!(first_add, 4, "{u:#?}");
        assert!(u.contains(&HostUpdate::RemoveDhcp(host(
            "52:54:00:00:00:01",
            "a",
            "198.18.1.10"
        ))));
        assert!(u.contains(&HostUpdate::AddDhcp(host(
            "52:54:00:00:00:02",
            "b",
            "198.18.1.10"
        ))));
        assert!(u.contains(&HostUpdate::RemoveDns(dns("198.18.1.11", "b"))));
        assert!(u.contains(&HostUpdate::AddDns(dns("198.18.1.12", "c"))));
    }

    #[test]
    fn machine_alias_is_the_same_chipset() {
        let a = DomainFacts {
            machine: "pc-q35-7.2".into(),
            ..Default::default()
        };
        let b = DomainFacts {
            machine: "q35".into(),
            ..Default::default()
        };
        assert_eq!(domain(&a, &b), Change::Same);
        let c = DomainFacts {
            machine: "pc".into(),
            ..Default::default()
        };
        assert!(matches!(domain(&c, &b), Change::Recreate(r) if r[0].contains("chipset")));
    }

    #[test]
    fn volumes_grow_in_place_and_shrink_by_recreate() {
        let v = |gib: u64| VolumeFacts {
            capacity: gib << 30,
            format: "qcow2".into(),
            backing: None,
        };
        assert_eq!(volume(&v(5), &v(5)), Change::Same);
        assert!(
            matches!(volume(&v(5), &v(8)), Change::InPlace(w) if w[0] == "capacity 5 GiB -> 8 GiB (resize)")
        );
        assert!(
            matches!(volume(&v(8), &v(5)), Change::Recreate(r) if r[0].contains("cannot shrink"))
        );
    }
}
