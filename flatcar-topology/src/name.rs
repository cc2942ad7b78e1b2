//! Validated names: usable as a hostname label, a libvirt object name, a
//! DNS label and a file name, and safe to embed in every generated format.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a text is not a valid [`Name`] or [`DomainName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("is empty")]
    Empty,
    /// The name is longer than allowed.
    #[error("is {len} characters long, at most {max} allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A character outside `a-z`, `0-9` and `-`.
    #[error("has the character {ch:?} at position {pos}; only a-z, 0-9 and '-' are allowed")]
    BadChar {
        /// The offending character.
        ch: char,
        /// Its character position.
        pos: usize,
    },
    /// Starts with something other than a letter.
    #[error("must start with a letter a-z")]
    BadStart,
    /// Ends with a hyphen.
    #[error("must not end with '-'")]
    TrailingHyphen,
}

/// Maximum length of a [`Name`] (a DNS label).
pub const MAX_NAME_LEN: usize = 63;

fn check_label(s: &str, must_start_with_letter: bool) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    for (pos, ch) in s.chars().enumerate() {
        if !(ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-') {
            return Err(NameError::BadChar { ch, pos });
        }
    }
    if s.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            len: s.len(),
            max: MAX_NAME_LEN,
        });
    }
    let first = s.as_bytes()[0];
    if (must_start_with_letter && !first.is_ascii_lowercase()) || first == b'-' {
        return Err(NameError::BadStart);
    }
    if s.ends_with('-') {
        return Err(NameError::TrailingHyphen);
    }
    Ok(())
}

/// A name for a VM, network, VIP, peer, disk or cluster.
///
/// Lowercase ASCII letters, digits and `-`, 1–63 characters, starting with a
/// letter and not ending with `-`: valid as an RFC 1123 hostname label, a
/// libvirt name, a file name and a systemd unit fragment, and it needs no
/// escaping in XML, JSON, YAML, nftables, HAProxy, Keepalived or zone files.
///
/// ```
/// use flatcar_topology::Name;
/// assert!(Name::new("master1").is_ok());
/// assert!(Name::new("Master 1").is_err());
/// assert!(Name::new("lb1\n").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    /// Validates `s` as a name.
    pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
        let s = s.into();
        check_label(&s, true)?;
        Ok(Name(s))
    }

    /// Wraps `s` without checking. Only for names already reported invalid
    /// in the same build, so a `Cluster` never holds one.
    pub(crate) fn unchecked(s: impl Into<String>) -> Self {
        Name(s.into())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        Name::new(s)
    }
}

impl TryFrom<&str> for Name {
    type Error = NameError;
    fn try_from(s: &str) -> Result<Self, NameError> {
        Name::new(s)
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::str::FromStr for Name {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        Name::new(s)
    }
}

/// Maximum length of a [`DomainName`].
pub const MAX_DOMAIN_LEN: usize = 253;

/// A DNS domain or host name: dot-separated labels (`microcloud.home.arpa`,
/// `0.flatcar.pool.ntp.org`), lowercase, no trailing dot.
///
/// ```
/// use flatcar_topology::DomainName;
/// assert!(DomainName::new("microcloud.home.arpa").is_ok());
/// assert!(DomainName::new("bad..name").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DomainName(String);

impl DomainName {
    /// Validates `s` as a domain name.
    pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
        let s = s.into();
        if s.len() > MAX_DOMAIN_LEN {
            return Err(NameError::TooLong {
                len: s.len(),
                max: MAX_DOMAIN_LEN,
            });
        }
        let mut offset = 0;
        for label in s.split('.') {
            check_label(label, false).map_err(|e| match e {
                NameError::BadChar { ch, pos } => NameError::BadChar {
                    ch,
                    pos: pos + offset,
                },
                other => other,
            })?;
            offset += label.chars().count() + 1;
        }
        Ok(DomainName(s))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps a literal known to be valid.
    pub(crate) fn unchecked(s: impl Into<String>) -> Self {
        DomainName(s.into())
    }

    /// `label.self`, e.g. `api.microcloud.home.arpa`.
    pub fn child(&self, label: &Name) -> DomainName {
        DomainName(format!("{}.{}", label, self.0))
    }
}

impl TryFrom<String> for DomainName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        DomainName::new(s)
    }
}

impl From<DomainName> for String {
    fn from(n: DomainName) -> String {
        n.0
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "lb1", "master-1", &"a".repeat(63)] {
            assert!(Name::new(ok).is_ok(), "{ok}");
        }
        assert_eq!(Name::new(""), Err(NameError::Empty));
        assert_eq!(Name::new("1lb"), Err(NameError::BadStart));
        assert_eq!(Name::new("-lb"), Err(NameError::BadStart));
        assert_eq!(Name::new("lb-"), Err(NameError::TrailingHyphen));
        assert_eq!(
            Name::new("lb\n1"),
            Err(NameError::BadChar { ch: '\n', pos: 2 })
        );
        assert!(matches!(
            Name::new("lb\"1"),
            Err(NameError::BadChar { ch: '"', .. })
        ));
        // Cyrillic 'а' looks like Latin 'a'.
        assert!(matches!(
            Name::new("\u{430}pi"),
            Err(NameError::BadChar {
                ch: '\u{430}',
                pos: 0
            })
        ));
        assert!(matches!(
            Name::new("a".repeat(64)),
            Err(NameError::TooLong { len: 64, .. })
        ));
        let e = Name::new("x;{}\n").expect_err("invalid");
        assert!(!e.to_string().contains('\n'), "{e}");
    }

    #[test]
    fn domains() {
        assert!(DomainName::new("0.flatcar.pool.ntp.org").is_ok());
        assert_eq!(DomainName::new("a..b"), Err(NameError::Empty));
        assert_eq!(DomainName::new("a.b."), Err(NameError::Empty));
        assert!(matches!(
            DomainName::new("a.B"),
            Err(NameError::BadChar { ch: 'B', pos: 2 })
        ));
        let d = DomainName::new("microcloud.home.arpa").expect("valid");
        assert_eq!(
            d.child(&Name::new("api").expect("valid")).as_str(),
            "api.microcloud.home.arpa"
        );
    }
}
