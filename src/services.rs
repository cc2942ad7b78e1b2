//! Every service of the cloud, in the order they contribute.

use flatcar_topology::provision::Service;

/// The services the bundle composes, after the built-in base service.
pub fn all() -> Vec<Box<dyn Service>> {
    vec![
        Box::new(flatcar_lb::LoadBalancers::default()),
        Box::new(flatcar_k3s::K3sCluster),
        Box::new(flatcar_net::NetServices::default()),
    ]
}
