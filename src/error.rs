//! The facade's error type.

/// Everything that can go wrong composing, rendering or writing a bundle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model or a service failed.
    #[error(transparent)]
    Topology(#[from] flatcar_topology::Error),
    /// The cluster description is invalid.
    #[error("{0}")]
    Invalid(#[from] flatcar_topology::Problems),
    /// Reading or writing the bundle failed; the previous bundle is intact.
    #[error("{path}: {message}")]
    Io {
        /// The file or directory.
        path: String,
        /// What failed.
        message: String,
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
    /// An artifact could not be rendered.
    #[error("cannot render {what}: {message}")]
    Render {
        /// The artifact.
        what: String,
        /// Why.
        message: String,
    },
}

pub(crate) fn io(path: &std::path::Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}
