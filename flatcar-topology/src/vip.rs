//! Virtual IPs: addresses that float between load balancers.

use crate::{Name, Port, Role};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;

/// Which port the backends listen on for a VIP port.
///
/// Ingress ports are not typed twice: `IngressWeb`/`IngressWebsecure` resolve
/// to the ports declared once in [`crate::K3s::ingress`], which the K3s side
/// uses to expose Traefik.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "BackendRepr", into = "BackendRepr")]
pub enum BackendPort {
    /// A fixed port.
    Port(Port),
    /// Traefik's `web` entry point, as declared in the K3s settings.
    IngressWeb,
    /// Traefik's `websecure` entry point, as declared in the K3s settings.
    IngressWebsecure,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum BackendRepr {
    Port(u16),
    Name(String),
}

impl TryFrom<BackendRepr> for BackendPort {
    type Error = String;
    fn try_from(r: BackendRepr) -> Result<Self, String> {
        match r {
            BackendRepr::Port(n) => Port::new(n)
                .map(BackendPort::Port)
                .map_err(|e| e.to_string()),
            BackendRepr::Name(s) if s == "ingress-web" => Ok(BackendPort::IngressWeb),
            BackendRepr::Name(s) if s == "ingress-websecure" => Ok(BackendPort::IngressWebsecure),
            BackendRepr::Name(s) => Err(format!(
                "backend {s:?} is neither a port nor \"ingress-web\"/\"ingress-websecure\""
            )),
        }
    }
}

impl From<BackendPort> for BackendRepr {
    fn from(b: BackendPort) -> Self {
        match b {
            BackendPort::Port(p) => BackendRepr::Port(p.get()),
            BackendPort::IngressWeb => BackendRepr::Name("ingress-web".into()),
            BackendPort::IngressWebsecure => BackendRepr::Name("ingress-websecure".into()),
        }
    }
}

impl From<Port> for BackendPort {
    fn from(p: Port) -> Self {
        BackendPort::Port(p)
    }
}

impl fmt::Display for BackendPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendPort::Port(p) => write!(f, "{p}"),
            BackendPort::IngressWeb => f.write_str("ingress-web"),
            BackendPort::IngressWebsecure => f.write_str("ingress-websecure"),
        }
    }
}

/// One TCP port of a VIP and who serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VipPort {
    /// Port on the VIP.
    pub port: Port,
    /// VMs with this role are the backends.
    pub role: Role,
    /// Port on the backends.
    pub backend: BackendPort,
}

/// What a higher-priority holder does when it comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preempt {
    /// Takes the VIP back at once.
    Always,
    /// Takes it back after this many seconds (Keepalived `preempt_delay`).
    AfterSecs(u16),
    /// Never takes it back (Keepalived `nopreempt`).
    Never,
}

impl Default for Preempt {
    fn default() -> Self {
        Preempt::AfterSecs(5)
    }
}

/// Most holders a VIP may have. Each holder of a VRRP instance needs its
/// own priority in 1–254 (equal priorities break elections on the address
/// tie-breaker, and a priority of 0 means "releasing"); the load-balancer
/// service spaces them 50 apart from 200 (200, 150, 100, 50) so that the
/// backups' skew times stay a fifth of an advert apart.
pub const MAX_VIP_HOLDERS: usize = 4;

/// A virtual IP held by one of its holders at a time (VRRP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vip {
    /// Name; also a DNS name (`api` → `api.<domain>`).
    pub name: Name,
    /// Network the VIP lives on (by name).
    pub network: Name,
    /// The address.
    pub address: Ipv4Addr,
    /// Ports and their backends.
    pub ports: Vec<VipPort>,
    /// Holder VMs, highest priority first.
    pub holders: Vec<Name>,
    /// Preemption when a higher-priority holder returns.
    #[serde(default)]
    pub preempt: Preempt,
}
