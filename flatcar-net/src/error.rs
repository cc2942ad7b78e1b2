//! The crate's error type.

/// Everything that can go wrong rendering or applying network services.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `nft` rejected the ruleset; the previous ruleset is still in place.
    #[error("nft rejected the ruleset (nothing changed): {0}")]
    Nft(String),
    /// A command could not be run.
    #[error("cannot run {command}: {message}")]
    Command {
        /// The command.
        command: String,
        /// Why.
        message: String,
    },
    /// A WireGuard key could not be parsed (the key itself is never shown):
    /// names the secret it was read from (`secrets/<name>` in a bundle), or
    /// the public key.
    #[error("WireGuard key {0} is not valid base64 of 32 bytes")]
    Key(String),
    /// Applying a WireGuard config to an interface failed.
    #[error("WireGuard interface {interface}: {message}")]
    WireGuard {
        /// Interface.
        interface: String,
        /// Why.
        message: String,
    },
}
