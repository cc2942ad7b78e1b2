//! Every service of the cloud, in the order they contribute.

use flatcar_net::coredns::PreviousZone;
use flatcar_topology::provision::{Composed, SecretStore, Service};
use flatcar_topology::Cluster;
use std::collections::BTreeMap;

/// The services the bundle composes, after the built-in base service
/// (every DNS zone rendered for the first time).
pub fn all() -> Vec<Box<dyn Service>> {
    all_after(BTreeMap::new())
}

/// The same services, with the zones of a previous render (by zone name),
/// so each zone's SOA serial stays when its content does and grows when it
/// changes.
pub fn all_after(previous_zones: BTreeMap<String, PreviousZone>) -> Vec<Box<dyn Service>> {
    vec![
        Box::new(flatcar_lb::LoadBalancers::default()),
        Box::new(flatcar_k3s::K3sCluster),
        Box::new(flatcar_net::NetServices { previous_zones }),
        Box::new(flatcar_db::Postgres),
    ]
}

/// Composes the base service and [`all`] services for `cluster`: every
/// node's provisioning, the flows the firewall must allow, the DNS records
/// and the bundle artifacts (what [`crate::Bundle::render`] starts from).
///
/// ```
/// use flatcar_microcloud::{reference, services};
/// use flatcar_topology::provision::MemorySecrets;
///
/// let cluster = reference::cluster().expect("valid");
/// let composed = services::compose(&cluster, &mut MemorySecrets::default()).expect("composes");
/// assert_eq!(composed.nodes.len(), cluster.vms().len());
/// assert!(!composed.flows.is_empty());
/// ```
pub fn compose(
    cluster: &Cluster,
    secrets: &mut dyn SecretStore,
) -> Result<Composed, flatcar_topology::Error> {
    let services = all();
    let refs: Vec<&dyn Service> = services.iter().map(|s| s.as_ref()).collect();
    flatcar_ignition::compose(cluster, &refs, secrets)
}

/// Like [`compose`], with the zones of the previous bundle (see
/// [`all_after`]): the composition [`crate::Bundle::render`] makes, so the
/// files a rollout pushes are the bundle's.
pub fn compose_after(
    cluster: &Cluster,
    previous_zones: BTreeMap<String, PreviousZone>,
    secrets: &mut dyn SecretStore,
) -> Result<Composed, flatcar_topology::Error> {
    let services = all_after(previous_zones);
    let refs: Vec<&dyn Service> = services.iter().map(|s| s.as_ref()).collect();
    flatcar_ignition::compose(cluster, &refs, secrets)
}

/// PostgreSQL release pinned for the database role (no sysext-bakery
/// extension exists, so it runs as a digest-pinned container).
pub const POSTGRES_VERSION: &str = "18.6";

/// The PostgreSQL image: the multi-arch index of `postgres:18-alpine`
/// (PostgreSQL 18.6) as recorded by `docker-library/repo-info`
/// `repos/postgres/remote/18-alpine.md` (see `docs/artifacts.md`).
pub fn postgres_image(
) -> Result<flatcar_topology::artifact::Artifact, flatcar_topology::artifact::ArtifactError> {
    flatcar_topology::artifact::Artifact::image(
        "postgres",
        POSTGRES_VERSION,
        "docker.io/library/postgres:18.6-alpine",
        "sha256:a1d02e4bd40c94d3bf2bdd3678c137388e76d9efcd23c285e9429d336a834b44",
    )
}
