//! The WireGuard VPN.

use crate::{DomainName, Name, Port};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;

/// Where the VPN terminates: the physical host or a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum VpnEndpoint {
    /// The physical KVM host.
    Host,
    /// A VM (by name).
    Vm(Name),
}

impl TryFrom<String> for VpnEndpoint {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.split_once(':') {
            None if s == "host" => Ok(VpnEndpoint::Host),
            Some(("vm", n)) => Name::new(n)
                .map(VpnEndpoint::Vm)
                .map_err(|e| format!("vpn endpoint vm name {e}")),
            _ => Err(format!(
                "vpn endpoint {s:?} is neither \"host\" nor \"vm:<name>\""
            )),
        }
    }
}

impl From<VpnEndpoint> for String {
    fn from(e: VpnEndpoint) -> String {
        match e {
            VpnEndpoint::Host => "host".into(),
            VpnEndpoint::Vm(n) => format!("vm:{n}"),
        }
    }
}

/// A `host:port` that a peer dials, where host is an IPv4 address or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DialAddr {
    /// Host part.
    pub host: DialHost,
    /// UDP port.
    pub port: Port,
}

/// Host part of a [`DialAddr`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialHost {
    /// An address.
    Ip(Ipv4Addr),
    /// A DNS name.
    Dns(DomainName),
}

impl TryFrom<String> for DialAddr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl std::str::FromStr for DialAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (h, p) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?} is not host:port"))?;
        let port: u16 = p.parse().map_err(|_| format!("{s:?}: bad port"))?;
        let port = Port::new(port).map_err(|e| format!("{s:?}: {e}"))?;
        let host = match h.parse::<Ipv4Addr>() {
            Ok(a) => DialHost::Ip(a),
            Err(_) => DialHost::Dns(DomainName::new(h).map_err(|e| format!("{s:?}: host {e}"))?),
        };
        Ok(DialAddr { host, port })
    }
}

impl From<DialAddr> for String {
    fn from(d: DialAddr) -> String {
        d.to_string()
    }
}

impl fmt::Display for DialAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            DialHost::Ip(a) => write!(f, "{a}:{}", self.port),
            DialHost::Dns(d) => write!(f, "{d}:{}", self.port),
        }
    }
}

/// A VPN peer (a laptop, a VPS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpnPeer {
    /// Name (its key pair is the secret `wg-<name>`).
    pub name: Name,
    /// Tunnel address, inside the VPN subnet.
    pub address: Ipv4Addr,
    /// Where the endpoint can reach the peer, if it has a public address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<DialAddr>,
    /// Persistent keepalive in seconds (for peers behind NAT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive: Option<u16>,
}

/// The WireGuard VPN: one endpoint, many peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vpn {
    /// Where the tunnel terminates.
    pub endpoint: VpnEndpoint,
    /// Interface name on the endpoint.
    #[serde(default = "default_ifname")]
    pub interface: crate::network::IfName,
    /// UDP listen port.
    pub listen_port: Port,
    /// Tunnel subnet.
    #[serde(with = "crate::addr::subnet")]
    pub subnet: Ipv4Net,
    /// The endpoint's tunnel address.
    pub address: Ipv4Addr,
    /// What peers dial to reach the endpoint (router port-forward or public name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_endpoint: Option<DialAddr>,
    /// Peers.
    #[serde(default)]
    pub peers: Vec<VpnPeer>,
}

fn default_ifname() -> crate::network::IfName {
    crate::network::IfName::unchecked("wg0")
}
