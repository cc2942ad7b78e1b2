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
    /// Strict rendering refused downloads that carry no hash or digest.
    #[error("refusing to render: {} artifact(s) without a published hash or digest (pin or override them):\n{}", .0.len(), .0.join("\n"))]
    Unverified(Vec<String>),
    /// An artifact override names no artifact the cloud downloads.
    #[error("artifact override {name:?} matches nothing this cloud downloads (known: {known})")]
    UnknownOverride {
        /// The override's name.
        name: String,
        /// The artifact names the cloud uses.
        known: String,
    },
    /// The bundle path has no directory name (`/`, `..`).
    #[error("{}: not a directory name", .0.display())]
    NotADirectory(PathBuf),
    /// The Ansible inventory could not be written as YAML.
    #[error("cannot render inventory/hosts.yml: {0}")]
    Inventory(#[source] serde_saphyr::ser::Error),
    /// Applying the host's part (`--apply-host`) failed at `step`.
    #[error("host {step}: {source}")]
    Host {
        /// What was being done (`nft list tables`, `nftables`, …).
        step: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A rolling plan stopped at a VM's step (`deploy::execute`); the steps
    /// before it are done, nothing after it ran.
    #[error("rollout stopped at {vm}: {step}")]
    Rollout {
        /// The VM (or `host`).
        vm: String,
        /// What was being done.
        step: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A command on a VM exited non-zero (its standard error, trimmed).
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command (never carries file contents).
        command: String,
        /// Exit status, or how it ended.
        status: String,
        /// Its standard error (or ssh's).
        stderr: String,
    },
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
