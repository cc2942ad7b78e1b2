//! Firewall zones and allowed flows.

use crate::{Name, PortRange, Role};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One side of a flow. Written in files as `internet`, `lan`, `vpn`, `host`,
/// `net:<name>`, `role:<role>`, `vm:<name>`, `vip:<name>` or `addr:<ipv4>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Endpoint {
    /// Anything that is not the LAN, the VPN or a VM network.
    Internet,
    /// The LAN network.
    Lan,
    /// VPN clients.
    Vpn,
    /// The physical KVM host itself.
    Host,
    /// Every address of one network.
    Network(Name),
    /// Every VM with the role.
    Role(Role),
    /// One VM.
    Vm(Name),
    /// One VIP.
    Vip(Name),
    /// One address that is no VM or VIP of the model: a machine on the LAN
    /// such as an artifact mirror or a NAS (`addr:192.168.0.5`).
    Addr(std::net::Ipv4Addr),
}

impl std::str::FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let name = |n: &str| Name::new(n).map_err(|e| format!("endpoint {s:?}: name {e}"));
        Ok(match s.split_once(':') {
            None => match s {
                "internet" => Endpoint::Internet,
                "lan" => Endpoint::Lan,
                "vpn" => Endpoint::Vpn,
                "host" => Endpoint::Host,
                _ => {
                    return Err(format!(
                    "unknown endpoint {s:?} (internet, lan, vpn, host, net:…, role:…, vm:…, vip:…, addr:…)"
                ))
                }
            },
            Some(("net", n)) => Endpoint::Network(name(n)?),
            Some(("role", r)) => Endpoint::Role(r.parse()?),
            Some(("vm", n)) => Endpoint::Vm(name(n)?),
            Some(("vip", n)) => Endpoint::Vip(name(n)?),
            Some(("addr", a)) => Endpoint::Addr(
                a.parse()
                    .map_err(|_| format!("endpoint {s:?}: {a:?} is not an IPv4 address"))?,
            ),
            Some(_) => return Err(format!("unknown endpoint kind in {s:?}")),
        })
    }
}

impl TryFrom<String> for Endpoint {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Endpoint> for String {
    fn from(e: Endpoint) -> String {
        e.to_string()
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Internet => f.write_str("internet"),
            Endpoint::Lan => f.write_str("lan"),
            Endpoint::Vpn => f.write_str("vpn"),
            Endpoint::Host => f.write_str("host"),
            Endpoint::Network(n) => write!(f, "net:{n}"),
            Endpoint::Role(r) => write!(f, "role:{r}"),
            Endpoint::Vm(n) => write!(f, "vm:{n}"),
            Endpoint::Vip(n) => write!(f, "vip:{n}"),
            Endpoint::Addr(a) => write!(f, "addr:{a}"),
        }
    }
}

impl From<Role> for Endpoint {
    fn from(r: Role) -> Self {
        Endpoint::Role(r)
    }
}

/// Transport protocol of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP (ports ignored).
    Icmp,
    /// Any protocol (ports ignored).
    Any,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
            Proto::Any => "any",
        })
    }
}

/// Traffic the firewall lets through: new connections from `from` to `to`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    /// Source.
    pub from: Endpoint,
    /// Destination.
    pub to: Endpoint,
    /// Protocol.
    pub proto: Proto,
    /// Destination ports (empty: all; ignored for ICMP/any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortRange>,
    /// Why it exists (a [`Name`], so it is safe in any output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<Name>,
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {} {}", self.from, self.to, self.proto)?;
        if !self.ports.is_empty() {
            let p: Vec<String> = self.ports.iter().map(|p| p.to_string()).collect();
            write!(f, "/{}", p.join(","))?;
        }
        if let Some(w) = &self.why {
            write!(f, " ({w})")?;
        }
        Ok(())
    }
}
