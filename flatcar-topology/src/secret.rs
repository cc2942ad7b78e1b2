//! Secrets: values that are generated, stored 0600 and never printed.

use crate::{Name, NameError};
use std::fmt;

/// A secret value. `Debug` and `Display` print `<redacted>`; read it with
/// [`Secret::expose`] only where it is written to a 0600 file.
///
/// ```
/// use flatcar_topology::Secret;
/// let s = Secret::new("hunter2");
/// assert_eq!(format!("{s:?} {s}"), "Secret(<redacted>) <redacted>");
/// assert_eq!(s.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The value. Call sites are the only places a secret can leak: keep them few.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Which secret: one identity per purpose and owner, so two purposes can
/// never share a value (a VPN peer named `endpoint` has its own key, a K3s
/// token cannot name a WireGuard key). Stores key secrets by
/// [`SecretId::file_name`], which is injective: fixed purposes have fixed
/// names, peer keys are `wg-peer-<peer>`, and a service's own secrets are
/// `<service>.<name>` (a dot, which no built-in name and no [`Name`] has).
///
/// ```
/// use flatcar_topology::{Name, SecretId};
/// let peer = SecretId::WgPeer(Name::new("endpoint").unwrap());
/// assert_ne!(peer.file_name(), SecretId::WgEndpoint.file_name());
/// assert_eq!(SecretId::K3sToken.file_name(), "k3s-token");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum SecretId {
    /// The K3s cluster join token (`k3s-token`).
    K3sToken,
    /// The K3s agent join token (`k3s-token-agent`).
    K3sAgentToken,
    /// The admin's SSH private key (`admin-ssh-ed25519`).
    AdminSshKey,
    /// The PostgreSQL superuser password (`postgres-password`).
    PostgresPassword,
    /// The WireGuard endpoint's private key (`wg-endpoint`).
    WgEndpoint,
    /// A VPN peer's private key (`wg-peer-<peer>`).
    WgPeer(Name),
    /// A secret of a service of its own (`<service>.<name>`).
    Service {
        /// The service that owns it.
        service: Name,
        /// Its name within the service.
        name: Name,
    },
}

impl SecretId {
    /// A service's own secret; both parts must be valid [`Name`]s.
    pub fn service(service: &str, name: &str) -> Result<SecretId, NameError> {
        Ok(SecretId::Service {
            service: Name::new(service)?,
            name: Name::new(name)?,
        })
    }

    /// The file (and store key) of this secret: safe as a file name, and
    /// distinct for distinct identities.
    pub fn file_name(&self) -> String {
        match self {
            SecretId::K3sToken => "k3s-token".into(),
            SecretId::K3sAgentToken => "k3s-token-agent".into(),
            SecretId::AdminSshKey => "admin-ssh-ed25519".into(),
            SecretId::PostgresPassword => "postgres-password".into(),
            SecretId::WgEndpoint => "wg-endpoint".into(),
            SecretId::WgPeer(p) => format!("wg-peer-{p}"),
            SecretId::Service { service, name } => format!("{service}.{name}"),
        }
    }

    /// Where earlier versions stored this secret, when that file can only
    /// have been this secret's: peer keys were `wg-<peer>` (except a peer
    /// named `endpoint`, whose file was the endpoint's key).
    pub fn legacy_file_name(&self) -> Option<String> {
        match self {
            SecretId::WgPeer(p) if p.as_str() != "endpoint" => Some(format!("wg-{p}")),
            _ => None,
        }
    }
}

impl fmt::Display for SecretId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file_name())
    }
}
