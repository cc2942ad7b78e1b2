//! Model files: loading (the model crate reads) and saving (written here,
//! atomically: a temporary file, fsynced, renamed over the target).
//!
//! ```
//! let cluster = flatcar_microcloud::reference::cluster().expect("valid");
//! let path = std::env::temp_dir().join(format!("fmc-doc-{}.toml", std::process::id()));
//! flatcar_microcloud::model::save(&cluster, &path).expect("saves");
//! assert_eq!(flatcar_microcloud::model::load(&path).expect("loads"), cluster);
//! # let _ = std::fs::remove_file(&path);
//! ```

use crate::error::io;
use crate::Error;
use flatcar_topology::{Cluster, Format};
use std::path::Path;

/// Loads a `.toml` or `.json` model file (same validation as the builder).
pub fn load(path: impl AsRef<Path>) -> Result<Cluster, Error> {
    Ok(Cluster::load(path)?)
}

/// Saves `cluster` to a `.toml` or `.json` file atomically (mode 0644).
/// Loading the file gives an equal cluster.
pub fn save(cluster: &Cluster, path: impl AsRef<Path>) -> Result<(), Error> {
    let path = path.as_ref();
    let text = cluster.to_string_as(Format::from_path(path)?)?;
    flatcar_ignition::fs::write_atomic(path, text.as_bytes(), 0o644).map_err(io(path))
}
