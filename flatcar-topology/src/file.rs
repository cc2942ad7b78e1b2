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

/// How much of a parser's message is echoed (it may quote the input).
const MESSAGE_MAX: usize = 400;

/// The category of a deserializer's data error, from serde's standard wording.
fn field_kind(message: &str) -> &'static str {
    if message.starts_with("invalid type") {
        "wrong type"
    } else if message.starts_with("unknown field") {
        "unknown field"
    } else if message.starts_with("missing field") {
        "missing field"
    } else if message.starts_with("duplicate field") {
        "duplicate field"
    } else {
        "invalid value"
    }
}

fn field_path(path: &serde_path_to_error::Path) -> String {
    let p = path.to_string();
    if p == "." || p.is_empty() {
        "the top level".into()
    } else {
        crate::text::clean(&p, 120)
    }
}

fn parse_toml(text: &str) -> Result<Spec, Error> {
    let at =
        |span: Option<std::ops::Range<usize>>| span.map_or((0, 0), |s| line_col(text, s.start));
    // Syntax first (well-formed TOML, no duplicate keys), so what remains is
    // about the fields.
    if let Err(source) = text.parse::<toml::Table>() {
        let (line, column) = at(source.span());
        return Err(Error::Toml {
            line,
            column,
            source,
        });
    }
    serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
        let field = field_path(e.path());
        let inner = e.into_inner();
        let (line, column) = at(inner.span());
        Error::Field {
            format: "TOML",
            kind: field_kind(inner.message()),
            field,
            line,
            column,
            message: crate::text::clean(inner.message(), MESSAGE_MAX),
            source: Box::new(inner),
        }
    })
}

fn parse_json(text: &str) -> Result<Spec, Error> {
    let syntax = |source: serde_json::Error| Error::Json {
        line: source.line(),
        column: source.column(),
        source,
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let spec: Spec = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = field_path(e.path());
        let inner = e.into_inner();
        if inner.is_data() {
            let text = inner.to_string();
            // serde_json appends " at line L column C"; the variant says it.
            let message = text
                .rsplit_once(" at line ")
                .map_or(text.as_str(), |(m, _)| m);
            Error::Field {
                format: "JSON",
                kind: field_kind(message),
                field,
                line: inner.line(),
                column: inner.column(),
                message: crate::text::clean(message, MESSAGE_MAX),
                source: Box::new(inner),
            }
        } else {
            syntax(inner)
        }
    })?;
    de.end().map_err(syntax)?;
    Ok(spec)
}

impl Cluster {
    /// Parses and validates a description in `format`. Errors say which
    /// kind of error it is (syntax, a field's value, the model's rules),
    /// name the field and its line and column, and echo input only escaped
    /// and shortened.
    ///
    /// ```
    /// use flatcar_topology::{Cluster, Format};
    /// let err = Cluster::from_str_as("name = 'x'\nbogus = 1\n", Format::Toml).unwrap_err();
    /// assert!(err.to_string().contains("line 2, column 1"), "{err}");
    /// let err = Cluster::from_str_as("name = 'X Y'\n", Format::Toml).unwrap_err();
    /// assert!(err.to_string().starts_with("TOML invalid value in name at line 1"), "{err}");
    /// ```
    pub fn from_str_as(text: &str, format: Format) -> Result<Cluster, Error> {
        let spec = match format {
            Format::Toml => parse_toml(text)?,
            Format::Json => parse_json(text)?,
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
