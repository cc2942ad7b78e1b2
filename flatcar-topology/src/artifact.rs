//! Downloaded things as typed values: a source (an `http(s)` URL or a
//! container image name) and what it is checked against (a SHA-256/SHA-512
//! of the file, the image's digest), or an explicit *unverified* marker.
//!
//! An all-zero or malformed hash cannot be constructed, and serde goes
//! through the same constructors, so neither a model file nor a service can
//! smuggle one into a bundle. A [`Mirror`] rewrites every source in one place
//! (air-gapped installs) and an [`Override`] replaces one artifact's source
//! and hash (a local build, a private mirror); both live in the model's
//! document form under `[artifacts]`.
//!
//! ```
//! use flatcar_topology::artifact::{Artifact, FileHash, Mirror, SourceUrl};
//! let k3s = Artifact::file(
//!     "k3s", "v1.36.5+k3s1",
//!     "https://github.com/k3s-io/k3s/releases/download/v1.36.5%2Bk3s1/k3s",
//!     "sha256-d73847bcd3c5fccef0115b372e2f9a91f3032dc84bbf71518a4617565294d313",
//! ).unwrap();
//! let mirror = Mirror { files: Some(SourceUrl::new("https://mirror.lan/dl").unwrap()), registry: None };
//! let local = k3s.mirrored(&mirror);
//! assert_eq!(local.source().to_string(),
//!     "https://mirror.lan/dl/github.com/k3s-io/k3s/releases/download/v1.36.5%2Bk3s1/k3s");
//! assert!(local.is_verified());
//! assert!("sha256-0000000000000000000000000000000000000000000000000000000000000000".parse::<FileHash>().is_err());
//! ```

use crate::Name;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Why a hash, digest, URL, image name or override was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArtifactError {
    /// Not the right number of lowercase hex digits.
    #[error("{value:?} is not a {algorithm} ({digits} lowercase hex digits)")]
    Hex {
        /// `SHA-256` or `SHA-512`.
        algorithm: &'static str,
        /// Expected digit count.
        digits: usize,
        /// The rejected text.
        value: String,
    },
    /// Every byte zero: a placeholder, never a real hash.
    #[error("{0:?} is all zeros: a placeholder, not a published hash")]
    Zero(String),
    /// No known `sha256-`/`sha512-`/`sha256:` prefix.
    #[error("{0:?} has no sha256-/sha512- prefix (sha256: for an image digest)")]
    Prefix(String),
    /// Not an `http(s)://host/...` URL of safe characters.
    #[error("{0:?} is not an http(s) URL of safe characters")]
    Url(String),
    /// Not `registry/repository[:tag]` without a digest.
    #[error(
        "{0:?} is not an image name like registry.k8s.io/coredns/coredns:v1.14.2 (no @digest)"
    )]
    Image(String),
    /// An override that is neither a file nor an image, or lacks its check.
    #[error("artifact override: {0}")]
    Override(&'static str),
    /// An artifact of the wrong kind where a file (or an image) is needed.
    #[error("artifact {name} must be {expected}: override it with {hint}")]
    Kind {
        /// Artifact name.
        name: String,
        /// `a file` or `an image`.
        expected: &'static str,
        /// What to write instead.
        hint: &'static str,
    },
    /// An artifact name that is not a valid name.
    #[error("artifact name {0:?} is not a valid name")]
    Name(String),
}

fn parse_hex<const N: usize>(s: &str, algorithm: &'static str) -> Result<[u8; N], ArtifactError> {
    let bad = || ArtifactError::Hex {
        algorithm,
        digits: N * 2,
        value: s.to_string(),
    };
    if s.len() != N * 2
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad());
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    if out.iter().all(|&b| b == 0) {
        return Err(ArtifactError::Zero(s.to_string()));
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

macro_rules! hash_type {
    ($name:ident, $n:expr, $alg:expr, $doc:expr) => {
        #[doc = $doc]
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name([u8; $n]);

        impl $name {
            /// Parses lowercase hex; rejects wrong lengths, other characters and all zeros.
            pub fn from_hex(s: &str) -> Result<Self, ArtifactError> {
                parse_hex::<$n>(s, $alg).map($name)
            }
            /// Lowercase hex.
            pub fn to_hex(&self) -> String {
                hex(&self.0)
            }
        }
        impl FromStr for $name {
            type Err = ArtifactError;
            fn from_str(s: &str) -> Result<Self, ArtifactError> {
                Self::from_hex(s)
            }
        }
        impl TryFrom<String> for $name {
            type Error = ArtifactError;
            fn try_from(s: String) -> Result<Self, ArtifactError> {
                Self::from_hex(&s)
            }
        }
        impl From<$name> for String {
            fn from(h: $name) -> String {
                h.to_hex()
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }
    };
}

hash_type!(Sha256, 32, "SHA-256", "A SHA-256 (never all zeros).");
hash_type!(Sha512, 64, "SHA-512", "A SHA-512 (never all zeros).");

/// A file's hash in Ignition's notation: `sha256-<hex>` or `sha512-<hex>`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum FileHash {
    /// SHA-256 (what K3s and the sysext-bakery publish).
    Sha256(Sha256),
    /// SHA-512.
    Sha512(Sha512),
}

impl FromStr for FileHash {
    type Err = ArtifactError;
    fn from_str(s: &str) -> Result<Self, ArtifactError> {
        if let Some(h) = s.strip_prefix("sha256-") {
            Ok(FileHash::Sha256(h.parse()?))
        } else if let Some(h) = s.strip_prefix("sha512-") {
            Ok(FileHash::Sha512(h.parse()?))
        } else {
            Err(ArtifactError::Prefix(s.to_string()))
        }
    }
}

impl TryFrom<String> for FileHash {
    type Error = ArtifactError;
    fn try_from(s: String) -> Result<Self, ArtifactError> {
        s.parse()
    }
}

impl From<FileHash> for String {
    fn from(h: FileHash) -> String {
        h.to_string()
    }
}

impl fmt::Display for FileHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileHash::Sha256(h) => write!(f, "sha256-{h}"),
            FileHash::Sha512(h) => write!(f, "sha512-{h}"),
        }
    }
}

impl fmt::Debug for FileHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// A container image digest, `sha256:<hex>` (never all zeros).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(Sha256);

impl Digest {
    /// The SHA-256 behind the digest.
    pub fn sha256(&self) -> Sha256 {
        self.0
    }
}

impl FromStr for Digest {
    type Err = ArtifactError;
    fn from_str(s: &str) -> Result<Self, ArtifactError> {
        s.strip_prefix("sha256:")
            .ok_or_else(|| ArtifactError::Prefix(s.to_string()))?
            .parse()
            .map(Digest)
    }
}

impl TryFrom<String> for Digest {
    type Error = ArtifactError;
    fn try_from(s: String) -> Result<Self, ArtifactError> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.to_string()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

fn url_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=%".contains(c)
}

/// An `http://` or `https://` URL with a host, of URL-safe characters only
/// (no spaces, quotes, backslashes or control characters).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SourceUrl(String);

impl SourceUrl {
    /// Validates a URL.
    pub fn new(s: impl Into<String>) -> Result<Self, ArtifactError> {
        let s = s.into();
        let rest = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"));
        let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
        match host {
            Some(h)
                if !h.is_empty()
                    && !h.contains('@')
                    && h.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
                    && s.chars().all(url_char)
                    && s.len() <= 2048 =>
            {
                Ok(SourceUrl(s))
            }
            _ => Err(ArtifactError::Url(s)),
        }
    }

    /// The URL text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Host and path without the scheme (`github.com/k3s-io/...`).
    pub fn without_scheme(&self) -> &str {
        self.0
            .strip_prefix("https://")
            .or_else(|| self.0.strip_prefix("http://"))
            .unwrap_or(&self.0)
    }

    /// The host this URL connects to and its port (80 for `http://`, 443
    /// for `https://` unless the URL gives one); `None` for a port that is
    /// not a number from 1 to 65535.
    ///
    /// ```
    /// use flatcar_topology::artifact::SourceUrl;
    /// let u = SourceUrl::new("http://192.168.0.5:8080/dl/k3s").unwrap();
    /// assert_eq!(u.endpoint(), Some(("192.168.0.5", 8080)));
    /// let u = SourceUrl::new("https://github.com/k3s-io/k3s").unwrap();
    /// assert_eq!(u.endpoint(), Some(("github.com", 443)));
    /// ```
    pub fn endpoint(&self) -> Option<(&str, u16)> {
        let default = if self.0.starts_with("https://") {
            443
        } else {
            80
        };
        let authority = self
            .without_scheme()
            .split(['/', '?', '#'])
            .next()
            .unwrap_or("");
        host_port(authority, default)
    }

    /// The same file under a mirror base: `<base>/<host>/<path>`.
    pub fn under(&self, base: &SourceUrl) -> SourceUrl {
        SourceUrl(format!(
            "{}/{}",
            base.0.trim_end_matches('/'),
            self.without_scheme()
        ))
    }
}

impl FromStr for SourceUrl {
    type Err = ArtifactError;
    fn from_str(s: &str) -> Result<Self, ArtifactError> {
        SourceUrl::new(s)
    }
}

impl TryFrom<String> for SourceUrl {
    type Error = ArtifactError;
    fn try_from(s: String) -> Result<Self, ArtifactError> {
        SourceUrl::new(s)
    }
}

impl From<SourceUrl> for String {
    fn from(u: SourceUrl) -> String {
        u.0
    }
}

impl fmt::Display for SourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A container image name *without* a digest: `registry/repository[:tag]`
/// (the registry is explicit: it has a `.` or a `:port`, or is `localhost`).
/// The digest travels separately (see [`Source::Image`]), so an image is
/// always (name, digest) and a mirror can move the name without touching
/// the digest.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageName {
    registry: String,
    repository: String,
    tag: Option<String>,
}

impl ImageName {
    /// Validates an image name.
    pub fn new(s: &str) -> Result<Self, ArtifactError> {
        let bad = || ArtifactError::Image(s.to_string());
        if s.contains('@') || s.len() > 255 {
            return Err(bad());
        }
        let (registry, rest) = s.split_once('/').ok_or_else(bad)?;
        let registry_ok = !registry.is_empty()
            && (registry.contains('.') || registry.contains(':') || registry == "localhost")
            && registry
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:".contains(c));
        let (repository, tag) = match rest.rsplit_once(':') {
            Some((r, t)) => (r, Some(t)),
            None => (rest, None),
        };
        let repo_ok = !repository.is_empty()
            && repository.split('/').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            });
        let tag_ok = tag.is_none_or(|t| {
            !t.is_empty()
                && t.len() <= 128
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        });
        if registry_ok && repo_ok && tag_ok {
            Ok(ImageName {
                registry: registry.to_string(),
                repository: repository.to_string(),
                tag: tag.map(str::to_string),
            })
        } else {
            Err(bad())
        }
    }

    /// The registry host (`registry.k8s.io`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The registry's host and port (443 unless the name gives one), as a
    /// container runtime connects to it.
    pub fn registry_endpoint(&self) -> Option<(&str, u16)> {
        host_port(&self.registry, 443)
    }

    /// The same repository and tag on another registry.
    pub fn on_registry(&self, registry: &RegistryHost) -> ImageName {
        ImageName {
            registry: registry.0.clone(),
            ..self.clone()
        }
    }

    /// `name@digest`, what `docker pull` gets.
    pub fn pinned(&self, digest: &Digest) -> String {
        format!("{self}@{digest}")
    }
}

impl FromStr for ImageName {
    type Err = ArtifactError;
    fn from_str(s: &str) -> Result<Self, ArtifactError> {
        ImageName::new(s)
    }
}

impl TryFrom<String> for ImageName {
    type Error = ArtifactError;
    fn try_from(s: String) -> Result<Self, ArtifactError> {
        ImageName::new(&s)
    }
}

impl From<ImageName> for String {
    fn from(i: ImageName) -> String {
        i.to_string()
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

/// `host[:port]` (an IPv6 literal in brackets) split, with `default` when
/// no port is given; `None` for a port that is not 1–65535.
fn host_port(authority: &str, default: u16) -> Option<(&str, u16)> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (h, after) = rest.split_once(']')?;
            (h, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port = match port {
        None => default,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0)?,
    };
    (!host.is_empty()).then_some((host, port))
}

/// A registry host (`registry.lan:5000`), the image side of a [`Mirror`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RegistryHost(String);

impl RegistryHost {
    /// Validates a host\[:port\].
    pub fn new(s: impl Into<String>) -> Result<Self, ArtifactError> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= 253
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:".contains(c))
            && !s.starts_with(['-', '.', ':']);
        if ok {
            Ok(RegistryHost(s))
        } else {
            Err(ArtifactError::Image(s))
        }
    }
}

impl TryFrom<String> for RegistryHost {
    type Error = ArtifactError;
    fn try_from(s: String) -> Result<Self, ArtifactError> {
        RegistryHost::new(s)
    }
}

impl From<RegistryHost> for String {
    fn from(r: RegistryHost) -> String {
        r.0
    }
}

impl fmt::Debug for RegistryHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// What an artifact is checked against, or the explicit statement that no
/// published hash is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check<H> {
    /// Verified against this hash/digest.
    Verified(H),
    /// No published hash is known: listed by the plan, refused by `--strict`.
    Unverified,
}

impl<H> Check<H> {
    /// The hash, when verified.
    pub fn hash(&self) -> Option<&H> {
        match self {
            Check::Verified(h) => Some(h),
            Check::Unverified => None,
        }
    }
}

/// Where an artifact comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// A file fetched over http(s) (by Ignition at first boot).
    File {
        /// Download URL.
        url: SourceUrl,
        /// File hash.
        check: Check<FileHash>,
    },
    /// A container image.
    Image {
        /// Name without digest.
        image: ImageName,
        /// Image digest.
        check: Check<Digest>,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File { url, .. } => write!(f, "{url}"),
            Source::Image { image, .. } => write!(f, "{image}"),
        }
    }
}

/// One downloaded thing: a name (what overrides refer to), the pinned
/// version, and its source with its check.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Artifact {
    name: Name,
    version: String,
    source: Source,
}

fn artifact_name(name: &str) -> Result<Name, ArtifactError> {
    Name::new(name).map_err(|_| ArtifactError::Name(name.to_string()))
}

impl Artifact {
    /// A file verified by `hash` (`sha256-<hex>` or `sha512-<hex>`).
    pub fn file(name: &str, version: &str, url: &str, hash: &str) -> Result<Self, ArtifactError> {
        Ok(Artifact {
            name: artifact_name(name)?,
            version: version.to_string(),
            source: Source::File {
                url: SourceUrl::new(url)?,
                check: Check::Verified(hash.parse()?),
            },
        })
    }

    /// A file whose hash is not published anywhere this project could find.
    pub fn unverified_file(name: &str, version: &str, url: &str) -> Result<Self, ArtifactError> {
        Ok(Artifact {
            name: artifact_name(name)?,
            version: version.to_string(),
            source: Source::File {
                url: SourceUrl::new(url)?,
                check: Check::Unverified,
            },
        })
    }

    /// An image pinned by `digest` (`sha256:<hex>`).
    pub fn image(
        name: &str,
        version: &str,
        image: &str,
        digest: &str,
    ) -> Result<Self, ArtifactError> {
        Ok(Artifact {
            name: artifact_name(name)?,
            version: version.to_string(),
            source: Source::Image {
                image: ImageName::new(image)?,
                check: Check::Verified(digest.parse()?),
            },
        })
    }

    /// An image whose digest is not published anywhere this project could find.
    pub fn unverified_image(name: &str, version: &str, image: &str) -> Result<Self, ArtifactError> {
        Ok(Artifact {
            name: artifact_name(name)?,
            version: version.to_string(),
            source: Source::Image {
                image: ImageName::new(image)?,
                check: Check::Unverified,
            },
        })
    }

    /// The name overrides refer to (`k3s`, `keepalived`, `coredns`).
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The pinned version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Source and check.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Whether a hash or digest is checked.
    pub fn is_verified(&self) -> bool {
        match &self.source {
            Source::File { check, .. } => check.hash().is_some(),
            Source::Image { check, .. } => check.hash().is_some(),
        }
    }

    /// The URL and hash of a file artifact (`None` for an image).
    pub fn as_file(&self) -> Option<(&SourceUrl, Option<&FileHash>)> {
        match &self.source {
            Source::File { url, check } => Some((url, check.hash())),
            Source::Image { .. } => None,
        }
    }

    /// What a container runtime pulls: `name@digest`, or the bare name when
    /// unverified (`None` for a file).
    pub fn pull_ref(&self) -> Option<String> {
        match &self.source {
            Source::Image { image, check } => Some(match check.hash() {
                Some(d) => image.pinned(d),
                None => image.to_string(),
            }),
            Source::File { .. } => None,
        }
    }

    /// The same artifact fetched through `mirror` (hash and digest unchanged:
    /// a mirror serves the same bytes).
    pub fn mirrored(&self, mirror: &Mirror) -> Artifact {
        let source = match &self.source {
            Source::File { url, check } => Source::File {
                url: mirror.files.as_ref().map_or(url.clone(), |b| url.under(b)),
                check: *check,
            },
            Source::Image { image, check } => Source::Image {
                image: mirror
                    .registry
                    .as_ref()
                    .map_or(image.clone(), |r| image.on_registry(r)),
                check: *check,
            },
        };
        Artifact {
            source,
            ..self.clone()
        }
    }

    /// The artifact as `settings` want it: the override of this name if
    /// there is one (used as given, not mirrored), else the pinned source
    /// through the mirror.
    pub fn resolve(&self, settings: &ArtifactSettings) -> Artifact {
        match settings.overrides.get(&self.name) {
            Some(o) => Artifact {
                name: self.name.clone(),
                version: o.version.clone().unwrap_or_else(|| self.version.clone()),
                source: o.source.clone(),
            },
            None => self.mirrored(&settings.mirror),
        }
    }
}

impl fmt::Display for Artifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} from {}", self.name, self.version, self.source)
    }
}

/// Where every artifact is fetched from instead of its public source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    /// Base URL for files: `https://github.com/a/b` becomes `<files>/github.com/a/b`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<SourceUrl>,
    /// Registry for images: `registry.k8s.io/coredns/coredns` becomes `<registry>/coredns/coredns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistryHost>,
}

impl Mirror {
    /// Whether nothing is rewritten.
    pub fn is_empty(&self) -> bool {
        self.files.is_none() && self.registry.is_none()
    }
}

/// One artifact replaced: its own source and check (a local build, a private mirror).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawOverride", into = "RawOverride")]
pub struct Override {
    /// Version label (defaults to the pinned one).
    pub version: Option<String>,
    /// Source and check.
    pub source: Source,
}

impl Override {
    /// A file verified by `hash`.
    pub fn file(url: &str, hash: &str) -> Result<Self, ArtifactError> {
        Ok(Override {
            version: None,
            source: Source::File {
                url: SourceUrl::new(url)?,
                check: Check::Verified(hash.parse()?),
            },
        })
    }

    /// An image pinned by `digest`.
    pub fn image(image: &str, digest: &str) -> Result<Self, ArtifactError> {
        Ok(Override {
            version: None,
            source: Source::Image {
                image: ImageName::new(image)?,
                check: Check::Verified(digest.parse()?),
            },
        })
    }
}

/// The document form of an [`Override`]: `url` + (`hash` | `unverified`),
/// or `image` + (`digest` | `unverified`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<SourceUrl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hash: Option<FileHash>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image: Option<ImageName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    digest: Option<Digest>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    unverified: bool,
}

impl TryFrom<RawOverride> for Override {
    type Error = ArtifactError;
    fn try_from(r: RawOverride) -> Result<Self, ArtifactError> {
        let source = match (r.url, r.image, r.hash, r.digest, r.unverified) {
            (Some(url), None, Some(h), None, false) => Source::File {
                url,
                check: Check::Verified(h),
            },
            (Some(url), None, None, None, true) => Source::File {
                url,
                check: Check::Unverified,
            },
            (None, Some(image), None, Some(d), false) => Source::Image {
                image,
                check: Check::Verified(d),
            },
            (None, Some(image), None, None, true) => Source::Image {
                image,
                check: Check::Unverified,
            },
            (Some(_), Some(_), ..) | (None, None, ..) => {
                return Err(ArtifactError::Override("give exactly one of url or image"))
            }
            (Some(_), None, ..) => {
                return Err(ArtifactError::Override(
                    "a url needs exactly one of hash = \"sha256-…\" or unverified = true",
                ))
            }
            (None, Some(_), ..) => {
                return Err(ArtifactError::Override(
                    "an image needs exactly one of digest = \"sha256:…\" or unverified = true",
                ))
            }
        };
        Ok(Override {
            version: r.version,
            source,
        })
    }
}

impl From<Override> for RawOverride {
    fn from(o: Override) -> RawOverride {
        let mut r = RawOverride {
            version: o.version,
            ..RawOverride::default()
        };
        match o.source {
            Source::File { url, check } => {
                r.url = Some(url);
                match check {
                    Check::Verified(h) => r.hash = Some(h),
                    Check::Unverified => r.unverified = true,
                }
            }
            Source::Image { image, check } => {
                r.image = Some(image);
                match check {
                    Check::Verified(d) => r.digest = Some(d),
                    Check::Unverified => r.unverified = true,
                }
            }
        }
        r
    }
}

/// The model's `[artifacts]` section: a mirror for everything and
/// per-artifact overrides by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactSettings {
    /// Rewrites every pinned source.
    #[serde(default, skip_serializing_if = "Mirror::is_empty")]
    pub mirror: Mirror,
    /// Replaces single artifacts, by name (`k3s`, `keepalived`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<Name, Override>,
}

impl ArtifactSettings {
    /// Whether nothing is mirrored or overridden.
    pub fn is_default(&self) -> bool {
        self.mirror.is_empty() && self.overrides.is_empty()
    }
}

/// The artifacts a render used that carry no hash or digest, one per line
/// (`name version source`), for the plan and for `--strict` errors.
pub fn unverified_list<'a>(artifacts: impl IntoIterator<Item = &'a Artifact>) -> Vec<String> {
    artifacts
        .into_iter()
        .filter(|a| !a.is_verified())
        .map(|a| format!("{} {} ({})", a.name, a.version, a.source))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const K3S: &str = "sha256-d73847bcd3c5fccef0115b372e2f9a91f3032dc84bbf71518a4617565294d313";

    #[test]
    fn hashes_reject_zero_malformed_and_upper() {
        assert!(K3S.parse::<FileHash>().is_ok());
        for bad in [
            format!("sha256-{}", "0".repeat(64)),
            format!("sha512-{}", "0".repeat(128)),
            format!("sha256-{}", "a".repeat(63)),
            format!("sha256-{}", "A".repeat(64)),
            format!("sha256-{}g", "a".repeat(63)),
            format!("md5-{}", "a".repeat(32)),
            "a".repeat(64),
        ] {
            assert!(bad.parse::<FileHash>().is_err(), "{bad}");
        }
        let zero = format!("sha256:{}", "0".repeat(64));
        assert!(matches!(
            zero.parse::<Digest>(),
            Err(ArtifactError::Zero(_))
        ));
        assert!(format!("sha256-{}", "1".repeat(64))
            .parse::<Digest>()
            .is_err());
        assert_eq!(
            format!("sha512-{}", "ab".repeat(64))
                .parse::<FileHash>()
                .map(|h| h.to_string()),
            Ok(format!("sha512-{}", "ab".repeat(64)))
        );
    }

    #[test]
    fn serde_goes_through_the_constructors() {
        let zero = format!("\"sha256-{}\"", "0".repeat(64));
        assert!(serde_json::from_str::<FileHash>(&zero).is_err());
        let ok: FileHash = serde_json::from_str(&format!("\"{K3S}\"")).expect("valid");
        assert_eq!(
            serde_json::to_string(&ok).expect("valid"),
            format!("\"{K3S}\"")
        );
        assert!(serde_json::from_str::<SourceUrl>("\"ftp://x/y\"").is_err());
        assert!(serde_json::from_str::<ImageName>("\"docker.io/a/b@sha256:aa\"").is_err());
    }

    #[test]
    fn urls_and_images() {
        for ok in ["https://a.b/c", "http://10.0.0.1:8080/x%2By", "https://h/"] {
            assert!(SourceUrl::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://",
            "file:///etc/passwd",
            "https://a b/c",
            "https://a/\"c",
            "https://u@h/x",
            "https://a/c\n",
        ] {
            assert!(SourceUrl::new(bad).is_err(), "{bad:?}");
        }
        let i = ImageName::new("registry.k8s.io/coredns/coredns:v1.14.2").expect("valid");
        assert_eq!(i.to_string(), "registry.k8s.io/coredns/coredns:v1.14.2");
        assert_eq!(
            i.on_registry(&RegistryHost::new("reg.lan:5000").expect("valid"))
                .to_string(),
            "reg.lan:5000/coredns/coredns:v1.14.2"
        );
        for bad in [
            "coredns",
            "coredns/coredns",
            "docker.io/Up/x",
            "docker.io/a:",
            "d.io/a@sha256:1",
        ] {
            assert!(ImageName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mirror_and_override() {
        let a =
            Artifact::file("k3s", "v1", "https://github.com/k3s-io/k3s/k3s", K3S).expect("valid");
        let img = Artifact::image(
            "coredns",
            "1.14.2",
            "registry.k8s.io/coredns/coredns:v1.14.2",
            "sha256:fd5079792b93909db3adefa91e41c3995455013394f0197c7346786ae19079fc",
        )
        .expect("valid");
        let mut s = ArtifactSettings {
            mirror: Mirror {
                files: Some(SourceUrl::new("http://mirror.lan/files/").expect("valid")),
                registry: Some(RegistryHost::new("mirror.lan:5000").expect("valid")),
            },
            overrides: BTreeMap::new(),
        };
        assert_eq!(
            a.resolve(&s).source().to_string(),
            "http://mirror.lan/files/github.com/k3s-io/k3s/k3s"
        );
        assert_eq!(
            img.resolve(&s).pull_ref().expect("valid"),
            "mirror.lan:5000/coredns/coredns:v1.14.2@sha256:fd5079792b93909db3adefa91e41c3995455013394f0197c7346786ae19079fc"
        );
        s.overrides.insert(
            Name::new("k3s").expect("valid"),
            Override::file(
                "https://build.lan/k3s",
                &format!("sha512-{}", "12".repeat(64)),
            )
            .expect("valid"),
        );
        let o = a.resolve(&s);
        assert_eq!(o.source().to_string(), "https://build.lan/k3s");
        assert!(o.is_verified());
        assert_eq!(o.version(), "v1");
    }

    #[test]
    fn override_document_form() {
        let t: BTreeMap<String, Override> = toml::from_str(
            "[k3s]\nurl = \"https://b.lan/k3s\"\nhash = \"sha256-d73847bcd3c5fccef0115b372e2f9a91f3032dc84bbf71518a4617565294d313\"\n\
             [keepalived]\nurl = \"https://b.lan/k.raw\"\nunverified = true\n\
             [coredns]\nimage = \"reg.lan/coredns:1\"\ndigest = \"sha256:fd5079792b93909db3adefa91e41c3995455013394f0197c7346786ae19079fc\"\n",
        )
        .expect("valid");
        assert_eq!(t.len(), 3);
        assert!(matches!(
            t["keepalived"].source,
            Source::File {
                check: Check::Unverified,
                ..
            }
        ));
        let back = toml::to_string(&t).expect("valid");
        let again: BTreeMap<String, Override> = toml::from_str(&back).expect("valid");
        assert_eq!(t, again);
        for bad in [
            "[x]\nurl = \"https://b/k\"\n",
            "[x]\nurl = \"https://b/k\"\nunverified = true\nhash = \"sha256-d73847bcd3c5fccef0115b372e2f9a91f3032dc84bbf71518a4617565294d313\"\n",
            "[x]\nimage = \"r.io/a\"\n",
            "[x]\nurl = \"https://b/k\"\nimage = \"r.io/a\"\nunverified = true\n",
            "[x]\nurl = \"https://b/k\"\nhash = \"sha256-0000000000000000000000000000000000000000000000000000000000000000\"\n",
            "[x]\nurl = \"https://b/k\"\nunverified = true\nbogus = 1\n",
        ] {
            assert!(toml::from_str::<BTreeMap<String, Override>>(bad).is_err(), "{bad}");
        }
    }
}
