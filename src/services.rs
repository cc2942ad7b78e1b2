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
        Box::new(flatcar_net::NetServices {
            previous_zones,
            ..flatcar_net::NetServices::default()
        }),
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
