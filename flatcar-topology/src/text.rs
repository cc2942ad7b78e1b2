//! Validated text: one macro defines every string newtype of the model, and
//! one function shows untrusted text in messages.
//!
//! A validated newtype writes only its validator; [`validated_string!`]
//! generates the rest (`new`, `as_str`, `TryFrom<String>`, `TryFrom<&str>`,
//! `FromStr`, `Display`, an escaped `Debug`, `AsRef<str>`, `Borrow<str>`,
//! `From<T> for String` and serde through the validator), so a value that
//! breaks the rule cannot be built, deserialized or parsed.
//!
//! [`shown`] is how every error message echoes user input: quoted, every
//! control character escaped (no newline, no terminal escape sequence
//! reaches a terminal or a log) and shortened to [`SHOWN_MAX`] characters.

use std::fmt::Write;

/// At most this many characters of an untrusted value are echoed in a message.
pub const SHOWN_MAX: usize = 80;

/// Untrusted text as it may appear in a message: quoted, escaped like Rust's
/// `{:?}` (control characters, quotes, backslashes, and invisible or
/// bidirectional format characters become `\n`, `\u{1b}`, `\u{202e}`, …)
/// and cut to [`SHOWN_MAX`] characters with `…`.
///
/// ```
/// use flatcar_topology::text::shown;
/// assert_eq!(shown("a\nb"), r#""a\nb""#);
/// assert_eq!(shown("\u{1b}[31mred"), r#""\u{1b}[31mred""#);
/// assert!(shown(&"x".repeat(10_000)).chars().count() < 100);
/// ```
pub fn shown(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(SHOWN_MAX) + 8);
    out.push('"');
    out.push_str(&escaped(s, SHOWN_MAX));
    out.push('"');
    out
}

/// Like [`shown`] without the quotes and with a chosen limit: for messages
/// of parsers that embed user input (the whole message is escaped).
pub fn escaped(s: &str, max_chars: usize) -> String {
    escape(s, max_chars, true)
}

/// A message that may embed user input, made safe to print: control and
/// invisible characters escaped, quotes kept, cut to `max_chars` with `…`.
pub fn clean(s: &str, max_chars: usize) -> String {
    escape(s, max_chars, false)
}

fn escape(s: &str, max_chars: usize, quotes: bool) -> String {
    let mut out = String::new();
    for (n, ch) in s.chars().enumerate() {
        if n == max_chars {
            out.push('…');
            return out;
        }
        if quotes && (ch == '"' || ch == '\\') {
            out.push('\\');
            out.push(ch);
        } else if is_printable(ch) {
            out.push(ch);
        } else {
            match ch {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c => {
                    let _ = write!(out, "\\u{{{:x}}}", c as u32);
                }
            }
        }
    }
    out
}

/// Printable without escaping: no control character (C0, DEL, C1), no
/// invisible or bidirectional format character, no line or paragraph separator.
fn is_printable(ch: char) -> bool {
    !(ch.is_control()
        || matches!(ch,
            '\u{00ad}'
            | '\u{061c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'))
}

/// Whether `s` contains no character [`shown`] would escape (the test of
/// every message in the fuzz targets).
pub fn is_clean(s: &str) -> bool {
    s.chars().all(|c| c == '\n' || is_printable(c))
}

/// Defines a validated string newtype: the caller writes the struct line, its
/// error type and its validator `fn(&str) -> Result<(), Error>`; the macro
/// generates construction, conversions, formatting and serde, all through
/// the validator.
///
/// ```
/// use flatcar_topology::validated_string;
///
/// /// Why a colour was rejected.
/// #[derive(Debug, thiserror::Error)]
/// #[error("not a colour")]
/// pub struct ColourError;
///
/// fn colour(s: &str) -> Result<(), ColourError> {
///     matches!(s, "red" | "green").then_some(()).ok_or(ColourError)
/// }
///
/// validated_string! {
///     /// A colour.
///     pub struct Colour;
///     error = ColourError;
///     validate = colour;
/// }
///
/// assert_eq!(Colour::new("red").map(|c| c.to_string()).ok(), Some("red".into()));
/// assert!("blue".parse::<Colour>().is_err());
/// ```
#[macro_export]
macro_rules! validated_string {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident;
        error = $err:ty;
        validate = $validate:path;
    ) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        $vis struct $name(::std::string::String);

        impl $name {
            /// Validates `s`.
            pub fn new(s: impl ::core::convert::Into<::std::string::String>) -> ::core::result::Result<Self, $err> {
                let s = s.into();
                $validate(&s)?;
                ::core::result::Result::Ok($name(s))
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Wraps text without checking: only for literals known to be
            /// valid, or for text already reported invalid in the same build
            /// (so a validated model never holds it).
            #[allow(dead_code)]
            pub(crate) fn unchecked(s: impl ::core::convert::Into<::std::string::String>) -> Self {
                $name(s.into())
            }
        }

        impl ::core::convert::TryFrom<::std::string::String> for $name {
            type Error = $err;
            fn try_from(s: ::std::string::String) -> ::core::result::Result<Self, $err> {
                $name::new(s)
            }
        }

        impl ::core::convert::TryFrom<&str> for $name {
            type Error = $err;
            fn try_from(s: &str) -> ::core::result::Result<Self, $err> {
                $name::new(s)
            }
        }

        impl ::core::str::FromStr for $name {
            type Err = $err;
            fn from_str(s: &str) -> ::core::result::Result<Self, $err> {
                $name::new(s)
            }
        }

        impl ::core::convert::From<$name> for ::std::string::String {
            fn from(v: $name) -> ::std::string::String {
                v.0
            }
        }

        impl ::core::convert::AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl ::core::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl ::core::cmp::PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl ::core::cmp::PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl ::core::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl ::core::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(&$crate::text::shown(&self.0))
            }
        }

        impl $crate::__serde::Serialize for $name {
            fn serialize<S: $crate::__serde::Serializer>(&self, s: S) -> ::core::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> $crate::__serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::__serde::Deserializer<'de>>(d: D) -> ::core::result::Result<Self, D::Error> {
                let s = <::std::string::String as $crate::__serde::Deserialize>::deserialize(d)?;
                let shown = $crate::text::shown(&s);
                $name::new(s).map_err(|e| {
                    <D::Error as $crate::__serde::de::Error>::custom($crate::text::invalid_value(&shown, &e))
                })
            }
        }
    };
}

/// The message of a rejected value: `invalid value: "text" why`, quoting the
/// (escaped, shortened) text unless the error already does.
pub fn invalid_value(shown: &str, e: &dyn std::fmt::Display) -> String {
    let why = e.to_string();
    if why.contains(shown) {
        format!("{INVALID_VALUE}{why}")
    } else {
        format!("{INVALID_VALUE}{shown} {why}")
    }
}

/// How a deserializer error of a validated value starts (serde's own wording
/// for a rejected value), so the document loader can say "invalid value"
/// rather than "syntax error".
pub const INVALID_VALUE: &str = "invalid value: ";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_escapes_and_shortens() {
        assert_eq!(shown("ok"), "\"ok\"");
        assert_eq!(shown("a\"b"), r#""a\"b""#);
        assert_eq!(shown("\u{202e}x"), r#""\u{202e}x""#);
        assert_eq!(shown("\u{9b}x"), r#""\u{9b}x""#);
        let long = shown(&"y".repeat(1000));
        assert_eq!(long.chars().count(), SHOWN_MAX + 3);
        assert!(long.ends_with("…\""));
        for s in ["\u{1b}[2J", "a\r\nb", "\u{0}", "\u{7f}", "\u{2028}"] {
            assert!(is_clean(&shown(s)), "{}", shown(s));
        }
        assert!(!is_clean("\u{1b}"));
    }
}
