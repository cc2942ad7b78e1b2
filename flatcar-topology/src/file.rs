//! The document form (TOML, JSON): parsed from and rendered to strings with
//! the same validation as the builder. Loading a file only reads; writing
//! files is the caller's (the facade writes atomically).

use crate::{Cluster, Error, Spec};
use std::path::Path;

/// A file format for a cluster description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// TOML (`.toml`).
    Toml,
    /// JSON (`.json`).
    Json,
}

impl Format {
    /// The format a path's extension names.
    pub fn from_path(path: &Path) -> Result<Format, Error> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => Ok(Format::Toml),
            Some("json") => Ok(Format::Json),
            _ => Err(Error::UnknownFormat(path.to_path_buf())),
        }
    }
}

/// Line and column (1-based) of a byte offset in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl Cluster {
    /// Parses and validates a description in `format`.
    ///
    /// ```
    /// use flatcar_topology::{Cluster, Format};
    /// let err = Cluster::from_str_as("name = 'x'\nbogus = 1\n", Format::Toml).unwrap_err();
    /// assert!(err.to_string().contains("line 2, column 1"), "{err}");
    /// ```
    pub fn from_str_as(text: &str, format: Format) -> Result<Cluster, Error> {
        let spec: Spec = match format {
            Format::Toml => toml::from_str(text).map_err(|source| {
                let (line, column) = source.span().map_or((0, 0), |s| line_col(text, s.start));
                Error::Toml {
                    line,
                    column,
                    source,
                }
            })?,
            Format::Json => serde_json::from_str(text).map_err(|source| Error::Json {
                line: source.line(),
                column: source.column(),
                source,
            })?,
        };
        Cluster::try_from(spec).map_err(Error::Invalid)
    }

    /// Renders the description in `format`. Loading the result gives an equal cluster.
    pub fn to_string_as(&self, format: Format) -> Result<String, Error> {
        match format {
            Format::Toml => toml::to_string(self.spec()).map_err(Error::TomlWrite),
            Format::Json => serde_json::to_string_pretty(self.spec())
                .map(|mut s| {
                    s.push('\n');
                    s
                })
                .map_err(Error::JsonWrite),
        }
    }

    /// Loads a `.toml` or `.json` file.
    pub fn load(path: impl AsRef<Path>) -> Result<Cluster, Error> {
        let path = path.as_ref();
        let format = Format::from_path(path)?;
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Cluster::from_str_as(&text, format)
    }
}

#[cfg(test)]
mod tests {
    use super::line_col;

    #[test]
    fn positions() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
