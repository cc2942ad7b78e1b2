//! The crate's error type.

/// Everything that can go wrong rendering or (feature `live`) applying
/// network services.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The ruleset could not be serialized as JSON.
    #[error("cannot serialise the ruleset: {0}")]
    Json(#[source] serde_json::Error),
    /// `nft` rejected the ruleset; the previous ruleset is still in place.
    /// Carries `nft`'s own message (deduplicated), not an error value.
    #[error("nft rejected the ruleset (nothing changed): {0}")]
    Nft(String),
    /// A command could not be run.
    #[error("cannot run {command}: {source}")]
    Command {
        /// The command.
        command: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A WireGuard key could not be parsed (the key itself is never shown).
    #[error("WireGuard key {0:?} is not valid base64 of 32 bytes")]
    Key(String),
    /// The OS random number generator failed (generating a key).
    #[error("cannot generate a WireGuard key: {0}")]
    Random(#[source] getrandom::Error),
    /// The model has no VPN to apply.
    #[error("the model has no VPN")]
    NoVpn,
    /// An interface name the kernel would not accept.
    #[cfg(feature = "live")]
    #[error("WireGuard interface {interface:?}: {source}")]
    InterfaceName {
        /// The name.
        interface: String,
        /// Why.
        #[source]
        source: wireguard_control::InvalidInterfaceName,
    },
    /// Applying a WireGuard config to an interface failed.
    #[cfg(feature = "live")]
    #[error("WireGuard interface {interface}: {source}")]
    WireGuard {
        /// Interface.
        interface: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
