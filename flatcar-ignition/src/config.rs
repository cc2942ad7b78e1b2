//! Ignition v3 rendering with serde types (no hand-built JSON).

use crate::Error;
use base64::Engine;
use flatcar_topology::provision::{Contents, Node};
use serde::Serialize;

/// The spec version a config declares when it uses nothing newer: 3.3.0,
/// which every Ignition that Flatcar ships (and Debian's 2.14, which knows
/// 3.4.0 only as "3.4.0-experimental") accepts.
pub const SPEC_VERSION: &str = "3.3.0";

/// The spec version a config needs when it uses a 3.4-only field: special
/// mode bits (setuid, setgid, sticky) in a file mode.
pub const SPEC_VERSION_SPECIAL_MODES: &str = "3.4.0";

/// Mode bits that spec 3.4.0 introduced (setuid, setgid, sticky).
const SPECIAL_MODE_BITS: u32 = 0o7000;

impl Config<'_> {
    /// The lowest spec version that carries every field this config uses,
    /// so the oldest Ignition that can consume it does.
    pub fn lowest_spec_version(&self) -> &'static str {
        if self
            .storage
            .files
            .iter()
            .any(|f| f.mode & SPECIAL_MODE_BITS != 0)
        {
            SPEC_VERSION_SPECIAL_MODES
        } else {
            SPEC_VERSION
        }
    }
}

/// Top-level config.
#[derive(Debug, Serialize)]
pub struct Config<'a> {
    /// Version header.
    pub ignition: Header,
    /// Users.
    #[serde(skip_serializing_if = "Passwd::is_empty")]
    pub passwd: Passwd<'a>,
    /// Disks, filesystems, files.
    pub storage: Storage<'a>,
    /// Units.
    pub systemd: Systemd<'a>,
}

/// `ignition` section.
#[derive(Debug, Serialize)]
pub struct Header {
    /// Spec version.
    pub version: &'static str,
}

/// `passwd` section.
#[derive(Debug, Serialize, Default)]
pub struct Passwd<'a> {
    /// Users.
    pub users: Vec<User<'a>>,
}

impl Passwd<'_> {
    fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// A user.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User<'a> {
    /// Name.
    pub name: &'a str,
    /// Keys.
    pub ssh_authorized_keys: &'a [String],
}

/// `storage` section.
#[derive(Debug, Serialize, Default)]
pub struct Storage<'a> {
    /// Disks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<Disk<'a>>,
    /// Filesystems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filesystems: Vec<Filesystem<'a>>,
    /// Files.
    pub files: Vec<FileEntry<'a>>,
    /// Symbolic links.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkEntry<'a>>,
}

/// A symbolic link.
#[derive(Debug, Serialize)]
pub struct LinkEntry<'a> {
    /// Link path.
    pub path: &'a str,
    /// What it points to.
    pub target: &'a str,
    /// Symbolic, not hard.
    pub hard: bool,
    /// Replace what is there.
    pub overwrite: bool,
}

/// A disk to partition.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Disk<'a> {
    /// Device path.
    pub device: &'a str,
    /// Keep an existing table (never wipe data on re-provisioning).
    pub wipe_table: bool,
    /// Partitions.
    pub partitions: Vec<Partition<'a>>,
}

/// A partition.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Partition<'a> {
    /// Number.
    pub number: u32,
    /// Label.
    pub label: &'a str,
}

/// A filesystem.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Filesystem<'a> {
    /// Device path.
    pub device: String,
    /// `ext4`.
    pub format: &'a str,
    /// Label.
    pub label: &'a str,
    /// Keep an existing filesystem (data survives re-provisioning).
    pub wipe_filesystem: bool,
}

/// A file.
#[derive(Debug, Serialize)]
pub struct FileEntry<'a> {
    /// Path.
    pub path: &'a str,
    /// Mode (decimal in JSON).
    pub mode: u32,
    /// Replace what is there.
    pub overwrite: bool,
    /// Owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<NameRef<'a>>,
    /// Contents.
    pub contents: Resource<'a>,
}

/// A user reference.
#[derive(Debug, Serialize)]
pub struct NameRef<'a> {
    /// User name.
    pub name: &'a str,
}

/// File contents source.
#[derive(Debug, Serialize)]
pub struct Resource<'a> {
    /// `data:` or `https:` URL.
    pub source: std::borrow::Cow<'a, str>,
    /// Hash of remote contents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
}

/// Content verification.
#[derive(Debug, Serialize)]
pub struct Verification {
    /// `sha256-<hex>` or `sha512-<hex>`.
    pub hash: String,
}

/// `systemd` section.
#[derive(Debug, Serialize, Default)]
pub struct Systemd<'a> {
    /// Units.
    pub units: Vec<UnitEntry<'a>>,
}

/// A unit.
#[derive(Debug, Serialize)]
pub struct UnitEntry<'a> {
    /// Name.
    pub name: &'a str,
    /// Enable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Mask.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mask: bool,
    /// Text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contents: Option<&'a str>,
    /// Dropins.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropins: Vec<Dropin<'a>>,
}

/// A dropin.
#[derive(Debug, Serialize)]
pub struct Dropin<'a> {
    /// File name.
    pub name: &'a str,
    /// Text.
    pub contents: &'a str,
}

fn data_url(bytes: &[u8]) -> String {
    format!(
        "data:;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// Builds the typed config of a node.
pub fn config(node: &Node) -> Config<'_> {
    let mut files: Vec<FileEntry> = node
        .files
        .values()
        .map(|f| FileEntry {
            path: &f.path,
            mode: f.mode,
            overwrite: true,
            user: f.owner.as_deref().map(|name| NameRef { name }),
            contents: match &f.contents {
                Contents::Inline(b) => Resource {
                    source: data_url(b).into(),
                    verification: None,
                },
                Contents::Secret(s) => Resource {
                    source: data_url(s.expose().as_bytes()).into(),
                    verification: None,
                },
                Contents::Remote { url, hash } => Resource {
                    source: url.as_str().into(),
                    verification: hash.map(|h| Verification {
                        hash: h.to_string(),
                    }),
                },
            },
        })
        .collect();
    if !node.sysctls.is_empty() {
        let text: String = node
            .sysctls
            .iter()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect();
        files.push(FileEntry {
            path: "/etc/sysctl.d/90-microcloud.conf",
            mode: 0o644,
            overwrite: true,
            user: None,
            contents: Resource {
                source: data_url(text.as_bytes()).into(),
                verification: None,
            },
        });
        files.sort_by(|a, b| a.path.cmp(b.path));
    }
    let mut disks = Vec::new();
    let mut filesystems = Vec::new();
    for d in &node.disks {
        disks.push(Disk {
            device: &d.device,
            wipe_table: false,
            partitions: vec![Partition {
                number: 1,
                label: &d.label,
            }],
        });
        filesystems.push(Filesystem {
            device: format!("/dev/disk/by-partlabel/{}", d.label),
            format: &d.format,
            label: &d.label,
            wipe_filesystem: false,
        });
    }
    let units = node
        .units
        .values()
        .map(|u| UnitEntry {
            name: &u.name,
            enabled: u.enabled,
            mask: u.mask,
            contents: u.contents.as_deref(),
            dropins: u
                .dropins
                .iter()
                .map(|(name, contents)| Dropin { name, contents })
                .collect(),
        })
        .collect();
    let users = if node.user.is_empty() {
        Vec::new()
    } else {
        vec![User {
            name: &node.user,
            ssh_authorized_keys: &node.ssh_keys,
        }]
    };
    let mut config = Config {
        ignition: Header {
            version: SPEC_VERSION,
        },
        passwd: Passwd { users },
        storage: Storage {
            disks,
            filesystems,
            files,
            links: node
                .links
                .iter()
                .map(|(path, target)| LinkEntry {
                    path,
                    target,
                    hard: false,
                    overwrite: true,
                })
                .collect(),
        },
        systemd: Systemd { units },
    };
    config.ignition.version = config.lowest_spec_version();
    config
}

/// Renders a node as pretty JSON with a trailing newline.
pub fn render(node: &Node) -> Result<String, Error> {
    let mut s = serde_json::to_string_pretty(&config(node)).map_err(|source| Error::Json {
        hostname: node.hostname.clone(),
        source,
    })?;
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(mode: u32) -> FileEntry<'static> {
        FileEntry {
            path: "/opt/bin/x",
            mode,
            overwrite: true,
            user: None,
            contents: Resource {
                source: "data:,".into(),
                verification: None,
            },
        }
    }

    fn with_files(files: Vec<FileEntry<'static>>) -> Config<'static> {
        Config {
            ignition: Header {
                version: SPEC_VERSION,
            },
            passwd: Passwd::default(),
            storage: Storage {
                files,
                ..Storage::default()
            },
            systemd: Systemd::default(),
        }
    }

    #[test]
    fn plain_modes_need_only_spec_3_3() {
        let c = with_files(vec![file(0o644), file(0o755), file(0o600)]);
        assert_eq!(c.lowest_spec_version(), "3.3.0");
        assert_eq!(with_files(Vec::new()).lowest_spec_version(), "3.3.0");
    }

    #[test]
    fn special_mode_bits_need_spec_3_4() {
        for mode in [0o4755, 0o2755, 0o1777] {
            let c = with_files(vec![file(0o644), file(mode)]);
            assert_eq!(c.lowest_spec_version(), "3.4.0", "mode {mode:o}");
        }
    }
}
