//! The cluster's directory storage pool (`<pool type='dir'>`), which holds
//! the base images, the VMs' volumes and their Ignition files.

use crate::{to_xml, Error};
use flatcar_topology::Cluster;
use serde::Serialize;

#[derive(Serialize)]
struct Pool {
    #[serde(rename = "@type")]
    kind: &'static str,
    name: String,
    target: Target,
}

#[derive(Serialize)]
struct Target {
    path: String,
}

/// The directory pool's XML.
pub fn xml(cluster: &Cluster) -> Result<String, Error> {
    let p = &cluster.host().pool;
    to_xml(
        "pool",
        &Pool {
            kind: "dir",
            name: p.name.to_string(),
            target: Target {
                path: p.path.to_string(),
            },
        },
    )
}
