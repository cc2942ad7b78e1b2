//! The crate's error type.

/// Everything that can go wrong rendering K3s configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The cluster has no API VIP (a VIP with a port served by masters).
    #[error("no VIP serves role master: agents and joining servers need the API VIP")]
    NoApiVip,
    /// A VM that should run K3s has no address.
    #[error("vm {0:?} has no NIC")]
    NoAddress(String),
    /// The K3s version has no pinned binary hash and no `k3s` override.
    #[error("K3s {0} has no pinned SHA-256 (pinned: {pinned}); pin it or override the artifact \"k3s\" with its url and hash", pinned = crate::install::K3S_BINARIES.iter().map(|(v, _)| *v).collect::<Vec<_>>().join(", "))]
    UnpinnedVersion(String),
    /// A pinned artifact is malformed (a bug in the pin table).
    #[error("pinned artifact {name}: {source}")]
    Artifact {
        /// Artifact name.
        name: String,
        /// Why it was rejected.
        #[source]
        source: flatcar_topology::artifact::ArtifactError,
    },
    /// A config uses a key K3s does not accept.
    #[error("{config}: keys not accepted by K3s {version}: {keys:?}")]
    UnknownKeys {
        /// Which config.
        config: String,
        /// The pinned version.
        version: String,
        /// The keys.
        keys: Vec<String>,
    },
    /// A config's keys could not be read (it does not serialize to a map).
    #[error("{config}: cannot read its keys: {source}")]
    Keys {
        /// Which config.
        config: String,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// YAML rendering failed.
    #[error("cannot render {what}: {source}")]
    Yaml {
        /// What.
        what: String,
        /// The serializer's error.
        #[source]
        source: serde_saphyr::ser::Error,
    },
}
