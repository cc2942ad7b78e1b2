//! The facade's error type.

use std::path::{Path, PathBuf};

/// Everything that can go wrong composing, rendering or writing a bundle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model is invalid, a file is unreadable, or a service failed
    /// (the model crate's error, which names the service).
    #[error(transparent)]
    Topology(#[from] flatcar_topology::Error),
    /// An Ignition config could not be rendered.
    #[error(transparent)]
    Ignition(#[from] flatcar_ignition::Error),
    /// A libvirt document could not be rendered, or a libvirt call failed.
    #[error(transparent)]
    Libvirt(#[from] flatcar_libvirt::Error),
    /// A network artifact could not be rendered.
    #[error(transparent)]
    Net(#[from] flatcar_net::Error),
    /// Reading or writing the bundle (or a model file) failed; the previous
    /// file or bundle is intact.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The bundle path has no directory name (`/`, `..`).
    #[error("{}: not a directory name", .0.display())]
    NotADirectory(PathBuf),
    /// The Ansible inventory could not be written as YAML.
    #[error("cannot render inventory/hosts.yml: {0}")]
    Inventory(#[source] serde_saphyr::ser::Error),
    /// The Terraform export could not be written as JSON.
    #[error("cannot render terraform/main.tf.json: {0}")]
    Terraform(#[source] serde_json::Error),
}

impl From<flatcar_topology::Problems> for Error {
    /// Invalid descriptions are the model crate's [`flatcar_topology::Error::Invalid`].
    fn from(p: flatcar_topology::Problems) -> Error {
        Error::Topology(flatcar_topology::Error::Invalid(p))
    }
}

pub(crate) fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}
