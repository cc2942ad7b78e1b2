//! CoreDNS: a Corefile and RFC 1035 zone files (forward and reverse) with
//! every VM, every VIP, `api.<domain>` and the apps wildcard.

use flatcar_topology::provision::DnsRecord;
use flatcar_topology::{Cluster, Role};
use ipnet::Ipv4Net;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::Ipv4Addr;

/// Directory of zone files inside the CoreDNS container.
pub const ZONE_DIR: &str = "/etc/coredns";

/// All A records of the cluster zone (label → address), sorted.
pub fn records(cluster: &Cluster, extra: &[DnsRecord]) -> Vec<(String, Ipv4Addr)> {
    let mut r: Vec<(String, Ipv4Addr)> = Vec::new();
    for vm in cluster.vms() {
        if let Some(a) = vm.primary_address() {
            r.push((vm.name.to_string(), a));
        }
        for nic in vm.nics.iter().skip(1) {
            r.push((format!("{}.{}", vm.name, nic.network), nic.address));
        }
    }
    for vip in cluster.vips() {
        r.push((vip.name.to_string(), vip.address));
    }
    if let Some(api) = cluster.api_vip() {
        if api.name.as_str() != "api" {
            r.push(("api".into(), api.address));
        }
    }
    if let Some(web) = cluster.web_vip() {
        r.push((format!("*.{}", cluster.spec().dns.apps), web.address));
    }
    r.push((cluster.host().name.to_string(), cluster.host().address));
    r.extend(extra.iter().map(|d| (d.name.clone(), d.address)));
    r.sort();
    r.dedup();
    r
}

/// A zone's SOA serial. Secondaries transfer a zone again only when its
/// serial grew (RFC 1982 serial arithmetic), so it must increase whenever the
/// zone's content changes and stay the same while it does not: a zone
/// rendered for the first time gets [`Serial::FIRST`], a re-render gets the
/// previous serial when nothing changed and [`Serial::next`] otherwise (see
/// [`PreviousZone`]). Never derived from the clock: same input, same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Serial(u32);

impl Serial {
    /// The serial of a zone rendered for the first time.
    pub const FIRST: Serial = Serial(1);

    /// A serial with value `v`.
    pub const fn new(v: u32) -> Serial {
        Serial(v)
    }

    /// The value.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The next serial: one more, in serial arithmetic (after 4294967295
    /// comes 1; 0 is skipped, some secondaries read it as "unset").
    pub const fn next(self) -> Serial {
        match self.0.wrapping_add(1) {
            0 => Serial(1),
            n => Serial(n),
        }
    }

    /// The serial of the SOA record in zone file `text`, as written by
    /// this module (`@ IN SOA ns. hostmaster. ( SERIAL …`).
    pub fn of_zone(text: &str) -> Option<Serial> {
        let line = text.lines().find(|l| l.contains(" IN SOA "))?;
        let (_, rest) = line.split_once('(')?;
        rest.split_whitespace().next()?.parse().ok().map(Serial)
    }
}

impl std::fmt::Display for Serial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How a zone was rendered last time: its serial and its text. A library
/// caller passes it (the bundle reads it from the previous bundle's
/// `dns/*.zone`), so the new render keeps the serial when the text would be
/// the same and takes the next one when it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousZone {
    /// The serial it carried.
    pub serial: Serial,
    /// The whole zone file as rendered then.
    pub text: String,
}

impl PreviousZone {
    /// A previous zone file; `None` when it has no SOA serial to continue from.
    pub fn parse(text: &str) -> Option<PreviousZone> {
        Some(PreviousZone {
            serial: Serial::of_zone(text)?,
            text: text.to_string(),
        })
    }
}

/// Renders with the previous serial when that reproduces the previous text
/// byte for byte, otherwise with the next one; [`Serial::FIRST`] without a
/// previous render.
fn with_serial(previous: Option<&PreviousZone>, render: impl Fn(Serial) -> String) -> String {
    match previous {
        None => render(Serial::FIRST),
        Some(p) => {
            let same = render(p.serial);
            if same == p.text {
                same
            } else {
                render(p.serial.next())
            }
        }
    }
}

fn soa(origin: &str, ns: &str, serial: Serial) -> String {
    format!(
        "$ORIGIN {origin}.\n$TTL 300\n@ IN SOA {ns}. hostmaster.{origin}. ( {serial} 3600 600 604800 300 )\n@ IN NS {ns}.\n"
    )
}

/// Host name of the zones' name server: the first DNS node, or the KVM
/// host when no VM has the DNS role.
fn name_server(cluster: &Cluster) -> String {
    cluster
        .with_role(Role::Dns)
        .next()
        .map(|v| v.name.to_string())
        .unwrap_or_else(|| cluster.host().name.to_string())
}

/// The forward zone file of the cluster domain, rendered for the first
/// time (serial [`Serial::FIRST`]); see [`zone_after`].
pub fn zone(cluster: &Cluster, extra: &[DnsRecord]) -> String {
    zone_after(cluster, extra, None)
}

/// The forward zone file of the cluster domain with every VM, VIP and the
/// `extra` records services asked for; its serial continues from
/// `previous` (kept when nothing changed, the next one otherwise).
pub fn zone_after(
    cluster: &Cluster,
    extra: &[DnsRecord],
    previous: Option<&PreviousZone>,
) -> String {
    let domain = cluster.domain().to_string();
    let ns_name = name_server(cluster);
    let mut body = String::new();
    for (name, addr) in records(cluster, extra) {
        let _ = writeln!(body, "{name:<24} IN A {addr}");
    }
    with_serial(previous, |serial| {
        format!(
            "; Generated by flatcar-microcloud; do not edit.\n{}{body}",
            soa(&domain, &format!("{ns_name}.{domain}"), serial)
        )
    })
}

/// Reverse zone name of a network (`4.17.10.in-addr.arpa` for a /24; only
/// octet-aligned prefixes get a zone, others are skipped).
pub fn reverse_zone_name(net: Ipv4Net) -> Option<String> {
    let o = net.network().octets();
    match net.prefix_len() {
        24 => Some(format!("{}.{}.{}.in-addr.arpa", o[2], o[1], o[0])),
        16 => Some(format!("{}.{}.in-addr.arpa", o[1], o[0])),
        8 => Some(format!("{}.in-addr.arpa", o[0])),
        _ => None,
    }
}

/// Reverse zones (zone name → file) with a PTR per VM NIC, VIP and host,
/// rendered for the first time; see [`reverse_zones_after`].
pub fn reverse_zones(cluster: &Cluster) -> BTreeMap<String, String> {
    reverse_zones_after(cluster, &BTreeMap::new())
}

/// Reverse zones (zone name → file) with a PTR per VM NIC, VIP and host;
/// each zone's serial continues from its entry in `previous` (by zone name).
pub fn reverse_zones_after(
    cluster: &Cluster,
    previous: &BTreeMap<String, PreviousZone>,
) -> BTreeMap<String, String> {
    let domain = cluster.domain().to_string();
    let ns_name = name_server(cluster);
    let mut out = BTreeMap::new();
    for net in cluster.networks() {
        let Some(zone) = reverse_zone_name(net.cidr) else {
            continue;
        };
        let mut ptrs: Vec<(Ipv4Addr, String)> = Vec::new();
        for vm in cluster.vms() {
            for (i, nic) in vm.nics.iter().enumerate() {
                if nic.network == net.name {
                    let name = if i == 0 {
                        vm.name.to_string()
                    } else {
                        format!("{}.{}", vm.name, nic.network)
                    };
                    ptrs.push((nic.address, format!("{name}.{domain}.")));
                }
            }
        }
        for vip in cluster.vips().iter().filter(|v| v.network == net.name) {
            ptrs.push((vip.address, format!("{}.{domain}.", vip.name)));
        }
        if net.is_lan() {
            ptrs.push((
                cluster.host().address,
                format!("{}.{domain}.", cluster.host().name),
            ));
        }
        ptrs.sort();
        let mut body = String::new();
        for (a, name) in ptrs {
            let o = a.octets();
            let label = match net.cidr.prefix_len() {
                24 => format!("{}", o[3]),
                16 => format!("{}.{}", o[3], o[2]),
                _ => format!("{}.{}.{}", o[3], o[2], o[1]),
            };
            let _ = writeln!(body, "{label:<8} IN PTR {name}");
        }
        let text = with_serial(previous.get(&zone), |serial| {
            format!(
                "; Generated by flatcar-microcloud; do not edit.\n{}{body}",
                soa(&zone, &format!("{ns_name}.{domain}"), serial)
            )
        });
        out.insert(zone, text);
    }
    out
}

/// The Corefile: authoritative for the cluster domain and reverse zones,
/// forwarding the rest to the model's upstreams.
pub fn corefile(cluster: &Cluster) -> String {
    let domain = cluster.domain();
    let mut s = String::from("# Generated by flatcar-microcloud; do not edit.\n");
    let _ = writeln!(
        s,
        "{domain} {{\n    file {ZONE_DIR}/{domain}.zone\n    log\n    errors\n}}"
    );
    for zone in reverse_zones(cluster).keys() {
        let _ = writeln!(
            s,
            "{zone} {{\n    file {ZONE_DIR}/{zone}.zone\n    errors\n}}"
        );
    }
    let fw: Vec<String> = cluster
        .spec()
        .dns
        .forwarders
        .iter()
        .map(|a| a.to_string())
        .collect();
    let _ = writeln!(s, ". {{");
    if !fw.is_empty() {
        let _ = writeln!(s, "    forward . {}", fw.join(" "));
    }
    let _ = writeln!(
        s,
        "    cache 300\n    errors\n    health :8080\n    ready :8181\n}}"
    );
    s
}
