//! Reading libvirt XML back (what a live connection returns, or our own
//! documents) into the facts the plan compares. Unknown elements are
//! ignored; unparsable XML is [`Error::Deserialize`] naming the object.

use crate::Error;
use serde::Deserialize;

/// What the plan compares on a domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainFacts {
    /// `kvm`, `qemu`, …
    pub virt_type: String,
    /// The `<uuid>`, when libvirt assigned one.
    pub uuid: Option<String>,
    /// Architecture.
    pub arch: String,
    /// Machine type as written (`q35`, `pc-q35-7.2`, …).
    pub machine: String,
    /// Memory in KiB.
    pub memory_kib: u64,
    /// vCPUs.
    pub vcpus: u32,
    /// Disks: `(pool, volume, serial)`.
    pub disks: Vec<(String, String, Option<String>)>,
    /// NICs in order: `(mac, network)`.
    pub nics: Vec<(String, String)>,
    /// fw_cfg entries: `(name, file)`.
    pub fw_cfg: Vec<(String, String)>,
}

/// What the plan compares on a network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkFacts {
    /// The `<uuid>`, when libvirt assigned one.
    pub uuid: Option<String>,
    /// Forward mode (`bridge`, `open`, `nat`, …; empty when isolated).
    pub forward: String,
    /// Bridge device.
    pub bridge: String,
    /// DNS domain.
    pub domain: Option<String>,
    /// Gateway address and prefix.
    pub address: Option<(String, u8)>,
    /// DHCP range.
    pub range: Option<(String, String)>,
    /// DHCP reservations: `(mac, name, ip)`, sorted.
    pub dhcp_hosts: Vec<(String, String, String)>,
    /// DNS host entries: `(ip, hostnames)`, sorted.
    pub dns_hosts: Vec<(String, Vec<String>)>,
}

/// What the plan compares on a volume.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeFacts {
    /// Capacity in bytes.
    pub capacity: u64,
    /// Format (`qcow2`, `raw`, …).
    pub format: String,
    /// Backing file, for overlays.
    pub backing: Option<String>,
}

/// What the plan compares on a pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolFacts {
    /// Pool type (`dir`, …).
    pub kind: String,
    /// Target path.
    pub path: String,
}

#[derive(Deserialize, Default)]
struct Attr {
    #[serde(rename = "@name", default)]
    name: String,
}

#[derive(Deserialize)]
struct Sized {
    #[serde(rename = "@unit", default)]
    unit: Option<String>,
    #[serde(rename = "$text")]
    value: u64,
}

#[derive(Deserialize)]
struct Counted {
    #[serde(rename = "$text")]
    value: u32,
}

#[derive(Deserialize)]
struct XDomain {
    #[serde(rename = "@type", default)]
    kind: String,
    uuid: Option<String>,
    memory: Sized,
    vcpu: Counted,
    os: XOs,
    #[serde(default)]
    devices: XDevices,
    #[serde(default)]
    sysinfo: Vec<XSysinfo>,
}

#[derive(Deserialize)]
struct XOs {
    #[serde(rename = "type")]
    kind: XOsType,
}

#[derive(Deserialize)]
struct XOsType {
    #[serde(rename = "@arch", default)]
    arch: String,
    #[serde(rename = "@machine", default)]
    machine: String,
}

#[derive(Deserialize, Default)]
struct XDevices {
    #[serde(default)]
    disk: Vec<XDisk>,
    #[serde(default)]
    interface: Vec<XInterface>,
}

#[derive(Deserialize)]
struct XDisk {
    source: Option<XDiskSource>,
    serial: Option<String>,
}

#[derive(Deserialize)]
struct XDiskSource {
    #[serde(rename = "@pool", default)]
    pool: String,
    #[serde(rename = "@volume", default)]
    volume: String,
}

#[derive(Deserialize)]
struct XInterface {
    mac: Option<XMac>,
    source: Option<XNetSource>,
}

#[derive(Deserialize)]
struct XMac {
    #[serde(rename = "@address")]
    address: String,
}

#[derive(Deserialize)]
struct XNetSource {
    #[serde(rename = "@network", default)]
    network: String,
}

#[derive(Deserialize)]
struct XSysinfo {
    #[serde(rename = "@type", default)]
    kind: String,
    #[serde(default)]
    entry: Vec<XEntry>,
}

#[derive(Deserialize)]
struct XEntry {
    #[serde(rename = "@name", default)]
    name: String,
    #[serde(rename = "@file", default)]
    file: String,
}

#[derive(Deserialize)]
struct XNetwork {
    uuid: Option<String>,
    forward: Option<XMode>,
    #[serde(default)]
    bridge: Attr,
    domain: Option<Attr>,
    dns: Option<XDns>,
    #[serde(default)]
    ip: Vec<XIp>,
}

#[derive(Deserialize)]
struct XMode {
    #[serde(rename = "@mode", default)]
    mode: String,
}

#[derive(Deserialize)]
struct XDns {
    #[serde(default)]
    host: Vec<XDnsHost>,
}

#[derive(Deserialize)]
struct XDnsHost {
    #[serde(rename = "@ip")]
    ip: String,
    #[serde(default)]
    hostname: Vec<String>,
}

#[derive(Deserialize)]
struct XIp {
    #[serde(rename = "@address", default)]
    address: String,
    #[serde(rename = "@prefix")]
    prefix: Option<u8>,
    #[serde(rename = "@netmask")]
    netmask: Option<std::net::Ipv4Addr>,
    dhcp: Option<XDhcp>,
}

#[derive(Deserialize)]
struct XDhcp {
    range: Option<XRange>,
    #[serde(default)]
    host: Vec<XDhcpHost>,
}

#[derive(Deserialize)]
struct XRange {
    #[serde(rename = "@start")]
    start: String,
    #[serde(rename = "@end")]
    end: String,
}

#[derive(Deserialize)]
struct XDhcpHost {
    #[serde(rename = "@mac", default)]
    mac: String,
    #[serde(rename = "@name", default)]
    name: String,
    #[serde(rename = "@ip", default)]
    ip: String,
}

#[derive(Deserialize)]
struct XVolume {
    capacity: Sized,
    #[serde(default)]
    target: XVolTarget,
    #[serde(rename = "backingStore")]
    backing_store: Option<XBacking>,
}

#[derive(Deserialize, Default)]
struct XVolTarget {
    format: Option<XFormat>,
}

#[derive(Deserialize)]
struct XFormat {
    #[serde(rename = "@type", default)]
    kind: String,
}

#[derive(Deserialize)]
struct XBacking {
    path: Option<String>,
}

#[derive(Deserialize)]
struct XPool {
    #[serde(rename = "@type", default)]
    kind: String,
    target: XPoolTarget,
}

#[derive(Deserialize)]
struct XPoolTarget {
    path: String,
}

fn parse<T: for<'de> Deserialize<'de>>(object: &str, xml: &str) -> Result<T, Error> {
    quick_xml::de::from_str(xml).map_err(|source| Error::Deserialize {
        object: object.to_string(),
        source,
    })
}

/// Bytes in one `unit` (libvirt's units: `b`/`bytes`, `KiB`/`k`, `KB`, …).
pub fn unit_bytes(unit: Option<&str>, default: u64) -> Option<u64> {
    Some(match unit {
        None => default,
        Some("b" | "bytes") => 1,
        Some("KB") => 1_000,
        Some("k" | "KiB") => 1 << 10,
        Some("MB") => 1_000_000,
        Some("M" | "MiB") => 1 << 20,
        Some("GB") => 1_000_000_000,
        Some("G" | "GiB") => 1 << 30,
        Some("TB") => 1_000_000_000_000,
        Some("T" | "TiB") => 1 << 40,
        Some(_) => return None,
    })
}

fn bytes(object: &str, s: &Sized, default_unit: u64) -> Result<u64, Error> {
    unit_bytes(s.unit.as_deref(), default_unit)
        .and_then(|u| s.value.checked_mul(u))
        .ok_or_else(|| Error::SizeUnit {
            object: object.to_string(),
            unit: s.unit.clone(),
        })
}

/// Facts of a domain's XML.
pub fn domain(object: &str, xml: &str) -> Result<DomainFacts, Error> {
    let d: XDomain = parse(object, xml)?;
    Ok(DomainFacts {
        virt_type: d.kind,
        uuid: d.uuid.map(|u| u.trim().to_string()),
        arch: d.os.kind.arch,
        machine: d.os.kind.machine,
        memory_kib: bytes(object, &d.memory, 1 << 10)? >> 10,
        vcpus: d.vcpu.value,
        disks: d
            .devices
            .disk
            .into_iter()
            .filter_map(|x| {
                x.source
                    .filter(|s| !s.volume.is_empty())
                    .map(|s| (s.pool, s.volume, x.serial))
            })
            .collect(),
        nics: d
            .devices
            .interface
            .into_iter()
            .map(|i| {
                (
                    i.mac.map(|m| m.address).unwrap_or_default(),
                    i.source.map(|s| s.network).unwrap_or_default(),
                )
            })
            .collect(),
        fw_cfg: d
            .sysinfo
            .into_iter()
            .filter(|s| s.kind == "fwcfg")
            .flat_map(|s| s.entry)
            .map(|e| (e.name, e.file))
            .collect(),
    })
}

/// Facts of a network's XML.
pub fn network(object: &str, xml: &str) -> Result<NetworkFacts, Error> {
    let n: XNetwork = parse(object, xml)?;
    let ip = n.ip.into_iter().next();
    let mut dhcp_hosts: Vec<_> = ip
        .as_ref()
        .and_then(|i| i.dhcp.as_ref())
        .map(|d| {
            d.host
                .iter()
                .map(|h| (h.mac.to_lowercase(), h.name.clone(), h.ip.clone()))
                .collect()
        })
        .unwrap_or_default();
    dhcp_hosts.sort();
    let mut dns_hosts: Vec<_> = n
        .dns
        .map(|d| d.host.into_iter().map(|h| (h.ip, h.hostname)).collect())
        .unwrap_or_default();
    dns_hosts.sort();
    Ok(NetworkFacts {
        uuid: n.uuid.map(|u| u.trim().to_string()),
        forward: n.forward.map(|f| f.mode).unwrap_or_default(),
        bridge: n.bridge.name,
        domain: n.domain.map(|d| d.name),
        range: ip
            .as_ref()
            .and_then(|i| i.dhcp.as_ref())
            .and_then(|d| d.range.as_ref())
            .map(|r| (r.start.clone(), r.end.clone())),
        address: ip.map(|i| {
            let prefix = i
                .prefix
                .or_else(|| i.netmask.map(|m| m.to_bits().count_ones() as u8))
                .unwrap_or(0);
            (i.address, prefix)
        }),
        dhcp_hosts,
        dns_hosts,
    })
}

/// Facts of a volume's XML.
pub fn volume(object: &str, xml: &str) -> Result<VolumeFacts, Error> {
    let v: XVolume = parse(object, xml)?;
    Ok(VolumeFacts {
        capacity: bytes(object, &v.capacity, 1)?,
        format: v.target.format.map(|f| f.kind).unwrap_or_default(),
        backing: v.backing_store.and_then(|b| b.path),
    })
}

/// Facts of a pool's XML.
pub fn pool(object: &str, xml: &str) -> Result<PoolFacts, Error> {
    let p: XPool = parse(object, xml)?;
    Ok(PoolFacts {
        kind: p.kind,
        path: p.target.path.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libvirt_style_domain() {
        let xml = "<domain type='kvm' id='3'><name>a</name><uuid>u-1</uuid>\
            <memory unit='KiB'>2097152</memory><vcpu placement='static'>2</vcpu>\
            <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>\
            <devices><emulator>/usr/bin/qemu</emulator>\
            <disk type='volume' device='disk'><source pool='p' volume='a-root.qcow2'/></disk>\
            <disk type='volume' device='disk'><source pool='p' volume='a-d.qcow2'/><serial>d</serial></disk>\
            <controller type='usb'/>\
            <interface type='network'><mac address='52:54:00:00:00:01'/><source network='k8s'/></interface>\
            <controller type='pci'/>\
            <interface type='network'><mac address='52:54:00:00:00:02'/><source network='lan'/></interface>\
            </devices></domain>";
        let f = domain("domain a", xml).expect("parses");
        assert_eq!(f.memory_kib, 2 << 20);
        assert_eq!(f.vcpus, 2);
        assert_eq!(f.uuid.as_deref(), Some("u-1"));
        assert_eq!(f.disks.len(), 2);
        assert_eq!(f.disks[1].2.as_deref(), Some("d"));
        assert_eq!(f.nics.len(), 2, "interfaces split by a controller");
        assert_eq!(f.nics[1].1, "lan");
    }

    #[test]
    fn garbage_is_a_typed_error() {
        match domain("domain x", "<domain><memory>lots</memory></domain>") {
            Err(Error::Deserialize { object, .. }) => assert_eq!(object, "domain x"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            volume(
                "volume v",
                "<volume><capacity unit='parsec'>1</capacity></volume>"
            ),
            Err(Error::Deserialize { .. } | Error::SizeUnit { .. })
        ));
    }
}
