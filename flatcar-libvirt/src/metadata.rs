//! Ownership metadata: `<metadata><fmc:owner xmlns:fmc="…" cluster="…"
//! hash="sha256-…"/></metadata>` on networks and domains, and reading it
//! back from the XML libvirt returns (namespace-aware, so a different prefix
//! still counts).
//!
//! The hash covers the object's desired XML rendered without `<uuid>` and
//! with a fixed placeholder as the hash: a live object whose hash equals the desired one is
//! unchanged, whatever libvirt added to it (addresses, controllers, …).
//!
//! Pools and volumes cannot carry metadata (libvirt's `storagepool` and
//! `storagevol` schemas have none). Apply therefore treats a volume as owned
//! when an owned domain of the same cluster uses it from the cluster's pool,
//! and the pool as the cluster's when name and target path match the model.

use crate::{content_hash, to_xml, Error};
use flatcar_topology::Cluster;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use serde::Serialize;

/// XML namespace of the ownership metadata.
pub const NAMESPACE: &str = "https://flatcar-microcloud.dev/xmlns/1";

/// `<metadata><fmc:owner …/></metadata>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Metadata {
    /// The owner element.
    #[serde(rename = "fmc:owner")]
    pub owner: Owner,
}

/// Who owns an object, and the hash of its desired state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    /// Namespace declaration ([`NAMESPACE`]).
    #[serde(rename = "@xmlns:fmc")]
    pub xmlns: &'static str,
    /// Owning cluster.
    #[serde(rename = "@cluster")]
    pub cluster: String,
    /// `sha256-<hex>` of the object's XML without uuid, hashed with a placeholder here.
    #[serde(rename = "@hash")]
    pub hash: String,
}

/// Ownership read back from an object's XML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    /// Owning cluster.
    pub cluster: String,
    /// Content hash of the desired state it was defined from.
    pub hash: String,
}

/// A document with an identity libvirt assigns (`<uuid>`) and our metadata.
pub(crate) trait Document: Serialize {
    /// Root element name.
    const ROOT: &'static str;
    /// The document's `<uuid>` and `<metadata>` slots.
    fn identity(&mut self) -> (&mut Option<String>, &mut Option<Metadata>);
    /// The document as its content hash sees it, when that differs from
    /// the document: parts that apply changes on a running object without
    /// redefining it (a network's DHCP and DNS hosts) are left out, so a
    /// running object's live metadata stays true after such a change; the
    /// plan compares those parts as facts instead.
    fn hash_view(&self) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }
}

/// The hash attribute's value while the document is hashed.
const UNHASHED: &str = "sha256-0000000000000000000000000000000000000000000000000000000000000000";

/// Renders `doc` with ownership metadata and, when redefining an existing
/// object, its `uuid`.
///
/// The hash covers the document rendered without `uuid` and with
/// [`UNHASHED`] in the hash attribute; the digest then takes the
/// placeholder's place (same length), so a new object is serialized once
/// (twice when the document has a [`Document::hash_view`]).
pub(crate) fn render<T: Document>(
    cluster: &Cluster,
    mut doc: T,
    uuid: Option<&str>,
) -> Result<String, Error> {
    {
        let (u, m) = doc.identity();
        *u = None;
        *m = Some(Metadata {
            owner: Owner {
                xmlns: NAMESPACE,
                cluster: cluster.name().to_string(),
                hash: UNHASHED.to_string(),
            },
        });
    }
    let mut xml = to_xml(T::ROOT, &doc)?;
    let hash = match doc.hash_view() {
        None => content_hash(&xml),
        Some(view) => content_hash(&to_xml(T::ROOT, &view)?),
    };
    if let Some(uuid) = uuid {
        let (u, m) = doc.identity();
        *u = Some(uuid.to_string());
        if let Some(m) = m {
            m.owner.hash = hash;
        }
        return to_xml(T::ROOT, &doc);
    }
    // The placeholder inside our owner element (names cannot contain the
    // namespace URI or quotes, so the first match after it is ours).
    let at = xml
        .find(NAMESPACE)
        .and_then(|ns| xml[ns..].find(UNHASHED).map(|p| ns + p))
        .ok_or(Error::MissingOwner(T::ROOT))?;
    xml.replace_range(at..at + UNHASHED.len(), &hash);
    Ok(xml)
}

/// The ownership element of an object's XML: `Ok(None)` when it has none
/// (a foreign object), an error when the XML cannot be read at all.
/// Only an `owner` element in [`NAMESPACE`] directly inside the root's
/// `<metadata>` counts, whatever its prefix.
pub fn ownership(xml: &str) -> Result<Option<Ownership>, Error> {
    let bad = |e: quick_xml::Error| Error::Syntax {
        object: "ownership metadata".into(),
        source: e,
    };
    let mut reader = NsReader::from_str(xml);
    let mut depth = 0usize;
    let mut in_metadata = false;
    loop {
        let (ns, ev) = reader.read_resolved_event().map_err(bad)?;
        let ours = matches!(ns, ResolveResult::Bound(n) if n.as_ref() == NAMESPACE.as_bytes());
        match ev {
            Event::Start(e) | Event::Empty(e)
                if in_metadata && depth == 2 && ours && e.local_name().as_ref() == b"owner" =>
            {
                let mut cluster = None;
                let mut hash = None;
                for a in e.attributes() {
                    let a = a.map_err(|e| bad(e.into()))?;
                    let v = a.unescape_value().map_err(bad)?.into_owned();
                    match a.key.local_name().as_ref() {
                        b"cluster" => cluster = Some(v),
                        b"hash" => hash = Some(v),
                        _ => {}
                    }
                }
                return Ok(match (cluster, hash) {
                    (Some(cluster), Some(hash)) => Some(Ownership { cluster, hash }),
                    _ => None,
                });
            }
            Event::Start(e) => {
                depth += 1;
                if depth == 2 && e.local_name().as_ref() == b"metadata" {
                    in_metadata = true;
                }
            }
            Event::End(_) => {
                if depth == 2 {
                    in_metadata = false;
                }
                depth = depth.saturating_sub(1);
            }
            Event::Eof => {
                if depth != 0 {
                    return Err(Error::Truncated {
                        object: "ownership metadata".into(),
                    });
                }
                return Ok(None);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_owner_with_any_prefix_and_ignores_foreign() {
        let xml = r#"<domain><name>a</name><metadata><x:owner xmlns:x="https://flatcar-microcloud.dev/xmlns/1" cluster="c&amp;d" hash="sha256-1"/></metadata></domain>"#;
        assert_eq!(
            ownership(xml).ok().flatten(),
            Some(Ownership {
                cluster: "c&d".into(),
                hash: "sha256-1".into()
            })
        );
        let other = r#"<domain><metadata><fmc:owner xmlns:fmc="urn:other" cluster="c" hash="h"/></metadata></domain>"#;
        assert_eq!(ownership(other).ok().flatten(), None);
        let nested = r#"<domain><devices><metadata><fmc:owner xmlns:fmc="https://flatcar-microcloud.dev/xmlns/1" cluster="c" hash="h"/></metadata></devices></domain>"#;
        assert_eq!(ownership(nested).ok().flatten(), None);
        assert!(matches!(
            ownership("<domain><name>"),
            Err(Error::Truncated { .. } | Error::Syntax { .. })
        ));
    }
}
