//! K3s cluster settings that other parts of the model depend on.

use crate::{Endpoint, Name, Port};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a K3s version or cron schedule was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum K3sSettingError {
    /// Not `vMAJOR.MINOR.PATCH+k3sN`.
    #[error("{0:?} is not a K3s version like v1.31.4+k3s1")]
    Version(String),
    /// Not a five-field cron expression of `0-9 * / , -`.
    #[error("{0:?} is not a five-field cron schedule")]
    Cron(String),
}

/// A K3s release (`v1.31.4+k3s1`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct K3sVersion(String);

impl K3sVersion {
    /// Validates a version.
    pub fn new(s: impl Into<String>) -> Result<Self, K3sSettingError> {
        let s = s.into();
        let ok = (|| {
            let rest = s.strip_prefix('v')?;
            let (ver, k3s) = rest.split_once("+k3s")?;
            let parts: Vec<&str> = ver.split('.').collect();
            let num =
                |p: &str| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit());
            (parts.len() == 3 && parts.iter().all(|p| num(p)) && num(k3s)).then_some(())
        })()
        .is_some();
        if ok {
            Ok(K3sVersion(s))
        } else {
            Err(K3sSettingError::Version(s))
        }
    }

    /// The version text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for K3sVersion {
    type Error = K3sSettingError;
    fn try_from(s: String) -> Result<Self, K3sSettingError> {
        K3sVersion::new(s)
    }
}

impl From<K3sVersion> for String {
    fn from(v: K3sVersion) -> String {
        v.0
    }
}

impl fmt::Display for K3sVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for K3sVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A five-field cron schedule (`0 */6 * * *`).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cron(String);

impl Cron {
    /// Validates a schedule.
    pub fn new(s: impl Into<String>) -> Result<Self, K3sSettingError> {
        let s = s.into();
        let fields: Vec<&str> = s.split(' ').collect();
        let ok = fields.len() == 5
            && fields.iter().all(|f| {
                !f.is_empty()
                    && f.bytes()
                        .all(|b| b.is_ascii_digit() || matches!(b, b'*' | b'/' | b',' | b'-'))
            });
        if ok {
            Ok(Cron(s))
        } else {
            Err(K3sSettingError::Cron(s))
        }
    }

    /// The schedule text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Cron {
    type Error = K3sSettingError;
    fn try_from(s: String) -> Result<Self, K3sSettingError> {
        Cron::new(s)
    }
}

impl From<Cron> for String {
    fn from(c: Cron) -> String {
        c.0
    }
}

impl fmt::Debug for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Ports on every ingress node where Traefik's entry points are exposed
/// (host ports or NodePorts). The single source of truth: the K3s side
/// configures Traefik with them and the load balancers forward to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ingress {
    /// Traefik `web` (HTTP).
    pub web: Port,
    /// Traefik `websecure` (HTTPS).
    pub websecure: Port,
}

/// Pod network backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flannel {
    /// VXLAN, udp/8472.
    Vxlan,
    /// WireGuard, udp/51820–51821.
    WireguardNative,
}

/// etcd snapshot schedule and retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdSnapshots {
    /// When to snapshot.
    pub schedule: Cron,
    /// How many to keep.
    pub retention: u32,
}

/// K3s settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct K3s {
    /// Pinned release.
    pub version: K3sVersion,
    /// Pod CIDR; must not overlap any network of the model.
    pub cluster_cidr: Ipv4Net,
    /// Service CIDR; must not overlap any network of the model.
    pub service_cidr: Ipv4Net,
    /// Where Traefik's entry points are exposed.
    pub ingress: Ingress,
    /// Whether masters also run application pods (otherwise tainted).
    #[serde(default)]
    pub masters_schedulable: bool,
    /// Pod network backend.
    #[serde(default = "default_flannel")]
    pub flannel: Flannel,
    /// etcd snapshots.
    pub etcd_snapshots: EtcdSnapshots,
    /// Secret holding the cluster join token.
    #[serde(default = "default_token")]
    pub token: Name,
}

fn default_flannel() -> Flannel {
    Flannel::Vxlan
}

fn default_token() -> Name {
    Name::unchecked("k3s-token")
}

impl Default for K3s {
    fn default() -> Self {
        K3s {
            version: K3sVersion("v1.31.4+k3s1".into()),
            cluster_cidr: crate::net4!("10.42.0.0/16"),
            service_cidr: crate::net4!("10.43.0.0/16"),
            ingress: Ingress {
                web: Port::of(30080),
                websecure: Port::of(30443),
            },
            masters_schedulable: false,
            flannel: Flannel::Vxlan,
            etcd_snapshots: EtcdSnapshots {
                schedule: Cron("0 */6 * * *".into()),
                retention: 10,
            },
            token: default_token(),
        }
    }
}

/// An NFS export on the storage node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NfsShare {
    /// Name; exported as `/srv/nfs/<name>` from the storage node's data disk.
    pub name: Name,
    /// Who may mount it.
    pub clients: Vec<Endpoint>,
}
