//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong rendering Ignition or keeping secrets on disk.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A node's Ignition config could not be serialized.
    #[error("cannot render the Ignition config of {hostname:?}: {source}")]
    Json {
        /// The node's hostname.
        hostname: String,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
