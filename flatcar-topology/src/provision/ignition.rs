//! Ignition v3 rendering with serde types (no hand-built JSON).

use super::{Contents, Node};
use crate::Error;
use base64::Engine;
use serde::Serialize;

/// The Ignition spec version rendered. Only fields that exist since 3.0 are
/// used, so the same document is also a valid 3.3.0 config.
pub const SPEC_VERSION: &str = "3.4.0";

/// Top-level config.
#[derive(Debug, Serialize)]
pub struct Config {
    /// Version header.
    pub ignition: Header,
    /// Users.
    #[serde(skip_serializing_if = "Passwd::is_empty")]
    pub passwd: Passwd,
    /// Disks, filesystems, files.
    pub storage: Storage,
    /// Units.
    pub systemd: Systemd,
}

/// `ignition` section.
#[derive(Debug, Serialize)]
pub struct Header {
    /// Spec version.
    pub version: String,
}

/// `passwd` section.
#[derive(Debug, Serialize, Default)]
pub struct Passwd {
    /// Users.
    pub users: Vec<User>,
}

impl Passwd {
    fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// A user.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Name.
    pub name: String,
    /// Keys.
    pub ssh_authorized_keys: Vec<String>,
}

/// `storage` section.
#[derive(Debug, Serialize, Default)]
pub struct Storage {
    /// Disks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<Disk>,
    /// Filesystems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filesystems: Vec<Filesystem>,
    /// Files.
    pub files: Vec<FileEntry>,
}

/// A disk to partition.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Disk {
    /// Device path.
    pub device: String,
    /// Keep an existing table (never wipe data on re-provisioning).
    pub wipe_table: bool,
    /// Partitions.
    pub partitions: Vec<Partition>,
}

/// A partition.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Partition {
    /// Number.
    pub number: u32,
    /// Label.
    pub label: String,
}

/// A filesystem.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Filesystem {
    /// Device path.
    pub device: String,
    /// `ext4`.
    pub format: String,
    /// Label.
    pub label: String,
    /// Keep an existing filesystem (data survives re-provisioning).
    pub wipe_filesystem: bool,
}

/// A file.
#[derive(Debug, Serialize)]
pub struct FileEntry {
    /// Path.
    pub path: String,
    /// Mode (decimal in JSON).
    pub mode: u32,
    /// Replace what is there.
    pub overwrite: bool,
    /// Owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<NameRef>,
    /// Contents.
    pub contents: Resource,
}

/// A user reference.
#[derive(Debug, Serialize)]
pub struct NameRef {
    /// User name.
    pub name: String,
}

/// File contents source.
#[derive(Debug, Serialize)]
pub struct Resource {
    /// `data:` or `https:` URL.
    pub source: String,
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
pub struct Systemd {
    /// Units.
    pub units: Vec<UnitEntry>,
}

/// A unit.
#[derive(Debug, Serialize)]
pub struct UnitEntry {
    /// Name.
    pub name: String,
    /// Enable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Mask.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mask: bool,
    /// Text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contents: Option<String>,
    /// Dropins.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropins: Vec<Dropin>,
}

/// A dropin.
#[derive(Debug, Serialize)]
pub struct Dropin {
    /// File name.
    pub name: String,
    /// Text.
    pub contents: String,
}

fn data_url(bytes: &[u8]) -> String {
    format!(
        "data:;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// Builds the typed config of a node.
pub fn config(node: &Node) -> Config {
    let mut files: Vec<FileEntry> = node
        .files
        .values()
        .map(|f| FileEntry {
            path: f.path.clone(),
            mode: f.mode,
            overwrite: true,
            user: f.owner.clone().map(|name| NameRef { name }),
            contents: match &f.contents {
                Contents::Inline(b) => Resource {
                    source: data_url(b),
                    verification: None,
                },
                Contents::Secret(s) => Resource {
                    source: data_url(s.expose().as_bytes()),
                    verification: None,
                },
                Contents::Remote { url, sha512 } => Resource {
                    source: url.clone(),
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
            path: "/etc/sysctl.d/90-microcloud.conf".into(),
            mode: 0o644,
            overwrite: true,
            user: None,
            contents: Resource {
                source: data_url(text.as_bytes()),
                verification: None,
            },
        });
        files.sort_by(|a, b| a.path.cmp(&b.path));
    }
    let mut disks = Vec::new();
    let mut filesystems = Vec::new();
    for d in &node.disks {
        disks.push(Disk {
            device: d.device.clone(),
            wipe_table: false,
            partitions: vec![Partition {
                number: 1,
                label: d.label.clone(),
            }],
        });
        filesystems.push(Filesystem {
            device: format!("/dev/disk/by-partlabel/{}", d.label),
            format: d.format.clone(),
            label: d.label.clone(),
            wipe_filesystem: false,
        });
    }
    let units = node
        .units
        .values()
        .map(|u| UnitEntry {
            name: u.name.clone(),
            enabled: u.enabled,
            mask: u.mask,
            contents: u.contents.clone(),
            dropins: u
                .dropins
                .iter()
                .map(|(name, contents)| Dropin {
                    name: name.clone(),
                    contents: contents.clone(),
                })
                .collect(),
        })
        .collect();
    let users = if node.user.is_empty() {
        Vec::new()
    } else {
        vec![User {
            name: node.user.clone(),
            ssh_authorized_keys: node.ssh_keys.clone(),
        }]
    };
    Config {
        ignition: Header {
            version: SPEC_VERSION.into(),
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
    let mut s =
        serde_json::to_string_pretty(&config(node)).map_err(|e| Error::Serialize(e.to_string()))?;
    s.push('\n');
    Ok(s)
}
