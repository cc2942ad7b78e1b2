//! The crate's error type.

use crate::problem::Problems;

/// Everything that can go wrong in `flatcar-topology`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The description breaks rules; every problem is listed.
    #[error("{0}")]
    Invalid(Problems),
    /// A file is not well-formed TOML or JSON.
    #[error("{format} syntax error at line {line}, column {column}: {message}")]
    Parse {
        /// `TOML` or `JSON`.
        format: &'static str,
        /// 1-based line (0 if unknown).
        line: usize,
        /// 1-based column (0 if unknown).
        column: usize,
        /// The parser's message, escaped and shortened.
        message: String,
    },
    /// A well-formed file has a field the model rejects: an invalid value (a
    /// bad name, a subnet with host bits), a wrong type, an unknown,
    /// missing or duplicate field. Names the field by its path.
    #[error("{format} {kind} in {field} at line {line}, column {column}: {message}")]
    Field {
        /// `TOML` or `JSON`.
        format: &'static str,
        /// `invalid value`, `wrong type`, `unknown field`, `missing field`
        /// or `duplicate field`.
        kind: &'static str,
        /// Path of the field (`vms[3].name`), or `the top level`.
        field: String,
        /// 1-based line (0 if unknown).
        line: usize,
        /// 1-based column (0 if unknown).
        column: usize,
        /// Why, escaped and shortened.
        message: String,
    },
    /// The description could not be serialized.
    #[error("cannot serialize the cluster: {0}")]
    Serialize(String),
    /// A file's extension is neither `.toml` nor `.json`.
    #[error("{0}: unknown format (use .toml or .json)")]
    UnknownFormat(String),
    /// Service contributions collide or are invalid; every problem is listed.
    #[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Provision(Vec<crate::provision::ProvisionError>),
    /// A secret could not be generated, read or stored. Never carries the value.
    #[error("secret {name:?}: {message}")]
    Secret {
        /// Secret name.
        name: String,
        /// What failed.
        message: String,
    },
    /// A libvirt call failed; names the object and carries libvirt's message.
    #[error("libvirt: {object}: {message}")]
    Libvirt {
        /// Kind and name of the object.
        object: String,
        /// libvirt's message.
        message: String,
    },
    /// Apply refused before changing anything: an object of that name exists
    /// and is not this cluster's (or cannot be changed safely).
    #[error("libvirt: {object}: refusing to apply: {reason}")]
    Refused {
        /// Kind and name of the object.
        object: String,
        /// Why it is not touched.
        reason: String,
    },
    /// XML (from libvirt, or a document handed to it) could not be read.
    #[error("libvirt XML of {object}: {message}")]
    Xml {
        /// Kind and name of the object.
        object: String,
        /// The parser's message.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        message: String,
    },
}
