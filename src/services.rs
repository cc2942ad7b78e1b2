//! Every service of the cloud, in the order they contribute.

use flatcar_topology::provision::{Composed, SecretStore, Service};
use flatcar_topology::Cluster;

/// The services the bundle composes, after the built-in base service.
pub fn all() -> Vec<Box<dyn Service>> {
    vec![
        Box::new(flatcar_lb::LoadBalancers::default()),
        Box::new(flatcar_k3s::K3sCluster),
        Box::new(flatcar_net::NetServices::default()),
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
