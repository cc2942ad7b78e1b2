//! The crate's error type.

/// Everything that can go wrong rendering libvirt XML, reading it back, or
/// (feature `live`) planning and applying it against a connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A document could not be serialized as XML.
    #[error("cannot write <{root}> XML: {source}")]
    Serialize {
        /// The root element.
        root: String,
        /// The serializer's error.
        #[source]
        source: quick_xml::SeError,
    },
    /// A rendered document lacks its ownership element (a bug, not input).
    #[error("<{0}>: ownership metadata missing")]
    MissingOwner(&'static str),
    /// XML (from libvirt, or a document handed to it) does not have the
    /// expected shape.
    #[error("libvirt XML of {object}: {source}")]
    Deserialize {
        /// Kind and name of the object.
        object: String,
        /// The deserializer's error.
        #[source]
        source: quick_xml::DeError,
    },
    /// XML could not be read at all (syntax, attributes, escapes).
    #[error("libvirt XML of {object}: {source}")]
    Syntax {
        /// Kind and name of the object.
        object: String,
        /// The reader's error.
        #[source]
        source: quick_xml::Error,
    },
    /// XML ended before its root element was closed.
    #[error("libvirt XML of {object}: unexpected end of document")]
    Truncated {
        /// Kind and name of the object.
        object: String,
    },
    /// A size carries a unit libvirt does not define.
    #[error("libvirt XML of {object}: unknown size unit {unit:?}")]
    SizeUnit {
        /// Kind and name of the object.
        object: String,
        /// The unit as written.
        unit: Option<String>,
    },
    /// A libvirt call failed before anything was changed by this apply;
    /// names the object and keeps libvirt's error.
    #[cfg(feature = "live")]
    #[error("libvirt: {object}: {}", .source.message())]
    Libvirt {
        /// Kind and name of the object.
        object: String,
        /// libvirt's error.
        #[source]
        source: virt::error::Error,
    },
    /// A libvirt call failed part-way through an apply: `applied` of
    /// `total` changes were made before this one.
    #[cfg(feature = "live")]
    #[error("libvirt: {object}: {} ({applied} of {total} changes were applied before this one)", .source.message())]
    Partial {
        /// Kind and name of the object.
        object: String,
        /// Changes completed before the failing one.
        applied: usize,
        /// Changes in the plan.
        total: usize,
        /// libvirt's error.
        #[source]
        source: virt::error::Error,
    },
    /// A VM did not report up: it stopped, or its report did not come
    /// within the timeout.
    #[error("VM {vm} is not up: {why}")]
    NotUp {
        /// The VM.
        vm: String,
        /// What happened, with where to look.
        why: String,
    },
    /// A VM reported up with failed units.
    #[error("VM {vm} is up with failed unit(s): {}", .units.join(", "))]
    UnitsFailed {
        /// The VM.
        vm: String,
        /// The units `systemctl --failed` listed.
        units: Vec<String>,
    },
    /// A VM's serial console log could not be read.
    #[error("VM {vm}: cannot read its console log {path}: {source}")]
    Console {
        /// The VM.
        vm: String,
        /// The log file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
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
}

impl Error {
    /// The same error about `object` (XML read from a named libvirt object).
    #[cfg_attr(not(feature = "live"), allow(dead_code))]
    pub(crate) fn about(self, object: &str) -> Error {
        let object = object.to_string();
        match self {
            Error::Deserialize { source, .. } => Error::Deserialize { object, source },
            Error::Syntax { source, .. } => Error::Syntax { object, source },
            Error::Truncated { .. } => Error::Truncated { object },
            other => other,
        }
    }
}
