//! Ignition v3 rendering with serde types (no hand-built JSON).

use crate::Error;
use base64::Engine;
use flatcar_topology::provision::{Contents, Node};
use serde::Serialize;

/// The Ignition spec version rendered. Only fields that exist since 3.0 are
/// used, so the same document is also a valid 3.3.0 config.
pub const SPEC_VERSION: &str = "3.4.0";

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
    /// `sha512-<hex>`.
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
                Contents::Remote { url, sha512 } => Resource {
                    source: url.as_str().into(),
                    verification: Some(Verification {
                        hash: format!("sha512-{sha512}"),
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
    Config {
        ignition: Header {
            version: SPEC_VERSION,
        },
        passwd: Passwd { users },
        storage: Storage {
            disks,
            filesystems,
            files,
        },
        systemd: Systemd { units },
    }
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
