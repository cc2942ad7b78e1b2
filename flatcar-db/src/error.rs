//! The crate's error type.

/// Everything that can go wrong rendering the database service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A database VM has no data disk for PostgreSQL's data.
    #[error("vm {0:?} has role database but no data disk: PostgreSQL keeps its data on its own disk (add .data_disk(\"pgdata\", …))")]
    NoDataDisk(String),
    /// A database VM has no address to listen on.
    #[error("vm {0:?} has role database but no address")]
    NoAddress(String),
}
