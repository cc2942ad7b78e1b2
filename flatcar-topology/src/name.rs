//! Validated names: usable as a hostname label, a libvirt object name, a
//! DNS label and a file name, and safe to embed in every generated format.

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
    /// The last label is a number: resolvers and `inet_aton` read the whole
    /// name as an IPv4 address.
    #[error("ends in a numeric label, so resolvers read it as an address")]
    Numeric,
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

crate::validated_string! {
    /// A name for a VM, network, VIP, peer, disk or cluster.
    ///
    /// Lowercase ASCII letters, digits and `-`, 1–63 characters, starting with a
    /// letter and not ending with `-`: valid as an RFC 1123 hostname label, a
    /// libvirt name, a file name and a systemd unit fragment, and it needs no
    /// escaping in XML, JSON, YAML, nftables, HAProxy, Keepalived or zone files.
    /// Starting with a letter also means no resolver reads it as an address.
    ///
    /// ```
    /// use flatcar_topology::Name;
    /// assert!(Name::new("master1").is_ok());
    /// assert!(Name::new("Master 1").is_err());
    /// assert!(Name::new("lb1\n").is_err());
    /// ```
    pub struct Name;
    error = NameError;
    validate = name_rule;
}

fn name_rule(s: &str) -> Result<(), NameError> {
    check_label(s, true)
}

/// Maximum length of a [`DomainName`].
pub const MAX_DOMAIN_LEN: usize = 253;

crate::validated_string! {
    /// A DNS domain or host name: dot-separated labels (`microcloud.home.arpa`,
    /// `0.flatcar.pool.ntp.org`), lowercase, no trailing dot, and a last label
    /// that is not a number (`010.0.0.1`, `0x7f.0.0.1`, `2130706433` are read
    /// as addresses by `inet_aton` and resolvers, so they are not names).
    ///
    /// ```
    /// use flatcar_topology::DomainName;
    /// assert!(DomainName::new("microcloud.home.arpa").is_ok());
    /// assert!(DomainName::new("bad..name").is_err());
    /// assert!(DomainName::new("010.0.0.1").is_err());
    /// assert!(DomainName::new("2130706433").is_err());
    /// ```
    pub struct DomainName;
    error = NameError;
    validate = domain_rule;
}

/// Whether a label is a number in any base `inet_aton` accepts (decimal,
/// octal with a leading 0, hexadecimal with `0x`).
fn numeric_label(label: &str) -> bool {
    let hex = label
        .strip_prefix("0x")
        .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
    hex || (!label.is_empty() && label.bytes().all(|b| b.is_ascii_digit()))
}

fn domain_rule(s: &str) -> Result<(), NameError> {
    if s.len() > MAX_DOMAIN_LEN {
        return Err(NameError::TooLong {
            len: s.len(),
            max: MAX_DOMAIN_LEN,
        });
    }
    let mut offset = 0;
    let mut last = "";
    for label in s.split('.') {
        check_label(label, false).map_err(|e| match e {
            NameError::BadChar { ch, pos } => NameError::BadChar {
                ch,
                pos: pos + offset,
            },
            other => other,
        })?;
        offset += label.chars().count() + 1;
        last = label;
    }
    if numeric_label(last) {
        return Err(NameError::Numeric);
    }
    Ok(())
}

impl DomainName {
    /// `label.self`, e.g. `api.microcloud.home.arpa`.
    pub fn child(&self, label: &Name) -> DomainName {
        DomainName(format!("{}.{}", label, self.0))
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
