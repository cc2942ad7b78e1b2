//! libvirt network XML: the LAN in bridge mode on the host bridge, NAT
//! networks in `open` forward mode (see the [module docs](super)) with the
//! gateway address, DHCP range, one reservation per VM NIC, DNS host
//! entries and the cluster's domain. With several hosts, a NAT network
//! spans them as a VXLAN segment (`flatcar_topology::fabric`): libvirt
//! cannot create the VXLAN port, so the network is in `bridge` mode on the
//! bridge the host's systemd-networkd files create (the same XML on every
//! host; the gateway address lives on that bridge, VMs have static
//! addresses from Ignition, names come from the cloud's DNS).

use crate::metadata::{render, Document, Metadata};
use crate::Error;
use flatcar_topology::{Cluster, Network, NetworkKind};
use serde::Serialize;

#[derive(Clone, Serialize)]
struct NetworkXml {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    uuid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata>,
    forward: Forward,
    bridge: Bridge,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<DomainXml>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dns: Option<Dns>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<Ip>,
}

#[derive(Clone, Serialize)]
struct Forward {
    #[serde(rename = "@mode")]
    mode: &'static str,
}

#[derive(Clone, Serialize)]
struct Bridge {
    #[serde(rename = "@name")]
    name: String,
    #[serde(rename = "@stp", skip_serializing_if = "Option::is_none")]
    stp: Option<&'static str>,
    #[serde(rename = "@delay", skip_serializing_if = "Option::is_none")]
    delay: Option<&'static str>,
}

#[derive(Clone, Serialize)]
struct DomainXml {
    #[serde(rename = "@name")]
    name: String,
    #[serde(rename = "@localOnly")]
    local_only: &'static str,
}

#[derive(Clone, Serialize)]
struct Dns {
    host: Vec<DnsHost>,
}

#[derive(Clone, Serialize)]
struct DnsHost {
    #[serde(rename = "@ip")]
    ip: String,
    hostname: Vec<String>,
}

#[derive(Clone, Serialize)]
struct Ip {
    #[serde(rename = "@address")]
    address: String,
    #[serde(rename = "@prefix")]
    prefix: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    dhcp: Option<Dhcp>,
}

#[derive(Clone, Serialize)]
struct Dhcp {
    #[serde(skip_serializing_if = "Option::is_none")]
    range: Option<Range>,
    host: Vec<DhcpHost>,
}

#[derive(Clone, Serialize)]
struct Range {
    #[serde(rename = "@start")]
    start: String,
    #[serde(rename = "@end")]
    end: String,
}

#[derive(Clone, Serialize)]
struct DhcpHost {
    #[serde(rename = "@mac")]
    mac: String,
    #[serde(rename = "@name")]
    name: String,
    #[serde(rename = "@ip")]
    ip: String,
}

/// A `<forward mode='bridge'/>` network on the existing bridge of `net`.
fn bridged(net: &Network) -> NetworkXml {
    NetworkXml {
        name: net.name.to_string(),
        uuid: None,
        metadata: None,
        forward: Forward { mode: "bridge" },
        bridge: Bridge {
            name: net.bridge.to_string(),
            stp: None,
            delay: None,
        },
        domain: None,
        dns: None,
        ip: None,
    }
}

fn build(cluster: &Cluster, net: &Network) -> NetworkXml {
    let spans = cluster
        .fabric()
        .is_some_and(|f| f.segment(net.name.as_str()).is_some());
    match net.kind {
        // The LAN, and a NAT network that spans hosts (its bridge, VXLAN
        // port and gateway come from the host's networkd files): libvirt
        // only attaches to an existing bridge.
        NetworkKind::Lan => bridged(net),
        NetworkKind::Nat if spans => bridged(net),
        NetworkKind::Nat => {
            let mut hosts = Vec::new();
            let mut dns = Vec::new();
            for vm in cluster.vms() {
                for nic in cluster
                    .nics(vm)
                    .into_iter()
                    .filter(|n| n.network.name == net.name)
                {
                    hosts.push(DhcpHost {
                        mac: nic.mac.to_string(),
                        name: vm.name.to_string(),
                        ip: nic.address.to_string(),
                    });
                    dns.push(DnsHost {
                        ip: nic.address.to_string(),
                        hostname: vec![vm.name.to_string(), cluster.fqdn(&vm.name).to_string()],
                    });
                }
            }
            NetworkXml {
                name: net.name.to_string(),
                uuid: None,
                metadata: None,
                forward: Forward { mode: "open" },
                bridge: Bridge {
                    name: net.bridge.to_string(),
                    stp: Some("on"),
                    delay: Some("0"),
                },
                domain: Some(DomainXml {
                    name: cluster.domain().to_string(),
                    local_only: "yes",
                }),
                dns: (!dns.is_empty()).then_some(Dns { host: dns }),
                ip: Some(Ip {
                    address: net.gateway.to_string(),
                    prefix: net.cidr.prefix_len(),
                    dhcp: net.dhcp.map(|r| Dhcp {
                        range: Some(Range {
                            start: r.start.to_string(),
                            end: r.end.to_string(),
                        }),
                        host: hosts,
                    }),
                }),
            }
        }
    }
}

impl Document for NetworkXml {
    const ROOT: &'static str = "network";
    fn identity(&mut self) -> (&mut Option<String>, &mut Option<Metadata>) {
        (&mut self.uuid, &mut self.metadata)
    }
    /// Without the DHCP reservations and DNS hosts: apply changes those
    /// on a running network live (`virNetworkUpdate`), where the live
    /// XML keeps the metadata the network started with.
    fn hash_view(&self) -> Option<Self> {
        let mut view = self.clone();
        view.dns = None;
        if let Some(dhcp) = view.ip.as_mut().and_then(|ip| ip.dhcp.as_mut()) {
            dhcp.host.clear();
        }
        Some(view)
    }
}

/// The network's XML with ownership metadata.
pub fn xml(cluster: &Cluster, net: &Network) -> Result<String, Error> {
    render(cluster, build(cluster, net), None)
}

/// The network's XML carrying the `uuid` of the live network it redefines
/// (libvirt redefines a network by name only with its UUID).
pub fn xml_with_uuid(cluster: &Cluster, net: &Network, uuid: &str) -> Result<String, Error> {
    render(cluster, build(cluster, net), Some(uuid))
}

/// A DHCP reservation as the `<host>` element `virNetworkUpdate` takes
/// (section `ip-dhcp-host`); quick-xml escapes the values.
pub fn dhcp_host_xml(host: &crate::diff::DhcpHost) -> Result<String, Error> {
    let (mac, name, ip) = host;
    crate::to_xml(
        "host",
        &DhcpHost {
            mac: mac.clone(),
            name: name.clone(),
            ip: ip.clone(),
        },
    )
}

/// A DNS host entry as the `<host>` element `virNetworkUpdate` takes
/// (section `dns-host`).
pub fn dns_host_xml(host: &crate::diff::DnsHost) -> Result<String, Error> {
    let (ip, hostname) = host;
    crate::to_xml(
        "host",
        &DnsHost {
            ip: ip.clone(),
            hostname: hostname.clone(),
        },
    )
}
