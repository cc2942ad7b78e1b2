//! The crate's error type.

use crate::problem::Problems;
use crate::provision::ProvisionError;
use crate::NameError;
use std::path::PathBuf;

/// A boxed error from another crate (a service, a secret store), kept typed
/// so callers can downcast it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in `flatcar-topology`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The description breaks rules; every problem is listed.
    #[error("{0}")]
    Invalid(Problems),
    /// A TOML document could not be parsed (syntax, type or unknown field).
    #[error("TOML syntax or type error at line {line}, column {column}: {}", .source.message())]
    Toml {
        /// 1-based line (0 if unknown).
        line: usize,
        /// 1-based column (0 if unknown).
        column: usize,
        /// The parser's error.
        #[source]
        source: toml::de::Error,
    },
    /// A JSON document could not be parsed (syntax, type or unknown field).
    #[error("JSON syntax or type error at line {line}, column {column}: {source}")]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The description could not be written as TOML.
    #[error("cannot write the cluster as TOML: {0}")]
    TomlWrite(#[source] toml::ser::Error),
    /// The description could not be written as JSON.
    #[error("cannot write the cluster as JSON: {0}")]
    JsonWrite(#[source] serde_json::Error),
    /// A file's extension is neither `.toml` nor `.json`.
    #[error("{}: unknown format (use .toml or .json)", .0.display())]
    UnknownFormat(PathBuf),
    /// Reading a model file failed.
    #[error("{}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Service contributions collide or are invalid; every problem is listed.
    #[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Provision(Vec<ProvisionError>),
    /// A service failed; names the service and keeps its own error.
    #[error("service {service}: {source}")]
    Service {
        /// The service ([`crate::provision::Service::name`]).
        service: &'static str,
        /// The service's error.
        #[source]
        source: BoxError,
    },
    /// A secret name is not a valid name (it becomes a file name).
    #[error("secret {name:?}: invalid secret name: {source}")]
    SecretName {
        /// The rejected name.
        name: String,
        /// Why.
        #[source]
        source: NameError,
    },
    /// The OS random number generator failed.
    #[error("cannot generate a secret: {0}")]
    Random(#[source] getrandom::Error),
    /// A secret store could not read or keep a secret. Never carries the value.
    #[error("secret {name:?}: {source}")]
    SecretStore {
        /// Secret name.
        name: String,
        /// The store's error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// Wraps a service's own error, naming the service.
    ///
    /// ```
    /// let e = flatcar_topology::Error::service("motd", std::fmt::Error);
    /// assert_eq!(e.to_string(), "service motd: an error occurred when formatting an argument");
    /// assert!(std::error::Error::source(&e).is_some());
    /// ```
    pub fn service(
        service: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Service {
            service,
            source: Box::new(source),
        }
    }
}

impl From<Problems> for Error {
    fn from(p: Problems) -> Error {
        Error::Invalid(p)
    }
}
