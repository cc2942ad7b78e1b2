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
